//! `iamgate validate` end to end: the real binary on the fixture files in
//! `tests/validate/`, checking exit codes (1 when any error is found, 0 when
//! there are only warnings, security warnings and suggestions) and the
//! fields of the `--json` output.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/validate")
        .join(name)
}

/// Runs `iamgate validate <args> <fixtures>`; returns the exit code and stdout.
fn run(args: &[&str], fixtures: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_iamgate"))
        .arg("validate")
        .args(args)
        .args(fixtures.iter().map(|f| fixture(f)))
        .output()
        .expect("run iamgate");
    let code = out.status.code().expect("exit code");
    (code, String::from_utf8(out.stdout).expect("utf-8 output"))
}

/// One finding of the `--json` output.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct F {
    severity: String,
    code: String,
    path: String,
}

/// Runs with `--json`; returns the exit code and the findings, sorted by
/// path then code (condition blocks may come in any order).
fn run_json(args: &[&str], fixtures: &[&str]) -> (i32, Vec<F>, Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, stdout) = run(&all, fixtures);
    let v: Value = serde_json::from_str(stdout.trim()).expect("JSON output");
    let items = v.as_array().expect("a JSON array");
    for item in items {
        for field in ["file", "severity", "code", "path", "message"] {
            assert!(
                item.get(field).is_some_and(Value::is_string),
                "{field} missing in {item}"
            );
        }
        let message = item["message"].as_str().unwrap();
        assert!(
            message.starts_with(|c: char| !c.is_ascii_uppercase()),
            "messages start in lower case: {message}"
        );
    }
    let mut findings: Vec<F> = items
        .iter()
        .map(|i| F {
            severity: i["severity"].as_str().unwrap().to_owned(),
            code: i["code"].as_str().unwrap().to_owned(),
            path: i["path"].as_str().unwrap().to_owned(),
        })
        .collect();
    findings.sort_by(|a, b| (&a.path, &a.code).cmp(&(&b.path, &b.code)));
    (code, findings, v)
}

fn f(severity: &str, code: &str, path: &str) -> F {
    F {
        severity: severity.to_owned(),
        code: code.to_owned(),
        path: path.to_owned(),
    }
}

#[test]
fn a_clean_policy_has_no_findings() {
    let (code, findings, _) = run_json(&[], &["clean.json"]);
    assert_eq!(code, 0);
    assert_eq!(findings, []);
    let (code, text) = run(&[], &["clean.json"]);
    assert_eq!(code, 0);
    assert_eq!(text, "0 findings, 0 errors\n");
}

#[test]
fn catalog_warnings_exit_zero() {
    let (code, findings, v) = run_json(&[], &["catalog-warnings.json"]);
    assert_eq!(code, 0);
    let w = "WARNING";
    assert_eq!(
        findings,
        [
            f(w, "UNKNOWN_ACTION", "$.Statement[0].Action[0]"),
            f(w, "UNKNOWN_ACTION", "$.Statement[0].Action[1]"),
            f(
                w,
                "CONDITION_KEY_NOT_SUPPORTED",
                "$.Statement[0].Condition.NumericLessThanEquals.ec2:VolumeSize"
            ),
            f(
                w,
                "UNKNOWN_GLOBAL_CONDITION_KEY",
                "$.Statement[0].Condition.StringEquals.aws:NoSuchKey"
            ),
            f(
                w,
                "UNKNOWN_CONDITION_KEY",
                "$.Statement[0].Condition.StringEquals.ec2:NoSuchKey"
            ),
            f(w, "RESOURCE_TYPE_MISMATCH", "$.Statement[0].Resource[1]"),
            f(
                w,
                "ACTION_REQUIRES_WILDCARD_RESOURCE",
                "$.Statement[1].Action"
            ),
        ]
    );
    let first = &v[0];
    assert!(
        first["file"]
            .as_str()
            .unwrap()
            .ends_with("catalog-warnings.json")
    );
    assert_eq!(first["code"], "UNKNOWN_ACTION");
    assert_eq!(first["message"], "`ec2:RunInstance` is not an EC2 action");
}

#[test]
fn condition_warnings() {
    let (code, findings, _) = run_json(&[], &["condition-warnings.json"]);
    assert_eq!(code, 0);
    let w = "WARNING";
    let c = "$.Statement.Condition";
    assert_eq!(
        findings,
        [
            f(
                w,
                "INVALID_CONDITION_VALUE",
                &format!("{c}.DateGreaterThan.aws:CurrentTime")
            ),
            f(
                w,
                "SET_OPERATOR_ON_SINGLE_VALUED_KEY",
                &format!("{c}.ForAnyValue:StringEquals.ec2:InstanceType")
            ),
            f(
                w,
                "INVALID_CONDITION_VALUE",
                &format!("{c}.IpAddress.aws:SourceIp")
            ),
            f(w, "INVALID_NULL_VALUE", &format!("{c}.Null.aws:TagKeys")),
            f(
                w,
                "MISMATCHED_OPERATOR_TYPE",
                &format!("{c}.NumericEquals.ec2:InstanceType")
            ),
            f(
                w,
                "INVALID_CONDITION_VALUE",
                &format!("{c}.NumericLessThan.ec2:VolumeSize[1]")
            ),
            f(
                w,
                "MISSING_SET_OPERATOR",
                &format!("{c}.StringEquals.aws:CalledVia")
            ),
        ]
    );
}

#[test]
fn security_warnings_exit_zero() {
    let (code, findings, _) = run_json(&[], &["security.json"]);
    assert_eq!(code, 0);
    let s = "SECURITY_WARNING";
    assert_eq!(
        findings,
        [
            f(s, "ALLOW_WITH_NOT_ACTION", "$.Statement[0].NotAction"),
            f(s, "ALLOW_WITH_NOT_RESOURCE", "$.Statement[1].NotResource"),
            f(
                s,
                "ALLOW_ALL_ACTIONS_ON_ALL_RESOURCES",
                "$.Statement[2].Action"
            ),
            f(s, "PASS_ROLE_ON_ALL_RESOURCES", "$.Statement[3].Action"),
            f(
                s,
                "FOR_ALL_VALUES_WITHOUT_NULL_GUARD",
                "$.Statement[4].Condition.ForAllValues:StringEquals.aws:TagKeys"
            ),
            f(
                s,
                "DENY_MFA_BOOL_WITHOUT_IF_EXISTS",
                "$.Statement[5].Condition.Bool.aws:MultiFactorAuthPresent"
            ),
        ]
    );
}

#[test]
fn public_resource_policy() {
    let (code, findings, _) = run_json(&["--kind", "resource"], &["resource-public.json"]);
    assert_eq!(code, 0);
    assert_eq!(
        findings,
        [f(
            "SECURITY_WARNING",
            "PUBLIC_ACCESS",
            "$.Statement[0].Principal"
        )]
    );
    // As an identity policy the same document is malformed, in each statement.
    let (code, findings, _) = run_json(&[], &["resource-public.json"]);
    assert_eq!(code, 1);
    assert_eq!(
        findings,
        [
            f("ERROR", "MALFORMED_POLICY", "$.Statement[0].Principal"),
            f("ERROR", "MALFORMED_POLICY", "$.Statement[1].Principal"),
        ]
    );
}

#[test]
fn suggestions() {
    let (code, findings, _) = run_json(&[], &["suggestions.json"]);
    assert_eq!(code, 0);
    let s = "SUGGESTION";
    assert_eq!(
        findings,
        [
            f(s, "REDUNDANT_ACTION", "$.Statement.Action[1]"),
            f(s, "DUPLICATE_ACTION", "$.Statement.Action[2]"),
            f(s, "DUPLICATE_RESOURCE", "$.Statement.Resource[1]"),
        ]
    );
}

#[test]
fn errors_exit_one() {
    let (code, findings, _) = run_json(&[], &["malformed.json"]);
    assert_eq!(code, 1);
    // The error does not hide the other statement's findings.
    assert_eq!(
        findings,
        [
            f("WARNING", "UNKNOWN_ACTION", "$.Statement[0].Action"),
            f("ERROR", "MALFORMED_POLICY", "$.Statement[1].Effect"),
        ]
    );
    let (code, findings, _) = run_json(&[], &["not-json.json"]);
    assert_eq!(code, 1);
    assert_eq!(findings, [f("ERROR", "MALFORMED_JSON", "$")]);
    // One file with an error among files with warnings fails the run.
    let (code, text) = run(&[], &["security.json", "malformed.json", "clean.json"]);
    assert_eq!(code, 1);
    assert!(text.ends_with("8 findings, 1 errors\n"), "{text}");
    assert!(text.contains("error: MALFORMED_POLICY at `$.Statement[1].Effect`"));
}

#[test]
fn policies_of_a_policy_test_file() {
    let (code, findings, _) = run_json(&[], &["policy-test-file.json"]);
    assert_eq!(code, 0);
    assert_eq!(
        findings,
        [f(
            "WARNING",
            "UNKNOWN_ACTION",
            "$.policies.identity[0].Statement.Action"
        )]
    );
}

#[test]
fn unreadable_files_exit_two() {
    let (code, text) = run(&[], &["no-such-file.json"]);
    assert_eq!(code, 2);
    assert!(text.contains("cannot read"), "{text}");
}

#[test]
fn every_error_of_a_document_is_reported() {
    let (code, findings, v) = run_json(&[], &["many-errors.json"]);
    assert_eq!(code, 1);
    let e = "ERROR";
    let m = "MALFORMED_POLICY";
    assert_eq!(
        findings,
        [
            f(e, m, "$.Statement[0].Effect"),
            f(e, m, "$.Statement[1]"),
            f(e, m, "$.Statement[1].Action[1]"),
            f(e, m, "$.Statement[1].Condition.StringEqualz"),
            f(e, m, "$.Statement[1].Resource"),
            f(e, m, "$.Statement[2].Sid"),
            f(
                "WARNING",
                "RESOURCE_SERVICE_MISMATCH",
                "$.Statement[3].Resource[1]"
            ),
        ]
    );
    let messages: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["message"].as_str().unwrap())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("`Action` and `NotAction`")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("duplicate statement id")),
        "{messages:?}"
    );
    let (_, text) = run(&[], &["many-errors.json"]);
    assert!(text.ends_with("7 findings, 6 errors\n"), "{text}");
}

#[test]
fn resource_arns_of_another_service_are_flagged() {
    let (code, findings, v) = run_json(&[], &["other-service.json"]);
    assert_eq!(code, 0);
    let w = "WARNING";
    let c = "RESOURCE_SERVICE_MISMATCH";
    assert_eq!(
        findings,
        [
            f(w, c, "$.Statement[0].Resource"),
            f(w, c, "$.Statement[1].Resource[0]"),
            f(w, c, "$.Statement[2].Resource"),
        ]
    );
    let first = v
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["path"] == "$.Statement[0].Resource")
        .unwrap();
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("`arn:aws:s3:::example-bucket` is a resource of service `s3`"),
        "{first}"
    );
}

/// Issue 12: S3 is behind the service seam with its own catalog, so an S3
/// policy is checked against S3's actions, resource types and keys, in
/// S3's words, with no S3 code in the validator.
#[test]
fn s3_policies_are_checked_against_s3s_catalog() {
    let (code, findings, v) = run_json(&[], &["s3-bucket-policy.json"]);
    assert_eq!(code, 0);
    let w = "WARNING";
    assert_eq!(
        findings,
        [
            f(w, "UNKNOWN_ACTION", "$.Statement[0].Action[0]"),
            f(
                w,
                "UNKNOWN_CONDITION_KEY",
                "$.Statement[0].Condition.StringEquals.s3:Prefixx"
            ),
            f(
                w,
                "CONDITION_KEY_NOT_SUPPORTED",
                "$.Statement[0].Condition.StringEquals.s3:x-amz-acl"
            ),
            f(w, "RESOURCE_TYPE_MISMATCH", "$.Statement[0].Resource[1]"),
        ]
    );
    let message = |path: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|i| i["path"] == path)
            .and_then(|i| i["message"].as_str())
            .unwrap()
            .to_owned()
    };
    assert!(
        message("$.Statement[0].Action[0]").contains("`s3:GetObjekt` is not an S3 action"),
        "{v}"
    );
    assert!(
        message("$.Statement[0].Condition.StringEquals.s3:Prefixx")
            .contains("is not a condition key that S3 defines"),
        "{v}"
    );
}
