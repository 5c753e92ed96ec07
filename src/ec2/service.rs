//! EC2 behind the service seam ([`crate::service`]): its catalog, its
//! bundle data (the inventory under `ec2/`, [`crate::ec2::bundle_data`])
//! and its live state, the inventory store seeded from each snapshot that
//! becomes active. EC2's Query API front door (SigV4 with EC2's error
//! codes, DryRun, owners' launch permissions) is the server's
//! `ext_authz::ec2`, selected by this service's mapping name.

use std::sync::Arc;

use crate::bundle::Snapshot;
use crate::bundle::service_data::BundleDataLoader;
use crate::ec2::bundle_data::{self, BundleInventory};
use crate::ec2::catalog;
use crate::ec2::inventory_store::InventoryStore;
use crate::service::Service;

/// The mapping name of EC2 Query API routes.
pub const MAPPING: &str = "ec2-query";

/// The EC2 service and its live inventory.
#[derive(Debug, Clone)]
pub struct Ec2Service {
    inventory: Arc<InventoryStore>,
}

impl Ec2Service {
    /// EC2 over `inventory`, the live store every front door reads.
    pub fn new(inventory: Arc<InventoryStore>) -> Self {
        Self { inventory }
    }

    /// The live inventory.
    pub fn inventory(&self) -> &Arc<InventoryStore> {
        &self.inventory
    }
}

impl Service for Ec2Service {
    fn name(&self) -> &'static str {
        bundle_data::SERVICE
    }

    fn mapping(&self) -> &'static str {
        MAPPING
    }

    fn actions(&self) -> Vec<&'static str> {
        catalog::actions().map(|a| a.name).collect()
    }

    fn catalog(&self) -> Option<&'static catalog::Catalog> {
        Some(&catalog::CATALOG)
    }

    fn bundle_data(&self) -> Option<Arc<dyn BundleDataLoader>> {
        Some(Arc::new(bundle_data::Loader))
    }

    /// Seeds the live inventory from the snapshot's (replaying the
    /// runtime overlay; see [`InventoryStore`]); a bundle whose `ec2/`
    /// files did not change leaves it as it is.
    fn status(&self) -> Option<(&'static str, serde_json::Value)> {
        Some(("inventory", self.inventory.status()))
    }

    fn activate(&self, snapshot: &Snapshot) {
        let data = BundleInventory::of(snapshot.service_data());
        let seeded = self.inventory.seed(&data.inventory, &data.hash);
        if seeded.replaced {
            tracing::info!(
                counts = ?self.inventory.counts(),
                replayed = seeded.replayed,
                dropped = seeded.dropped,
                "inventory seeded from the bundle; runtime changes replayed over it"
            );
        }
    }
}
