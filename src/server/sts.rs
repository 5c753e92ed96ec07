//! The STS Query API listener (`--sts-listen`, TLS with the API
//! listeners' `--tls-cert`/`--tls-key` when given): `GetCallerIdentity`,
//! `AssumeRole`, `GetSessionToken` and `DecodeAuthorizationMessage`,
//! answered in STS's XML so that the AWS CLI and SDKs (`--endpoint-url`)
//! parse every answer and error.
//!
//! Every request is SigV4-verified first (service `sts`, `--sts-region`):
//! the caller is the IAM user whose active key signed, or the session whose
//! temporary credentials signed; nothing the client says otherwise names
//! it. Decisions go through [`AppState::decide_owned`] (metrics, decision
//! log) as the caller: `AssumeRole` needs the caller's policies (with the
//! SCPs of the caller's account) and the role's trust policy to allow
//! `sts:AssumeRole` (plus `sts:TagSession` with tags and
//! `sts:SetSourceIdentity` with a source identity), as IAM evaluates a role
//! trust policy. Credentials are sealed with [`crate::identity::session`];
//! secrets are never logged.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::bundle::AuthzRequest;
use crate::engine::{ContextValue, Outcome};
use crate::identity::sigv4::AmbiguousHeader;
use crate::identity::time::{epoch_secs, iso8601};
use crate::identity::{
    Caller, Expected, HeaderSource, IssuedCredentials, SessionClaims, SessionKeys, SignedRequest,
};
use crate::server::http_util::Body;
use crate::server::state::AppState;
use crate::sts::params::{self, AssumeRoleInput, Params};
use crate::sts::response::{Node, StsError, result_xml};
use crate::sts::session;
use crate::telemetry::Frontend;

const FRONTEND: Frontend = Frontend::Sts;

/// Why the STS listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum StsSetupError {
    #[error("{0}")]
    SessionKey(#[from] crate::identity::SessionKeyError),
    #[error("--sts-listen needs --session-key (the keys that seal the credentials it issues)")]
    NoSessionKey,
    #[error(transparent)]
    Oidc(#[from] crate::identity::oidc::OidcConfigError),
    #[error("--oidc-provider needs --sts-listen (AssumeRoleWithWebIdentity is served there)")]
    OidcWithoutSts,
    #[error("cannot read --mfa-devices `{path}`: {source}")]
    MfaDevicesRead {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--mfa-devices `{path}`: {error}")]
    MfaDevices {
        path: String,
        error: crate::identity::mfa::MfaDevicesError,
    },
}

/// Loads `--session-key` into the state (and checks that `--sts-listen`
/// has one).
pub fn with_session_keys(
    mut state: AppState,
    config: &crate::server::config::ServeConfig,
) -> Result<AppState, StsSetupError> {
    match &config.session_key {
        Some(path) => {
            let keys = SessionKeys::from_file(path)?;
            tracing::info!(
                path = %path.display(),
                sealing_key_id = keys.sealing_key_id(),
                "session keys loaded"
            );
            state.sessions = Some(Arc::new(keys));
        }
        None if config.sts_listen.is_some() => return Err(StsSetupError::NoSessionKey),
        None => {}
    }
    if let Some(path) = &config.mfa_devices {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| StsSetupError::MfaDevicesRead {
            path: shown.clone(),
            source,
        })?;
        let devices = crate::identity::mfa::MfaDevices::from_json(&bytes)
            .map_err(|error| StsSetupError::MfaDevices { path: shown, error })?;
        tracing::info!(path = %path.display(), devices = devices.len(), "MFA devices loaded");
        state.mfa = Some(Arc::new(devices));
    }
    Ok(state)
}

/// Answers one STS request.
pub async fn handle(
    state: std::sync::Arc<AppState>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let request_id = uuid::Uuid::new_v4().to_string();
    match serve(&state, req, peer, &request_id).await {
        Ok(xml) => xml_response(StatusCode::OK, xml),
        Err(e) => {
            let reason = match e.status {
                500.. => "internal",
                401 | 403 if e.code != "AccessDenied" => "unauthenticated",
                403 => "denied",
                _ => "bad_request",
            };
            if reason != "denied" {
                state.metrics.request_error(FRONTEND, reason);
            }
            let status =
                StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            xml_response(status, e.to_xml(&request_id))
        }
    }
}

fn xml_response(status: StatusCode, xml: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(xml)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/xml"),
    );
    r
}

/// Who called, once the signature is verified.
struct Who {
    arn: String,
    /// `aws:userid` (and `GetCallerIdentity`'s `UserId`).
    user_id: Option<String>,
    session: Option<Box<SessionClaims>>,
    /// This request's id (`RequestId` of the answer).
    request_id: String,
}

async fn serve(
    state: &AppState,
    req: Request<Incoming>,
    peer: SocketAddr,
    request_id: &str,
) -> Result<String, StsError> {
    let (parts, body) = req.into_parts();
    if parts.method != http::Method::POST && parts.method != http::Method::GET {
        return Err(StsError::new(
            405,
            "InvalidAction",
            "STS answers GET and POST only",
        ));
    }
    let limits = state.config.limits;
    let body = tokio::time::timeout(
        limits.request_timeout,
        crate::server::http_util::read_body(
            Request::from_parts(parts.clone(), body),
            limits.max_body_bytes,
        ),
    )
    .await
    .map_err(|_| StsError::new(408, "RequestTimeout", "the request body took too long"))?
    .map_err(|e| match e {
        crate::server::errors::ServeError::TooLarge(_) => {
            StsError::new(413, "RequestEntityTooLarge", e.to_string())
        }
        other => StsError::new(400, "InvalidParameterValue", other.to_string()),
    })?;
    let now = SystemTime::now();
    // AssumeRoleWithWebIdentity is unsigned: its token is the credential.
    if let Some(answer) =
        crate::server::sts_web_identity::dispatch(state, &parts, &body, peer, now, request_id).await
    {
        return answer;
    }
    let mut who = verify(state, &parts, &body, now)?;
    who.request_id = request_id.to_owned();
    let body_text = std::str::from_utf8(&body)
        .map_err(|_| StsError::validation("the body is not UTF-8 form data"))?;
    let query = parts.uri.query().unwrap_or_default();
    let params = Params::parse(query, body_text)?;
    let action = params.get("Action").unwrap_or_default().to_owned();
    match action.as_str() {
        "GetCallerIdentity" => get_caller_identity(&who),
        "AssumeRole" => assume_role(state, &who, &params, peer, now).await,
        "GetSessionToken" => get_session_token(state, &who, &params, now),
        "DecodeAuthorizationMessage" => decode_message(state, &who, &params, peer, now).await,
        other => Err(StsError::new(
            400,
            "InvalidAction",
            format!(
                "Could not find operation {} for version 2011-06-15",
                params::printable(other)
            ),
        )),
    }
}

/// A request's headers as SigV4 reads them.
struct Headers<'h>(&'h HeaderMap);

impl HeaderSource for Headers<'_> {
    fn header(&self, name: &str) -> Result<Option<Cow<'_, str>>, AmbiguousHeader> {
        let mut values = self.0.get_all(name).iter();
        let Some(first) = values.next() else {
            return Ok(None);
        };
        let first = first.to_str().map_err(|_| AmbiguousHeader)?;
        let mut joined = Cow::Borrowed(first);
        for v in values {
            let v = v.to_str().map_err(|_| AmbiguousHeader)?;
            let s = joined.to_mut();
            s.push(',');
            s.push_str(v);
        }
        Ok(Some(joined))
    }
}

/// Verifies the signature and names the caller.
fn verify(
    state: &AppState,
    parts: &http::request::Parts,
    body: &[u8],
    now: SystemTime,
) -> Result<Who, StsError> {
    let refused = |e: crate::identity::SigV4Error| {
        tracing::debug!(code = e.sts_code(), "STS: SigV4 signature refused");
        StsError::new(e.sts_status(), e.sts_code(), e.to_string())
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or_default();
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let headers = Headers(&parts.headers);
    let request = SignedRequest {
        method: parts.method.as_str(),
        target,
        host,
        headers: &headers,
        body,
    };
    let expected = Expected {
        region: &state.config.sts_region,
        service: crate::sts::SIGNING_SERVICE,
    };
    let store = state.credentials.load();
    let caller =
        crate::identity::verify_caller(&request, &store, state.sessions.as_deref(), expected, now)
            .map_err(refused)?;
    match caller {
        Caller::Session(claims) => Ok(Who {
            arn: claims.principal_arn.clone(),
            user_id: session::user_id(&claims),
            session: Some(claims),
            request_id: String::new(),
        }),
        Caller::Key(key) => {
            let snapshot = state.snapshot().map_err(|_| not_ready())?;
            let arn = key.resolve_user(&snapshot).map_err(|e| {
                tracing::warn!(
                    access_key_id = %key.access_key_id,
                    user = %key.user_name,
                    error = %e,
                    "a valid access key names no user of the bundle; refused"
                );
                refused(crate::identity::SigV4Error::UnknownKey)
            })?;
            let user_id = snapshot.user(arn).flatten().map(str::to_owned);
            Ok(Who {
                arn: arn.to_owned(),
                user_id,
                session: None,
                request_id: String::new(),
            })
        }
    }
}

pub(crate) fn not_ready() -> StsError {
    StsError::new(503, "ServiceUnavailable", "no policy bundle is loaded yet")
}

fn get_caller_identity(who: &Who) -> Result<String, StsError> {
    Ok(result_xml(
        "GetCallerIdentity",
        &[
            Node::Leaf("Arn", who.arn.clone()),
            Node::Leaf(
                "UserId",
                who.user_id
                    .clone()
                    .unwrap_or_else(|| who.arn.rsplit('/').next().unwrap_or_default().to_owned()),
            ),
            Node::Leaf("Account", session::account_of(&who.arn).to_owned()),
        ],
        &who.request_id,
    ))
}

/// The caller's request for `action` on `resource`, with the keys AWS sets
/// for every request and the caller's (or session's) keys.
fn request_for(
    state: &AppState,
    who: &Who,
    action: &str,
    resource: &str,
    peer: SocketAddr,
    now: SystemTime,
) -> AuthzRequest {
    let mut req = AuthzRequest {
        principal_arn: who.arn.clone(),
        action: action.to_owned(),
        resource: resource.to_owned(),
        ..AuthzRequest::default()
    };
    insert_request_keys(state, peer, now, &mut req.context);
    match &who.session {
        Some(claims) => session::apply(claims, &mut req),
        None => {
            if let Some(id) = &who.user_id {
                req.context
                    .insert_static("aws:userid", ContextValue::One(id.clone()));
            }
        }
    }
    req
}

/// The keys AWS sets in every STS request: source address, transport,
/// time and the endpoint's region.
pub(crate) fn insert_request_keys(
    state: &AppState,
    peer: SocketAddr,
    now: SystemTime,
    c: &mut crate::engine::Context,
) {
    let secs = epoch_secs(now);
    c.insert_static("aws:SourceIp", ContextValue::One(peer.ip().to_string()));
    let secure = state.config.tls.is_some();
    c.insert_static("aws:SecureTransport", ContextValue::One(secure.to_string()));
    c.insert_static("aws:CurrentTime", ContextValue::One(iso8601(secs)));
    c.insert_static("aws:EpochTime", ContextValue::One(secs.to_string()));
    c.insert_static(
        "aws:RequestedRegion",
        ContextValue::One(state.config.sts_region.clone()),
    );
}

/// Decides `req` on the STS front door; serving errors as STS words them.
pub(crate) async fn decide(state: &AppState, req: AuthzRequest) -> Result<Outcome, StsError> {
    let d = state
        .decide_owned(FRONTEND, req, None)
        .await
        .map_err(|e| match e {
            crate::server::errors::ServeError::NotReady => not_ready(),
            crate::server::errors::ServeError::BadRequest(m) => {
                StsError::new(400, "InvalidParameterValue", m)
            }
            other => StsError::new(500, "InternalFailure", other.to_string()),
        })?;
    Ok(d.answer.decision)
}

/// Decides `req`; anything but an allow is STS's `AccessDenied`.
async fn require(state: &AppState, req: AuthzRequest) -> Result<(), StsError> {
    let (principal, action, resource) = (
        req.principal_arn.clone(),
        req.action.clone(),
        req.resource.clone(),
    );
    if decide(state, req).await? == Outcome::Allowed {
        Ok(())
    } else {
        Err(StsError::access_denied(&principal, &action, &resource))
    }
}

async fn assume_role(
    state: &AppState,
    who: &Who,
    params: &Params,
    peer: SocketAddr,
    now: SystemTime,
) -> Result<String, StsError> {
    let mut input = AssumeRoleInput::parse(params)?;
    let mfa = check_mfa(state, who, params, now)?;
    let snapshot = state.snapshot().map_err(|_| not_ready())?;
    let deny = || StsError::access_denied(&who.arn, "sts:AssumeRole", &input.role_arn);
    let role = snapshot.role(&input.role_arn).ok_or_else(deny)?;
    let caller_session = who.session.as_deref();
    // Role chaining: a role session assuming a role gets at most an hour.
    let chained = caller_session.is_some_and(|s| s.role_arn.is_some());
    let duration = input.duration.unwrap_or(3600);
    if chained && duration > params::CHAINED_MAX_DURATION {
        return Err(StsError::validation(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
        ));
    }
    if duration > role.max_session_duration {
        return Err(StsError::validation(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        ));
    }
    for arn in &input.policy_arns {
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
    // A chained session keeps the caller's transitive tags (which the new
    // tags may not override) and its source identity (which may not change).
    let mut tags = input.tags.clone();
    let mut transitive = input.transitive_tag_keys.clone();
    let mut source_identity = input.source_identity.clone();
    if let Some(s) = caller_session.filter(|_| chained) {
        for key in &s.transitive_tag_keys {
            if input.tags.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)) {
                return Err(StsError::new(
                    400,
                    "InvalidParameterValue",
                    "One or more of the specified transitive tag keys can't be set because it conflicts with a transitive tag key from the calling session.",
                ));
            }
            if let Some((k, v)) = s.tags.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
                tags.push((k.clone(), v.clone()));
                transitive.push(k.clone());
            }
        }
        if let Some(prior) = &s.source_identity {
            if input.source_identity.as_ref().is_some_and(|n| n != prior) {
                return Err(StsError::access_denied(
                    &who.arn,
                    "sts:SetSourceIdentity",
                    &input.role_arn,
                ));
            }
            source_identity = Some(prior.clone());
        }
    }

    let base = {
        let mut r = request_for(state, who, "sts:AssumeRole", &role.arn, peer, now);
        let c = &mut r.context;
        c.insert_static(
            "sts:RoleSessionName",
            ContextValue::One(input.session_name.clone()),
        );
        if let Some(e) = &input.external_id {
            c.insert_static("sts:ExternalId", ContextValue::One(e.clone()));
        }
        // A code verified with this request: MFA is present, just now
        // (what a trust policy's `aws:MultiFactorAuthPresent` checks).
        if mfa {
            c.insert_static(
                "aws:MultiFactorAuthPresent",
                ContextValue::One("true".to_owned()),
            );
            c.insert_static("aws:MultiFactorAuthAge", ContextValue::One("0".to_owned()));
        }
        if let Some(s) = &input.source_identity {
            c.insert_static("sts:SourceIdentity", ContextValue::One(s.clone()));
        }
        if !input.tags.is_empty() {
            for (k, v) in &input.tags {
                c.insert(&format!("aws:RequestTag/{k}"), ContextValue::One(v.clone()));
            }
            c.insert_static(
                "aws:TagKeys",
                ContextValue::Many(input.tags.iter().map(|(k, _)| k.clone()).collect()),
            );
        }
        if !input.transitive_tag_keys.is_empty() {
            c.insert_static(
                "sts:TransitiveTagKeys",
                ContextValue::Many(input.transitive_tag_keys.clone()),
            );
        }
        r
    };
    require(state, base.clone()).await?;
    // Session tags, passed or carried on as transitive ones, need the
    // role's trust policy to allow sts:TagSession.
    if !tags.is_empty() {
        let mut r = base.clone();
        r.action = "sts:TagSession".into();
        require(state, r).await?;
    }
    if input.source_identity.is_some() {
        let mut r = base;
        r.action = "sts:SetSourceIdentity".into();
        require(state, r).await?;
    }

    let keys = state
        .sessions
        .as_deref()
        .ok_or_else(|| StsError::new(500, "InternalFailure", "no session key is configured"))?;
    let principal_arn =
        session::assumed_role_arn(&role.arn, &input.session_name).ok_or_else(deny)?;
    let issued = epoch_secs(now);
    let claims = SessionClaims {
        access_key_id: String::new(),
        principal_arn: principal_arn.clone(),
        role_arn: Some(role.arn.clone()),
        unique_id: role.role_id.clone(),
        session_name: input.session_name.clone(),
        policy: input.policy.take(),
        policy_arns: std::mem::take(&mut input.policy_arns),
        tags,
        transitive_tag_keys: transitive,
        source_identity: source_identity.clone(),
        issued,
        expires: issued.saturating_add(duration),
        chained,
        mfa,
        ec2: None,
    };
    let creds = keys
        .issue(claims)
        .map_err(|e| StsError::new(500, "InternalFailure", e.to_string()))?;
    tracing::info!(
        caller = %who.arn,
        role = %role.arn,
        session = %input.session_name,
        access_key_id = %creds.access_key_id,
        duration,
        chained,
        "STS: role session issued"
    );
    let assumed_id = format!(
        "{}:{}",
        role.role_id.clone().unwrap_or_else(|| role
            .arn
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned()),
        input.session_name
    );
    let mut result = vec![
        Node::Group(
            "AssumedRoleUser",
            vec![
                Node::Leaf("Arn", principal_arn),
                Node::Leaf("AssumedRoleId", assumed_id),
            ],
        ),
        credentials_node(&creds, issued.saturating_add(duration)),
    ];
    if input.packed > 0 {
        result.push(Node::Leaf(
            "PackedPolicySize",
            input.packed_policy_size().to_string(),
        ));
    }
    if let Some(s) = source_identity {
        result.push(Node::Leaf("SourceIdentity", s));
    }
    Ok(result_xml("AssumeRole", &result, &who.request_id))
}

pub(crate) fn credentials_node(creds: &IssuedCredentials, expires: u64) -> Node {
    Node::Group(
        "Credentials",
        vec![
            Node::Leaf("AccessKeyId", creds.access_key_id.clone()),
            Node::Leaf("SecretAccessKey", creds.secret_access_key.clone()),
            Node::Leaf("SessionToken", creds.session_token.clone()),
            Node::Leaf("Expiration", iso8601(expires)),
        ],
    )
}

/// `SerialNumber` + `TokenCode` of `GetSessionToken` / `AssumeRole`:
/// whether a virtual MFA device of the caller's (`--mfa-devices`) verified
/// the code now (TOTP, never twice). Without configured devices the fields
/// are accepted and MFA is reported absent; with them a missing half, a
/// device that is not the caller's, a wrong or reused code is
/// `AccessDenied`.
fn check_mfa(
    state: &AppState,
    who: &Who,
    params: &Params,
    now: SystemTime,
) -> Result<bool, StsError> {
    let (serial, code) = (params.get("SerialNumber"), params.get("TokenCode"));
    if serial.is_none() && code.is_none() {
        return Ok(false);
    }
    let Some(devices) = state.mfa.as_deref() else {
        return Ok(false);
    };
    let denied =
        |e: crate::identity::mfa::MfaError| StsError::new(403, "AccessDenied", e.to_string());
    let (Some(serial), Some(code)) = (serial, code) else {
        return Err(denied(crate::identity::mfa::MfaError::Incomplete));
    };
    // MFA devices belong to IAM users: a role session's caller has none.
    let user = match &who.session {
        Some(s) if s.role_arn.is_some() => {
            return Err(denied(crate::identity::mfa::MfaError::Invalid));
        }
        _ => who.arn.as_str(),
    };
    devices
        .verify(serial, user, code, epoch_secs(now))
        .map_err(denied)?;
    tracing::info!(caller = %who.arn, serial = %params::printable(serial), "STS: MFA code verified");
    Ok(true)
}

fn get_session_token(
    state: &AppState,
    who: &Who,
    params: &Params,
    now: SystemTime,
) -> Result<String, StsError> {
    if who.session.is_some() {
        return Err(StsError::new(
            403,
            "AccessDenied",
            "Cannot call GetSessionToken with session credentials",
        ));
    }
    let duration = params::session_token_duration(params)?;
    let keys = state
        .sessions
        .as_deref()
        .ok_or_else(|| StsError::new(500, "InternalFailure", "no session key is configured"))?;
    let mfa = check_mfa(state, who, params, now)?;
    let issued = epoch_secs(now);
    let claims = SessionClaims {
        access_key_id: String::new(),
        principal_arn: who.arn.clone(),
        role_arn: None,
        unique_id: who.user_id.clone(),
        session_name: String::new(),
        policy: None,
        policy_arns: Vec::new(),
        tags: Vec::new(),
        transitive_tag_keys: Vec::new(),
        source_identity: None,
        issued,
        expires: issued.saturating_add(duration),
        chained: false,
        mfa,
        ec2: None,
    };
    let creds = keys
        .issue(claims)
        .map_err(|e| StsError::new(500, "InternalFailure", e.to_string()))?;
    tracing::info!(
        caller = %who.arn,
        mfa,
        access_key_id = %creds.access_key_id,
        duration,
        "STS: session token issued"
    );
    Ok(result_xml(
        "GetSessionToken",
        &[credentials_node(&creds, issued.saturating_add(duration))],
        &who.request_id,
    ))
}

async fn decode_message(
    state: &AppState,
    who: &Who,
    params: &Params,
    peer: SocketAddr,
    now: SystemTime,
) -> Result<String, StsError> {
    if let Some(k) = params.unknown(&["EncodedMessage"]) {
        return Err(StsError::new(
            400,
            "InvalidParameterValue",
            format!("unknown parameter `{}`", params::printable(k)),
        ));
    }
    let encoded = params.get("EncodedMessage").ok_or_else(|| {
        StsError::validation(
            "1 validation error detected: Value null at 'encodedMessage' failed to satisfy constraint: Member must not be null",
        )
    })?;
    let req = request_for(state, who, "sts:DecodeAuthorizationMessage", "*", peer, now);
    require(state, req).await?;
    let decoded = state.config.message_key.decode(encoded).map_err(|_| {
        StsError::new(
            400,
            "InvalidAuthorizationMessageException",
            "The encoded authorization message is invalid.",
        )
    })?;
    Ok(result_xml(
        "DecodeAuthorizationMessage",
        &[Node::Leaf("DecodedMessage", decoded.to_string())],
        &who.request_id,
    ))
}
