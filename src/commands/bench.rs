//! `iamgate bench FILE`: median and p99 nanoseconds per decision for each
//! request of a policy test file, and decisions per second.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::testfile::bench::bench_file;
use crate::testfile::load_file;

/// Benchmarks the file; `budget` is the time spent on each request.
pub fn run(path: &Path, budget: Duration, json: bool, out: &mut dyn Write) -> std::io::Result<u8> {
    let file = match load_file(path) {
        Ok(f) => f,
        Err(e) => {
            writeln!(out, "error: {e}")?;
            return Ok(2);
        }
    };
    let results = bench_file(&file, budget);
    if json {
        let v = serde_json::to_string_pretty(&results).map_err(std::io::Error::other)?;
        writeln!(out, "{v}")?;
        return Ok(0);
    }
    writeln!(
        out,
        "{:<48} {:>13} {:>11} {:>11} {:>14}",
        "request", "decision", "median ns", "p99 ns", "decisions/s"
    )?;
    for r in &results {
        writeln!(
            out,
            "{:<48} {:>13} {:>11.1} {:>11.1} {:>14.0}",
            r.name, r.decision, r.median_ns, r.p99_ns, r.decisions_per_sec
        )?;
    }
    Ok(0)
}
