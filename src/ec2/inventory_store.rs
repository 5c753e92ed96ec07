//! The live inventory: one `ArcSwap<Inventory>` that decisions read without
//! blocking, updated by batches of changes (copy-on-write over persistent
//! maps, so a batch costs what it changes, not the inventory's size). The
//! bundle's `ec2/` files seed it; a reload re-seeds it only when those
//! files changed, so runtime updates survive policy reloads.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use crate::ec2::inventory::{Grant, Inventory, InventoryCounts, InventoryError, Resource};

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

#[derive(Debug, Default)]
struct Meta {
    seed_hash: Option<String>,
    updated_at: Option<SystemTime>,
    batches: u64,
}

/// Holds the live inventory.
#[derive(Debug, Default)]
pub struct InventoryStore {
    current: ArcSwap<Inventory>,
    /// Serialises writers; readers never take it.
    meta: Mutex<Meta>,
}

impl InventoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current inventory. Never blocks.
    #[inline]
    pub fn load(&self) -> Arc<Inventory> {
        self.current.load_full()
    }

    /// Replaces the inventory with a bundle's, unless the bundle's `ec2/`
    /// content is the one already seeded. Returns whether it replaced.
    pub fn seed(&self, inventory: &Arc<Inventory>, hash: &str) -> bool {
        let mut meta = self.lock();
        if meta.seed_hash.as_deref() == Some(hash) {
            return false;
        }
        self.current.store(inventory.clone());
        meta.seed_hash = Some(hash.to_owned());
        meta.updated_at = Some(SystemTime::now());
        true
    }

    /// Applies a batch atomically: readers see all of it or none of it.
    pub fn apply(&self, changes: Vec<Change>) -> Applied {
        let mut meta = self.lock();
        let mut next = Inventory::clone(&self.current.load());
        let mut applied = Applied::default();
        for change in changes {
            match change {
                Change::Upsert { resource } => {
                    next.upsert(*resource);
                    applied.upserted += 1;
                }
                Change::Delete { id } => {
                    if next.delete(&id) {
                        applied.deleted += 1;
                    } else {
                        applied.not_found += 1;
                    }
                }
                Change::Grants { id, add, remove } => {
                    if next.set_grants(&id, &add, &remove) {
                        applied.grants_changed += 1;
                    } else {
                        applied.not_found += 1;
                    }
                }
            }
        }
        self.current.store(Arc::new(next));
        meta.updated_at = Some(SystemTime::now());
        meta.batches += 1;
        applied
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
    ) -> Result<usize, InventoryError> {
        let mut meta = self.lock();
        let mut next = Inventory::clone(&self.current.load());
        let n = next.load_cli_output(doc, account, region)?;
        self.current.store(Arc::new(next));
        meta.updated_at = Some(SystemTime::now());
        meta.batches += 1;
        Ok(n)
    }

    /// Counts and the time of the last change, for `/v1/status`.
    pub fn status(&self) -> serde_json::Value {
        let meta = self.lock();
        serde_json::json!({
            "counts": self.current.load().counts(),
            "updated_at": meta.updated_at.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()).map(|d| d.as_secs_f64()),
            "batches": meta.batches,
        })
    }

    /// Counts by kind.
    pub fn counts(&self) -> InventoryCounts {
        self.current.load().counts()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Meta> {
        self.meta
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ec2::inventory::{Attributes, ResourceKind};

    fn instance(id: &str) -> Resource {
        Resource {
            id: id.to_owned(),
            kind: ResourceKind::Instance,
            account: "111122223333".to_owned(),
            region: "us-east-1".to_owned(),
            tags: vec![("team".to_owned(), "blue".to_owned())],
            attributes: Attributes::default(),
        }
    }

    #[test]
    fn batches_are_atomic_and_readers_keep_their_view() {
        let store = InventoryStore::new();
        let before = store.load();
        let applied = store.apply(vec![
            Change::Upsert {
                resource: Box::new(instance("i-1")),
            },
            Change::Upsert {
                resource: Box::new(instance("i-2")),
            },
            Change::Delete {
                id: "i-1".to_owned(),
            },
            Change::Delete {
                id: "i-9".to_owned(),
            },
        ]);
        assert_eq!(
            (applied.upserted, applied.deleted, applied.not_found),
            (2, 1, 1)
        );
        assert!(before.get("i-2").is_none());
        assert!(store.load().get("i-2").is_some());
        assert_eq!(store.counts().instances, 1);
    }

    #[test]
    fn cli_documents_apply_whole_or_not_at_all() {
        let store = InventoryStore::new();
        let doc = serde_json::json!({"Volumes": [
            {"VolumeId": "vol-1", "Size": 8, "VolumeType": "gp3",
             "Tags": [{"Key": "team", "Value": "blue"}]}]});
        assert_eq!(store.apply_cli(&doc, "111122223333", "us-east-1"), Ok(1));
        let vol = store.load().get("vol-1").cloned();
        assert_eq!(vol.as_ref().map(|v| v.tag("team")), Some(Some("blue")));
        assert_eq!(
            vol.and_then(|v| v.attributes.volume_size),
            Some(8),
            "attributes read from the CLI output"
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
    fn reseeding_only_when_the_bundle_changed() {
        let store = InventoryStore::new();
        let mut seed = Inventory::new();
        seed.upsert(instance("i-1"));
        let seed = Arc::new(seed);
        assert!(store.seed(&seed, "h1"));
        store.apply(vec![Change::Upsert {
            resource: Box::new(instance("i-2")),
        }]);
        assert!(!store.seed(&seed, "h1"));
        assert!(store.load().get("i-2").is_some());
        assert!(store.seed(&seed, "h2"));
        assert!(store.load().get("i-2").is_none());
    }
}
