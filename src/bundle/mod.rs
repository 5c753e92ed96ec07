//! Bundles: reading them (a directory or a `.tar.gz`, in the AWS CLI's own
//! JSON shapes), compiling them into an immutable [`Snapshot`], gating a new
//! snapshot on the bundle's own tests, and the [`SnapshotStore`] that swaps
//! snapshots atomically while readers keep deciding.
//!
//! This module owns the only place a snapshot is replaced. It must not know
//! about listeners, protocols or metrics registries: it reports reload
//! results to its caller.

pub mod aws;
pub mod demo;
pub mod err;
pub mod files;
pub mod gate;
pub mod snapshot;
pub mod store;

pub use err::BundleError;
pub use files::BundleFiles;
pub use snapshot::{AuthzAnswer, AuthzRequest, MatchedInfo, Snapshot};
pub use store::{ReloadAttempt, SnapshotStore};

/// Reads, compiles and gates a bundle from a path (directory or `.tar.gz`).
pub fn load_path(path: &std::path::Path) -> Result<Snapshot, BundleError> {
    let files = BundleFiles::read(path)?;
    load_files(&files, &path.display().to_string())
}

/// Compiles and gates a bundle already in memory.
pub fn load_files(files: &BundleFiles, source: &str) -> Result<Snapshot, BundleError> {
    let snapshot = Snapshot::compile(files, source)?;
    gate::run_bundle_tests(files, &snapshot)?;
    Ok(snapshot)
}
