//! Telemetry: the metrics (declared once, here), the decision log, and
//! tracing/OTLP setup. Front-ends record through these types; nothing else
//! in the crate registers a metric or opens a log sink.

pub mod decision_log;
pub mod decision_log_ship;
pub mod metrics;
pub mod tracing_setup;

pub use decision_log::{DecisionLog, DecisionRecord};
pub use metrics::{Frontend, Metrics};
