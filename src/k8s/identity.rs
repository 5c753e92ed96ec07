//! The IAM principal behind a Kubernetes user. Two sources, tried in order:
//!
//! 1. What the AWS IAM authenticator put in `extra` (`arn`, `canonicalArn`,
//!    `sessionName`, `accessKeyId`; keys compared case-insensitively, each
//!    with exactly one value). `arn` is the principal; the other keys, when
//!    present, must agree with it (same account and role, same session).
//! 2. Unless the operator requires `extra`, the username read back through
//!    a mapping in the format of EKS's `aws-auth` ConfigMap (`mapRoles`,
//!    `mapUsers`, `mapAccounts`; their values are YAML strings). A role
//!    entry's `username` template must give the session name
//!    (`{{SessionNameRaw}}`, or `{{SessionName}}` for a value without `-`,
//!    which stands for `@` or `-` alike); exactly one entry must match, and
//!    the user must be in every group the entry grants, else the user is
//!    unmapped (never guessed).
//!
//! Pure: the mapping text comes in, a principal ARN or an [`Unmapped`]
//! reason comes out.

use serde::Deserialize;

use super::review::UserInfo;

/// Why a user has no IAM principal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unmapped {
    #[error("`extra.{key}` has {count} values; exactly one is expected")]
    ExtraCount { key: String, count: usize },
    #[error("`extra.arn` `{0}` is not an IAM user or assumed-role session ARN")]
    ExtraArn(String),
    #[error("`extra.{key}` `{value}` does not agree with `extra.arn` `{arn}`")]
    ExtraMismatch {
        key: &'static str,
        value: String,
        arn: String,
    },
    #[error(
        "user `{0}` carries no AWS IAM authenticator `extra`, which the configuration requires"
    )]
    NoExtra(String),
    #[error(
        "user `{0}` carries no AWS IAM authenticator `extra` and no aws-auth mapping is configured"
    )]
    NoMapping(String),
    #[error("user `{0}` matches no aws-auth mapping")]
    NotFound(String),
    #[error("user `{user}` matches several aws-auth mappings: {entries}")]
    Ambiguous { user: String, entries: String },
    #[error(
        "user `{user}` matches the aws-auth mapping of `{arn}`, whose username template does not give a session name that can be read back"
    )]
    NoSession { user: String, arn: String },
    #[error("user `{user}` lacks group `{group}` that the aws-auth mapping of `{arn}` grants")]
    Groups {
        user: String,
        group: String,
        arn: String,
    },
}

/// Why an aws-auth mapping does not load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsAuthError {
    #[error("aws-auth: {0}")]
    Yaml(String),
    #[error("aws-auth `{field}`: {message}")]
    Entry { field: String, message: String },
}

/// One `mapRoles` / `mapUsers` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// The role or user ARN.
    arn: String,
    account: String,
    /// For roles: the role name (the last segment of its path).
    role_name: Option<String>,
    username: String,
    groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RoleJson {
    rolearn: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct UserJson {
    userarn: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

/// An aws-auth mapping, read in reverse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsAuth {
    entries: Vec<Entry>,
    accounts: Vec<String>,
}

/// The parts of an IAM ARN iamgate needs here.
fn arn_parts(arn: &str) -> Option<(&str, &str, &str)> {
    let mut it = arn.splitn(6, ':');
    let (prefix, _partition, service, _region, account, resource) = (
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
    );
    (prefix == "arn" && crate::policy::AccountId::is_valid(account))
        .then_some((service, account, resource))
}

impl AwsAuth {
    /// Reads the ConfigMap (`kind: ConfigMap` with `data`) or its `data`
    /// alone, as YAML or JSON.
    pub fn parse(text: &str) -> Result<Self, AwsAuthError> {
        let doc: yaml_serde::Value =
            yaml_serde::from_str(text).map_err(|e| AwsAuthError::Yaml(e.to_string()))?;
        let data = match doc.get("data") {
            Some(d) => d.clone(),
            None => doc,
        };
        let field = |name: &str| -> Result<Option<String>, AwsAuthError> {
            match data.get(name) {
                None | Some(yaml_serde::Value::Null) => Ok(None),
                Some(yaml_serde::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(AwsAuthError::Entry {
                    field: name.to_owned(),
                    message: "a ConfigMap value is a string (of YAML)".into(),
                }),
            }
        };
        let mut out = AwsAuth::default();
        if let Some(text) = field("mapRoles")? {
            let roles: Vec<RoleJson> =
                yaml_serde::from_str(&text).map_err(|e| AwsAuthError::Entry {
                    field: "mapRoles".into(),
                    message: e.to_string(),
                })?;
            for (i, r) in roles.into_iter().enumerate() {
                let bad = |message: String| AwsAuthError::Entry {
                    field: format!("mapRoles[{i}]"),
                    message,
                };
                let (service, account, resource) = arn_parts(&r.rolearn)
                    .ok_or_else(|| bad(format!("`{}` is not an IAM ARN", r.rolearn)))?;
                let role_name = resource
                    .strip_prefix("role/")
                    .filter(|_| service == "iam")
                    .and_then(|p| p.rsplit('/').next())
                    .ok_or_else(|| bad(format!("`{}` is not a role ARN", r.rolearn)))?
                    .to_owned();
                let username = r
                    .username
                    .ok_or_else(|| bad("no `username` (it cannot be read back)".into()))?;
                out.entries.push(Entry {
                    account: account.to_owned(),
                    arn: r.rolearn,
                    role_name: Some(role_name),
                    username,
                    groups: r.groups,
                });
            }
        }
        if let Some(text) = field("mapUsers")? {
            let users: Vec<UserJson> =
                yaml_serde::from_str(&text).map_err(|e| AwsAuthError::Entry {
                    field: "mapUsers".into(),
                    message: e.to_string(),
                })?;
            for (i, u) in users.into_iter().enumerate() {
                let bad = |message: String| AwsAuthError::Entry {
                    field: format!("mapUsers[{i}]"),
                    message,
                };
                let (service, account, resource) = arn_parts(&u.userarn)
                    .ok_or_else(|| bad(format!("`{}` is not an IAM ARN", u.userarn)))?;
                if service != "iam" || !resource.starts_with("user/") {
                    return Err(bad(format!("`{}` is not a user ARN", u.userarn)));
                }
                // The authenticator's default username is the ARN itself.
                let username = u.username.unwrap_or_else(|| u.userarn.clone());
                out.entries.push(Entry {
                    account: account.to_owned(),
                    arn: u.userarn,
                    role_name: None,
                    username,
                    groups: u.groups,
                });
            }
        }
        if let Some(text) = field("mapAccounts")? {
            let accounts: Vec<yaml_serde::Value> =
                yaml_serde::from_str(&text).map_err(|e| AwsAuthError::Entry {
                    field: "mapAccounts".into(),
                    message: e.to_string(),
                })?;
            for (i, a) in accounts.into_iter().enumerate() {
                let a = match a {
                    yaml_serde::Value::String(s) => s,
                    yaml_serde::Value::Number(n) => n.to_string(),
                    _ => {
                        return Err(AwsAuthError::Entry {
                            field: format!("mapAccounts[{i}]"),
                            message: "an account id".into(),
                        });
                    }
                };
                out.accounts.push(a);
            }
        }
        Ok(out)
    }

    /// The principal of `username` (with its `groups`).
    fn principal(&self, user: &UserInfo) -> Result<String, Unmapped> {
        let username = &user.username;
        let mut found: Vec<(&Entry, Option<String>)> = Vec::new();
        for e in &self.entries {
            if let Some(binding) = read_back(&e.username, &e.account, username) {
                found.push((e, binding));
            }
        }
        // mapAccounts: the username is the caller's own ARN.
        if found.is_empty() {
            if let Some(p) = self.account_principal(username) {
                return Ok(p);
            }
            return Err(Unmapped::NotFound(username.clone()));
        }
        if found.len() > 1 {
            return Err(Unmapped::Ambiguous {
                user: username.clone(),
                entries: found
                    .iter()
                    .map(|(e, _)| format!("`{}`", e.arn))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let Some((entry, session)) = found.pop() else {
            return Err(Unmapped::NotFound(username.clone()));
        };
        if let Some(g) = entry.groups.iter().find(|g| !user.groups.contains(g)) {
            return Err(Unmapped::Groups {
                user: username.clone(),
                group: g.clone(),
                arn: entry.arn.clone(),
            });
        }
        match &entry.role_name {
            None => Ok(entry.arn.clone()),
            Some(role) => {
                let session = session.ok_or_else(|| Unmapped::NoSession {
                    user: username.clone(),
                    arn: entry.arn.clone(),
                })?;
                let partition = entry.arn.split(':').nth(1).unwrap_or("aws");
                Ok(format!(
                    "arn:{partition}:sts::{}:assumed-role/{role}/{session}",
                    entry.account
                ))
            }
        }
    }

    fn account_principal(&self, username: &str) -> Option<String> {
        let (service, account, resource) = arn_parts(username)?;
        let ok = (service == "iam" && resource.starts_with("user/"))
            || (service == "sts" && resource.starts_with("assumed-role/"));
        (ok && self.accounts.iter().any(|a| a == account)).then(|| username.to_owned())
    }
}

/// Reads a username back through a template. `Some(session)` when it
/// matches (`session` when the template gives one unambiguously); `None`
/// when it does not match.
fn read_back(template: &str, account: &str, username: &str) -> Option<Option<String>> {
    let template = template.replace("{{AccountID}}", account);
    // Split into literals and placeholders.
    let mut parts: Vec<Part> = Vec::new();
    let mut rest = template.as_str();
    while let Some(start) = rest.find("{{") {
        let (lit, after) = rest.split_at(start);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit.to_owned()));
        }
        let end = after.find("}}")?;
        let name = after.get(2..end)?.to_owned();
        parts.push(Part::Var(name));
        rest = after.get(end + 2..)?;
    }
    if !rest.is_empty() {
        parts.push(Part::Lit(rest.to_owned()));
    }
    let mut bindings = Vec::new();
    match_parts(&parts, username, &mut Vec::new(), &mut bindings);
    match bindings.as_slice() {
        [] => None,
        [only] => {
            let raw = only
                .iter()
                .find(|(n, _)| n == "SessionNameRaw")
                .map(|(_, v)| v.clone());
            let sanitized = only
                .iter()
                .find(|(n, _)| n == "SessionName")
                .map(|(_, v)| v.clone())
                // `{{SessionName}}` turns `@` into `-`: a value with `-`
                // cannot be read back.
                .filter(|v| !v.contains('-'));
            Some(raw.or(sanitized).filter(|s| is_session_name(s)))
        }
        // Several ways to read it back: the session is not known.
        _ => Some(None),
    }
}

enum Part {
    Lit(String),
    Var(String),
}

/// Every assignment of placeholders (non-empty values) that spells `s`.
fn match_parts(
    parts: &[Part],
    s: &str,
    current: &mut Vec<(String, String)>,
    out: &mut Vec<Vec<(String, String)>>,
) {
    if out.len() > 1 {
        return;
    }
    let Some((first, rest)) = parts.split_first() else {
        if s.is_empty() {
            out.push(current.clone());
        }
        return;
    };
    match first {
        Part::Lit(l) => {
            if let Some(after) = s.strip_prefix(l.as_str()) {
                match_parts(rest, after, current, out);
            }
        }
        Part::Var(name) => {
            let ends = s
                .char_indices()
                .map(|(i, _)| i)
                .skip(1)
                .chain(std::iter::once(s.len()));
            for i in ends.filter(|i| *i > 0) {
                let (value, after) = s.split_at(i);
                current.push((name.clone(), value.to_owned()));
                match_parts(rest, after, current, out);
                current.pop();
            }
        }
    }
}

/// IAM's session name characters (`[\w+=,.@-]`, 2 to 64).
fn is_session_name(s: &str) -> bool {
    (2..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
}

/// How Kubernetes users become IAM principals.
#[derive(Debug, Clone, Default)]
pub struct PrincipalMapper {
    pub aws_auth: Option<AwsAuth>,
    /// Only `extra` identifies a user; the username alone never does.
    pub require_extra: bool,
}

/// Where a principal came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Extra,
    AwsAuth,
}

impl Source {
    /// For audit annotations and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Extra => "extra",
            Source::AwsAuth => "aws-auth",
        }
    }
}

impl PrincipalMapper {
    /// The principal ARN of `user`.
    pub fn principal(&self, user: &UserInfo) -> Result<(String, Source), Unmapped> {
        if let Some(arn) = extra_value(user, "arn")? {
            return from_extra(user, arn).map(|p| (p, Source::Extra));
        }
        if self.require_extra {
            return Err(Unmapped::NoExtra(user.username.clone()));
        }
        match &self.aws_auth {
            Some(map) => map.principal(user).map(|p| (p, Source::AwsAuth)),
            None => Err(Unmapped::NoMapping(user.username.clone())),
        }
    }
}

fn extra_value<'u>(user: &'u UserInfo, key: &str) -> Result<Option<&'u str>, Unmapped> {
    let mut found = None;
    for (k, v) in &user.extra {
        if k.eq_ignore_ascii_case(key) {
            match v.as_slice() {
                [one] if found.is_none() => found = Some(one.as_str()),
                _ => {
                    return Err(Unmapped::ExtraCount {
                        key: key.to_owned(),
                        count: v.len() + usize::from(found.is_some()),
                    });
                }
            }
        }
    }
    Ok(found)
}

fn from_extra(user: &UserInfo, arn: &str) -> Result<String, Unmapped> {
    let (service, account, resource) =
        arn_parts(arn).ok_or_else(|| Unmapped::ExtraArn(arn.to_owned()))?;
    let mismatch = |key: &'static str, value: &str| Unmapped::ExtraMismatch {
        key,
        value: value.to_owned(),
        arn: arn.to_owned(),
    };
    let (role, session) = match (service, resource.split('/').collect::<Vec<_>>().as_slice()) {
        ("sts", ["assumed-role", role, session]) => (Some(*role), Some(*session)),
        ("iam", ["user", ..]) => (None, None),
        _ => return Err(Unmapped::ExtraArn(arn.to_owned())),
    };
    if let Some(canonical) = extra_value(user, "canonicalArn")? {
        let ok = match arn_parts(canonical) {
            Some(("iam", acct, res)) if acct == account => match role {
                Some(role) => res.starts_with("role/") && res.rsplit('/').next() == Some(role),
                None => canonical == arn,
            },
            _ => false,
        };
        if !ok {
            return Err(mismatch("canonicalArn", canonical));
        }
    }
    if let Some(name) = extra_value(user, "sessionName")?
        && (session.is_some_and(|s| s != name) || (session.is_none() && !name.is_empty()))
    {
        return Err(mismatch("sessionName", name));
    }
    Ok(arn.to_owned())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const CONFIGMAP: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: aws-auth
  namespace: kube-system
data:
  mapRoles: |
    - rolearn: arn:aws:iam::111111111111:role/teams/Developer
      username: dev:{{SessionNameRaw}}
      groups: [developers]
    - rolearn: arn:aws:iam::111111111111:role/Ops
      username: ops-{{AccountID}}:{{SessionName}}
    - rolearn: arn:aws:iam::111111111111:role/NodeRole
      username: system:node:{{EC2PrivateDNSName}}
      groups: [system:nodes]
  mapUsers: |
    - userarn: arn:aws:iam::111111111111:user/carol
      username: carol
  mapAccounts: |
    - "222222222222"
"#;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            username: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..UserInfo::default()
        }
    }

    fn mapper() -> PrincipalMapper {
        PrincipalMapper {
            aws_auth: Some(AwsAuth::parse(CONFIGMAP).unwrap()),
            require_extra: false,
        }
    }

    #[test]
    fn aws_auth_templates_read_back() {
        let m = mapper();
        assert_eq!(
            m.principal(&user("dev:alice@example.com", &["developers"]))
                .unwrap()
                .0,
            "arn:aws:sts::111111111111:assumed-role/Developer/alice@example.com"
        );
        assert_eq!(
            m.principal(&user("ops-111111111111:bob", &[])).unwrap().0,
            "arn:aws:sts::111111111111:assumed-role/Ops/bob"
        );
        assert_eq!(
            m.principal(&user("carol", &[])).unwrap().0,
            "arn:aws:iam::111111111111:user/carol"
        );
        assert_eq!(
            m.principal(&user("arn:aws:iam::222222222222:user/dan", &[]))
                .unwrap()
                .0,
            "arn:aws:iam::222222222222:user/dan"
        );
    }

    #[test]
    fn what_cannot_be_read_back_is_unmapped() {
        let m = mapper();
        // `-` may have been `@` under {{SessionName}}.
        assert!(matches!(
            m.principal(&user("ops-111111111111:bob-x", &[])),
            Err(Unmapped::NoSession { .. })
        ));
        // No session in the template.
        assert!(matches!(
            m.principal(&user("system:node:ip-10-0-0-1", &["system:nodes"])),
            Err(Unmapped::NoSession { .. })
        ));
        // Groups the entry grants must be there.
        assert!(matches!(
            m.principal(&user("dev:alice", &[])),
            Err(Unmapped::Groups { .. })
        ));
        assert!(matches!(
            m.principal(&user("eve", &[])),
            Err(Unmapped::NotFound(_))
        ));
        let strict = PrincipalMapper {
            require_extra: true,
            ..mapper()
        };
        assert!(matches!(
            strict.principal(&user("carol", &[])),
            Err(Unmapped::NoExtra(_))
        ));
    }

    #[test]
    fn extra_must_be_consistent() {
        let mut u = user("whoever", &[]);
        let mut extra = BTreeMap::new();
        extra.insert(
            "arn".to_string(),
            vec!["arn:aws:sts::111111111111:assumed-role/Developer/alice".to_string()],
        );
        extra.insert(
            "canonicalArn".to_string(),
            vec!["arn:aws:iam::111111111111:role/Developer".to_string()],
        );
        extra.insert("sessionName".to_string(), vec!["alice".to_string()]);
        u.extra = extra.clone();
        let (p, s) = PrincipalMapper::default().principal(&u).unwrap();
        assert_eq!(p, "arn:aws:sts::111111111111:assumed-role/Developer/alice");
        assert_eq!(s, Source::Extra);
        u.extra.insert("sessionName".into(), vec!["mallory".into()]);
        assert!(PrincipalMapper::default().principal(&u).is_err());
        u.extra = extra.clone();
        u.extra.insert(
            "canonicalArn".into(),
            vec!["arn:aws:iam::999999999999:role/Developer".into()],
        );
        assert!(PrincipalMapper::default().principal(&u).is_err());
        u.extra = extra;
        u.extra.insert("arn".into(), vec!["a".into(), "b".into()]);
        assert!(matches!(
            PrincipalMapper::default().principal(&u),
            Err(Unmapped::ExtraCount { .. })
        ));
    }

    #[test]
    fn bad_mappings_are_refused() {
        assert!(
            AwsAuth::parse("data:\n  mapRoles: |\n    - rolearn: nope\n      username: x\n")
                .is_err()
        );
        assert!(AwsAuth::parse("data:\n  mapRoles: 3\n").is_err());
        assert!(AwsAuth::parse("data: [").is_err());
    }
}
