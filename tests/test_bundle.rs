//! `iamgate test` on a bundle's tests (issue 14, operators' bundle tools):
//! the real binary decides a test file without `policies` against the
//! bundle it lives in (or the one `--bundle` names), as the server's reload
//! gate does, and elsewhere against no policies.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

mod support;
use support::{copy_dir, demo, edit};

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("test-bundle")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs `iamgate <args>`: (exit code, stdout).
fn iamgate(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_iamgate"))
        .args(args)
        .output()
        .expect("run iamgate");
    (
        out.status.code().expect("exit code"),
        String::from_utf8(out.stdout).expect("utf-8 output"),
    )
}

/// `N passed, 0 failed` for every test of the demo bundle's `tests/`.
fn demo_summary() -> String {
    format!("{} passed, 0 failed", demo_count())
}

/// How many tests the demo bundle's `tests/` holds.
fn demo_count() -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(demo().join("tests")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let file: serde_json::Value = serde_json::from_str(&text).unwrap();
        n += file["tests"].as_array().map_or(0, Vec::len);
    }
    n
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_bundles_tests_are_decided_against_the_bundle() {
    let dir = scratch("in-bundle");
    copy_dir(&demo(), &dir);
    let (code, out) = iamgate(&["test", s(&dir.join("tests"))]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), demo_summary());
    // `bundle check` agrees.
    let (code, out) = iamgate(&["bundle", "check", s(&dir)]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn outside_a_bundle_the_same_files_need_bundle() {
    let dir = scratch("outside");
    copy_dir(&demo().join("tests"), &dir);
    // Against no policies every allowed test fails.
    let (code, out) = iamgate(&["test", s(&dir)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("describe instances: expected allowed, got implicitDeny"),
        "{out}"
    );
    let (code, out) = iamgate(&["test", "--bundle", s(&demo()), s(&dir)]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), demo_summary());

    // The bundle as operators ship it, a .tar.gz.
    let archive = scratch("archive").with_extension("tar.gz");
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&archive).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all(".", demo()).unwrap();
    tar.into_inner().unwrap().finish().unwrap();
    let (code, out) = iamgate(&["test", "--bundle", s(&archive), s(&dir)]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), demo_summary());

    // A bundle that does not exist is an error, not a failure.
    let missing = scratch("no-such-bundle");
    let (code, out) = iamgate(&["test", "--bundle", s(&missing), s(&dir)]);
    assert_eq!(code, 2, "{out}");
    assert!(out.starts_with("error: "), "{out}");
}

#[test]
fn a_failing_bundle_test_names_the_statements_that_decided() {
    let dir = scratch("failing");
    copy_dir(&demo(), &dir);
    // The inline deny decides; the test now claims an allow.
    edit(
        &dir.join("tests/bob.json"),
        r#""context": {"aws:RequestedRegion": "us-east-1"}, "expect": "explicitDeny"}"#,
        r#""context": {"aws:RequestedRegion": "us-east-1"}, "expect": "allowed"}"#,
    );
    let (code, out) = iamgate(&["test", s(&dir.join("tests"))]);
    assert_eq!(code, 1, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("FAIL: "))
        .unwrap_or_default();
    assert!(
        line.contains(
            "tests/bob.json: terminate (inline deny): expected allowed, got explicitDeny"
        ) && line.contains("decided by "),
        "{out}"
    );
    let summary = format!("{} passed, 1 failed\n", demo_count() - 1);
    assert!(out.ends_with(&summary), "{out}");
    // The server's gate refuses the bundle on the same test.
    let (code, out) = iamgate(&["bundle", "check", s(&dir)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("terminate (inline deny)"), "{out}");
}

#[test]
fn self_contained_files_in_a_bundle_keep_their_own_policies() {
    let dir = scratch("self-contained");
    copy_dir(&demo(), &dir);
    std::fs::write(
        dir.join("tests/own.json"),
        r#"{"principal": {"arn": "arn:aws:iam::111111111111:user/alice"},
            "policies": {"identity": [{"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}]},
            "tests": [{"name": "own policies only", "action": "ec2:DeleteVpc",
                       "resource": "*", "expect": "implicitDeny"}]}"#,
    )
    .unwrap();
    let (code, out) = iamgate(&["test", s(&dir.join("tests"))]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), format!("{} passed, 0 failed", demo_count() + 1));
}

#[test]
fn a_broken_bundle_is_an_error_not_a_failure() {
    let dir = scratch("broken");
    copy_dir(&demo(), &dir);
    std::fs::write(dir.join("resource-policies.json"), "[{").unwrap();
    let (code, out) = iamgate(&["test", s(&dir.join("tests"))]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("error: ") && l.contains("resource-policies.json")),
        "{out}"
    );
}
