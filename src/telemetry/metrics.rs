//! Every Prometheus metric iamgate exports, declared in one place with its
//! help text. Labels are bounded: front-end, decision, error reason, reload
//! result, and the active revision (one series at a time). Principal and
//! resource ARNs are never labels.
//!
//! Hot-path children (per front-end and decision) are resolved once at
//! start so that recording a decision takes no lock and no hashing.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::engine::Outcome;

/// The front-ends that decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frontend {
    Grpc,
    Http,
    ExtAuthz,
    ExtAuthzNetwork,
    Webhook,
    /// The STS Query API listener (`--sts-listen`).
    Sts,
}

impl Frontend {
    const ALL: [Frontend; 6] = [
        Frontend::Grpc,
        Frontend::Http,
        Frontend::ExtAuthz,
        Frontend::ExtAuthzNetwork,
        Frontend::Webhook,
        Frontend::Sts,
    ];

    /// The `frontend` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Frontend::Grpc => "grpc",
            Frontend::Http => "http",
            Frontend::ExtAuthz => "ext_authz",
            Frontend::ExtAuthzNetwork => "ext_authz_network",
            Frontend::Webhook => "webhook",
            Frontend::Sts => "sts",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const OUTCOMES: [Outcome; 3] = [
    Outcome::Allowed,
    Outcome::ExplicitDeny,
    Outcome::ImplicitDeny,
];

fn outcome_index(o: Outcome) -> usize {
    match o {
        Outcome::Allowed => 0,
        Outcome::ExplicitDeny => 1,
        Outcome::ImplicitDeny => 2,
    }
}

/// The registry and every metric; a clone shares them (one reference
/// count, so front doors may hold and clone it freely).
#[derive(Clone)]
pub struct Metrics(Arc<Handles>);

/// The metric handles behind [`Metrics`].
struct Handles {
    registry: Registry,
    decisions: Vec<[IntCounter; 3]>,
    latency: Vec<Histogram>,
    request_errors: IntCounterVec,
    snapshot_info: IntGaugeVec,
    reloads: IntCounterVec,
    last_reload: Gauge,
    compile_seconds: Gauge,
    statements: IntGauge,
    policies: IntGauge,
    principals: IntGauge,
    log_drops: IntCounter,
    batch_items: IntCounter,
    bundle_fetches: IntCounterVec,
    bundle_signature_refusals: IntCounterVec,
    bundle_stale: IntGauge,
    extra: Issue15Metrics,
    identity: Issue13Metrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let decisions_vec = IntCounterVec::new(
            Opts::new(
                "iamgate_decisions_total",
                "Authorization decisions, by front-end and decision.",
            ),
            &["frontend", "decision"],
        )?;
        let latency_vec = HistogramVec::new(
            HistogramOpts::new(
                "iamgate_decision_duration_seconds",
                "Time to decide one request, from the front-end's view (mapping included).",
            )
            .buckets(vec![
                1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 1e-2,
            ]),
            &["frontend"],
        )?;
        let request_errors = IntCounterVec::new(
            Opts::new(
                "iamgate_request_errors_total",
                "Requests that could not be decided, by front-end and reason.",
            ),
            &["frontend", "reason"],
        )?;
        let snapshot_info = IntGaugeVec::new(
            Opts::new(
                "iamgate_snapshot_info",
                "The active snapshot (value 1), labelled with its revision.",
            ),
            &["revision"],
        )?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "iamgate_reloads_total",
                "Bundle reload attempts, by result.",
            ),
            &["result"],
        )?;
        let last_reload = Gauge::new(
            "iamgate_last_successful_reload_timestamp_seconds",
            "Unix time of the last successful bundle load.",
        )?;
        let compile_seconds = Gauge::new(
            "iamgate_snapshot_compile_duration_seconds",
            "Time the active snapshot took to compile.",
        )?;
        let statements = IntGauge::new(
            "iamgate_snapshot_statements",
            "Policy statements in the active snapshot.",
        )?;
        let policies = IntGauge::new(
            "iamgate_snapshot_policies",
            "Policies in the active snapshot.",
        )?;
        let principals = IntGauge::new(
            "iamgate_snapshot_principals",
            "Users and roles in the active snapshot.",
        )?;
        let log_drops = IntCounter::new(
            "iamgate_decision_log_dropped_total",
            "Decision-log records dropped because the log queue was full.",
        )?;
        let batch_items = IntCounter::new(
            "iamgate_batch_items_total",
            "Items decided inside batch requests.",
        )?;
        registry.register(Box::new(decisions_vec.clone()))?;
        registry.register(Box::new(latency_vec.clone()))?;
        registry.register(Box::new(request_errors.clone()))?;
        registry.register(Box::new(snapshot_info.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(last_reload.clone()))?;
        registry.register(Box::new(compile_seconds.clone()))?;
        registry.register(Box::new(statements.clone()))?;
        registry.register(Box::new(policies.clone()))?;
        registry.register(Box::new(principals.clone()))?;
        registry.register(Box::new(log_drops.clone()))?;
        registry.register(Box::new(batch_items.clone()))?;
        let bundle_fetches = IntCounterVec::new(
            Opts::new(
                "iamgate_bundle_fetches_total",
                "Polls of a remote bundle source, by result (updated, not_modified, error).",
            ),
            &["result"],
        )?;
        let bundle_signature_refusals = IntCounterVec::new(
            Opts::new(
                "iamgate_bundle_signature_refusals_total",
                "Bundles refused by signature verification, by reason.",
            ),
            &["reason"],
        )?;
        let bundle_stale = IntGauge::new(
            "iamgate_bundle_source_stale",
            "1 while the remote bundle source cannot be reached (the active bundle may be outdated).",
        )?;
        registry.register(Box::new(bundle_fetches.clone()))?;
        registry.register(Box::new(bundle_signature_refusals.clone()))?;
        registry.register(Box::new(bundle_stale.clone()))?;
        for result in ["updated", "not_modified", "error"] {
            bundle_fetches.with_label_values(&[result]);
        }
        let extra = Issue15Metrics::new(&registry)?;
        let identity = Issue13Metrics::new(&registry)?;

        let mut decisions = Vec::new();
        let mut latency = Vec::new();
        for f in Frontend::ALL {
            let [a, b, c] =
                OUTCOMES.map(|o| decisions_vec.with_label_values(&[f.as_str(), o.as_str()]));
            decisions.push([a, b, c]);
            latency.push(latency_vec.with_label_values(&[f.as_str()]));
        }
        for result in ["success", "failure"] {
            reloads.with_label_values(&[result]);
        }
        Ok(Self(Arc::new(Handles {
            registry,
            decisions,
            latency,
            request_errors,
            snapshot_info,
            reloads,
            last_reload,
            compile_seconds,
            statements,
            policies,
            principals,
            log_drops,
            batch_items,
            bundle_fetches,
            bundle_signature_refusals,
            bundle_stale,
            extra,
            identity,
        })))
    }

    /// Records one decision.
    #[inline]
    pub fn decision(&self, frontend: Frontend, outcome: Outcome, elapsed: Duration) {
        if let Some(row) = self.0.decisions.get(frontend.index())
            && let Some(c) = row.get(outcome_index(outcome))
        {
            c.inc();
        }
        if let Some(h) = self.0.latency.get(frontend.index()) {
            h.observe(elapsed.as_secs_f64());
        }
    }

    /// Records a request that could not be decided.
    pub fn request_error(&self, frontend: Frontend, reason: &'static str) {
        self.0
            .request_errors
            .with_label_values(&[frontend.as_str(), reason])
            .inc();
    }

    /// Records a reload attempt and, on success, the new snapshot's figures.
    pub fn reload(&self, ok: bool) {
        self.0
            .reloads
            .with_label_values(&[if ok { "success" } else { "failure" }])
            .inc();
    }

    /// Publishes the active snapshot's figures.
    pub fn snapshot(
        &self,
        revision: &str,
        compile: Duration,
        stats: crate::bundle::snapshot::Stats,
        loaded_unix: f64,
    ) {
        self.0.snapshot_info.reset();
        self.0.snapshot_info.with_label_values(&[revision]).set(1);
        self.0.compile_seconds.set(compile.as_secs_f64());
        self.0
            .statements
            .set(i64::try_from(stats.statements).unwrap_or(i64::MAX));
        self.0
            .policies
            .set(i64::try_from(stats.policies).unwrap_or(i64::MAX));
        self.0
            .principals
            .set(i64::try_from(stats.principals).unwrap_or(i64::MAX));
        self.0.last_reload.set(loaded_unix);
    }

    /// Counts a dropped decision-log record.
    pub fn log_dropped(&self) {
        self.0.log_drops.inc();
    }

    /// Counts items decided inside a batch.
    pub fn batch_items(&self, n: usize) {
        self.0
            .batch_items
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// Counts one poll of a remote bundle source (`updated`,
    /// `not_modified`, `error`).
    pub fn bundle_fetch(&self, result: &'static str) {
        self.0.bundle_fetches.with_label_values(&[result]).inc();
    }

    /// Counts a bundle refused by signature verification.
    pub fn bundle_signature_refused(&self, reason: &'static str) {
        self.0
            .bundle_signature_refusals
            .with_label_values(&[reason])
            .inc();
    }

    /// Whether the remote bundle source is unreachable.
    pub fn bundle_stale(&self, stale: bool) {
        self.0.bundle_stale.set(i64::from(stale));
    }

    /// Publishes the decision diff of a reload: sampled requests compared,
    /// decisions changed, and whether the candidate was refused for it.
    pub fn reload_diff(&self, sampled: usize, changed: usize, refused: bool) {
        let e = &self.0.extra;
        e.diff_sampled
            .set(i64::try_from(sampled).unwrap_or(i64::MAX));
        e.diff_changed
            .set(i64::try_from(changed).unwrap_or(i64::MAX));
        if refused {
            e.diff_refusals.inc();
        }
    }

    /// Counts a shadow evaluation and, when the shadow disagrees, the
    /// disagreement by action and decision pair. Actions past
    /// [`MAX_SHADOW_ACTIONS`] distinct ones are labelled `other`, so a
    /// caller cannot grow the label set.
    pub fn shadow_compared(&self, action: &str, active: &str, shadow: &str) {
        let e = &self.0.extra;
        e.shadow_evaluations.inc();
        if active == shadow {
            return;
        }
        let action = {
            let mut seen = e
                .shadow_actions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if seen.contains(action) {
                action
            } else if seen.len() < MAX_SHADOW_ACTIONS {
                seen.insert(action.to_owned());
                action
            } else {
                "other"
            }
        };
        e.shadow_disagreements
            .with_label_values(&[action, active, shadow])
            .inc();
    }

    /// Counts one poll of a remote `--shadow-bundle` source (`updated`,
    /// `not_modified`, `error`); never the main source's counter.
    pub fn shadow_bundle_fetch(&self, result: &'static str) {
        self.0
            .extra
            .shadow_bundle_fetches
            .with_label_values(&[result])
            .inc();
    }

    /// Counts a shadow bundle refused by signature verification.
    pub fn shadow_bundle_signature_refused(&self, reason: &'static str) {
        self.0
            .extra
            .shadow_bundle_signature_refusals
            .with_label_values(&[reason])
            .inc();
    }

    /// Counts a live request the shadow snapshot could not take (its
    /// queue was full).
    pub fn shadow_dropped(&self) {
        self.0.extra.shadow_dropped.inc();
    }

    /// Counts decision-log records a shipping sink delivered.
    pub fn log_shipped(&self, sink: &'static str, n: usize) {
        self.0
            .extra
            .log_shipped
            .with_label_values(&[sink])
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// Counts decision-log records a shipping sink dropped: its buffer was
    /// full (`buffer_full`), or delivery failed after every retry
    /// (`delivery_failed`).
    pub fn log_ship_dropped(&self, sink: &'static str, reason: &'static str, n: usize) {
        self.0
            .extra
            .log_ship_dropped
            .with_label_values(&[sink, reason])
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// Counts a failed delivery attempt of a shipping sink (it is retried).
    pub fn log_ship_failed_attempt(&self, sink: &'static str) {
        self.0
            .extra
            .log_ship_attempt_failures
            .with_label_values(&[sink])
            .inc();
    }

    /// A re-read of the session key file: `loaded` or `refused` (the
    /// previous keys kept serving).
    pub fn session_key_reload(&self, result: &'static str) {
        self.0
            .identity
            .session_key_reloads
            .with_label_values(&[result])
            .inc();
    }

    /// One instance metadata request: its path kind (a fixed label, see
    /// `server::imds`) and the HTTP status answered.
    pub fn imds_request(&self, path: &'static str, status: u16) {
        let mut buf = [0u8; 3];
        let status = status_label(status, &mut buf);
        self.0
            .identity
            .imds_requests
            .with_label_values(&[path, status])
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<Vec<u8>, prometheus::Error> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.0.registry.gather(), &mut buf)?;
        Ok(buf)
    }
}

/// Distinct actions labelled in shadow disagreements before the rest are
/// counted as `other`.
pub const MAX_SHADOW_ACTIONS: usize = 256;

/// Metrics of decision-diff gated reloads, shadow snapshots and decision
/// log shipping (issue 15).
struct Issue15Metrics {
    diff_sampled: IntGauge,
    diff_changed: IntGauge,
    diff_refusals: IntCounter,
    shadow_evaluations: IntCounter,
    shadow_disagreements: IntCounterVec,
    shadow_dropped: IntCounter,
    shadow_actions: std::sync::Mutex<std::collections::HashSet<String>>,
    log_shipped: IntCounterVec,
    log_ship_dropped: IntCounterVec,
    log_ship_attempt_failures: IntCounterVec,
    shadow_bundle_fetches: IntCounterVec,
    shadow_bundle_signature_refusals: IntCounterVec,
}

impl Issue15Metrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let diff_sampled = IntGauge::new(
            "iamgate_reload_diff_sampled_requests",
            "Sampled recent requests decided on the candidate and the active snapshot at the last compared reload.",
        )?;
        let diff_changed = IntGauge::new(
            "iamgate_reload_diff_changed_decisions",
            "Sampled requests whose decision the candidate changed at the last compared reload.",
        )?;
        let diff_refusals = IntCounter::new(
            "iamgate_reload_diff_refusals_total",
            "Candidate bundles refused for changing more sampled decisions than allowed.",
        )?;
        let shadow_evaluations = IntCounter::new(
            "iamgate_shadow_evaluations_total",
            "Live requests decided again on the shadow snapshot.",
        )?;
        let shadow_disagreements = IntCounterVec::new(
            Opts::new(
                "iamgate_shadow_disagreements_total",
                "Live requests the shadow snapshot decided differently, by action and both decisions.",
            ),
            &["action", "active", "shadow"],
        )?;
        let shadow_dropped = IntCounter::new(
            "iamgate_shadow_dropped_total",
            "Live requests not evaluated on the shadow snapshot because its queue was full.",
        )?;
        let log_shipped = IntCounterVec::new(
            Opts::new(
                "iamgate_decision_log_shipped_total",
                "Decision-log records delivered by a shipping sink, by sink.",
            ),
            &["sink"],
        )?;
        let log_ship_dropped = IntCounterVec::new(
            Opts::new(
                "iamgate_decision_log_ship_dropped_total",
                "Decision-log records a shipping sink dropped, by sink and reason.",
            ),
            &["sink", "reason"],
        )?;
        let log_ship_attempt_failures = IntCounterVec::new(
            Opts::new(
                "iamgate_decision_log_ship_attempt_failures_total",
                "Failed delivery attempts of a shipping sink (each is retried with backoff).",
            ),
            &["sink"],
        )?;
        registry.register(Box::new(diff_sampled.clone()))?;
        registry.register(Box::new(diff_changed.clone()))?;
        registry.register(Box::new(diff_refusals.clone()))?;
        registry.register(Box::new(shadow_evaluations.clone()))?;
        registry.register(Box::new(shadow_disagreements.clone()))?;
        registry.register(Box::new(shadow_dropped.clone()))?;
        registry.register(Box::new(log_shipped.clone()))?;
        registry.register(Box::new(log_ship_dropped.clone()))?;
        registry.register(Box::new(log_ship_attempt_failures.clone()))?;
        // Counted apart from the main source's `iamgate_bundle_fetches_total`
        // so a shadow source's polls never look like the active bundle's.
        let shadow_bundle_fetches = IntCounterVec::new(
            Opts::new(
                "iamgate_shadow_bundle_fetches_total",
                "Polls of a remote --shadow-bundle source by result (updated, not_modified, error).",
            ),
            &["result"],
        )?;
        let shadow_bundle_signature_refusals = IntCounterVec::new(
            Opts::new(
                "iamgate_shadow_bundle_signature_refusals_total",
                "Shadow bundles refused by signature verification, by reason.",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(shadow_bundle_fetches.clone()))?;
        registry.register(Box::new(shadow_bundle_signature_refusals.clone()))?;
        for result in ["updated", "not_modified", "error"] {
            shadow_bundle_fetches.with_label_values(&[result]);
        }
        Ok(Self {
            diff_sampled,
            diff_changed,
            diff_refusals,
            shadow_evaluations,
            shadow_disagreements,
            shadow_dropped,
            shadow_actions: std::sync::Mutex::new(std::collections::HashSet::new()),
            log_shipped,
            log_ship_dropped,
            log_ship_attempt_failures,
            shadow_bundle_fetches,
            shadow_bundle_signature_refusals,
        })
    }
}

/// Metrics of the identity surfaces (issue 13): session key file reloads.
struct Issue13Metrics {
    session_key_reloads: IntCounterVec,
    imds_requests: IntCounterVec,
}

impl Issue13Metrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let session_key_reloads = IntCounterVec::new(
            Opts::new(
                "iamgate_session_key_reloads_total",
                "Re-reads of the --session-key file that changed it, by result (loaded, refused: the previous keys keep serving).",
            ),
            &["result"],
        )?;
        registry.register(Box::new(session_key_reloads.clone()))?;
        for result in ["loaded", "refused"] {
            session_key_reloads.with_label_values(&[result]);
        }
        let imds_requests = IntCounterVec::new(
            Opts::new(
                "iamgate_imds_requests_total",
                "Instance metadata requests (--imds-listen) by path kind (token, credentials, iam_info, metadata, other) and HTTP status.",
            ),
            &["path", "status"],
        )?;
        registry.register(Box::new(imds_requests.clone()))?;
        Ok(Self {
            session_key_reloads,
            imds_requests,
        })
    }
}

/// A three-digit status as text without allocating (other values: "other").
fn status_label(status: u16, buf: &mut [u8; 3]) -> &str {
    if !(100..=999).contains(&status) {
        return "other";
    }
    let digits = [status / 100, status / 10 % 10, status % 10];
    for (b, d) in buf.iter_mut().zip(digits) {
        *b = b'0' + u8::try_from(d).unwrap_or(0);
    }
    std::str::from_utf8(buf).unwrap_or("other")
}

#[cfg(test)]
mod issue13_tests {
    #[test]
    fn status_labels_are_three_digits() {
        let mut buf = [0u8; 3];
        assert_eq!(super::status_label(200, &mut buf), "200");
        assert_eq!(super::status_label(404, &mut buf), "404");
        assert_eq!(super::status_label(7, &mut buf), "other");
    }
}

#[cfg(test)]
mod issue15_tests {
    use super::*;

    #[test]
    fn shadow_source_fetches_are_not_the_main_sources() -> Result<(), Box<dyn std::error::Error>> {
        let m = Metrics::new()?;
        m.shadow_bundle_fetch("updated");
        m.shadow_bundle_fetch("not_modified");
        m.shadow_bundle_fetch("not_modified");
        m.shadow_bundle_signature_refused("unsigned");
        m.bundle_fetch("error");
        let text = String::from_utf8(m.render()?)?;
        for line in [
            "iamgate_shadow_bundle_fetches_total{result=\"updated\"} 1",
            "iamgate_shadow_bundle_fetches_total{result=\"not_modified\"} 2",
            "iamgate_shadow_bundle_fetches_total{result=\"error\"} 0",
            "iamgate_shadow_bundle_signature_refusals_total{reason=\"unsigned\"} 1",
            "iamgate_bundle_fetches_total{result=\"updated\"} 0",
            "iamgate_bundle_fetches_total{result=\"not_modified\"} 0",
            "iamgate_bundle_fetches_total{result=\"error\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}");
        }
        assert!(!text.contains("iamgate_bundle_signature_refusals_total{reason=\"unsigned\"} 1"));
        Ok(())
    }

    #[test]
    fn shadow_disagreement_actions_are_bounded() -> Result<(), Box<dyn std::error::Error>> {
        let m = Metrics::new()?;
        for i in 0..MAX_SHADOW_ACTIONS + 10 {
            m.shadow_compared(&format!("svc:Action{i}"), "allowed", "implicitDeny");
        }
        // Agreement counts an evaluation, no disagreement.
        m.shadow_compared("svc:Action0", "allowed", "allowed");
        let text = String::from_utf8(m.render()?)?;
        let series = text
            .lines()
            .filter(|l| l.starts_with("iamgate_shadow_disagreements_total{"))
            .count();
        assert_eq!(series, MAX_SHADOW_ACTIONS + 1);
        assert!(text.contains(
            "iamgate_shadow_disagreements_total{action=\"other\",active=\"allowed\",shadow=\"implicitDeny\"} 10"
        ));
        assert!(text.contains(&format!(
            "iamgate_shadow_evaluations_total {}",
            MAX_SHADOW_ACTIONS + 11
        )));
        Ok(())
    }
}
