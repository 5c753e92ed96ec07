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
pub mod diff;
pub mod err;
pub mod files;
pub mod gate;
pub mod layout;
pub mod organization;
pub mod sample;
pub mod service_data;
pub mod snapshot;
pub mod source;
pub mod store;

pub use err::BundleError;
pub use files::BundleFiles;
pub use snapshot::{AuthzAnswer, AuthzRequest, InstanceProfile, MatchedInfo, Snapshot};
pub use store::{ReloadAttempt, SnapshotStore};

/// How a bundle on disk is read and what it must hold to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Largest bundle accepted: all files together, or an archive's
    /// decompressed tar stream.
    pub max_bytes: u64,
    /// Serve a bundle with no principals (otherwise refused: an empty or
    /// mistyped bundle would serve nothing and still report ready).
    pub allow_empty: bool,
    /// The services' bundle-data loaders run on the bundle's files (none by
    /// default: the snapshot then holds IAM only).
    pub loaders: service_data::DataLoaders,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            max_bytes: files::DEFAULT_MAX_BUNDLE_BYTES,
            allow_empty: false,
            loaders: service_data::DataLoaders::default(),
        }
    }
}

/// Reads, compiles and gates a bundle from a path (directory or `.tar.gz`)
/// with the default [`LoadOptions`].
pub fn load_path(path: &std::path::Path) -> Result<Snapshot, BundleError> {
    load_path_with(path, &LoadOptions::default())
}

/// Reads, compiles and gates a bundle from a path (directory or `.tar.gz`).
pub fn load_path_with(
    path: &std::path::Path,
    options: &LoadOptions,
) -> Result<Snapshot, BundleError> {
    let source = path.display().to_string();
    let mut files = BundleFiles::read(path, options.max_bytes)?;
    let snapshot = load_taking_with(&mut files, &source, &options.loaders)?;
    if snapshot.stats().principals == 0 && !options.allow_empty {
        return Err(BundleError::Empty {
            source_name: source,
        });
    }
    Ok(snapshot)
}

/// Compiles and gates a bundle already in memory.
pub fn load_files(files: &BundleFiles, source: &str) -> Result<Snapshot, BundleError> {
    let snapshot = Snapshot::compile(files, source)?;
    gate::run_bundle_tests(files, &snapshot)?;
    Ok(snapshot)
}

/// Compiles and gates a bundle already in memory, then runs the services'
/// bundle-data `loaders` on the same files: any error refuses the bundle,
/// and the data is held by the snapshot it came with.
pub fn load_files_with(
    files: &BundleFiles,
    source: &str,
    loaders: &service_data::DataLoaders,
) -> Result<Snapshot, BundleError> {
    let snapshot = load_files(files, source)?;
    let data = loaders.load(files)?;
    Ok(snapshot.with_service_data(data))
}

/// [`load_files_with`], taking the account files out of `files` as they
/// are compiled ([`Snapshot::compile_taking`]): for a caller that has no
/// further use for them, it frees the bulk of the bundle's text early.
pub fn load_taking_with(
    files: &mut BundleFiles,
    source: &str,
    loaders: &service_data::DataLoaders,
) -> Result<Snapshot, BundleError> {
    let snapshot = Snapshot::compile_taking(files, source)?;
    gate::run_bundle_tests(files, &snapshot)?;
    let data = loaders.load(files)?;
    Ok(snapshot.with_service_data(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_bundle_is_refused_unless_allowed() -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("iamgate-empty-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let refused = load_path(&dir).err().map(|e| e.to_string());
        let allowed = load_path_with(
            &dir,
            &LoadOptions {
                allow_empty: true,
                ..LoadOptions::default()
            },
        )
        .map(|s| s.stats().principals);
        // An organization without any account file serves no principal either.
        std::fs::write(
            dir.join("organization.json"),
            r#"{"Roots": [{"Id": "r-1"}]}"#,
        )?;
        let org_only = load_path(&dir).err().map(|e| e.to_string());
        std::fs::remove_dir_all(&dir)?;

        let refused = refused.unwrap_or_default();
        assert!(
            refused.contains(&format!(
                "`{}`: the bundle holds no principals",
                dir.display()
            )) && refused.contains("--allow-empty-bundle"),
            "{refused}"
        );
        assert_eq!(allowed?, 0);
        assert!(org_only.is_some_and(|e| e.contains("no principals")));
        Ok(())
    }
}
