//! The reference evaluator: the meaning of [`decide`](crate::engine::decide)
//! without any of its shortcuts. Every statement of every applicable policy
//! is checked, in document order, with no action index, no condition index,
//! no shared result for copied statements and no early stop; the flow is the
//! IAM User Guide's "Policy evaluation logic" as `engine::evaluate`
//! documents it.
//!
//! It exists so that tests can compare the indexed engine with it on
//! generated policy sets and requests: an index may only make a decision
//! cheaper, never different. It is not used on the request path.
//!
//! What both evaluators share is the meaning of one statement
//! (`Statement::applies`: action, resource, principal, conditions).

use crate::engine::compile::{PolicySet, PrincipalMatch};
use crate::engine::decision::{Decision, MatchedStatement, Outcome, Reason};
use crate::engine::evaluate::Applicable;
use crate::engine::request::{PrincipalKind, Request, ResourcePolicyRule};
use crate::policy::Effect;
use crate::policy::variables::MissingKeys;

/// Every statement of `set` with effect `effect` that applies to `req`,
/// in policy order then statement order, with how its principal matched.
fn applying<'p>(
    set: &'p PolicySet,
    effect: Effect,
    req: &Request<'_>,
    has_boundary: bool,
    missing: &mut MissingKeys<'p>,
) -> Vec<(MatchedStatement<'p>, PrincipalMatch)> {
    let mut out = Vec::new();
    for policy in set.policies() {
        for (index, statement) in policy.statements().iter().enumerate() {
            if statement.effect() != effect {
                continue;
            }
            if let Some(how) = statement.applies(req, false, has_boundary, missing) {
                let m = MatchedStatement {
                    policy,
                    index,
                    statement,
                };
                out.push((m, how));
            }
        }
    }
    out
}

/// The allow of `set` that matched the caller most directly (the first of
/// them in policy order), if any allow applies.
fn best_allow<'p>(
    set: &'p PolicySet,
    req: &Request<'_>,
    has_boundary: bool,
    missing: &mut MissingKeys<'p>,
) -> Option<(MatchedStatement<'p>, PrincipalMatch)> {
    let all = applying(set, Effect::Allow, req, has_boundary, missing);
    let strongest = all.iter().map(|(_, how)| *how).max()?;
    all.into_iter().find(|(_, how)| *how == strongest)
}

/// Decides `req` against `policies` by checking every statement.
///
/// Outcome and reason are exactly those of [`crate::engine::decide`]. For
/// an explicit deny, `matched` holds every applying deny statement in
/// evaluation order (policy set, then policy, then statement); for an allow,
/// one statement per policy role, the most direct one (the indexed engine
/// may report another statement of the same strength).
pub fn decide<'p>(policies: &Applicable<'p>, req: &Request<'_>) -> Decision<'p> {
    let principal = req.principal();
    // A service principal, like an anonymous caller, has no account: only
    // a resource-based policy naming it can allow.
    let anonymous = matches!(
        principal.kind(),
        PrincipalKind::Anonymous | PrincipalKind::Service
    );
    let has_boundary = policies.boundary.is_some();
    let mut missing = MissingKeys::default();
    // Neither an anonymous caller nor a web identity federating in is a
    // principal of an account: no SCPs, no identity policies.
    let outsider = anonymous || principal.kind() == PrincipalKind::WebIdentity;
    let scps: &[PolicySet] = if outsider {
        &[]
    } else {
        policies.scps.unwrap_or_default()
    };
    let rcps: &[PolicySet] = policies.rcps.unwrap_or_default();
    let identity = if outsider { None } else { policies.identity };
    let answer =
        |outcome, reason, matched: Vec<MatchedStatement<'p>>, missing: MissingKeys<'p>| Decision {
            outcome,
            reason,
            matched: matched.into_iter().collect(),
            missing_keys: missing.keys().iter().copied().collect(),
        };

    // 1. An explicit deny in any applicable policy.
    let mut sets: Vec<&'p PolicySet> = [
        identity,
        policies.boundary,
        policies.session,
        policies.resource,
    ]
    .into_iter()
    .flatten()
    .collect();
    sets.extend(scps.iter());
    sets.extend(rcps.iter());
    let mut denies = Vec::new();
    for set in sets {
        for (m, _) in applying(set, Effect::Deny, req, has_boundary, &mut missing) {
            denies.push(m);
        }
    }
    if let Some(first) = denies.first() {
        let reason = Reason::ExplicitDeny(first.kind());
        return answer(Outcome::ExplicitDeny, reason, denies, missing);
    }

    // 2. Every SCP level of the caller's account, every RCP level of the
    //    resource's account.
    let mut matched = Vec::new();
    for (level, set) in scps.iter().enumerate() {
        match best_allow(set, req, has_boundary, &mut missing) {
            Some((m, _)) => matched.push(m),
            None => {
                let reason = Reason::NoScpAllow { level };
                return answer(Outcome::ImplicitDeny, reason, Vec::new(), missing);
            }
        }
    }
    for (level, set) in rcps.iter().enumerate() {
        match best_allow(set, req, has_boundary, &mut missing) {
            Some((m, _)) => matched.push(m),
            None => {
                let reason = Reason::NoRcpAllow { level };
                return answer(Outcome::ImplicitDeny, reason, Vec::new(), missing);
            }
        }
    }

    // 3. The resource-based policy: for an anonymous caller the only
    //    possible allow; in the same account, naming the caller suffices.
    let resource_allow = policies
        .resource
        .and_then(|set| best_allow(set, req, has_boundary, &mut missing));
    if anonymous {
        return match resource_allow {
            Some((m, PrincipalMatch::Direct)) => {
                matched.push(m);
                answer(
                    Outcome::Allowed,
                    Reason::ResourcePolicyAllows,
                    matched,
                    missing,
                )
            }
            _ => answer(
                Outcome::ImplicitDeny,
                Reason::NoResourceAllow,
                Vec::new(),
                missing,
            ),
        };
    }
    let cross_account = req
        .resource_account()
        .is_some_and(|acct| acct != principal.account());
    if !cross_account && let Some((m, PrincipalMatch::Direct)) = resource_allow {
        matched.push(m);
        return answer(
            Outcome::Allowed,
            Reason::ResourcePolicyAllows,
            matched,
            missing,
        );
    }

    // 4. The caller's side: an identity-based allow (or, in the same
    //    account, a resource policy's grant to the session's role), within
    //    the permissions boundary and the session policy. The root user of
    //    the account needs no identity-based allow.
    let root = principal.kind() == PrincipalKind::Root;
    let mut used_grant = false;
    if !root {
        let identity_allow =
            identity.and_then(|set| best_allow(set, req, has_boundary, &mut missing));
        let granted = match (identity_allow, resource_allow) {
            (Some((m, _)), _) => m,
            (None, Some((m, PrincipalMatch::Role))) if !cross_account => {
                used_grant = true;
                m
            }
            (None, _) => {
                let reason = Reason::NoIdentityAllow;
                return answer(Outcome::ImplicitDeny, reason, Vec::new(), missing);
            }
        };
        matched.push(granted);
        let limits = [
            (policies.boundary, Reason::NoBoundaryAllow),
            (policies.session, Reason::NoSessionAllow),
        ];
        for (set, reason) in limits {
            let Some(set) = set else { continue };
            match best_allow(set, req, has_boundary, &mut missing) {
                Some((m, _)) => matched.push(m),
                None => return answer(Outcome::ImplicitDeny, reason, Vec::new(), missing),
            }
        }
    }

    // 5. Cross-account, a role trust policy or a KMS key policy: the
    //    resource-based policy must allow as well.
    if cross_account || req.resource_policy_rule() == ResourcePolicyRule::MustAllow {
        let Some((m, _)) = resource_allow else {
            let reason = Reason::NoResourceAllow;
            return answer(Outcome::ImplicitDeny, reason, Vec::new(), missing);
        };
        if !used_grant {
            matched.push(m);
        }
    }
    let reason = if root && !cross_account {
        Reason::RootUser
    } else {
        Reason::IdentityAllows
    };
    answer(Outcome::Allowed, reason, matched, missing)
}
