//! EC2's bundle data: the inventory snapshot under
//! `ec2/<account-id>/<region>/*.json` (AWS CLI `describe-*` output), read
//! by EC2 code through the bundle's service-data slot
//! ([`crate::bundle::service_data`]) and held beside the snapshot it came
//! with. The live inventory ([`crate::ec2::inventory_store`]) is seeded
//! from it when that snapshot becomes active.

use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::bundle::service_data::{BundleDataLoader, Data, ServiceData};
use crate::bundle::snapshot::parse_json;
use crate::bundle::{BundleError, BundleFiles};
use crate::ec2::inventory::Inventory;

/// The service name EC2's data is filed under.
pub const SERVICE: &str = "ec2";

/// The bundle's EC2 inventory and the hash of the files it came from.
#[derive(Debug)]
pub struct BundleInventory {
    pub inventory: Arc<Inventory>,
    /// Hash of the bundle's `ec2/` files: reloads re-seed the live
    /// inventory only when it changes.
    pub hash: String,
}

impl BundleInventory {
    /// Reads `ec2/<account>/<region>/*.json`.
    pub fn load(files: &BundleFiles) -> Result<Self, BundleError> {
        let mut inventory = Inventory::new();
        let mut h = Sha256::new();
        for (name, text) in files.under("ec2", ".json") {
            h.update(name.as_bytes());
            h.update([0]);
            h.update(text.as_bytes());
            h.update([0]);
            let parts: Vec<&str> = name.split('/').collect();
            let [_, account, region, _file] = parts.as_slice() else {
                return Err(BundleError::invalid(
                    name,
                    "$",
                    "inventory files live at ec2/<account-id>/<region>/<name>.json",
                ));
            };
            let doc: Value = parse_json(name, text)?;
            inventory
                .load_cli_output(&doc, account, region)
                .map_err(|e| BundleError::invalid(name, e.path, e.message))?;
        }
        Ok(Self {
            inventory: Arc::new(inventory),
            hash: digest(h),
        })
    }

    /// The data of a bundle without `ec2/` files.
    pub fn empty() -> Self {
        Self {
            inventory: Arc::new(Inventory::new()),
            hash: digest(Sha256::new()),
        }
    }

    /// EC2's data in a snapshot's service data; a snapshot compiled
    /// without EC2's loader has an empty inventory.
    pub fn of(data: &ServiceData) -> Arc<Self> {
        data.get::<Self>(SERVICE)
            .unwrap_or_else(|| Arc::new(Self::empty()))
    }
}

fn digest(h: Sha256) -> String {
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The loader registered for EC2.
#[derive(Debug, Default, Clone, Copy)]
pub struct Loader;

impl BundleDataLoader for Loader {
    fn service(&self) -> &'static str {
        SERVICE
    }

    fn load(&self, files: &BundleFiles) -> Result<Data, BundleError> {
        Ok(Arc::new(BundleInventory::load(files)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::service_data::DataLoaders;

    fn with_ec2(file: &str, text: &str) -> BundleFiles {
        let mut pairs: Vec<(String, String)> = crate::bundle::demo::files()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        pairs.push((file.to_owned(), text.to_owned()));
        BundleFiles::from_pairs(pairs)
    }

    #[test]
    fn the_inventory_is_read_by_ec2s_loader_and_refuses_the_bundle_with_it() {
        let loaders = DataLoaders::new(vec![Arc::new(Loader)]);
        let demo = crate::bundle::demo::files();
        let snap = crate::bundle::load_files_with(&demo, "demo", &loaders).unwrap();
        let data = BundleInventory::of(snap.service_data());
        assert_eq!(data.inventory.counts().instances, 4);
        assert_ne!(data.hash, BundleInventory::empty().hash);

        // The IAM view alone never reads ec2/ files.
        let broken = with_ec2("ec2/111111111111/us-east-1/extra.json", "{not json");
        let iam_only = crate::bundle::load_files(&broken, "broken").unwrap();
        assert!(!iam_only.service_data().has(SERVICE));
        assert_eq!(
            BundleInventory::of(iam_only.service_data()).hash,
            BundleInventory::empty().hash
        );
        // With EC2's loader, a broken inventory file refuses the bundle,
        // naming the file.
        let e = crate::bundle::load_files_with(&broken, "broken", &loaders)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("ec2/111111111111/us-east-1/extra.json"), "{e}");
        let misplaced = with_ec2("ec2/111111111111/x.json", "{}");
        assert!(BundleInventory::load(&misplaced).is_err());
    }
}
