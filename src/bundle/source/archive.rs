//! Bundle archives as bytes: writing the `.tar.gz` that `iamgate bundle
//! build` publishes (deterministic: sorted entries, fixed owner, mode and
//! time, so the same files give the same bytes) and finding the signature
//! file inside one. Reading the bundle's own files stays with
//! [`BundleFiles::from_tar_gz`].

use std::io::{Read, Write};

use crate::bundle::err::BundleError;
use crate::bundle::files::BundleFiles;
use crate::bundle::source::signature::SIGNATURE_FILE;

/// Writes `files` and an optional signature file as a gzip-compressed tar.
pub fn write_tar_gz(
    files: &BundleFiles,
    signature: Option<&str>,
    out: impl Write,
) -> std::io::Result<()> {
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut entry = |path: &str, data: &[u8]| -> std::io::Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_size(u64::try_from(data.len()).unwrap_or(u64::MAX));
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, path, data)
    };
    if let Some(sig) = signature {
        entry(SIGNATURE_FILE, sig.as_bytes())?;
    }
    for (path, text) in files.iter() {
        entry(path, text.as_bytes())?;
    }
    tar.into_inner()?.finish()?.flush()
}

/// The signature file of an archive, if it has one at its top level (or
/// inside its one top-level folder). The whole decompressed stream is
/// bounded by `max_bytes`, as for the bundle itself.
pub fn signature_in_tar_gz(
    bytes: &[u8],
    name: &str,
    max_bytes: u64,
) -> Result<Option<String>, BundleError> {
    let stream = flate2::read::GzDecoder::new(bytes).take(max_bytes.saturating_add(1));
    let mut archive = tar::Archive::new(stream);
    let entries = archive.entries().map_err(|e| BundleError::io(name, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| BundleError::io(name, e))?;
        let path = entry.path().map_err(|e| BundleError::io(name, e))?;
        let parts: Vec<_> = path
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        let is_signature = entry.header().entry_type().is_file()
            && matches!(parts.len(), 1 | 2)
            && parts
                .last()
                .is_some_and(|c| c.as_os_str() == SIGNATURE_FILE);
        if !is_signature {
            continue;
        }
        let mut text = String::new();
        (&mut entry)
            .take(super::signature::MAX_SIGNATURE_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| BundleError::io(format!("{name}:{SIGNATURE_FILE}"), e))?;
        return Ok(Some(text));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_15_a_built_archive_reads_back_with_its_signature_file() {
        let files =
            BundleFiles::from_pairs([("iam/111122223333.json", "{}"), ("tests/a.json", "[]")]);
        let mut first = Vec::new();
        write_tar_gz(&files, Some("{\"sig\":1}"), &mut first).unwrap();
        let mut second = Vec::new();
        write_tar_gz(&files, Some("{\"sig\":1}"), &mut second).unwrap();
        assert_eq!(first, second, "the same files give the same bytes");
        let back = BundleFiles::from_tar_gz(&first[..], "b.tar.gz", 1 << 20).unwrap();
        assert_eq!(
            back.iter().collect::<Vec<_>>(),
            files.iter().collect::<Vec<_>>()
        );
        assert_eq!(
            signature_in_tar_gz(&first, "b", 1 << 20)
                .unwrap()
                .as_deref(),
            Some("{\"sig\":1}")
        );
        let mut unsigned = Vec::new();
        write_tar_gz(&files, None, &mut unsigned).unwrap();
        assert_eq!(signature_in_tar_gz(&unsigned, "b", 1 << 20).unwrap(), None);
    }
}
