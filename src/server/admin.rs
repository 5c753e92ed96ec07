//! The admin listener, on its own port: liveness, readiness, status,
//! reload, Prometheus metrics, and decoding of encoded authorization
//! failure messages. Readiness depends only on an active
//! snapshot, never on log sinks or exporters.

use std::net::SocketAddr;
use std::time::SystemTime;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use crate::server::errors::ServeError;
use crate::server::http_util::{Body, error, json as json_response, read_body, text};
use crate::server::state::AppState;

/// Routes one request of the admin listener.
pub async fn handle(state: AppState, req: Request<Incoming>, _peer: SocketAddr) -> Response<Body> {
    let method = req.method().clone();
    match (method, req.uri().path()) {
        (Method::GET, "/healthz") => json_response(StatusCode::OK, b"{\"status\":\"ok\"}".to_vec()),
        (Method::GET, "/readyz") => match state.store.load() {
            Some(s) => json_response(
                StatusCode::OK,
                json!({"status": "ready", "revision": &**s.revision()})
                    .to_string()
                    .into_bytes(),
            ),
            None => error(&ServeError::NotReady),
        },
        (Method::GET, "/v1/status") => status(&state),
        (Method::POST, "/v1/reload") => match state.reload.reload().await {
            Ok(revision) => json_response(
                StatusCode::OK,
                json!({"ok": true, "revision": revision})
                    .to_string()
                    .into_bytes(),
            ),
            Err(e) => json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"ok": false, "error": e,
                       "revision": state.store.load().map(|s| s.revision().to_string())})
                .to_string()
                .into_bytes(),
            ),
        },
        (Method::POST, "/v1/decode-authorization-message") => {
            match decode_message(&state, req).await {
                Ok(r) => r,
                Err(e) => error(&e),
            }
        }
        (Method::GET, "/metrics") => match state.metrics.render() {
            Ok(body) => text(StatusCode::OK, "text/plain; version=0.0.4", body),
            Err(e) => error(&ServeError::Internal(e.to_string())),
        },
        (
            _,
            "/healthz"
            | "/readyz"
            | "/v1/status"
            | "/v1/reload"
            | "/metrics"
            | "/v1/decode-authorization-message",
        ) => error(&ServeError::MethodNotAllowed),
        _ => error(&ServeError::NotFound),
    }
}

/// `POST /v1/decode-authorization-message` `{"message": "..."}`: the
/// decoded document of an encoded authorization failure message (what
/// `sts:DecodeAuthorizationMessage` returns). The admin listener belongs to
/// the key holder; a message that does not authenticate is a 400.
async fn decode_message(
    state: &AppState,
    req: Request<Incoming>,
) -> Result<Response<Body>, ServeError> {
    #[derive(serde::Deserialize)]
    struct DecodeRequest {
        message: String,
    }
    let body = read_body(req, state.config.limits.max_body_bytes).await?;
    let parsed: DecodeRequest = serde_json::from_slice(&body)
        .map_err(|e| ServeError::BadRequest(format!("expected {{\"message\": \"...\"}}: {e}")))?;
    let doc = state
        .config
        .message_key
        .decode(&parsed.message)
        .map_err(|e| ServeError::BadRequest(e.to_string()))?;
    Ok(json_response(StatusCode::OK, doc.to_string().into_bytes()))
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn status(state: &AppState) -> Response<Body> {
    let snapshot = state.store.load();
    let now = SystemTime::now();
    let body = json!({
        "ready": snapshot.is_some(),
        "revision": snapshot.as_ref().map(|s| s.revision().to_string()),
        "source": snapshot.as_ref().map(|s| s.source().to_owned()),
        "loaded_at": snapshot.as_ref().map(|s| unix(s.loaded_at())),
        "snapshot_age_seconds": snapshot.as_ref().map(|s| {
            now.duration_since(s.loaded_at()).map(|d| d.as_secs_f64()).unwrap_or_default()
        }),
        "compile_ms": snapshot.as_ref().map(|s| s.compile_duration().as_secs_f64() * 1000.0),
        "counts": snapshot.as_ref().map(|s| s.stats()),
        "last_reload": state.store.last_attempt(),
        "inventory": state.inventory.status(),
        "uptime_seconds": now.duration_since(state.started).map(|d| d.as_secs_f64()).unwrap_or_default(),
    });
    json_response(StatusCode::OK, body.to_string().into_bytes())
}
