//! `iamgate bundle check` end to end (issue 14): the real binary on bundles
//! made from the built-in demo bundle — as a directory and as a `.tar.gz`,
//! with a failing bundle test, with a broken file, and missing — checking
//! exit codes (0 served, 1 a test fails, 2 unreadable or invalid), the file
//! and JSON path in the error, and that `iamgate serve` refuses the same
//! bundles with the same message.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod support;
use support::{copy_dir, demo, edit};

/// A fresh copy of the demo bundle in a directory of its own.
fn demo_copy(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("bundle-check")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&demo(), &dir);
    dir
}

/// Runs `iamgate bundle check <args>`: (exit code, stdout).
fn check(args: &[&str], path: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_iamgate"))
        .args(["bundle", "check"])
        .args(args)
        .arg(path)
        .output()
        .expect("run iamgate");
    (
        out.status.code().expect("exit code"),
        String::from_utf8(out.stdout).expect("utf-8 output"),
    )
}

/// What `iamgate serve --bundle PATH` says when it refuses the bundle at
/// start (it exits; no listener is left running).
fn serve_refusal(path: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_iamgate"))
        .args([
            "serve",
            "--grpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--no-watch",
            "--bundle",
        ])
        .arg(path)
        .env("RUST_LOG", "error")
        .output()
        .expect("run iamgate serve");
    assert!(
        !out.status.success(),
        "serve accepted a bundle check refuses"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The message of `--json` output.
fn json_message(stdout: &str) -> (Value, String) {
    let v: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    let m = v["message"].as_str().expect("message").to_owned();
    (v, m)
}

#[test]
fn the_demo_bundle_passes_as_a_directory_and_as_a_tar_gz() {
    let (code, out) = check(&[], &demo());
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok: "), "{out}");
    assert!(out.contains("(revision demo-1+sha256:"), "{out}");

    let (code, out) = check(&["--json"], &demo());
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["ok"], true);
    assert!(
        v["revision"]
            .as_str()
            .unwrap()
            .starts_with("demo-1+sha256:"),
        "{out}"
    );
    assert!(v["counts"]["policies"].as_u64().unwrap() > 0, "{out}");

    // The same bundle as a .tar.gz, as operators ship it.
    let archive = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bundle-check-demo.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&archive).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all(".", demo()).unwrap();
    tar.into_inner().unwrap().finish().unwrap();
    let (code, out) = check(&[], &archive);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(revision demo-1+sha256:"), "{out}");
}

#[test]
fn a_failing_bundle_test_exits_1_naming_the_file_and_test() {
    let dir = demo_copy("failing-test");
    // bob may describe instances; the test now claims he may not.
    edit(
        &dir.join("tests/bob.json"),
        r#""context": {"aws:RequestedRegion": "us-east-1"}, "expect": "allowed"}"#,
        r#""context": {"aws:RequestedRegion": "us-east-1"}, "expect": "implicitDeny"}"#,
    );
    let (code, out) = check(&[], &dir);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("tests/bob.json: describe instances: expected implicitDeny, got allowed"),
        "{out}"
    );

    let (code, out) = check(&["--json"], &dir);
    assert_eq!(code, 1, "{out}");
    let (v, message) = json_message(&out);
    assert_eq!(v["error"]["kind"], "test_failed");
    assert_eq!(v["error"]["file"], "tests/bob.json");
    assert_eq!(v["error"]["test"], "describe instances");
    // The server refuses the bundle with the same words.
    let served = serve_refusal(&dir);
    assert!(
        served.contains(&message),
        "serve said:\n{served}\ncheck said: {message}"
    );
}

#[test]
fn a_broken_file_exits_2_with_its_file_and_json_path() {
    let dir = demo_copy("broken-file");
    // A policy statement whose Effect is neither Allow nor Deny.
    let iam = dir.join("iam/111111111111.json");
    let text = std::fs::read_to_string(&iam).unwrap();
    let effect = if text.contains(r#""Effect": "Allow""#) {
        r#""Effect": "Allow""#
    } else {
        r#""Effect":"Allow""#
    };
    edit(&iam, effect, r#""Effect": "Permit""#);
    let (code, out) = check(&["--json"], &dir);
    assert_eq!(code, 2, "{out}");
    let (v, message) = json_message(&out);
    assert_eq!(v["error"]["kind"], "invalid", "{out}");
    assert_eq!(v["error"]["file"], "iam/111111111111.json", "{out}");
    let path = v["error"]["path"].as_str().unwrap();
    assert!(path.starts_with("$.") && path.contains("Effect"), "{out}");
    let served = serve_refusal(&dir);
    assert!(
        served.contains(&message),
        "serve said:\n{served}\ncheck said: {message}"
    );

    // Not JSON at all.
    let dir = demo_copy("not-json");
    std::fs::write(dir.join("resource-policies.json"), "[{").unwrap();
    let (code, out) = check(&[], &dir);
    assert_eq!(code, 2, "{out}");
    assert!(out.starts_with("refused: "), "{out}");
    assert!(out.contains("resource-policies.json"), "{out}");
}

/// Issue 12: `ec2/` files are EC2's bundle data, read by EC2's loader
/// through the registry; `bundle check` reads them as `serve` does.
#[test]
fn a_broken_inventory_file_exits_2_as_serve_refuses_it() {
    let dir = demo_copy("broken-inventory");
    let file = "ec2/111111111111/us-east-1/describe-instances.json";
    std::fs::write(dir.join(file), r#"{"Reservations": [{"Instances": 7}]}"#).unwrap();
    let (code, out) = check(&["--json"], &dir);
    assert_eq!(code, 2, "{out}");
    let (v, message) = json_message(&out);
    assert_eq!(v["error"]["kind"], "invalid", "{out}");
    assert_eq!(v["error"]["file"], file, "{out}");
    let served = serve_refusal(&dir);
    assert!(
        served.contains(&message),
        "serve said:\n{served}\ncheck said: {message}"
    );
}

#[test]
fn a_missing_or_unreadable_bundle_exits_2() {
    let missing = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-such-bundle");
    let (code, out) = check(&[], &missing);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("cannot read"), "{out}");

    // A file that is neither a directory nor a .tar.gz.
    let plain = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bundle-check-plain.json");
    std::fs::write(&plain, "{}").unwrap();
    let (code, out) = check(&["--json"], &plain);
    assert_eq!(code, 2, "{out}");
    let (v, _) = json_message(&out);
    assert_eq!(v["error"]["kind"], "io", "{out}");

    // A corrupt archive.
    let corrupt = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bundle-check-corrupt.tar.gz");
    std::fs::write(&corrupt, b"not gzip").unwrap();
    let (code, out) = check(&[], &corrupt);
    assert_eq!(code, 2, "{out}");
}
