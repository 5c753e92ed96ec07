//! Polling a remote bundle (`--bundle http(s)://...` or `s3://...`): the
//! first load (falling back to the persisted last-known-good when the
//! source is unreachable or serves a refused bundle), then a poll every
//! `--bundle-poll-interval` with ±20 % jitter (so a fleet does not poll in
//! step), exponential backoff while the source fails, and metrics.
//!
//! A fetched bundle becomes the candidate of an ordinary reload: the same
//! reload task, signature check and gate as any other bundle. This module
//! never swaps a snapshot itself.
//!
//! A remote `--shadow-bundle` is polled the same way
//! ([`spawn_shadow_poller`]) but feeds the shadow only: its fetches are
//! counted apart (`iamgate_shadow_bundle_fetches_total`) and a change
//! there reloads the shadow, never the active snapshot.

use std::sync::Arc;
use std::time::Duration;

use crate::bundle::source::RemoteBundle;
use crate::bundle::source::http::Fetched;
use crate::bundle::{BundleError, Snapshot, SnapshotStore};
use crate::server::reload::{self, BundleSource, ReloadError, ReloadHandle};
use crate::telemetry::Metrics;

/// The longest wait between polls while the source keeps failing (or the
/// poll interval, if longer).
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// A factor in [0.8, 1.2).
fn jitter() -> f64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    let r = ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map(|()| u32::from_le_bytes(b))
        .unwrap_or(u32::MAX / 2);
    0.8 + 0.4 * (f64::from(r) / (f64::from(u32::MAX) + 1.0))
}

/// The wait before the next poll after `errors` consecutive failures.
pub fn next_wait(interval: Duration, errors: u32) -> Duration {
    let cap = interval.max(MAX_BACKOFF);
    let base = interval
        .checked_mul(1u32.checked_shl(errors.min(16)).unwrap_or(u32::MAX))
        .unwrap_or(cap)
        .min(cap);
    base.mul_f64(jitter())
}

fn publish(remote: &RemoteBundle, store: &SnapshotStore, metrics: &Metrics) {
    metrics.bundle_stale(remote.is_stale());
    if let Ok(v) = serde_json::to_value(remote.status()) {
        store.set_source_status(v);
    }
}

/// The first load of a remote bundle, before any listener opens: fetch
/// (sending the cached bundle's ETag, so an unchanged source answers 304
/// and the cache is used), else serve the cache.
pub async fn first_load(
    remote: &Arc<RemoteBundle>,
    source: &BundleSource,
    store: &SnapshotStore,
    metrics: &Metrics,
    timeout: Duration,
) -> Result<Snapshot, BundleError> {
    let cached = remote.cached();
    let cached_etag = cached.as_ref().and_then(|r| r.etag.clone());
    remote.set_etag(cached_etag.clone());
    let fetched = remote.fetch().await;
    let result = match fetched {
        Ok(Fetched::NotModified) => {
            metrics.bundle_fetch("not_modified");
            // The candidate is the cached archive: the source says it is current.
            reload::load_bounded(source, timeout).await
        }
        Ok(Fetched::Body { bytes, etag }) => {
            metrics.bundle_fetch("updated");
            remote.offer(bytes, etag.clone());
            let fresh = reload::load_bounded(source, timeout).await;
            remote.settle(etag, fresh.is_ok());
            match fresh {
                Ok(s) => Ok(s),
                Err(e) if cached.is_some() && remote.cached().is_some() => {
                    tracing::error!(error = %e, "the fetched bundle is refused; serving the cached bundle");
                    if let BundleError::Signature { reason, .. } = &e {
                        metrics.bundle_signature_refused(reason.label());
                    }
                    reload::load_bounded(source, timeout).await
                }
                Err(e) => Err(e),
            }
        }
        Err(e) => {
            metrics.bundle_fetch("error");
            if cached.is_some() {
                tracing::warn!(error = %e, url = %remote.url, "the bundle source cannot be reached; serving the cached bundle (stale)");
                remote.mark_stale();
                reload::load_bounded(source, timeout).await
            } else {
                Err(BundleError::io(&remote.url, e))
            }
        }
    };
    publish(remote, store, metrics);
    result
}

/// Polls the source for as long as the process runs.
pub fn spawn_poller(
    remote: Arc<RemoteBundle>,
    reload: ReloadHandle,
    store: Arc<SnapshotStore>,
    metrics: Metrics,
) {
    tokio::spawn(async move {
        let persist = |remote: Arc<RemoteBundle>| async move {
            let _ = tokio::task::spawn_blocking(move || remote.persist()).await;
        };
        persist(remote.clone()).await;
        let mut errors: u32 = 0;
        // With long polling the first request goes out at once and is held.
        let mut held = remote.long_poll.is_some();
        loop {
            // A server that held the last request (long polling) is asked
            // again at once: it answers when the bundle changes.
            if !held {
                tokio::time::sleep(next_wait(remote.poll_interval, errors)).await;
            }
            let started = tokio::time::Instant::now();
            let fetched = remote.fetch_waiting(remote.long_poll).await;
            // Held means the server applied the preference and actually
            // waited (at least half of it) or brought a new bundle; a server
            // that claims to wait but answers at once falls back to the
            // poll interval.
            held = match (&fetched, remote.long_poll) {
                (Ok((Fetched::NotModified, true)), Some(wait)) => started.elapsed() >= wait / 2,
                (Ok((Fetched::Body { .. }, true)), Some(_)) => true,
                _ => false,
            };
            match fetched.map(|(f, _)| f) {
                Ok(Fetched::NotModified) => {
                    errors = 0;
                    metrics.bundle_fetch("not_modified");
                }
                Ok(Fetched::Body { bytes, etag }) => {
                    errors = 0;
                    metrics.bundle_fetch("updated");
                    remote.offer(bytes, etag.clone());
                    let outcome = reload.reload().await;
                    remote.settle(etag, outcome.is_ok());
                    match outcome {
                        Ok(revision) => {
                            tracing::info!(%revision, url = %remote.url, "remote bundle activated");
                            persist(remote.clone()).await;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, url = %remote.url, "remote bundle refused")
                        }
                    }
                }
                Err(e) => {
                    errors = errors.saturating_add(1);
                    metrics.bundle_fetch("error");
                    tracing::warn!(error = %e, url = %remote.url, errors, "cannot fetch the bundle");
                }
            }
            publish(&remote, &store, &metrics);
        }
    });
}

/// Polls a remote shadow source for as long as the process runs: a new
/// bundle there reloads the shadow ([`crate::server::shadow::Shadow::reload`]),
/// validated like any bundle; the active snapshot is never touched.
pub fn spawn_shadow_poller(
    remote: Arc<RemoteBundle>,
    shadow: Arc<crate::server::shadow::Shadow>,
    metrics: Metrics,
    timeout: Duration,
) {
    tokio::spawn(async move {
        let mut errors: u32 = 0;
        let mut held = false;
        loop {
            if !held {
                tokio::time::sleep(next_wait(remote.poll_interval, errors)).await;
            }
            let started = tokio::time::Instant::now();
            let fetched = remote.fetch_waiting(remote.long_poll).await;
            held = match (&fetched, remote.long_poll) {
                (Ok((Fetched::NotModified, true)), Some(wait)) => started.elapsed() >= wait / 2,
                (Ok((Fetched::Body { .. }, true)), Some(_)) => true,
                _ => false,
            };
            match fetched.map(|(f, _)| f) {
                Ok(Fetched::NotModified) => {
                    errors = 0;
                    metrics.shadow_bundle_fetch("not_modified");
                }
                Ok(Fetched::Body { bytes, etag }) => {
                    errors = 0;
                    metrics.shadow_bundle_fetch("updated");
                    remote.offer(bytes, etag.clone());
                    let outcome = shadow.reload(timeout).await;
                    remote.settle(etag, outcome.is_ok());
                    match outcome {
                        Ok(revision) => {
                            tracing::info!(%revision, url = %remote.url, "remote shadow bundle loaded");
                        }
                        Err(e) => {
                            if let ReloadError::Refused(BundleError::Signature { reason, .. }) = &e
                            {
                                metrics.shadow_bundle_signature_refused(reason.label());
                            }
                            tracing::error!(error = %e, url = %remote.url, "remote shadow bundle refused; the previous shadow stays");
                        }
                    }
                }
                Err(e) => {
                    errors = errors.saturating_add(1);
                    metrics.shadow_bundle_fetch("error");
                    tracing::warn!(error = %e, url = %remote.url, errors, "cannot fetch the shadow bundle");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_15_polls_are_jittered_and_back_off_exponentially() {
        let i = Duration::from_secs(2);
        for _ in 0..100 {
            let w = next_wait(i, 0);
            assert!(w >= Duration::from_millis(1600) && w < Duration::from_millis(2400));
        }
        let w3 = next_wait(i, 3);
        assert!(w3 >= Duration::from_millis(12_800) && w3 < Duration::from_millis(19_200));
        // Capped at MAX_BACKOFF (jitter aside).
        assert!(next_wait(i, 30) < MAX_BACKOFF.mul_f64(1.2));
        assert!(next_wait(i, 30) >= MAX_BACKOFF.mul_f64(0.8));
    }
}
