//! Shared plumbing for every listener (HTTP/JSON, admin and gRPC): the
//! connection loop with its limits and timeouts and graceful shutdown, plus
//! bounded body reading and JSON responses for the HTTP handlers.
//!
//! Every connection of every listener is held to [`ConnLimits`]: admitted
//! within the listener's connection limit ([`super::io::Acceptor`]), it
//! must complete its TLS handshake and send its first request's headers
//! within the header timeout (hyper alone would wait forever for a client
//! that sends a byte at a time, or nothing, before choosing HTTP/1.1 or
//! HTTP/2), each later HTTP/1.1 request's headers within the same time
//! (hyper's `header_read_timeout`), and it is closed gracefully after the
//! idle timeout without a new request. HTTP/2 pings every 30 s close
//! connections whose peer stopped answering.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::server::errors::ServeError;
use crate::server::io::{Acceptor, ConnLimits, NoVectored};
use crate::server::streams::{ConnStreams, Served};
use crate::server::tls::ReloadingAcceptor;

/// HTTP/2 PING interval on idle connections, and how long to wait for the
/// answer before closing the connection.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent streams allowed on one HTTP/2 connection.
const MAX_CONCURRENT_STREAMS: u32 = 1024;
/// How long a connection closed for idleness may take to say goodbye
/// (HTTP/2 GOAWAY and its ping) before it is dropped.
const GOODBYE: Duration = Duration::from_secs(5);

/// Response body type of every HTTP listener.
pub type Body = Full<Bytes>;

/// Reads a request body up to `limit` bytes.
pub async fn read_body<B>(req: Request<B>, limit: usize) -> Result<Bytes, ServeError>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > limit
    {
        return Err(ServeError::TooLarge(limit));
    }
    let body = Limited::new(req.into_body(), limit);
    match body.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(ServeError::TooLarge(limit))
            } else {
                Err(ServeError::BadRequest(format!("cannot read body: {e}")))
            }
        }
    }
}

/// Reads a JSON request body within the limits: content type, size, time
/// to receive, and nesting depth.
pub async fn read_json_body<B>(
    req: Request<B>,
    limits: crate::server::config::Limits,
) -> Result<Bytes, ServeError>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(ServeError::UnsupportedMediaType);
    }
    let body = tokio::time::timeout(
        limits.request_timeout,
        read_body(req, limits.max_body_bytes),
    )
    .await
    .map_err(|_| ServeError::Timeout)??;
    crate::server::errors::check_depth(&body, limits.max_depth)?;
    Ok(body)
}

/// Parses a JSON body into `T`, the whole body and nothing after it. A
/// value of the wrong shape is a 400 naming where it is, as a JSONPath
/// (`$` for the root, `$.items[1].action` below it). The one helper of
/// every JSON listener.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ServeError> {
    // Tracking the path costs on every field of every request; it is only
    // needed to say where a refused body went wrong, so a body that fails
    // is read a second time, with the path (at most twice the work, up to
    // where it fails).
    if let Ok(v) = serde_json::from_slice(body) {
        return Ok(v);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let v = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = json_path(e.path());
        ServeError::BadRequest(format!("at `{path}`: {}", e.inner()))
    })?;
    de.end()
        .map_err(|e| ServeError::BadRequest(e.to_string()))?;
    Ok(v)
}

/// `serde_path_to_error`'s path as JSONPath: its `Display` writes `.` for
/// the root, which would read `$..`.
fn json_path(path: &serde_path_to_error::Path) -> String {
    if path.iter().next().is_none() {
        "$".to_owned()
    } else {
        format!("$.{path}")
    }
}

/// A JSON response.
pub fn json(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

/// A plain-text response.
pub fn text(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r
}

/// The error response for `e`.
pub fn error(e: &ServeError) -> Response<Body> {
    json(e.http_status(), e.http_body())
}

/// How a listener serves its connections.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Most request headers (HTTP/1.1), and with 8 KiB each the HTTP/2
    /// header list size.
    pub max_headers: usize,
    /// How long in-flight requests may finish after shutdown starts.
    pub drain: Duration,
    /// TLS (ALPN `h2` and `http/1.1`); `None` serves plain text.
    pub tls: Option<ReloadingAcceptor>,
    /// Connection limit and timeouts.
    pub limits: ConnLimits,
    /// HTTP/2 only (gRPC); otherwise HTTP/1.1 and HTTP/2.
    pub http2_only: bool,
}

/// Serves HTTP/1.1 and HTTP/2 with `handler` (see [`serve_with`]).
pub async fn serve<F, Fut>(
    listener: TcpListener,
    handler: F,
    shutdown: watch::Receiver<bool>,
    options: ServeOptions,
) where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let make = move |peer: SocketAddr| {
        let handler = handler.clone();
        hyper::service::service_fn(move |req| {
            let handler = handler.clone();
            async move { Ok::<_, Infallible>(handler(req, peer).await) }
        })
    };
    serve_with(listener, make, shutdown, options).await;
}

/// Serves the connections of `listener` with the service `make` builds for
/// each peer, within `options.limits`, until `shutdown` flips; then stops
/// accepting and drains the connections (bounded by `options.drain`).
pub async fn serve_with<M, S, B>(
    listener: TcpListener,
    make: M,
    shutdown: watch::Receiver<bool>,
    options: ServeOptions,
) where
    M: Fn(SocketAddr) -> S + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limits = options.limits;
    let mut acceptor = Acceptor::new(listener, limits.max_connections);
    let mut stop = pin!(stopped(shutdown.clone()));
    loop {
        tokio::select! {
            admitted = acceptor.accept() => {
                let stream = admitted.conn;
                let _ = stream.set_nodelay(true);
                let accepted = Instant::now();
                let activity = Arc::new(Activity::default());
                let service = Tracked {
                    inner: make(admitted.peer),
                    activity: activity.clone(),
                    since: accepted,
                };
                // Each connection's HTTP/2 streams run in its own task
                // (`server::streams`), so its builder has its own executor.
                let streams = ConnStreams::default();
                let builder = builder(&options, streams.clone());
                let (tls, shutdown) = (options.tls.clone(), shutdown.clone());
                let (permit, peer) = (admitted.permit, admitted.peer);
                tokio::spawn(async move {
                    let _permit = permit;
                    let watch = Watch { activity: &activity, accepted, limits, shutdown };
                    match tls {
                        None => {
                            let io = TokioIo::new(NoVectored(stream));
                            let conn = builder.serve_connection(io, service);
                            watch.drive(Served::new(conn, streams)).await;
                        }
                        Some(acceptor) => {
                            // A slow or silent client cannot hold a task: the
                            // handshake is part of the first request's time.
                            let handshake = tokio::time::timeout_at(
                                accepted + limits.header_read_timeout,
                                acceptor.accept(stream),
                            );
                            let tls_stream = match handshake.await {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::debug!(client.ip = %peer.ip(), error = %e, "TLS handshake refused");
                                    return;
                                }
                                Err(_) => return,
                            };
                            let io = TokioIo::new(NoVectored(tls_stream));
                            let conn = builder.serve_connection(io, service);
                            watch.drive(Served::new(conn, streams)).await;
                        }
                    }
                });
            }
            () = &mut stop => break,
        }
    }
    acceptor.drain(options.drain).await;
}

/// The builder of one connection of a listener, its HTTP/2 streams handed
/// to `streams`.
fn builder(options: &ServeOptions, streams: ConnStreams) -> auto::Builder<ConnStreams> {
    let mut builder = auto::Builder::new(streams);
    if options.http2_only {
        builder = builder.http2_only();
    }
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.limits.header_read_timeout)
        .max_headers(options.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(
            u32::try_from(options.max_headers.saturating_mul(8192)).unwrap_or(u32::MAX),
        );
    builder
}

/// Resolves once `shutdown` is true (or its sender is gone).
pub async fn stopped(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// When a connection's requests arrived: milliseconds after it was
/// accepted, plus one (0: no request yet).
#[derive(Debug, Default)]
struct Activity {
    last_request: AtomicU64,
}

/// A service that notes when each request arrives (its headers are read
/// by then), for the connection's idle timeout.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
    since: Instant,
}

impl<S, R> hyper::service::Service<R> for Tracked<S>
where
    S: hyper::service::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, req: R) -> Self::Future {
        let ms = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.activity
            .last_request
            .store(ms.saturating_add(1), Ordering::Relaxed);
        self.inner.call(req)
    }
}

/// Watches one connection: its first-request and idle deadlines, and the
/// server's shutdown.
struct Watch<'a> {
    activity: &'a Activity,
    accepted: Instant,
    limits: ConnLimits,
    shutdown: watch::Receiver<bool>,
}

impl Watch<'_> {
    /// When the connection becomes idle: `header_read_timeout` after it
    /// was accepted until a first request arrives, then `idle_timeout`
    /// after the latest request.
    fn deadline(&self) -> Instant {
        match self.activity.last_request.load(Ordering::Relaxed) {
            0 => self.accepted + self.limits.header_read_timeout,
            ms => {
                self.accepted
                    + Duration::from_millis(ms.saturating_sub(1))
                    + self.limits.idle_timeout
            }
        }
    }

    /// Whether the connection has not made a request yet.
    fn never_requested(&self) -> bool {
        self.activity.last_request.load(Ordering::Relaxed) == 0
    }

    /// Runs `conn` to its end: closed when idle (see [`Watch::deadline`])
    /// or when the server shuts down. A connection that never made a
    /// request has nothing in flight and is dropped (it may still be
    /// choosing its protocol, or in the HTTP/2 handshake, which a graceful
    /// close would wait for); others close gracefully, requests in flight
    /// finishing. The listener bounds the whole drain at shutdown.
    async fn drive<C>(self, mut conn: Served<C>)
    where
        C: GracefulConnection,
    {
        let mut stop = pin!(stopped(self.shutdown.clone()));
        // The first look comes at the earlier of both deadlines: a request
        // may arrive before the first one passes.
        let first = self
            .limits
            .header_read_timeout
            .min(self.limits.idle_timeout);
        let idle = tokio::time::sleep_until(self.accepted + first);
        let mut idle = pin!(idle);
        loop {
            tokio::select! {
                () = &mut conn => return,
                () = &mut idle => {
                    let deadline = self.deadline();
                    if deadline > Instant::now() {
                        idle.as_mut().reset(deadline);
                        continue;
                    }
                    if self.never_requested() {
                        return;
                    }
                    conn.graceful_shutdown();
                    let _ = tokio::time::timeout(GOODBYE, &mut conn).await;
                    return;
                }
                () = &mut stop => {
                    if self.never_requested() {
                        return;
                    }
                    conn.graceful_shutdown();
                    (&mut conn).await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Shape {
        items: Vec<Item>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        action: String,
    }

    fn message(body: &[u8]) -> String {
        match parse_json::<Shape>(body) {
            Err(ServeError::BadRequest(m)) => m,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    /// Issue 12: the root is `$`, not `$..`; deeper paths are JSONPath.
    #[test]
    fn error_paths_are_jsonpath() {
        let root = message(br#""x""#);
        assert!(root.starts_with("at `$`: "), "{root}");
        let root = message(br#"{"other": 1}"#);
        assert!(
            root.starts_with("at `$.other`: unknown field `other`"),
            "{root}"
        );
        let deep = message(br#"{"items": [{"action": "a"}, {"action": 1}]}"#);
        assert!(deep.starts_with("at `$.items[1].action`: "), "{deep}");
        let trailing = message(br#"{"items": []} x"#);
        assert!(trailing.contains("trailing characters"), "{trailing}");
        assert!(parse_json::<Shape>(br#"{"items": [{"action": "a"}]}"#).is_ok());
    }
}
