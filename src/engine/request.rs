//! The request side of a decision: the caller, the action, the resource and
//! the context keys, plus the keys IAM derives from the caller.

use std::borrow::Cow;
use std::sync::Arc;

use crate::engine::err::EngineError;
use crate::policy::arn::Arn;
use crate::policy::ids::AccountId;
use crate::policy::variables::{Lookup, ValueRef};

/// What kind of caller makes the request (`aws:PrincipalType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// An IAM user.
    User,
    /// A role session (`assumed-role`).
    AssumedRole,
    /// A federated user session (`GetFederationToken`).
    FederatedUser,
    /// The account root user.
    Root,
    /// An unauthenticated caller.
    Anonymous,
    /// A web identity (OIDC) federated caller of `AssumeRoleWithWebIdentity`,
    /// named by its identity provider's ARN
    /// (`arn:aws:iam::ACCOUNT:oidc-provider/HOST/PATH`): it matches
    /// `Federated` principals only, has no identity policies and no SCPs.
    WebIdentity,
    /// An AWS service principal such as `ec2.amazonaws.com` assuming a
    /// role for a resource (IAM User Guide, "AWS service principals"): no
    /// account, matched only by a `Service` entry naming it or by `*`; its
    /// requests carry `aws:PrincipalServiceName`, not the `aws:Principal*`
    /// keys of an account's principal.
    Service,
}

impl PrincipalKind {
    /// The value of `aws:PrincipalType`.
    pub fn principal_type(self) -> &'static str {
        match self {
            PrincipalKind::User => "User",
            PrincipalKind::AssumedRole => "AssumedRole",
            PrincipalKind::FederatedUser => "FederatedUser",
            PrincipalKind::Root => "Account",
            PrincipalKind::Anonymous => "Anonymous",
            PrincipalKind::WebIdentity => "WebIdentity",
            PrincipalKind::Service => "Service",
        }
    }
}

/// The caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    arn: String,
    kind: PrincipalKind,
    account: String,
    name: String,
    role_arn: Option<String>,
    account_root: String,
    tags: Vec<(String, String)>,
    /// A service principal (`ec2.amazonaws.com`): matched only by a
    /// `Principal: {"Service": ...}` entry naming it (and by `*`).
    service: Option<String>,
}

/// A caller ARN taken apart without copying: what a lookup needs before
/// deciding whether to build a [`Principal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrincipalArn<'a> {
    arn: &'a str,
    kind: PrincipalKind,
    partition: &'a str,
    account: &'a str,
    /// User or federated-user name, or a role session's session name.
    name: &'a str,
    /// A role session's role name.
    role: Option<&'a str>,
}

impl<'a> PrincipalArn<'a> {
    /// Reads a caller ARN: `arn:aws:iam::ACCOUNT:user/PATH/NAME`,
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`,
    /// `arn:aws:sts::ACCOUNT:federated-user/NAME`, `arn:aws:iam::ACCOUNT:root`,
    /// or `anonymous`.
    pub fn parse(arn: &'a str) -> Result<Self, EngineError> {
        let bad = || EngineError::Principal(arn.to_owned());
        if arn == "anonymous" {
            return Ok(Self {
                arn,
                kind: PrincipalKind::Anonymous,
                partition: "",
                account: "",
                name: "",
                role: None,
            });
        }
        let parsed = Arn::parse(arn).ok_or_else(bad)?;
        let account = parsed.account;
        if !AccountId::is_valid(account) {
            return Err(bad());
        }
        let (kind, name, role) = match (parsed.service, parsed.resource) {
            ("iam", "root") => (PrincipalKind::Root, "", None),
            ("iam", r) if r.starts_with("user/") => {
                let name = r.rsplit('/').next().unwrap_or_default();
                if name.is_empty() {
                    return Err(bad());
                }
                (PrincipalKind::User, name, None)
            }
            ("sts", r) if r.starts_with("assumed-role/") => {
                let mut parts = r.splitn(3, '/');
                let _ = parts.next();
                let role = parts.next().filter(|s| !s.is_empty()).ok_or_else(bad)?;
                let session = parts.next().filter(|s| !s.is_empty()).ok_or_else(bad)?;
                (PrincipalKind::AssumedRole, session, Some(role))
            }
            ("iam", r) if r.starts_with("oidc-provider/") => {
                let name = r.get("oidc-provider/".len()..).unwrap_or_default();
                if name.is_empty() {
                    return Err(bad());
                }
                (PrincipalKind::WebIdentity, name, None)
            }
            ("sts", r) if r.starts_with("federated-user/") => {
                let name = r.get("federated-user/".len()..).unwrap_or_default();
                if name.is_empty() {
                    return Err(bad());
                }
                (PrincipalKind::FederatedUser, name, None)
            }
            _ => return Err(bad()),
        };
        Ok(Self {
            arn,
            kind,
            partition: parsed.partition,
            account,
            name,
            role,
        })
    }

    /// The kind of caller.
    pub fn kind(&self) -> PrincipalKind {
        self.kind
    }

    /// The caller's account id (empty for anonymous callers).
    pub fn account(&self) -> &'a str {
        self.account
    }

    /// A role session's role name (without its path).
    pub fn role(&self) -> Option<&'a str> {
        self.role
    }

    /// The owned caller.
    pub fn to_principal(&self) -> Principal {
        let account = self.account;
        let partition = self.partition;
        let (account_root, role_arn) =
            if matches!(self.kind, PrincipalKind::Anonymous | PrincipalKind::Service) {
                (String::new(), None)
            } else {
                (
                    format!("arn:{partition}:iam::{account}:root"),
                    self.role
                        .map(|role| format!("arn:{partition}:iam::{account}:role/{role}")),
                )
            };
        Principal {
            arn: self.arn.to_owned(),
            kind: self.kind,
            account: account.to_owned(),
            name: self.name.to_owned(),
            role_arn,
            account_root,
            tags: Vec::new(),
            service: None,
        }
    }
}

impl Principal {
    /// Reads a caller ARN (the forms [`PrincipalArn::parse`] takes).
    pub fn parse(arn: &str) -> Result<Self, EngineError> {
        PrincipalArn::parse(arn).map(|p| p.to_principal())
    }

    /// A service principal such as `ec2.amazonaws.com` (IAM User Guide,
    /// "AWS service principals"): no account, no ARN of its own, matched
    /// only by a `Service` entry naming it or by `*`.
    pub fn service(name: &str) -> Self {
        Principal {
            arn: name.to_owned(),
            kind: PrincipalKind::Service,
            account: String::new(),
            name: name.to_owned(),
            role_arn: None,
            account_root: String::new(),
            tags: Vec::new(),
            service: Some(name.to_owned()),
        }
    }

    /// The service name of a service principal.
    pub fn service_name(&self) -> Option<&str> {
        self.service.as_deref()
    }

    /// Sets the full role ARN (with its path) of a role session.
    pub fn with_role_arn(mut self, role_arn: impl Into<String>) -> Self {
        if self.kind == PrincipalKind::AssumedRole {
            self.role_arn = Some(role_arn.into());
        }
        self
    }

    /// Sets the principal tags (`aws:PrincipalTag/KEY`).
    pub fn with_tags<I, K, V>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        self.tags = tags
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_ascii_lowercase(), v.into()))
            .collect();
        self
    }

    /// The caller's ARN as given.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// The kind of caller.
    pub fn kind(&self) -> PrincipalKind {
        self.kind
    }

    /// The caller's account id (empty for anonymous callers).
    pub fn account(&self) -> &str {
        &self.account
    }

    /// `arn:PARTITION:iam::ACCOUNT:root` of the caller's account.
    pub fn account_root(&self) -> &str {
        &self.account_root
    }

    /// The role ARN of a role session.
    pub fn role_arn(&self) -> Option<&str> {
        self.role_arn.as_deref()
    }

    /// `aws:PrincipalArn`: the role ARN for a role session, the ARN otherwise.
    pub fn principal_arn(&self) -> &str {
        match (&self.kind, &self.role_arn) {
            (PrincipalKind::AssumedRole, Some(role)) => role,
            _ => &self.arn,
        }
    }

    fn derived(&self, key: &str) -> Option<ValueRef<'_>> {
        // A service principal names itself in aws:PrincipalServiceName
        // (global condition keys: present only for service principals);
        // it has no ARN, account, tags or type of an account's principal.
        if self.kind == PrincipalKind::Service {
            return (key == "aws:principalservicename")
                .then_some(ValueRef::One(self.name.as_str()));
        }
        // aws:PrincipalType is present in every request, anonymous ones too.
        if self.kind == PrincipalKind::Anonymous {
            return (key == "aws:principaltype").then_some(ValueRef::One("Anonymous"));
        }
        // An unsigned federation request has no AWS principal: the
        // aws:Principal* keys are absent (the provider's keys are context).
        if self.kind == PrincipalKind::WebIdentity {
            return None;
        }
        let v = match key {
            "aws:principalarn" => self.principal_arn(),
            "aws:principalaccount" => &self.account,
            "aws:principaltype" => self.kind.principal_type(),
            "aws:username" if self.kind == PrincipalKind::User => &self.name,
            _ => {
                let tag = key.strip_prefix("aws:principaltag/")?;
                return self
                    .tags
                    .iter()
                    .find(|(k, _)| k == tag)
                    .map(|(_, v)| ValueRef::One(v.as_str()));
            }
        };
        Some(ValueRef::One(v))
    }
}

/// `s` in ASCII lower case, copied only when it has an upper-case letter
/// (names that are already lower case cost nothing).
pub fn ascii_lowercase(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// A context value: one string, or several for a multivalued key. Numbers
/// and booleans are carried as their text, as IAM does.
#[derive(Debug, Clone)]
pub enum ContextValue {
    One(String),
    Many(Vec<String>),
    /// One string shared between requests (the clock's texts, constants):
    /// a reference count instead of a copy. Equal to `One` of the same text.
    Shared(Arc<str>),
}

impl ContextValue {
    /// The value as a [`ValueRef`].
    pub fn value(&self) -> ValueRef<'_> {
        match self {
            ContextValue::One(s) => ValueRef::One(s),
            ContextValue::Shared(s) => ValueRef::One(s),
            ContextValue::Many(v) => ValueRef::Many(v),
        }
    }
}

impl PartialEq for ContextValue {
    fn eq(&self, other: &Self) -> bool {
        match (self.value(), other.value()) {
            (ValueRef::One(a), ValueRef::One(b)) => a == b,
            (ValueRef::Many(a), ValueRef::Many(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for ContextValue {}

/// Request context keys, matched case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Keys in lower case; the well-known ones are not copied.
    entries: Vec<(Cow<'static, str>, ContextValue)>,
}

/// Room for the keys a front-end derives plus a few of the caller's.
const CONTEXT_CAPACITY: usize = 8;

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Self {
            entries: Vec::with_capacity(CONTEXT_CAPACITY),
        }
    }

    /// Sets a key (replacing any value it had, whatever its case).
    pub fn insert(&mut self, key: &str, value: ContextValue) {
        self.set(Cow::Owned(key.to_ascii_lowercase()), value);
    }

    /// [`Context::insert`] for a fixed key name: not copied when it is
    /// already in lower case.
    pub fn insert_static(&mut self, key: &'static str, value: ContextValue) {
        self.set(ascii_lowercase(key), value);
    }

    fn set(&mut self, key: Cow<'static, str>, value: ContextValue) {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// Builder form of [`Context::insert`] for a single value.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.insert(key, ContextValue::One(value.into()));
        self
    }

    /// The value of a key, given in lower case.
    pub fn get(&self, key_lower: &str) -> Option<ValueRef<'_>> {
        self.entries
            .iter()
            .find(|(k, _)| k == key_lower)
            .map(|(_, v)| v.value())
    }

    /// The keys and values, keys in lower case.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ContextValue)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }
}

/// How an action's resource-based policy takes part in a decision within
/// the caller's own account (IAM User Guide, "Policy evaluation logic":
/// evaluating identity-based policies with resource-based policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourcePolicyRule {
    /// An allow in either the identity-based or the resource-based policy
    /// is enough.
    Either,
    /// Role trust policies (the `sts:` actions a trust policy governs) and
    /// KMS key policies: the resource-based policy must allow the caller
    /// (directly, or its account so that identity policies decide), even
    /// within one account. Cross-account requests need that anyway.
    MustAllow,
}

impl ResourcePolicyRule {
    /// The rule for an action given in lower case. One match on the service
    /// prefix (and, for STS, on the action name), done once per request.
    pub fn of(action_lower: &str) -> Self {
        let Some((service, name)) = action_lower.split_once(':') else {
            return Self::Either;
        };
        match (service, name) {
            ("kms", _) => Self::MustAllow,
            (
                "sts",
                "assumerole"
                | "assumerolewithsaml"
                | "assumerolewithwebidentity"
                | "tagsession"
                | "setsourceidentity"
                | "setcontext",
            ) => Self::MustAllow,
            _ => Self::Either,
        }
    }
}

/// What the authorizing side knows of a caller beyond its ARN, for the
/// global keys AWS sets from the authenticated request: its organization
/// (`aws:PrincipalOrgID`, `aws:PrincipalOrgPaths`, present only for a
/// member of an organization) and that it calls directly rather than
/// through an AWS service (`aws:ViaAWSService` and
/// `aws:PrincipalIsAWSService` are `false`). Policy tests never set it: their
/// derived keys are the principal's alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerFacts {
    org_id: Option<String>,
    org_paths: Vec<String>,
}

impl CallerFacts {
    /// A direct caller outside any organization.
    pub fn direct() -> Self {
        Self::default()
    }

    /// A direct caller in organization `org_id` whose account sits at
    /// `path` (`o-xxx/r-xxx/ou-xxx/.../`).
    pub fn in_organization(org_id: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            org_id: Some(org_id.into()),
            org_paths: vec![path.into()],
        }
    }

    fn get(&self, key_lower: &str) -> Option<ValueRef<'_>> {
        match key_lower {
            "aws:viaawsservice" | "aws:principalisawsservice" => Some(ValueRef::One("false")),
            "aws:principalorgid" => self.org_id.as_deref().map(ValueRef::One),
            "aws:principalorgpaths" if self.org_id.is_some() => {
                Some(ValueRef::Many(&self.org_paths))
            }
            _ => None,
        }
    }
}

/// One authorization question.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    principal: &'a Principal,
    action: Cow<'a, str>,
    rule: ResourcePolicyRule,
    resource: &'a str,
    context: &'a Context,
    resource_account: Option<&'a str>,
    facts: Option<&'a CallerFacts>,
}

impl<'a> Request<'a> {
    /// Builds a request; the action is matched case-insensitively.
    pub fn new(
        principal: &'a Principal,
        action: &'a str,
        resource: &'a str,
        context: &'a Context,
    ) -> Self {
        let action = ascii_lowercase(action);
        let rule = ResourcePolicyRule::of(&action);
        // Read once: the evaluation and the caller both need it.
        let resource_account = Arn::parse(resource)
            .map(|a| a.account)
            .filter(|a| !a.is_empty());
        Self {
            principal,
            action,
            rule,
            resource,
            context,
            resource_account,
            facts: None,
        }
    }

    /// What the authorizing side knows of the caller (organization, direct
    /// call); ignored for anonymous and web identity callers, which are no
    /// principal of an account.
    pub fn with_caller_facts(mut self, facts: &'a CallerFacts) -> Self {
        if !matches!(
            self.principal.kind(),
            PrincipalKind::Anonymous | PrincipalKind::WebIdentity | PrincipalKind::Service
        ) {
            self.facts = Some(facts);
        }
        self
    }

    /// Names the account that owns the resource when its ARN carries none.
    pub fn with_resource_account(mut self, account: &'a str) -> Self {
        self.resource_account = Some(account);
        self
    }

    /// The caller.
    pub fn principal(&self) -> &'a Principal {
        self.principal
    }

    /// The action in lower case.
    pub fn action(&self) -> &str {
        &self.action
    }

    /// How the action's resource-based policy takes part (trust and key
    /// policies must allow explicitly).
    pub fn resource_policy_rule(&self) -> ResourcePolicyRule {
        self.rule
    }

    /// The resource ARN (or `*`).
    pub fn resource(&self) -> &'a str {
        self.resource
    }

    /// The request context.
    pub fn context(&self) -> &'a Context {
        self.context
    }

    /// The account that owns the resource: the one given, else the ARN's.
    pub fn resource_account(&self) -> Option<&'a str> {
        self.resource_account
    }
}

impl Lookup for Request<'_> {
    fn get(&self, key_lower: &str) -> Option<ValueRef<'_>> {
        self.context
            .get(key_lower)
            .or_else(|| self.principal.derived(key_lower))
            .or_else(|| self.facts.and_then(|f| f.get(key_lower)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_parse() -> Result<(), EngineError> {
        let p = Principal::parse("arn:aws:iam::111122223333:user/dev/alice")?;
        assert_eq!(
            (p.kind(), p.account()),
            (PrincipalKind::User, "111122223333")
        );
        assert_eq!(p.name, "alice");
        let s = Principal::parse("arn:aws:sts::111122223333:assumed-role/Admin/bob")?;
        assert_eq!(s.principal_arn(), "arn:aws:iam::111122223333:role/Admin");
        let s = s.with_role_arn("arn:aws:iam::111122223333:role/ops/Admin");
        assert_eq!(
            s.principal_arn(),
            "arn:aws:iam::111122223333:role/ops/Admin"
        );
        assert!(Principal::parse("arn:aws:iam::111122223333:role/Admin").is_err());
        assert!(Principal::parse("nobody").is_err());
        let w = Principal::parse("arn:aws:iam::111122223333:oidc-provider/oidc.example/id/A")?;
        assert_eq!(
            (w.kind(), w.account()),
            (PrincipalKind::WebIdentity, "111122223333")
        );
        assert!(w.derived("aws:principalarn").is_none());
        assert!(Principal::parse("arn:aws:iam::111122223333:oidc-provider/").is_err());
        // An account id is 12 digits, as everywhere else (issue 12).
        for bad in [
            "arn:aws:iam::1:user/alice",
            "arn:aws:iam::1111222233334:user/alice",
            "arn:aws:sts::11112222333a:assumed-role/Admin/bob",
        ] {
            assert!(Principal::parse(bad).is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn trust_and_key_policy_actions_must_be_allowed_by_the_resource() {
        use ResourcePolicyRule::{Either, MustAllow};
        for (action, rule) in [
            ("sts:assumerole", MustAllow),
            ("sts:assumerolewithsaml", MustAllow),
            ("sts:assumerolewithwebidentity", MustAllow),
            ("sts:tagsession", MustAllow),
            ("sts:setsourceidentity", MustAllow),
            ("sts:setcontext", MustAllow),
            ("kms:decrypt", MustAllow),
            ("kms:putkeypolicy", MustAllow),
            ("sts:getcalleridentity", Either),
            ("sts:decodeauthorizationmessage", Either),
            ("iam:passrole", Either),
            ("s3:getobject", Either),
            ("kmsx:decrypt", Either),
            ("kms", Either),
        ] {
            assert_eq!(ResourcePolicyRule::of(action), rule, "{action}");
        }
    }

    #[test]
    fn context_keys_are_case_insensitive() -> Result<(), EngineError> {
        let p =
            Principal::parse("arn:aws:iam::111122223333:user/alice")?.with_tags([("Team", "blue")]);
        let ctx = Context::new().with("EC2:ResourceTag/Env", "prod");
        let r = Request::new(&p, "EC2:RunInstances", "*", &ctx);
        assert_eq!(r.action(), "ec2:runinstances");
        assert!(matches!(
            r.get("ec2:resourcetag/env"),
            Some(ValueRef::One("prod"))
        ));
        assert!(matches!(
            r.get("aws:principaltag/team"),
            Some(ValueRef::One("blue"))
        ));
        assert!(matches!(
            r.get("aws:username"),
            Some(ValueRef::One("alice"))
        ));
        Ok(())
    }
}
