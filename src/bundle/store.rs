//! The snapshot store: one `ArcSwap` that every front-end reads without
//! blocking. A decision in flight keeps the snapshot it loaded (an `Arc`,
//! or a guard for a decision made at once), so a swap never mixes two
//! snapshots in one answer. Only [`SnapshotStore::swap`]
//! replaces the snapshot, and only with one that compiled and passed its
//! tests.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use serde::Serialize;

use crate::bundle::err::BundleError;
use crate::bundle::snapshot::Snapshot;

/// The result of the last reload attempt, for `/v1/status`.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadAttempt {
    /// Seconds since the Unix epoch.
    pub at: f64,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Holds the active snapshot.
#[derive(Debug, Default)]
pub struct SnapshotStore {
    current: ArcSwapOption<Snapshot>,
    last: Mutex<Option<ReloadAttempt>>,
    /// How the bundle source is doing (remote sources), for `/v1/status`.
    source_status: Mutex<Option<serde_json::Value>>,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

impl SnapshotStore {
    /// An empty store (not ready until a snapshot is swapped in).
    pub fn new() -> Self {
        Self::default()
    }

    /// The active snapshot, if any. Never blocks.
    #[inline]
    pub fn load(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    /// The active snapshot for a decision made at once (no `.await` while
    /// it is held). Never blocks, and usually takes no reference count, so
    /// readers on many cores do not contend on the snapshot's count. The
    /// snapshot stays alive while the guard does, swap or not.
    #[inline]
    pub fn guard(&self) -> arc_swap::Guard<Option<Arc<Snapshot>>> {
        self.current.load()
    }

    /// Activates a snapshot that compiled and passed its tests.
    pub fn swap(&self, snapshot: Snapshot) -> Arc<Snapshot> {
        let revision = snapshot.revision().to_string();
        let snapshot = Arc::new(snapshot);
        self.current.store(Some(snapshot.clone()));
        self.record(ReloadAttempt {
            at: now(),
            ok: true,
            revision: Some(revision),
            error: None,
        });
        snapshot
    }

    /// Records a refused bundle; the active snapshot is untouched.
    pub fn record_failure(&self, err: &BundleError) {
        self.record(ReloadAttempt {
            at: now(),
            ok: false,
            revision: None,
            error: Some(err.to_string()),
        });
    }

    /// The last reload attempt.
    pub fn last_attempt(&self) -> Option<ReloadAttempt> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn record(&self, attempt: ReloadAttempt) {
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(attempt);
    }

    /// Publishes the bundle source's status (remote sources).
    pub fn set_source_status(&self, status: serde_json::Value) {
        *self
            .source_status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(status);
    }

    /// The bundle source's status, if the source reports one.
    pub fn source_status(&self) -> Option<serde_json::Value> {
        self.source_status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
