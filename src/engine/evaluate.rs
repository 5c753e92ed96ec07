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
//!    both allow. Role trust policies and KMS key policies must allow even
//!    within one account: an identity-based allow counts only where the
//!    trust or key policy allows the caller's account (the page's exception
//!    for these two policy types).

use smallvec::SmallVec;

use crate::engine::compile::{PolicySet, PrincipalMatch, Slot, Twin};
use crate::engine::decision::{Decision, MATCHED_INLINE, MatchedStatement, Outcome, Reason};
use crate::engine::request::{PrincipalKind, Request, ResourcePolicyRule};
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

/// Results of the statements that have copies in the set (see [`Twin`]),
/// so that each copy is evaluated once.
#[derive(Default)]
struct TwinResults(SmallVec<[(Slot, bool); 4]>);

impl TwinResults {
    fn get(&self, slot: Slot) -> Option<bool> {
        self.0.iter().find(|(s, _)| *s == slot).map(|(_, r)| *r)
    }

    fn put(&mut self, slot: Slot, applied: bool) {
        self.0.push((slot, applied));
    }
}

struct Eval<'p, 'r> {
    req: &'r Request<'r>,
    has_boundary: bool,
    missing: MissingKeys<'p>,
}

impl<'p> Eval<'p, '_> {
    /// Collects every matching deny statement of `set`.
    fn denies(&mut self, set: &'p PolicySet, out: &mut Matches<'p>) {
        let req = self.req;
        let has_boundary = self.has_boundary;
        let mut twins = TwinResults::default();
        set.deny
            .candidates(req, &mut self.missing, |cand, known, missing| {
                let Some((policy, stmt)) = set.get(cand.slot) else {
                    return true;
                };
                let applies = match cand.twin {
                    Twin::Of(first) if let Some(r) = twins.get(first) => r,
                    twin => {
                        let r = stmt.applies(req, known, has_boundary, missing).is_some();
                        if twin == Twin::First {
                            twins.put(cand.slot, r);
                        }
                        r
                    }
                };
                if applies {
                    out.push(MatchedStatement {
                        policy,
                        index: cand.slot.statement as usize,
                        statement: stmt,
                    });
                }
                true
            });
    }

    /// The strongest matching allow of `set` (the first one found at that
    /// strength). A copy of a statement already evaluated cannot do better
    /// than its first, so it is skipped.
    fn allow(&mut self, set: &'p PolicySet) -> Option<(MatchedStatement<'p>, PrincipalMatch)> {
        let req = self.req;
        let has_boundary = self.has_boundary;
        let mut best: Option<(MatchedStatement<'p>, PrincipalMatch)> = None;
        let mut twins = TwinResults::default();
        set.allow
            .candidates(req, &mut self.missing, |cand, known, missing| {
                if let Twin::Of(first) = cand.twin
                    && twins.get(first).is_some()
                {
                    return true;
                }
                let Some((policy, stmt)) = set.get(cand.slot) else {
                    return true;
                };
                let how = stmt.applies(req, known, has_boundary, missing);
                if cand.twin == Twin::First {
                    twins.put(cand.slot, how.is_some());
                }
                if let Some(how) = how {
                    if best.as_ref().is_none_or(|(_, b)| how > *b) {
                        best = Some((
                            MatchedStatement {
                                policy,
                                index: cand.slot.statement as usize,
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
    // A service principal, like an anonymous caller, has no account: only
    // a resource-based policy naming it can allow.
    let anonymous = matches!(
        principal.kind(),
        PrincipalKind::Anonymous | PrincipalKind::Service
    );
    let mut ev = Eval {
        req,
        has_boundary: policies.boundary.is_some(),
        missing: MissingKeys::default(),
    };

    // SCPs govern principals of an account; anonymous callers have none,
    // and neither has a web identity federating in (no AWS caller account).
    let outsider = anonymous || principal.kind() == PrincipalKind::WebIdentity;
    let scps = if outsider { None } else { policies.scps };
    let identity = if outsider { None } else { policies.identity };

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
        Ok(false)
    } else {
        caller_allows(&mut ev, policies, identity, role_grant, &mut matched)
    };
    let used_grant = match caller_side {
        Ok(used) => used,
        Err(reason) => return finish(ev, Outcome::ImplicitDeny, reason, Matches::new()),
    };

    // 5. Cross-account, or a role trust or KMS key policy: the resource's
    //    side must allow too.
    let must_allow = cross_account || req.resource_policy_rule() == ResourcePolicyRule::MustAllow;
    if must_allow {
        let Some((m, _)) = resource_allow else {
            return finish(
                ev,
                Outcome::ImplicitDeny,
                Reason::NoResourceAllow,
                Matches::new(),
            );
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
    finish(ev, Outcome::Allowed, reason, matched)
}

fn caller_allows<'p>(
    ev: &mut Eval<'p, '_>,
    policies: &Applicable<'p>,
    identity: Option<&'p PolicySet>,
    role_grant: Option<MatchedStatement<'p>>,
    matched: &mut Matches<'p>,
) -> Result<bool, Reason> {
    // Whether the grant to the session's role stood in for identity.
    let (granted, used_grant) = match identity.and_then(|set| ev.allow(set)) {
        Some((m, _)) => (m, false),
        None => (role_grant.ok_or(Reason::NoIdentityAllow)?, true),
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
    Ok(used_grant)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::engine::compile::CompiledPolicy;
    use crate::engine::err::EngineError;
    use crate::engine::request::{Context, Principal};
    use crate::policy::PolicyKind;

    fn policy(id: &str, doc: serde_json::Value) -> Result<Arc<CompiledPolicy>, EngineError> {
        Ok(Arc::new(CompiledPolicy::from_json(
            id,
            PolicyKind::Identity,
            &doc,
        )?))
    }

    fn guardrail(sid: &str, cidr: &str) -> serde_json::Value {
        json!({"Sid": sid, "Effect": "Deny", "Action": "ec2:*", "Resource": "*",
               "Condition": {"NotIpAddress": {"aws:SourceIp": cidr}}})
    }

    /// A trust policy that names the account lets the identity policy
    /// decide, and both statements are reported; one that names someone
    /// else leaves the identity allow without effect (issue 13).
    #[test]
    fn trust_policies_must_allow_within_the_account() -> Result<(), EngineError> {
        let role = "arn:aws:iam::111122223333:role/deploy";
        let identity = PolicySet::new(vec![policy(
            "id",
            json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["sts:AssumeRole", "sqs:SendMessage"], "Resource": "*"}]}),
        )?]);
        let trust = |who: &str| -> Result<PolicySet, EngineError> {
            Ok(PolicySet::new(vec![Arc::new(CompiledPolicy::from_json(
                "trust",
                PolicyKind::Resource,
                &json!({"Version": "2012-10-17", "Statement": [{"Sid": "Trust", "Effect": "Allow",
                    "Principal": {"AWS": who}, "Action": ["sts:AssumeRole", "sqs:SendMessage"],
                    "Resource": "*"}]}),
            )?)]))
        };
        let caller = Principal::parse("arn:aws:iam::111122223333:user/alice")?;
        let ctx = Context::new();
        let account = trust("arn:aws:iam::111122223333:root")?;
        let other = trust("arn:aws:iam::111122223333:user/bob")?;
        let run = |resource: &PolicySet, action: &str| {
            let applicable = Applicable {
                identity: Some(&identity),
                resource: Some(resource),
                ..Applicable::default()
            };
            let req = Request::new(&caller, action, role, &ctx);
            let d = decide(&applicable, &req);
            let ids: Vec<String> = d.matched.iter().map(|m| m.policy_id().to_owned()).collect();
            (d.outcome, d.reason, ids)
        };
        assert_eq!(
            run(&account, "sts:AssumeRole"),
            (
                Outcome::Allowed,
                Reason::IdentityAllows,
                vec!["id".to_owned(), "trust".to_owned()]
            )
        );
        assert_eq!(
            run(&other, "STS:AssumeRole"),
            (Outcome::ImplicitDeny, Reason::NoResourceAllow, vec![])
        );
        // An ordinary action under the same kind of policy: identity suffices.
        assert_eq!(
            run(&other, "sqs:SendMessage"),
            (
                Outcome::Allowed,
                Reason::IdentityAllows,
                vec!["id".to_owned()]
            )
        );
        Ok(())
    }

    /// Copies of a statement (same rule, other Sids) are evaluated once and
    /// all reported, in policy order; a near copy is not a copy.
    #[test]
    fn statement_copies_are_all_reported() -> Result<(), EngineError> {
        let allow = json!({"Effect": "Allow", "Action": "ec2:StopInstances", "Resource": "*"});
        let set = PolicySet::new(vec![
            policy(
                "a",
                json!({"Version": "2012-10-17",
                "Statement": [allow.clone(), guardrail("A", "10.0.0.0/8")]}),
            )?,
            policy(
                "b",
                json!({"Version": "2012-10-17",
                "Statement": [guardrail("B", "10.0.0.0/8"), allow]}),
            )?,
            policy(
                "c",
                json!({"Version": "2012-10-17",
                "Statement": [guardrail("C", "10.0.0.0/16")]}),
            )?,
            policy(
                "d",
                json!({"Version": "2012-10-17",
                "Statement": [guardrail("D", "10.0.0.0/8")]}),
            )?,
        ]);
        let caller = Principal::parse("arn:aws:iam::111122223333:user/alice")?;
        let applicable = Applicable {
            identity: Some(&set),
            ..Applicable::default()
        };
        let decide_from = |ip: &str| {
            let ctx = Context::new().with("aws:SourceIp", ip);
            let req = Request::new(&caller, "ec2:StopInstances", "*", &ctx);
            let d = decide(&applicable, &req);
            let matched: Vec<(String, Option<String>)> = d
                .matched
                .iter()
                .map(|m| (m.policy_id().to_owned(), m.sid().map(str::to_owned)))
                .collect();
            (d.outcome, matched)
        };
        let named = |ids: &[(&str, Option<&str>)]| -> Vec<(String, Option<String>)> {
            ids.iter()
                .map(|(p, s)| ((*p).to_owned(), s.map(str::to_owned)))
                .collect()
        };
        // Outside every range: the three copies and the near copy deny.
        assert_eq!(
            decide_from("192.0.2.1"),
            (
                Outcome::ExplicitDeny,
                named(&[
                    ("a", Some("A")),
                    ("b", Some("B")),
                    ("c", Some("C")),
                    ("d", Some("D"))
                ])
            )
        );
        // Inside 10/8 but outside 10.0/16: only the near copy denies.
        assert_eq!(
            decide_from("10.1.2.3"),
            (Outcome::ExplicitDeny, named(&[("c", Some("C"))]))
        );
        // Inside both: the first of the two identical allows decides.
        assert_eq!(
            decide_from("10.0.2.3"),
            (Outcome::Allowed, named(&[("a", None)]))
        );
        Ok(())
    }
}
