//! The shadow snapshot (`--shadow-bundle`, issue 15): a second bundle,
//! validated like the main one (read, compile, its own tests), decided
//! beside the active snapshot on a sample of live requests, off the
//! decision path.
//!
//! The decision path only offers a request ([`Shadow::offer`]): one in
//! `every` (counted per thread) is copied into a bounded queue (`try_send`; a full queue drops
//! it and counts the drop), so the shadow never delays or changes an
//! answer. One thread decides queued requests on the shadow snapshot and
//! counts disagreements by action and decision pair; each disagreement is
//! also written to the decision log with both outcomes.
//! `POST /v1/shadow/reload` (control listener only) reads the shadow's
//! source again; `POST /v1/shadow/promote` loads the shadow's
//! source again and activates it through the normal path
//! ([`crate::server::reload::apply`]): a source that no longer loads is
//! refused and the active snapshot keeps serving.
//!
//! A remote shadow source (`http(s)://`, `s3://`) is fetched here at start
//! and then polled by [`crate::server::remote::spawn_shadow_poller`]; a
//! change there reloads the shadow only, never the active snapshot.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use serde_json::{Value, json};

use crate::bundle::{AuthzAnswer, AuthzRequest, Snapshot, diff};
use crate::server::reload::{self, BundleSource, ReloadError};
use crate::server::state::{AppState, rfc3339_now};
use crate::telemetry::decision_log::ShadowOutcome;
use crate::telemetry::{DecisionLog, DecisionRecord, Frontend, Metrics};

use crate::bundle::source::RemoteBundle;
use crate::bundle::source::http::Fetched;

/// A live request queued for the shadow.
struct Job {
    req: AuthzRequest,
    active: &'static str,
    active_revision: Arc<str>,
    frontend: &'static str,
    decision_id: String,
}

thread_local! {
    static OFFERED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[derive(Debug, Default)]
struct Counts {
    evaluated: AtomicU64,
    disagreements: AtomicU64,
    dropped: AtomicU64,
}

/// The shadow snapshot and its evaluator; disabled without
/// `--shadow-bundle`.
#[derive(Debug)]
pub struct Shadow {
    source: Option<BundleSource>,
    every: u64,
    tx: Option<SyncSender<Job>>,
    snapshot: Arc<ArcSwapOption<Snapshot>>,
    counts: Arc<Counts>,
    metrics: Option<Metrics>,
    error: std::sync::Mutex<Option<String>>,
    promoted: std::sync::Mutex<Option<Value>>,
    promoting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("shadow job")
    }
}

impl Shadow {
    /// No shadow: offering costs one branch.
    pub fn disabled() -> Self {
        Self {
            source: None,
            every: 1,
            tx: None,
            snapshot: Arc::new(ArcSwapOption::empty()),
            counts: Arc::new(Counts::default()),
            metrics: None,
            error: std::sync::Mutex::new(None),
            promoted: std::sync::Mutex::new(None),
            promoting: tokio::sync::Mutex::new(()),
        }
    }

    /// Loads the shadow bundle (within `timeout`) and starts its evaluator.
    /// A shadow that does not load is reported in `/v1/status` and the log,
    /// and nothing is evaluated; serving is not affected.
    pub async fn start(
        source: BundleSource,
        every: u64,
        queue: usize,
        timeout: Duration,
        metrics: Metrics,
        log: DecisionLog,
    ) -> std::io::Result<Self> {
        let loaded = match &source {
            BundleSource::Remote(remote) => first_fetch(remote, &source, &metrics, timeout).await,
            _ => reload::load_bounded(&source, timeout).await,
        };
        let snapshot = Arc::new(ArcSwapOption::empty());
        let mut error = None;
        match loaded {
            Ok(s) => {
                tracing::info!(revision = %s.revision(), source = s.source(), "shadow snapshot loaded");
                snapshot.store(Some(Arc::new(s)));
            }
            Err(e) => {
                tracing::error!(error = %e, "shadow bundle refused; nothing is shadowed");
                error = Some(e.to_string());
            }
        }
        let counts = Arc::new(Counts::default());
        let (tx, rx) = sync_channel::<Job>(queue.max(1));
        let (snap, c, m) = (snapshot.clone(), counts.clone(), metrics.clone());
        std::thread::Builder::new()
            .name("iamgate-shadow".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    evaluate(&snap, &c, &m, &log, job);
                }
            })?;
        Ok(Self {
            source: Some(source),
            every: every.max(1),
            tx: Some(tx),
            snapshot,
            counts,
            metrics: Some(metrics),
            error: std::sync::Mutex::new(error),
            promoted: std::sync::Mutex::new(None),
            promoting: tokio::sync::Mutex::new(()),
        })
    }

    /// Offers a decided request to the shadow. Never blocks: a request not
    /// picked costs a thread-local increment; a picked one is copied and queued,
    /// or dropped (and counted) when the queue is full.
    #[inline]
    pub fn offer(
        &self,
        req: &AuthzRequest,
        answer: &AuthzAnswer,
        frontend: Frontend,
        decision_id: &str,
    ) {
        let Some(tx) = &self.tx else { return };
        if crate::bundle::sample::tick(&OFFERED, self.every) {
            self.queue(tx, req, answer, frontend, decision_id);
        }
    }

    #[cold]
    fn queue(
        &self,
        tx: &SyncSender<Job>,
        req: &AuthzRequest,
        answer: &AuthzAnswer,
        frontend: Frontend,
        decision_id: &str,
    ) {
        // A session policy is compiled per request: not worth a second
        // compilation off the path, and not kept. Without a loaded shadow
        // there is nothing to copy for.
        if req.session_policy.is_some() || self.snapshot.load().is_none() {
            return;
        }
        let job = Job {
            req: AuthzRequest {
                session_policy: None,
                outcome_only: true,
                ..req.clone()
            },
            active: answer.decision.as_str(),
            active_revision: answer.revision.clone(),
            frontend: frontend.as_str(),
            decision_id: decision_id.to_owned(),
        };
        match tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
                if let Some(m) = &self.metrics {
                    m.shadow_dropped();
                }
            }
        }
    }

    /// The remote shadow source, when `--shadow-bundle` is a URL.
    pub fn remote(&self) -> Option<Arc<RemoteBundle>> {
        match &self.source {
            Some(BundleSource::Remote(remote)) => Some(remote.clone()),
            _ => None,
        }
    }

    /// `/v1/status`'s `shadow` object; `None` without `--shadow-bundle`.
    pub fn status(&self) -> Option<Value> {
        let source = self.source.as_ref()?;
        let snap = self.snapshot.load();
        let c = &self.counts;
        let mut status = json!({
            "source": match source {
                BundleSource::Path { path, .. } | BundleSource::Signed { path, .. } => {
                    path.display().to_string()
                }
                BundleSource::Remote(remote) => remote.url.clone(),
                BundleSource::Demo(_) => "built-in demo bundle".to_owned(),
            },
            "revision": snap.as_ref().map(|s| s.revision().to_string()),
            "error": self.error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone(),
            "every": self.every,
            "evaluated": c.evaluated.load(Ordering::Relaxed),
            "disagreements": c.disagreements.load(Ordering::Relaxed),
            "dropped": c.dropped.load(Ordering::Relaxed),
            "promoted": self.promoted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone(),
        });
        // A remote shadow source's polls, ETag and signature checks.
        if let (BundleSource::Remote(remote), Some(obj)) = (source, status.as_object_mut()) {
            obj.insert(
                "bundle_source".to_owned(),
                serde_json::to_value(remote.status()).unwrap_or(Value::Null),
            );
        }
        Some(status)
    }

    /// Loads the shadow's source again and, if it is valid, evaluates it
    /// from now on (the counts start over when its revision changes). A refused source keeps the
    /// previous shadow. Returns the shadow's revision or why not.
    pub async fn reload(&self, timeout: Duration) -> Result<String, ReloadError> {
        let Some(source) = &self.source else {
            return Err(ReloadError::NoShadowSource);
        };
        let _one = self.promoting.lock().await;
        match reload::load_bounded(source, timeout).await {
            Ok(s) => {
                let revision = s.revision().to_string();
                let same = self
                    .snapshot
                    .load()
                    .as_ref()
                    .is_some_and(|old| old.revision() == s.revision());
                self.snapshot.store(Some(Arc::new(s)));
                // New content starts new counts; the same content (a
                // rewrite, a touch) keeps them.
                if !same {
                    for c in [
                        &self.counts.evaluated,
                        &self.counts.disagreements,
                        &self.counts.dropped,
                    ] {
                        c.store(0, Ordering::Relaxed);
                    }
                }
                *self
                    .error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                tracing::info!(revision = %revision, "shadow snapshot reloaded");
                Ok(revision)
            }
            Err(e) => {
                tracing::error!(error = %e, "shadow bundle refused; the previous shadow stays");
                *self
                    .error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e.to_string());
                Err(ReloadError::Refused(e))
            }
        }
    }

    /// Makes the shadow the active snapshot: loads its source again
    /// (validated like any reload) and activates it through
    /// [`reload::apply`], so a failure keeps the active snapshot. On
    /// success nothing is shadowed any more. Returns the new revision or
    /// why it was refused.
    pub async fn promote(&self, state: &AppState) -> Result<String, ReloadError> {
        let Some(source) = &self.source else {
            return Err(ReloadError::NoShadowSource);
        };
        let _one = self.promoting.lock().await;
        if self.snapshot.load().is_none() {
            return Err(ReloadError::NoShadow);
        }
        let loaded = reload::load_bounded(source, state.config.reload_timeout).await;
        let (store, services, metrics) = (
            state.store.clone(),
            state.services.clone(),
            state.metrics.clone(),
        );
        let outcome =
            tokio::task::spawn_blocking(move || reload::apply(&store, &services, &metrics, loaded))
                .await
                .map_err(|e| ReloadError::Task(Arc::new(e)))?;
        if let Ok(revision) = &outcome {
            self.snapshot.store(None);
            *self
                .promoted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(json!({"revision": revision, "at": rfc3339_now()}));
            tracing::info!(revision = %revision, "shadow snapshot promoted");
        }
        Ok(outcome?)
    }
}

/// The first load of a remote shadow source: one fetch, then the usual
/// checks. The shadow has no last-known-good cache (it serves nothing), so
/// an unreachable source leaves the shadow empty until a poll succeeds.
async fn first_fetch(
    remote: &RemoteBundle,
    source: &BundleSource,
    metrics: &Metrics,
    timeout: Duration,
) -> Result<Snapshot, crate::bundle::BundleError> {
    match remote.fetch().await {
        Ok(Fetched::Body { bytes, etag }) => {
            metrics.shadow_bundle_fetch("updated");
            remote.offer(bytes, etag.clone());
            let loaded = reload::load_bounded(source, timeout).await;
            remote.settle(etag, loaded.is_ok());
            if let Err(crate::bundle::BundleError::Signature { reason, .. }) = &loaded {
                metrics.shadow_bundle_signature_refused(reason.label());
            }
            loaded
        }
        // No ETag was sent, so a 304 is the server's mistake: nothing to load.
        Ok(Fetched::NotModified) => {
            metrics.shadow_bundle_fetch("not_modified");
            Err(crate::bundle::BundleError::io(
                &remote.url,
                "the source answered 304 Not Modified to an unconditional request",
            ))
        }
        Err(e) => {
            metrics.shadow_bundle_fetch("error");
            Err(crate::bundle::BundleError::io(&remote.url, e))
        }
    }
}

/// Decides one queued request on the shadow and records a disagreement.
fn evaluate(
    snapshot: &ArcSwapOption<Snapshot>,
    counts: &Counts,
    metrics: &Metrics,
    log: &DecisionLog,
    job: Job,
) {
    let guard = snapshot.load();
    let Some(shadow) = guard.as_deref() else {
        return;
    };
    let decision = diff::decision_label(shadow, &job.req);
    counts.evaluated.fetch_add(1, Ordering::Relaxed);
    metrics.shadow_compared(&job.req.action, job.active, decision);
    if decision == job.active {
        return;
    }
    counts.disagreements.fetch_add(1, Ordering::Relaxed);
    if log.enabled() {
        log.record(DecisionRecord {
            decision_id: job.decision_id,
            time: rfc3339_now(),
            revision: job.active_revision.to_string(),
            frontend: job.frontend,
            principal: job.req.principal_arn.clone(),
            action: job.req.action.clone(),
            resource: job.req.resource.clone(),
            decision: job.active,
            reason: "the shadow snapshot decides differently".to_owned(),
            matched: Vec::new(),
            trace_id: None,
            context: log.context_of(&job.req),
            shadow: Some(ShadowOutcome {
                revision: shadow.revision().to_string(),
                decision,
                active_decision: job.active,
            }),
        });
    }
}
