//! A bundle's files in memory, read from a directory or a `.tar.gz`, with
//! size limits so that a runaway bundle cannot exhaust memory.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path};

use crate::bundle::err::BundleError;

/// Largest single file accepted.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// Largest bundle accepted (all files together).
pub const MAX_TOTAL_BYTES: u64 = 1024 * 1024 * 1024;

/// The files of a bundle: relative path (with `/`) → text.
#[derive(Debug, Clone, Default)]
pub struct BundleFiles {
    files: BTreeMap<String, String>,
}

impl BundleFiles {
    /// An in-memory bundle, for the built-in demo and tests.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            files: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Reads a directory or a `.tar.gz` / `.tgz` archive.
    pub fn read(path: &Path) -> Result<Self, BundleError> {
        let name = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| BundleError::io(&name, e))?;
        if meta.is_dir() {
            let mut files = BTreeMap::new();
            let mut total = 0u64;
            walk(path, path, &mut files, &mut total)?;
            Ok(Self { files })
        } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            let f = std::fs::File::open(path).map_err(|e| BundleError::io(&name, e))?;
            Self::from_tar_gz(f, &name)
        } else {
            Err(BundleError::io(
                &name,
                "a bundle is a directory or a .tar.gz archive",
            ))
        }
    }

    /// Reads a gzip-compressed tar archive.
    pub fn from_tar_gz(reader: impl Read, name: &str) -> Result<Self, BundleError> {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(reader));
        let mut files = BTreeMap::new();
        let mut total = 0u64;
        let entries = archive.entries().map_err(|e| BundleError::io(name, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| BundleError::io(name, e))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry.path().map_err(|e| BundleError::io(name, e))?;
            let Some(rel) = clean_relative(&path) else {
                continue;
            };
            let size = entry
                .header()
                .size()
                .map_err(|e| BundleError::io(name, e))?;
            total += size;
            if size > MAX_FILE_BYTES || total > MAX_TOTAL_BYTES {
                return Err(BundleError::TooLarge(format!("{name}: {rel}")));
            }
            let mut text = String::new();
            entry
                .by_ref()
                .take(MAX_FILE_BYTES)
                .read_to_string(&mut text)
                .map_err(|e| BundleError::io(format!("{name}:{rel}"), e))?;
            files.insert(rel, text);
        }
        // Archives usually hold one top-level folder: strip it when every
        // file shares it and no manifest/iam sits at the root.
        let files = strip_common_root(files);
        Ok(Self { files })
    }

    /// The text of a file, by relative path.
    pub fn get(&self, rel: &str) -> Option<&str> {
        self.files.get(rel).map(String::as_str)
    }

    /// Files directly under a folder with the given extension, sorted.
    pub fn under<'a>(
        &'a self,
        folder: &'a str,
        ext: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let prefix = format!("{folder}/");
        self.files
            .iter()
            .filter(move |(k, _)| k.starts_with(&prefix) && k.ends_with(ext))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Every file, sorted by path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

fn clean_relative(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?.to_owned()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn strip_common_root(files: BTreeMap<String, String>) -> BTreeMap<String, String> {
    let root_level = files
        .keys()
        .any(|k| k == "manifest.json" || k.starts_with("iam/"));
    let first = files
        .keys()
        .next()
        .and_then(|k| k.split_once('/'))
        .map(|(r, _)| r.to_owned());
    match first {
        Some(root) if !root_level && files.keys().all(|k| k.starts_with(&format!("{root}/"))) => {
            files
                .into_iter()
                .map(|(k, v)| (k.get(root.len() + 1..).unwrap_or_default().to_owned(), v))
                .collect()
        }
        _ => files,
    }
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, String>,
    total: &mut u64,
) -> Result<(), BundleError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| BundleError::io(dir.display().to_string(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| BundleError::io(dir.display().to_string(), e))?;
        let path = entry.path();
        let name = path.display().to_string();
        let file_type = entry.file_type().map_err(|e| BundleError::io(&name, e))?;
        if file_type.is_dir() {
            walk(root, &path, out, total)?;
            continue;
        }
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let size = entry
            .metadata()
            .map_err(|e| BundleError::io(&name, e))?
            .len();
        *total += size;
        if size > MAX_FILE_BYTES || *total > MAX_TOTAL_BYTES {
            return Err(BundleError::TooLarge(name));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| BundleError::io(&name, e))?;
        let rel = path
            .strip_prefix(root)
            .ok()
            .and_then(clean_relative)
            .ok_or_else(|| BundleError::io(&name, "path outside the bundle"))?;
        out.insert(rel, text);
    }
    Ok(())
}
