//! The gRPC listener: the one place that assembles the gRPC server (every
//! gRPC service on the port, the request timeout, the status of client
//! errors), served by the same connection loop as every listener
//! (`http_util::serve_with`: connection limit, header and idle timeouts,
//! HTTP/2 keepalive, graceful shutdown). It owns
//! the gRPC health protocol (`grpc.health.v1.Health`: NOT_SERVING until a
//! policy snapshot is active, then SERVING, and NOT_SERVING again while
//! draining) and server reflection (`grpc.reflection.v1` and `v1alpha`).
//! Services themselves live in their own modules ([`super::grpc_api`], ...).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::server::NamedService;
use tonic::service::{Routes, RoutesBuilder};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::server::ext_authz::service::{AuthorizationService, CHECK_PATH, DirectCheck};
use crate::server::grpc_api::{self, AuthorizerService};
use crate::server::http_util::{ServeOptions, serve_with, stopped};
use crate::server::state::AppState;

/// How often the health task looks for the first snapshot.
const READY_POLL: Duration = Duration::from_millis(100);

/// Why the gRPC server could not be built or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("building server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// The services of the gRPC port, with the names whose health follows
/// readiness.
#[derive(Default)]
struct Services {
    routes: RoutesBuilder,
    names: Vec<&'static str>,
}

impl Services {
    /// Adds a service whose health status is SERVING once a snapshot is
    /// active.
    fn add<S>(&mut self, svc: S) -> &mut Self
    where
        S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes.add_service(svc);
        self
    }
}

/// Encoded file descriptor sets served by reflection: one per API on the
/// port (both reflection versions list both). Add the descriptor set of
/// every new service here.
fn descriptor_sets() -> Vec<&'static [u8]> {
    vec![
        grpc_api::pb::FILE_DESCRIPTOR_SET,
        ENVOY_AUTH_FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ]
}

/// The encoded `FileDescriptorSet` of Envoy's `envoy.service.auth.v3`
/// (with its imports), built from the protos of the `envoy-types` crate:
/// the ext_authz service is hand-written (`ext_authz::service`), so no
/// generated code registers it.
const ENVOY_AUTH_FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("envoy_auth_v3_descriptor");

/// A reflection builder over every descriptor set of the port.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    descriptor_sets().into_iter().fold(
        tonic_reflection::server::Builder::configure().include_reflection_service(false),
        |b, fds| b.register_encoded_file_descriptor_set(fds),
    )
}

/// A gRPC server ready to serve: its routes and its health reporter.
pub struct GrpcServer {
    routes: Routes,
    health: HealthReporter,
    /// Services whose health follows readiness (plus `""`, the server).
    names: Vec<&'static str>,
    state: AppState,
    /// Envoy's `Check`, answered without the router (see [`GrpcService`]).
    ext_authz: AuthorizationService,
}

impl std::fmt::Debug for GrpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcServer")
            .field("services", &self.names)
            .finish_non_exhaustive()
    }
}

impl GrpcServer {
    /// Builds every service of the gRPC port.
    pub fn new(state: AppState) -> Result<Self, GrpcError> {
        let mut services = Services::default();
        services.add(AuthorizerService::server(state.clone()));
        let ext_authz = crate::server::ext_authz::service(state.clone());
        services.add(ext_authz.clone());
        // `iamgate.v1.Inventory` is not served here (UNIMPLEMENTED): it
        // is on the authenticated control listener (`server::control`).
        // `iamgate.v1.Network` (security groups): also in that descriptor set.
        services.add(crate::server::network_api::NetworkService::server(
            state.clone(),
        ));
        // ── More gRPC services on this port: one `services.add(...)` line
        // each (their health then follows readiness too), and their
        // descriptor set in `descriptor_sets()` for reflection.

        let Services { mut routes, names } = services;
        let (health, health_service) = tonic_health::server::health_reporter();
        routes.add_service(health_service);
        routes.add_service(reflection().build_v1()?);
        routes.add_service(reflection().build_v1alpha()?);
        Ok(Self {
            routes: routes.routes(),
            health,
            names,
            state,
            ext_authz,
        })
    }

    /// Serves gRPC (h2c, or HTTP/2 over TLS when `options.tls` is set) on
    /// `listener` until `shutdown` flips, then drains in-flight calls
    /// (bounded by `options.drain`). Connections are held to the same
    /// limits and timeouts as every listener (`http_util::serve_with`);
    /// each call to `request_timeout` (answered `CANCELLED`).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: watch::Receiver<bool>,
        options: ServeOptions,
    ) {
        let Self {
            routes,
            health,
            names,
            state,
            ext_authz,
        } = self;
        set_all(&health, &names, ServingStatus::NotServing).await;
        tokio::spawn(track_health(health, names, state.clone(), shutdown.clone()));
        let service = GrpcService {
            routes,
            ext_authz,
            timeout: state.config.limits.request_timeout,
        };
        let options = ServeOptions {
            http2_only: true,
            ..options
        };
        serve_with(listener, move |_| service.clone(), shutdown, options).await;
    }
}

/// The gRPC routes as a hyper service: the request timeout, and client
/// errors reported as INVALID_ARGUMENT (see
/// [`input_errors_are_invalid_argument`]). Envoy's `Check`, the call on
/// every proxied request, skips the router and tonic's generic unary
/// server ([`AuthorizationService::call_direct`]); it is answered the
/// same way, under the same timeout and status mapping.
#[derive(Clone)]
struct GrpcService {
    routes: Routes,
    ext_authz: AuthorizationService,
    timeout: Duration,
}

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for GrpcService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = GrpcFuture;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        let call = if req.uri().path() == CHECK_PATH {
            Call::Check(self.ext_authz.call_direct(req))
        } else {
            // `Routes` is always ready (`poll_ready` answers `Ready(Ok)`),
            // and cloning it clones a reference.
            let mut routes = self.routes.clone();
            Call::Routes(Box::new(routes.call(req.map(Body::new))))
        };
        GrpcFuture {
            call,
            timeout: self.timeout,
            deadline: None,
        }
    }
}

/// The future of [`Routes`] (tonic does not name it); `Unpin`.
type RoutesFuture = <Routes as Service<http::Request<Body>>>::Future;

/// What answers a call.
enum Call {
    /// Boxed: the other services are off the hot path, and the router's
    /// future is several times the size of a Check's.
    Routes(Box<RoutesFuture>),
    Check(DirectCheck<hyper::body::Incoming>),
}

/// The answer of [`GrpcService`].
struct GrpcFuture {
    call: Call,
    timeout: Duration,
    /// Armed the first time the call is not answered at once: most Checks
    /// arrive whole and are answered on the first poll, without a timer.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Future for GrpcFuture {
    type Output = Result<http::Response<Body>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let answer = match &mut self.call {
            Call::Routes(call) => Pin::new(&mut **call).poll(cx),
            Call::Check(call) => Pin::new(call).poll(cx).map(Ok),
        };
        if let Poll::Ready(answer) = answer {
            return Poll::Ready(answer.map(input_errors_are_invalid_argument));
        }
        let timeout = self.timeout;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                Poll::Ready(Ok(tonic::Status::cancelled("Timeout expired").into_http()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// tonic answers a request it cannot decode with INTERNAL, and one over
/// the size limit with OUT_OF_RANGE; both are the caller's fault, so they
/// are answered as INVALID_ARGUMENT (with tonic's message kept). Both come
/// as trailers-only responses, so the status is in the headers.
/// (Only error responses are inspected; an OK answer is left untouched.)
fn input_errors_are_invalid_argument<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let status = headers.get("grpc-status").and_then(|v| v.to_str().ok());
    let bad_input = match status {
        Some("13") | Some("11") => {
            // `grpc-message` is percent-encoded.
            let raw = headers
                .get("grpc-message")
                .map(http::HeaderValue::as_bytes)
                .unwrap_or_default();
            let message = percent_encoding::percent_decode(raw)
                .decode_utf8_lossy()
                .to_ascii_lowercase();
            let undecodable = status == Some("13") && message.contains("decode");
            let oversized = status == Some("11") && message.contains("message length too large");
            undecodable || oversized
        }
        _ => false,
    };
    if bad_input {
        headers.insert("grpc-status", http::HeaderValue::from_static("3"));
    }
    response
}

/// Sets the status of the server (`""`) and every tracked service.
async fn set_all(health: &HealthReporter, names: &[&'static str], status: ServingStatus) {
    health.set_service_status("", status).await;
    for name in names {
        health.set_service_status(name, status).await;
    }
}

/// SERVING once a snapshot is active (it may appear later, with
/// `--wait-for-bundle`); NOT_SERVING again once shutdown starts, so that
/// health-checking clients move away while calls drain.
async fn track_health(
    health: HealthReporter,
    names: Vec<&'static str>,
    state: AppState,
    shutdown: watch::Receiver<bool>,
) {
    let ready = async {
        while state.store.load().is_none() {
            tokio::time::sleep(READY_POLL).await;
        }
    };
    tokio::select! {
        () = ready => {
            set_all(&health, &names, ServingStatus::Serving).await;
            stopped(shutdown).await;
        }
        () = stopped(shutdown.clone()) => {}
    }
    set_all(&health, &names, ServingStatus::NotServing).await;
}
