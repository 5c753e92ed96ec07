//! `CheckNetworkAccess`: may this traffic reach or leave an instance or
//! network interface, by its security groups? Served over gRPC
//! (`iamgate.v1.Network`, `proto/iamgate/v1/network.proto`) and HTTP
//! (`POST /v1/network/check`). A thin adapter: parse the question into
//! [`network`] types, evaluate it on the live inventory, shape the answer.
//! Errors become statuses only through [`ServeError`].
//!
//! These checks are not IAM decisions: they are not counted in
//! `iamgate_decisions_total` (Envoy's network ext_authz checks are, under
//! `frontend="ext_authz_network"`); refusals are counted in
//! `iamgate_request_errors_total` under the `grpc` or `http` front-end.

use std::sync::Arc;

use axum::extract::State;
use http::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tonic::Status;

use crate::ec2::network::{self, Direction, NetworkVerdict, Peer, QueryError, Target, Traffic};
use crate::ec2::service::Ec2Service;
use crate::server::errors::ServeError;
use crate::server::grpc_api::pb;
use crate::server::http_util::{Body, json as json_response};
use crate::server::router::Json;
use crate::server::state::AppState;
use crate::telemetry::Frontend;

use pb::network_server::{Network, NetworkServer};

/// The HTTP path of the API.
pub const HTTP_PATH: &str = "/v1/network/check";

/// One parsed question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub target: Target,
    pub direction: Direction,
    pub traffic: Traffic,
    pub peer: Peer,
}

/// The raw fields of a question, as both front-ends receive them.
#[derive(Debug, Clone, Copy)]
pub struct RawQuestion<'a> {
    pub target: &'a str,
    pub direction: &'a str,
    pub protocol: &'a str,
    pub port: Option<i64>,
    pub icmp_type: Option<i64>,
    pub icmp_code: Option<i64>,
    pub peer: &'a str,
}

impl RawQuestion<'_> {
    /// Validates every field.
    pub fn parse(&self) -> Result<Question, QueryError> {
        Ok(Question {
            target: Target::parse(self.target)?,
            direction: Direction::parse(self.direction)?,
            traffic: Traffic::parse(self.protocol, self.port, self.icmp_type, self.icmp_code)?,
            peer: Peer::parse(self.peer)?,
        })
    }
}

/// Answers a question on the live inventory; `NotReady` until a bundle is
/// loaded (the inventory is seeded with it).
pub fn evaluate(state: &AppState, q: &Question) -> Result<NetworkVerdict, ServeError> {
    state.snapshot()?;
    let inventory = state.service::<Ec2Service>()?.inventory().load();
    Ok(network::check(
        &inventory,
        &q.target,
        q.direction,
        q.traffic,
        &q.peer,
    ))
}

/// The `iamgate.v1.Network` service.
#[derive(Debug, Clone)]
pub struct NetworkService {
    state: AppState,
}

impl NetworkService {
    /// The tonic server, with the message size limit applied.
    pub fn server(state: AppState) -> NetworkServer<Self> {
        let limit = state.config.limits.max_body_bytes;
        NetworkServer::new(Self { state }).max_decoding_message_size(limit)
    }
}

#[tonic::async_trait]
impl Network for NetworkService {
    async fn check_network_access(
        &self,
        request: tonic::Request<pb::CheckNetworkAccessRequest>,
    ) -> Result<tonic::Response<pb::CheckNetworkAccessResponse>, Status> {
        let r = request.get_ref();
        let raw = RawQuestion {
            target: &r.target,
            direction: &r.direction,
            protocol: &r.protocol,
            port: r.port.map(i64::from),
            icmp_type: r.icmp_type.map(i64::from),
            icmp_code: r.icmp_code.map(i64::from),
            peer: &r.peer,
        };
        let verdict = raw
            .parse()
            .map_err(|e| ServeError::BadRequest(e.to_string()))
            .and_then(|q| evaluate(&self.state, &q))
            .map_err(|e| {
                self.state.metrics.request_error(Frontend::Grpc, e.reason());
                e.grpc_status()
            })?;
        Ok(tonic::Response::new(to_proto(verdict)))
    }
}

fn to_proto(v: NetworkVerdict) -> pb::CheckNetworkAccessResponse {
    pb::CheckNetworkAccessResponse {
        allowed: v.allowed,
        matched_rule: v.matched.map(|m| pb::MatchedRule {
            group_id: m.group_id,
            direction: m.direction.as_str().to_owned(),
            rule_index: u32::try_from(m.rule_index).unwrap_or(u32::MAX),
            reason: m.reason,
        }),
        explanation: v.explanation,
        target_id: v.target_id.unwrap_or_default(),
        security_groups: v.groups,
    }
}

/// A protocol as JSON gives it: `"tcp"`, `"-1"`, or a number.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ProtocolJson {
    Name(String),
    Number(i64),
}

/// The body of `POST /v1/network/check`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckJson {
    target: String,
    direction: String,
    protocol: ProtocolJson,
    #[serde(default)]
    port: Option<i64>,
    #[serde(default)]
    icmp_type: Option<i64>,
    #[serde(default)]
    icmp_code: Option<i64>,
    peer: String,
}

/// `POST /v1/network/check` (a route of [`super::http_api::router`], which
/// counts and renders errors).
pub async fn check(
    State(state): State<Arc<AppState>>,
    Json(parsed): Json<CheckJson>,
) -> Result<Response<Body>, ServeError> {
    let verdict = answer(&state, &parsed)?;
    Ok(json_response(
        StatusCode::OK,
        verdict.to_string().into_bytes(),
    ))
}

/// Answers a parsed JSON question as JSON.
fn answer(state: &AppState, parsed: &CheckJson) -> Result<Value, ServeError> {
    let protocol = match &parsed.protocol {
        ProtocolJson::Name(s) => s.clone(),
        ProtocolJson::Number(n) => n.to_string(),
    };
    let q = RawQuestion {
        target: &parsed.target,
        direction: &parsed.direction,
        protocol: &protocol,
        port: parsed.port,
        icmp_type: parsed.icmp_type,
        icmp_code: parsed.icmp_code,
        peer: &parsed.peer,
    }
    .parse()
    .map_err(|e| ServeError::BadRequest(e.to_string()))?;
    // The router counts every error but `NotReady` (which the IAM decision
    // path counts itself).
    let v = evaluate(state, &q).inspect_err(|e| {
        if matches!(e, ServeError::NotReady) {
            state.metrics.request_error(Frontend::Http, e.reason());
        }
    })?;
    Ok(verdict_json(&v))
}

#[cfg(test)]
fn parse_json(body: &[u8]) -> Result<CheckJson, ServeError> {
    crate::server::http_util::parse_json(body)
}

/// The JSON shape of a verdict.
pub fn verdict_json(v: &NetworkVerdict) -> Value {
    json!({
        "allowed": v.allowed,
        "matched_rule": v.matched,
        "explanation": v.explanation,
        "target_id": v.target_id,
        "security_groups": v.groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ec2::network::MatchedRule;

    #[test]
    fn json_questions_parse_strictly() {
        let ok = parse_json(
            br#"{"target": "eni-1", "direction": "ingress", "protocol": 6, "port": 443, "peer": "sg-1"}"#,
        )
        .unwrap();
        assert!(matches!(ok.protocol, ProtocolJson::Number(6)));
        let e = parse_json(br#"{"target": "eni-1", "direction": "ingress", "protocol": "tcp", "peer": "sg-1", "extra": 1}"#)
            .unwrap_err();
        assert!(e.to_string().contains("unknown field `extra`"), "{e}");
        let e = parse_json(br#"{"target": "eni-1", "direction": "ingress", "protocol": "tcp", "port": "x", "peer": "sg-1"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("$.port"), "{e}");
        assert!(parse_json(br#"{"target": "eni-1"}"#).is_err());
    }

    #[test]
    fn raw_questions_validate_every_field() {
        let raw = RawQuestion {
            target: "10.0.0.5",
            direction: "egress",
            protocol: "icmpv6",
            port: None,
            icmp_type: Some(128),
            icmp_code: Some(-1),
            peer: "2001:db8::1",
        };
        let q = raw.parse().unwrap();
        assert_eq!(q.direction, Direction::Egress);
        assert_eq!(
            q.traffic,
            Traffic::Icmpv6 {
                icmp_type: Some(128),
                code: None
            }
        );
        let bad = RawQuestion {
            port: Some(1),
            ..raw
        };
        assert!(matches!(
            bad.parse(),
            Err(QueryError::NotApplicable("port", _))
        ));
    }

    #[test]
    fn verdicts_render() {
        let v = NetworkVerdict {
            allowed: true,
            matched: Some(MatchedRule {
                group_id: "sg-1".into(),
                direction: Direction::Ingress,
                rule_index: 2,
                reason: "tcp port 443 from 0.0.0.0/0".into(),
            }),
            explanation: "allowed".into(),
            target_id: Some("eni-1".into()),
            groups: vec!["sg-1".into()],
        };
        let j = verdict_json(&v);
        assert_eq!(j["matched_rule"]["direction"], "ingress");
        assert_eq!(j["matched_rule"]["rule_index"], 2);
        let p = to_proto(v);
        assert_eq!(p.matched_rule.unwrap().rule_index, 2);
        assert_eq!(p.security_groups, vec!["sg-1".to_owned()]);
    }
}
