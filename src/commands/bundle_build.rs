//! `iamgate bundle build DIR -o bundle.tar.gz [--sign KEY.pem]...`: checks
//! a bundle directory exactly as the server would (the same gate as
//! `bundle check`), then writes it as a `.tar.gz` with a manifest of every
//! file's SHA-256 and, with `--sign`, Ed25519 signatures over it
//! ([`crate::bundle::source::signature`]). The archive is deterministic and
//! replaced atomically, so a web server never serves half of it.
//! Exit codes as `bundle check`: 0 built, 1 a bundle test fails, 2 the
//! bundle or a key cannot be used.

use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::bundle::files::BundleFiles;
use crate::bundle::source::{archive, signature};
use crate::bundle::{BundleError, LoadOptions, load_files_with};
use crate::commands::bundle_check::{INVALID, OK, exit_code};

/// Builds the archive; writes a one-line report (or JSON) to `out`.
pub fn run(
    dir: &Path,
    output: &Path,
    sign_keys: &[std::path::PathBuf],
    options: LoadOptions,
    json: bool,
    out: &mut dyn Write,
) -> std::io::Result<u8> {
    let refuse = |out: &mut dyn Write, code: u8, message: String| -> std::io::Result<u8> {
        if json {
            writeln!(
                out,
                "{}",
                serde_json::json!({"ok": false, "message": message})
            )?;
        } else {
            writeln!(out, "refused: {message}")?;
        }
        Ok(code)
    };
    if !dir.is_dir() {
        return refuse(
            out,
            INVALID,
            format!("`{}` is not a directory", dir.display()),
        );
    }
    let mut keys = Vec::new();
    for k in sign_keys {
        match signature::SigningKey::from_pem_file(k) {
            Ok(key) => keys.push(key),
            Err(e) => return refuse(out, INVALID, e.to_string()),
        }
    }
    let source = dir.display().to_string();
    let gated = BundleFiles::read(dir, options.max_bytes).and_then(|files| {
        let snapshot = load_files_with(&files, &source, &options.loaders)?;
        if snapshot.stats().principals == 0 && !options.allow_empty {
            return Err(BundleError::Empty {
                source_name: source.clone(),
            });
        }
        Ok((files, snapshot))
    });
    let (files, snapshot) = match gated {
        Ok(v) => v,
        Err(e) => return refuse(out, exit_code(&e), e.to_string()),
    };
    let sig = signature::sign(&files, &keys);
    let sig_text = serde_json::to_string_pretty(&sig).map_err(std::io::Error::other)?;
    let mut bytes = Vec::new();
    archive::write_tar_gz(&files, Some(&sig_text), &mut bytes)?;
    let tmp = output.with_extension(format!("tmp-{}", std::process::id()));
    if let Err(e) = std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, output)) {
        let _ = std::fs::remove_file(&tmp);
        return refuse(out, INVALID, format!("writing `{}`: {e}", output.display()));
    }
    let sha: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let key_ids: Vec<&str> = keys.iter().map(|k| k.key_id.as_str()).collect();
    let files_n = files.iter().count();
    if json {
        let v = serde_json::json!({
            "ok": true,
            "output": output.display().to_string(),
            "files": files_n,
            "revision": &**snapshot.revision(),
            "bytes": bytes.len(),
            "sha256": sha,
            "signed_by": key_ids,
        });
        writeln!(out, "{v}")?;
    } else {
        let signed = if key_ids.is_empty() {
            "unsigned (manifest only)".to_owned()
        } else {
            format!("signed by {}", key_ids.join(", "))
        };
        writeln!(
            out,
            "built {}: {files_n} files, revision {}, {} bytes, sha256 {sha}; {signed}",
            output.display(),
            snapshot.revision(),
            bytes.len(),
        )?;
    }
    Ok(OK)
}
