//! The typed model of an IAM JSON policy document, after parsing and
//! validation. Values keep their original spelling; compilation normalises.

use crate::policy::condition::Operator;

/// The `Version` element. An absent version means `2008-10-17`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `2012-10-17`: policy variables are substituted.
    V2012_10_17,
    /// `2008-10-17` or absent: `${...}` is literal text.
    V2008_10_17,
}

impl Version {
    /// Whether `${...}` policy variables are substituted under this version.
    pub fn has_variables(self) -> bool {
        matches!(self, Version::V2012_10_17)
    }
}

/// Where a policy is attached; decides which elements it may or must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Attached to a user, group or role (inline or managed).
    Identity,
    /// A permissions boundary.
    Boundary,
    /// A session policy passed when assuming a role or federating.
    Session,
    /// A resource-based policy.
    Resource,
    /// An AWS Organizations service control policy.
    Scp,
    /// An AWS Organizations resource control policy.
    Rcp,
    /// A role trust policy (`AssumeRolePolicyDocument`): names principals,
    /// has no `Resource`.
    Trust,
}

impl PolicyKind {
    /// The name used in explanations and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Identity => "identity-based policy",
            PolicyKind::Boundary => "permissions boundary",
            PolicyKind::Session => "session policy",
            PolicyKind::Resource => "resource-based policy",
            PolicyKind::Scp => "service control policy",
            PolicyKind::Rcp => "resource control policy",
            PolicyKind::Trust => "role trust policy",
        }
    }

    /// A short machine-friendly name (`identity`, `boundary`, ...).
    pub fn short_name(self) -> &'static str {
        match self {
            PolicyKind::Identity => "identity",
            PolicyKind::Boundary => "boundary",
            PolicyKind::Session => "session",
            PolicyKind::Resource => "resource",
            PolicyKind::Scp => "scp",
            PolicyKind::Rcp => "rcp",
            PolicyKind::Trust => "trust",
        }
    }

    /// Resource-based policies and RCPs name principals; the others must not.
    pub fn has_principal(self) -> bool {
        matches!(self, PolicyKind::Resource | PolicyKind::Trust)
    }
}

/// A parsed policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub version: Version,
    pub id: Option<String>,
    pub statements: Vec<StatementDoc>,
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    Allow,
    Deny,
}

/// One statement as written.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementDoc {
    pub sid: Option<String>,
    pub effect: Effect,
    /// `Principal` or `NotPrincipal`; `None` when neither is present.
    pub principal: Option<PrincipalSpec>,
    pub action: ActionList,
    pub resource: Option<ResourceList>,
    pub conditions: Vec<ConditionBlock>,
}

/// `Principal` (positive) or `NotPrincipal` (negated) with its entries.
#[derive(Debug, Clone, PartialEq)]
pub struct PrincipalSpec {
    pub negated: bool,
    pub entries: Vec<PrincipalEntry>,
}

/// One principal named in a `Principal` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalEntry {
    /// `"*"` or `{"AWS": "*"}`: everyone, including anonymous callers.
    Everyone,
    /// An `AWS` principal: account id, account root ARN, user, role, session.
    Aws(String),
    /// A `Service` principal such as `ec2.amazonaws.com`.
    Service(String),
    /// A `Federated` principal (identity provider).
    Federated(String),
    /// A `CanonicalUser` id.
    CanonicalUser(String),
}

/// `Action` or `NotAction` patterns.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionList {
    pub negated: bool,
    pub patterns: Vec<String>,
}

/// `Resource` or `NotResource` patterns.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceList {
    pub negated: bool,
    pub patterns: Vec<String>,
}

/// One `operator: { key: values }` entry of a `Condition` element.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionBlock {
    pub operator: Operator,
    /// The key as written (matched case-insensitively).
    pub key: String,
    /// The values as strings (numbers and booleans as their JSON text).
    pub values: Vec<String>,
}
