//! iamgate's gRPC API against the real binary: `iamgate serve` on loopback
//! ports, a tonic client generated from the same proto. Covers the three
//! outcomes, unknown principals, batches and their limit, session policies,
//! context value types, trace context, the health protocol (including a
//! snapshot that appears later) and server reflection.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use iamgate::server::grpc_api::pb;
use pb::authorizer_client::AuthorizerClient;
use pb::context_value::Kind;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

mod support;
use support::copy_dir;

const BOB: &str = "arn:aws:iam::111111111111:user/engineering/bob";
const BLUE: &str = "arn:aws:ec2:us-east-1:111111111111:instance/i-0blue0000000000001";

/// A running `iamgate serve`, stopped (SIGKILL) on drop.
struct Server {
    child: Child,
    grpc: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the binary on ephemeral ports and reads its `listening` line.
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_iamgate"))
            .args([
                "serve",
                "--grpc-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start iamgate");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(addr) = v["listening"]["grpc"].as_str()
                {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let grpc = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("iamgate printed its listening line");
        Server { child, grpc }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.grpc))
            .unwrap()
            .connect()
            .await
            .expect("connect")
    }

    async fn client(&self) -> AuthorizerClient<Channel> {
        AuthorizerClient::new(self.channel().await)
    }

    /// Sends SIGTERM and waits for the exit code.
    fn terminate(mut self) -> Option<i32> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

fn s(v: &str) -> pb::ContextValue {
    pb::ContextValue {
        kind: Some(Kind::StringValue(v.to_owned())),
    }
}

fn ctx(pairs: &[(&str, pb::ContextValue)]) -> HashMap<String, pb::ContextValue> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn principal(arn: &str) -> Option<pb::Principal> {
    Some(pb::Principal {
        arn: arn.to_owned(),
        ..Default::default()
    })
}

fn request(
    arn: &str,
    action: &str,
    resource: &str,
    context: &[(&str, pb::ContextValue)],
) -> pb::AuthorizeRequest {
    pb::AuthorizeRequest {
        principal: principal(arn),
        action: action.to_owned(),
        resource: resource.to_owned(),
        context: ctx(context),
        resource_account: None,
    }
}

fn item(
    action: &str,
    resource: &str,
    context: &[(&str, pb::ContextValue)],
) -> pb::AuthorizeBatchItem {
    pb::AuthorizeBatchItem {
        action: action.to_owned(),
        resource: resource.to_owned(),
        context: ctx(context),
        resource_account: None,
    }
}

fn us_east() -> (&'static str, pb::ContextValue) {
    ("aws:RequestedRegion", s("us-east-1"))
}

#[tokio::test]
async fn the_three_outcomes_with_their_explanations() {
    let server = Server::start(&[]);
    let mut client = server.client().await;

    let allowed = client
        .authorize(request(
            BOB,
            "ec2:StartInstances",
            BLUE,
            &[us_east(), ("ec2:ResourceTag/team", s("blue"))],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(allowed.decision(), pb::Decision::Allowed);
    assert_eq!(allowed.decision_string, "allowed");
    // The demo's manifest revision and a hash of its content.
    assert!(
        allowed.revision.starts_with("demo-1+sha256:"),
        "{}",
        allowed.revision
    );
    assert!(!allowed.decision_id.is_empty());
    let kinds: Vec<&str> = allowed
        .matched
        .iter()
        .map(|m| m.policy_type.as_str())
        .collect();
    for kind in ["identity", "boundary", "scp"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }

    let denied = client
        .authorize(request(BOB, "ec2:TerminateInstances", BLUE, &[us_east()]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(denied.decision(), pb::Decision::ExplicitDeny);
    assert_eq!(denied.decision_string, "explicitDeny");
    assert!(!denied.matched.is_empty(), "the deny statement is named");
    assert_ne!(denied.decision_id, allowed.decision_id);

    let implicit = client
        .authorize(request(
            BOB,
            "ec2:StartInstances",
            "arn:aws:ec2:us-east-1:111111111111:instance/i-0red00000000000001",
            &[us_east(), ("ec2:ResourceTag/team", s("red"))],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(implicit.decision(), pb::Decision::ImplicitDeny);
    assert_eq!(implicit.decision_string, "implicitDeny");

    // The SCP's region deny (alice is an administrator).
    let scp = client
        .authorize(request(
            "arn:aws:iam::111111111111:user/alice",
            "ec2:DeleteVpc",
            "arn:aws:ec2:us-east-1:111111111111:vpc/vpc-0123456789abcdef0",
            &[us_east()],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(scp.decision(), pb::Decision::ExplicitDeny);
    assert!(scp.matched.iter().any(|m| m.policy_type == "scp"));
}

#[tokio::test]
async fn unknown_principal_is_an_implicit_deny_not_an_error() {
    let server = Server::start(&[]);
    let mut client = server.client().await;
    let r = client
        .authorize(request(
            "arn:aws:iam::111111111111:user/mallory",
            "ec2:DescribeInstances",
            "*",
            &[],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.decision(), pb::Decision::ImplicitDeny);
    assert!(r.reason.contains("unknown principal"), "{}", r.reason);

    let err = client
        .authorize(pb::AuthorizeRequest {
            principal: None,
            action: "ec2:DescribeInstances".into(),
            resource: "*".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("principal"), "{}", err.message());
}

#[tokio::test]
async fn context_values_of_every_type() {
    let server = Server::start(&[]);
    let mut client = server.client().await;
    let tag_keys = pb::ContextValue {
        kind: Some(Kind::StringList(pb::StringList {
            values: vec!["team".into()],
        })),
    };
    let r = client
        .authorize(request(
            BOB,
            "ec2:RunInstances",
            "arn:aws:ec2:us-east-1:111111111111:instance/*",
            &[
                us_east(),
                ("aws:RequestTag/team", s("blue")),
                ("aws:TagKeys", tag_keys),
                ("ec2:InstanceType", s("t3.micro")),
                (
                    "aws:SecureTransport",
                    pb::ContextValue {
                        kind: Some(Kind::BoolValue(true)),
                    },
                ),
                (
                    "aws:EpochTime",
                    pb::ContextValue {
                        kind: Some(Kind::NumberValue(1_700_000_000.0)),
                    },
                ),
            ],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.decision(), pb::Decision::Allowed, "{}", r.reason);

    // Without the tag the launch is not allowed.
    let r = client
        .authorize(request(
            BOB,
            "ec2:RunInstances",
            "arn:aws:ec2:us-east-1:111111111111:instance/*",
            &[us_east(), ("ec2:InstanceType", s("t3.micro"))],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.decision(), pb::Decision::ImplicitDeny);

    for bad in [
        pb::ContextValue { kind: None },
        pb::ContextValue {
            kind: Some(Kind::NumberValue(f64::NAN)),
        },
    ] {
        let err = client
            .authorize(request(BOB, "ec2:DescribeInstances", "*", &[("k", bad)]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().contains("context key `k`"),
            "{}",
            err.message()
        );
    }
}

#[tokio::test]
async fn batch_decides_on_one_snapshot_and_is_bounded() {
    let server = Server::start(&[]);
    let mut client = server.client().await;
    let r = client
        .authorize_batch(pb::AuthorizeBatchRequest {
            principal: principal(BOB),
            items: vec![
                item("ec2:DescribeInstances", "*", &[us_east()]),
                item("ec2:DeleteVpc", "*", &[us_east()]),
                item(
                    "ec2:StartInstances",
                    BLUE,
                    &[us_east(), ("ec2:ResourceTag/team", s("red"))],
                ),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    let decisions: Vec<_> = r.results.iter().map(|x| x.decision()).collect();
    assert_eq!(
        decisions,
        [
            pb::Decision::Allowed,
            pb::Decision::ExplicitDeny,
            pb::Decision::ImplicitDeny
        ]
    );
    assert!(r.revision.starts_with("demo-1+sha256:"), "{}", r.revision);
    assert!(r.results.iter().all(|x| x.revision == r.revision));

    // The default limit is 100 items.
    let items = |n| vec![item("ec2:DescribeInstances", "*", &[us_east()]); n];
    let ok = client
        .authorize_batch(pb::AuthorizeBatchRequest {
            principal: principal(BOB),
            items: items(100),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.results.len(), 100);
    let err = client
        .authorize_batch(pb::AuthorizeBatchRequest {
            principal: principal(BOB),
            items: items(101),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("101"), "{}", err.message());

    // A malformed item fails the batch and names the item.
    let mut bad = items(3);
    bad[2].context = ctx(&[("k", pb::ContextValue { kind: None })]);
    let err = client
        .authorize_batch(pb::AuthorizeBatchRequest {
            principal: principal(BOB),
            items: bad,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("items[2]"), "{}", err.message());
}

#[tokio::test]
async fn batch_limit_is_configurable() {
    let server = Server::start(&["--max-batch", "2"]);
    let mut client = server.client().await;
    let err = client
        .authorize_batch(pb::AuthorizeBatchRequest {
            principal: principal(BOB),
            items: vec![item("ec2:DescribeInstances", "*", &[]); 3],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("limit of 2"), "{}", err.message());
}

#[tokio::test]
async fn session_policies_limit_and_invalid_ones_are_refused() {
    let server = Server::start(&[]);
    let mut client = server.client().await;
    let with_session = |policy: &str, action: &str, context: &[(&str, pb::ContextValue)]| {
        let mut r = request(BOB, action, BLUE, context);
        if let Some(p) = r.principal.as_mut() {
            p.session_policy_json = Some(policy.to_owned());
            p.session_tags.insert("team".into(), "blue".into());
        }
        r
    };
    let describe_only = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}]}"#;
    let r = client
        .authorize(with_session(
            describe_only,
            "ec2:StartInstances",
            &[us_east(), ("ec2:ResourceTag/team", s("blue"))],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.decision(), pb::Decision::ImplicitDeny, "{}", r.reason);
    let r = client
        .authorize(with_session(
            describe_only,
            "ec2:DescribeInstances",
            &[us_east()],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.decision(), pb::Decision::Allowed, "{}", r.reason);

    for (policy, needle) in [
        ("{not json", "invalid JSON"),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Maybe","Action":"*","Resource":"*"}]}"#,
            "session policy",
        ),
    ] {
        let err = client
            .authorize(with_session(policy, "ec2:DescribeInstances", &[]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{policy}");
        assert!(err.message().contains(needle), "{}", err.message());
    }
    let err = client
        .authorize(with_session(
            &"[".repeat(1000),
            "ec2:DescribeInstances",
            &[],
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn oversized_messages_are_refused() {
    let server = Server::start(&["--max-body-bytes", "4096"]);
    let mut client = server.client().await;
    let err = client
        .authorize(request(
            BOB,
            "ec2:DescribeInstances",
            &"x".repeat(8192),
            &[],
        ))
        .await
        .unwrap_err();
    // tonic's OUT_OF_RANGE is answered as INVALID_ARGUMENT, its message kept.
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("too large"), "{err:?}");
    // The server keeps serving.
    let r = client
        .authorize(request(BOB, "ec2:DescribeInstances", "*", &[us_east()]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.decision(), pb::Decision::Allowed);
}

#[tokio::test]
async fn traceparent_reaches_the_decision_log() {
    let dir = temp_dir("trace");
    let log = dir.join("decisions.jsonl");
    let server = Server::start(&["--decision-log", log.to_str().unwrap()]);
    let mut client = server.client().await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut req = tonic::Request::new(request(BOB, "ec2:DescribeInstances", "*", &[us_east()]));
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{trace}-00f067aa0ba902b7-01").parse().unwrap(),
    );
    let r = client.authorize(req).await.unwrap().into_inner();
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(&r.decision_id)) {
            break line.to_owned();
        }
        assert!(Instant::now() < deadline, "decision logged: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["trace_id"], trace);
    assert_eq!(v["frontend"], "grpc");
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn health_and_reflection_on_the_same_port() {
    let server = Server::start(&[]);
    let mut health = HealthClient::new(server.channel().await);
    for service in ["", "iamgate.v1.Authorizer"] {
        let status = wait_for_health(&mut health, service, ServingStatus::Serving).await;
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }
    let err = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let requests = tonic::codegen::tokio_stream::iter(vec![ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    }]);
    let mut answers = reflection
        .server_reflection_info(requests)
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().expect("an answer");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("unexpected answer: {answer:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for name in ["iamgate.v1.Authorizer", "grpc.health.v1.Health"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
}

#[tokio::test]
async fn not_serving_until_a_snapshot_appears() {
    let dir = temp_dir("wait");
    let bundle = dir.join("bundle");
    let server = Server::start(&["--wait-for-bundle", "--bundle", bundle.to_str().unwrap()]);
    let mut health = HealthClient::new(server.channel().await);
    let status = health
        .check(HealthCheckRequest {
            service: "iamgate.v1.Authorizer".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::NotServing);
    let mut client = server.client().await;
    let err = client
        .authorize(request(BOB, "ec2:DescribeInstances", "*", &[us_east()]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);

    // Copy, then rename into place, so the server never reads half a bundle.
    let staging = dir.join("staging");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bundle/demo"),
        &staging,
    );
    std::fs::rename(&staging, &bundle).unwrap();
    let status =
        wait_for_health(&mut health, "iamgate.v1.Authorizer", ServingStatus::Serving).await;
    assert_eq!(status, ServingStatus::Serving);
    let r = client
        .authorize(request(BOB, "ec2:DescribeInstances", "*", &[us_east()]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.decision(), pb::Decision::Allowed);
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

// Multi-threaded: the client's connection task must keep running (to
// answer the server's GOAWAY ping) while this test blocks on the exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero_with_clients_connected() {
    let server = Server::start(&[]);
    let mut client = server.client().await;
    client
        .authorize(request(BOB, "ec2:DescribeInstances", "*", &[us_east()]))
        .await
        .unwrap();
    // The client's connection stays open while the server shuts down.
    let started = Instant::now();
    assert_eq!(server.terminate(), Some(0));
    // Well before the 10 s drain deadline: the idle connection closes.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(client);
}

/// Polls `Check(service)` until it reports `want` (or 20 s pass).
async fn wait_for_health(
    health: &mut HealthClient<Channel>,
    service: &str,
    want: ServingStatus,
) -> ServingStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        if status == want || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir =
        std::env::temp_dir().join(format!("iamgate-grpc-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
