//! The answer to a request and its explanation.

use std::borrow::Cow;

use smallvec::SmallVec;

use crate::engine::compile::{CompiledPolicy, Statement};
use crate::policy::PolicyKind;

/// The IAM policy simulator's three decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Allowed,
    ExplicitDeny,
    ImplicitDeny,
}

impl Outcome {
    /// `allowed`, `explicitDeny` or `implicitDeny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::ExplicitDeny => "explicitDeny",
            Outcome::ImplicitDeny => "implicitDeny",
        }
    }

    /// Parses the simulator's spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allowed" => Some(Outcome::Allowed),
            "explicitDeny" => Some(Outcome::ExplicitDeny),
            "implicitDeny" => Some(Outcome::ImplicitDeny),
            _ => None,
        }
    }
}

impl serde::Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the decision came out as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The caller's identity-based policies allow (within any boundary and
    /// session policy), and in a cross-account request the resource's too.
    IdentityAllows,
    /// A resource-based policy in the same account names the caller.
    ResourcePolicyAllows,
    /// The account root user acting in its own account.
    RootUser,
    /// An explicit deny in a policy of this kind.
    ExplicitDeny(PolicyKind),
    /// No service control policy allows at this level (0 = root).
    NoScpAllow { level: usize },
    /// No resource control policy allows at this level (0 = root).
    NoRcpAllow { level: usize },
    /// No identity-based policy allows.
    NoIdentityAllow,
    /// The permissions boundary does not allow.
    NoBoundaryAllow,
    /// The session policy does not allow.
    NoSessionAllow,
    /// Cross-account, anonymous, or a role trust or KMS key policy: no
    /// resource-based policy allows.
    NoResourceAllow,
}

impl Reason {
    /// The reason in the words AWS error messages use (not copied for the
    /// fixed ones).
    pub fn describe(&self) -> Cow<'static, str> {
        let fixed = match self {
            Reason::IdentityAllows => "allowed by an identity-based policy",
            Reason::ResourcePolicyAllows => "allowed by a resource-based policy",
            Reason::RootUser => "the account root user has full access",
            Reason::ExplicitDeny(kind) => {
                return format!("with an explicit deny in {}", with_article(*kind)).into();
            }
            Reason::NoScpAllow { level } => {
                return format!("no service control policy allows the action (level {level})")
                    .into();
            }
            Reason::NoRcpAllow { level } => {
                return format!("no resource control policy allows the action (level {level})")
                    .into();
            }
            Reason::NoIdentityAllow => "no identity-based policy allows the action",
            Reason::NoBoundaryAllow => "no permissions boundary allows the action",
            Reason::NoSessionAllow => "no session policy allows the action",
            Reason::NoResourceAllow => "no resource-based policy allows the action",
        };
        Cow::Borrowed(fixed)
    }
}

impl Reason {
    /// The kind of policy whose missing allow decided an implicit deny
    /// (`NoScpAllow` → SCP, ...); `None` for allows and explicit denies.
    pub fn not_allowed_by(&self) -> Option<PolicyKind> {
        match self {
            Reason::NoScpAllow { .. } => Some(PolicyKind::Scp),
            Reason::NoRcpAllow { .. } => Some(PolicyKind::Rcp),
            Reason::NoIdentityAllow => Some(PolicyKind::Identity),
            Reason::NoBoundaryAllow => Some(PolicyKind::Boundary),
            Reason::NoSessionAllow => Some(PolicyKind::Session),
            Reason::NoResourceAllow => Some(PolicyKind::Resource),
            Reason::IdentityAllows
            | Reason::ResourcePolicyAllows
            | Reason::RootUser
            | Reason::ExplicitDeny(_) => None,
        }
    }
}

/// A policy kind's name with its article: `an identity-based policy`,
/// `a service control policy`.
pub fn with_article(kind: PolicyKind) -> String {
    let name = kind.as_str();
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {name}")
}

/// A statement that decided the outcome.
#[derive(Debug, Clone, Copy)]
pub struct MatchedStatement<'p> {
    pub policy: &'p CompiledPolicy,
    pub index: usize,
    pub statement: &'p Statement,
}

impl MatchedStatement<'_> {
    /// The policy's id.
    pub fn policy_id(&self) -> &str {
        self.policy.id()
    }

    /// The policy's kind.
    pub fn kind(&self) -> PolicyKind {
        self.policy.kind()
    }

    /// The statement's Sid, if any.
    pub fn sid(&self) -> Option<&str> {
        self.statement.sid()
    }
}

impl std::fmt::Display for MatchedStatement<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} `{}` statement {}",
            self.kind().short_name(),
            self.policy_id(),
            self.index
        )?;
        if let Some(sid) = self.sid() {
            write!(f, " ({sid})")?;
        }
        Ok(())
    }
}

/// Matched statements kept without allocating: an allow through four SCP
/// levels, identity policies, a boundary and a session policy needs seven.
pub(crate) const MATCHED_INLINE: usize = 8;

/// A decision with its explanation. Borrows from the compiled policies.
#[derive(Debug, Clone)]
pub struct Decision<'p> {
    pub outcome: Outcome,
    pub reason: Reason,
    /// For a deny, every matching deny statement; for an allow, the allow
    /// statements that were needed (one per policy role).
    pub matched: SmallVec<[MatchedStatement<'p>; MATCHED_INLINE]>,
    /// Context keys the evaluated conditions needed but the request lacked.
    pub missing_keys: SmallVec<[&'p str; 4]>,
}
