//! Envoy's **network** ext_authz filter (`envoy.filters.network.ext_authz`):
//! one `CheckRequest` per TCP connection, with no HTTP request in it. The
//! destination address (Envoy's local address for the connection) names the
//! instance or network interface that holds it; its security groups'
//! ingress rules must allow TCP to the destination port from the source
//! address, and when the inventory holds the source too, the source's egress
//! rules must allow it ([`network::check_connection`]).
//!
//! - allowed → status OK;
//! - denied → `PERMISSION_DENIED` with the explanation (Envoy closes the
//!   connection);
//! - a request without usable IP socket addresses → `INVALID_ARGUMENT`
//!   (Envoy treats any non-OK status as a denial);
//! - not ready (no bundle yet) → the RPC fails with `UNAVAILABLE`, so
//!   Envoy's `failure_mode_allow` decides.
//!
//! Decisions are counted in `iamgate_decisions_total{frontend=
//! "ext_authz_network"}` (`allowed` or `implicitDeny`: security groups only
//! allow). `dynamic_metadata` (namespace `envoy.filters.network.ext_authz`)
//! carries `decision_id`, `decision` (`allowed` / `denied`), `target_id`,
//! and for allowed connections `group_id` and `rule_index`.

use crate::server::ext_authz::response::metadata;
use std::net::IpAddr;
use std::time::Instant;

use envoy_types::pb::envoy::config::core::v3::address::Address;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::Peer;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use envoy_types::pb::google::rpc;

use crate::ec2::network::{self, NetworkVerdict, Traffic};
use crate::engine::Outcome;
use crate::server::errors::ServeError;
use crate::server::state::AppState;
use crate::telemetry::Frontend;

/// Decides one TCP connection. `Err` only when iamgate cannot decide (not
/// ready), so that Envoy's failure mode applies.
pub fn check_request(state: &AppState, req: &CheckRequest) -> Result<CheckResponse, tonic::Status> {
    let frontend = Frontend::ExtAuthzNetwork;
    let started = Instant::now();
    let ec2 = match state
        .snapshot()
        .and_then(|_| state.service::<crate::ec2::service::Ec2Service>())
    {
        Ok(ec2) => ec2,
        Err(e) => {
            state.metrics.request_error(frontend, e.reason());
            return Err(e.grpc_status());
        }
    };
    let (source, destination, port) = match endpoints(req) {
        Ok(x) => x,
        Err(e) => {
            state.metrics.request_error(frontend, e.reason());
            let s = e.grpc_status();
            return Ok(CheckResponse {
                status: Some(status(s.code(), s.message().to_owned())),
                dynamic_metadata: Some(metadata(&[("error", e.reason())])),
                http_response: None,
            });
        }
    };
    let inventory = ec2.inventory().load();
    let verdict = network::check_connection(
        &inventory,
        source,
        destination,
        Traffic::Tcp {
            from: port,
            to: port,
        },
    );
    let outcome = if verdict.allowed {
        Outcome::Allowed
    } else {
        Outcome::ImplicitDeny
    };
    state.metrics.decision(frontend, outcome, started.elapsed());
    let decision_id = state.decision_id();
    tracing::debug!(
        %source, %destination, port, allowed = verdict.allowed, decision_id,
        explanation = %verdict.explanation, "ext_authz network check"
    );
    Ok(answer(&verdict, &decision_id))
}

/// Source address, destination address and destination port.
fn endpoints(req: &CheckRequest) -> Result<(IpAddr, IpAddr, u16), ServeError> {
    let attrs = req
        .attributes
        .as_ref()
        .ok_or_else(|| bad("no attributes"))?;
    let (source, _) = socket(attrs.source.as_ref(), "source")?;
    let (destination, port) = socket(attrs.destination.as_ref(), "destination")?;
    Ok((source, destination, port))
}

fn socket(peer: Option<&Peer>, what: &str) -> Result<(IpAddr, u16), ServeError> {
    let sa = match peer
        .and_then(|p| p.address.as_ref())
        .and_then(|a| a.address.as_ref())
    {
        Some(Address::SocketAddress(sa)) => sa,
        Some(_) => return Err(bad(&format!("the {what} is not an IP socket address"))),
        None => return Err(bad(&format!("no {what} address"))),
    };
    let ip = sa.address.parse::<IpAddr>().map_err(|_| {
        bad(&format!(
            "the {what} address `{}` is not an IP address",
            sa.address.chars().take(64).collect::<String>()
        ))
    })?;
    let port = match &sa.port_specifier {
        Some(
            envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(p),
        ) => u16::try_from(*p).map_err(|_| bad(&format!("the {what} port {p} is out of range")))?,
        _ => 0,
    };
    Ok((ip.to_canonical(), port))
}

fn bad(msg: &str) -> ServeError {
    ServeError::BadRequest(format!("network check: {msg}"))
}

fn answer(v: &NetworkVerdict, decision_id: &str) -> CheckResponse {
    let target = v.target_id.as_deref().unwrap_or_default();
    let rule_index = v.matched.as_ref().map(|m| m.rule_index.to_string());
    let mut fields = vec![
        ("decision_id", decision_id),
        ("decision", if v.allowed { "allowed" } else { "denied" }),
        ("target_id", target),
    ];
    if let (Some(m), Some(i)) = (&v.matched, &rule_index) {
        fields.push(("group_id", m.group_id.as_str()));
        fields.push(("rule_index", i.as_str()));
    }
    let (code, message) = if v.allowed {
        (tonic::Code::Ok, String::new())
    } else {
        (tonic::Code::PermissionDenied, v.explanation.clone())
    };
    CheckResponse {
        status: Some(status(code, message)),
        dynamic_metadata: Some(metadata(&fields)),
        http_response: None,
    }
}

fn status(code: tonic::Code, message: String) -> rpc::Status {
    rpc::Status {
        code: code as i32,
        message,
        details: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ec2::network::{Direction, MatchedRule};
    use crate::server::ext_authz::wire::CheckView;
    use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
    use envoy_types::pb::envoy::config::core::v3::{Address as EnvoyAddress, Pipe, SocketAddress};
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
    use prost::Message as _;

    fn peer(addr: &str, port: u32) -> Peer {
        Peer {
            address: Some(EnvoyAddress {
                address: Some(Address::SocketAddress(SocketAddress {
                    address: addr.to_owned(),
                    port_specifier: Some(PortSpecifier::PortValue(port)),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        }
    }

    fn tcp_check(src: Peer, dst: Peer) -> CheckRequest {
        CheckRequest {
            attributes: Some(AttributeContext {
                source: Some(src),
                destination: Some(dst),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn network_checks_have_no_http_request() {
        let tcp = tcp_check(peer("10.0.0.1", 5555), peer("10.0.0.2", 443));
        // How `ExtAuthz::check` tells the filters apart.
        let is_network =
            |c: &CheckRequest| CheckView::parse(&c.encode_to_vec()).unwrap().http.is_none();
        assert!(is_network(&tcp));
        let mut http = tcp.clone();
        if let Some(a) = http.attributes.as_mut() {
            a.request = Some(Request {
                time: None,
                http: Some(HttpRequest::default()),
            });
        }
        assert!(!is_network(&http));
    }

    #[test]
    fn endpoints_are_ip_socket_addresses() {
        let ok = tcp_check(peer("::ffff:10.0.0.1", 5555), peer("10.0.0.2", 443));
        let (s, d, p) = endpoints(&ok).unwrap();
        assert_eq!(
            (s.to_string(), d.to_string(), p),
            ("10.0.0.1".to_owned(), "10.0.0.2".to_owned(), 443)
        );
        let name = tcp_check(peer("10.0.0.1", 1), peer("db.internal", 443));
        assert!(
            endpoints(&name)
                .unwrap_err()
                .to_string()
                .contains("not an IP address")
        );
        let pipe = tcp_check(
            peer("10.0.0.1", 1),
            Peer {
                address: Some(EnvoyAddress {
                    address: Some(Address::Pipe(Pipe::default())),
                }),
                ..Default::default()
            },
        );
        assert!(
            endpoints(&pipe)
                .unwrap_err()
                .to_string()
                .contains("not an IP socket")
        );
        let big = tcp_check(peer("10.0.0.1", 1), peer("10.0.0.2", 70_000));
        assert!(endpoints(&big).is_err());
        assert!(endpoints(&CheckRequest::default()).is_err());
    }

    #[test]
    fn answers_carry_status_and_metadata() {
        let allowed = NetworkVerdict {
            allowed: true,
            matched: Some(MatchedRule {
                group_id: "sg-web".into(),
                direction: Direction::Ingress,
                rule_index: 1,
                reason: "r".into(),
            }),
            explanation: "ok".into(),
            target_id: Some("eni-a".into()),
            groups: vec!["sg-web".into()],
        };
        let r = answer(&allowed, "d-1");
        assert_eq!(r.status.as_ref().map(|s| s.code), Some(0));
        let md = r.dynamic_metadata.unwrap().fields;
        let s = |k: &str| match md.get(k).and_then(|v| v.kind.clone()) {
            Some(envoy_types::pb::google::protobuf::value::Kind::StringValue(s)) => s,
            other => panic!("{k}: {other:?}"),
        };
        assert_eq!(
            (s("decision"), s("group_id"), s("rule_index")),
            ("allowed".into(), "sg-web".into(), "1".into())
        );
        let denied = NetworkVerdict {
            allowed: false,
            matched: None,
            explanation: "no rule".into(),
            ..allowed
        };
        let r = answer(&denied, "d-2");
        let st = r.status.unwrap();
        assert_eq!(st.code, tonic::Code::PermissionDenied as i32);
        assert_eq!(st.message, "no rule");
        assert!(!r.dynamic_metadata.unwrap().fields.contains_key("group_id"));
    }
}
