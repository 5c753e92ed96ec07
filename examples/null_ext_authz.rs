//! A null authorization server for load benchmarks (`benches/load/run.sh`):
//! Envoy ext_authz v3 over gRPC (tonic + envoy-types) and a `POST
//! /v1/authorize` HTTP endpoint (hyper), both answering "allowed" without
//! deciding anything. It is the baseline `iamgate serve` is measured
//! against, so it uses the same stacks and socket options (TCP_NODELAY,
//! tokio multi-threaded runtime, hyper-util's auto HTTP/1.1+h2c builder).
//! Its gRPC side is envoy-types' generated `AuthorizationServer`, which
//! decodes every `CheckRequest` whole with prost, as a server built on the
//! published types does; `iamgate serve` reads only what it maps, in place
//! (`iamgate::server::ext_authz::wire`).
//!
//! ```text
//! cargo run --release --example null_ext_authz -- [--grpc ADDR] [--http ADDR]
//!     [--iamgate-transport] [--spin-us N] [--response-bytes N] [--no-vectored-writes]
//!     [--floor] [--hand] [--decide BUNDLE REQUEST_JSON]
//! ```
//!
//! `--iamgate-transport` applies the tonic server settings `iamgate serve`
//! uses (request timeout, HTTP/2 keepalive, stream and header-list limits),
//! to tell the cost of those settings from the cost of deciding.
//! `--spin-us N` busy-waits N µs in every Check: a stand-in for a decision
//! of that cost, to see how much per-request work the target allows.
//! `--response-bytes N` pads the OK answer to N encoded bytes (iamgate's
//! allow carries headers and dynamic metadata): h2 writes DATA payloads of
//! 256 bytes or more (the gRPC frame prefix included) as a separate chained
//! buffer and flushes after each, so response size changes syscall counts.
//! `--no-vectored-writes` serves gRPC over a stream that reports no
//! vectored writes, so h2 copies payloads below 1 KiB into its buffer
//! instead (see `iamgate::server::io::NoVectored`).
//!
//! `--floor` serves a floor instead: gRPC on iamgate's own connection loop
//! (`iamgate::server::http_util::serve_with`, HTTP/2 only, the default
//! limits and timeouts of `iamgate serve`) answering every request with the
//! same prebuilt gRPC OK frame and `grpc-status: 0` trailers, reading
//! nothing (not the path, not the headers, not the request body): what
//! the transport costs with no work at all (issue 12).
//!
//! `--decide BUNDLE REQUEST_JSON` loads a bundle with iamgate's loader and
//! makes both servers decide with iamgate's engine on every request
//! (`Snapshot::authorize_with`, after the same validation as `iamgate
//! serve`), then answer as before, discarding the decision: the floor
//! decides the request of REQUEST_JSON (a `POST /v1/authorize` body,
//! converted once at start), the HTTP endpoint the body it has just parsed,
//! converted as iamgate converts it. Nothing is mapped, answered from the
//! decision or recorded. That is the least any server that decides must
//! do on top of the floor or the null HTTP server, so its throughput is
//! the most such a server can reach (issue 12). At start it checks that
//! REQUEST_JSON is allowed, so that a typo cannot turn it into a cheap
//! early denial.
//!
//! The HTTP side, in both modes, is served as iamgate's API listener is
//! (`iamgate::server::router::serve`: an axum `Router` on iamgate's
//! connection loop with its HTTP/1.1 + h2c listener settings), reads and
//! parses the body with iamgate's extractor
//! (`iamgate::server::router::Json`: content type, size and depth limits,
//! the same typed request), then answers a fixed `{"decision":"allowed"}`
//! without converting, deciding or recording anything; a body that does
//! not parse is answered 400 like iamgate.
//!
//! `--hand` serves the same HTTP endpoint routed by hand on hyper (the
//! body read and parsed by the same functions, no axum) on the same
//! connection loop: what routing through axum costs per request
//! (issue 12).
//!
//! Both default to `127.0.0.1:0`; the bound addresses are printed on stdout
//! as one JSON line, like `iamgate serve` does:
//! `{"listening":{"grpc":"127.0.0.1:PORT","http":"127.0.0.1:PORT"}}`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{FromRef, State};
use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse, OkHttpResponse};
use envoy_types::pb::google::rpc;
use http_body_util::Full;
use hyper::body::Frame;
use iamgate::bundle::{AuthzRequest, Snapshot};
use iamgate::server::config::{Limits, ListenerLimits};
use iamgate::server::http_api;
use iamgate::server::http_util::{self, ServeOptions};
use iamgate::server::io::ConnLimits;
use prost::Message as _;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::StreamExt as _;
use tonic::transport::server::TcpIncoming;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Answers every Check with OK and the same prebuilt `ok_response` (after
/// spinning for `spin`, zero by default).
#[derive(Debug, Default, Clone)]
struct NullAuthz {
    spin: Duration,
    response: CheckResponse,
}

/// The OK answer: an empty `ok_response`, or one padded with a header so
/// that the encoded message is `size` bytes (when that is reachable).
fn ok_response(size: Option<usize>) -> CheckResponse {
    let mut r = CheckResponse {
        status: Some(rpc::Status {
            code: 0,
            message: String::new(),
            details: Vec::new(),
        }),
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse::default())),
        dynamic_metadata: None,
    };
    let Some(size) = size else { return r };
    let mut pad = 0;
    loop {
        let candidate = CheckResponse {
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers: vec![HeaderValueOption {
                    header: Some(HeaderValue {
                        key: "x-pad".to_owned(),
                        value: "p".repeat(pad),
                        raw_value: Vec::new(),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            })),
            ..r.clone()
        };
        let len = candidate.encoded_len();
        if len >= size || pad > size {
            if len == size {
                r = candidate;
            }
            return r;
        }
        pad += 1;
    }
}

#[tonic::async_trait]
impl Authorization for NullAuthz {
    async fn check(
        &self,
        _request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        if !self.spin.is_zero() {
            let until = std::time::Instant::now() + self.spin;
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
        }
        Ok(tonic::Response::new(self.response.clone()))
    }
}

const ALLOWED: &[u8] = br#"{"decision":"allowed"}"#;

/// `--decide`: a compiled bundle, and the request the floor decides.
struct Decider {
    snapshot: Snapshot,
    request: AuthzRequest,
}

impl Decider {
    /// Loads `bundle` and converts `request_json` (a `POST /v1/authorize`
    /// body) as iamgate does; refuses a request that is not allowed.
    fn load(bundle: &Path, request_json: &Path) -> Result<Self, BoxError> {
        let snapshot = iamgate::bundle::load_path(bundle)?;
        let body = std::fs::read(request_json)?;
        let mut request = http_api::parse_authorize(&body)?.into_request()?;
        let answer = snapshot.authorize_with(&request, true)?;
        if answer.decision != iamgate::engine::Outcome::Allowed {
            return Err(format!(
                "{}: {} by {} ({})",
                request_json.display(),
                answer.decision.as_str(),
                bundle.display(),
                answer.reason
            )
            .into());
        }
        // As the ext_authz mapping asks: the outcome, without the matched
        // statements it would not answer.
        request.outcome_only = true;
        Ok(Self { snapshot, request })
    }

    /// Decides `req` as iamgate's decision path does before it answers:
    /// validation, then the engine (explaining unless the request asks
    /// for the outcome only). The answer is dropped; an error is a bug in
    /// the bench setup, so it is returned for the caller to refuse.
    fn decide(&self, req: &AuthzRequest) -> Result<(), BoxError> {
        iamgate::server::state::validate(req)?;
        let answer = self.snapshot.authorize_with(req, !req.outcome_only)?;
        std::hint::black_box(answer);
        Ok(())
    }
}

/// The HTTP endpoint's state: iamgate's request limits, and the decider
/// with `--decide`.
#[derive(Clone)]
struct HttpState {
    limits: Limits,
    decider: Option<Arc<Decider>>,
}

impl FromRef<HttpState> for Limits {
    fn from_ref(state: &HttpState) -> Limits {
        state.limits
    }
}

/// Converts and decides a parsed body when `decider` is set.
fn decide_parsed(
    decider: Option<&Decider>,
    parsed: http_api::AuthorizeJson,
) -> Result<(), iamgate::server::errors::ServeError> {
    use iamgate::server::errors::ServeError;
    let Some(decider) = decider else {
        return Ok(());
    };
    let req = parsed
        .into_request()
        .map_err(|e| ServeError::BadRequest(e.to_string()))?;
    decider
        .decide(&req)
        .map_err(|e| ServeError::BadRequest(e.to_string()))
}

/// Reads and parses the body as `POST /v1/authorize` does (iamgate's
/// extractor, so the same limits and refusals), then answers a fixed
/// "allowed".
async fn axum_null(
    State(state): State<HttpState>,
    iamgate::server::router::Json(parsed): iamgate::server::router::Json<http_api::AuthorizeJson>,
) -> http::Response<Full<Bytes>> {
    match decide_parsed(state.decider.as_deref(), parsed) {
        Ok(()) => http_util::json(http::StatusCode::OK, ALLOWED.to_vec()),
        Err(e) => http_util::error(&e),
    }
}

/// [`axum_null`] routed by hand: the body read and parsed by the same
/// functions, without axum.
async fn hand_null(
    req: http::Request<hyper::body::Incoming>,
    decider: Option<Arc<Decider>>,
) -> http::Response<Full<Bytes>> {
    if req.uri().path() != "/v1/authorize" {
        return http_util::error(&iamgate::server::errors::ServeError::NotFound);
    }
    let parsed = match http_util::read_json_body(req, Limits::default()).await {
        Ok(body) => http_api::parse_authorize(&body)
            .and_then(|parsed| decide_parsed(decider.as_deref(), parsed)),
        Err(e) => Err(e),
    };
    match parsed {
        Ok(()) => http_util::json(http::StatusCode::OK, ALLOWED.to_vec()),
        Err(e) => http_util::error(&e),
    }
}

async fn serve_http(
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
    hand: bool,
    decider: Option<Arc<Decider>>,
) {
    if hand {
        let handler = move |req, _peer| hand_null(req, decider.clone());
        http_util::serve(listener, handler, shutdown, iamgate_options(false)).await;
        return;
    }
    let router = iamgate::server::router::with_fallbacks(
        axum::Router::new().route("/v1/authorize", axum::routing::post(axum_null)),
    )
    .with_state(HttpState {
        limits: Limits::default(),
        decider,
    });
    iamgate::server::router::serve(listener, router, None, shutdown, iamgate_options(false)).await;
}

/// The listener settings `iamgate serve` uses by default (see
/// `src/server/mod.rs`), for HTTP/1.1 + h2c or HTTP/2 only.
fn iamgate_options(http2_only: bool) -> ServeOptions {
    let listeners = ListenerLimits::default();
    ServeOptions {
        max_headers: Limits::default().max_headers,
        drain: Duration::from_secs(1),
        tls: None,
        limits: ConnLimits {
            max_connections: ListenerLimits::DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: listeners.header_read_timeout,
            idle_timeout: listeners.idle_timeout,
        },
        http2_only,
    }
}

/// One gRPC answer: a DATA frame, then the trailers.
struct FixedGrpc {
    data: Option<Bytes>,
    trailers: Option<http::HeaderMap>,
}

impl hyper::body::Body for FixedGrpc {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}

/// The floor's answer to any request: `frame` (a length-prefixed
/// `CheckResponse`) and `grpc-status: 0`, without looking at the request.
fn floor_answer(frame: &Bytes) -> http::Response<FixedGrpc> {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let mut resp = http::Response::new(FixedGrpc {
        data: Some(frame.clone()),
        trailers: Some(trailers),
    });
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    resp
}

/// The gRPC frame of `response`: compression flag, length, message.
fn grpc_frame(response: &CheckResponse) -> Result<Bytes, BoxError> {
    let message = response.encode_to_vec();
    let mut frame = Vec::with_capacity(5 + message.len());
    frame.push(0);
    frame.extend_from_slice(&u32::try_from(message.len())?.to_be_bytes());
    frame.extend_from_slice(&message);
    Ok(Bytes::from(frame))
}

fn arg(args: &[String], name: &str) -> Result<SocketAddr, BoxError> {
    let value = args
        .iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or("127.0.0.1:0", String::as_str);
    Ok(value.parse()?)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "usage: null_ext_authz [--grpc ADDR] [--http ADDR] [--iamgate-transport] [--spin-us N] \
             [--response-bytes N] [--no-vectored-writes] [--floor] [--hand] \
             [--decide BUNDLE REQUEST_JSON]\n  \
             ADDRs default to 127.0.0.1:0; --iamgate-transport applies the tonic server \
             settings of `iamgate serve` (timeout, keepalive, stream and header limits); \
             --spin-us busy-waits N µs in every Check (a stand-in for decision cost); \
             --response-bytes pads the CheckResponse to N bytes (iamgate's answers are larger); \
             --no-vectored-writes hides vectored writes from h2 (fewer, larger writes); \
             --floor answers every gRPC request with a prebuilt OK on iamgate's connection loop, \
             reading nothing; --hand routes the HTTP endpoint by hand instead of through axum; \
             --decide BUNDLE REQUEST_JSON decides with iamgate's engine on every request (the \
             floor the request of REQUEST_JSON, a /v1/authorize body; HTTP the parsed body) \
             and discards the decision"
        );
        return Ok(());
    }
    let decider = match args.iter().position(|a| a == "--decide") {
        Some(i) => {
            let (Some(bundle), Some(request)) = (args.get(i + 1), args.get(i + 2)) else {
                return Err("--decide takes a bundle and a request file".into());
            };
            Some(Arc::new(Decider::load(
                Path::new(bundle),
                Path::new(request),
            )?))
        }
        None => None,
    };
    let grpc = TcpListener::bind(arg(&args, "--grpc")?).await?;
    let http = TcpListener::bind(arg(&args, "--http")?).await?;
    println!(
        "{}",
        serde_json::json!({"listening": {
            "grpc": grpc.local_addr()?.to_string(),
            "http": http.local_addr()?.to_string(),
        }})
    );
    // Never flipped: the servers run until the process is stopped.
    let (_stop_tx, stop_rx) = watch::channel(false);
    let hand = args.iter().any(|a| a == "--hand");
    tokio::spawn(serve_http(http, stop_rx.clone(), hand, decider.clone()));
    let spin = args
        .iter()
        .position(|a| a == "--spin-us")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(0), |v| v.parse::<u64>())?;
    let spin = Duration::from_micros(spin);
    let size = args
        .iter()
        .position(|a| a == "--response-bytes")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse::<usize>())
        .transpose()?;
    let response = ok_response(size);
    if args.iter().any(|a| a == "--floor") {
        let frame = grpc_frame(&response)?;
        let make = move |_peer| {
            let (frame, decider) = (frame.clone(), decider.clone());
            hyper::service::service_fn(move |_req: http::Request<hyper::body::Incoming>| {
                let decided = match &decider {
                    Some(d) => d.decide(&d.request),
                    None => Ok(()),
                };
                std::future::ready(decided.map(|()| floor_answer(&frame)))
            })
        };
        tokio::select! {
            () = http_util::serve_with(grpc, make, stop_rx, iamgate_options(true)) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        return Ok(());
    }
    let incoming = TcpIncoming::from(grpc).with_nodelay(Some(true));
    let mut builder = tonic::transport::Server::builder();
    if args.iter().any(|a| a == "--iamgate-transport") {
        // The tonic settings `iamgate serve` uses (src/server/grpc.rs), to
        // tell transport costs from decision costs.
        builder = builder
            .timeout(Duration::from_secs(10))
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .max_concurrent_streams(1024)
            .http2_max_header_list_size(100 * 8192);
    }
    let router = builder.add_service(AuthorizationServer::new(NullAuthz { spin, response }));
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if args.iter().any(|a| a == "--no-vectored-writes") {
        let incoming = incoming.map(|s| s.map(iamgate::server::io::NoVectored));
        router.serve_with_incoming_shutdown(incoming, stop).await?;
    } else {
        router.serve_with_incoming_shutdown(incoming, stop).await?;
    }
    Ok(())
}
