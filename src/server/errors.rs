//! The one place where errors become HTTP and gRPC statuses (and metric
//! reasons). Front-ends return [`ServeError`] and never pick a status code
//! themselves.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

/// A request that could not be decided.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServeError {
    #[error("no policy snapshot is active yet")]
    NotReady,
    #[error("invalid request: {0}")]
    BadRequest(String),
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// An identity was verified but maps to no principal.
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    #[error("request nesting deeper than {0} levels")]
    TooDeep(usize),
    #[error("batch of {got} items exceeds the limit of {limit}")]
    BatchTooLarge { got: usize, limit: usize },
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("unsupported content type: expected application/json")]
    UnsupportedMediaType,
    #[error("request timed out")]
    Timeout,
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServeError {
    /// The HTTP status for this error.
    pub fn http_status(&self) -> StatusCode {
        match self {
            ServeError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            ServeError::BadRequest(_) | ServeError::TooDeep(_) => StatusCode::BAD_REQUEST,
            ServeError::BatchTooLarge { .. } => StatusCode::BAD_REQUEST,
            ServeError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ServeError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ServeError::Forbidden(_) => StatusCode::FORBIDDEN,
            ServeError::NotFound => StatusCode::NOT_FOUND,
            ServeError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ServeError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ServeError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ServeError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The gRPC status for this error.
    pub fn grpc_status(&self) -> tonic::Status {
        let msg = self.to_string();
        match self {
            ServeError::NotReady => tonic::Status::unavailable(msg),
            ServeError::BadRequest(_)
            | ServeError::TooDeep(_)
            | ServeError::BatchTooLarge { .. }
            | ServeError::UnsupportedMediaType => tonic::Status::invalid_argument(msg),
            ServeError::TooLarge(_) => tonic::Status::resource_exhausted(msg),
            ServeError::Unauthenticated(_) => tonic::Status::unauthenticated(msg),
            ServeError::Forbidden(_) => tonic::Status::permission_denied(msg),
            ServeError::NotFound => tonic::Status::not_found(msg),
            ServeError::MethodNotAllowed => tonic::Status::unimplemented(msg),
            ServeError::Timeout => tonic::Status::deadline_exceeded(msg),
            ServeError::Internal(_) => tonic::Status::internal(msg),
        }
    }

    /// The bounded `reason` label for `iamgate_request_errors_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            ServeError::NotReady => "not_ready",
            ServeError::BadRequest(_) => "bad_request",
            ServeError::Unauthenticated(_) => "unauthenticated",
            ServeError::Forbidden(_) => "forbidden",
            ServeError::TooLarge(_) => "too_large",
            ServeError::TooDeep(_) => "too_deep",
            ServeError::BatchTooLarge { .. } => "batch_too_large",
            ServeError::NotFound => "not_found",
            ServeError::MethodNotAllowed => "method_not_allowed",
            ServeError::UnsupportedMediaType => "unsupported_media_type",
            ServeError::Timeout => "timeout",
            ServeError::Internal(_) => "internal",
        }
    }

    /// The JSON error body for HTTP front-ends.
    pub fn http_body(&self) -> Vec<u8> {
        serde_json::json!({"error": {"code": self.reason(), "message": self.to_string()}})
            .to_string()
            .into_bytes()
    }
}

/// Marks an error response for its listener to count, with the metric
/// reason ([`crate::server::router::ErrorCounter`]).
#[derive(Debug, Clone, Copy)]
pub struct Uncounted(pub &'static str);

/// What a handler's error answers over HTTP: [`ServeError::http_status`]
/// and [`ServeError::http_body`], marked for counting except `NotReady`,
/// which the decision path counts where it finds it.
impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        let mut r = crate::server::http_util::error(&self).map(axum::body::Body::new);
        if !matches!(self, ServeError::NotReady) {
            r.extensions_mut().insert(Uncounted(self.reason()));
        }
        r
    }
}

/// Checks JSON nesting depth before parsing, so deep input is refused
/// cheaply and clearly.
pub fn check_depth(bytes: &[u8], limit: usize) -> Result<(), ServeError> {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return Err(ServeError::TooDeep(limit));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}
