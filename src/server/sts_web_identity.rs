//! `AssumeRoleWithWebIdentity` on the STS listener: Kubernetes
//! service-account tokens (and other OIDC ID tokens) exchanged for an
//! ordinary iamgate role session (IAM roles for service accounts).
//!
//! The request is unsigned: the web identity token is the credential. It
//! is verified against the operator's `--oidc-provider`s
//! ([`crate::identity::oidc`]); the caller of the trust decision is then
//! the provider, `arn:PARTITION:iam::ROLE_ACCOUNT:oidc-provider/ISSUER`,
//! with the token's claims as context keys ([`crate::sts::web_identity`]),
//! and the role's trust policy must allow `sts:AssumeRoleWithWebIdentity`
//! for it: no identity policy or SCP takes part, as the federated caller
//! has no AWS account. The decision goes through
//! [`AppState::decide_owned`] (metrics, decision log). Tokens are never
//! logged.
//!
//! This module owns the action only: the listener, signatures and the
//! other actions are `server::sts`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use crate::bundle::AuthzRequest;
use crate::engine::{ContextValue, Outcome};
use crate::identity::SessionClaims;
use crate::identity::oidc::OidcProviders;
use crate::identity::time::epoch_secs;
use crate::server::state::AppState;
use crate::server::sts::{self, credentials_node, not_ready};
use crate::sts::params::{self, Params};
use crate::sts::response::{Node, StsError, result_xml};
use crate::sts::session;
use crate::sts::web_identity::{self, ACTION, IAM_ACTION};

/// Loads `--oidc-provider`/`--oidc-audience` into the state.
pub fn with_oidc_providers(
    mut state: AppState,
    config: &crate::server::config::ServeConfig,
) -> Result<AppState, crate::server::sts::StsSetupError> {
    if config.oidc_providers.is_empty() && config.oidc_audiences.is_empty() {
        return Ok(state);
    }
    let providers = OidcProviders::from_flags(&config.oidc_providers, &config.oidc_audiences)?;
    if config.sts_listen.is_none() {
        return Err(crate::server::sts::StsSetupError::OidcWithoutSts);
    }
    for p in providers.iter() {
        tracing::info!(
            issuer = %p.issuer,
            audiences = ?p.audiences,
            keys = p.keys().keys.len(),
            "OIDC provider configured"
        );
    }
    state.oidc = Some(Arc::new(providers));
    Ok(state)
}

/// Answers the request when its action is `AssumeRoleWithWebIdentity`
/// (`None`: another action, which the signed path answers).
pub async fn dispatch(
    state: &AppState,
    parts: &http::request::Parts,
    body: &[u8],
    peer: SocketAddr,
    now: SystemTime,
    request_id: &str,
) -> Option<Result<String, StsError>> {
    let body = std::str::from_utf8(body).ok()?;
    let query = parts.uri.query().unwrap_or_default();
    let params = Params::parse(query, body).ok()?;
    if !web_identity::is_web_identity(&params) {
        return None;
    }
    Some(assume_role_with_web_identity(state, &params, query, body, peer, now, request_id).await)
}

/// STS's refusal of a web identity (no caller ARN to name).
fn denied() -> StsError {
    StsError::new(
        403,
        "AccessDenied",
        format!("Not authorized to perform {IAM_ACTION}"),
    )
}

async fn assume_role_with_web_identity(
    state: &AppState,
    params: &Params,
    query: &str,
    body: &str,
    peer: SocketAddr,
    now: SystemTime,
    request_id: &str,
) -> Result<String, StsError> {
    let mut input = web_identity::parse(params, query, body)?;
    let providers = state.oidc.as_deref().ok_or_else(|| {
        StsError::new(
            400,
            "InvalidIdentityToken",
            "No OpenIDConnect provider is configured (--oidc-provider)",
        )
    })?;
    let (token, provider) = providers.verify(&input.token, now).map_err(|e| {
        let (code, status) = e.sts_code();
        tracing::info!(code, reason = %e, "STS: web identity token refused");
        StsError::new(status, code, e.to_string())
    })?;
    let role_arn = input.role.role_arn.clone();
    let snapshot = state.snapshot().map_err(|_| not_ready())?;
    let role = snapshot.role(&role_arn).ok_or_else(denied)?;
    let parsed = crate::policy::arn::Arn::parse(&role.arn).ok_or_else(denied)?;
    let provider_arn = provider.arn(parsed.partition, parsed.account);

    let duration = input.role.duration.unwrap_or(3600);
    if duration > role.max_session_duration {
        return Err(StsError::validation(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        ));
    }
    for arn in &input.role.policy_arns {
        if !snapshot.has_managed_policy(arn) {
            return Err(StsError::new(
                400,
                "InvalidParameterValue",
                format!(
                    "Policy {} does not exist or is not attachable.",
                    params::printable(arn)
                ),
            ));
        }
    }

    let mut req = AuthzRequest {
        principal_arn: provider_arn.clone(),
        action: IAM_ACTION.to_owned(),
        resource: role.arn.clone(),
        ..AuthzRequest::default()
    };
    let secs = epoch_secs(now);
    let c = &mut req.context;
    web_identity::apply_token(&token, &provider_arn, c);
    c.insert_static(
        "sts:RoleSessionName",
        ContextValue::One(input.role.session_name.clone()),
    );
    sts::insert_request_keys(state, peer, now, c);
    if sts::decide(state, req).await? != Outcome::Allowed {
        tracing::info!(
            provider = %provider_arn,
            subject = %token.sub,
            role = %role.arn,
            "STS: web identity not trusted by the role"
        );
        return Err(denied());
    }

    let keys = state
        .sessions
        .as_deref()
        .ok_or_else(|| StsError::new(500, "InternalFailure", "no session key is configured"))?;
    let session_name = input.role.session_name.clone();
    let principal_arn = session::assumed_role_arn(&role.arn, &session_name).ok_or_else(denied)?;
    let expires = secs.saturating_add(duration);
    let claims = SessionClaims {
        access_key_id: String::new(),
        principal_arn: principal_arn.clone(),
        role_arn: Some(role.arn.clone()),
        unique_id: role.role_id.clone(),
        session_name: session_name.clone(),
        policy: input.role.policy.take(),
        policy_arns: std::mem::take(&mut input.role.policy_arns),
        tags: Vec::new(),
        transitive_tag_keys: Vec::new(),
        source_identity: None,
        issued: secs,
        expires,
        chained: false,
        mfa: false,
        ec2: None,
    };
    let creds = keys
        .issue(claims)
        .map_err(|e| StsError::new(500, "InternalFailure", e.to_string()))?;
    tracing::info!(
        provider = %provider_arn,
        subject = %token.sub,
        role = %role.arn,
        session = %session_name,
        access_key_id = %creds.access_key_id,
        duration,
        "STS: web identity role session issued"
    );
    let assumed_id = format!(
        "{}:{session_name}",
        role.role_id.clone().unwrap_or_else(|| role
            .arn
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned())
    );
    let audience = token
        .azp
        .clone()
        .or_else(|| {
            token
                .aud
                .iter()
                .find(|a| provider.audiences.contains(a))
                .cloned()
        })
        .unwrap_or_default();
    let mut result = vec![
        credentials_node(&creds, expires),
        Node::Leaf("SubjectFromWebIdentityToken", token.sub.clone()),
        Node::Group(
            "AssumedRoleUser",
            vec![
                Node::Leaf("Arn", principal_arn),
                Node::Leaf("AssumedRoleId", assumed_id),
            ],
        ),
        Node::Leaf("Provider", token.issuer.clone()),
        Node::Leaf("Audience", audience),
    ];
    if input.role.packed > 0 {
        result.push(Node::Leaf(
            "PackedPolicySize",
            input.role.packed_policy_size().to_string(),
        ));
    }
    Ok(result_xml(ACTION, &result, request_id))
}
