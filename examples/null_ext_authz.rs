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
//! Both default to `127.0.0.1:0`; the bound addresses are printed on stdout
//! as one JSON line, like `iamgate serve` does:
//! `{"listening":{"grpc":"127.0.0.1:PORT","http":"127.0.0.1:PORT"}}`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse, OkHttpResponse};
use envoy_types::pb::google::rpc;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use prost::Message as _;

use tokio::net::TcpListener;
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

/// Reads the whole body (as a real server would) and answers "allowed".
async fn http_null(
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let _ = req.into_body().collect().await;
    let mut resp = http::Response::new(Full::new(Bytes::from_static(ALLOWED)));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

async fn serve_http(listener: TcpListener) {
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((stream, _peer)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(http_null);
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
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
             [--response-bytes N] [--no-vectored-writes]\n  \
             ADDRs default to 127.0.0.1:0; --iamgate-transport applies the tonic server \
             settings of `iamgate serve` (timeout, keepalive, stream and header limits); \
             --spin-us busy-waits N µs in every Check (a stand-in for decision cost); \
             --response-bytes pads the CheckResponse to N bytes (iamgate's answers are larger); \
             --no-vectored-writes hides vectored writes from h2 (fewer, larger writes)"
        );
        return Ok(());
    }
    let grpc = TcpListener::bind(arg(&args, "--grpc")?).await?;
    let http = TcpListener::bind(arg(&args, "--http")?).await?;
    println!(
        "{}",
        serde_json::json!({"listening": {
            "grpc": grpc.local_addr()?.to_string(),
            "http": http.local_addr()?.to_string(),
        }})
    );
    tokio::spawn(serve_http(http));
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
