//! Decision logs that leave the box (issue 15): batched HTTP upload (like
//! OPA's decision-log plugin: a gzip'd JSON array per POST, batches bounded
//! in bytes, retries with exponential backoff) and OTLP logs export
//! (opentelemetry-otlp over gRPC, TLS for `https://` endpoints), plus the masking of fields and context
//! keys that applies to every decision-log output.
//!
//! Each sink has a bounded buffer fed by the decision log's writer thread
//! with `try_send`: a full buffer drops the record and counts it
//! (`iamgate_decision_log_ship_dropped_total{reason="buffer_full"}`), so a
//! slow or hung receiver never reaches the decision path. A batch that
//! still fails after every retry is dropped and counted
//! (`reason="delivery_failed"`). At shutdown the buffers are drained and
//! sent (bounded by a deadline). This module never decides anything.

use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::telemetry::decision_log::DecisionRecord;
use crate::telemetry::metrics::Metrics;

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
    /// Fields to mask: `principal`, `resource`, `reason`, `matched`,
    /// `context`, `context.KEY`.
    pub mask: Vec<String>,
    /// Log each decision's request context (masked).
    pub log_context: bool,
    /// PEM CA certificates that verify an `https://` upload URL (default:
    /// the system's `/etc/ssl/certs/ca-certificates.crt`).
    pub http_ca: Option<std::path::PathBuf>,
    /// The same for an `https://` OTLP endpoint.
    pub otlp_ca: Option<std::path::PathBuf>,
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
            http_ca: None,
            otlp_ca: None,
        }
    }
}

impl ShipSettings {
    /// Whether any shipping sink is configured.
    pub fn ships(&self) -> bool {
        self.http_url.is_some() || self.otlp_endpoint.is_some()
    }
}

/// A shipping sink's configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error(
        "--decision-log-mask `{0}`: expected principal, resource, reason, matched, context or context.KEY"
    )]
    Mask(String),
    #[error("--decision-log-http `{url}`: {message}")]
    HttpUrl { url: String, message: String },
    #[error("--decision-log-http `{url}`: CA certificates: {source}")]
    HttpCa {
        url: String,
        #[source]
        source: crate::tls_roots::CaError,
    },
    #[error("--decision-log-otlp `{url}`: {message}")]
    Otlp { url: String, message: String },
}

/// Why one upload got no response status.
#[derive(Debug, thiserror::Error)]
enum PostError {
    #[error("connect: {0}")]
    Connect(#[source] std::io::Error),
    #[error("TLS: {0}")]
    Tls(#[source] std::io::Error),
    #[error("handshake: {0}")]
    Handshake(#[source] hyper::Error),
    #[error("{0}")]
    Build(#[source] http::Error),
    #[error("request: {0}")]
    Request(#[source] hyper::Error),
}

/// What masking replaces a value with.
pub const MASKED: &str = "**masked**";

/// Fields and context keys removed from every decision-log record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mask {
    principal: bool,
    resource: bool,
    reason: bool,
    matched: bool,
    context: bool,
    /// Context keys, in lower case (they are matched case-insensitively,
    /// as IAM does).
    context_keys: Vec<String>,
}

impl Mask {
    /// Parses `--decision-log-mask` values.
    pub fn parse(items: &[String]) -> Result<Self, ShipError> {
        let mut m = Mask::default();
        for item in items {
            let item = item.trim();
            match item {
                "principal" => m.principal = true,
                "resource" => m.resource = true,
                "reason" => m.reason = true,
                "matched" => m.matched = true,
                "context" => m.context = true,
                _ => match item.strip_prefix("context.") {
                    Some(key) if !key.is_empty() => m.context_keys.push(key.to_ascii_lowercase()),
                    _ => return Err(ShipError::Mask(item.to_owned())),
                },
            }
        }
        Ok(m)
    }

    /// Masks a record in place.
    pub fn apply(&self, rec: &mut DecisionRecord) {
        if self.principal {
            rec.principal = MASKED.to_owned();
        }
        if self.resource {
            rec.resource = MASKED.to_owned();
        }
        if self.reason {
            rec.reason = MASKED.to_owned();
        }
        if self.matched {
            rec.matched.clear();
        }
        if let Some(ctx) = &mut rec.context {
            if self.context {
                rec.context = None;
            } else {
                for key in &self.context_keys {
                    if let Some(v) = ctx.get_mut(key.as_str()) {
                        *v = serde_json::Value::from(MASKED);
                    }
                }
            }
        }
    }
}

/// A running sink: where the writer thread hands records.
#[derive(Debug)]
pub enum Sink {
    Http(mpsc::Sender<Vec<u8>>),
    Otlp(mpsc::Sender<DecisionRecord>),
}

impl Sink {
    fn name(&self) -> &'static str {
        match self {
            Sink::Http(_) => "http",
            Sink::Otlp(_) => "otlp",
        }
    }

    /// Hands one (masked) record and its JSON to the sink; never waits.
    pub fn push(&self, rec: &DecisionRecord, json: &[u8], metrics: &Metrics) {
        let full = match self {
            Sink::Http(tx) => tx.try_send(json.to_vec()).is_err(),
            Sink::Otlp(tx) => tx.try_send(rec.clone()).is_err(),
        };
        if full {
            metrics.log_ship_dropped(self.name(), "buffer_full", 1);
        }
    }
}

/// Starts the configured sinks on the current tokio runtime; returns them
/// and their tasks (awaited at shutdown, after the sinks are dropped).
pub fn start(
    settings: &ShipSettings,
    metrics: &Metrics,
) -> Result<(Vec<Sink>, Vec<JoinHandle<()>>), ShipError> {
    let mut sinks = Vec::new();
    let mut tasks = Vec::new();
    let policy = Delivery {
        batch_bytes: settings.batch_bytes.max(1),
        flush: settings.flush_interval,
        retries: settings.retries.max(1),
    };
    if let Some(url) = &settings.http_url {
        let target = HttpTarget::parse(url, settings.http_ca.as_deref())?;
        let (tx, rx) = mpsc::channel(settings.buffer.max(1));
        tasks.push(tokio::spawn(ship_http(target, rx, policy, metrics.clone())));
        sinks.push(Sink::Http(tx));
    }
    if let Some(url) = &settings.otlp_endpoint {
        let exporter = otlp_exporter(url, settings.otlp_ca.as_deref())?;
        let (tx, rx) = mpsc::channel(settings.buffer.max(1));
        tasks.push(tokio::spawn(ship_otlp(
            exporter,
            rx,
            policy,
            metrics.clone(),
        )));
        sinks.push(Sink::Otlp(tx));
    }
    Ok((sinks, tasks))
}

/// Batching and retry settings shared by the sinks.
#[derive(Debug, Clone, Copy)]
struct Delivery {
    batch_bytes: usize,
    flush: Duration,
    retries: u32,
}

/// The wait before retry `attempt` (1-based): 100 ms doubling, at most
/// 5 s, with up to a quarter of jitter so that a fleet does not retry in
/// step.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(100)
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(10))
        .min(Duration::from_secs(5));
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * base.as_millis() as u64 / 1024;
    base + Duration::from_millis(jitter)
}

/// Collects the next batch: waits for a first item, then takes more until
/// `max_bytes` would be exceeded (the item that would exceed it is carried
/// to the next batch), `flush` has passed, or the channel closes. Returns
/// the batch and whether the channel is closed.
async fn next_batch<T>(
    rx: &mut mpsc::Receiver<T>,
    carry: &mut Option<T>,
    size: impl Fn(&T) -> usize,
    d: Delivery,
) -> (Vec<T>, bool) {
    let first = match carry.take() {
        Some(item) => item,
        None => match rx.recv().await {
            Some(item) => item,
            None => return (Vec::new(), true),
        },
    };
    let mut bytes = size(&first);
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + d.flush;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(item)) => {
                let n = size(&item) + 1;
                if bytes + n > d.batch_bytes {
                    *carry = Some(item);
                    return (batch, false);
                }
                bytes += n;
                batch.push(item);
            }
            Ok(None) => return (batch, true),
            Err(_) => return (batch, false),
        }
    }
}

/// Where HTTP batches go.
#[derive(Clone)]
struct HttpTarget {
    uri: Uri,
    host: String,
    port: u16,
    authority: String,
    path: String,
    /// For `https://`: the connector and the name the certificate must
    /// carry.
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls_pki_types::ServerName<'static>,
    )>,
}

impl std::fmt::Debug for HttpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HttpTarget({})", self.uri)
    }
}

/// Where the system keeps its CA certificates (Debian and derivatives).
const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A TLS client verifying servers against the CA certificates in `ca`.
fn tls_connector(url: &str, ca: &std::path::Path) -> Result<tokio_rustls::TlsConnector, ShipError> {
    use crate::tls_roots::{CaError, read_roots};
    let refused = |source| ShipError::HttpCa {
        url: url.to_owned(),
        source,
    };
    let roots = read_roots(ca).map_err(refused)?;
    if roots.is_empty() {
        return Err(refused(CaError::Empty {
            path: ca.display().to_string(),
        }));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ShipError::HttpUrl {
            url: url.to_owned(),
            message: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        config,
    )))
}

impl HttpTarget {
    fn parse(url: &str, ca: Option<&std::path::Path>) -> Result<Self, ShipError> {
        let bad = |message: &str| ShipError::HttpUrl {
            url: url.to_owned(),
            message: message.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad("expected an http:// or https:// URL")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?.to_string();
        let host = uri
            .host()
            .ok_or_else(|| bad("no host"))?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        let tls = if https {
            let ca = ca.unwrap_or(std::path::Path::new(SYSTEM_CA_FILE));
            let connector = tls_connector(url, ca)?;
            let name = rustls_pki_types::ServerName::try_from(host.clone())
                .map_err(|e| bad(&e.to_string()))?;
            Some((connector, name))
        } else {
            None
        };
        Ok(Self {
            uri,
            host,
            port,
            authority,
            path,
            tls,
        })
    }
}

/// One POST of a gzip'd body; the response status, or why there is none.
async fn post(target: &HttpTarget, body: Bytes) -> Result<http::StatusCode, PostError> {
    let stream = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(PostError::Connect)?;
    match &target.tls {
        None => post_on(target, stream, body).await,
        Some((connector, name)) => {
            let tls = connector
                .connect(name.clone(), stream)
                .await
                .map_err(PostError::Tls)?;
            post_on(target, tls, body).await
        }
    }
}

async fn post_on<S>(
    target: &HttpTarget,
    stream: S,
    body: Bytes,
) -> Result<http::StatusCode, PostError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(PostError::Handshake)?;
    let conn = tokio::spawn(conn);
    let req = Request::post(target.path.as_str())
        .header(header::HOST, target.authority.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_ENCODING, "gzip")
        .header(
            header::USER_AGENT,
            concat!("iamgate/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(body))
        .map_err(PostError::Build)?;
    let result = sender
        .send_request(req)
        .await
        .map(|r| r.status())
        .map_err(PostError::Request);
    conn.abort();
    result
}

/// A batch as OPA's decision-log plugin sends one: a JSON array, gzip'd.
fn gzip_array(lines: &[Vec<u8>]) -> std::io::Result<Bytes> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"[")?;
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            gz.write_all(b",")?;
        }
        gz.write_all(line)?;
    }
    gz.write_all(b"]")?;
    gz.finish().map(Bytes::from)
}

/// Time one upload attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

async fn ship_http(
    target: HttpTarget,
    mut rx: mpsc::Receiver<Vec<u8>>,
    d: Delivery,
    metrics: Metrics,
) {
    let mut carry = None;
    loop {
        let (batch, closed) = next_batch(&mut rx, &mut carry, Vec::len, d).await;
        if !batch.is_empty() {
            deliver_http(&target, &batch, d, &metrics).await;
        }
        if closed {
            break;
        }
    }
}

async fn deliver_http(target: &HttpTarget, batch: &[Vec<u8>], d: Delivery, metrics: &Metrics) {
    let body = match gzip_array(batch) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "decision log: cannot compress a batch");
            metrics.log_ship_dropped("http", "delivery_failed", batch.len());
            return;
        }
    };
    for attempt in 1..=d.retries {
        let outcome = tokio::time::timeout(ATTEMPT_TIMEOUT, post(target, body.clone())).await;
        match outcome {
            Ok(Ok(status)) if status.is_success() => {
                metrics.log_shipped("http", batch.len());
                return;
            }
            Ok(Ok(status)) => {
                tracing::warn!(url = %target.uri, %status, attempt, "decision log upload refused");
            }
            Ok(Err(e)) => {
                tracing::warn!(url = %target.uri, error = %e, attempt, "decision log upload failed")
            }
            Err(_) => tracing::warn!(url = %target.uri, attempt, "decision log upload timed out"),
        }
        metrics.log_ship_failed_attempt("http");
        if attempt < d.retries {
            tokio::time::sleep(backoff(attempt)).await;
        }
    }
    metrics.log_ship_dropped("http", "delivery_failed", batch.len());
}

fn otlp_exporter(
    url: &str,
    ca: Option<&std::path::Path>,
) -> Result<opentelemetry_otlp::LogExporter, ShipError> {
    use opentelemetry_otlp::{WithExportConfig, WithTonicConfig as _};
    let bad = |message: String| ShipError::Otlp {
        url: url.to_owned(),
        message,
    };
    let uri = url
        .parse::<Uri>()
        .map_err(|_| bad("not a URL".to_owned()))?;
    let builder = opentelemetry_otlp::LogExporter::builder()
        .with_tonic()
        .with_endpoint(url)
        .with_timeout(ATTEMPT_TIMEOUT);
    let builder = match uri.scheme_str() {
        Some("http") => builder,
        Some("https") => {
            let ca = ca.unwrap_or(std::path::Path::new(SYSTEM_CA_FILE));
            let pem = std::fs::read(ca)
                .map_err(|e| bad(format!("CA certificates `{}`: {e}", ca.display())))?;
            builder.with_tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
            )
        }
        _ => return Err(bad("expected an http:// or https:// URL".to_owned())),
    };
    let mut exporter = builder.build().map_err(|e| bad(e.to_string()))?;
    use opentelemetry_sdk::logs::LogExporter as _;
    exporter.set_resource(
        &opentelemetry_sdk::Resource::builder()
            .with_service_name("iamgate")
            .build(),
    );
    Ok(exporter)
}

/// Records in one OTLP export at most (besides the byte bound).
const OTLP_MAX_RECORDS: usize = 512;

async fn ship_otlp(
    exporter: opentelemetry_otlp::LogExporter,
    mut rx: mpsc::Receiver<DecisionRecord>,
    d: Delivery,
    metrics: Metrics,
) {
    use opentelemetry::logs::LoggerProvider as _;
    // The provider only creates records here; the exporter is driven below
    // so that batching, retries and drops follow this module's rules.
    let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder().build();
    let logger = provider.logger("iamgate.decision_log");
    let scope = opentelemetry::InstrumentationScope::builder("iamgate.decision_log")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    let mut carry = None;
    // Roughly the JSON size of a record: enough to bound a batch's bytes.
    let size = |r: &DecisionRecord| {
        r.principal.len() + r.action.len() + r.resource.len() + r.reason.len() + 256
    };
    let d = Delivery {
        batch_bytes: d.batch_bytes.min(OTLP_MAX_RECORDS * 256),
        ..d
    };
    loop {
        let (batch, closed) = next_batch(&mut rx, &mut carry, size, d).await;
        if !batch.is_empty() {
            let records: Vec<_> = batch.iter().map(|r| otlp_record(&logger, r)).collect();
            deliver_otlp(&exporter, &records, &scope, d, &metrics).await;
        }
        if closed {
            break;
        }
    }
    let _ = provider.shutdown();
}

fn otlp_record(
    logger: &opentelemetry_sdk::logs::SdkLogger,
    rec: &DecisionRecord,
) -> opentelemetry_sdk::logs::SdkLogRecord {
    use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, Severity};
    let mut r = logger.create_log_record();
    let now = std::time::SystemTime::now();
    r.set_timestamp(now);
    r.set_observed_timestamp(now);
    r.set_severity_number(Severity::Info);
    r.set_severity_text("INFO");
    r.set_event_name("iamgate.decision");
    let body = serde_json::to_string(rec).unwrap_or_default();
    r.set_body(AnyValue::from(body));
    r.add_attribute("iamgate.decision_id", rec.decision_id.clone());
    r.add_attribute("iamgate.decision", rec.decision);
    r.add_attribute("iamgate.revision", rec.revision.clone());
    r.add_attribute("iamgate.frontend", rec.frontend);
    r.add_attribute("iamgate.principal", rec.principal.clone());
    r.add_attribute("iamgate.action", rec.action.clone());
    r.add_attribute("iamgate.resource", rec.resource.clone());
    if let Some(s) = &rec.shadow {
        r.add_attribute("iamgate.shadow.decision", s.decision);
        r.add_attribute("iamgate.shadow.revision", s.revision.clone());
    }
    r
}

async fn deliver_otlp(
    exporter: &opentelemetry_otlp::LogExporter,
    records: &[opentelemetry_sdk::logs::SdkLogRecord],
    scope: &opentelemetry::InstrumentationScope,
    d: Delivery,
    metrics: &Metrics,
) {
    use opentelemetry_sdk::logs::{LogBatch, LogExporter as _};
    let pairs: Vec<_> = records.iter().map(|r| (r, scope)).collect();
    for attempt in 1..=d.retries {
        match exporter.export(LogBatch::new(&pairs)).await {
            Ok(()) => {
                metrics.log_shipped("otlp", records.len());
                return;
            }
            Err(e) => tracing::warn!(error = %e, attempt, "decision log OTLP export failed"),
        }
        metrics.log_ship_failed_attempt("otlp");
        if attempt < d.retries {
            tokio::time::sleep(backoff(attempt)).await;
        }
    }
    metrics.log_ship_dropped("otlp", "delivery_failed", records.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> DecisionRecord {
        let mut ctx = serde_json::Map::new();
        ctx.insert("aws:sourceip".into(), "10.1.2.3".into());
        ctx.insert("aws:requestedregion".into(), "us-east-1".into());
        DecisionRecord {
            decision_id: "d-1".into(),
            time: "t".into(),
            revision: "r".into(),
            frontend: "http",
            principal: "arn:aws:iam::1:user/a".into(),
            action: "ec2:RunInstances".into(),
            resource: "*".into(),
            decision: "allowed",
            reason: "why".into(),
            matched: Vec::new(),
            trace_id: None,
            context: Some(ctx),
            shadow: None,
        }
    }

    #[test]
    fn masks_replace_fields_and_context_keys_case_insensitively() -> Result<(), ShipError> {
        let m = Mask::parse(&["principal".into(), "context.aws:SourceIp".into()])?;
        let mut r = record();
        m.apply(&mut r);
        assert_eq!(r.principal, MASKED);
        let ctx = r.context.unwrap_or_default();
        assert_eq!(ctx["aws:sourceip"], MASKED);
        assert_eq!(ctx["aws:requestedregion"], "us-east-1");
        let mut r = record();
        Mask::parse(&["context".into()])?.apply(&mut r);
        assert!(r.context.is_none());
        assert!(Mask::parse(&["principals".into()]).is_err());
        assert!(Mask::parse(&["context.".into()]).is_err());
        Ok(())
    }

    #[test]
    fn a_batch_is_a_gzipped_json_array() -> Result<(), Box<dyn std::error::Error>> {
        let body = gzip_array(&[b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()])?;
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut out)?;
        let v: serde_json::Value = serde_json::from_str(&out)?;
        assert_eq!(v, serde_json::json!([{"a": 1}, {"b": 2}]));
        Ok(())
    }

    #[tokio::test]
    async fn batches_are_bounded_in_bytes_and_carry_the_overflow() {
        let (tx, mut rx) = mpsc::channel(16);
        for n in [40usize, 40, 40, 10] {
            let _ = tx.send(vec![b'x'; n]).await;
        }
        drop(tx);
        let d = Delivery {
            batch_bytes: 100,
            flush: Duration::from_secs(5),
            retries: 1,
        };
        let mut carry = None;
        let mut sizes = Vec::new();
        loop {
            let (batch, closed) = next_batch(&mut rx, &mut carry, Vec::len, d).await;
            if !batch.is_empty() {
                sizes.push(batch.iter().map(Vec::len).collect::<Vec<_>>());
            }
            if closed {
                break;
            }
        }
        assert_eq!(sizes, [vec![40, 40], vec![40, 10]]);
    }

    /// A CA file that cannot be used is refused at start, naming the flag,
    /// the URL and the file, with the underlying error kept as the source.
    #[test]
    fn an_unusable_ca_file_is_refused_with_its_cause() {
        let dir = std::env::temp_dir().join(format!("iamgate-ship-ca-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let empty = dir.join("empty.pem");
        let _ = std::fs::write(&empty, "not a certificate\n");
        let missing = dir.join("missing.pem");
        let url = "https://127.0.0.1:9/logs";

        let e = HttpTarget::parse(url, Some(&empty)).err();
        let shown = e.as_ref().map(ToString::to_string);
        assert_eq!(
            shown,
            Some(format!(
                "--decision-log-http `{url}`: CA certificates: `{}` holds no certificate",
                empty.display()
            ))
        );
        let e = HttpTarget::parse(url, Some(&missing)).err();
        let source = e
            .as_ref()
            .and_then(|e| std::error::Error::source(e))
            .and_then(std::error::Error::source);
        assert!(source.is_some(), "{e:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(
            backoff(1) >= Duration::from_millis(100) && backoff(1) < Duration::from_millis(130)
        );
        assert!(backoff(3) >= Duration::from_millis(400));
        assert!(backoff(30) <= Duration::from_millis(6250));
        assert!(HttpTarget::parse("ftp://x/", None).is_err());
        assert!(
            HttpTarget::parse("https://x/", Some(std::path::Path::new("/nonexistent"))).is_err()
        );
        assert!(
            HttpTarget::parse("http://127.0.0.1:9/logs", None).is_ok_and(|t| t.path == "/logs")
        );
    }
}
