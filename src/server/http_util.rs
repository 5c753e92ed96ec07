//! Shared plumbing for the hyper listeners: bounded body reading, JSON
//! responses, and an accept loop with graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::server::errors::ServeError;
use crate::server::tls::ReloadingAcceptor;

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Response body type of every HTTP listener.
pub type Body = Full<Bytes>;

/// Reads a request body up to `limit` bytes.
pub async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, ServeError> {
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
pub async fn read_json_body(
    req: Request<Incoming>,
    limits: crate::server::config::Limits,
) -> Result<Bytes, ServeError> {
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

/// Serves HTTP/1.1 and HTTP/2 (h2c, or negotiated over TLS when `tls` is
/// set) on `listener` until `shutdown` flips, then drains in-flight
/// connections (bounded by `drain`).
pub async fn serve<F, Fut>(
    listener: TcpListener,
    handler: F,
    mut shutdown: watch::Receiver<bool>,
    max_headers: usize,
    drain: Duration,
    tls: Option<ReloadingAcceptor>,
) where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().max_headers(max_headers);
    builder
        .http2()
        .max_header_list_size(u32::try_from(max_headers * 8192).unwrap_or(u32::MAX));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let service = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req, peer).await) }
                });
                let watcher = graceful.watcher();
                let builder = builder.clone();
                match tls.clone() {
                    None => {
                        tokio::spawn(async move {
                            let conn = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service);
                            let _ = watcher.watch(conn.into_owned()).await;
                        });
                    }
                    Some(acceptor) => {
                        tokio::spawn(async move {
                            // A slow or silent client cannot hold a task forever.
                            let handshake =
                                tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                            let Ok(Ok(tls_stream)) = handshake.await else { return };
                            let conn = builder
                                .serve_connection_with_upgrades(TokioIo::new(tls_stream), service);
                            let _ = watcher.watch(conn.into_owned()).await;
                        });
                    }
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(drain, graceful.shutdown()).await;
}
