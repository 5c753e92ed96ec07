//! Reloading: one task owns every reload, whatever asked for it (a file
//! change, SIGHUP, `POST /v1/reload`). Each attempt reads, compiles and
//! gates the bundle off the async threads, then either swaps it in or keeps
//! the running snapshot and records why.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};

use crate::bundle::{BundleError, Snapshot, SnapshotStore, demo, load_files, load_path};
use crate::ec2::inventory_store::InventoryStore;
use crate::telemetry::Metrics;

/// Where bundles come from.
#[derive(Debug, Clone)]
pub enum BundleSource {
    /// A directory or `.tar.gz` on disk.
    Path(PathBuf),
    /// The demo bundle built into the binary.
    Demo,
}

impl BundleSource {
    /// Reads, compiles and gates the bundle (blocking).
    pub fn load(&self) -> Result<Snapshot, BundleError> {
        match self {
            BundleSource::Path(p) => load_path(p),
            BundleSource::Demo => load_files(&demo::files(), "built-in demo bundle"),
        }
    }
}

type Reply = oneshot::Sender<Result<String, String>>;

/// Asks the reload task for a reload.
#[derive(Debug, Clone)]
pub struct ReloadHandle {
    tx: mpsc::Sender<Option<Reply>>,
}

impl ReloadHandle {
    /// Reloads now and waits for the result: the new revision, or why the
    /// bundle was refused (the running snapshot keeps serving).
    pub async fn reload(&self) -> Result<String, String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Some(tx))
            .await
            .map_err(|_| "the reload task has stopped".to_owned())?;
        rx.await
            .map_err(|_| "the reload task has stopped".to_owned())?
    }

    /// Requests a reload without waiting (file changes, signals).
    pub fn trigger(&self) {
        let _ = self.tx.try_send(None);
    }
}

/// Publishes the outcome of a load to the store and the metrics, and
/// seeds the inventory from it (replaying the runtime overlay; see
/// [`InventoryStore`]). Blocking: seeding may write the inventory state.
pub fn apply(
    store: &SnapshotStore,
    inventory: &InventoryStore,
    metrics: &Metrics,
    result: Result<Snapshot, BundleError>,
) -> Result<String, String> {
    match result {
        Ok(snapshot) => {
            let revision = snapshot.revision().to_string();
            let loaded = snapshot
                .loaded_at()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            metrics.snapshot(
                &revision,
                snapshot.compile_duration(),
                snapshot.stats(),
                loaded,
            );
            metrics.reload(true);
            tracing::info!(revision = %revision, source = snapshot.source(), "snapshot active");
            let seeded = inventory.seed(snapshot.inventory(), snapshot.inventory_hash());
            if seeded.replaced {
                tracing::info!(
                    counts = ?inventory.counts(),
                    replayed = seeded.replayed,
                    dropped = seeded.dropped,
                    "inventory seeded from the bundle; runtime changes replayed over it"
                );
            }
            store.swap(snapshot);
            Ok(revision)
        }
        Err(e) => {
            metrics.reload(false);
            store.record_failure(&e);
            tracing::error!(error = %e, "bundle refused; the running snapshot keeps serving");
            Err(e.to_string())
        }
    }
}

/// Starts the reload task. File changes are debounced by `debounce`.
pub fn spawn(
    source: BundleSource,
    store: Arc<SnapshotStore>,
    inventory: Arc<InventoryStore>,
    metrics: Metrics,
    debounce: Duration,
) -> ReloadHandle {
    let (tx, mut rx) = mpsc::channel::<Option<Reply>>(64);
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut waiters: Vec<Reply> = first.into_iter().collect();
            if waiters.is_empty() {
                // A file-change burst: wait for it to settle.
                tokio::time::sleep(debounce).await;
            }
            while let Ok(more) = rx.try_recv() {
                waiters.extend(more);
            }
            let src = source.clone();
            let (st, inv, m) = (store.clone(), inventory.clone(), metrics.clone());
            let outcome =
                match tokio::task::spawn_blocking(move || apply(&st, &inv, &m, src.load())).await {
                    Ok(outcome) => outcome,
                    Err(e) => apply(
                        &store,
                        &inventory,
                        &metrics,
                        Err(BundleError::io("reload task", e)),
                    ),
                };
            for w in waiters {
                let _ = w.send(outcome.clone());
            }
        }
    });
    ReloadHandle { tx }
}

/// Watches the bundle path and triggers reloads on change. The returned
/// watcher must be kept alive.
pub fn watch(
    path: &std::path::Path,
    handle: ReloadHandle,
) -> notify::Result<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(ev) = event
            && !ev.kind.is_access()
        {
            handle.trigger();
        }
    })?;
    // Watch the parent too, so that replacing the bundle (rename) is seen.
    let target = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().map(|p| p.to_path_buf()).unwrap_or_default()
    };
    watcher.watch(&target, RecursiveMode::Recursive)?;
    Ok(watcher)
}
