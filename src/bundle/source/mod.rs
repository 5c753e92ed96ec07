//! Where bundles come from besides a local path: `http(s)://` and `s3://`
//! URLs fetched with conditional GETs ([`http`], [`s3`]), signature
//! verification ([`signature`]) for every source, and the persisted
//! last-known-good ([`cache`]).
//!
//! A fetched bundle is only a candidate: [`RemoteBundle::load`] verifies it
//! (when keys are configured) and then hands it to exactly the same
//! compile-and-test gate as a bundle on disk ([`crate::bundle::load_files`]).
//! This module owns fetching, verification and the cache; it does not
//! schedule polls, count metrics or swap snapshots (the server's reload
//! task does).

pub mod archive;
pub mod cache;
pub mod http;
pub mod s3;
pub mod signature;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::bundle::err::BundleError;
use crate::bundle::files::BundleFiles;
use crate::bundle::snapshot::Snapshot;
use crate::bundle::{LoadOptions, load_taking_with};

use self::cache::{BundleCache, CacheRecord};
use self::http::{FetchError, Fetched, HttpClient};
use self::s3::S3Location;
use self::signature::{KeyError, SIGNATURE_FILE, VerifyKey};

/// `serve` settings of remote and signed bundles.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSettings {
    /// `--bundle-verify-key` (repeatable): public keys trusted to sign
    /// bundles; any key given makes signatures mandatory.
    pub verify_keys: Vec<PathBuf>,
    /// `--bundle-poll-interval`.
    pub poll_interval: Duration,
    /// `--bundle-fetch-timeout-ms`: one whole fetch.
    pub fetch_timeout: Duration,
    /// `--bundle-ca-file`: CAs trusted for `https://` sources.
    pub ca_file: Option<PathBuf>,
    /// `--bundle-s3-endpoint`.
    pub s3_endpoint: Option<String>,
    /// `--bundle-s3-region` (else `AWS_REGION`, `AWS_DEFAULT_REGION`,
    /// `us-east-1`).
    pub s3_region: Option<String>,
    /// `--bundle-s3-path-style`.
    pub s3_path_style: bool,
    /// `--bundle-cache`.
    pub cache_dir: Option<PathBuf>,
    /// `--bundle-long-poll`: ask an http(s) server to hold each poll this
    /// long until the bundle changes (`Prefer: wait=N`).
    pub long_poll: Option<Duration>,
}

impl Default for SourceSettings {
    fn default() -> Self {
        Self {
            verify_keys: Vec::new(),
            poll_interval: Duration::from_secs(30),
            fetch_timeout: Duration::from_secs(30),
            ca_file: None,
            s3_endpoint: None,
            s3_region: None,
            s3_path_style: false,
            cache_dir: None,
            long_poll: None,
        }
    }
}

/// Why remote-bundle settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("two --bundle-verify-key files hold the same key `{0}`")]
    DuplicateKey(String),
    #[error("--bundle `{url}`: {message}")]
    Source { url: String, message: String },
}

/// Whether a `--bundle` value is a URL rather than a path.
pub fn is_remote(bundle: &str) -> bool {
    ["http://", "https://", "s3://"]
        .iter()
        .any(|p| bundle.starts_with(p))
}

/// Reads the trusted public keys; their ids must differ.
pub fn load_keys(paths: &[PathBuf]) -> Result<Vec<VerifyKey>, SourceError> {
    let mut keys: Vec<VerifyKey> = Vec::new();
    for p in paths {
        let key = VerifyKey::from_pem_file(p)?;
        if keys.iter().any(|k| k.key_id == key.key_id) {
            return Err(SourceError::DuplicateKey(key.key_id));
        }
        keys.push(key);
    }
    Ok(keys)
}

fn signature_error(source: &str, reason: signature::SignatureError) -> BundleError {
    BundleError::Signature {
        source_name: source.to_owned(),
        reason,
    }
}

/// Verifies (when `keys` are given) and gates bundle files; returns the
/// snapshot and the id of the key that signed it.
fn gate(
    mut files: BundleFiles,
    signature_file: Option<&str>,
    source: &str,
    options: &LoadOptions,
    keys: &[VerifyKey],
) -> Result<(Snapshot, Option<String>), BundleError> {
    let key_id = if keys.is_empty() {
        None
    } else {
        Some(
            signature::verify(&files, signature_file, keys)
                .map_err(|e| signature_error(source, e))?,
        )
    };
    let snapshot = load_taking_with(&mut files, source, &options.loaders)?;
    if snapshot.stats().principals == 0 && !options.allow_empty {
        return Err(BundleError::Empty {
            source_name: source.to_owned(),
        });
    }
    Ok((snapshot, key_id))
}

/// Verifies and gates a `.tar.gz` bundle held in memory.
pub fn load_archive_bytes(
    bytes: &[u8],
    source: &str,
    options: &LoadOptions,
    keys: &[VerifyKey],
) -> Result<(Snapshot, Option<String>), BundleError> {
    let files = BundleFiles::from_tar_gz(bytes, source, options.max_bytes)?;
    let signature_file = if keys.is_empty() {
        None
    } else {
        archive::signature_in_tar_gz(bytes, source, options.max_bytes)?
    };
    gate(files, signature_file.as_deref(), source, options, keys)
}

/// Verifies and gates a bundle on disk (directory or `.tar.gz`).
pub fn load_path_verified(
    path: &Path,
    options: &LoadOptions,
    keys: &[VerifyKey],
) -> Result<Snapshot, BundleError> {
    let source = path.display().to_string();
    if path.is_dir() {
        let files = BundleFiles::read(path, options.max_bytes)?;
        let sig_path = path.join(SIGNATURE_FILE);
        let signature_file = match std::fs::metadata(&sig_path) {
            Ok(m) if m.len() > signature::MAX_SIGNATURE_BYTES => {
                return Err(BundleError::TooLarge {
                    path: sig_path.display().to_string(),
                    limit: signature::MAX_SIGNATURE_BYTES,
                });
            }
            Ok(_) => Some(
                std::fs::read_to_string(&sig_path)
                    .map_err(|e| BundleError::io(sig_path.display().to_string(), e))?,
            ),
            Err(_) => None,
        };
        return gate(files, signature_file.as_deref(), &source, options, keys).map(|(s, _)| s);
    }
    let len = std::fs::metadata(path)
        .map_err(|e| BundleError::io(&source, e))?
        .len();
    if len > options.max_bytes {
        return Err(BundleError::TooLarge {
            path: source,
            limit: options.max_bytes,
        });
    }
    let bytes = std::fs::read(path).map_err(|e| BundleError::io(&source, e))?;
    load_archive_bytes(&bytes, &source, options, keys).map(|(s, _)| s)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// Where a remote bundle is fetched from.
#[derive(Debug, Clone)]
enum Location {
    Http(String),
    S3(S3Location),
}

/// A bundle fetched and waiting for the gate.
#[derive(Debug, Clone)]
struct Candidate {
    bytes: Arc<Vec<u8>>,
    etag: Option<String>,
    /// Read from the cache rather than the source.
    cached_at: Option<f64>,
}

/// The last refused bundle, for `/v1/status`.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    pub at: f64,
    /// `unsigned`, `unknown_key`, `bad_signature`, `tampered`, `malformed`,
    /// or `invalid` (the gate refused it).
    pub reason: &'static str,
    pub message: String,
}

/// `/v1/status` `bundle_source`: how the remote source is doing.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteStatus {
    pub kind: &'static str,
    pub url: String,
    pub poll_interval_seconds: f64,
    /// The ETag sent as `If-None-Match`.
    pub etag: Option<String>,
    pub polls: u64,
    pub not_modified: u64,
    pub updates: u64,
    pub errors: u64,
    pub consecutive_errors: u64,
    pub last_poll_at: Option<f64>,
    pub last_success_at: Option<f64>,
    pub last_error: Option<String>,
    /// The source cannot be reached: the active bundle may be outdated.
    pub stale: bool,
    /// Since when the source has been unreachable.
    pub stale_since: Option<f64>,
    /// `source` or `cache`: where the active bundle was read from.
    pub served_from: Option<&'static str>,
    /// When the active bundle entered the cache (served from the cache).
    pub cached_at: Option<f64>,
    pub cache_dir: Option<String>,
    pub verification: VerificationStatus,
}

/// Signature checking, for `/v1/status`.
#[derive(Debug, Clone, Serialize)]
pub struct VerificationStatus {
    pub required: bool,
    pub trusted_keys: Vec<String>,
    /// The key that signed the active bundle.
    pub active_key_id: Option<String>,
    pub last_refusal: Option<Refusal>,
}

#[derive(Debug)]
struct RemoteState {
    /// Sent as `If-None-Match`.
    etag: Option<String>,
    candidate: Option<Candidate>,
    /// An activated bundle not yet written to the cache.
    unpersisted: Option<(Candidate, String)>,
    last_load_error: Option<BundleError>,
    status: RemoteStatus,
}

/// A bundle behind a URL, polled by the server.
#[derive(Debug)]
pub struct RemoteBundle {
    /// The URL as shown (query string removed: it may carry a token).
    pub url: String,
    location: Location,
    client: HttpClient,
    pub options: LoadOptions,
    pub keys: Vec<VerifyKey>,
    pub poll_interval: Duration,
    pub cache: Option<BundleCache>,
    /// Long polling (http(s) sources only).
    pub long_poll: Option<Duration>,
    state: Mutex<RemoteState>,
}

impl RemoteBundle {
    /// A remote source for `url` (`http(s)://` or `s3://`).
    pub fn new(
        url: &str,
        settings: &SourceSettings,
        options: LoadOptions,
        keys: Vec<VerifyKey>,
    ) -> Result<Self, SourceError> {
        let err = |message: String| SourceError::Source {
            url: url.to_owned(),
            message,
        };
        let client = HttpClient::new(
            settings.ca_file.as_deref(),
            options.max_bytes,
            settings.fetch_timeout,
        )
        .map_err(|e| err(e.to_string()))?;
        let (kind, location) = if url.starts_with("s3://") {
            let region = settings
                .s3_region
                .clone()
                .or_else(|| std::env::var("AWS_REGION").ok())
                .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "us-east-1".to_owned());
            // It becomes part of the bucket's host name and of the SigV4
            // scope: a Region name and nothing else.
            let region = crate::policy::Region::parse(&region).map_err(|e| err(e.to_string()))?;
            let loc = S3Location::parse(
                url,
                region.into(),
                settings.s3_endpoint.clone(),
                settings.s3_path_style,
            )
            .map_err(|e| err(e.to_string()))?;
            ("s3", Location::S3(loc))
        } else {
            let uri: ::http::Uri = url.parse().map_err(|_| err("not a URL".to_owned()))?;
            if uri.host().is_none() {
                return Err(err("the URL has no host".to_owned()));
            }
            ("http", Location::Http(url.to_owned()))
        };
        let shown = url.split('?').next().unwrap_or(url).to_owned();
        let cache = settings.cache_dir.clone().map(BundleCache::new);
        let status = RemoteStatus {
            kind,
            url: shown.clone(),
            poll_interval_seconds: settings.poll_interval.as_secs_f64(),
            etag: None,
            polls: 0,
            not_modified: 0,
            updates: 0,
            errors: 0,
            consecutive_errors: 0,
            last_poll_at: None,
            last_success_at: None,
            last_error: None,
            stale: false,
            stale_since: None,
            served_from: None,
            cached_at: None,
            cache_dir: cache.as_ref().map(|c| c.dir().display().to_string()),
            verification: VerificationStatus {
                required: !keys.is_empty(),
                trusted_keys: keys.iter().map(|k| k.key_id.clone()).collect(),
                active_key_id: None,
                last_refusal: None,
            },
        };
        Ok(Self {
            url: shown,
            location,
            client,
            options,
            keys,
            poll_interval: settings.poll_interval,
            cache,
            long_poll: settings.long_poll,
            state: Mutex::new(RemoteState {
                etag: None,
                candidate: None,
                unpersisted: None,
                last_load_error: None,
                status,
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, RemoteState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A conditional GET with the current ETag; counts the poll.
    pub async fn fetch(&self) -> Result<Fetched, FetchError> {
        self.fetch_waiting(None).await.map(|(f, _)| f)
    }

    /// As [`RemoteBundle::fetch`], long polling for `wait` when the source
    /// is http(s); says whether the server held the request.
    pub async fn fetch_waiting(
        &self,
        wait: Option<Duration>,
    ) -> Result<(Fetched, bool), FetchError> {
        let etag = self.state().etag.clone();
        let result = match &self.location {
            Location::Http(url) => {
                self.client
                    .get_waiting(url, &[], etag.as_deref(), wait)
                    .await
            }
            Location::S3(loc) => loc
                .get(&self.client, etag.as_deref())
                .await
                .map(|f| (f, false)),
        };
        let now = unix_now();
        let mut st = self.state();
        let s = &mut st.status;
        s.polls += 1;
        s.last_poll_at = Some(now);
        match &result {
            Ok((fetched, _)) => {
                match fetched {
                    Fetched::NotModified => s.not_modified += 1,
                    Fetched::Body { .. } => s.updates += 1,
                }
                s.consecutive_errors = 0;
                s.last_success_at = Some(now);
                s.last_error = None;
                s.stale = false;
                s.stale_since = None;
            }
            Err(e) => {
                s.errors += 1;
                s.consecutive_errors += 1;
                s.last_error = Some(e.to_string());
                s.stale = true;
                s.stale_since.get_or_insert(now);
            }
        }
        result
    }

    /// Makes a fetched bundle the candidate of the next load.
    pub fn offer(&self, bytes: Vec<u8>, etag: Option<String>) {
        self.state().candidate = Some(Candidate {
            bytes: Arc::new(bytes),
            etag,
            cached_at: None,
        });
    }

    /// Sets the ETag sent with the next fetch (the cached bundle's at
    /// startup, so an unchanged source answers 304).
    pub fn set_etag(&self, etag: Option<String>) {
        let mut st = self.state();
        st.status.etag = etag.clone();
        st.etag = etag;
    }

    /// The cached bundle of this source, if the cache holds a consistent
    /// one; a cache that fails its own checks is logged and ignored.
    pub fn cached(&self) -> Option<CacheRecord> {
        let cache = self.cache.as_ref()?;
        match cache.load(&self.url, self.options.max_bytes) {
            Ok(Some((record, bytes))) => {
                self.state().candidate = Some(Candidate {
                    bytes: Arc::new(bytes),
                    etag: record.etag.clone(),
                    cached_at: Some(record.cached_at),
                });
                Some(record)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "the bundle cache is ignored");
                None
            }
        }
    }

    /// Verifies and gates the current candidate (blocking; the reload
    /// task calls it).
    pub fn load(&self) -> Result<Snapshot, BundleError> {
        let candidate = self.state().candidate.clone().ok_or_else(|| {
            BundleError::io(&self.url, "no bundle has been fetched from the source yet")
        })?;
        let result = load_archive_bytes(&candidate.bytes, &self.url, &self.options, &self.keys);
        let mut st = self.state();
        match result {
            Ok((snapshot, key_id)) => {
                st.last_load_error = None;
                let s = &mut st.status;
                s.verification.active_key_id = key_id;
                s.served_from = Some(if candidate.cached_at.is_some() {
                    "cache"
                } else {
                    "source"
                });
                s.cached_at = candidate.cached_at;
                if candidate.cached_at.is_none() {
                    st.unpersisted = Some((candidate, snapshot.revision().to_string()));
                }
                Ok(snapshot)
            }
            Err(e) => {
                st.status.verification.last_refusal = Some(Refusal {
                    at: unix_now(),
                    reason: match &e {
                        BundleError::Signature { reason, .. } => reason.label(),
                        _ => "invalid",
                    },
                    message: e.to_string(),
                });
                st.last_load_error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// After a reload of `etag`'s bundle: remember the ETag when the
    /// bundle was activated or refused for what it holds (so the same bad
    /// bundle is not downloaded again at every poll), not when the load
    /// could not run.
    pub fn settle(&self, etag: Option<String>, activated: bool) {
        let mut st = self.state();
        let content_refusal = matches!(
            st.last_load_error,
            Some(
                BundleError::Signature { .. }
                    | BundleError::Invalid { .. }
                    | BundleError::TestFailed { .. }
                    | BundleError::Layout { .. }
                    | BundleError::TooLarge { .. }
                    | BundleError::Empty { .. }
            )
        );
        if activated || content_refusal {
            st.status.etag = etag.clone();
            st.etag = etag;
        }
    }

    /// Writes an activated, not yet cached bundle to the cache.
    pub fn persist(&self) {
        let Some(cache) = &self.cache else { return };
        let Some((candidate, revision)) = self.state().unpersisted.take() else {
            return;
        };
        if let Err(e) = cache.store(
            &self.url,
            candidate.etag.as_deref(),
            &revision,
            unix_now(),
            &candidate.bytes,
        ) {
            tracing::warn!(error = %e, dir = %cache.dir().display(), "cannot write the bundle cache");
        }
    }

    /// Marks the active bundle as read from the cache because the source
    /// could not be reached.
    pub fn mark_stale(&self) {
        let mut st = self.state();
        st.status.stale = true;
        st.status.stale_since.get_or_insert_with(unix_now);
    }

    pub fn is_stale(&self) -> bool {
        self.state().status.stale
    }

    /// The status for `/v1/status`.
    pub fn status(&self) -> RemoteStatus {
        self.state().status.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed_archive(key: &signature::SigningKey) -> Vec<u8> {
        let files = crate::bundle::demo::files();
        let sig =
            serde_json::to_string(&signature::sign(&files, std::slice::from_ref(key))).unwrap();
        let mut out = Vec::new();
        archive::write_tar_gz(&files, Some(&sig), &mut out).unwrap();
        out
    }

    fn remote(cache: &Path, keys: Vec<VerifyKey>) -> RemoteBundle {
        let settings = SourceSettings {
            cache_dir: Some(cache.to_path_buf()),
            ..SourceSettings::default()
        };
        RemoteBundle::new(
            "http://127.0.0.1:9/bundle.tar.gz?token=secret",
            &settings,
            LoadOptions::default(),
            keys,
        )
        .unwrap()
    }

    /// Issue 12: the S3 region goes into a host name and a SigV4 scope, so
    /// it must be a Region name.
    #[test]
    fn s3_sources_need_a_region_name() {
        let with = |region: &str| {
            let settings = SourceSettings {
                s3_region: Some(region.to_owned()),
                ..SourceSettings::default()
            };
            RemoteBundle::new(
                "s3://bucket/bundle.tar.gz",
                &settings,
                LoadOptions::default(),
                Vec::new(),
            )
        };
        assert!(with("eu-west-1").is_ok());
        for bad in ["evil.example/x", "us-east-1.attacker", "US-EAST-1"] {
            let err = with(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("is not a Region name"), "{bad}: {err}");
        }
    }

    #[test]
    fn issue_15_a_cached_bundle_passes_the_same_checks_as_a_fetched_one() {
        let dir = std::env::temp_dir().join(format!("iamgate-remote-{}", uuid::Uuid::new_v4()));
        let (signer, key) = signature::test_keypair();
        let (_, other) = signature::test_keypair();
        let bytes = signed_archive(&signer);

        let r = remote(&dir, vec![key.clone()]);
        assert_eq!(
            r.url, "http://127.0.0.1:9/bundle.tar.gz",
            "the query is not shown"
        );
        assert!(r.load().is_err(), "nothing fetched yet");
        r.offer(bytes.clone(), Some("\"e1\"".into()));
        let snapshot = r.load().unwrap();
        r.settle(Some("\"e1\"".into()), true);
        r.persist();
        let st = r.status();
        assert_eq!(st.served_from, Some("source"));
        assert_eq!(st.etag.as_deref(), Some("\"e1\""));
        assert_eq!(
            st.verification.active_key_id.as_deref(),
            Some(key.key_id.as_str())
        );

        // A restart: the cache holds the bundle and its ETag.
        let r = remote(&dir, vec![key.clone()]);
        let record = r.cached().unwrap();
        assert_eq!(record.etag.as_deref(), Some("\"e1\""));
        assert_eq!(record.revision, snapshot.revision().to_string());
        assert_eq!(r.load().unwrap().revision(), snapshot.revision());
        assert_eq!(r.status().served_from, Some("cache"));

        // The same cache under another trusted key fails its signature check.
        let r = remote(&dir, vec![other]);
        assert!(r.cached().is_some());
        let err = r.load().unwrap_err();
        assert!(matches!(err, BundleError::Signature { .. }), "{err}");
        let st = r.status();
        assert_eq!(st.verification.last_refusal.unwrap().reason, "unknown_key");
        // Refused for what it holds: its ETag is kept, so it is not fetched again.
        r.settle(Some("\"e2\"".into()), false);
        assert_eq!(r.status().etag.as_deref(), Some("\"e2\""));

        // Unsigned content is refused when keys are configured.
        let mut unsigned = Vec::new();
        archive::write_tar_gz(&crate::bundle::demo::files(), None, &mut unsigned).unwrap();
        let r = remote(&dir, vec![key]);
        r.offer(unsigned, None);
        assert!(r.load().unwrap_err().to_string().contains("not signed"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
