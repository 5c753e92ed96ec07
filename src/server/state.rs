//! State shared by every front-end, and the one decision path they all use:
//! load the active snapshot (never blocking), decide, then record metrics, a
//! span and a decision-log line.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use crate::bundle::{AuthzAnswer, AuthzRequest, Snapshot, SnapshotStore};
use crate::server::config::ServeConfig;
use crate::server::errors::ServeError;
use crate::server::reload::ReloadHandle;
use crate::telemetry::tracing_setup;
use crate::telemetry::{DecisionLog, DecisionRecord, Frontend, Metrics};

/// A decision with its id, as front-ends answer it.
#[derive(Debug, Clone)]
pub struct Decided {
    pub answer: AuthzAnswer,
    pub decision_id: String,
}

/// Shared by all listeners.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<SnapshotStore>,
    pub metrics: Metrics,
    pub config: Arc<ServeConfig>,
    pub decision_log: DecisionLog,
    pub reload: ReloadHandle,
    /// IAM users' access keys (`--credentials`), swapped whole on reload.
    pub credentials: Arc<arc_swap::ArcSwap<crate::identity::CredentialStore>>,
    pub started: SystemTime,
    ids: Arc<DecisionIds>,
    /// Keys of temporary credentials (`--session-key`); `None`: session
    /// tokens are refused.
    pub sessions: Option<Arc<crate::identity::SessionKeys>>,
    /// Permits to run heavy work (decisions that compile a session policy)
    /// on the blocking pool; see [`AppState::off_workers`].
    heavy: Arc<tokio::sync::Semaphore>,
    /// The reload diff gate and the sample of recent requests it compares
    /// on (fed by every decision).
    pub diff_gate: Arc<crate::bundle::gate::DiffGate>,
    /// The shadow snapshot evaluated beside the active one, if any.
    pub shadow: Arc<crate::server::shadow::Shadow>,
    /// OIDC identity providers (`--oidc-provider`) for
    /// `AssumeRoleWithWebIdentity`; `None`: web identities are refused.
    pub oidc: Option<Arc<crate::identity::oidc::OidcProviders>>,
    /// Virtual MFA devices (`--mfa-devices`) for STS `TokenCode`s; `None`:
    /// MFA fields are accepted and the session reports MFA absent.
    pub mfa: Option<Arc<crate::identity::mfa::MfaDevices>>,
    /// The services behind the seam ([`crate::service`]): ext_authz
    /// routes select theirs by mapping name; reloads activate each.
    pub services: Arc<crate::service::Registry>,
}

/// `PREFIX-%012x`, without the formatting machinery (every decision makes
/// one).
fn id_text(prefix: &str, n: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(prefix.len() + 17);
    id.push_str(prefix);
    id.push('-');
    let digits = (16 - n.leading_zeros() / 4).max(12);
    for i in (0..digits).rev() {
        let nibble = (n >> (i * 4)) & 0xf;
        id.push(char::from(
            HEX.get(nibble as usize).copied().unwrap_or(b'0'),
        ));
    }
    id
}

/// Decision ids: a random per-process prefix and a counter, so minting one
/// costs an atomic increment rather than a random draw.
#[derive(Debug)]
struct DecisionIds {
    prefix: String,
    next: AtomicU64,
}

impl AppState {
    /// Builds the shared state.
    pub fn new(
        store: Arc<SnapshotStore>,
        metrics: Metrics,
        config: Arc<ServeConfig>,
        decision_log: DecisionLog,
        reload: ReloadHandle,
    ) -> Self {
        let prefix = uuid::Uuid::new_v4().simple().to_string();
        Self {
            store,
            metrics,
            config,
            decision_log,
            reload,
            credentials: Arc::new(arc_swap::ArcSwap::from_pointee(
                crate::identity::CredentialStore::empty(),
            )),
            started: SystemTime::now(),
            ids: Arc::new(DecisionIds {
                prefix: prefix.get(..16).unwrap_or(&prefix).to_owned(),
                next: AtomicU64::new(1),
            }),
            heavy: Arc::new(tokio::sync::Semaphore::new(heavy_permits())),
            sessions: None,
            diff_gate: Arc::new(crate::bundle::gate::DiffGate::default()),
            shadow: Arc::new(crate::server::shadow::Shadow::disabled()),
            oidc: None,
            mfa: None,
            services: Arc::new(crate::service::Registry::new()),
        }
    }

    /// The state serving `services` (registered once, at server start).
    pub fn with_services(mut self, services: Arc<crate::service::Registry>) -> Self {
        self.services = services;
        self
    }

    /// The registered service of type `S`, for a front door of that
    /// service's own (EC2's Query API, IMDS and inventory API reach the
    /// live inventory this way). A service missing from the registry is
    /// the server's misconfiguration, never the client's doing: `Internal`.
    pub fn service<S: crate::service::Service>(&self) -> Result<&S, ServeError> {
        self.services.get::<S>().ok_or_else(|| {
            ServeError::Internal(format!(
                "service `{}` is not registered",
                std::any::type_name::<S>()
            ))
        })
    }

    /// The state with the reload diff gate and the shadow snapshot
    /// (issue 15).
    pub fn with_fleet(
        mut self,
        diff_gate: Arc<crate::bundle::gate::DiffGate>,
        shadow: Arc<crate::server::shadow::Shadow>,
    ) -> Self {
        self.diff_gate = diff_gate;
        self.shadow = shadow;
        self
    }

    /// Runs `work` on tokio's blocking pool, at most one fewer at a time
    /// than there are CPUs (at least one), so that the async workers, which
    /// serve every other request, keep a CPU. For work whose cost depends on
    /// the caller (a session policy is compiled per request): bounded in
    /// size, but not free.
    pub async fn off_workers<T, F>(&self, work: F) -> Result<T, ServeError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = self
            .heavy
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ServeError::Internal(e.to_string()))?;
        // The permit goes with the work: a caller that gives up does not
        // free it while the work still runs.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| ServeError::Internal(format!("blocking task: {e}")))
    }

    /// Decides one request like [`AppState::decide`]; one that carries a
    /// session policy (compiled for it) is decided off the async workers.
    pub async fn decide_owned(
        &self,
        frontend: Frontend,
        req: AuthzRequest,
        traceparent: Option<String>,
    ) -> Result<Decided, ServeError> {
        if req.session_policy.is_none() {
            return self.decide(frontend, &req, traceparent.as_deref());
        }
        let state = self.clone();
        self.off_workers(move || state.decide(frontend, &req, traceparent.as_deref()))
            .await
            .and_then(|decided| decided)
            .inspect_err(|e| self.count_internal(frontend, e))
    }

    /// Decides a batch on one snapshot, in order, like
    /// [`AppState::decide_on`]; off the async workers when any item carries
    /// a session policy.
    pub async fn decide_batch(
        &self,
        frontend: Frontend,
        snapshot: Arc<Snapshot>,
        requests: Vec<AuthzRequest>,
        traceparent: Option<String>,
    ) -> Result<Vec<Decided>, ServeError> {
        let heavy = requests.iter().any(|r| r.session_policy.is_some());
        let work = move |state: &AppState| {
            requests
                .iter()
                .map(|r| state.decide_on(&snapshot, frontend, r, traceparent.as_deref()))
                .collect::<Result<Vec<_>, _>>()
        };
        if !heavy {
            return work(self);
        }
        // Cloned only to move off the workers (a clone copies each of the
        // state's handles).
        let state = self.clone();
        self.off_workers(move || work(&state))
            .await
            .and_then(|decided| decided)
            .inspect_err(|e| self.count_internal(frontend, e))
    }

    /// Counts an error of the blocking pool itself (the decision path
    /// counts its own).
    fn count_internal(&self, frontend: Frontend, e: &ServeError) {
        if matches!(e, ServeError::Internal(_)) {
            self.metrics.request_error(frontend, e.reason());
        }
    }

    /// A fresh decision id.
    pub fn decision_id(&self) -> String {
        let n = self.ids.next.fetch_add(1, Ordering::Relaxed);
        id_text(&self.ids.prefix, n)
    }

    /// Whether a caller's `traceparent` is used at all (trace export or the
    /// decision log is on), so that front-ends skip looking for it when not.
    pub fn uses_traceparent(&self) -> bool {
        tracing_setup::otel_enabled() || self.decision_log.enabled()
    }

    /// The active snapshot, or `NotReady`.
    pub fn snapshot(&self) -> Result<Arc<Snapshot>, ServeError> {
        self.store.load().ok_or(ServeError::NotReady)
    }

    /// Decides one request on `snapshot` and records it: metrics, an
    /// `iamgate.decision` span, and a decision-log line when enabled.
    ///
    /// `traceparent` is the caller's W3C trace-context header value, passed
    /// as received (`00-<trace id>-<parent span id>-<flags>`), whatever
    /// carried it: an HTTP header, gRPC metadata, or a header inside an
    /// ext_authz `CheckRequest`. With it, the decision span is a child of
    /// the caller's span (exported over OTLP when configured) and the log
    /// line carries its trace id; `None` or a malformed value starts a new
    /// trace. It never changes the decision.
    pub fn decide_on(
        &self,
        snapshot: &Snapshot,
        frontend: Frontend,
        req: &AuthzRequest,
        traceparent: Option<&str>,
    ) -> Result<Decided, ServeError> {
        let started = Instant::now();
        // The span exists for export; without an exporter it would only
        // cost allocations on the hot path.
        let span = if tracing_setup::otel_enabled() {
            tracing::info_span!(
                "iamgate.decision",
                frontend = frontend.as_str(),
                action = %req.action,
                decision = tracing::field::Empty,
                decision_id = tracing::field::Empty,
            )
        } else {
            tracing::Span::none()
        };
        tracing_setup::join_caller_trace(&span, traceparent);
        let _enter = span.enter();
        if let Err(e) = validate(req) {
            let e = ServeError::BadRequest(e.to_string());
            self.metrics.request_error(frontend, e.reason());
            return Err(e);
        }
        let logged = self.decision_log.enabled();
        let answer = match snapshot.authorize_with(req, logged || !req.outcome_only) {
            Ok(a) => a,
            Err(e) => {
                let err = ServeError::BadRequest(e.to_string());
                self.metrics.request_error(frontend, err.reason());
                return Err(err);
            }
        };
        let decision_id = self.decision_id();
        span.record("decision", answer.decision.as_str());
        span.record("decision_id", decision_id.as_str());
        self.metrics
            .decision(frontend, answer.decision, started.elapsed());
        // Both cost an atomic increment unless this request is sampled.
        self.diff_gate.sample().offer(req);
        self.shadow.offer(req, &answer, frontend, &decision_id);
        if logged {
            self.decision_log.record(DecisionRecord {
                decision_id: decision_id.clone(),
                time: rfc3339_now(),
                revision: answer.revision.to_string(),
                frontend: frontend.as_str(),
                principal: req.principal_arn.clone(),
                action: req.action.clone(),
                resource: req.resource.clone(),
                decision: answer.decision.as_str(),
                reason: answer.reason.to_string(),
                matched: answer.matched.clone(),
                trace_id: tracing_setup::trace_id_of(&span, traceparent),
                context: self.decision_log.context_of(req),
                shadow: None,
            });
        }
        Ok(Decided {
            answer,
            decision_id,
        })
    }

    /// Loads the snapshot and decides one request; `traceparent` as in
    /// [`AppState::decide_on`].
    pub fn decide(
        &self,
        frontend: Frontend,
        req: &AuthzRequest,
        traceparent: Option<&str>,
    ) -> Result<Decided, ServeError> {
        // A guard, not an `Arc`: the decision is made before this returns.
        let guard = self.store.guard();
        let Some(snapshot) = guard.as_deref() else {
            let e = ServeError::NotReady;
            self.metrics.request_error(frontend, e.reason());
            return Err(e);
        };
        self.decide_on(snapshot, frontend, req, traceparent)
    }
}

/// Concurrent heavy tasks: one fewer than the CPUs, at least one.
fn heavy_permits() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1)
}

/// Refuses a request that must not be decided: an action that is not one
/// concrete `service:ActionName`, a resource that is neither `*` nor a
/// well-formed ARN (see [`crate::policy::names`]), or a session policy over
/// AWS's size limit (see [`crate::policy::limits`]; it would be compiled
/// for this request, so its size bounds the work). Every front door reaches
/// it through [`AppState::decide_on`]; batch front-ends also call it on
/// every item first, so that a bad item fails the batch before any item is
/// decided. The error is the message of a [`ServeError::BadRequest`].
pub fn validate(req: &AuthzRequest) -> Result<(), InvalidRequest> {
    use crate::policy::names::{check_action, check_resource};
    check_action(&req.action).map_err(InvalidRequest::Action)?;
    check_resource(&req.resource).map_err(InvalidRequest::Resource)?;
    if let Some(policy) = &req.session_policy {
        crate::policy::limits::check_session_policy(policy)
            .map_err(InvalidRequest::SessionPolicy)?;
    }
    Ok(())
}

/// Why a request cannot be decided as sent (a 400 or `INVALID_ARGUMENT`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    #[error("`action` {0}")]
    Action(#[source] crate::policy::names::NameError),
    #[error("`resource` {0}")]
    Resource(#[source] crate::policy::names::NameError),
    #[error("session policy: {0}")]
    SessionPolicy(#[source] crate::policy::limits::PolicySizeError),
    /// A context value of a type IAM has no string form for.
    #[error("context key `{key}`: {reason}")]
    ContextValue { key: String, reason: &'static str },
}

/// The current time as RFC 3339 UTC with milliseconds.
pub fn rfc3339_now() -> String {
    rfc3339_millis(SystemTime::now())
}

/// `t` as RFC 3339 UTC with milliseconds (the epoch if `t` is outside
/// jiff's range).
fn rfc3339_millis(t: SystemTime) -> String {
    let ts = jiff::Timestamp::try_from(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    format!("{ts:.3}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_ids_are_zero_padded_hex() {
        for n in [0, 1, 0xabc, 0xffff_ffff_ffff, 0x1_0000_0000_0000, u64::MAX] {
            assert_eq!(id_text("p", n), format!("p-{n:012x}"));
        }
    }

    #[test]
    fn invalid_requests_say_which_field_and_keep_the_cause() {
        let req = |action: &str, resource: &str| AuthzRequest {
            principal_arn: "arn:aws:iam::111122223333:user/a".into(),
            action: action.into(),
            resource: resource.into(),
            context: crate::engine::Context::new(),
            session_tags: Vec::new(),
            session_policy: None,
            session_policy_arns: Vec::new(),
            resource_account: None,
            outcome_only: true,
        };
        assert_eq!(validate(&req("ec2:RunInstances", "*")), Ok(()));
        let action = validate(&req("ec2:Run*", "*")).unwrap_err();
        assert!(matches!(action, InvalidRequest::Action(_)), "{action}");
        assert!(action.to_string().starts_with("`action` "), "{action}");
        assert!(std::error::Error::source(&action).is_some());
        let resource = validate(&req("ec2:RunInstances", "arn:aws")).unwrap_err();
        assert!(
            matches!(resource, InvalidRequest::Resource(_)),
            "{resource}"
        );
        let mut big = req("ec2:RunInstances", "*");
        big.session_policy = Some(serde_json::Value::String("x".repeat(4096)));
        assert!(matches!(
            validate(&big),
            Err(InvalidRequest::SessionPolicy(_))
        ));
    }

    #[test]
    fn rfc3339_timestamps_have_milliseconds() {
        let at =
            |ms: u64| rfc3339_millis(SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms));
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(1_577_836_800_000), "2020-01-01T00:00:00.000Z");
        assert_eq!(at(1_709_164_800_123), "2024-02-29T00:00:00.123Z");
    }
}
