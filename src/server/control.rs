//! The control listener (`--control-listen`): the one authenticated surface
//! for what changes what iamgate believes or reveals what it was asked.
//!
//! - Inventory writes and reads: `POST /v1/inventory`,
//!   `GET /v1/inventory/{id}`, `POST /v1/inventory/cli` and the gRPC
//!   service `iamgate.v1.Inventory` ([`super::inventory_api`]), on the same
//!   port (a request whose content type is `application/grpc` is gRPC).
//! - `POST /v1/reload`, and `POST /v1/decode-authorization-message` (the
//!   decoded message holds the request's context).
//! - `GET /v1/status`, as on the admin listener.
//! - `POST /v1/shadow/promote`: the shadow snapshot becomes the active one;
//!   `POST /v1/shadow/reload`: the shadow's source is read again.
//!
//! Every request is authenticated before it is routed: a bearer token
//! (`authorization: Bearer <token>`, compared with the one in
//! `--control-token-file` in constant time; the file is re-read when it
//! changes and on SIGHUP), and/or a client certificate verified against
//! `--control-client-ca` during the TLS handshake (a connection without one
//! never completes). With both configured both are required; with neither
//! the listener is not started (the server refuses to start). A refusal is
//! HTTP 401 or gRPC UNAUTHENTICATED, before the body is read.
//!
//! The decision listeners (HTTP/JSON, gRPC, ext_authz) and the admin
//! listener serve none of this: there, these paths are 404 and the
//! Inventory service is UNIMPLEMENTED, because the protected application
//! (or an SSRF in it) can reach them, and sharing loopback with it in a
//! pod is no authentication.

use std::convert::Infallible;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::routing::{get, post};
use http::{HeaderMap, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::codegen::Service as _;
use tower::ServiceExt as _;

use crate::server::errors::ServeError;
use crate::server::grpc_api::pb::inventory_server::InventoryServer;
use crate::server::http_util::{self, ServeOptions, json as json_response};
use crate::server::inventory_api::{self, InventoryService};
use crate::server::io::ConnLimits;
use crate::server::reload::ReloadError;
use crate::server::router::{ErrorCounter, JsonBody, with_fallbacks};
use crate::server::state::AppState;
use crate::server::tls::{ReloadingAcceptor, TlsError, TlsFiles};
use crate::telemetry::Frontend;

/// Shortest bearer token accepted.
const MIN_TOKEN_LEN: usize = 16;
/// Largest token file read.
const MAX_TOKEN_FILE: u64 = 4096;
/// How often the token file is re-read.
const TOKEN_POLL: Duration = Duration::from_secs(2);
/// Control clients are a few operators and control-plane services.
const MAX_CONNECTIONS: usize = 64;
/// Time allowed for a TLS handshake and the first request's headers, and
/// for each later request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The gRPC service served here.
const INVENTORY_PREFIX: &str = "/iamgate.v1.Inventory/";

/// Settings of the control listener.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    pub listen: SocketAddr,
    /// File holding the bearer token.
    pub token_file: Option<PathBuf>,
    /// TLS for the listener; with `client_ca`, client certificates are
    /// required and authenticate.
    pub tls: Option<TlsFiles>,
}

/// Why the control listener cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(
        "the control listener needs authentication: --control-token-file, or \
         --control-client-ca (with --control-tls-cert and --control-tls-key)"
    )]
    NoAuthentication,
    #[error("control token file `{path}`: {source}")]
    Token { path: String, source: TokenError },
    #[error("control listener TLS: {0}")]
    Tls(#[from] TlsError),
}

// ── Bearer token ────────────────────────────────────────────────────────

/// The bearer token, from a file that is re-read when it changes. Only its
/// SHA-256 digest is kept.
#[derive(Debug, Clone)]
pub struct TokenFile {
    path: PathBuf,
    digest: Arc<ArcSwapOption<[u8; 32]>>,
}

/// Why a control token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Read(#[source] std::io::Error),
    #[error("not a regular file")]
    NotFile,
    #[error("larger than {MAX_TOKEN_FILE} bytes")]
    TooLarge,
    #[error("the token is shorter than {MIN_TOKEN_LEN} characters")]
    TooShort,
    #[error("the token must be printable ASCII without spaces")]
    NotPrintable,
}

fn token_err(path: &Path, source: TokenError) -> ControlError {
    ControlError::Token {
        path: path.display().to_string(),
        source,
    }
}

/// Reads a token file: one token of printable ASCII (no spaces), at least
/// [`MIN_TOKEN_LEN`] long; surrounding whitespace (a final newline) is
/// ignored.
fn read_token(path: &Path) -> Result<[u8; 32], ControlError> {
    use std::os::unix::fs::PermissionsExt as _;
    let file = std::fs::File::open(path).map_err(|e| token_err(path, TokenError::Read(e)))?;
    let meta = file
        .metadata()
        .map_err(|e| token_err(path, TokenError::Read(e)))?;
    if !meta.is_file() {
        return Err(token_err(path, TokenError::NotFile));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "the control token file is readable by other users");
    }
    let mut bytes = Vec::new();
    file.take(MAX_TOKEN_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| token_err(path, TokenError::Read(e)))?;
    if bytes.len() as u64 > MAX_TOKEN_FILE {
        return Err(token_err(path, TokenError::TooLarge));
    }
    let token = bytes.trim_ascii();
    if token.len() < MIN_TOKEN_LEN {
        return Err(token_err(path, TokenError::TooShort));
    }
    if !token.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(token_err(path, TokenError::NotPrintable));
    }
    Ok(Sha256::digest(token).into())
}

/// Equality of two digests in time independent of where they differ.
/// Comparing digests (not the tokens) already keeps a caller from learning
/// a token's prefix; the fold keeps the comparison itself uniform.
fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl TokenFile {
    /// Reads the token now; fails if the file is unusable.
    pub fn open(path: &Path) -> Result<Self, ControlError> {
        let digest = read_token(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            digest: Arc::new(ArcSwapOption::from_pointee(digest)),
        })
    }

    /// Re-reads the file. A file that became unusable revokes the token
    /// (every request is refused until it is fixed): failing closed.
    pub fn reload(&self) {
        match read_token(&self.path) {
            Ok(digest) => {
                let changed = self.digest.load().as_deref() != Some(&digest);
                if changed {
                    self.digest.store(Some(Arc::new(digest)));
                    tracing::info!(path = %self.path.display(), "control token reloaded");
                }
            }
            Err(e) => {
                if self.digest.load().is_some() {
                    tracing::error!(error = %e, "control token unusable; refusing every control request until it is fixed");
                }
                self.digest.store(None);
            }
        }
    }

    /// Re-reads the file every `interval` for as long as the runtime runs.
    fn watch(&self, interval: Duration) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let file = me.clone();
                let _ = tokio::task::spawn_blocking(move || file.reload()).await;
            }
        });
    }

    fn accepts(&self, presented: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        self.digest
            .load()
            .as_deref()
            .is_some_and(|d| digests_equal(d, &presented))
    }
}

/// The token of an `authorization: Bearer <token>` header (the scheme is
/// case-insensitive); exactly one such header.
fn bearer(headers: &HeaderMap) -> Result<&[u8], ServeError> {
    let refuse = || {
        ServeError::Unauthenticated(
            "expected one `authorization: Bearer <token>` header".to_owned(),
        )
    };
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(refuse());
    };
    let value = value.as_bytes();
    let split = value.iter().position(|b| *b == b' ').ok_or_else(refuse)?;
    let (scheme, rest) = value.split_at(split);
    let token = rest.trim_ascii();
    if !scheme.eq_ignore_ascii_case(b"bearer") || token.is_empty() {
        return Err(refuse());
    }
    Ok(token)
}

// ── Authentication ──────────────────────────────────────────────────────

/// What a control request must present.
#[derive(Debug, Clone)]
pub struct Authenticator {
    token: Option<TokenFile>,
    /// Client certificates are required (and were verified during the
    /// handshake of every connection that reaches a handler).
    client_certificates: bool,
}

impl Authenticator {
    /// Checks one request's credentials.
    fn check(&self, headers: &HeaderMap) -> Result<(), ServeError> {
        match &self.token {
            Some(token) => {
                let presented = bearer(headers)?;
                if token.accepts(presented) {
                    Ok(())
                } else {
                    Err(ServeError::Unauthenticated(
                        "the bearer token is not accepted".to_owned(),
                    ))
                }
            }
            None if self.client_certificates => Ok(()),
            // Not reachable from `Control::new`; kept so that a missing
            // credential can never mean "open".
            None => Err(ServeError::Unauthenticated(
                "no authentication is configured".to_owned(),
            )),
        }
    }
}

// ── The listener ────────────────────────────────────────────────────────

/// The control listener, ready to serve.
#[derive(Clone)]
pub struct Control {
    state: Arc<AppState>,
    auth: Authenticator,
    tls: Option<ReloadingAcceptor>,
    inventory: InventoryServer<InventoryService>,
    /// The HTTP routes, behind authentication.
    http: Router,
    errors: ErrorCounter,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("auth", &self.auth)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Control {
    /// Checks the configuration and loads its credentials: a token file
    /// that does not read, TLS files that do not load, or no
    /// authentication at all refuse to start.
    pub fn new(state: AppState, config: &ControlConfig) -> Result<Self, ControlError> {
        let client_certificates = config.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
        let token = config
            .token_file
            .as_deref()
            .map(TokenFile::open)
            .transpose()?;
        if token.is_none() && !client_certificates {
            return Err(ControlError::NoAuthentication);
        }
        if let Some(t) = &token {
            t.watch(TOKEN_POLL);
        }
        let tls = match &config.tls {
            Some(files) => Some(ReloadingAcceptor::start(
                files.clone(),
                &[b"h2", b"http/1.1"],
                Duration::from_secs(2),
            )?),
            None => None,
        };
        if tls.is_none() && !config.listen.ip().is_loopback() {
            tracing::warn!(listen = %config.listen, "the control listener is plaintext on a non-loopback address: its token crosses the network in clear");
        }
        let inventory = InventoryService::server(state.clone());
        let errors = ErrorCounter {
            metrics: state.metrics.clone(),
            frontend: Frontend::Http,
        };
        let state = Arc::new(state);
        Ok(Self {
            http: routes(state.clone()),
            state,
            auth: Authenticator {
                token,
                client_certificates,
            },
            tls,
            inventory,
            errors,
        })
    }

    /// The token file, to re-read on SIGHUP.
    pub fn token_file(&self) -> Option<&TokenFile> {
        self.auth.token.as_ref()
    }

    /// Serves HTTP/1.1 and HTTP/2 (gRPC included) on `listener` until
    /// `shutdown` flips, then drains (bounded by `drain`), on the shared
    /// connection loop: at most [`MAX_CONNECTIONS`], the handshake and
    /// each request's headers within [`HEADER_READ_TIMEOUT`], idle
    /// connections closed after the API listeners' idle timeout.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: watch::Receiver<bool>,
        drain: Duration,
    ) {
        let options = ServeOptions {
            max_headers: self.state.config.limits.max_headers,
            drain,
            tls: self.tls.clone(),
            limits: ConnLimits {
                max_connections: MAX_CONNECTIONS,
                header_read_timeout: HEADER_READ_TIMEOUT,
                idle_timeout: self.state.config.listeners.idle_timeout,
            },
            http2_only: false,
        };
        let control = Arc::new(self);
        let make = move |peer: SocketAddr| {
            let control = control.clone();
            hyper::service::service_fn(move |req| {
                let control = control.clone();
                async move { Ok::<_, Infallible>(control.handle(req, peer).await) }
            })
        };
        http_util::serve_with(listener, make, shutdown, options).await;
    }

    /// Authenticates, then routes one request: gRPC to the inventory
    /// service, the rest to the HTTP routes.
    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let grpc = is_grpc(&req);
        let frontend = if grpc { Frontend::Grpc } else { Frontend::Http };
        if let Err(e) = self.auth.check(req.headers()) {
            tracing::warn!(client.ip = %peer.ip(), path = req.uri().path(), "control request refused: {e}");
            self.state.metrics.request_error(frontend, e.reason());
            return if grpc {
                e.grpc_status().into_http::<Body>()
            } else {
                let mut r = http_util::error(&e).map(Body::new);
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer realm=\"iamgate-control\""),
                );
                r
            };
        }
        if grpc {
            if req.uri().path().starts_with(INVENTORY_PREFIX) {
                let mut inventory = self.inventory.clone();
                return match inventory.call(req).await {
                    Ok(r) => r.map(Body::new),
                    Err(never) => match never {},
                };
            }
            return tonic::Status::unimplemented("not served on the control listener").into_http();
        }
        let response = match self.http.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        self.errors.record(&response);
        response
    }
}

fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The HTTP routes of the control listener: the inventory API's and the
/// operator's.
fn routes(state: Arc<AppState>) -> Router {
    with_fallbacks(
        inventory_api::routes()
            .route("/v1/reload", post(reload))
            .route("/v1/decode-authorization-message", post(decode_message))
            .route("/v1/status", get(crate::server::admin::status))
            .route("/v1/shadow/promote", post(shadow_promote))
            .route("/v1/shadow/reload", post(shadow_reload)),
    )
    .with_state(state)
}

/// `POST /v1/reload`: reloads now; 200 with the revision, or 422 with why
/// the bundle was refused (the running snapshot keeps serving).
async fn reload(State(state): State<Arc<AppState>>) -> Response<http_util::Body> {
    let outcome = state.reload.reload().await;
    outcome_json(&state, outcome)
}

/// `POST /v1/shadow/promote`: the shadow snapshot becomes the active one
/// through the normal activation path.
async fn shadow_promote(State(state): State<Arc<AppState>>) -> Response<http_util::Body> {
    let outcome = state.shadow.promote(&state).await;
    outcome_json(&state, outcome)
}

/// `POST /v1/shadow/reload`: the shadow's source is read again.
async fn shadow_reload(State(state): State<Arc<AppState>>) -> Response<http_util::Body> {
    let outcome = state.shadow.reload(state.config.reload_timeout).await;
    outcome_json(&state, outcome)
}

/// A reload's or promotion's answer: 200 with the revision, or 422 with
/// why not (what was serving keeps serving).
fn outcome_json(
    state: &AppState,
    outcome: Result<String, ReloadError>,
) -> Response<http_util::Body> {
    match outcome {
        Ok(revision) => json_response(
            StatusCode::OK,
            json!({"ok": true, "revision": revision})
                .to_string()
                .into_bytes(),
        ),
        Err(e) => json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"ok": false, "error": e.to_string(),
                   "revision": state.store.load().map(|s| s.revision().to_string())})
            .to_string()
            .into_bytes(),
        ),
    }
}

/// `POST /v1/decode-authorization-message` `{"message": "..."}`: the
/// decoded document of an encoded authorization failure message (what
/// `sts:DecodeAuthorizationMessage` returns). A message that does not
/// authenticate is a 400.
async fn decode_message(
    State(state): State<Arc<AppState>>,
    JsonBody(body): JsonBody,
) -> Result<Response<http_util::Body>, ServeError> {
    #[derive(serde::Deserialize)]
    struct DecodeRequest {
        message: String,
    }
    let parsed: DecodeRequest = serde_json::from_slice(&body)
        .map_err(|e| ServeError::BadRequest(format!("expected {{\"message\": \"...\"}}: {e}")))?;
    let doc = state
        .config
        .message_key
        .decode(&parsed.message)
        .map_err(|e| ServeError::BadRequest(e.to_string()))?;
    Ok(json_response(StatusCode::OK, doc.to_string().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            if let Ok(v) = header::HeaderValue::from_str(v) {
                h.append(header::AUTHORIZATION, v);
            }
        }
        h
    }

    fn temp_file(content: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = std::env::temp_dir().join(format!("iamgate-token-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, content).ok();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).ok();
        path
    }

    const TOKEN: &str = "s3cret-token-0123456789";

    #[test]
    fn bearer_headers() {
        assert_eq!(bearer(&headers(&["Bearer abc"])).ok(), Some(&b"abc"[..]));
        assert_eq!(bearer(&headers(&["bearer  abc "])).ok(), Some(&b"abc"[..]));
        assert!(bearer(&headers(&[])).is_err());
        assert!(bearer(&headers(&["Basic abc"])).is_err());
        assert!(bearer(&headers(&["Bearer"])).is_err());
        assert!(bearer(&headers(&["Bearer "])).is_err());
        assert!(bearer(&headers(&["Bearerabc"])).is_err());
        assert!(
            bearer(&headers(&["Bearer abc", "Bearer def"])).is_err(),
            "two credentials are ambiguous"
        );
    }

    #[test]
    fn token_files_are_checked() {
        let why = |p: &Path| match read_token(p) {
            Err(ControlError::Token { source, .. }) => source,
            other => panic!("{} gave {other:?}", p.display()),
        };
        let ok = temp_file(&format!("{TOKEN}\n"));
        assert!(read_token(&ok).is_ok());
        for bad in [
            "",
            "\n",
            "short",
            "has a space inside it!",
            "tab\tinside-0123456789",
        ] {
            let p = temp_file(bad);
            assert!(
                matches!(why(&p), TokenError::TooShort | TokenError::NotPrintable),
                "{bad:?} accepted"
            );
            std::fs::remove_file(p).ok();
        }
        let big = temp_file(&"x".repeat(5000));
        assert!(matches!(why(&big), TokenError::TooLarge));
        // An unreadable file keeps its io error.
        assert!(matches!(
            why(Path::new("/nonexistent/iamgate-token")),
            TokenError::Read(e) if e.kind() == std::io::ErrorKind::NotFound
        ));
        assert!(
            matches!(why(&std::env::temp_dir()), TokenError::NotFile),
            "a directory"
        );
        for p in [ok, big] {
            std::fs::remove_file(p).ok();
        }
    }

    #[test]
    fn the_token_is_compared_whole_and_follows_the_file() {
        let path = temp_file(TOKEN);
        let file = TokenFile::open(&path).expect("a valid token file");
        let auth = Authenticator {
            token: Some(file.clone()),
            client_certificates: false,
        };
        assert!(auth.check(&headers(&[&format!("Bearer {TOKEN}")])).is_ok());
        assert!(auth.check(&headers(&[])).is_err());
        assert!(
            auth.check(&headers(&[&format!("Bearer {TOKEN}x")]))
                .is_err()
        );
        assert!(
            auth.check(&headers(&[&format!("Bearer {}", &TOKEN[..16])]))
                .is_err()
        );
        assert!(
            auth.check(&headers(&["Bearer wrong-token-0123456789"]))
                .is_err()
        );

        // Rotation: the new token only.
        let rotated = "another-token-9876543210";
        std::fs::write(&path, rotated).ok();
        file.reload();
        assert!(
            auth.check(&headers(&[&format!("Bearer {rotated}")]))
                .is_ok()
        );
        assert!(auth.check(&headers(&[&format!("Bearer {TOKEN}")])).is_err());
        // A broken file revokes every token.
        std::fs::write(&path, "x").ok();
        file.reload();
        assert!(
            auth.check(&headers(&[&format!("Bearer {rotated}")]))
                .is_err()
        );
        assert!(auth.check(&headers(&["Bearer x"])).is_err());
        std::fs::remove_file(path).ok();
    }

    #[test]
    fn without_credentials_nothing_is_accepted() {
        let auth = Authenticator {
            token: None,
            client_certificates: false,
        };
        assert!(auth.check(&headers(&[&format!("Bearer {TOKEN}")])).is_err());
        let mtls = Authenticator {
            token: None,
            client_certificates: true,
        };
        assert!(mtls.check(&headers(&[])).is_ok());
    }

    #[test]
    fn digest_equality() {
        let a: [u8; 32] = Sha256::digest(b"a").into();
        let b: [u8; 32] = Sha256::digest(b"b").into();
        assert!(digests_equal(&a, &a));
        assert!(!digests_equal(&a, &b));
    }
}
