//! Decision logs that leave the box (issue 15): batched HTTP upload and
//! OTLP logs export, each behind a bounded buffer whose drops are counted,
//! so that a slow or hung receiver never delays a decision.

use std::time::Duration;

/// How decision-log records are shipped, besides stdout or a file.
#[derive(Debug, Clone)]
pub struct ShipSettings {
    /// POST gzip'd batches (a JSON array of records) to this URL.
    pub http_url: Option<String>,
    /// Export records as OTLP logs to this gRPC endpoint.
    pub otlp_endpoint: Option<String>,
    /// Records each sink buffers before dropping (and counting) more.
    pub buffer: usize,
    /// Largest batch, in bytes of JSON before compression.
    pub batch_bytes: usize,
    /// Longest a record waits before its batch is sent.
    pub flush_interval: Duration,
    /// Delivery attempts of one batch before it is dropped and counted.
    pub retries: u32,
    /// Fields to mask: `principal`, `resource`, `context`, `context.KEY`.
    pub mask: Vec<String>,
    /// Log each decision's request context (masked).
    pub log_context: bool,
}

impl Default for ShipSettings {
    fn default() -> Self {
        Self {
            http_url: None,
            otlp_endpoint: None,
            buffer: 10_000,
            batch_bytes: 1024 * 1024,
            flush_interval: Duration::from_secs(1),
            retries: 5,
            mask: Vec::new(),
            log_context: false,
        }
    }
}
