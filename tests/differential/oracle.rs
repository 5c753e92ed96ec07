//! The oracle process: one long-lived `node tests/oracle/oracle.mjs`
//! speaking JSON lines (one request in, one answer out, in order).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::Value;

/// What the oracle said about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Decision(String),
    Error(String),
}

pub struct Oracle {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Oracle {
    /// Starts the oracle, or says why it cannot run.
    pub fn start(oracle_dir: &Path) -> Result<Self, String> {
        let script = oracle_dir.join("oracle.mjs");
        let mut child = Command::new("node")
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start `node {}`: {e}", script.display()))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        Ok(Self {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
        })
    }

    fn read_answer(&mut self) -> Answer {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .expect("read from the oracle");
        assert!(n > 0, "the oracle process exited early");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!("the oracle answered a line that is not JSON ({e}): {line}")
        });
        match (v.get("decision"), v.get("error")) {
            (Some(Value::String(d)), _) => Answer::Decision(d.clone()),
            (_, Some(e)) => Answer::Error(e.as_str().unwrap_or_default().to_owned()),
            _ => Answer::Error(format!("unexpected answer: {line}")),
        }
    }

    /// Sends every line, then reads every answer. A writer thread feeds the
    /// pipe while this thread drains the answers, so neither pipe fills up.
    pub fn ask_all(&mut self, lines: Vec<String>) -> Vec<Answer> {
        let n = lines.len();
        let mut stdin = self.stdin.take().expect("oracle stdin");
        let writer = std::thread::spawn(move || {
            let mut buf = std::io::BufWriter::with_capacity(1 << 16, &mut stdin);
            for line in &lines {
                buf.write_all(line.as_bytes()).expect("write to the oracle");
                buf.write_all(b"\n").expect("write to the oracle");
            }
            buf.flush().expect("write to the oracle");
            drop(buf);
            stdin
        });
        let answers = (0..n).map(|_| self.read_answer()).collect();
        self.stdin = Some(writer.join().expect("oracle writer thread"));
        answers
    }

    /// One request, one answer.
    pub fn ask(&mut self, line: &str) -> Answer {
        let stdin = self.stdin.as_mut().expect("oracle stdin");
        stdin
            .write_all(line.as_bytes())
            .expect("write to the oracle");
        stdin.write_all(b"\n").expect("write to the oracle");
        stdin.flush().expect("write to the oracle");
        self.read_answer()
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        // Closing stdin ends the process; wait so no zombie is left behind.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}
