//! The decision log: one JSON line per decision, written by a background
//! thread from a bounded queue. A full queue drops the record and counts it;
//! logging never delays or changes a decision. Records carry no secrets:
//! no credentials, no `authorization` header, no context values.

use std::io::Write;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use serde::Serialize;

use crate::bundle::MatchedInfo;
use crate::telemetry::metrics::Metrics;

/// One decision, as logged.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionRecord {
    pub decision_id: String,
    /// RFC 3339 UTC.
    pub time: String,
    pub revision: String,
    pub frontend: &'static str,
    pub principal: String,
    pub action: String,
    pub resource: String,
    pub decision: &'static str,
    pub reason: String,
    pub matched: Vec<MatchedInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The request context, with `--decision-log-context` only: keys that
    /// name secrets are never logged, masked keys are replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
    /// The shadow snapshot's decision, on records of requests the shadow
    /// decided differently (`frontend` is then `shadow`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowOutcome>,
}

/// What the shadow snapshot answered.
#[derive(Debug, Clone, Serialize)]
pub struct ShadowOutcome {
    pub revision: String,
    pub decision: &'static str,
    /// The decision the active snapshot gave (also `decision` above).
    pub active_decision: &'static str,
}

/// Writes one record as a JSON line (a record that cannot be serialised is
/// skipped whole, never written in part).
fn write_line(w: &mut impl Write, rec: &DecisionRecord) {
    if let Ok(mut line) = serde_json::to_vec(rec) {
        line.push(b'\n');
        let _ = w.write_all(&line);
    }
}

/// Where the log goes.
#[derive(Debug, Clone)]
pub enum LogSink {
    Stdout,
    File(std::path::PathBuf),
}

/// A handle to the decision log (cheap to clone); disabled by default.
#[derive(Debug, Clone, Default)]
pub struct DecisionLog {
    tx: Option<SyncSender<DecisionRecord>>,
    metrics: Option<Metrics>,
    log_context: bool,
}

/// A context as a JSON object (keys in lower case, as the engine matches
/// them), keys that name secrets left out.
pub fn context_json(ctx: &crate::engine::Context) -> serde_json::Map<String, serde_json::Value> {
    use crate::engine::ContextValue;
    let mut out = serde_json::Map::new();
    for (k, v) in ctx.iter() {
        if crate::bundle::sample::is_secret_key(k) {
            continue;
        }
        let v = match v {
            ContextValue::One(s) => serde_json::Value::from(s.as_str()),
            ContextValue::Shared(s) => serde_json::Value::from(&**s),
            ContextValue::Many(m) => serde_json::Value::from(m.clone()),
        };
        out.insert(k.to_owned(), v);
    }
    out
}

impl DecisionLog {
    /// A log that writes nothing.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Starts the writer thread with a queue of `capacity` records.
    pub fn start(sink: LogSink, capacity: usize, metrics: Metrics) -> std::io::Result<Self> {
        let mut out: Box<dyn Write + Send> = match &sink {
            LogSink::Stdout => Box::new(std::io::stdout()),
            LogSink::File(p) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ),
        };
        let (tx, rx) = sync_channel::<DecisionRecord>(capacity.max(1));
        std::thread::Builder::new()
            .name("iamgate-decision-log".to_owned())
            .spawn(move || {
                let mut w = std::io::BufWriter::new(&mut out);
                while let Ok(first) = rx.recv() {
                    // Write what is queued, then flush once the queue is
                    // momentarily empty: no record waits in the buffer.
                    let mut next = Some(first);
                    while let Some(rec) = next {
                        write_line(&mut w, &rec);
                        next = rx.try_recv().ok();
                    }
                    let _ = w.flush();
                }
                let _ = w.flush();
            })?;
        Ok(Self {
            tx: Some(tx),
            metrics: Some(metrics),
            log_context: false,
        })
    }

    /// Whether records are being written.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// The context of a request as logged: `None` unless the log records
    /// contexts; keys that name secrets left out.
    pub fn context_of(
        &self,
        req: &crate::bundle::AuthzRequest,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        if !self.log_context || self.tx.is_none() {
            return None;
        }
        Some(context_json(&req.context))
    }

    /// Queues a record; drops (and counts) it when the queue is full.
    pub fn record(&self, rec: DecisionRecord) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(rec) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                if let Some(m) = &self.metrics {
                    m.log_dropped();
                }
            }
        }
    }
}
