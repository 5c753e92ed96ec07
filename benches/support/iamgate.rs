//! iamgate on the benchmark scenario (`scenario.rs`), as a server holds it:
//! one compiled identity `PolicySet` per user, found by the caller's ARN in
//! a hash map (the snapshot's principal lookup), plus the SCP level; and,
//! for the worst case, all `n` identity policies in one set attached to the
//! subject. Shared by `benches/engine.rs` and the comparison crate
//! (`benches/compare`), so both time the same iamgate work.

use std::error::Error;
use std::sync::Arc;

use iamgate::engine::{
    Applicable, CompiledPolicy, Context, ContextValue, Outcome, PolicySet, Principal, Request,
    decide,
};
use iamgate::policy::PolicyKind;
use rustc_hash::FxHashMap;

use super::scenario::{self, CtxValue, Req, Scenario};

type BoxError = Box<dyn Error>;

/// Which identity policies the subject has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// Its own ten, looked up by ARN among every user's sets.
    PerPrincipal,
    /// All `n` of the scenario, in one set.
    OneSet,
}

pub struct Iam {
    /// One identity set per user, as the snapshot holds them.
    sets: Vec<PolicySet>,
    by_arn: FxHashMap<Box<str>, usize>,
    /// All `n` identity policies in one set.
    one_set: PolicySet,
    scps: Vec<PolicySet>,
    /// EC2 has no resource-based policies: an empty set, as a front-end
    /// would pass when the resource has none.
    resource: PolicySet,
    subject: Principal,
}

impl Iam {
    pub fn new(s: &Scenario) -> Result<Self, BoxError> {
        let compile = |p: &scenario::Policy, kind| {
            CompiledPolicy::from_json(p.id.as_str(), kind, &scenario::iam_json(p)).map(Arc::new)
        };
        let identity = s
            .identity
            .iter()
            .map(|p| compile(p, PolicyKind::Identity))
            .collect::<Result<Vec<_>, _>>()?;
        let scp_level = s
            .scps
            .iter()
            .map(|p| compile(p, PolicyKind::Scp))
            .collect::<Result<Vec<_>, _>>()?;
        let sets = s
            .users
            .iter()
            .map(|u| {
                PolicySet::new(
                    identity
                        .get(u.policies.clone())
                        .unwrap_or_default()
                        .to_vec(),
                )
            })
            .collect();
        let by_arn = s
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.arn.as_str().into(), i))
            .collect();
        let user = s.users.get(s.subject).ok_or("no subject user")?;
        Ok(Self {
            sets,
            by_arn,
            one_set: PolicySet::new(identity),
            scps: vec![PolicySet::new(scp_level)],
            resource: PolicySet::new(Vec::new()),
            subject: Principal::parse(&user.arn)?.with_tags([("team", user.team)]),
        })
    }

    /// Statements in all `n` identity policies.
    pub fn statement_count(&self) -> usize {
        self.one_set.statement_count()
    }

    /// Statements in the subject's own identity policies.
    pub fn subject_statement_count(&self) -> usize {
        self.own_set().map_or(0, PolicySet::statement_count)
    }

    fn own_set(&self) -> Option<&PolicySet> {
        self.by_arn
            .get(self.subject.arn())
            .and_then(|&i| self.sets.get(i))
    }

    /// One decision, request and context built from the strings of `r`.
    pub fn decide(&self, attach: Attach, r: &Req) -> Outcome {
        let mut ctx = Context::new();
        for (k, v) in &r.ctx {
            let v = match v {
                CtxValue::Str(s) | CtxValue::Ip(s) => ContextValue::One(s.clone()),
                CtxValue::List(l) => ContextValue::Many(l.clone()),
            };
            ctx.insert(k, v);
        }
        let identity = match attach {
            Attach::PerPrincipal => self.own_set(),
            Attach::OneSet => Some(&self.one_set),
        };
        let policies = Applicable {
            identity,
            boundary: None,
            session: None,
            resource: Some(&self.resource),
            scps: Some(&self.scps),
            rcps: None,
        };
        let req = Request::new(&self.subject, &r.action, &r.resource, &ctx);
        decide(&policies, &req).outcome
    }
}
