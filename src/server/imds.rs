//! The instance metadata credentials listener (`--imds-listen`): the part
//! of IMDSv2 that hands an EC2 instance the temporary credentials of its
//! instance profile's role, so the SDKs' instance-metadata credential
//! provider works against iamgate.
//!
//! - `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds`
//!   (1..21600): a session token bound to the caller's address
//!   ([`crate::identity::imds_token`]; no state).
//! - `GET /latest/meta-data/iam/security-credentials/` (the role's name),
//!   `.../security-credentials/ROLE` (the credentials JSON) and
//!   `/latest/meta-data/iam/info`, with `X-aws-ec2-metadata-token`; without
//!   one only when the instance's `MetadataOptions.HttpTokens` is
//!   `optional` (IMDSv1), else 401.
//!
//! Who asks is the TCP peer address alone (no header can change it): it
//! must be an instance's primary private IPv4 address in the live
//! inventory, else 404. The instance's instance profile (bundle,
//! `InstanceProfileList`) names the role, whose trust policy must allow
//! `sts:AssumeRole` for the service principal `ec2.amazonaws.com`. The
//! credentials are ordinary sealed session credentials (session name: the
//! instance id) that also seal the instance's ARN, VPC and private
//! address, so requests signed with them carry `ec2:SourceInstanceARN`,
//! `aws:EC2InstanceSourceVPC` and `aws:EC2InstanceSourcePrivateIPv4`.
//!
//! Owns nothing else: it reads the inventory, snapshot and session keys.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::json;

use crate::ec2::inventory::{Resource, ResourceKind};
use crate::engine::{Context, ContextValue};
use crate::identity::session::Ec2Source;
use crate::identity::time::{epoch_secs, iso8601};
use crate::identity::{SessionClaims, imds_token};
use crate::server::http_util::{Body, text};
use crate::server::state::AppState;
use crate::sts::session::assumed_role_arn;

/// The service principal EC2 assumes instance profile roles as.
const EC2_SERVICE: &str = "ec2.amazonaws.com";
const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
const CREDS_PREFIX: &str = "/latest/meta-data/iam/security-credentials/";
/// Lifetime of the credentials handed out (the SDKs refresh before it).
const CREDENTIALS_SECS: u64 = 3600;

/// `--imds-listen` without `--session-key`.
#[derive(Debug, thiserror::Error)]
#[error("--imds-listen needs --session-key (the keys that seal the credentials it hands out)")]
pub struct ImdsSetupError;

/// Checks that instance credentials can be issued.
pub fn check_setup(state: &AppState) -> Result<(), ImdsSetupError> {
    if state.sessions.is_none() {
        return Err(ImdsSetupError);
    }
    Ok(())
}

/// Answers one instance metadata request from `peer`.
pub async fn handle(
    state: std::sync::Arc<AppState>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let r = serve(&state, &req, peer.ip().to_canonical(), SystemTime::now());
    state
        .metrics
        .imds_request(path_kind(req.uri().path()), r.status().as_u16());
    r
}

/// A bounded label for a metadata path (the metric never carries a
/// caller's raw path).
fn path_kind(path: &str) -> &'static str {
    match path {
        "/latest/api/token" => "token",
        "/latest/meta-data/iam/info" => "iam_info",
        p if p.starts_with("/latest/meta-data/iam/security-credentials") => "credentials",
        p if p.starts_with("/latest/meta-data") => "metadata",
        _ => "other",
    }
}

/// The common instance metadata categories iamgate answers from the
/// inventory (IMDS "Instance metadata categories"), each `(path under
/// /latest/meta-data/, value)` when the inventory knows it.
fn categories(instance: &Resource) -> Vec<(&'static str, String)> {
    let Some(a) = instance.attributes.instance() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(v) = &a.image_id {
        out.push(("ami-id", v.clone()));
    }
    out.push(("instance-id", instance.id.clone()));
    if let Some(v) = &a.instance_type {
        out.push(("instance-type", v.clone()));
    }
    if let Some(v) = a.private_ip {
        out.push(("local-ipv4", v.to_string()));
    }
    if let Some(v) = &a.availability_zone {
        out.push(("placement/availability-zone", v.clone()));
    }
    if !instance.region.is_empty() {
        out.push(("placement/region", instance.region.clone()));
    }
    out
}

/// The listing of a metadata directory (`/latest/meta-data/`,
/// `.../placement/`): one entry a line, sub-directories ending in `/`.
fn listing(instance: &Resource, dir: &str) -> Option<String> {
    let mut entries: Vec<String> = Vec::new();
    for (path, _) in categories(instance) {
        let Some(rest) = path.strip_prefix(dir) else {
            continue;
        };
        let entry = match rest.split_once('/') {
            Some((d, _)) => format!("{d}/"),
            None => rest.to_owned(),
        };
        if !entries.contains(&entry) {
            entries.push(entry);
        }
    }
    if dir.is_empty()
        && instance
            .attributes
            .instance()
            .is_some_and(|a| a.instance_profile.is_some())
    {
        entries.push("iam/".to_owned());
    }
    entries.sort();
    (!entries.is_empty()).then(|| entries.join("\n"))
}

fn plain(status: StatusCode, body: impl Into<Vec<u8>>) -> Response<Body> {
    text(status, "text/plain", body.into())
}

fn not_found() -> Response<Body> {
    plain(StatusCode::NOT_FOUND, "Not Found")
}

fn serve<B>(state: &AppState, req: &Request<B>, ip: IpAddr, now: SystemTime) -> Response<Body> {
    let Some(keys) = state.sessions.as_deref() else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "no session key");
    };
    let inventory = match state.service::<crate::ec2::service::Ec2Service>() {
        Ok(ec2) => ec2.inventory().load(),
        Err(e) => {
            tracing::error!(error = %e, "instance metadata: no EC2 inventory");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "no inventory");
        }
    };
    let Some(instance) = instance_at(&inventory, ip) else {
        tracing::debug!(%ip, "instance metadata request from no known instance");
        return not_found();
    };
    let path = req.uri().path();
    let now_s = epoch_secs(now);
    if path == "/latest/api/token" {
        if req.method() != Method::PUT {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        }
        // As IMDS: a token request that went through a proxy is refused.
        if req.headers().contains_key("x-forwarded-for") {
            return plain(StatusCode::FORBIDDEN, "Forbidden");
        }
        let ttl = req
            .headers()
            .get(TTL_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|t| imds_token::TTL_RANGE.contains(t));
        let Some(ttl) = ttl else {
            return plain(StatusCode::BAD_REQUEST, "Bad Request");
        };
        let Some(token) = imds_token::issue(keys, ip, now_s.saturating_add(ttl)) else {
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "no session key");
        };
        let mut r = plain(StatusCode::OK, token);
        if let Ok(v) = header::HeaderValue::from_str(&ttl.to_string()) {
            r.headers_mut().insert(TTL_HEADER, v);
        }
        return r;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    }
    let token_ok = match req.headers().get(TOKEN_HEADER) {
        Some(v) => v
            .to_str()
            .is_ok_and(|t| imds_token::verify(keys, t, ip, now_s)),
        // IMDSv1 only where the instance allows it.
        None => {
            instance
                .attributes
                .instance()
                .and_then(|a| a.http_tokens.as_deref())
                == Some("optional")
        }
    };
    if !token_ok {
        return plain(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    // The instance's own metadata, from the inventory (no role needed).
    if let Some(rest) = path.strip_prefix("/latest/meta-data/")
        && !rest.starts_with("iam/")
        && rest != "iam"
    {
        // A value or a directory, with or without a trailing `/` (botocore
        // asks for `placement/availability-zone/`).
        let name = rest.trim_end_matches('/');
        if let Some((_, v)) = categories(&instance).into_iter().find(|(p, _)| *p == name) {
            return plain(StatusCode::OK, v);
        }
        let dir = if name.is_empty() {
            String::new()
        } else {
            format!("{name}/")
        };
        return listing(&instance, &dir).map_or_else(not_found, |l| plain(StatusCode::OK, l));
    }
    let Ok(snapshot) = state.snapshot() else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
    };
    let Some(profile) = profile_of(&snapshot, &instance) else {
        return not_found();
    };
    let Some(role_arn) = profile.role_arns.first() else {
        return not_found();
    };
    let Some(role) = snapshot.role(role_arn) else {
        return not_found();
    };
    let role_name = role.arn.rsplit('/').next().unwrap_or_default().to_owned();
    let json_response =
        |v: serde_json::Value| text(StatusCode::OK, "text/plain", v.to_string().into_bytes());
    match path {
        "/latest/meta-data/iam/security-credentials"
        | "/latest/meta-data/iam/security-credentials/" => plain(StatusCode::OK, role_name),
        "/latest/meta-data/iam/info" => json_response(json!({
            "Code": "Success",
            "LastUpdated": iso8601(now_s),
            "InstanceProfileArn": profile.arn,
            "InstanceProfileId": profile.id.clone().unwrap_or_else(|| profile_id(&profile.arn)),
        })),
        _ => {
            let Some(asked) = path.strip_prefix(CREDS_PREFIX) else {
                return not_found();
            };
            if asked != role_name {
                return not_found();
            }
            // The service is the caller (IAM User Guide, global condition
            // keys: aws:PrincipalServiceName).
            let mut trust_context = Context::new();
            trust_context.insert_static(
                "aws:PrincipalServiceName",
                ContextValue::One(EC2_SERVICE.to_owned()),
            );
            if !snapshot.trust_allows_service(
                &role.arn,
                EC2_SERVICE,
                "sts:AssumeRole",
                &trust_context,
            ) {
                tracing::warn!(
                    instance = %instance.id,
                    role = %role.arn,
                    "the role's trust policy does not let ec2.amazonaws.com assume it; no credentials"
                );
                return json_response(json!({
                    "Code": "AssumeRoleUnauthorizedAccess",
                    "Message": format!("EC2 cannot assume the role {role_name}."),
                    "LastUpdated": iso8601(now_s),
                }));
            }
            let partition = crate::policy::arn::Arn::parse(&role.arn)
                .map(|a| a.partition.to_owned())
                .unwrap_or_else(|| "aws".to_owned());
            let Some(principal_arn) = assumed_role_arn(&role.arn, &instance.id) else {
                return not_found();
            };
            let expires = now_s.saturating_add(CREDENTIALS_SECS.min(role.max_session_duration));
            let claims = SessionClaims {
                access_key_id: String::new(),
                principal_arn,
                role_arn: Some(role.arn.clone()),
                unique_id: role.role_id.clone(),
                session_name: instance.id.clone(),
                policy: None,
                policy_arns: Vec::new(),
                tags: Vec::new(),
                transitive_tag_keys: Vec::new(),
                source_identity: None,
                issued: now_s,
                expires,
                chained: false,
                mfa: false,
                ec2: Some(Ec2Source {
                    instance_arn: instance.arn(&partition),
                    vpc_id: instance.attributes.vpc_id().map(str::to_owned),
                    private_ipv4: ip.to_string(),
                }),
            };
            let creds = match keys.issue(claims) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "instance credentials not issued");
                    return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Error");
                }
            };
            tracing::info!(
                instance = %instance.id,
                role = %role.arn,
                access_key_id = %creds.access_key_id,
                "instance profile credentials issued"
            );
            json_response(json!({
                "Code": "Success",
                "LastUpdated": iso8601(now_s),
                "Type": "AWS-HMAC",
                "AccessKeyId": creds.access_key_id,
                "SecretAccessKey": creds.secret_access_key,
                "Token": creds.session_token,
                "Expiration": iso8601(expires),
            }))
        }
    }
}

/// The instance whose primary private IPv4 address is `ip`.
fn instance_at(inv: &crate::ec2::inventory::Inventory, ip: IpAddr) -> Option<Arc<Resource>> {
    let holder = inv.holder_of(&ip)?;
    let instance = match holder.kind() {
        ResourceKind::Instance => holder.clone(),
        ResourceKind::NetworkInterface => inv.get(holder.attributes.attached_to()?)?.clone(),
        _ => return None,
    };
    let primary = instance.attributes.instance()?.private_ip;
    (primary == Some(ip)).then_some(instance)
}

/// The bundle's instance profile the instance is associated with (by the
/// association's profile ARN, which must match the bundle's exactly).
fn profile_of(
    snapshot: &crate::bundle::Snapshot,
    instance: &Resource,
) -> Option<crate::bundle::snapshot::InstanceProfile> {
    let arn = instance
        .attributes
        .instance()?
        .instance_profile
        .as_deref()?;
    let parsed = crate::policy::arn::Arn::parse(arn)?;
    let name = parsed
        .resource
        .strip_prefix("instance-profile/")?
        .rsplit('/')
        .next()?;
    let p = snapshot.instance_profile(parsed.account, name)?;
    (p.arn == arn).then(|| p.clone())
}

/// A stable `AIPA...` id for a profile without one in the bundle
/// (`get-account-authorization-details` gives `InstanceProfileId`, which
/// the bundle does not keep yet).
fn profile_id(arn: &str) -> String {
    use sha2::Digest as _;
    let h = sha2::Sha256::digest(arn.as_bytes());
    let hex: String = h.iter().take(8).map(|b| format!("{b:02X}")).collect();
    format!("AIPA{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ec2::inventory::Inventory;

    /// Issue 13: an instance is recognised by its primary private IPv4
    /// address only (not its public address, not an unknown one).
    #[test]
    fn instances_are_found_by_their_private_address() {
        let mut inv = Inventory::new();
        inv.load_cli_output(
            &serde_json::json!({"Reservations": [{"Instances": [{
                "InstanceId": "i-0abc", "PrivateIpAddress": "10.0.0.5",
                "PublicIpAddress": "203.0.113.9",
                "MetadataOptions": {"HttpTokens": "optional"}}]}]}),
            "111122223333",
            "us-east-1",
        )
        .unwrap();
        let found = instance_at(&inv, "10.0.0.5".parse().unwrap()).unwrap();
        assert_eq!(found.id, "i-0abc");
        assert_eq!(
            found
                .attributes
                .instance()
                .and_then(|a| a.http_tokens.as_deref()),
            Some("optional")
        );
        assert!(instance_at(&inv, "203.0.113.9".parse().unwrap()).is_none());
        assert!(instance_at(&inv, "10.0.0.6".parse().unwrap()).is_none());
        assert!(profile_id("arn:aws:iam::1:instance-profile/x").starts_with("AIPA"));
    }

    /// Issue 13: metadata categories and listings come from what the
    /// inventory knows; unknown ones are left out, not invented.
    #[test]
    fn categories_and_listings_follow_the_inventory() {
        let mut inv = Inventory::new();
        inv.load_cli_output(
            &serde_json::json!({"Reservations": [{"Instances": [{
                "InstanceId": "i-0abc", "PrivateIpAddress": "10.0.0.5",
                "InstanceType": "m5.large",
                "Placement": {"AvailabilityZone": "eu-west-1b"}}]}]}),
            "111122223333",
            "eu-west-1",
        )
        .unwrap();
        let i = instance_at(&inv, "10.0.0.5".parse().unwrap()).unwrap();
        assert_eq!(
            listing(&i, "").unwrap(),
            "instance-id\ninstance-type\nlocal-ipv4\nplacement/"
        );
        assert_eq!(
            listing(&i, "placement/").unwrap(),
            "availability-zone\nregion"
        );
        assert!(listing(&i, "nothing/").is_none());
        let c = categories(&i);
        assert!(c.contains(&("placement/region", "eu-west-1".to_owned())));
        assert!(!c.iter().any(|(p, _)| *p == "ami-id"));
        assert_eq!(
            path_kind("/latest/meta-data/iam/security-credentials/x"),
            "credentials"
        );
        assert_eq!(path_kind("/latest/meta-data/instance-id"), "metadata");
        assert_eq!(path_kind("/x"), "other");
    }
}
