//! `organization.json` and `organization/` in the shapes the AWS CLI prints
//! (issue 14, operators' bundle tools): the demo bundle's organization,
//! rewritten as `aws organizations` outputs, serves the same decisions —
//! its SCP denies included — through the real binary (`bundle check` and
//! `iamgate test` on the bundle's tests), and mistakes name their file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

mod support;
use support::{copy_dir, demo};

/// A copy of the demo bundle without its organization, and that
/// organization as JSON.
fn demo_without_org(name: &str) -> (PathBuf, Value) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("organization-cli")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&demo(), &dir);
    let org_file = dir.join("organization.json");
    let org: Value = serde_json::from_str(&std::fs::read_to_string(&org_file).unwrap()).unwrap();
    std::fs::remove_file(org_file).unwrap();
    (dir, org)
}

fn write(path: &Path, v: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

/// `describe-organization`'s `Organization`, as the CLI prints it.
fn described(org: &Value) -> Value {
    let (id, mgmt) = (s(&org["Id"]), s(&org["ManagementAccountId"]));
    json!({
        "Id": id,
        "Arn": format!("arn:aws:organizations::{mgmt}:organization/{id}"),
        "FeatureSet": "ALL",
        "MasterAccountArn": format!("arn:aws:organizations::{mgmt}:account/{id}/{mgmt}"),
        "MasterAccountId": mgmt,
        "MasterAccountEmail": "management@example.com",
        "AvailablePolicyTypes": [{"Type": "SERVICE_CONTROL_POLICY", "Status": "ENABLED"}]
    })
}

fn cli_root(org: &Value, root: &Value) -> Value {
    let (id, mgmt) = (s(&root["Id"]), s(&org["ManagementAccountId"]));
    json!({"Id": id, "Arn": format!("arn:aws:organizations::{mgmt}:root/{}/{id}", s(&org["Id"])),
           "Name": "Root", "PolicyTypes": [{"Type": "SERVICE_CONTROL_POLICY", "Status": "ENABLED"}]})
}

fn cli_ou(ou: &Value) -> Value {
    json!({"Id": ou["Id"], "Arn": format!("arn:aws:organizations::999999999999:ou/o-x/{}", s(&ou["Id"])),
           "Name": ou["Name"]})
}

fn cli_account(a: &Value) -> Value {
    json!({"Id": a["Id"], "Arn": format!("arn:aws:organizations::999999999999:account/o-x/{}", s(&a["Id"])),
           "Email": "owner@example.com", "Name": a["Name"], "Status": "ACTIVE", "State": "ACTIVE",
           "JoinedMethod": "CREATED", "JoinedTimestamp": "2024-01-01T00:00:00+00:00"})
}

/// `describe-policy`'s output: content as the string the API returns.
fn cli_policy(p: &Value) -> Value {
    let content = match &p["Content"] {
        Value::String(text) => text.clone(),
        doc => doc.to_string(),
    };
    json!({"Policy": {
        "PolicySummary": {"Id": p["Id"], "Arn": format!("arn:aws:organizations::999999999999:policy/o-x/service_control_policy/{}", s(&p["Id"])),
                          "Name": p["Id"], "Description": "", "Type": p["Type"], "AwsManaged": false},
        "Content": content}})
}

/// `list-targets-for-policy`'s `Targets`.
fn cli_targets(p: &Value) -> Value {
    let kind = |id: &str| {
        if id.starts_with("r-") {
            "ROOT"
        } else if id.starts_with("ou-") {
            "ORGANIZATIONAL_UNIT"
        } else {
            "ACCOUNT"
        }
    };
    Value::Array(
        p["Targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| json!({"TargetId": t, "Arn": "arn:aws:organizations::999999999999:x", "Name": t, "Type": kind(s(t))}))
            .collect(),
    )
}

/// The organization as an `organization/` folder of CLI outputs.
fn write_org_dir(dir: &Path, org: &Value) {
    let base = dir.join("organization");
    write(
        &base.join("describe-organization.json"),
        &json!({"Organization": described(org)}),
    );
    let roots: Vec<Value> = org["Roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| cli_root(org, r))
        .collect();
    write(&base.join("list-roots.json"), &json!({"Roots": roots}));
    let mut parents: Vec<&str> = org["Roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| s(&r["Id"]))
        .collect();
    parents.extend(
        org["OrganizationalUnits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| s(&o["Id"])),
    );
    for parent in parents {
        let children = |key: &str, f: fn(&Value) -> Value| -> Value {
            Value::Array(
                org[key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|c| c["ParentId"] == parent)
                    .map(f)
                    .collect(),
            )
        };
        let folder = base.join("parents").join(parent);
        write(
            &folder.join("list-organizational-units-for-parent.json"),
            &json!({"OrganizationalUnits": children("OrganizationalUnits", cli_ou)}),
        );
        write(
            &folder.join("list-accounts-for-parent.json"),
            &json!({"Accounts": children("Accounts", cli_account)}),
        );
    }
    for p in org["Policies"].as_array().unwrap() {
        let folder = base.join("policies").join(s(&p["Id"]));
        write(&folder.join("describe-policy.json"), &cli_policy(p));
        write(
            &folder.join("list-targets-for-policy.json"),
            &json!({"Targets": cli_targets(p)}),
        );
    }
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

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The demo's tests include SCP denies (a VPC teardown anywhere, a region
/// outside the production OU's two): they pass only if the CLI-shaped
/// organization puts every SCP at its root, OU and account.
fn assert_serves_like_the_demo(dir: &Path) {
    let (code, out) = iamgate(&["bundle", "check", p(dir)]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = iamgate(&["test", "--verbose", p(&dir.join("tests"))]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("delete a VPC (SCP deny): explicitDeny")
            && out.contains("start in a region the SCP forbids: explicitDeny"),
        "{out}"
    );
    // As many tests as the demo bundle's own, all passing.
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bundle/demo/tests");
    let (_, demo_out) = iamgate(&["test", p(&demo)]);
    let summary = demo_out.lines().last().unwrap_or_default().to_owned();
    assert!(summary.ends_with(" passed, 0 failed"), "{demo_out}");
    assert!(out.ends_with(&format!("{summary}\n")), "{out}");
}

#[test]
fn an_organization_folder_of_cli_outputs_serves_like_the_flat_file() {
    let (dir, org) = demo_without_org("folder");
    write_org_dir(&dir, &org);
    assert_serves_like_the_demo(&dir);

    // Without the folder's SCPs, the SCP deny tests fail: the folder is read.
    std::fs::remove_dir_all(dir.join("organization/policies/p-ProtectNetwork")).unwrap();
    let (code, out) = iamgate(&["bundle", "check", p(&dir)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("delete a VPC (SCP deny)"), "{out}");
}

#[test]
fn organization_json_accepts_describe_organization_describe_policy_and_target_objects() {
    let (dir, org) = demo_without_org("file");
    let policies: Vec<Value> = org["Policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pol| {
            let mut v = cli_policy(pol);
            v["Targets"] = cli_targets(pol);
            v
        })
        .collect();
    // `jq -s add` of describe-organization and list-roots, plus the tree
    // with ParentId, plus describe-policy + list-targets-for-policy merged.
    let file = json!({
        "Organization": described(&org),
        "Roots": org["Roots"].as_array().unwrap().iter().map(|r| cli_root(&org, r)).collect::<Vec<_>>(),
        "OrganizationalUnits": org["OrganizationalUnits"],
        "Accounts": org["Accounts"],
        "Policies": policies,
    });
    write(&dir.join("organization.json"), &file);
    assert_serves_like_the_demo(&dir);
}

#[test]
fn mistakes_in_cli_shaped_organizations_name_their_file() {
    // Both layouts at once.
    let (dir, org) = demo_without_org("both");
    write_org_dir(&dir, &org);
    write(&dir.join("organization.json"), &org);
    let (code, out) = iamgate(&["bundle", "check", p(&dir)]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not both"), "{out}");

    // A describe-policy output saved in another policy's folder.
    let (dir, org) = demo_without_org("misfiled");
    write_org_dir(&dir, &org);
    let base = dir.join("organization/policies");
    std::fs::copy(
        base.join("p-ProdRegions/describe-policy.json"),
        base.join("p-ProtectNetwork/describe-policy.json"),
    )
    .unwrap();
    let (code, out) = iamgate(&["bundle", "check", p(&dir)]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("organization/policies/p-ProtectNetwork/describe-policy.json")
            && out.contains("$.Policy.PolicySummary.Id"),
        "{out}"
    );

    // Accounts listed under a parent that is neither a root nor an OU.
    let (dir, org) = demo_without_org("orphan");
    write_org_dir(&dir, &org);
    let parents = dir.join("organization/parents");
    std::fs::rename(
        parents.join("ou-demo-dev00001"),
        parents.join("ou-demo-gone0001"),
    )
    .unwrap();
    let (code, out) = iamgate(&["bundle", "check", p(&dir)]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("organization/parents/ou-demo-gone0001/list-accounts-for-parent.json")
            && out.contains("neither a root nor an organizational unit"),
        "{out}"
    );

    // A misspelled call name is not part of the layout.
    let (dir, org) = demo_without_org("typo");
    write_org_dir(&dir, &org);
    std::fs::rename(
        dir.join("organization/list-roots.json"),
        dir.join("organization/list-root.json"),
    )
    .unwrap();
    let (code, out) = iamgate(&["bundle", "check", p(&dir)]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("organization/list-root.json"), "{out}");
}
