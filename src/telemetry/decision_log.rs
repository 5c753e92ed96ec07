//! The decision log: one JSON line per decision, written by a background
//! thread from a bounded queue to stdout or a file, and handed to the
//! shipping sinks ([`decision_log_ship`]: HTTP upload, OTLP logs). A full
//! queue drops the record and counts it; logging never delays or changes a
//! decision. Records carry no secrets: no credentials, no `authorization`
//! header; context values only with `--decision-log-context`, never those
//! of keys that name secrets, and masked as `--decision-log-mask` says.

use std::io::Write;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

use serde::Serialize;

use crate::engine::MatchedInfo;
use crate::telemetry::decision_log_ship::{self, Mask, ShipError, ShipSettings};
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

/// Where the log goes.
#[derive(Debug, Clone)]
pub enum LogSink {
    Stdout,
    File(std::path::PathBuf),
}

/// A handle to the decision log (cheap to clone); disabled by default.
#[derive(Debug, Clone, Default)]
pub struct DecisionLog {
    tx: Option<SyncSender<Msg>>,
    metrics: Option<Metrics>,
    log_context: bool,
    /// The shipping sinks' tasks, awaited at shutdown.
    shippers: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

/// What the writer thread is handed.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "records are nearly every message; boxing would cost an allocation per decision"
)]
enum Msg {
    Record(DecisionRecord),
    /// Flush, close the shipping sinks, answer, and stop.
    Shutdown(tokio::sync::oneshot::Sender<()>),
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
        Self::start_with(Some(sink), capacity, metrics, &ShipSettings::default())
    }

    /// Starts the writer thread with a queue of `capacity` records, writing
    /// to `sink` (if any) and handing each record to the shipping sinks of
    /// `ship` (started on the current tokio runtime), every output masked
    /// as `ship.mask` says. Disabled when there is nowhere to write.
    pub fn start_with(
        sink: Option<LogSink>,
        capacity: usize,
        metrics: Metrics,
        ship: &ShipSettings,
    ) -> std::io::Result<Self> {
        let invalid = |e: ShipError| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        let mask = Mask::parse(&ship.mask).map_err(invalid)?;
        if sink.is_none() && !ship.ships() {
            return Ok(Self::disabled());
        }
        let mut out: Option<Box<dyn Write + Send>> = match &sink {
            None => None,
            Some(LogSink::Stdout) => Some(Box::new(std::io::stdout())),
            Some(LogSink::File(p)) => Some(Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            )),
        };
        let (mut sinks, tasks) = if ship.ships() {
            decision_log_ship::start(ship, &metrics).map_err(invalid)?
        } else {
            (Vec::new(), Vec::new())
        };
        let (tx, rx) = sync_channel::<Msg>(capacity.max(1));
        let m = metrics.clone();
        std::thread::Builder::new()
            .name("iamgate-decision-log".to_owned())
            .spawn(move || {
                let mut w = out.as_mut().map(std::io::BufWriter::new);
                while let Ok(first) = rx.recv() {
                    // Write what is queued, then flush once the queue is
                    // momentarily empty: no record waits in the buffer.
                    let mut next = Some(first);
                    while let Some(msg) = next {
                        match msg {
                            Msg::Record(mut rec) => {
                                mask.apply(&mut rec);
                                // A record that cannot be serialised is
                                // skipped whole, never written in part.
                                if let Ok(mut line) = serde_json::to_vec(&rec) {
                                    for s in &sinks {
                                        s.push(&rec, &line, &m);
                                    }
                                    if let Some(w) = w.as_mut() {
                                        line.push(b'\n');
                                        let _ = w.write_all(&line);
                                    }
                                }
                            }
                            Msg::Shutdown(done) => {
                                if let Some(w) = w.as_mut() {
                                    let _ = w.flush();
                                }
                                // Closing the sinks' channels makes them
                                // send what they hold and stop.
                                sinks.clear();
                                let _ = done.send(());
                                return;
                            }
                        }
                        next = rx.try_recv().ok();
                    }
                    if let Some(w) = w.as_mut() {
                        let _ = w.flush();
                    }
                }
                if let Some(w) = w.as_mut() {
                    let _ = w.flush();
                }
            })?;
        Ok(Self {
            tx: Some(tx),
            metrics: Some(metrics),
            log_context: ship.log_context,
            shippers: std::sync::Arc::new(std::sync::Mutex::new(tasks)),
        })
    }

    /// Flushes the log and the shipping sinks at shutdown: records queued
    /// before this call are written and sent, waiting at most `deadline`.
    /// Records after it are dropped and counted.
    pub async fn shutdown(&self, deadline: std::time::Duration) {
        let Some(tx) = &self.tx else { return };
        let started = tokio::time::Instant::now() + deadline;
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let tx = tx.clone();
        // The queue may be full: wait for room on a plain thread (the
        // runtime's shutdown would wait for a blocking-pool task stuck on a
        // writer that never drains).
        let (sent_tx, sent) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("iamgate-decision-log-close".into())
            .spawn(move || {
                let _ = sent_tx.send(tx.send(Msg::Shutdown(done_tx)).is_ok());
            });
        if spawned.is_err() || !matches!(tokio::time::timeout_at(started, sent).await, Ok(Ok(true)))
        {
            return;
        }
        let _ = tokio::time::timeout_at(started, done_rx).await;
        let tasks: Vec<_> = std::mem::take(
            &mut *self
                .shippers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for t in tasks {
            if tokio::time::timeout_at(started, t).await.is_err() {
                tracing::warn!(
                    "decision log: shipping did not finish before the shutdown deadline"
                );
                return;
            }
        }
    }

    /// Whether records are being written.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// The context of a request as logged: `None` unless the log records
    /// contexts; keys that name secrets left out.
    pub fn context_of(
        &self,
        req: &crate::engine::AuthzRequest,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        if !self.log_context || self.tx.is_none() {
            return None;
        }
        Some(context_json(&req.context))
    }

    /// Queues a record; drops (and counts) it when the queue is full.
    pub fn record(&self, rec: DecisionRecord) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(Msg::Record(rec)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                if let Some(m) = &self.metrics {
                    m.log_dropped();
                }
            }
        }
    }
}
