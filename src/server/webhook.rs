//! Kubernetes webhooks (`--webhook-listen`, HTTPS only): a thin adapter
//! that reads the API server's reviews ([`crate::k8s::review`]), finds the
//! user's IAM principal ([`crate::k8s::identity`]), maps the request
//! ([`crate::k8s::ack`] → [`crate::ec2::mapping`], the same mapping the EC2
//! Query API goes through) and decides on the shared decision path
//! ([`AppState::decide_on`]: one snapshot per review, its revision, the
//! `webhook` front door's metrics, a span and the decision log).
//!
//! - `POST /admission`: `admission.k8s.io/v1` AdmissionReview for the ACK
//!   EC2 kinds. Every EC2 call the object causes must be allowed, and the
//!   cross-account image/snapshot permissions must pass; a deny is
//!   `allowed: false` with EC2's `UnauthorizedOperation` wording. Every
//!   answer echoes the `uid` and carries `auditAnnotations` (decision ids,
//!   revision, principal) and `warnings` (context keys the policies needed
//!   but the object lacked, calls not authorized here). The controller's
//!   own writes, subresource writes and updates that leave the spec alone
//!   pass without a decision.
//! - `POST /authorize`: `authorization.k8s.io/v1` SubjectAccessReview.
//!   `allowed` when a mapped action is allowed, `denied` only when every
//!   mapped action is explicitly denied, otherwise no opinion (RBAC
//!   decides; `--webhook-implicit-deny deny` turns it into `denied`), with
//!   the deciding statement in `reason` and failures in `evaluationError`.
//!
//! A review that cannot be read is answered 400 (or, when its `uid` can be
//! read, `allowed: false` with the error), never allowed. It holds no
//! policy or mapping semantics of its own.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use http::{Response, StatusCode};

use crate::bundle::{AuthzRequest, Snapshot};
use crate::ec2::mapping::{Authorization, Ec2Call, InstanceProfile, map_call_with};
use crate::ec2::query::QueryParams;
use crate::ec2::response as ec2_response;
use crate::ec2::service::Ec2Service;
use crate::engine::{Context, ContextValue, Outcome};
use crate::k8s::ack::{self, AckKind, ControllerTag};
use crate::k8s::identity::{AwsAuth, PrincipalMapper};
use crate::k8s::review::{
    self, AccessReviewStatus, AdmissionRequest, AdmissionResponse, Attributes, Status,
};
use crate::policy::{AccountId, Region};
use crate::server::errors::ServeError;
use crate::server::http_util::{Body, json as json_response};
use crate::server::router::{JsonBody, with_fallbacks};
use crate::server::state::{AppState, Decided};
use crate::sts::message::AuthorizationMessage;
use crate::telemetry::Frontend;

/// The admission path.
pub const ADMISSION_PATH: &str = "/admission";
/// The authorization (SubjectAccessReview) path.
pub const AUTHORIZE_PATH: &str = "/authorize";

/// What an unmapped user's admission request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unmapped {
    /// Refused (the default: the controller would act on its own role).
    #[default]
    Deny,
    /// Allowed, with a warning.
    Allow,
}

impl std::str::FromStr for Unmapped {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "deny" => Ok(Unmapped::Deny),
            "allow" => Ok(Unmapped::Allow),
            other => Err(format!("`{other}`: expected `deny` or `allow`")),
        }
    }
}

/// What an implicit deny answers to a SubjectAccessReview.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImplicitDeny {
    /// No opinion: the next authorizer (RBAC) decides.
    #[default]
    NoOpinion,
    /// `denied: true`.
    Deny,
}

impl std::str::FromStr for ImplicitDeny {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "no-opinion" => Ok(ImplicitDeny::NoOpinion),
            "deny" => Ok(ImplicitDeny::Deny),
            other => Err(format!("`{other}`: expected `no-opinion` or `deny`")),
        }
    }
}

/// A namespace's defaults, as the ACK controller reads them from the
/// namespace's annotations: `NAMESPACE=REGION[/ACCOUNT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceDefault {
    pub namespace: String,
    pub region: Option<String>,
    pub account: Option<String>,
}

impl std::str::FromStr for NamespaceDefault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (namespace, rest) = s
            .split_once('=')
            .ok_or_else(|| format!("expected NAMESPACE=REGION[/ACCOUNT], got `{s}`"))?;
        let (region, account) = match rest.split_once('/') {
            Some((r, a)) => (r, Some(a)),
            None => (rest, None),
        };
        let region = (!region.is_empty()).then(|| region.to_owned());
        if let Some(r) = &region
            && !Region::is_valid(r)
        {
            return Err(format!("`{r}` is not a region name"));
        }
        if let Some(a) = account
            && !AccountId::is_valid(a)
        {
            return Err(format!("`{a}` is not a 12-digit account id"));
        }
        Ok(Self {
            namespace: namespace.to_owned(),
            region,
            account: account.map(str::to_owned),
        })
    }
}

/// The webhook listener's settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub listen: SocketAddr,
    /// HTTPS only: the API server requires TLS.
    pub tls: crate::server::tls::TlsFiles,
    /// The controller's own users (`system:serviceaccount:NS:NAME`): their
    /// writes are the controller's bookkeeping, not a user's EC2 call.
    pub controller_users: Vec<String>,
    /// An `aws-auth` ConfigMap (YAML) to read usernames back through.
    pub aws_auth: Option<std::path::PathBuf>,
    /// Identify users only by the IAM authenticator's `extra`.
    pub require_extra: bool,
    pub unmapped_admission: Unmapped,
    pub implicit_deny: ImplicitDeny,
    /// The controller's region (`--aws-region`) and account.
    pub region: Option<String>,
    pub account: Option<String>,
    pub namespace_defaults: Vec<NamespaceDefault>,
    /// The controller's `--resource-tags`.
    pub controller_tags: Vec<ControllerTag>,
    /// A tag whose value is the object's name on the resources the
    /// controller created (with the `services.k8s.aws/namespace` tag), so
    /// that SubjectAccessReviews on a named object find its resource.
    pub name_tag: Option<String>,
    /// SubjectAccessReview templates for other resources and for
    /// non-resource URLs (`{verb}`, `{group}`, `{version}`, `{resource}`,
    /// `{subresource}`, `{namespace}`, `{name}`; `{path}`).
    pub resource_action: Option<String>,
    pub resource_arn: Option<String>,
    pub non_resource_action: Option<String>,
    pub non_resource_arn: Option<String>,
}

/// Why the webhook cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("--webhook-aws-auth `{path}`: {message}")]
    AwsAuth { path: String, message: String },
}

/// The webhook's state next to [`AppState`].
#[derive(Debug)]
pub struct Webhook {
    config: WebhookConfig,
    /// Swapped whole when the aws-auth file changes (a file that no longer
    /// parses keeps the previous mapping).
    principals: arc_swap::ArcSwap<PrincipalMapper>,
}

fn read_aws_auth(path: &std::path::Path) -> Result<AwsAuth, WebhookError> {
    let bad = |message: String| WebhookError::AwsAuth {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    AwsAuth::parse(&text).map_err(|e| bad(e.to_string()))
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Webhook {
    /// Reads the aws-auth mapping (a bad one stops the start).
    pub fn new(config: WebhookConfig) -> Result<Self, WebhookError> {
        let aws_auth = config.aws_auth.as_deref().map(read_aws_auth).transpose()?;
        Ok(Self {
            principals: arc_swap::ArcSwap::from_pointee(PrincipalMapper {
                aws_auth,
                require_extra: config.require_extra,
            }),
            config,
        })
    }

    /// Re-reads the aws-auth file every `interval` when it changes (a
    /// ConfigMap update); a file that does not parse is logged and the
    /// previous mapping keeps serving.
    pub fn watch_aws_auth(self: &Arc<Self>, interval: std::time::Duration) {
        let Some(path) = self.config.aws_auth.clone() else {
            return;
        };
        let hook = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut seen = modified(&path);
            loop {
                tokio::time::sleep(interval).await;
                let Some(hook) = hook.upgrade() else { return };
                let now = modified(&path);
                if now == seen {
                    continue;
                }
                seen = now;
                match read_aws_auth(&path) {
                    Ok(map) => {
                        hook.principals.store(Arc::new(PrincipalMapper {
                            aws_auth: Some(map),
                            require_extra: hook.config.require_extra,
                        }));
                        tracing::info!(path = %path.display(), "aws-auth mapping reloaded");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "aws-auth mapping unusable; keeping the previous one");
                    }
                }
            }
        });
    }

    fn namespace_default(&self, namespace: &str) -> Option<&NamespaceDefault> {
        self.config
            .namespace_defaults
            .iter()
            .find(|d| d.namespace == namespace)
    }

    /// The region of an object: its annotation, the namespace's default,
    /// the controller's region.
    fn region(
        &self,
        object: Option<&serde_json::Value>,
        namespace: &str,
    ) -> Result<String, Refused> {
        if let Some(r) = object.and_then(|o| ack::annotation(o, ack::REGION_ANNOTATION)) {
            if !Region::is_valid(r) {
                return Err(Refused::bad(format!(
                    "annotation `{}` is `{r}`, not a region name",
                    ack::REGION_ANNOTATION
                )));
            }
            return Ok(r.to_owned());
        }
        self.namespace_default(namespace)
            .and_then(|d| d.region.clone())
            .or_else(|| self.config.region.clone())
            .ok_or_else(|| Refused {
                code: 500,
                reason: "InternalError",
                message:
                    "no region: the object has no region annotation and --webhook-region is not set"
                        .into(),
            })
    }

    /// The account that owns the object's resource.
    fn account(
        &self,
        object: Option<&serde_json::Value>,
        namespace: &str,
        principal: &str,
    ) -> Result<String, Refused> {
        if let Some(a) = object.and_then(|o| ack::annotation(o, ack::ACCOUNT_ANNOTATION)) {
            if !AccountId::is_valid(a) {
                return Err(Refused::bad(format!(
                    "annotation `{}` is `{a}`, not a 12-digit account id",
                    ack::ACCOUNT_ANNOTATION
                )));
            }
            return Ok(a.to_owned());
        }
        Ok(self
            .namespace_default(namespace)
            .and_then(|d| d.account.clone())
            .or_else(|| self.config.account.clone())
            .unwrap_or_else(|| principal_account(principal).to_owned()))
    }
}

fn principal_account(principal: &str) -> &str {
    principal.split(':').nth(4).unwrap_or_default()
}

/// What the webhook listener's handlers share.
#[derive(Clone)]
struct Hooked {
    state: Arc<AppState>,
    hook: Arc<Webhook>,
}

impl axum::extract::FromRef<Hooked> for crate::server::config::Limits {
    fn from_ref(h: &Hooked) -> Self {
        h.state.config.limits
    }
}

/// The routes of the webhook listener (served by
/// [`crate::server::router`], counting errors as the `webhook` front
/// door's).
pub fn router(state: Arc<AppState>, hook: Arc<Webhook>) -> Router {
    with_fallbacks(
        Router::new()
            .route(ADMISSION_PATH, post(admission_review))
            .route(AUTHORIZE_PATH, post(access_review)),
    )
    .with_state(Hooked { state, hook })
}

/// `POST /admission`.
async fn admission_review(
    State(Hooked { state, hook }): State<Hooked>,
    JsonBody(body): JsonBody,
) -> Result<Response<Body>, ServeError> {
    let now = SystemTime::now();
    let request = match review::parse_admission(&body) {
        Ok(r) => r,
        Err((e, Some(uid))) => {
            state
                .metrics
                .request_error(Frontend::Webhook, "bad_request");
            let r = AdmissionResponse {
                uid,
                allowed: false,
                status: Some(Status {
                    code: 400,
                    message: format!("malformed AdmissionReview: {e}"),
                    reason: "BadRequest".into(),
                }),
                warnings: Vec::new(),
                audit_annotations: BTreeMap::new(),
            };
            return Ok(ok_json(&r.review()));
        }
        Err((e, None)) => {
            return Err(ServeError::BadRequest(format!("AdmissionReview: {e}")));
        }
    };
    Ok(ok_json(&admit(&state, &hook, &request, now).review()))
}

/// `POST /authorize`.
async fn access_review(
    State(Hooked { state, hook }): State<Hooked>,
    JsonBody(body): JsonBody,
) -> Result<Response<Body>, ServeError> {
    let now = SystemTime::now();
    let review = review::parse_access_review(&body)
        .map_err(|e| ServeError::BadRequest(format!("SubjectAccessReview: {e}")))?;
    Ok(ok_json(&authorize(&state, &hook, &review, now).review()))
}

fn ok_json(v: &serde_json::Value) -> Response<Body> {
    json_response(StatusCode::OK, v.to_string().into_bytes())
}

// ---- admission -----------------------------------------------------------

/// A refusal before or outside a decision.
#[derive(Debug)]
struct Refused {
    code: u16,
    reason: &'static str,
    message: String,
}

impl Refused {
    fn bad(message: String) -> Self {
        Self {
            code: 400,
            reason: "BadRequest",
            message,
        }
    }

    /// The server's own failure (never the caller's): a 500.
    fn internal(e: &ServeError) -> Self {
        Self {
            code: 500,
            reason: "InternalError",
            message: e.to_string(),
        }
    }
}

fn admission(uid: &str, allowed: bool) -> AdmissionResponse {
    AdmissionResponse {
        uid: uid.to_owned(),
        allowed,
        status: None,
        warnings: Vec::new(),
        audit_annotations: BTreeMap::new(),
    }
}

fn passed(uid: &str, why: &str) -> AdmissionResponse {
    let mut r = admission(uid, true);
    r.audit_annotations
        .insert("no-ec2-call".into(), why.to_owned());
    r
}

/// Answers one admission request: every answer names the revision of the
/// snapshot it was given on (one snapshot per review).
fn admit(
    state: &AppState,
    hook: &Webhook,
    req: &AdmissionRequest,
    now: SystemTime,
) -> AdmissionResponse {
    let snapshot = state.snapshot();
    let mut resp = admit_on(state, hook, req, now, &snapshot);
    if let Ok(s) = &snapshot {
        resp.audit_annotations
            .entry("revision".into())
            .or_insert_with(|| s.revision().to_string());
    }
    resp
}

fn admit_on(
    state: &AppState,
    hook: &Webhook,
    req: &AdmissionRequest,
    now: SystemTime,
    snapshot: &Result<Arc<Snapshot>, ServeError>,
) -> AdmissionResponse {
    let refuse = |r: Refused, mut resp: AdmissionResponse| {
        if r.code != 403 {
            state.metrics.request_error(
                Frontend::Webhook,
                if r.code >= 500 {
                    "internal"
                } else {
                    "bad_request"
                },
            );
        }
        resp.allowed = false;
        resp.status = Some(Status {
            code: r.code,
            message: r.message,
            reason: r.reason.into(),
        });
        resp
    };
    let base = admission(&req.uid, false);
    let Some(kind) = AckKind::of_kind(&req.kind.group, &req.kind.kind) else {
        return refuse(
            Refused::bad(format!(
                "iamgate maps no EC2 call for kind `{}` of group `{}`",
                req.kind.kind, req.kind.group
            )),
            base,
        );
    };
    if !req.sub_resource.is_empty() {
        return passed(
            &req.uid,
            &format!("a write of subresource `{}`", req.sub_resource),
        );
    }
    if hook
        .config
        .controller_users
        .contains(&req.user_info.username)
    {
        return passed(&req.uid, "the controller's own write");
    }
    let plan = match ack::plan(
        kind,
        &req.operation,
        req.object.as_ref(),
        req.old_object.as_ref(),
        &hook.config.controller_tags,
    ) {
        Ok(p) => p,
        Err(e) => return refuse(Refused::bad(e.to_string()), base),
    };
    if plan.calls.is_empty() {
        let mut r = passed(&req.uid, plan.no_call.as_deref().unwrap_or("no EC2 call"));
        r.warnings = plan.warnings;
        return r;
    }
    let mut resp = base;
    resp.warnings = plan.warnings.clone();
    let (principal, source) = match hook.principals.load().principal(&req.user_info) {
        Ok(p) => p,
        Err(e) => {
            return match hook.config.unmapped_admission {
                Unmapped::Allow => {
                    resp.allowed = true;
                    resp.warnings.push(format!("not checked against IAM: {e}"));
                    resp.audit_annotations
                        .insert("unmapped".into(), e.to_string());
                    resp
                }
                Unmapped::Deny => refuse(
                    Refused {
                        code: 403,
                        reason: "Forbidden",
                        message: format!("no IAM principal: {e}"),
                    },
                    resp,
                ),
            };
        }
    };
    resp.audit_annotations
        .insert("principal".into(), principal.clone());
    resp.audit_annotations
        .insert("principal-source".into(), source.as_str().into());
    let object = req.object.as_ref().or(req.old_object.as_ref());
    let namespace = req.namespace.as_str();
    let region = match hook.region(object, namespace) {
        Ok(r) => r,
        Err(r) => return refuse(r, resp),
    };
    let account = match hook.account(object, namespace, &principal) {
        Ok(a) => a,
        Err(r) => return refuse(r, resp),
    };
    let snapshot = match snapshot {
        Ok(s) => s,
        Err(e) => {
            return refuse(
                Refused {
                    code: 503,
                    reason: "ServiceUnavailable",
                    message: e.to_string(),
                },
                resp,
            );
        }
    };
    resp.audit_annotations
        .insert("revision".into(), snapshot.revision().to_string());
    let mut ids = Vec::new();
    let mut missing = std::collections::BTreeSet::new();
    for intent in &plan.calls {
        match decide_call(
            state,
            snapshot,
            &intent.params,
            &principal,
            &region,
            &account,
            now,
        ) {
            Ok(decided) => {
                for d in &decided {
                    ids.push(d.decision_id.clone());
                    missing.extend(d.answer.missing_context_keys.iter().cloned());
                }
            }
            Err(CallRefusal { refused, decided }) => {
                if let Some(d) = &decided {
                    ids.push(d.decision_id.clone());
                    missing.extend(d.answer.missing_context_keys.iter().cloned());
                }
                resp.warnings.extend(missing_key_warnings(missing));
                resp.audit_annotations
                    .insert("decision-id".into(), ids.join(","));
                return refuse(refused, resp);
            }
        }
    }
    resp.warnings.extend(missing_key_warnings(missing));
    resp.audit_annotations
        .insert("decision-id".into(), ids.join(","));
    if req.dry_run == Some(true) {
        resp.audit_annotations
            .insert("dry-run".into(), "true".into());
    }
    resp.allowed = true;
    resp
}

fn missing_key_warnings(keys: std::collections::BTreeSet<String>) -> impl Iterator<Item = String> {
    keys.into_iter().map(|key| {
        format!("the policies read context key `{key}`, which this object does not give")
    })
}

struct CallRefusal {
    refused: Refused,
    decided: Option<Box<Decided>>,
}

impl From<Refused> for CallRefusal {
    fn from(refused: Refused) -> Self {
        Self {
            refused,
            decided: None,
        }
    }
}

/// Maps one EC2 call through the EC2 mapping and decides every
/// authorization it needs, then the owners' permissions, as the EC2 front
/// door does.
fn decide_call(
    state: &AppState,
    snapshot: &Arc<Snapshot>,
    params: &[(String, String)],
    principal: &str,
    region: &str,
    account: &str,
    now: SystemTime,
) -> Result<Vec<Decided>, CallRefusal> {
    let params = QueryParams::from_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| Refused::bad(format!("EC2 parameters: {e}")))?;
    let inventory = state
        .service::<Ec2Service>()
        .map_err(|e| Refused::internal(&e))?
        .inventory()
        .load();
    let profiles = |acct: &str, name: &str| {
        snapshot
            .instance_profile(acct, name)
            .map(|p| InstanceProfile {
                arn: p.arn.clone(),
                role_arns: p.role_arns.clone(),
            })
    };
    let call = map_call_with(&params, region, account, &inventory, &profiles)
        .map_err(|e| Refused::bad(format!("{}: {e}", e.code())))?;
    let mut request_keys = Context::new();
    crate::server::ext_authz::mapping::insert_request_keys(&mut request_keys, None, "https", now);
    request_keys.insert("aws:RequestedRegion", ContextValue::One(region.to_owned()));
    request_keys.insert("ec2:Region", ContextValue::One(region.to_owned()));
    let mut out = Vec::new();
    for a in &call.authorizations {
        let mut context = a.context.clone();
        for (k, v) in request_keys.iter() {
            context.insert(k, v.clone());
        }
        if let Some(owner) = &a.resource_account {
            context.insert("aws:ResourceAccount", ContextValue::One(owner.clone()));
        }
        let req = AuthzRequest {
            principal_arn: principal.to_owned(),
            action: a.action.clone(),
            resource: a.resource.clone(),
            context,
            session_tags: Vec::new(),
            session_policy: None,
            session_policy_arns: Vec::new(),
            resource_account: engine_resource_account(a, &call),
            outcome_only: false,
        };
        let d = state
            .decide_on(snapshot, Frontend::Webhook, &req, None)
            .map_err(|e| Refused::bad(e.to_string()))?;
        if d.answer.decision != Outcome::Allowed {
            return Err(CallRefusal {
                refused: Refused {
                    code: 403,
                    reason: "Forbidden",
                    message: unauthorized(state, &req, &d),
                },
                decided: Some(Box::new(d)),
            });
        }
        out.push(d);
    }
    let caller = principal_account(principal);
    let membership = snapshot.org_membership(caller);
    if let Some(c) = call
        .permission_checks
        .iter()
        .find(|c| !c.permits(caller, membership))
    {
        return Err(Refused {
            code: 403,
            reason: "Forbidden",
            message: format!(
                "the {} of `{}` does not cover account {caller}",
                c.kind.attribute(),
                c.resource_id
            ),
        }
        .into());
    }
    Ok(out)
}

/// As the EC2 front door: an image or snapshot used under its owner's
/// launch / create-volume permission is decided on the caller's side only
/// (its owner's side is that permission).
fn engine_resource_account(a: &Authorization, call: &Ec2Call) -> Option<String> {
    let id = a.resource.rsplit('/').next().unwrap_or_default();
    let by_attribute = matches!(a.resource_type.as_str(), "image" | "snapshot")
        && call.permission_checks.iter().any(|c| c.resource_id == id);
    if by_attribute {
        None
    } else {
        a.resource_account.clone()
    }
}

/// EC2's `UnauthorizedOperation` wording, with the encoded authorization
/// failure message (left out, never an error, if it cannot be encoded).
fn unauthorized(state: &AppState, req: &AuthzRequest, d: &Decided) -> String {
    let doc = AuthorizationMessage::new(req, &d.answer, &d.decision_id, &state.services.catalogs());
    let encoded = state.config.message_key.encode(&doc).unwrap_or_default();
    ec2_response::unauthorized_message(
        &req.principal_arn,
        &req.action,
        &req.resource,
        &ec2_response::because(&d.answer, &req.action),
        &encoded,
    )
}

// ---- SubjectAccessReview -------------------------------------------------

/// One question of a SubjectAccessReview.
struct Question {
    action: String,
    resource: String,
    context: Context,
}

fn no_opinion(reason: String) -> AccessReviewStatus {
    AccessReviewStatus {
        reason,
        ..AccessReviewStatus::default()
    }
}

fn evaluation_error(state: &AppState, message: String) -> AccessReviewStatus {
    state
        .metrics
        .request_error(Frontend::Webhook, "bad_request");
    AccessReviewStatus {
        evaluation_error: message,
        ..AccessReviewStatus::default()
    }
}

/// Answers one SubjectAccessReview.
fn authorize(
    state: &AppState,
    hook: &Webhook,
    review: &review::AccessReview,
    now: SystemTime,
) -> AccessReviewStatus {
    let principal = match hook.principals.load().principal(&review.user) {
        Ok((p, _)) => p,
        Err(e) => return no_opinion(format!("iamgate has no opinion: {e}")),
    };
    let snapshot = match state.snapshot() {
        Ok(s) => s,
        Err(e) => return evaluation_error(state, e.to_string()),
    };
    let questions = match questions(state, hook, &review.attributes, &principal, now) {
        Ok(q) => q,
        Err(Some(e)) => return evaluation_error(state, e),
        Err(None) => return no_opinion("iamgate maps this request to no IAM action".into()),
    };
    let mut decided = Vec::new();
    for q in questions {
        let req = AuthzRequest {
            principal_arn: principal.clone(),
            action: q.action,
            resource: q.resource,
            context: q.context,
            session_tags: Vec::new(),
            session_policy: None,
            session_policy_arns: Vec::new(),
            resource_account: None,
            outcome_only: false,
        };
        match state.decide_on(&snapshot, Frontend::Webhook, &req, None) {
            Ok(d) => decided.push((req, d)),
            Err(e) => {
                return AccessReviewStatus {
                    evaluation_error: e.to_string(),
                    ..AccessReviewStatus::default()
                };
            }
        }
    }
    let revision = snapshot.revision();
    if let Some((req, d)) = decided
        .iter()
        .find(|(_, d)| d.answer.decision == Outcome::Allowed)
    {
        return AccessReviewStatus {
            allowed: true,
            reason: explain(req, d, revision),
            ..AccessReviewStatus::default()
        };
    }
    let all_explicit = decided
        .iter()
        .all(|(_, d)| d.answer.decision == Outcome::ExplicitDeny);
    let reason = decided
        .iter()
        .map(|(r, d)| explain(r, d, revision))
        .collect::<Vec<_>>()
        .join("; ");
    AccessReviewStatus {
        allowed: false,
        denied: (all_explicit && !decided.is_empty())
            || hook.config.implicit_deny == ImplicitDeny::Deny,
        reason,
        evaluation_error: String::new(),
    }
}

/// `ec2:RunInstances on arn:...: explicitDeny by statement 1 (Sid X) of
/// policy P (identity-based); decision D, revision R`.
fn explain(req: &AuthzRequest, d: &Decided, revision: &str) -> String {
    let by = d
        .answer
        .matched
        .first()
        .map(|m| {
            let sid = m
                .sid
                .as_deref()
                .map(|s| format!(" (Sid {s})"))
                .unwrap_or_default();
            format!(
                " by statement {}{sid} of {} policy {}",
                m.statement,
                m.policy_type.short_name(),
                m.policy
            )
        })
        .unwrap_or_else(|| format!(": {}", d.answer.reason));
    format!(
        "{} on {}: {}{by}; decision {}, revision {revision}",
        req.action,
        req.resource,
        d.answer.decision.as_str(),
        d.decision_id
    )
}

/// The IAM questions of a review: `Err(None)` when iamgate maps it to no
/// action (no opinion), `Err(Some(message))` when it cannot be evaluated.
fn questions(
    state: &AppState,
    hook: &Webhook,
    attributes: &Attributes,
    principal: &str,
    now: SystemTime,
) -> Result<Vec<Question>, Option<String>> {
    let cfg = &hook.config;
    match attributes {
        Attributes::Resource(r) => {
            if let Some(kind) = AckKind::of_resource(&r.group, &r.resource) {
                let actions = kind.verb_actions(&r.verb, &r.subresource);
                if actions.is_empty() {
                    return Err(None);
                }
                let region = hook
                    .region(None, &r.namespace)
                    .map_err(|e| Some(e.message))?;
                let account = hook
                    .account(None, &r.namespace, principal)
                    .map_err(|e| Some(e.message))?;
                let partition = crate::policy::ids::partition_of(&region);
                let known = named_resource(state, hook, kind, &r.namespace, &r.name, &region);
                let mut context = Context::new();
                crate::server::ext_authz::mapping::insert_request_keys(
                    &mut context,
                    None,
                    "https",
                    now,
                );
                context.insert("aws:RequestedRegion", ContextValue::One(region.clone()));
                context.insert("ec2:Region", ContextValue::One(region.clone()));
                let questions = actions
                    .into_iter()
                    .map(|action| {
                        let mut context = context.clone();
                        let resource = if action.starts_with("Describe") {
                            "*".to_owned()
                        } else if action == kind.create_action() {
                            format!(
                                "arn:{partition}:ec2:{region}:{account}:{}/*",
                                kind.resource_type()
                            )
                        } else if let Some(res) = &known {
                            for (k, v) in &res.tags {
                                context.insert(
                                    &format!("ec2:ResourceTag/{k}"),
                                    ContextValue::One(v.clone()),
                                );
                                context.insert(
                                    &format!("aws:ResourceTag/{k}"),
                                    ContextValue::One(v.clone()),
                                );
                            }
                            res.arn(partition)
                        } else {
                            format!(
                                "arn:{partition}:ec2:{region}:{account}:{}/*",
                                kind.resource_type()
                            )
                        };
                        Question {
                            action: format!("ec2:{action}"),
                            resource,
                            context,
                        }
                    })
                    .collect();
                return Ok(questions);
            }
            let (Some(action), Some(arn)) = (&cfg.resource_action, &cfg.resource_arn) else {
                return Err(None);
            };
            let vars = [
                ("{verb}", r.verb.as_str()),
                ("{group}", r.group.as_str()),
                ("{version}", r.version.as_str()),
                ("{resource}", r.resource.as_str()),
                ("{subresource}", r.subresource.as_str()),
                ("{namespace}", r.namespace.as_str()),
                ("{name}", r.name.as_str()),
            ];
            Ok(vec![Question {
                action: expand(action, &vars)?,
                resource: expand(arn, &vars)?,
                context: Context::new(),
            }])
        }
        Attributes::NonResource(n) => {
            let (Some(action), Some(arn)) = (&cfg.non_resource_action, &cfg.non_resource_arn)
            else {
                return Err(None);
            };
            let vars = [("{verb}", n.verb.as_str()), ("{path}", n.path.as_str())];
            Ok(vec![Question {
                action: expand(action, &vars)?,
                resource: expand(arn, &vars)?,
                context: Context::new(),
            }])
        }
    }
}

/// Fills a template; a value that would make a pattern (`*`, `?`) or
/// carries control characters cannot be evaluated.
fn expand(template: &str, vars: &[(&str, &str)]) -> Result<String, Option<String>> {
    let mut out = template.to_owned();
    for (name, value) in vars {
        if out.contains(name) {
            if value.contains(['*', '?']) || value.chars().any(char::is_control) {
                return Err(Some(format!(
                    "`{value}` cannot be placed in the template `{template}` (wildcard or control character)"
                )));
            }
            out = out.replace(name, value);
        }
    }
    Ok(out)
}

/// The resource the controller created for `namespace`/`name`, when the
/// inventory holds exactly one carrying both tags.
fn named_resource(
    state: &AppState,
    hook: &Webhook,
    kind: AckKind,
    namespace: &str,
    name: &str,
    region: &str,
) -> Option<Arc<crate::ec2::inventory::Resource>> {
    let name_tag = hook.config.name_tag.as_deref()?;
    if name.is_empty() {
        return None;
    }
    let inv_kind = crate::ec2::inventory::ResourceKind::of_type(kind.resource_type())?;
    let inventory = state.service::<Ec2Service>().ok()?.inventory().load();
    let mut found = inventory.iter().filter(|r| {
        r.kind() == inv_kind
            && r.region == region
            && r.tag("services.k8s.aws/namespace") == Some(namespace)
            && r.tag(name_tag) == Some(name)
    });
    let first = found.next()?.clone();
    found.next().is_none().then_some(first)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    #[test]
    fn namespace_defaults_parse() {
        let d: NamespaceDefault = "team-a=eu-west-1/222222222222".parse().unwrap();
        assert_eq!(d.region.as_deref(), Some("eu-west-1"));
        assert_eq!(d.account.as_deref(), Some("222222222222"));
        assert!("team-a=EU/1".parse::<NamespaceDefault>().is_err());
        assert!("team-a".parse::<NamespaceDefault>().is_err());
    }

    #[test]
    fn templates_refuse_patterns() {
        let vars = [("{path}", "/api/*")];
        assert!(expand("arn:aws:eks:::path{path}", &vars).is_err());
        let vars = [("{verb}", "get"), ("{resource}", "pods")];
        assert_eq!(expand("k8s:{verb}", &vars).unwrap(), "k8s:get");
    }
}
