//! Reading a bundle's files for the compile: JSON with located errors, the
//! checks an account file must pass, and `iam-roles/` listings.

use rustc_hash::FxHashMap;

use crate::bundle::aws::{AttachedPolicy, AuthorizationDetails};
use crate::bundle::err::BundleError;
use crate::bundle::files::BundleFiles;

/// Parses a bundle file, naming the JSON path of any problem.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
) -> Result<T, BundleError> {
    // Tracking the path costs on every element of large IAM files; it is
    // only needed to say where a refused file went wrong, so a file that
    // fails is read a second time, with the path.
    if let Ok(v) = serde_json::from_str(text) {
        return Ok(v);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = e.path().to_string();
        let at = if at == "." {
            "$".to_owned()
        } else {
            format!("$.{at}")
        };
        BundleError::invalid_from(file, at, e.into_inner())
    })
}

/// An account file holds that account's users, groups, roles and policies,
/// and only those: a file named after one account whose ARNs name another
/// would put principals and policies where they do not belong, and an
/// empty one would silently drop an account.
pub(super) fn check_account_file(
    file: &str,
    account: &str,
    d: &AuthorizationDetails,
) -> Result<(), BundleError> {
    if d.user_detail_list.is_empty()
        && d.group_detail_list.is_empty()
        && d.role_detail_list.is_empty()
        && d.policies.is_empty()
    {
        return Err(BundleError::invalid(
            file,
            "$",
            "the account file holds no users, groups, roles or policies",
        ));
    }
    // AWS managed policies (`arn:aws:iam::aws:policy/...`) belong to no
    // account and may be attached anywhere.
    let own = |path: String, arn: &str, aws_managed: bool| -> Result<(), BundleError> {
        let parsed = crate::policy::arn::Arn::parse(arn)
            .filter(|a| a.service == "iam")
            .ok_or_else(|| {
                BundleError::invalid(file, &path, format!("`{arn}` is not an IAM ARN"))
            })?;
        if parsed.account == account || (aws_managed && parsed.account == "aws") {
            return Ok(());
        }
        Err(BundleError::invalid(
            file,
            path,
            format!(
                "`{arn}` belongs to account `{}`, not to `{account}` whose file this is",
                parsed.account
            ),
        ))
    };
    let attached = |path: &str, list: &[AttachedPolicy]| {
        list.iter().enumerate().try_for_each(|(i, a)| {
            own(
                format!("{path}.AttachedManagedPolicies[{i}].PolicyArn"),
                &a.policy_arn,
                true,
            )
        })
    };
    let boundary = |path: &str, b: Option<&crate::bundle::aws::Boundary>| match b {
        Some(b) => own(
            format!("{path}.PermissionsBoundary.PermissionsBoundaryArn"),
            &b.permissions_boundary_arn,
            true,
        ),
        None => Ok(()),
    };
    for (i, u) in d.user_detail_list.iter().enumerate() {
        let path = format!("$.UserDetailList[{i}]");
        own(format!("{path}.Arn"), &u.arn, false)?;
        attached(&path, &u.attached_managed_policies)?;
        boundary(&path, u.permissions_boundary.as_ref())?;
    }
    for (i, g) in d.group_detail_list.iter().enumerate() {
        let path = format!("$.GroupDetailList[{i}]");
        if let Some(arn) = &g.arn {
            own(format!("{path}.Arn"), arn, false)?;
        }
        attached(&path, &g.attached_managed_policies)?;
    }
    for (i, r) in d.role_detail_list.iter().enumerate() {
        let path = format!("$.RoleDetailList[{i}]");
        own(format!("{path}.Arn"), &r.arn, false)?;
        attached(&path, &r.attached_managed_policies)?;
        boundary(&path, r.permissions_boundary.as_ref())?;
    }
    for (i, p) in d.policies.iter().enumerate() {
        own(format!("$.Policies[{i}].Arn"), &p.arn, true)?;
    }
    Ok(())
}

/// `aws iam list-roles` output (`{"Roles": [...]}`), as far as STS needs it.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListRoles {
    roles: Vec<ListedRole>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListedRole {
    arn: String,
    #[serde(default)]
    max_session_duration: Option<u64>,
}

/// `MaxSessionDuration` of every role listed in `iam-roles/<account>.json`
/// (IAM allows 3600 to 43200 seconds; anything else refuses the bundle).
pub(super) fn max_session_durations(
    files: &BundleFiles,
) -> Result<FxHashMap<String, u64>, BundleError> {
    let mut out = FxHashMap::default();
    for (file, text) in files.under("iam-roles", ".json") {
        let listed: ListRoles = parse_json(file, text)?;
        let account = file
            .strip_prefix("iam-roles/")
            .and_then(|f| f.strip_suffix(".json"))
            .unwrap_or_default();
        for (i, r) in listed.roles.iter().enumerate() {
            let in_account = crate::policy::arn::Arn::parse(&r.arn)
                .is_some_and(|a| a.account == account && a.resource.starts_with("role/"));
            if !in_account {
                return Err(BundleError::invalid(
                    file,
                    format!("$.Roles[{i}].Arn"),
                    format!("not a role of account {account}"),
                ));
            }
            if let Some(d) = r.max_session_duration {
                if !(3600..=43_200).contains(&d) {
                    return Err(BundleError::invalid(
                        file,
                        format!("$.Roles[{i}].MaxSessionDuration"),
                        "must be 3600 to 43200 seconds",
                    ));
                }
                out.insert(r.arn.clone(), d);
            }
        }
    }
    Ok(out)
}
