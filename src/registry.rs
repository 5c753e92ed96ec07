//! The one list of the services this build serves (issue 12): the server
//! and the commands that read bundles build their [`Registry`] here. A new
//! service is a module of its own plus one line below.

use std::sync::Arc;

use crate::ec2::inventory_store::InventoryStore;
use crate::service::{Registry, RegistryError};

/// Every built-in service; EC2 keeps its live inventory in `inventory`.
pub fn builtin(inventory: Arc<InventoryStore>) -> Result<Registry, RegistryError> {
    Registry::new()
        .with(Arc::new(crate::ec2::service::Ec2Service::new(inventory)))?
        .with(Arc::new(crate::s3::S3Service))
}

/// The built-in services for a one-shot load (commands): EC2 with an
/// inventory of its own.
pub fn offline() -> Result<Registry, RegistryError> {
    builtin(Arc::new(InventoryStore::new()))
}
