//! Logging and tracing setup for `iamgate serve`, and how a decision joins
//! its caller's trace.
//!
//! - Logs: structured lines to stderr (text, or JSON with `--log-json`),
//!   filtered by `RUST_LOG` (default `info`).
//! - Traces: when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, iamgate's spans — among
//!   them one `iamgate.decision` span per decision — are exported over
//!   OTLP/gRPC (tonic) through a batch span processor. The exporter is built
//!   inside the tokio runtime (its channel runs there); the processor's own
//!   thread hands batches to it. The service name is `iamgate` unless
//!   `OTEL_SERVICE_NAME` (or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`)
//!   says otherwise. The usual `OTEL_EXPORTER_OTLP_*` (headers, timeout,
//!   compression) and `OTEL_BSP_*` (batching) variables apply;
//!   `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn export off.
//!   Span export does not depend on `RUST_LOG`.
//! - Without an endpoint there is no exporter and no OpenTelemetry layer:
//!   a decision costs its `tracing` span and nothing more.
//!
//! A front-end passes the caller's W3C `traceparent` (an HTTP header, gRPC
//! metadata, or a header inside an ext_authz `CheckRequest`) as is to
//! [`AppState::decide`](crate::server::state::AppState::decide); the
//! decision span then becomes a child of the caller's span
//! ([`join_caller_trace`]), and the decision log records the trace id.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How long shutdown waits for the last spans to be exported.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the OpenTelemetry layer is installed (set once by [`init`]).
static OTEL_ENABLED: AtomicBool = AtomicBool::new(false);

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("OTLP trace exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// Keeps the span exporter alive; dropping it flushes the spans still
/// queued (bounded by a few seconds). Drop it before the tokio runtime.
#[derive(Default)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl std::fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("otlp", &self.provider.is_some())
            .finish()
    }
}

impl TelemetryGuard {
    /// Whether spans are exported over OTLP.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            OTEL_ENABLED.store(false, Ordering::Relaxed);
            if let Err(e) = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
                eprintln!("iamgate: flushing trace spans: {e}");
            }
        }
    }
}

/// Installs the global subscriber. `json` selects JSON log lines. When an
/// OTLP endpoint is configured, builds the exporter in `runtime`'s context
/// (the runtime must outlive the returned guard).
pub fn init(
    json: bool,
    runtime: &tokio::runtime::Handle,
) -> Result<TelemetryGuard, TelemetryError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt_layer: Box<dyn Layer<Registry> + Send + Sync> = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    };

    let provider = if otlp_requested(|k| std::env::var(k).ok()) {
        let _entered = runtime.enter();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()?;
        Some(
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource())
                .build(),
        )
    } else {
        None
    };
    // Only iamgate's own spans are exported: never the exporter's (tonic,
    // h2) nor the HTTP stack's, which would feed back into the exporter.
    let otel_layer = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("iamgate"))
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_filter(Targets::new().with_target("iamgate", tracing::Level::INFO))
    });

    let exporting = otel_layer.is_some();
    match tracing_subscriber::registry()
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()
    {
        Ok(()) => OTEL_ENABLED.store(exporting, Ordering::Relaxed),
        Err(e) => eprintln!("iamgate: tracing already initialised: {e}"),
    }
    if let Some(endpoint) = provider
        .as_ref()
        .and(endpoint_of(|k| std::env::var(k).ok()))
    {
        tracing::info!(%endpoint, "exporting trace spans over OTLP/gRPC");
    }
    Ok(TelemetryGuard { provider })
}

/// Whether spans are exported (the OpenTelemetry layer is installed).
pub fn otel_enabled() -> bool {
    OTEL_ENABLED.load(Ordering::Relaxed)
}

/// Whether the environment (read through `var`) asks for OTLP export.
fn otlp_requested(var: impl Fn(&str) -> Option<String>) -> bool {
    let is = |k: &str, v: &str| var(k).is_some_and(|x| x.trim().eq_ignore_ascii_case(v));
    if is("OTEL_SDK_DISABLED", "true") || is("OTEL_TRACES_EXPORTER", "none") {
        return false;
    }
    endpoint_of(var).is_some()
}

/// The configured OTLP traces endpoint, if any.
fn endpoint_of(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .into_iter()
    .filter_map(var)
    .map(|v| v.trim().to_owned())
    .find(|v| !v.is_empty())
}

/// The resource: detected from the environment (`OTEL_SERVICE_NAME`,
/// `OTEL_RESOURCE_ATTRIBUTES`), with service name `iamgate` by default.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_some_and(|v| !v.as_str().starts_with("unknown_service"));
    if named {
        detected
    } else {
        Resource::builder().with_service_name("iamgate").build()
    }
}

/// A W3C trace-context `traceparent` (`VERSION-TRACEID-PARENTID-FLAGS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: TraceId,
    pub parent_id: SpanId,
    pub flags: TraceFlags,
}

impl TraceParent {
    /// Parses a `traceparent` value as the W3C recommendation says: lowercase
    /// hex, version `ff` invalid, version `00` exactly 55 characters, later
    /// versions possibly longer (the extra is ignored), all-zero ids invalid.
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim_matches([' ', '\t']);
        let b = v.as_bytes();
        let version = v.get(0..2)?;
        if !is_lower_hex(version) || version == "ff" {
            return None;
        }
        let well_sized = match version {
            "00" => b.len() == 55,
            _ => b.len() == 55 || (b.len() > 55 && b.get(55) == Some(&b'-')),
        };
        if !well_sized
            || b.get(2) != Some(&b'-')
            || b.get(35) != Some(&b'-')
            || b.get(52) != Some(&b'-')
        {
            return None;
        }
        let (trace, parent, flags) = (v.get(3..35)?, v.get(36..52)?, v.get(53..55)?);
        if !(is_lower_hex(trace) && is_lower_hex(parent) && is_lower_hex(flags)) {
            return None;
        }
        let trace_id = TraceId::from_hex(trace).ok()?;
        let parent_id = SpanId::from_hex(parent).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        (trace_id != TraceId::INVALID && parent_id != SpanId::INVALID).then_some(Self {
            trace_id,
            parent_id,
            flags: TraceFlags::new(flags),
        })
    }

    /// The caller's span as a remote parent.
    pub fn span_context(&self) -> SpanContext {
        SpanContext::new(
            self.trace_id,
            self.parent_id,
            self.flags,
            true,
            TraceState::NONE,
        )
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// Makes `span` (not yet entered) a child of the caller's span named by
/// `traceparent` (a W3C `traceparent` value). Does nothing — not even
/// parsing — unless spans are exported; a missing or malformed value leaves
/// `span` the root of a new trace: never an error.
pub fn join_caller_trace(span: &tracing::Span, traceparent: Option<&str>) {
    if !otel_enabled() {
        return;
    }
    if let Some(p) = traceparent.and_then(TraceParent::parse) {
        let cx = opentelemetry::Context::new().with_remote_span_context(p.span_context());
        if let Err(e) = span.set_parent(cx) {
            tracing::debug!(error = %e, "cannot join the caller's trace");
        }
    }
}

/// The trace id a decision belongs to, for the decision log: the caller's
/// (from a valid `traceparent`), or else, when spans are exported, the new
/// trace `span` started.
pub fn trace_id_of(span: &tracing::Span, traceparent: Option<&str>) -> Option<String> {
    if let Some(p) = traceparent.and_then(TraceParent::parse) {
        return Some(p.trace_id.to_string());
    }
    if !otel_enabled() {
        return None;
    }
    let id = span.context().span().span_context().trace_id();
    (id != TraceId::INVALID).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_a_traceparent() {
        let p = TraceParent::parse(TP).expect("valid traceparent rejected");
        assert_eq!(p.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(p.parent_id.to_string(), "00f067aa0ba902b7");
        assert!(p.flags.is_sampled());
        assert!(p.span_context().is_remote());
        // A later version may carry more fields.
        let future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra";
        assert!(TraceParent::parse(future).is_some());
        assert!(TraceParent::parse(&format!(" {TP}\t")).is_some());
    }

    #[test]
    fn rejects_malformed_traceparents() {
        for bad in [
            "",
            "00",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-é1",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn otlp_is_requested_by_an_endpoint() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert!(!otlp_requested(env(&[])));
        assert!(!otlp_requested(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            " "
        )])));
        assert!(otlp_requested(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4317"
        )])));
        assert!(otlp_requested(env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:4317"
        )])));
        assert!(!otlp_requested(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_SDK_DISABLED", "TRUE"),
        ])));
        assert!(!otlp_requested(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ])));
    }

    #[test]
    fn without_export_a_decision_keeps_the_callers_trace_id() {
        let span = tracing::info_span!("iamgate.decision");
        join_caller_trace(&span, Some(TP));
        assert_eq!(
            trace_id_of(&span, Some(TP)).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(trace_id_of(&span, Some("garbage")), None);
        assert_eq!(trace_id_of(&span, None), None);
    }
}
