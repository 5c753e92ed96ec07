//! The admin listener, on its own port: liveness, readiness, status and
//! Prometheus metrics, so that probes and scrapers can reach it
//! in-cluster. It serves nothing privileged: no endpoint here changes what
//! iamgate believes or reveals a request's context (reloads, inventory
//! writes and message decoding are on the authenticated control listener,
//! [`super::control`]); `/v1/status` reports versions and counts only.
//! Readiness depends only on an active snapshot, never on log sinks or
//! exporters.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use http::{Response, StatusCode};
use serde_json::json;

use crate::server::errors::ServeError;
use crate::server::http_util::{Body, error, json as json_response, text};
use crate::server::router::with_fallbacks;
use crate::server::state::AppState;

/// The routes of the admin listener (served by [`crate::server::router`]).
pub fn router(state: Arc<AppState>) -> Router {
    with_fallbacks(
        Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/v1/status", get(status))
            .route("/metrics", get(metrics)),
    )
    .with_state(state)
}

async fn healthz() -> Response<Body> {
    json_response(StatusCode::OK, b"{\"status\":\"ok\"}".to_vec())
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response<Body> {
    match state.store.load() {
        Some(s) => json_response(
            StatusCode::OK,
            json!({"status": "ready", "revision": &**s.revision()})
                .to_string()
                .into_bytes(),
        ),
        None => error(&ServeError::NotReady),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Result<Response<Body>, ServeError> {
    let body = state
        .metrics
        .render()
        .map_err(|e| ServeError::Internal(e.to_string()))?;
    Ok(text(StatusCode::OK, "text/plain; version=0.0.4", body))
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// `GET /v1/status`: revisions, versions, counts and reload outcome
/// (here and on the control listener).
pub(crate) async fn status(State(state): State<Arc<AppState>>) -> Response<Body> {
    let snapshot = state.store.load();
    let now = SystemTime::now();
    let body = json!({
        "ready": snapshot.is_some(),
        "revision": snapshot.as_ref().map(|s| s.revision().to_string()),
        "manifest_revision": snapshot.as_ref().and_then(|s| s.manifest_revision().map(str::to_owned)),
        "source": snapshot.as_ref().map(|s| s.source().to_owned()),
        "loaded_at": snapshot.as_ref().map(|s| unix(s.loaded_at())),
        "snapshot_age_seconds": snapshot.as_ref().map(|s| {
            now.duration_since(s.loaded_at()).map(|d| d.as_secs_f64()).unwrap_or_default()
        }),
        "compile_ms": snapshot.as_ref().map(|s| s.compile_duration().as_secs_f64() * 1000.0),
        "counts": snapshot.as_ref().map(|s| s.stats()),
        "last_reload": state.store.last_attempt(),
        "uptime_seconds": now.duration_since(state.started).map(|d| d.as_secs_f64()).unwrap_or_default(),
        "bundle_source": state.store.source_status(),
    });
    let mut body = body;
    // Issue 15: the last reload's decision diff and the shadow snapshot.
    let sample = state.diff_gate.sample();
    if sample.enabled() {
        body["decision_sample"] = json!({"kept": sample.len(), "capacity": sample.capacity()});
    }
    if let Some(d) = state.diff_gate.last() {
        body["decision_diff"] = json!(d);
    }
    if let Some(s) = state.shadow.status() {
        body["shadow"] = s;
    }
    // Issue 12: the services behind the seam and the mapping names routes
    // select them by.
    body["services"] = state
        .services
        .iter()
        .map(|s| json!({"name": s.name(), "mapping": s.mapping()}))
        .collect::<Vec<_>>()
        .into();
    // Access keys: counts only (key ids and secrets stay out of status).
    if state.config.credentials.is_some() {
        let (keys, active) = state.credentials.load().counts();
        body["credentials"] = json!({"keys": keys, "active": active});
    }
    // Issue 13: session key ids (not secret) and the last refused re-read.
    if let Some(keys) = &state.sessions {
        body["session_keys"] = json!({
            "key_ids": keys.key_ids(),
            "sealing_key_id": keys.sealing_key_id(),
            "generation": keys.generation(),
            "refused": keys.refused(),
        });
    }
    add_service_statuses(&mut body, state.services.iter().filter_map(|s| s.status()));
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

/// Adds each service's live state under the key it names, once every key
/// of the server's own is written: a key already taken (by the server or
/// an earlier service) keeps its value, so a service cannot change what
/// `/v1/status` says about the snapshot, the reloads or the keys.
fn add_service_statuses(
    body: &mut serde_json::Value,
    statuses: impl IntoIterator<Item = (&'static str, serde_json::Value)>,
) {
    let Some(map) = body.as_object_mut() else {
        return;
    };
    for (key, status) in statuses {
        if map.contains_key(key) {
            tracing::warn!(
                key,
                "a service's status names a key /v1/status already has; left out"
            );
            continue;
        }
        map.insert(key.to_owned(), status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_status_never_replaces_a_key_already_written() {
        let mut body = json!({"revision": "r1", "ready": true});
        add_service_statuses(
            &mut body,
            [
                ("inventory", json!({"resources": 3})),
                ("revision", json!("forged")),
                ("inventory", json!({"resources": 99})),
            ],
        );
        assert_eq!(
            body,
            json!({"revision": "r1", "ready": true, "inventory": {"resources": 3}})
        );
    }
}
