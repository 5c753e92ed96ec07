//! The live inventory: one `ArcSwap<Inventory>` that decisions read without
//! blocking, and the one rule for what iamgate believes about EC2 resources.
//!
//! The live inventory is always the bundle's seed (its `ec2/` files) with
//! the runtime overlay replayed over it:
//!
//! - The **overlay** holds, for every resource changed at runtime (through
//!   the authenticated inventory API, after the control plane's backend
//!   confirmed the change), the resource as it is after the last change,
//!   or its deletion, and a fingerprint of the seed's description of that
//!   resource when it was first changed (its **base**).
//! - On every reload and at start the overlay is replayed over the new
//!   seed. An entry whose base still matches the seed's description of the
//!   resource is applied; an entry whose resource the bundle now describes
//!   differently (added, removed or changed) is dropped: the newer
//!   description wins. So an unrelated bundle change, or a file rewritten
//!   with the same content, keeps every runtime change; regenerating the
//!   `ec2/` files replaces exactly the runtime changes to the resources
//!   whose description changed.
//! - A change that makes a resource equal to the seed's description leaves
//!   no entry.
//!
//! With a state directory ([`InventoryStore::open`]) the overlay is written
//! to disk (temporary file, fsync, rename, fsync of the directory) before
//! a change becomes visible, so it survives restarts; a change that cannot
//! be written is refused and changes nothing. Each write rewrites the whole
//! overlay, whose size is that of the resources changed since the bundle
//! last described them (regenerating the `ec2/` files shrinks it). Without
//! a state directory the overlay lives in memory and survives reloads
//! only.
//!
//! The inventory's own version is a sequence number, raised by every
//! change of the live inventory (a batch, or a seed that changed it) and
//! persisted with the overlay, next to the hash of the seed. Writes are
//! serialised by one lock; readers never take it. File I/O happens under
//! that lock, so callers on async runtimes call writers from blocking
//! threads.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ec2::inventory::{Grant, Inventory, InventoryCounts, InventoryError, Resource};

/// The overlay file in the state directory.
const OVERLAY_FILE: &str = "inventory-overlay.json";
/// Held (advisory lock) while a server uses the state directory.
const LOCK_FILE: &str = "inventory.lock";
/// The format tag of the overlay file.
const FORMAT: &str = "iamgate-inventory-overlay/1";

/// One change to the inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    /// Insert or replace a resource.
    Upsert { resource: Box<Resource> },
    /// Remove a resource by id.
    Delete { id: String },
    /// Change an image's launch permissions or a snapshot's create-volume
    /// permissions.
    Grants {
        id: String,
        #[serde(default)]
        add: Vec<Grant>,
        #[serde(default)]
        remove: Vec<Grant>,
    },
}

/// What a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Applied {
    pub upserted: usize,
    pub deleted: usize,
    pub grants_changed: usize,
    /// Deletes and grant changes naming unknown resources.
    pub not_found: usize,
}

/// What seeding from a bundle did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seeded {
    /// Whether the bundle's `ec2/` content differed from the seed in use
    /// (when not, nothing changed).
    pub replaced: bool,
    /// Overlay entries replayed over the new seed.
    pub replayed: usize,
    /// Overlay entries dropped because the bundle now describes their
    /// resource differently.
    pub dropped: usize,
}

/// Why a change could not be applied, or the state directory not used.
#[derive(Debug, thiserror::Error)]
pub enum InventoryStoreError {
    #[error("no bundle has seeded the inventory yet")]
    NotSeeded,
    #[error(transparent)]
    Invalid(#[from] InventoryError),
    #[error("inventory state `{path}`: {source}")]
    State {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn state_err(
    path: &Path,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> InventoryStoreError {
    InventoryStoreError::State {
        path: path.display().to_string(),
        source: e.into(),
    }
}

/// One runtime change, as kept in the overlay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    /// Fingerprint of the seed's description of the resource when it was
    /// first changed at runtime; `None`: the seed did not hold it.
    base: Option<String>,
    /// The resource after the runtime changes; `None`: deleted.
    resource: Option<Arc<Resource>>,
}

/// The overlay file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverlayFile {
    format: String,
    seq: u64,
    seed_hash: Option<String>,
    entries: BTreeMap<String, Entry>,
}

/// A state directory in use: its path, and the lock that keeps a second
/// server out of it.
#[derive(Debug)]
struct StateDir {
    path: PathBuf,
    _lock: File,
}

#[derive(Debug, Default)]
struct Inner {
    /// The bundle's inventory; `None` until the first bundle loads.
    seed: Option<Arc<Inventory>>,
    seed_hash: Option<String>,
    overlay: BTreeMap<String, Entry>,
    seq: u64,
    updated_at: Option<SystemTime>,
    /// Batches applied since start.
    batches: u64,
    /// Overlay entries dropped by seeds since start.
    dropped: u64,
    state: Option<StateDir>,
    /// The last failure to write the state directory, if the last write
    /// failed.
    state_error: Option<String>,
}

/// Holds the live inventory.
#[derive(Debug, Default)]
pub struct InventoryStore {
    current: ArcSwap<Inventory>,
    /// Serialises writers; readers never take it.
    inner: Mutex<Inner>,
}

/// A fingerprint of one resource as the seed describes it (`None`: absent).
fn fingerprint(resource: Option<&Arc<Resource>>) -> Option<String> {
    resource.map(|r| {
        // A `Resource` always serialises (no maps with non-string keys);
        // were it ever not to, every such resource would share one
        // fingerprint, which only makes replays drop more, never less.
        let bytes = serde_json::to_vec(&**r).unwrap_or_default();
        Sha256::digest(&bytes)
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

/// The seed with the overlay replayed over it; entries whose base no
/// longer matches the seed are removed from `overlay` and counted.
fn replay(seed: &Inventory, overlay: &mut BTreeMap<String, Entry>) -> (Inventory, usize) {
    let mut live = seed.clone();
    let before = overlay.len();
    overlay.retain(|id, entry| fingerprint(seed.get(id)) == entry.base);
    for (id, entry) in overlay.iter() {
        match &entry.resource {
            Some(r) => live.upsert(Resource::clone(r)),
            None => {
                live.delete(id);
            }
        }
    }
    (live, before - overlay.len())
}

impl InventoryStore {
    /// An empty store whose overlay lives in memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose overlay is kept in `dir` (created if missing,
    /// readable by this user only), reading the overlay a previous run
    /// left there. It is replayed once the first bundle seeds the store.
    /// Fails if `dir` cannot be used, another process holds it, or the
    /// overlay file does not read back.
    pub fn open(dir: &Path) -> Result<Self, InventoryStoreError> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| state_err(dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| state_err(&lock_path, e))?;
        lock.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => {
                state_err(dir, "in use by another iamgate process")
            }
            std::fs::TryLockError::Error(e) => state_err(&lock_path, e),
        })?;
        let path = dir.join(OVERLAY_FILE);
        let (seq, overlay) = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: OverlayFile =
                    serde_json::from_slice(&bytes).map_err(|e| state_err(&path, e))?;
                if file.format != FORMAT {
                    return Err(state_err(
                        &path,
                        format!("unknown format `{}` (expected `{FORMAT}`)", file.format),
                    ));
                }
                (file.seq, file.entries)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, BTreeMap::new()),
            Err(e) => return Err(state_err(&path, e)),
        };
        let store = Self::default();
        {
            let mut inner = store.lock();
            inner.seq = seq;
            inner.overlay = overlay;
            inner.state = Some(StateDir {
                path: dir.to_path_buf(),
                _lock: lock,
            });
        }
        Ok(store)
    }

    /// The current inventory. Never blocks.
    #[inline]
    pub fn load(&self) -> Arc<Inventory> {
        self.current.load_full()
    }

    /// Seeds the store from a bundle's inventory (`hash` identifies its
    /// `ec2/` content) and replays the overlay over it. The same content
    /// as the seed in use changes nothing. A seed that dropped overlay
    /// entries is written to the state directory; if that write fails the
    /// seed still applies (the drop is a function of the seed and the
    /// overlay, and is made again at the next start) and the failure is
    /// reported in [`InventoryStore::status`].
    pub fn seed(&self, inventory: &Arc<Inventory>, hash: &str) -> Seeded {
        let mut inner = self.lock();
        if inner.seed_hash.as_deref() == Some(hash) && inner.seed.is_some() {
            return Seeded::default();
        }
        let mut overlay = std::mem::take(&mut inner.overlay);
        let (live, dropped) = replay(inventory, &mut overlay);
        let seq = inner.seq + 1;
        if let Err(e) = persist(&inner, seq, Some(hash), &overlay) {
            tracing::error!(error = %e, "cannot write the inventory state; runtime changes dropped by this seed may return after a restart");
            inner.state_error = Some(e.to_string());
        } else {
            inner.state_error = None;
        }
        let replayed = overlay.len();
        inner.overlay = overlay;
        inner.seed = Some(inventory.clone());
        inner.seed_hash = Some(hash.to_owned());
        inner.seq = seq;
        inner.dropped += dropped as u64;
        inner.updated_at = Some(SystemTime::now());
        self.current.store(Arc::new(live));
        Seeded {
            replaced: true,
            replayed,
            dropped,
        }
    }

    /// Applies a batch atomically: readers see all of it or none of it,
    /// and with a state directory nothing of it unless it was written.
    pub fn apply(&self, changes: Vec<Change>) -> Result<Applied, InventoryStoreError> {
        let mut inner = self.lock();
        let mut next = Inventory::clone(&self.current.load());
        let mut applied = Applied::default();
        let mut touched = Vec::new();
        for change in changes {
            match change {
                Change::Upsert { resource } => {
                    touched.push(resource.id.clone());
                    next.upsert(*resource);
                    applied.upserted += 1;
                }
                Change::Delete { id } => {
                    if next.delete(&id) {
                        applied.deleted += 1;
                        touched.push(id);
                    } else {
                        applied.not_found += 1;
                    }
                }
                Change::Grants { id, add, remove } => {
                    if next.set_grants(&id, &add, &remove) {
                        applied.grants_changed += 1;
                        touched.push(id);
                    } else {
                        applied.not_found += 1;
                    }
                }
            }
        }
        self.commit(&mut inner, next, touched)?;
        inner.batches += 1;
        Ok(applied)
    }

    /// Reads one AWS CLI `describe-*` output document into the live
    /// inventory, as [`Inventory::load_cli_output`] reads bundle files, and
    /// atomically: a document with an error changes nothing. Returns how
    /// many resources (or permission lists) it read.
    pub fn apply_cli(
        &self,
        doc: &serde_json::Value,
        account: &str,
        region: &str,
    ) -> Result<usize, InventoryStoreError> {
        let mut inner = self.lock();
        let before = self.current.load_full();
        let mut next = Inventory::clone(&before);
        let n = next.load_cli_output(doc, account, region)?;
        // Every resource the document replaced or changed is a new `Arc`.
        let touched = next
            .iter()
            .filter(|r| before.get(&r.id).is_none_or(|old| !Arc::ptr_eq(old, r)))
            .map(|r| r.id.clone())
            .collect();
        self.commit(&mut inner, next, touched)?;
        inner.batches += 1;
        Ok(n)
    }

    /// Records the `touched` resources of `next` in the overlay, writes it,
    /// and publishes `next`. Nothing changes if the write fails. Costs what
    /// the batch touched, plus writing the overlay when it is persisted.
    fn commit(
        &self,
        inner: &mut Inner,
        next: Inventory,
        touched: Vec<String>,
    ) -> Result<(), InventoryStoreError> {
        let seed = inner.seed.clone().ok_or(InventoryStoreError::NotSeeded)?;
        // Previous entries, to put back if the write fails.
        let mut undo: Vec<(String, Option<Entry>)> = Vec::with_capacity(touched.len());
        for id in touched {
            let now = next.get(&id);
            let seeded = seed.get(&id);
            let previous = if now.map(|r| &**r) == seeded.map(|r| &**r) {
                inner.overlay.remove(&id)
            } else {
                let base = match inner.overlay.get(&id) {
                    Some(e) => e.base.clone(),
                    None => fingerprint(seeded),
                };
                let entry = Entry {
                    base,
                    resource: now.cloned(),
                };
                inner.overlay.insert(id.clone(), entry)
            };
            undo.push((id, previous));
        }
        let seq = inner.seq + 1;
        if let Err(e) = persist(inner, seq, inner.seed_hash.as_deref(), &inner.overlay) {
            for (id, previous) in undo.into_iter().rev() {
                match previous {
                    Some(entry) => inner.overlay.insert(id, entry),
                    None => inner.overlay.remove(&id),
                };
            }
            inner.state_error = Some(e.to_string());
            return Err(e);
        }
        inner.state_error = None;
        inner.seq = seq;
        inner.updated_at = Some(SystemTime::now());
        self.current.store(Arc::new(next));
        Ok(())
    }

    /// Version, counts, overlay size and the time of the last change, for
    /// `/v1/status`. Reveals no resource.
    pub fn status(&self) -> serde_json::Value {
        let inner = self.lock();
        let version = inner
            .seed_hash
            .as_ref()
            .map(|h| format!("{h}-{}", inner.seq));
        serde_json::json!({
            "version": version,
            "seq": inner.seq,
            "seed_hash": inner.seed_hash,
            "counts": self.current.load().counts(),
            "overlay": {
                "resources": inner.overlay.len(),
                "dropped_by_reseed": inner.dropped,
                "persistent": inner.state.is_some(),
                "state_error": inner.state_error,
            },
            "updated_at": inner.updated_at.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()).map(|d| d.as_secs_f64()),
            "batches": inner.batches,
        })
    }

    /// Counts by kind.
    pub fn counts(&self) -> InventoryCounts {
        self.current.load().counts()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Writes the overlay (as it will be at `seq`) to the state directory, if
/// there is one.
fn persist(
    inner: &Inner,
    seq: u64,
    seed_hash: Option<&str>,
    overlay: &BTreeMap<String, Entry>,
) -> Result<(), InventoryStoreError> {
    let Some(state) = &inner.state else {
        return Ok(());
    };
    let file = OverlayFileRef {
        format: FORMAT,
        seq,
        seed_hash,
        entries: overlay,
    };
    let path = state.path.join(OVERLAY_FILE);
    let bytes = serde_json::to_vec(&file).map_err(|e| state_err(&path, e))?;
    write_atomically(&state.path, OVERLAY_FILE, &bytes).map_err(|e| state_err(&path, e))
}

/// [`OverlayFile`] by reference, for writing without copying the overlay.
#[derive(Serialize)]
struct OverlayFileRef<'a> {
    format: &'static str,
    seq: u64,
    seed_hash: Option<&'a str>,
    entries: &'a BTreeMap<String, Entry>,
}

/// Replaces `dir/name` with `bytes` so that a crash leaves either the old
/// or the new file, never a part of one: a temporary file in the same
/// directory, flushed to disk, renamed over the old one, and the
/// directory flushed so that the rename itself is durable.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ec2::inventory::{Attributes, ImageAttributes, ResourceKind};

    fn instance(id: &str, team: &str) -> Resource {
        Resource {
            id: id.to_owned(),
            account: "111122223333".to_owned(),
            region: "us-east-1".to_owned(),
            tags: vec![("team".to_owned(), team.to_owned())],
            attributes: Attributes::empty(ResourceKind::Instance),
        }
    }

    fn image(id: &str, grants: Vec<Grant>) -> Resource {
        Resource {
            id: id.to_owned(),
            account: "222233334444".to_owned(),
            region: "us-east-1".to_owned(),
            tags: vec![],
            attributes: Attributes::Image(ImageAttributes {
                grants,
                ..ImageAttributes::default()
            }),
        }
    }

    fn seed_of(resources: &[Resource]) -> Arc<Inventory> {
        let mut inv = Inventory::new();
        for r in resources {
            inv.upsert(r.clone());
        }
        Arc::new(inv)
    }

    fn grants_of(store: &InventoryStore, id: &str) -> Option<Vec<Grant>> {
        store.load().get(id).map(|r| r.attributes.grants().to_vec())
    }

    fn upsert(r: Resource) -> Change {
        Change::Upsert {
            resource: Box::new(r),
        }
    }

    fn revoke(id: &str, account: &str) -> Change {
        Change::Grants {
            id: id.to_owned(),
            add: vec![],
            remove: vec![Grant::Account(account.to_owned())],
        }
    }

    #[test]
    fn batches_are_atomic_and_readers_keep_their_view() {
        let store = InventoryStore::new();
        store.seed(&seed_of(&[]), "h0");
        let before = store.load();
        let applied = store
            .apply(vec![
                upsert(instance("i-1", "blue")),
                upsert(instance("i-2", "blue")),
                Change::Delete {
                    id: "i-1".to_owned(),
                },
                Change::Delete {
                    id: "i-9".to_owned(),
                },
            ])
            .ok();
        assert_eq!(
            applied.map(|a| (a.upserted, a.deleted, a.not_found)),
            Some((2, 1, 1))
        );
        assert!(before.get("i-2").is_none());
        assert!(store.load().get("i-2").is_some());
        assert_eq!(store.counts().instances, 1);
    }

    #[test]
    fn writes_before_the_first_seed_are_refused() {
        let store = InventoryStore::new();
        let r = store.apply(vec![upsert(instance("i-1", "blue"))]);
        assert!(matches!(r, Err(InventoryStoreError::NotSeeded)));
        assert!(store.load().get("i-1").is_none());
    }

    #[test]
    fn cli_documents_apply_whole_or_not_at_all() {
        let store = InventoryStore::new();
        store.seed(&seed_of(&[]), "h0");
        let doc = serde_json::json!({"Volumes": [
            {"VolumeId": "vol-1", "Size": 8, "VolumeType": "gp3",
             "Tags": [{"Key": "team", "Value": "blue"}]}]});
        assert_eq!(
            store.apply_cli(&doc, "111122223333", "us-east-1").ok(),
            Some(1)
        );
        let vol = store.load().get("vol-1").cloned();
        assert_eq!(vol.as_ref().map(|v| v.tag("team")), Some(Some("blue")));
        assert_eq!(
            vol.and_then(|v| v.attributes.volume_size()),
            Some(8),
            "attributes read from the CLI output"
        );
        assert_eq!(
            store.lock().overlay.len(),
            1,
            "the volume is a runtime change"
        );

        let bad = serde_json::json!({"Volumes": [{"VolumeId": "vol-2"}],
            "SecurityGroups": [{"GroupId": "sg-1", "IpPermissions": [
                {"IpProtocol": "tcp", "IpRanges": [{"CidrIp": "10.0.0.0/33"}]}]}]});
        let before = store.load();
        assert!(store.apply_cli(&bad, "111122223333", "us-east-1").is_err());
        assert!(Arc::ptr_eq(&before, &store.load()), "nothing applied");
        assert!(store.load().get("vol-2").is_none());
    }

    #[test]
    fn runtime_changes_survive_reseeds_that_do_not_describe_their_resource() {
        let store = InventoryStore::new();
        let ami = image("ami-1", vec![Grant::Account("111122223333".to_owned())]);
        store.seed(&seed_of(&[ami.clone(), instance("i-1", "blue")]), "h1");
        assert!(store.apply(vec![revoke("ami-1", "111122223333")]).is_ok());
        assert_eq!(grants_of(&store, "ami-1"), Some(vec![]));

        // Same content: nothing happens at all.
        assert_eq!(
            store.seed(&seed_of(&[ami.clone(), instance("i-1", "blue")]), "h1"),
            Seeded::default()
        );
        // An unrelated resource changed: the revocation stays.
        let seeded = store.seed(&seed_of(&[ami.clone(), instance("i-1", "red")]), "h2");
        assert_eq!((seeded.replayed, seeded.dropped), (1, 0));
        assert_eq!(grants_of(&store, "ami-1"), Some(vec![]));
        assert_eq!(
            store.load().get("i-1").and_then(|r| r.tag("team")),
            Some("red"),
            "the bundle's own change applies"
        );
        // The bundle now describes the image differently: its description wins.
        let shared = image("ami-1", vec![Grant::All]);
        let seeded = store.seed(&seed_of(&[shared, instance("i-1", "red")]), "h3");
        assert_eq!((seeded.replayed, seeded.dropped), (0, 1));
        assert_eq!(grants_of(&store, "ami-1"), Some(vec![Grant::All]));
        // And going back to the first description does not resurrect it.
        store.seed(&seed_of(&[ami, instance("i-1", "red")]), "h1");
        assert_eq!(
            grants_of(&store, "ami-1"),
            Some(vec![Grant::Account("111122223333".to_owned())])
        );
    }

    #[test]
    fn deletes_and_creates_follow_the_same_rule() {
        let store = InventoryStore::new();
        store.seed(&seed_of(&[instance("i-1", "blue")]), "h1");
        let batch = vec![
            Change::Delete {
                id: "i-1".to_owned(),
            },
            upsert(instance("i-new", "blue")),
        ];
        assert!(store.apply(batch).is_ok());
        store.seed(
            &seed_of(&[instance("i-1", "blue"), instance("i-x", "x")]),
            "h2",
        );
        assert!(store.load().get("i-1").is_none(), "the delete is replayed");
        assert!(
            store.load().get("i-new").is_some(),
            "the create is replayed"
        );
        // The bundle now lists the created instance itself: its description wins.
        store.seed(
            &seed_of(&[instance("i-1", "blue"), instance("i-new", "green")]),
            "h3",
        );
        assert_eq!(
            store.load().get("i-new").and_then(|r| r.tag("team")),
            Some("green")
        );
        assert!(store.load().get("i-1").is_none());
    }

    #[test]
    fn a_change_back_to_the_seed_leaves_no_entry_and_versions_only_grow() {
        let store = InventoryStore::new();
        let ami = image("ami-1", vec![Grant::Account("111122223333".to_owned())]);
        store.seed(&seed_of(std::slice::from_ref(&ami)), "h1");
        let v0 = store.lock().seq;
        assert!(store.apply(vec![revoke("ami-1", "111122223333")]).is_ok());
        assert_eq!(store.lock().overlay.len(), 1);
        let regrant = Change::Grants {
            id: "ami-1".to_owned(),
            add: vec![Grant::Account("111122223333".to_owned())],
            remove: vec![],
        };
        assert!(store.apply(vec![regrant]).is_ok());
        assert!(store.lock().overlay.is_empty());
        assert_eq!(store.lock().seq, v0 + 2);
        let status = store.status();
        assert_eq!(status["version"], format!("h1-{}", v0 + 2));
        assert_eq!(status["overlay"]["resources"], 0);
    }

    #[test]
    fn the_overlay_survives_a_restart_and_the_directory_is_exclusive() {
        let dir = std::env::temp_dir().join(format!("iamgate-inv-{}", uuid::Uuid::new_v4()));
        let ami = image("ami-1", vec![Grant::Account("111122223333".to_owned())]);
        let seed = seed_of(&[ami, instance("i-1", "blue")]);
        let seq = {
            let store = InventoryStore::open(&dir).ok();
            let store = store.as_ref();
            assert!(store.is_some());
            let store = store.expect("a fresh directory opens");
            assert!(
                InventoryStore::open(&dir).is_err(),
                "a second server is kept out"
            );
            store.seed(&seed, "h1");
            assert!(store.apply(vec![revoke("ami-1", "111122223333")]).is_ok());
            assert!(!dir.join(format!(".{OVERLAY_FILE}.tmp")).exists());
            store.lock().seq
        };
        let store = InventoryStore::open(&dir).ok();
        let store = store.expect("the directory reopens once released");
        store.seed(&seed, "h1");
        assert_eq!(grants_of(&store, "ami-1"), Some(vec![]));
        assert!(store.lock().seq > seq, "the sequence continues");
        drop(store);

        std::fs::write(dir.join(OVERLAY_FILE), b"{\"format\": \"other\"}").ok();
        assert!(
            InventoryStore::open(&dir).is_err(),
            "a broken file is refused"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let dir = std::env::temp_dir().join(format!("iamgate-inv-{}", uuid::Uuid::new_v4()));
        let store = InventoryStore::open(&dir).expect("a fresh directory opens");
        store.seed(&seed_of(&[instance("i-1", "blue")]), "h1");
        let before = store.load();
        // The directory disappears under the server.
        std::fs::remove_dir_all(&dir).ok();
        let r = store.apply(vec![upsert(instance("i-2", "blue"))]);
        assert!(matches!(r, Err(InventoryStoreError::State { .. })), "{r:?}");
        // The file system's own error is kept as the source.
        let source = r
            .as_ref()
            .err()
            .and_then(std::error::Error::source)
            .and_then(|e| e.downcast_ref::<std::io::Error>());
        assert!(source.is_some(), "{r:?}");
        assert!(Arc::ptr_eq(&before, &store.load()));
        assert!(store.lock().overlay.is_empty(), "the overlay is put back");
        assert!(store.status()["overlay"]["state_error"].is_string());
    }
}
