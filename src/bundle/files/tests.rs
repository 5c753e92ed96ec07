use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;

type Res = Result<(), Box<dyn std::error::Error>>;

const LIMIT: u64 = 1024 * 1024;
const IAM: &str = "iam/111122223333.json";

/// A scratch folder, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> std::io::Result<Self> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "iamgate-files-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }

    fn write(&self, rel: &str, text: &str) -> std::io::Result<PathBuf> {
        let path = self.0.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
        Ok(path)
    }

    fn link(&self, rel: &str, target: impl AsRef<Path>) -> std::io::Result<()> {
        let path = self.0.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::os::unix::fs::symlink(target, path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn refusal(r: Result<BundleFiles, BundleError>) -> String {
    match r {
        Ok(files) => format!(
            "accepted: {:?}",
            files.iter().map(|(k, _)| k).collect::<Vec<_>>()
        ),
        Err(e) => e.to_string(),
    }
}

fn names(files: &BundleFiles) -> Vec<&str> {
    files.iter().map(|(k, _)| k).collect()
}

#[test]
fn reads_a_directory_and_skips_hidden_entries() -> Res {
    let d = Scratch::new("hidden")?;
    d.write("manifest.json", "{}")?;
    d.write(IAM, "{}")?;
    d.write(".git/config", "not json")?;
    d.write(".DS_Store", "junk")?;
    d.write("iam/.111122223333.json.swp", "junk")?;
    let files = BundleFiles::read(&d.0, LIMIT)?;
    assert_eq!(names(&files), ["iam/111122223333.json", "manifest.json"]);
    Ok(())
}

#[test]
fn unknown_entries_are_refused_with_their_path() -> Res {
    let d = Scratch::new("unknown")?;
    d.write(IAM, "{}")?;
    d.write("organisation.json", "{}")?;
    let msg = refusal(BundleFiles::read(&d.0, LIMIT));
    assert!(
        msg.contains("`organisation.json`: not part of the bundle layout"),
        "{msg}"
    );

    let d = Scratch::new("unknown-dir")?;
    d.write(IAM, "{}")?;
    std::fs::create_dir_all(d.0.join("test"))?;
    let msg = refusal(BundleFiles::read(&d.0, LIMIT));
    assert!(msg.contains("`test/`"), "{msg}");
    Ok(())
}

/// Runs `f` on another thread and fails the test if it does not return
/// within a few seconds (a read that blocks would hang the test).
fn within_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(5)).ok()
}

#[test]
fn a_fifo_is_refused_without_blocking() -> Res {
    let d = Scratch::new("fifo")?;
    d.write(IAM, "{}")?;
    let made = std::process::Command::new("mkfifo")
        .arg(d.0.join("organization.json"))
        .status()?;
    assert!(made.success());
    let root = d.0.clone();
    let msg = within_seconds(move || refusal(BundleFiles::read(&root, LIMIT)));
    let msg = msg.unwrap_or_else(|| "blocked".to_owned());
    assert!(
        msg.contains("`organization.json`: not a regular file"),
        "{msg}"
    );

    // Reached through a link inside the bundle, the same.
    let d = Scratch::new("fifo-link")?;
    d.write(IAM, "{}")?;
    std::fs::create_dir_all(d.0.join(".data"))?;
    let made = std::process::Command::new("mkfifo")
        .arg(d.0.join(".data/pipe"))
        .status()?;
    assert!(made.success());
    d.link("organization.json", ".data/pipe")?;
    let root = d.0.clone();
    let msg = within_seconds(move || refusal(BundleFiles::read(&root, LIMIT)));
    let msg = msg.unwrap_or_else(|| "blocked".to_owned());
    assert!(msg.contains("not a regular file"), "{msg}");
    Ok(())
}

#[test]
fn links_that_leave_the_bundle_are_refused() -> Res {
    let d = Scratch::new("dev-zero")?;
    d.write(IAM, "{}")?;
    d.link("organization.json", "/dev/zero")?;
    let msg = refusal(BundleFiles::read(&d.0, LIMIT));
    assert!(
        msg.contains("`organization.json`: a link to `/dev/zero`, outside the bundle"),
        "{msg}"
    );

    let outside = Scratch::new("outside")?;
    let secret = outside.write("policy.json", "{}")?;
    let d = Scratch::new("leave")?;
    d.link(IAM, &secret)?;
    let msg = refusal(BundleFiles::read(&d.0, LIMIT));
    assert!(msg.contains("outside the bundle"), "{msg}");

    let d = Scratch::new("dangling")?;
    d.link(IAM, d.0.join("nowhere.json"))?;
    let msg = refusal(BundleFiles::read(&d.0, LIMIT));
    assert!(msg.contains("a link that does not resolve"), "{msg}");
    Ok(())
}

/// The layout of a Kubernetes volume: visible names link into a hidden
/// folder that is swapped atomically.
#[test]
fn links_inside_the_bundle_are_followed() -> Res {
    let d = Scratch::new("k8s")?;
    d.write("..2026_01_01/iam/111122223333.json", r#"{"a": 1}"#)?;
    d.write("..2026_01_01/manifest.json", "{}")?;
    d.link("..data", "..2026_01_01")?;
    d.link("iam", "..data/iam")?;
    d.link("manifest.json", "..data/manifest.json")?;
    let files = BundleFiles::read(&d.0, LIMIT)?;
    assert_eq!(names(&files), [IAM, "manifest.json"]);
    assert_eq!(files.get(IAM), Some(r#"{"a": 1}"#));

    // The bundle path itself may be a link.
    let top = Scratch::new("k8s-top")?;
    top.link("current", &d.0)?;
    let files = BundleFiles::read(&top.0.join("current"), LIMIT)?;
    assert_eq!(names(&files), [IAM, "manifest.json"]);
    Ok(())
}

#[test]
fn one_limit_covers_the_whole_bundle() -> Res {
    let d = Scratch::new("limit")?;
    d.write(IAM, &" ".repeat(600))?;
    d.write("manifest.json", &" ".repeat(600))?;
    let msg = refusal(BundleFiles::read(&d.0, 1000));
    assert!(msg.contains("the bundle exceeds 1000 bytes"), "{msg}");
    assert!(BundleFiles::read(&d.0, 1200).is_ok());
    assert!(BundleFiles::read(&d.0, 1199).is_err());
    Ok(())
}

#[test]
fn text_must_be_utf8() -> Res {
    let d = Scratch::new("utf8")?;
    std::fs::create_dir_all(d.0.join("iam"))?;
    std::fs::write(d.0.join(IAM), [0xff, 0xfe])?;
    let msg = refusal(BundleFiles::read(&d.0, LIMIT));
    assert!(msg.contains("not UTF-8"), "{msg}");
    Ok(())
}

// ---- archives ----

type Tar = tar::Builder<flate2::write::GzEncoder<Vec<u8>>>;

fn tgz(build: impl FnOnce(&mut Tar) -> std::io::Result<()>) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    build(&mut b)?;
    b.into_inner()?.finish()
}

fn file(b: &mut Tar, path: &str, data: &[u8]) -> std::io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, path, data)
}

fn special(b: &mut Tar, path: &str, kind: tar::EntryType) -> std::io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(0);
    h.set_mode(0o644);
    h.set_entry_type(kind);
    if kind == tar::EntryType::Symlink || kind == tar::EntryType::Link {
        b.append_link(&mut h, path, "/dev/zero")
    } else {
        b.append_data(&mut h, path, std::io::empty())
    }
}

/// A PAX extended header (`x`, or `g` for the whole archive).
fn pax(b: &mut Tar, kind: tar::EntryType, key: &str, value: &str) -> std::io::Result<()> {
    let body = format!(" {key}={value}\n");
    // The record's length counts its own digits.
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len += 1;
    }
    let record = format!("{len}{body}");
    let mut h = tar::Header::new_ustar();
    h.set_size(record.len() as u64);
    h.set_entry_type(kind);
    h.set_path("PaxHeaders/x")?;
    h.set_cksum();
    b.append(&h, record.as_bytes())
}

fn from_tgz(bytes: &[u8], limit: u64) -> Result<BundleFiles, BundleError> {
    BundleFiles::from_tar_gz(bytes, "b.tar.gz", limit)
}

#[test]
fn archives_strip_one_top_folder_and_skip_hidden_and_global_headers() -> Res {
    let bytes = tgz(|b| {
        pax(b, tar::EntryType::XGlobalHeader, "comment", "git commit")?;
        special(b, "bundle/", tar::EntryType::Directory)?;
        special(b, "bundle/iam/", tar::EntryType::Directory)?;
        file(b, "bundle/iam/111122223333.json", b"{}")?;
        file(b, "bundle/._manifest.json", b"junk")?;
        file(b, "bundle/manifest.json", b"{}")
    })?;
    let files = from_tgz(&bytes, LIMIT)?;
    assert_eq!(names(&files), [IAM, "manifest.json"]);

    // `./` prefixes, and a layout folder at the top is not stripped.
    let bytes = tgz(|b| file(b, "./iam/111122223333.json", b"{}"))?;
    assert_eq!(names(&from_tgz(&bytes, LIMIT)?), [IAM]);
    Ok(())
}

#[test]
fn archive_entries_that_are_not_files_or_folders_are_refused() -> Res {
    for (kind, shown) in [
        (tar::EntryType::Symlink, "Symlink"),
        (tar::EntryType::Link, "Link"),
        (tar::EntryType::Fifo, "Fifo"),
        (tar::EntryType::Char, "Char"),
        (tar::EntryType::Block, "Block"),
    ] {
        let bytes = tgz(|b| {
            file(b, IAM, b"{}")?;
            special(b, "organization.json", kind)
        })?;
        let msg = refusal(from_tgz(&bytes, LIMIT));
        assert!(
            msg.contains(&format!("`b.tar.gz:organization.json`: a {shown} entry")),
            "{msg}"
        );
    }
    Ok(())
}

#[test]
fn archive_paths_must_stay_inside() -> Res {
    let mut raw = tar::Header::new_ustar();
    raw.set_size(2);
    raw.set_entry_type(tar::EntryType::Regular);
    let name = b"../iam/111122223333.json";
    if let Some(slot) = raw.as_old_mut().name.get_mut(..name.len()) {
        slot.copy_from_slice(name);
    }
    raw.set_cksum();
    let bytes = tgz(|b| b.append(&raw, &b"{}"[..]))?;
    let msg = refusal(from_tgz(&bytes, LIMIT));
    assert!(msg.contains("climbs out"), "{msg}");
    Ok(())
}

#[test]
fn unknown_archive_entries_are_refused_with_their_path() -> Res {
    let bytes = tgz(|b| {
        file(b, "bundle/iam/111122223333.json", b"{}")?;
        file(b, "bundle/organisation.json", b"{}")
    })?;
    let msg = refusal(from_tgz(&bytes, LIMIT));
    assert!(msg.contains("`b.tar.gz:organisation.json`"), "{msg}");
    let bytes = tgz(|b| {
        file(b, IAM, b"{}")?;
        special(b, "test/", tar::EntryType::Directory)
    })?;
    let msg = refusal(from_tgz(&bytes, LIMIT));
    assert!(msg.contains("`b.tar.gz:test/`"), "{msg}");
    Ok(())
}

/// An entry whose PAX size says more (or less) than its ustar header: tar
/// readers disagree on where the next entry starts, so it is refused.
#[test]
fn a_pax_size_that_disagrees_with_the_ustar_size_is_refused() -> Res {
    let bytes = tgz(|b| {
        pax(b, tar::EntryType::XHeader, "size", "1580000000")?;
        file(b, IAM, b"{}")?;
        // What a reader that trusts the PAX size would go on to read.
        file(b, "organization.json", &vec![b' '; 64 * 1024])
    })?;
    let msg = refusal(from_tgz(&bytes, LIMIT));
    assert!(
        msg.contains("PAX size (1580000000) disagrees with its ustar size (2)"),
        "{msg}"
    );
    Ok(())
}

/// A small archive that expands beyond the limit stops at the limit.
#[test]
fn decompression_is_bounded_by_the_limit() -> Res {
    let big = vec![b' '; 4 * 1024 * 1024];
    let bytes = tgz(|b| file(b, IAM, &big))?;
    assert!(bytes.len() < 64 * 1024, "{}", bytes.len());
    let msg = refusal(from_tgz(&bytes, 256 * 1024));
    assert!(msg.contains("the bundle exceeds 262144 bytes"), "{msg}");
    assert!(from_tgz(&bytes, 8 * 1024 * 1024).is_ok());
    Ok(())
}

#[test]
fn reading_an_archive_from_disk_checks_it_is_a_regular_file() -> Res {
    let d = Scratch::new("tgz")?;
    let bytes = tgz(|b| file(b, IAM, b"{}"))?;
    let path = d.0.join("bundle.tar.gz");
    std::fs::File::create(&path)?.write_all(&bytes)?;
    assert_eq!(names(&BundleFiles::read(&path, LIMIT)?), [IAM]);

    let fifo = d.0.join("pipe.tar.gz");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status()?;
    assert!(made.success());
    let msg = within_seconds(move || refusal(BundleFiles::read(&fifo, LIMIT)));
    let msg = msg.unwrap_or_else(|| "blocked".to_owned());
    assert!(msg.contains("not a regular file"), "{msg}");
    Ok(())
}
