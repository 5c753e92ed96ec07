//! A null authorization server for load benchmarks (`benches/load/run.sh`):
//! Envoy ext_authz v3 over gRPC (tonic + envoy-types) and a `POST
//! /v1/authorize` HTTP endpoint (hyper), both answering "allowed" without
//! deciding anything. It is the baseline `iamgate serve` is measured
//! against, so it uses the same stacks and socket options (TCP_NODELAY,
//! tokio multi-threaded runtime, hyper-util's auto HTTP/1.1+h2c builder).
//!
//! ```text
//! cargo run --release --example null_ext_authz -- [--grpc ADDR] [--http ADDR]
//! ```
//!
//! Both default to `127.0.0.1:0`; the bound addresses are printed on stdout
//! as one JSON line, like `iamgate serve` does:
//! `{"listening":{"grpc":"127.0.0.1:PORT","http":"127.0.0.1:PORT"}}`.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse, OkHttpResponse};
use envoy_types::pb::google::rpc;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Answers every Check with OK and an empty `ok_response`.
#[derive(Debug, Default, Clone, Copy)]
struct NullAuthz;

#[tonic::async_trait]
impl Authorization for NullAuthz {
    async fn check(
        &self,
        _request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(CheckResponse {
            status: Some(rpc::Status {
                code: 0,
                message: String::new(),
                details: Vec::new(),
            }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse::default())),
            dynamic_metadata: None,
        }))
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
        println!("usage: null_ext_authz [--grpc ADDR] [--http ADDR]   (default 127.0.0.1:0 each)");
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
    let incoming = TcpIncoming::from(grpc).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(AuthorizationServer::new(NullAuthz))
        .serve_with_incoming_shutdown(incoming, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
