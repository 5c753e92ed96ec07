//! iamgate's HTTP/JSON listeners on axum: the extractors every JSON route
//! shares (a body within the request limits, parsed with its JSONPath on
//! refusal; the caller's trace context), and serving a `Router` on the
//! shared connection loop ([`http_util::serve_with`]: connection limit,
//! header and idle timeouts, TLS, graceful drain) with the errors its
//! handlers return counted as the listener's front door's.
//!
//! Routing (paths, methods, 404 and 405) is axum's; what an error looks
//! like is [`ServeError`]'s alone (`errors.rs`): a handler returns it and
//! its `IntoResponse` writes iamgate's JSON error and marks the response
//! for counting. Nothing here decides, maps or knows a route.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, FromRequest, FromRequestParts};
use axum::response::Response;
use bytes::Bytes;
use http::Request;
use http::request::Parts;
use hyper::body::Incoming;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::server::config::Limits;
use crate::server::errors::{ServeError, Uncounted};
use crate::server::http_util::{self, ServeOptions};
use crate::server::state::AppState;
use crate::telemetry::{Frontend, Metrics};

impl FromRef<Arc<AppState>> for Limits {
    fn from_ref(state: &Arc<AppState>) -> Self {
        state.config.limits
    }
}

/// A JSON request body read within the listener's [`Limits`]: content
/// type, size, time to receive and nesting depth
/// ([`http_util::read_json_body`]).
#[derive(Debug)]
pub struct JsonBody(pub Bytes);

impl<S> FromRequest<S> for JsonBody
where
    S: Send + Sync,
    Limits: FromRef<S>,
{
    type Rejection = ServeError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ServeError> {
        http_util::read_json_body(req, Limits::from_ref(state))
            .await
            .map(JsonBody)
    }
}

/// A JSON request body within the limits, parsed into `T`: the whole body
/// and nothing after it; a refusal names where, as a JSONPath
/// ([`http_util::parse_json`]).
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    Limits: FromRef<S>,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ServeError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ServeError> {
        let JsonBody(body) = JsonBody::from_request(req, state).await?;
        http_util::parse_json(&body).map(Json)
    }
}

/// The caller's W3C trace context (`traceparent`), as received, for the
/// decision path; `None` when absent or not text.
#[derive(Debug)]
pub struct TraceParent(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for TraceParent {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(TraceParent(
            parts
                .headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ))
    }
}

/// Where a listener counts the errors its handlers return
/// (`iamgate_request_errors_total`).
#[derive(Clone)]
pub struct ErrorCounter {
    pub metrics: Metrics,
    pub frontend: Frontend,
}

impl ErrorCounter {
    /// Counts the error `response` carries, if any (see
    /// [`ServeError`]'s `IntoResponse`).
    pub fn record(&self, response: &Response) {
        if let Some(Uncounted(reason)) = response.extensions().get::<Uncounted>() {
            self.metrics.request_error(self.frontend, reason);
        }
    }
}

/// Where a request of `router` failed to route: 404 and 405 as iamgate's
/// errors, so they are shaped and counted as every other.
pub fn with_fallbacks<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .fallback(|| async { ServeError::NotFound })
        .method_not_allowed_fallback(|| async { ServeError::MethodNotAllowed })
}

/// Serves `router` on `listener` until `shutdown` flips, then drains (see
/// [`http_util::serve_with`]); the errors its handlers return are counted
/// by `errors` when given.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    errors: Option<ErrorCounter>,
    shutdown: watch::Receiver<bool>,
    options: ServeOptions,
) {
    let make = move |_peer: SocketAddr| {
        let errors = errors.clone();
        let service = ServiceExt::<Request<Incoming>>::map_response(
            router.clone(),
            move |response: Response| {
                if let Some(errors) = &errors {
                    errors.record(&response);
                }
                response
            },
        );
        TowerToHyperService::new(service)
    };
    http_util::serve_with(listener, make, shutdown, options).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use http::{Method, StatusCode};

    async fn call(router: &Router, method: Method, uri: &str, body: &str) -> (StatusCode, String) {
        let req = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_owned()))
            .unwrap();
        let response = router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Shape {
        action: String,
    }

    fn limits() -> Limits {
        Limits {
            max_body_bytes: 64,
            ..Limits::default()
        }
    }

    fn router() -> Router {
        with_fallbacks(Router::new().route(
            "/echo",
            post(|Json(s): Json<Shape>| async move { s.action }),
        ))
        .with_state(limits())
    }

    /// Routing failures, limits and parse refusals are iamgate's JSON
    /// errors with their codes; a refusal names its JSONPath.
    #[tokio::test]
    async fn refusals_are_iamgate_errors() {
        let r = router();
        assert_eq!(
            call(&r, Method::POST, "/echo", r#"{"action":"a"}"#).await,
            (StatusCode::OK, "a".to_owned())
        );
        for (method, uri, body, status, code) in [
            (Method::POST, "/nope", "{}", 404, "not_found"),
            (Method::POST, "/echo/", "{}", 404, "not_found"),
            (Method::GET, "/echo", "", 405, "method_not_allowed"),
            (Method::POST, "/echo", r#"{"action":1}"#, 400, "bad_request"),
            (Method::POST, "/echo", &"x".repeat(65), 413, "too_large"),
        ] {
            let (got, text) = call(&r, method, uri, body).await;
            assert_eq!(got.as_u16(), status, "{uri}: {text}");
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["error"]["code"], code, "{uri}: {text}");
        }
        let (_, text) = call(&r, Method::POST, "/echo", r#"{"action":1}"#).await;
        assert!(text.contains("at `$.action`"), "{text}");
    }

    /// Errors the handlers return are marked for counting; not-ready is
    /// counted where it is found (the decision path), not again here.
    #[test]
    fn errors_are_marked_for_counting_except_not_ready() {
        use axum::response::IntoResponse as _;
        let r = ServeError::BadRequest("x".into()).into_response();
        assert_eq!(
            r.extensions().get::<Uncounted>().map(|u| u.0),
            Some("bad_request")
        );
        let r = ServeError::NotReady.into_response();
        assert!(r.extensions().get::<Uncounted>().is_none());
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
