//! The IAM evaluation flow, as the IAM User Guide's "Policy evaluation
//! logic" pages describe it:
//!
//! 1. An explicit deny in any applicable policy denies.
//! 2. Every level of the caller account's SCPs, and of the resource
//!    account's RCPs, must allow.
//! 3. Same account: a resource-based policy that names the caller (user,
//!    session, or everyone) allows on its own; one that names the role of a
//!    role session counts as an identity-based allow; otherwise the
//!    identity-based policies must allow.
//! 4. The permissions boundary and the session policy, when present, must
//!    also allow what identity-based policies (or a role grant) allow.
//! 5. Cross-account: the caller's side and the resource-based policy must
//!    both allow.

use smallvec::SmallVec;

use crate::engine::compile::{PolicySet, PrincipalMatch};
use crate::engine::decision::{Decision, MATCHED_INLINE, MatchedStatement, Outcome, Reason};
use crate::engine::request::{PrincipalKind, Request};
use crate::policy::variables::MissingKeys;

/// The policies that apply to one request, by their role in the flow.
/// `None` means the policy type does not apply (no boundary, no session
/// policy, account not in an organization, ...).
#[derive(Debug, Default, Clone, Copy)]
pub struct Applicable<'p> {
    pub identity: Option<&'p PolicySet>,
    pub boundary: Option<&'p PolicySet>,
    pub session: Option<&'p PolicySet>,
    pub resource: Option<&'p PolicySet>,
    /// SCP levels of the caller's account: root, each OU, the account.
    pub scps: Option<&'p [PolicySet]>,
    /// RCP levels of the resource's account.
    pub rcps: Option<&'p [PolicySet]>,
}

type Matches<'p> = SmallVec<[MatchedStatement<'p>; MATCHED_INLINE]>;

struct Eval<'p, 'r> {
    req: &'r Request<'r>,
    has_boundary: bool,
    missing: MissingKeys<'p>,
}

impl<'p> Eval<'p, '_> {
    /// Collects every matching deny statement of `set`.
    fn denies(&mut self, set: &'p PolicySet, out: &mut Matches<'p>) {
        let action = self.req.action();
        set.deny.candidates(action, |slot, known| {
            if let Some((policy, stmt)) = set.get(slot)
                && stmt
                    .applies(self.req, known, self.has_boundary, &mut self.missing)
                    .is_some()
            {
                out.push(MatchedStatement {
                    policy,
                    index: slot.statement as usize,
                    statement: stmt,
                });
            }
            true
        });
    }

    /// The strongest matching allow of `set` (the first one found at that
    /// strength).
    fn allow(&mut self, set: &'p PolicySet) -> Option<(MatchedStatement<'p>, PrincipalMatch)> {
        let action = self.req.action();
        let mut best: Option<(MatchedStatement<'p>, PrincipalMatch)> = None;
        set.allow.candidates(action, |slot, known| {
            if let Some((policy, stmt)) = set.get(slot)
                && let Some(how) =
                    stmt.applies(self.req, known, self.has_boundary, &mut self.missing)
            {
                if best.as_ref().is_none_or(|(_, b)| how > *b) {
                    best = Some((
                        MatchedStatement {
                            policy,
                            index: slot.statement as usize,
                            statement: stmt,
                        },
                        how,
                    ));
                }
                return how != PrincipalMatch::Direct;
            }
            true
        });
        best
    }
}

/// Decides one request against the applicable policies.
pub fn decide<'p>(policies: &Applicable<'p>, req: &Request<'_>) -> Decision<'p> {
    let principal = req.principal();
    let anonymous = principal.kind() == PrincipalKind::Anonymous;
    let mut ev = Eval {
        req,
        has_boundary: policies.boundary.is_some(),
        missing: MissingKeys::default(),
    };

    // SCPs govern principals of an account; anonymous callers have none.
    let scps = if anonymous { None } else { policies.scps };
    let identity = if anonymous { None } else { policies.identity };

    // 1. Explicit deny anywhere.
    let mut denies = Matches::new();
    let singles = [
        identity,
        policies.boundary,
        policies.session,
        policies.resource,
    ];
    for set in singles.into_iter().flatten() {
        ev.denies(set, &mut denies);
    }
    for level in scps.unwrap_or_default() {
        ev.denies(level, &mut denies);
    }
    for level in policies.rcps.unwrap_or_default() {
        ev.denies(level, &mut denies);
    }
    if let Some(first) = denies.first() {
        let kind = first.kind();
        return finish(
            ev,
            Outcome::ExplicitDeny,
            Reason::ExplicitDeny(kind),
            denies,
        );
    }

    let mut matched = Matches::new();
    // 2. Organization guardrails, level by level.
    for (level, set) in scps.unwrap_or_default().iter().enumerate() {
        match ev.allow(set) {
            Some((m, _)) => matched.push(m),
            None => {
                return finish(
                    ev,
                    Outcome::ImplicitDeny,
                    Reason::NoScpAllow { level },
                    Matches::new(),
                );
            }
        }
    }
    for (level, set) in policies.rcps.unwrap_or_default().iter().enumerate() {
        match ev.allow(set) {
            Some((m, _)) => matched.push(m),
            None => {
                return finish(
                    ev,
                    Outcome::ImplicitDeny,
                    Reason::NoRcpAllow { level },
                    Matches::new(),
                );
            }
        }
    }

    // 3. Resource-based policy.
    let resource_allow = policies.resource.and_then(|set| ev.allow(set));
    if anonymous {
        return match resource_allow {
            Some((m, PrincipalMatch::Direct)) => {
                matched.push(m);
                finish(ev, Outcome::Allowed, Reason::ResourcePolicyAllows, matched)
            }
            _ => finish(
                ev,
                Outcome::ImplicitDeny,
                Reason::NoResourceAllow,
                Matches::new(),
            ),
        };
    }
    let cross_account = req
        .resource_account()
        .is_some_and(|acct| acct != principal.account());
    if !cross_account && let Some((m, PrincipalMatch::Direct)) = resource_allow {
        matched.push(m);
        return finish(ev, Outcome::Allowed, Reason::ResourcePolicyAllows, matched);
    }

    // 4. The caller's side: identity (or a grant to the session's role),
    //    within the boundary and the session policy.
    let root = principal.kind() == PrincipalKind::Root;
    let role_grant = match resource_allow {
        Some((m, PrincipalMatch::Role)) if !cross_account => Some(m),
        _ => None,
    };
    let caller_side = if root {
        Ok(())
    } else {
        caller_allows(&mut ev, policies, identity, role_grant, &mut matched)
    };
    if let Err(reason) = caller_side {
        return finish(ev, Outcome::ImplicitDeny, reason, Matches::new());
    }

    // 5. Cross-account: the resource's side must allow too.
    if cross_account {
        return match resource_allow {
            Some((m, _)) => {
                matched.push(m);
                finish(ev, Outcome::Allowed, Reason::IdentityAllows, matched)
            }
            None => finish(
                ev,
                Outcome::ImplicitDeny,
                Reason::NoResourceAllow,
                Matches::new(),
            ),
        };
    }
    let reason = if root {
        Reason::RootUser
    } else {
        Reason::IdentityAllows
    };
    finish(ev, Outcome::Allowed, reason, matched)
}

fn caller_allows<'p>(
    ev: &mut Eval<'p, '_>,
    policies: &Applicable<'p>,
    identity: Option<&'p PolicySet>,
    role_grant: Option<MatchedStatement<'p>>,
    matched: &mut Matches<'p>,
) -> Result<(), Reason> {
    let granted = match identity.and_then(|set| ev.allow(set)) {
        Some((m, _)) => m,
        None => role_grant.ok_or(Reason::NoIdentityAllow)?,
    };
    matched.push(granted);
    if let Some(set) = policies.boundary {
        let (m, _) = ev.allow(set).ok_or(Reason::NoBoundaryAllow)?;
        matched.push(m);
    }
    if let Some(set) = policies.session {
        let (m, _) = ev.allow(set).ok_or(Reason::NoSessionAllow)?;
        matched.push(m);
    }
    Ok(())
}

fn finish<'p>(
    ev: Eval<'p, '_>,
    outcome: Outcome,
    reason: Reason,
    matched: Matches<'p>,
) -> Decision<'p> {
    Decision {
        outcome,
        reason,
        matched,
        missing_keys: ev.missing.keys().iter().copied().collect(),
    }
}
