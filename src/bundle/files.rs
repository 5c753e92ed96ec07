//! A bundle's files in memory, read from a directory or a `.tar.gz`.
//!
//! Reading is bounded and cannot block on what it finds:
//! - only regular files are read. A link is resolved and must stay inside
//!   the bundle; FIFOs, devices and sockets are refused. Files are opened
//!   non-blocking (so a FIFO cannot stall the open) and the type is checked
//!   on the opened handle, not on the name.
//! - one limit covers the whole bundle, counted on the bytes actually read
//!   (a file that grows, or a device that never ends, stops at the limit).
//!   For an archive the limit applies to its decompressed tar stream, so a
//!   small archive cannot expand past it whatever its headers claim.
//! - archive entries are regular files and folders only; an entry whose
//!   PAX size disagrees with its ustar size is refused (tar readers disagree
//!   on such archives).
//! - every path must fit the bundle layout ([`crate::bundle::layout`]);
//!   hidden entries are skipped without being read.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use crate::bundle::err::BundleError;
use crate::bundle::layout;

/// Default limit of a bundle's size (all files together; for an archive,
/// its decompressed tar stream).
pub const DEFAULT_MAX_BUNDLE_BYTES: u64 = 256 * 1024 * 1024;

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

    /// Reads a directory or a `.tar.gz` / `.tgz` archive of at most
    /// `max_bytes`.
    pub fn read(path: &Path, max_bytes: u64) -> Result<Self, BundleError> {
        let name = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| BundleError::io(&name, e))?;
        if meta.is_dir() {
            // A linked bundle folder (a Kubernetes volume, a `current` link)
            // is read where it points; links inside must stay under it.
            let root = std::fs::canonicalize(path).map_err(|e| BundleError::io(&name, e))?;
            let mut reader = DirReader {
                root: root.clone(),
                budget: Budget::new(max_bytes),
                files: BTreeMap::new(),
            };
            reader.walk(&root, "")?;
            Ok(Self {
                files: reader.files,
            })
        } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            let file = open_regular(path, true).map_err(|e| match e {
                OpenError::Io(e) => BundleError::io(&name, e),
                OpenError::NotRegular => BundleError::layout(&name, NOT_REGULAR),
            })?;
            Self::from_tar_gz(file, &name, max_bytes)
        } else {
            Err(BundleError::io(
                &name,
                "a bundle is a directory or a .tar.gz archive",
            ))
        }
    }

    /// Reads a gzip-compressed tar archive whose decompressed stream is at
    /// most `max_bytes`.
    pub fn from_tar_gz(reader: impl Read, name: &str, max_bytes: u64) -> Result<Self, BundleError> {
        let exceeded = Rc::new(Cell::new(false));
        let stream = Capped {
            inner: flate2::read::GzDecoder::new(reader),
            left: max_bytes,
            exceeded: exceeded.clone(),
        };
        let too_large = |path: &str| BundleError::TooLarge {
            path: format!("{name}:{path}"),
            limit: max_bytes,
        };
        let tar_error = |path: &str, e: std::io::Error| {
            if exceeded.get() {
                too_large(path)
            } else {
                BundleError::io(format!("{name}:{path}"), e)
            }
        };
        let mut archive = tar::Archive::new(stream);
        let mut files = BTreeMap::new();
        let mut dirs = BTreeSet::new();
        let entries = archive.entries().map_err(|e| tar_error("", e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| tar_error("", e))?;
            let raw = entry.path().map_err(|e| tar_error("", e))?.into_owned();
            let shown = raw.display().to_string();
            let kind = entry.header().entry_type();
            // Metadata for the whole archive (`git archive` writes one).
            if kind.is_pax_global_extensions() {
                continue;
            }
            let Some(parts) = relative_parts(&raw) else {
                return Err(BundleError::layout(
                    format!("{name}:{shown}"),
                    "an archive path that is absolute, climbs out with `..`, or is not UTF-8",
                ));
            };
            if parts.iter().any(|p| layout::is_hidden(p)) {
                continue;
            }
            if kind.is_dir() {
                if !parts.is_empty() {
                    dirs.insert(parts.join("/"));
                }
                continue;
            }
            let rel = parts.join("/");
            if !kind.is_file() {
                return Err(BundleError::layout(
                    format!("{name}:{rel}"),
                    format!(
                        "a {kind:?} entry; a bundle archive holds regular files and folders only"
                    ),
                ));
            }
            let ustar = entry.header().size().map_err(|e| tar_error(&rel, e))?;
            if ustar != entry.size() {
                return Err(BundleError::layout(
                    format!("{name}:{rel}"),
                    format!(
                        "the entry's PAX size ({}) disagrees with its ustar size ({ustar})",
                        entry.size()
                    ),
                ));
            }
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| tar_error(&rel, e))?;
            let text = text(bytes, &format!("{name}:{rel}"))?;
            files.insert(rel, text);
        }
        let (files, dirs) = strip_common_root(files, dirs);
        for dir in &dirs {
            layout::check(dir, true).map_err(|e| in_archive(name, e))?;
        }
        for rel in files.keys() {
            layout::check(rel, false).map_err(|e| in_archive(name, e))?;
        }
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

    /// Takes the files whose path `wanted` accepts out of the bundle,
    /// sorted: their text then lives only as long as the caller keeps it.
    pub fn take_where(&mut self, wanted: impl Fn(&str) -> bool) -> Vec<(String, String)> {
        let names: Vec<String> = self.files.keys().filter(|k| wanted(k)).cloned().collect();
        names
            .into_iter()
            .filter_map(|k| self.files.remove(&k).map(|v| (k, v)))
            .collect()
    }

    /// Every file, sorted by path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Checks every path against the bundle layout (in-memory bundles do
    /// not pass through the readers' checks).
    pub fn check_layout(&self) -> Result<(), BundleError> {
        self.files
            .keys()
            .try_for_each(|rel| layout::check(rel, false))
    }

    /// Whether the bundle holds no files at all.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

const NOT_REGULAR: &str = "not a regular file (a FIFO, device or socket is never read)";

/// Bytes left of the bundle's size limit.
struct Budget {
    limit: u64,
    left: u64,
}

impl Budget {
    fn new(limit: u64) -> Self {
        Self { limit, left: limit }
    }
}

struct DirReader {
    root: PathBuf,
    budget: Budget,
    files: BTreeMap<String, String>,
}

impl DirReader {
    fn walk(&mut self, dir: &Path, rel_dir: &str) -> Result<(), BundleError> {
        let shown = |p: &Path| p.display().to_string();
        let mut entries = std::fs::read_dir(dir)
            .map_err(|e| BundleError::io(shown(dir), e))?
            .map(|e| e.map(|e| (e.file_name(), e.path())))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BundleError::io(shown(dir), e))?;
        entries.sort();
        for (file_name, path) in entries {
            let Some(file_name) = file_name.to_str() else {
                return Err(BundleError::layout(
                    shown(&path),
                    "a name that is not UTF-8",
                ));
            };
            if layout::is_hidden(file_name) {
                continue;
            }
            let rel = if rel_dir.is_empty() {
                file_name.to_owned()
            } else {
                format!("{rel_dir}/{file_name}")
            };
            let target = self.resolve(&path, &rel)?;
            let meta = std::fs::metadata(&target).map_err(|e| BundleError::io(&rel, e))?;
            if meta.is_dir() {
                layout::check(&rel, true)?;
                self.walk(&target, &rel)?;
            } else {
                layout::check(&rel, false)?;
                self.read_file(&target, &rel)?;
            }
        }
        Ok(())
    }

    /// Where `path` leads: itself, or the target of a link, which must be
    /// inside the bundle.
    fn resolve(&self, path: &Path, rel: &str) -> Result<PathBuf, BundleError> {
        let meta = std::fs::symlink_metadata(path).map_err(|e| BundleError::io(rel, e))?;
        if !meta.file_type().is_symlink() {
            return Ok(path.to_path_buf());
        }
        let target = std::fs::canonicalize(path)
            .map_err(|e| BundleError::layout(rel, format!("a link that does not resolve: {e}")))?;
        if !target.starts_with(&self.root) {
            return Err(BundleError::layout(
                rel,
                format!(
                    "a link to `{}`, outside the bundle; links must stay inside it",
                    target.display()
                ),
            ));
        }
        Ok(target)
    }

    fn read_file(&mut self, path: &Path, rel: &str) -> Result<(), BundleError> {
        // `path` is resolved already: a link appearing now is not followed.
        let file = open_regular(path, false).map_err(|e| match e {
            OpenError::Io(e) => BundleError::io(rel, e),
            OpenError::NotRegular => BundleError::layout(rel, NOT_REGULAR),
        })?;
        let too_large = || BundleError::TooLarge {
            path: rel.to_owned(),
            limit: self.budget.limit,
        };
        let declared = file.metadata().map(|m| m.len()).unwrap_or_default();
        if declared > self.budget.left {
            return Err(too_large());
        }
        // The length on disk may change while reading: count what is read.
        // Sized from the declared length so a large file is not held in a
        // buffer grown to the next power of two while the bundle compiles.
        let capacity = usize::try_from(declared.saturating_add(1)).unwrap_or(0);
        let mut bytes = Vec::with_capacity(capacity);
        file.take(self.budget.left.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| BundleError::io(rel, e))?;
        let read = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if read > self.budget.left {
            return Err(too_large());
        }
        self.budget.left -= read;
        self.files.insert(rel.to_owned(), text(bytes, rel)?);
        Ok(())
    }
}

enum OpenError {
    Io(std::io::Error),
    NotRegular,
}

/// Opens a regular file for reading without blocking on what the path
/// turns out to be, and checks the type on the opened handle.
fn open_regular(path: &Path, follow: bool) -> Result<File, OpenError> {
    let flags = if follow {
        libc::O_NONBLOCK
    } else {
        libc::O_NONBLOCK | libc::O_NOFOLLOW
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(OpenError::Io)?;
    let meta = file.metadata().map_err(OpenError::Io)?;
    if meta.is_file() {
        Ok(file)
    } else {
        Err(OpenError::NotRegular)
    }
}

fn text(bytes: Vec<u8>, shown: &str) -> Result<String, BundleError> {
    String::from_utf8(bytes).map_err(|_| BundleError::io(shown, "not UTF-8 text"))
}

fn in_archive(name: &str, e: BundleError) -> BundleError {
    match e {
        BundleError::Layout { path, message } => BundleError::Layout {
            path: format!("{name}:{path}"),
            message,
        },
        other => other,
    }
}

/// The normal components of a relative archive path; `None` for an
/// absolute path, `..`, or a name that is not UTF-8.
fn relative_parts(path: &Path) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?.to_owned()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(parts)
}

/// Archives usually hold one top-level folder (`tar czf b.tgz bundle/`):
/// strip it when everything sits in one folder that is not itself a folder
/// of the layout.
fn strip_common_root(
    files: BTreeMap<String, String>,
    dirs: BTreeSet<String>,
) -> (BTreeMap<String, String>, BTreeSet<String>) {
    let Some(root) = files
        .keys()
        .chain(&dirs)
        .next()
        .and_then(|k| k.split('/').next())
        .map(str::to_owned)
    else {
        return (files, dirs);
    };
    let prefix = format!("{root}/");
    let inside = |k: &String| k.starts_with(&prefix);
    if layout::check(&root, true).is_ok()
        || !files.keys().all(inside)
        || !dirs.iter().all(|d| *d == root || inside(d))
    {
        return (files, dirs);
    }
    let strip = |k: &str| k.get(prefix.len()..).unwrap_or_default().to_owned();
    (
        files.into_iter().map(|(k, v)| (strip(&k), v)).collect(),
        dirs.iter()
            .filter(|d| **d != root)
            .map(|d| strip(d))
            .collect(),
    )
}

/// A reader that fails once more than `left` bytes have been asked of it.
struct Capped<R> {
    inner: R,
    left: u64,
    exceeded: Rc<Cell<bool>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // One byte beyond the limit tells "exactly at" from "over".
        let room = usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX);
        let want = buf.len().min(room);
        let n = self.inner.read(buf.get_mut(..want).unwrap_or_default())?;
        let n64 = u64::try_from(n).unwrap_or(u64::MAX);
        if n64 > self.left {
            self.exceeded.set(true);
            return Err(std::io::Error::other("the bundle size limit"));
        }
        self.left -= n64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
