use serde_json::json;

use super::*;

const ACCT: &str = "111122223333";

fn account_file(users: Value) -> String {
    json!({"UserDetailList": users, "GroupDetailList": [], "RoleDetailList": [], "Policies": []})
        .to_string()
}

fn user(arn: &str) -> Value {
    json!({"UserName": "u", "Arn": arn, "UserPolicyList": [{"PolicyName": "p",
        "PolicyDocument": {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}]}}]})
}

fn compile(pairs: &[(&str, &str)]) -> Result<Snapshot, BundleError> {
    Snapshot::compile(&BundleFiles::from_pairs(pairs.iter().copied()), "test")
}

fn refusal(pairs: &[(&str, &str)]) -> String {
    match compile(pairs) {
        Ok(_) => "accepted".to_owned(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn an_account_file_with_no_content_is_refused() {
    for text in ["{}", &account_file(json!([]))] {
        let msg = refusal(&[("iam/111122223333.json", text)]);
        assert!(
            msg.contains("iam/111122223333.json: at `$`: the account file holds no users"),
            "{msg}"
        );
    }
}

#[test]
fn arns_must_name_the_file_account() {
    let other = account_file(json!([user("arn:aws:iam::999988887777:user/u")]));
    let msg = refusal(&[("iam/111122223333.json", &other)]);
    assert!(
        msg.contains("at `$.UserDetailList[0].Arn`")
            && msg.contains("belongs to account `999988887777`, not to `111122223333`"),
        "{msg}"
    );
    let not_iam = account_file(json!([user("arn:aws:sts::111122223333:user/u")]));
    assert!(refusal(&[("iam/111122223333.json", &not_iam)]).contains("not an IAM ARN"));

    // A role, a customer managed policy, and an attachment of another
    // account's policy.
    let doc = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}]});
    let role = json!({"RoleDetailList": [{"RoleName": "r",
        "Arn": "arn:aws:iam::999988887777:role/r"}]});
    let policy = json!({"Policies": [{"PolicyName": "p",
        "Arn": "arn:aws:iam::999988887777:policy/p",
        "PolicyVersionList": [{"Document": doc, "IsDefaultVersion": true}]}]});
    let attached = json!({"UserDetailList": [{"UserName": "u",
        "Arn": format!("arn:aws:iam::{ACCT}:user/u"),
        "AttachedManagedPolicies": [{"PolicyArn": "arn:aws:iam::999988887777:policy/p"}]}]});
    for (doc, at) in [
        (role, "$.RoleDetailList[0].Arn"),
        (policy, "$.Policies[0].Arn"),
        (
            attached,
            "$.UserDetailList[0].AttachedManagedPolicies[0].PolicyArn",
        ),
    ] {
        let msg = refusal(&[("iam/111122223333.json", &doc.to_string())]);
        assert!(
            msg.contains(at) && msg.contains("999988887777"),
            "{at}: {msg}"
        );
    }

    // AWS managed policies belong to no account.
    let aws = json!({"Policies": [{"PolicyName": "ReadOnly",
        "Arn": "arn:aws:iam::aws:policy/ReadOnlyAccess",
        "PolicyVersionList": [{"Document": doc, "IsDefaultVersion": true}]}],
        "UserDetailList": [{"UserName": "u", "Arn": format!("arn:aws:iam::{ACCT}:user/u"),
        "AttachedManagedPolicies": [{"PolicyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}]}]});
    assert_eq!(
        refusal(&[("iam/111122223333.json", &aws.to_string())]),
        "accepted"
    );
}

#[test]
fn in_memory_bundles_are_checked_against_the_layout() {
    let ok = account_file(json!([user("arn:aws:iam::111122223333:user/u")]));
    let msg = refusal(&[("iam/acct.json", &ok)]);
    assert!(
        msg.contains("`iam/acct.json`: not part of the bundle layout"),
        "{msg}"
    );
    let msg = refusal(&[("iam/111122223333.json", &ok), ("organisation.json", "{}")]);
    assert!(msg.contains("`organisation.json`"), "{msg}");
}

#[test]
fn the_served_revision_identifies_the_content() -> Result<(), BundleError> {
    let a = account_file(json!([user("arn:aws:iam::111122223333:user/u")]));
    let b = account_file(json!([user("arn:aws:iam::111122223333:user/v")]));
    let manifest = r#"{"revision": "rev-7"}"#;
    let first = compile(&[("manifest.json", manifest), ("iam/111122223333.json", &a)])?;
    let again = compile(&[("manifest.json", manifest), ("iam/111122223333.json", &a)])?;
    let changed = compile(&[("manifest.json", manifest), ("iam/111122223333.json", &b)])?;
    assert_eq!(first.revision(), again.revision());
    assert_ne!(first.revision(), changed.revision());
    for s in [&first, &changed] {
        let rev = s.revision();
        let hash = rev.strip_prefix("rev-7+sha256:").unwrap_or_default();
        assert!(
            hash.len() == 16 && hash.bytes().all(|c| c.is_ascii_hexdigit()),
            "{rev}"
        );
        assert_eq!(s.manifest_revision(), Some("rev-7"));
        assert_eq!(s.summary()["manifest_revision"], "rev-7");
    }

    let bare = compile(&[("iam/111122223333.json", &a)])?;
    assert!(
        bare.revision().starts_with("sha256:"),
        "{}",
        bare.revision()
    );
    assert_eq!(bare.manifest_revision(), None);
    Ok(())
}

#[test]
fn compiling_by_taking_the_account_files_serves_the_same_snapshot() -> Result<(), BundleError> {
    let a = account_file(json!([user("arn:aws:iam::111122223333:user/u")]));
    let b = account_file(json!([user("arn:aws:iam::444455556666:user/v")]));
    let pairs = [
        ("manifest.json", r#"{"revision": "rev-7"}"#),
        ("iam/111122223333.json", a.as_str()),
        ("iam/444455556666.json", b.as_str()),
        ("tests/t.json", "[]"),
    ];
    let borrowed = compile(&pairs)?;
    let mut files = BundleFiles::from_pairs(pairs.iter().copied());
    let taken = Snapshot::compile_taking(&mut files, "test")?;
    assert_eq!(borrowed.revision(), taken.revision());
    assert_eq!(borrowed.stats().principals, 2);
    assert_eq!(taken.stats().principals, 2);
    assert_eq!(borrowed.summary()["counts"], taken.summary()["counts"]);
    // The account files' text is gone; the rest is still there for the
    // gate and the services' loaders.
    let left: Vec<&str> = files.iter().map(|(k, _)| k).collect();
    assert_eq!(left, ["manifest.json", "tests/t.json"]);
    // A refused account file is named as before.
    let mut broken =
        BundleFiles::from_pairs([("iam/111122223333.json", "{\"UserDetailList\": 7}")]);
    let msg = Snapshot::compile_taking(&mut broken, "test")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        msg.contains("iam/111122223333.json: at `$.UserDetailList`"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn a_manifest_revision_is_short_printable_text() {
    let a = account_file(json!([user("arn:aws:iam::111122223333:user/u")]));
    let long = format!(r#"{{"revision": "{}"}}"#, "r".repeat(129));
    for manifest in [r#"{"revision": ""}"#, r#"{"revision": "a\nb"}"#, &long] {
        let msg = refusal(&[("manifest.json", manifest), ("iam/111122223333.json", &a)]);
        assert!(
            msg.contains("manifest.json: at `$.revision`"),
            "{manifest}: {msg}"
        );
    }
}

/// Instance profiles come from the roles' `InstanceProfileList`; a profile
/// listed under two roles holds both, and every listing must agree on its
/// ARN, in the role's account (issue 13).
#[test]
fn instance_profiles_are_read_from_the_roles() -> Result<(), BundleError> {
    let profile = |name: &str, arn: &str, roles: &[&str]| {
        json!({"InstanceProfileName": name, "Arn": arn, "Path": "/",
            "Roles": roles.iter().map(|r| json!({"RoleName": "x", "Arn": r})).collect::<Vec<_>>()})
    };
    let file = |profiles_a: Value, profiles_b: Value| {
        json!({"UserDetailList": [], "GroupDetailList": [], "Policies": [],
            "RoleDetailList": [
                {"RoleName": "a", "Arn": "arn:aws:iam::111122223333:role/a",
                 "InstanceProfileList": profiles_a},
                {"RoleName": "b", "Arn": "arn:aws:iam::111122223333:role/ops/b",
                 "InstanceProfileList": profiles_b}]})
        .to_string()
    };
    let web = "arn:aws:iam::111122223333:instance-profile/apps/Web";
    let ok = file(
        json!([profile("Web", web, &["arn:aws:iam::111122223333:role/a"])]),
        json!([profile("Web", web, &[])]),
    );
    let snap = compile(&[("iam/111122223333.json", &ok)])?;
    let found = snap.instance_profile(ACCT, "web").cloned();
    assert_eq!(
        found,
        Some(InstanceProfile {
            arn: web.to_owned(),
            name: "Web".to_owned(),
            role_arns: vec![
                "arn:aws:iam::111122223333:role/a".to_owned(),
                "arn:aws:iam::111122223333:role/ops/b".to_owned()
            ],
            id: None,
        })
    );
    assert!(snap.instance_profile("999988887777", "web").is_none());
    assert!(snap.instance_profile(ACCT, "other").is_none());

    let two_arns = file(
        json!([profile("web", web, &[])]),
        json!([profile(
            "web",
            "arn:aws:iam::111122223333:instance-profile/web",
            &[]
        )]),
    );
    let msg = refusal(&[("iam/111122223333.json", &two_arns)]);
    assert!(
        msg.contains("$.RoleDetailList[1].InstanceProfileList[0]") && msg.contains("two ARNs"),
        "{msg}"
    );
    let elsewhere = file(
        json!([profile(
            "web",
            "arn:aws:iam::999988887777:instance-profile/web",
            &[]
        )]),
        json!([]),
    );
    let msg = refusal(&[("iam/111122223333.json", &elsewhere)]);
    assert!(msg.contains("not in the account of role"), "{msg}");
    Ok(())
}

/// Issue 13: a role's trust policy is the resource policy of sts:AssumeRole
/// on the role (it must allow, even within the account); managed session
/// policies narrow a session; `iam-roles/<account>.json` gives
/// `MaxSessionDuration`.
#[test]
fn roles_trust_sessions_and_session_lengths() -> Result<(), BundleError> {
    let allow = |action: &str| {
        json!({"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]})
    };
    let file = json!({"GroupDetailList": [],
        "UserDetailList": [
            {"UserName": "alice", "Arn": "arn:aws:iam::111122223333:user/alice",
             "UserPolicyList": [{"PolicyName": "p", "PolicyDocument": allow("sts:AssumeRole")}]}],
        "RoleDetailList": [
            {"RoleName": "Ops", "Arn": "arn:aws:iam::111122223333:role/team/Ops",
             "RoleId": "AROAOPS",
             "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                 "Action": "sts:AssumeRole"}]},
             "RolePolicyList": [{"PolicyName": "p", "PolicyDocument": allow("ec2:*")}]},
            {"RoleName": "Closed", "Arn": "arn:aws:iam::111122223333:role/Closed",
             "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                 "Action": "sts:AssumeRole"}]}}],
        "Policies": [{"PolicyName": "Describe", "Arn": "arn:aws:iam::111122223333:policy/Describe",
            "DefaultVersionId": "v1", "PolicyVersionList": [
                {"VersionId": "v1", "IsDefaultVersion": true,
                 "Document": allow("ec2:Describe*")}]}]})
    .to_string();
    let roles =
        json!({"Roles": [{"RoleName": "Ops", "Arn": "arn:aws:iam::111122223333:role/team/Ops",
        "MaxSessionDuration": 7200}]})
        .to_string();
    let snap = compile(&[
        ("iam/111122223333.json", &file),
        ("iam-roles/111122223333.json", &roles),
    ])?;
    let ask = |principal: &str, action: &str, resource: &str, arns: &[&str]| {
        snap.authorize(&AuthzRequest {
            principal_arn: principal.into(),
            action: action.into(),
            resource: resource.into(),
            session_policy_arns: arns.iter().map(|a| (*a).to_owned()).collect(),
            ..AuthzRequest::default()
        })
        .map(|a| a.decision)
    };
    let alice = "arn:aws:iam::111122223333:user/alice";
    let ops = "arn:aws:iam::111122223333:role/team/Ops";
    let closed = "arn:aws:iam::111122223333:role/Closed";
    assert_eq!(
        ask(alice, "sts:AssumeRole", ops, &[]).ok(),
        Some(Outcome::Allowed)
    );
    assert_eq!(
        ask(alice, "sts:AssumeRole", closed, &[]).ok(),
        Some(Outcome::ImplicitDeny)
    );
    let session = "arn:aws:sts::111122223333:assumed-role/Ops/s1";
    let describe = "arn:aws:iam::111122223333:policy/Describe";
    assert_eq!(
        ask(session, "ec2:StopInstances", "*", &[]).ok(),
        Some(Outcome::Allowed)
    );
    assert_eq!(
        ask(session, "ec2:StopInstances", "*", &[describe]).ok(),
        Some(Outcome::ImplicitDeny)
    );
    assert_eq!(
        ask(session, "ec2:DescribeVpcs", "*", &[describe]).ok(),
        Some(Outcome::Allowed)
    );
    let missing = "arn:aws:iam::111122223333:policy/Gone";
    assert_eq!(
        ask(session, "ec2:DescribeVpcs", "*", &[missing]).ok(),
        Some(Outcome::ImplicitDeny)
    );
    let info = snap
        .role(ops)
        .ok_or_else(|| BundleError::invalid("t", "$", "no role"))?;
    assert_eq!(
        (info.role_id.as_deref(), info.max_session_duration),
        (Some("AROAOPS"), 7200)
    );
    assert_eq!(
        snap.role(closed).map(|r| r.max_session_duration),
        Some(DEFAULT_MAX_SESSION_DURATION)
    );
    assert!(snap.role("arn:aws:iam::111122223333:role/Ops").is_none());
    let bad = json!({"Roles": [{"Arn": ops, "MaxSessionDuration": 60}]}).to_string();
    let msg = refusal(&[
        ("iam/111122223333.json", &file),
        ("iam-roles/111122223333.json", &bad),
    ]);
    assert!(msg.contains("MaxSessionDuration"), "{msg}");
    Ok(())
}

/// Issue 13: a role's trust policy decides alone whether a service
/// principal (`ec2.amazonaws.com`, for instance profile roles) may assume
/// it: a `Service` entry naming it allows, a deny or a condition that does
/// not hold refuses, and other entries (`AWS`) do not match a service.
#[test]
fn trust_policies_decide_for_service_principals() -> Result<(), BundleError> {
    let trust = |statements: Value| json!({"Version": "2012-10-17", "Statement": statements});
    let role = |name: &str, t: Value| {
        json!({"RoleName": name, "Arn": format!("arn:aws:iam::111122223333:role/{name}"),
            "AssumeRolePolicyDocument": t, "InstanceProfileList": []})
    };
    let ec2 = json!({"Service": "ec2.amazonaws.com"});
    let file = json!({"UserDetailList": [], "GroupDetailList": [], "Policies": [],
        "RoleDetailList": [
            role("web", trust(json!([{"Effect": "Allow", "Principal": ec2, "Action": "sts:AssumeRole"}]))),
            role("list", trust(json!([{"Effect": "Allow",
                "Principal": {"Service": ["lambda.amazonaws.com", "ec2.amazonaws.com"]},
                "Action": "sts:*"}]))),
            role("denied", trust(json!([
                {"Effect": "Allow", "Principal": ec2, "Action": "sts:AssumeRole"},
                {"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole"}]))),
            role("account", trust(json!([{"Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "sts:AssumeRole"}]))),
            role("cond", trust(json!([{"Effect": "Allow", "Principal": ec2, "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": "111122223333"}}}]))),
        ]})
    .to_string();
    let snap = compile(&[("iam/111122223333.json", &file)])?;
    let ctx = Context::new();
    let allows = |name: &str, service: &str| {
        snap.trust_allows_service(
            &format!("arn:aws:iam::111122223333:role/{name}"),
            service,
            "sts:AssumeRole",
            &ctx,
        )
    };
    assert!(allows("web", "ec2.amazonaws.com"));
    assert!(!allows("web", "lambda.amazonaws.com"));
    assert!(allows("list", "ec2.amazonaws.com"));
    assert!(!allows("denied", "ec2.amazonaws.com"));
    assert!(!allows("account", "ec2.amazonaws.com"));
    assert!(
        !allows("cond", "ec2.amazonaws.com"),
        "the condition's key is absent"
    );
    assert!(!allows("missing", "ec2.amazonaws.com"));
    Ok(())
}

/// The IAM User Guide's global condition keys: `aws:PrincipalOrgID` and
/// `aws:PrincipalOrgPaths` are present only when the principal is a member
/// of an organization; `aws:ViaAWSService` and `aws:PrincipalIsAWSService`
/// are in every request, `false` for a principal calling directly.
#[test]
fn organization_and_direct_call_keys_come_from_the_bundle() -> Result<(), Box<dyn std::error::Error>>
{
    let conditioned = |key: &str, op: &str, value: Value| {
        json!({"UserName": "u", "Arn": "", "UserPolicyList": [{"PolicyName": "p",
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*",
                 "Condition": {op: {key: value}}}]}}]})
    };
    let users = |account: &str| {
        let mut list = Vec::new();
        for (name, key, op, value) in [
            (
                "org",
                "aws:PrincipalOrgID",
                "StringEquals",
                json!("o-abc123def4"),
            ),
            (
                "path",
                "aws:PrincipalOrgPaths",
                "ForAnyValue:StringLike",
                json!("o-abc123def4/r-ab12/ou-ab12-prod/*"),
            ),
            ("direct", "aws:ViaAWSService", "Bool", json!("false")),
            (
                "notservice",
                "aws:PrincipalIsAWSService",
                "Bool",
                json!("false"),
            ),
            ("noorg", "aws:PrincipalOrgID", "Null", json!("true")),
        ] {
            let mut u = conditioned(key, op, value);
            u["UserName"] = json!(name);
            u["Arn"] = json!(format!("arn:aws:iam::{account}:user/{name}"));
            list.push(u);
        }
        account_file(json!(list))
    };
    let org = json!({"Id": "o-abc123def4", "ManagementAccountId": "999999999999",
        "Roots": [{"Id": "r-ab12"}],
        "OrganizationalUnits": [{"Id": "ou-ab12-prod", "ParentId": "r-ab12", "Name": "prod"}],
        "Accounts": [{"Id": "111122223333", "ParentId": "ou-ab12-prod", "Name": "member"},
                     {"Id": "999999999999", "ParentId": "r-ab12", "Name": "management"}],
        "Policies": [{"Id": "p-FullAWSAccess", "Type": "SERVICE_CONTROL_POLICY",
            "Content": {"Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
            "Targets": ["r-ab12", "ou-ab12-prod", "111122223333", "999999999999"]}]})
    .to_string();
    let (member, outsider) = (users("111122223333"), users("444455556666"));
    let snap = compile(&[
        ("iam/111122223333.json", &member),
        ("iam/444455556666.json", &outsider),
        ("organization.json", &org),
    ])?;
    let ask = |account: &str, name: &str| {
        snap.authorize(&AuthzRequest {
            principal_arn: format!("arn:aws:iam::{account}:user/{name}"),
            action: "ec2:DescribeInstances".into(),
            resource: "*".into(),
            ..AuthzRequest::default()
        })
        .map(|a| a.decision)
    };
    for (account, name, want) in [
        ("111122223333", "org", Outcome::Allowed),
        ("111122223333", "path", Outcome::Allowed),
        ("111122223333", "direct", Outcome::Allowed),
        ("111122223333", "notservice", Outcome::Allowed),
        ("111122223333", "noorg", Outcome::ImplicitDeny),
        ("444455556666", "org", Outcome::ImplicitDeny),
        ("444455556666", "path", Outcome::ImplicitDeny),
        ("444455556666", "direct", Outcome::Allowed),
        ("444455556666", "noorg", Outcome::Allowed),
    ] {
        assert_eq!(ask(account, name).ok(), Some(want), "{account} {name}");
    }
    // A context the caller's adapter set wins over the derived value.
    let mut context = Context::new();
    context.insert(
        "aws:ViaAWSService",
        crate::engine::ContextValue::One("true".into()),
    );
    let answer = snap.authorize(&AuthzRequest {
        principal_arn: "arn:aws:iam::111122223333:user/direct".into(),
        action: "ec2:DescribeInstances".into(),
        resource: "*".into(),
        context,
        ..AuthzRequest::default()
    })?;
    assert_eq!(answer.decision, Outcome::ImplicitDeny);
    Ok(())
}

#[test]
fn parallel_work_comes_back_in_item_order() -> Result<(), BundleError> {
    let items: Vec<usize> = (0..1000).collect();
    let out = par_map(&items, |i, x| (i, x * 2))?;
    assert_eq!(out.len(), 1000);
    assert!(
        out.iter()
            .enumerate()
            .all(|(k, (i, y))| k == *i && *y == k * 2)
    );
    assert!(par_map(&[] as &[u8], |_, x| *x)?.is_empty());
    Ok(())
}

#[test]
fn parallel_compiling_reports_the_first_problem_and_the_same_revision() -> Result<(), BundleError> {
    // Issue 12: policies compile on several threads; what is refused and
    // what is served must not depend on which thread finished first.
    let users = |bad: &[usize]| {
        let list: Vec<Value> = (0..300)
            .map(|i| {
                let mut u = user(&format!("arn:aws:iam::{ACCT}:user/u{i}"));
                u["UserName"] = json!(format!("u{i}"));
                if bad.contains(&i) {
                    u["UserPolicyList"][0]["PolicyDocument"]["Statement"][0]["Effect"] =
                        json!("Maybe");
                }
                u
            })
            .collect();
        account_file(json!(list))
    };
    let file = format!("iam/{ACCT}.json");
    for _ in 0..5 {
        let msg = refusal(&[(file.as_str(), &users(&[250, 77, 199]))]);
        assert!(
            msg.contains(
                "at `$.UserDetailList[77].UserPolicyList[0].PolicyDocument.Statement[0].Effect`"
            ),
            "{msg}"
        );
    }
    let good = users(&[]);
    let a = compile(&[(file.as_str(), &good)])?;
    let b = compile(&[(file.as_str(), &good)])?;
    assert_eq!(a.revision(), b.revision());
    assert_eq!(a.stats().policies, 300);
    assert_eq!(a.stats().statements, 300);
    assert_eq!(a.stats().principals, 300);
    Ok(())
}

#[test]
fn instance_profile_listings_must_agree_and_the_refusal_says_where() {
    let role = |name: &str, profile_arn: &str| {
        json!({"RoleName": name, "Arn": format!("arn:aws:iam::{ACCT}:role/{name}"),
            "RolePolicyList": [], "AttachedManagedPolicies": [],
            "InstanceProfileList": [{"InstanceProfileName": "web", "Arn": profile_arn,
                "Roles": [{"Arn": format!("arn:aws:iam::{ACCT}:role/{name}")}]}]})
    };
    let file = |roles: Value| {
        json!({"UserDetailList": [], "GroupDetailList": [], "RoleDetailList": roles, "Policies": []})
            .to_string()
    };
    let path = format!("iam/{ACCT}.json");
    // The same profile name with two ARNs.
    let two = file(json!([
        role("a", &format!("arn:aws:iam::{ACCT}:instance-profile/web")),
        role(
            "b",
            &format!("arn:aws:iam::{ACCT}:instance-profile/other/web")
        ),
    ]));
    let refused = |text: &str| match compile(&[(&path, text)]) {
        Err(e) => e,
        Ok(_) => panic!("accepted: {text}"),
    };
    let e = refused(&two);
    match &e {
        BundleError::Invalid {
            path,
            message,
            source,
            ..
        } => {
            assert_eq!(path, "$.RoleDetailList[1].InstanceProfileList[0]");
            assert!(message.contains("listed with two ARNs"), "{message}");
            assert!(source.is_some(), "{e}");
        }
        other => panic!("{other}"),
    }
    // A profile in another account than its role.
    let other = file(json!([role(
        "a",
        "arn:aws:iam::444455556666:instance-profile/web"
    )]));
    let e = refused(&other);
    assert!(
        e.to_string().contains("is not in the account of role"),
        "{e}"
    );
}
