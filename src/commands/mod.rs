//! The offline subcommands of the `iamgate` binary (`test`, `eval`,
//! `validate`, `bench`, `decode-message`, `bundle check`, `bundle build`): each takes parsed
//! arguments, writes its report to the given writer and returns the process
//! exit code.
//! Argument parsing stays in `main.rs`.

pub mod bench;
pub mod bundle_build;
pub mod bundle_check;
pub mod bundle_diff;
pub mod decode_message;
pub mod eval;
pub mod test;
pub mod validate;

use std::path::{Path, PathBuf};

/// Expands files and folders into the `*.json` files under them, sorted.
pub fn json_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for e in entries {
        if e.is_dir() {
            walk(&e, out)?;
        } else if e.extension().is_some_and(|x| x == "json") {
            out.push(e);
        }
    }
    Ok(())
}
