//! Reloading: one task owns every reload, whatever asked for it (a file
//! change, SIGHUP, `POST /v1/reload`). Each attempt reads, compiles and
//! gates the bundle on a thread of its own, then either swaps it in or
//! keeps the running snapshot and records why.
//!
//! A load cannot hold reloads hostage: it is given `timeout`, after which
//! it is abandoned (its thread finishes on its own and its result is
//! dropped) and the reload is refused, so the next reload starts afresh. At
//! most [`MAX_ABANDONED_LOADS`] abandoned loads may still be running; past
//! that a reload is refused at once rather than starting another thread.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};

use crate::bundle::service_data::DataLoaders;
use crate::bundle::{
    BundleError, LoadOptions, Snapshot, SnapshotStore, demo, load_files_with, load_path_with,
};
use crate::server::config::ServeConfig;
use crate::service::Registry;
use crate::telemetry::Metrics;

/// Where bundles come from.
#[derive(Debug, Clone)]
pub enum BundleSource {
    /// A directory or `.tar.gz` on disk.
    Path { path: PathBuf, options: LoadOptions },
    /// The demo bundle built into the binary, read by these services'
    /// loaders.
    Demo(DataLoaders),
    /// A directory or `.tar.gz` on disk whose signature must verify
    /// (`--bundle-verify-key`).
    Signed {
        path: PathBuf,
        options: LoadOptions,
        keys: Arc<Vec<crate::bundle::source::signature::VerifyKey>>,
    },
    /// An `http(s)://` or `s3://` bundle, polled ([`crate::server::remote`]).
    Remote(Arc<crate::bundle::source::RemoteBundle>),
}

impl BundleSource {
    /// The bundle `serve` was configured with, its services' data read by
    /// `loaders`.
    pub fn from_config(config: &ServeConfig, loaders: &DataLoaders) -> Self {
        match &config.bundle {
            Some(path) => BundleSource::Path {
                path: path.clone(),
                options: LoadOptions {
                    max_bytes: config.max_bundle_bytes,
                    allow_empty: config.allow_empty_bundle,
                    loaders: loaders.clone(),
                },
            },
            None => BundleSource::Demo(loaders.clone()),
        }
    }

    /// The bundle `serve` was configured with, remote sources and
    /// signature keys included (keys are read here).
    pub fn try_from_config(
        config: &ServeConfig,
        loaders: &DataLoaders,
    ) -> Result<Self, crate::bundle::source::SourceError> {
        use crate::bundle::source;
        let settings = &config.bundle_sources;
        let keys = source::load_keys(&settings.verify_keys)?;
        let options = LoadOptions {
            max_bytes: config.max_bundle_bytes,
            allow_empty: config.allow_empty_bundle,
            loaders: loaders.clone(),
        };
        let Some(path) = &config.bundle else {
            if !keys.is_empty() {
                return Err(source::SourceError::Source {
                    url: "(built-in demo)".to_owned(),
                    message: "--bundle-verify-key needs a --bundle".to_owned(),
                });
            }
            return Ok(BundleSource::Demo(loaders.clone()));
        };
        let text = path.to_string_lossy();
        if source::is_remote(&text) {
            let remote = source::RemoteBundle::new(&text, settings, options, keys)?;
            return Ok(BundleSource::Remote(Arc::new(remote)));
        }
        if keys.is_empty() {
            return Ok(Self::from_config(config, loaders));
        }
        Ok(BundleSource::Signed {
            path: path.clone(),
            options,
            keys: Arc::new(keys),
        })
    }

    /// Reads, compiles and gates the bundle (blocking).
    pub fn load(&self) -> Result<Snapshot, BundleError> {
        match self {
            BundleSource::Path { path, options } => load_path_with(path, options),
            BundleSource::Demo(loaders) => {
                load_files_with(&demo::files(), "built-in demo bundle", loaders)
            }
            BundleSource::Signed {
                path,
                options,
                keys,
            } => crate::bundle::source::load_path_verified(path, options, keys),
            BundleSource::Remote(remote) => remote.load(),
        }
    }
}

/// Abandoned loads (past their timeout) that may still be running before
/// reloads are refused outright.
pub const MAX_ABANDONED_LOADS: usize = 2;

type Load = Arc<dyn Fn() -> Result<Snapshot, BundleError> + Send + Sync>;

/// Runs one load on a thread of its own, waiting at most `timeout`. A plain
/// thread rather than tokio's blocking pool: the runtime's shutdown waits
/// for its blocking tasks, and a stuck load must not stop the process from
/// exiting. Returns the result and, on timeout, the still-running thread.
async fn load_bounded_with(
    load: Load,
    timeout: Duration,
) -> (
    Result<Snapshot, BundleError>,
    Option<std::thread::JoinHandle<()>>,
) {
    let (tx, rx) = oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("iamgate-bundle-load".into())
        .spawn(move || {
            let _ = tx.send(load());
        });
    let thread = match spawned {
        Ok(t) => t,
        Err(e) => return (Err(BundleError::io("bundle load thread", e)), None),
    };
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(result)) => (result, None),
        Ok(Err(_)) => (
            Err(BundleError::io(
                "bundle load thread",
                "stopped without a result",
            )),
            None,
        ),
        Err(_) => (
            Err(BundleError::Timeout {
                seconds: timeout.as_secs_f64(),
            }),
            Some(thread),
        ),
    }
}

/// Loads the bundle once, waiting at most `timeout` (the first load, before
/// any listener opens).
pub async fn load_bounded(
    source: &BundleSource,
    timeout: Duration,
) -> Result<Snapshot, BundleError> {
    let source = source.clone();
    load_bounded_with(Arc::new(move || source.load()), timeout)
        .await
        .0
}

/// Why a reload, a shadow reload or a promotion changed nothing (what
/// was serving keeps serving).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReloadError {
    /// The bundle was refused.
    #[error(transparent)]
    Refused(#[from] BundleError),
    #[error("the reload task has stopped")]
    Stopped,
    #[error("no --shadow-bundle is configured")]
    NoShadowSource,
    #[error("no shadow snapshot is loaded")]
    NoShadow,
    #[error("promotion task: {0}")]
    Task(#[source] Arc<tokio::task::JoinError>),
}

type Reply = oneshot::Sender<Result<String, ReloadError>>;

/// Asks the reload task for a reload.
#[derive(Debug, Clone)]
pub struct ReloadHandle {
    tx: mpsc::Sender<Option<Reply>>,
}

impl ReloadHandle {
    /// Reloads now and waits for the result: the new revision, or why the
    /// bundle was refused (the running snapshot keeps serving).
    pub async fn reload(&self) -> Result<String, ReloadError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Some(tx))
            .await
            .map_err(|_| ReloadError::Stopped)?;
        rx.await.map_err(|_| ReloadError::Stopped)?
    }

    /// Requests a reload without waiting (file changes, signals).
    pub fn trigger(&self) {
        let _ = self.tx.try_send(None);
    }
}

/// Publishes the outcome of a load to the store and the metrics, and
/// activates it in every service first ([`Registry::activate`]: EC2 seeds
/// its inventory, replaying the runtime overlay). Blocking: activation may
/// write a service's state.
pub fn apply(
    store: &SnapshotStore,
    services: &Registry,
    metrics: &Metrics,
    result: Result<Snapshot, BundleError>,
) -> Result<String, BundleError> {
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
            services.activate(&snapshot);
            store.swap(snapshot);
            Ok(revision)
        }
        Err(e) => {
            metrics.reload(false);
            if let BundleError::Signature { reason, .. } = &e {
                metrics.bundle_signature_refused(reason.label());
            }
            store.record_failure(&e);
            tracing::error!(error = %e, "bundle refused; the running snapshot keeps serving");
            Err(e)
        }
    }
}

/// Starts the reload task. File changes are debounced by `debounce`; each
/// load is given `timeout`.
pub fn spawn(
    source: BundleSource,
    store: Arc<SnapshotStore>,
    services: Arc<Registry>,
    metrics: Metrics,
    debounce: Duration,
    timeout: Duration,
) -> ReloadHandle {
    let load: Load = Arc::new(move || source.load());
    spawn_with(load, store, services, metrics, debounce, timeout)
}

/// [`spawn`], with the decision-diff gate (issue 15): each loaded
/// candidate is also decided on the gate's sample of recent requests beside
/// the active snapshot, the counts published, and a candidate that changes
/// too many decisions refused like a failing test.
pub fn spawn_gated(
    source: BundleSource,
    gate: Arc<crate::bundle::gate::DiffGate>,
    store: Arc<SnapshotStore>,
    services: Arc<Registry>,
    metrics: Metrics,
    debounce: Duration,
    timeout: Duration,
) -> ReloadHandle {
    let (active, m) = (store.clone(), metrics.clone());
    let load: Load = Arc::new(move || {
        let candidate = source.load()?;
        let result = gate.check(active.load().as_deref(), &candidate);
        match &result {
            Ok(Some(s)) => m.reload_diff(s.sampled, s.changed, false),
            Err(BundleError::DecisionDiff {
                changed, sampled, ..
            }) => m.reload_diff(*sampled, *changed, true),
            _ => {}
        }
        result.map(|_| candidate)
    });
    spawn_with(load, store, services, metrics, debounce, timeout)
}

fn spawn_with(
    load: Load,
    store: Arc<SnapshotStore>,
    services: Arc<Registry>,
    metrics: Metrics,
    debounce: Duration,
    timeout: Duration,
) -> ReloadHandle {
    let (tx, mut rx) = mpsc::channel::<Option<Reply>>(64);
    tokio::spawn(async move {
        let mut abandoned: Vec<std::thread::JoinHandle<()>> = Vec::new();
        while let Some(first) = rx.recv().await {
            let mut waiters: Vec<Reply> = first.into_iter().collect();
            if waiters.is_empty() {
                // A file-change burst: wait for it to settle.
                tokio::time::sleep(debounce).await;
            }
            while let Ok(more) = rx.try_recv() {
                waiters.extend(more);
            }
            abandoned.retain(|t| !t.is_finished());
            let result = if abandoned.len() >= MAX_ABANDONED_LOADS {
                Err(BundleError::Busy {
                    stuck: abandoned.len(),
                })
            } else {
                let (result, stuck) = load_bounded_with(load.clone(), timeout).await;
                abandoned.extend(stuck);
                result
            };
            let (st, sv, m) = (store.clone(), services.clone(), metrics.clone());
            let outcome =
                match tokio::task::spawn_blocking(move || apply(&st, &sv, &m, result)).await {
                    Ok(outcome) => outcome,
                    Err(e) => apply(
                        &store,
                        &services,
                        &metrics,
                        Err(BundleError::io("reload task", e)),
                    ),
                };
            for w in waiters {
                let _ = w.send(outcome.clone().map_err(ReloadError::Refused));
            }
        }
    });
    ReloadHandle { tx }
}

/// A handle whose triggers run `on_trigger` (after `debounce`, once per
/// burst) instead of reloading the main bundle: [`watch`] for another
/// source, such as the shadow bundle. `reload()` on it only triggers.
pub fn trigger_task<F, Fut>(debounce: Duration, on_trigger: F) -> ReloadHandle
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (tx, mut rx) = mpsc::channel::<Option<Reply>>(64);
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            tokio::time::sleep(debounce).await;
            let mut waiters: Vec<Reply> = first.into_iter().collect();
            while let Ok(more) = rx.try_recv() {
                waiters.extend(more);
            }
            on_trigger().await;
            for w in waiters {
                let _ = w.send(Ok(String::new()));
            }
        }
    });
    ReloadHandle { tx }
}

/// Watches the bundle path and triggers reloads on change. The returned
/// watcher must be kept alive.
///
/// - A directory is watched recursively; any change in it reloads (hidden
///   entries included: a Kubernetes volume swaps its `..data` link).
/// - An archive is watched through its folder, so that replacing it by a
///   rename is seen, but only events naming the archive reload, or a change
///   of what the path leads to (a swapped link to it). Files written beside
///   it (a decision log, stderr) do not.
/// - A path that does not exist yet is watched through its folder; events
///   at or under the path reload.
pub fn watch(path: &Path, handle: ReloadHandle) -> notify::Result<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    // Events carry absolute paths when the watched folder is absolute.
    let target = std::path::absolute(path)?;
    let parent = target
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| target.clone());
    let is_dir = target.is_dir();
    let exists = target.exists();
    let watched = target.clone();
    let mut seen = Fingerprint::of(&target);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(ev) = event else { return };
        if ev.kind.is_access() {
            return;
        }
        let named = ev.paths.iter().any(|p| p.starts_with(&watched));
        // A swapped link to the archive (or a write no event named).
        let now = Fingerprint::of(&watched);
        let changed = now != seen;
        seen = now;
        if is_dir || named || changed {
            handle.trigger();
        }
    })?;
    match (is_dir, exists) {
        (true, _) => watcher.watch(&target, RecursiveMode::Recursive)?,
        (false, true) => watcher.watch(&parent, RecursiveMode::NonRecursive)?,
        // It may appear as a folder: see inside it too.
        (false, false) => watcher.watch(&parent, RecursiveMode::Recursive)?,
    }
    Ok(watcher)
}

/// What a path leads to, as far as a reload cares: the file it resolves to
/// and its size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Fingerprint {
    fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(Self {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Instant;

    use super::*;

    /// A load that hangs while `hang` is set, like a read on a stuck
    /// filesystem.
    fn hanging_load(hang: Arc<AtomicBool>, started: Arc<AtomicUsize>) -> Load {
        Arc::new(move || {
            started.fetch_add(1, Ordering::SeqCst);
            while hang.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
            crate::bundle::load_files(&demo::files(), "demo")
        })
    }

    #[tokio::test]
    async fn a_hung_load_times_out_and_later_reloads_still_run()
    -> Result<(), Box<dyn std::error::Error>> {
        let hang = Arc::new(AtomicBool::new(true));
        let started = Arc::new(AtomicUsize::new(0));
        let store = Arc::new(SnapshotStore::new());
        let handle = spawn_with(
            hanging_load(hang.clone(), started.clone()),
            store.clone(),
            Arc::new(Registry::new()),
            Metrics::new()?,
            Duration::from_millis(10),
            Duration::from_millis(300),
        );

        // Each hung load is abandoned after the timeout; the next one starts
        // afresh instead of queueing behind it.
        for _ in 0..MAX_ABANDONED_LOADS {
            let t = Instant::now();
            let err = handle.reload().await.err();
            assert!(
                matches!(&err, Some(ReloadError::Refused(BundleError::Timeout { seconds })) if *seconds == 0.3),
                "{err:?}"
            );
            assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        }
        assert_eq!(started.load(Ordering::SeqCst), MAX_ABANDONED_LOADS);

        // With that many still stuck, a reload is refused at once.
        let t = Instant::now();
        let err = handle.reload().await.err();
        assert!(
            matches!(
                &err,
                Some(ReloadError::Refused(BundleError::Busy { stuck })) if *stuck == MAX_ABANDONED_LOADS
            ),
            "{err:?}"
        );
        assert!(
            t.elapsed() < Duration::from_millis(250),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(started.load(Ordering::SeqCst), MAX_ABANDONED_LOADS);
        assert!(store.load().is_none());

        // Once the stuck loads end, reloads work again.
        hang.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let revision = handle.reload().await?;
        assert!(revision.starts_with("demo-1+sha256:"), "{revision}");
        assert!(store.load().is_some());
        Ok(())
    }
}
