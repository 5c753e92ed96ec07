//! Decision benches: iamgate at 10, 1,000 and 10,000 identity policies on
//! the allowed, implicitDeny and explicitDeny paths, and the same scenario
//! through the reference engines cedar-policy and regorus, in one binary so
//! that the ratios come from one run.
//!
//! Run with `cargo bench --bench engine`. Bench ids:
//! `engine/{iamgate,iamgate-one-set,cedar,regorus}/{allowed,implicitDeny,explicitDeny}/{10,1000,10000}`.
//!
//! - `iamgate`: the subject's own identity policies (ten; iamgate compiles
//!   one `PolicySet` per principal), looked up by ARN in the snapshot of all
//!   users' sets, plus the SCP level.
//! - `iamgate-one-set`: all `n` policies attached to the subject, one
//!   `PolicySet` (the worst case for the action index).
//! - `cedar`: every statement as a Cedar policy; `Authorizer::is_authorized`.
//! - `regorus`: the statements as Rego data, generic rules, interpreter.
//!
//! Each timed iteration builds the request from strings (context included);
//! the caller (principal) and the compiled policies are prepared once, as in
//! a server. Before timing, every engine must answer every request of
//! [`scenario::checks`] as expected, or the bench aborts with the reason.
//!
//! Outside `cargo bench` (e.g. `cargo test --benches`) only the 10-policy
//! scenario runs, once, as a smoke test of the translations.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::error::Error;
use std::hint::black_box;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use cedar_policy as cedar;
use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use iamgate::engine::{
    Applicable, CompiledPolicy, Context, ContextValue, Outcome, PolicySet, Principal, Request,
    decide,
};
use iamgate::policy::PolicyKind;
use rustc_hash::FxHashMap;

#[path = "support/scenario.rs"]
mod scenario;

use scenario::{CtxValue, Expect, Req, Scenario};

type BoxError = Box<dyn Error>;

const SIZES: [usize; 3] = [10, 1_000, 10_000];

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args();
    let sizes: &[usize] = if full { &SIZES } else { &SIZES[..1] };
    for &n in sizes {
        if let Err(e) = bench_size(&mut c, n) {
            eprintln!("engine bench aborted at {n} policies: {e}");
            std::process::exit(1);
        }
    }
    c.final_summary();
}

// ----------------------------------------------------------------- iamgate

struct Iam {
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
    fn new(s: &Scenario) -> Result<Self, BoxError> {
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

    /// One decision, request and context built from the strings of `r`.
    fn decide(&self, one_set: bool, r: &Req) -> Outcome {
        let mut ctx = Context::new();
        for (k, v) in &r.ctx {
            let v = match v {
                CtxValue::Str(s) | CtxValue::Ip(s) => ContextValue::One(s.clone()),
                CtxValue::List(l) => ContextValue::Many(l.clone()),
            };
            ctx.insert(k, v);
        }
        let identity = if one_set {
            Some(&self.one_set)
        } else {
            self.by_arn
                .get(self.subject.arn())
                .and_then(|&i| self.sets.get(i))
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

// ------------------------------------------------------------------- Cedar

struct Cedar {
    policies: cedar::PolicySet,
    entities: cedar::Entities,
    authorizer: cedar::Authorizer,
    principal: cedar::EntityUid,
    action_type: cedar::EntityTypeName,
    resource_type: cedar::EntityTypeName,
    /// The `forbid ... unless { an SCP allows }` policies: denying through
    /// them alone is an implicit deny.
    level_allow: HashSet<cedar::PolicyId>,
}

impl Cedar {
    /// `reqs`: the requests to be asked, whose actions (with their wildcard
    /// groups as parents) and resources (with their `arn`) become entities.
    fn new(s: &Scenario, reqs: &[Req]) -> Result<Self, BoxError> {
        let mut policies = cedar::PolicySet::new();
        let mut level_allow = HashSet::new();
        for (id, text) in scenario::to_cedar(s) {
            let pid = cedar::PolicyId::new(&id);
            let policy = cedar::Policy::parse(Some(pid.clone()), &text)
                .map_err(|e| format!("Cedar policy {id} does not parse: {e}\n{text}"))?;
            policies.add(policy)?;
            if id.starts_with("level-allow") {
                level_allow.insert(pid);
            }
        }
        let action_type = cedar::EntityTypeName::from_str("Action")?;
        let resource_type = cedar::EntityTypeName::from_str("Resource")?;
        let groups = scenario::action_groups(s);
        let mut entities = Vec::new();
        let actions: BTreeSet<String> =
            reqs.iter().map(|r| r.action.to_ascii_lowercase()).collect();
        for a in actions {
            let parents = groups
                .iter()
                .filter(|g| scenario::glob(g, &a))
                .map(|g| {
                    cedar::EntityUid::from_type_name_and_id(
                        action_type.clone(),
                        cedar::EntityId::new(g),
                    )
                })
                .collect();
            let uid = cedar::EntityUid::from_type_name_and_id(
                action_type.clone(),
                cedar::EntityId::new(a),
            );
            entities.push(cedar::Entity::new_no_attrs(uid, parents));
        }
        let resources: BTreeSet<&str> = reqs.iter().map(|r| r.resource.as_str()).collect();
        for arn in resources {
            let uid = cedar::EntityUid::from_type_name_and_id(
                resource_type.clone(),
                cedar::EntityId::new(arn),
            );
            let attrs = HashMap::from([(
                "arn".to_owned(),
                cedar::RestrictedExpression::new_string(arn.to_owned()),
            )]);
            entities.push(cedar::Entity::new(uid, attrs, HashSet::new())?);
        }
        let subject = s.users.get(s.subject).ok_or("no subject user")?;
        Ok(Self {
            policies,
            entities: cedar::Entities::from_entities(entities, None)?,
            authorizer: cedar::Authorizer::new(),
            principal: cedar::EntityUid::from_type_name_and_id(
                cedar::EntityTypeName::from_str("User")?,
                cedar::EntityId::new(&subject.arn),
            ),
            action_type,
            resource_type,
            level_allow,
        })
    }

    /// One decision and the number of policies that failed to evaluate.
    fn decide(&self, r: &Req) -> Result<(Outcome, usize), BoxError> {
        let pairs = r.ctx.iter().map(|(k, v)| {
            let v = match v {
                CtxValue::Str(s) => cedar::RestrictedExpression::new_string(s.clone()),
                CtxValue::Ip(s) => cedar::RestrictedExpression::new_ip(s),
                CtxValue::List(l) => cedar::RestrictedExpression::new_set(
                    l.iter()
                        .map(|s| cedar::RestrictedExpression::new_string(s.clone())),
                ),
            };
            (k.to_ascii_lowercase(), v)
        });
        let context = cedar::Context::from_pairs(pairs)?;
        let action = cedar::EntityUid::from_type_name_and_id(
            self.action_type.clone(),
            cedar::EntityId::new(r.action.to_ascii_lowercase()),
        );
        let resource = cedar::EntityUid::from_type_name_and_id(
            self.resource_type.clone(),
            cedar::EntityId::new(&r.resource),
        );
        let request = cedar::Request::new(self.principal.clone(), action, resource, context, None)?;
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &self.entities);
        let diagnostics = response.diagnostics();
        let outcome = match response.decision() {
            cedar::Decision::Allow => Outcome::Allowed,
            cedar::Decision::Deny
                if diagnostics
                    .reason()
                    .any(|id| !self.level_allow.contains(id)) =>
            {
                Outcome::ExplicitDeny
            }
            cedar::Decision::Deny => Outcome::ImplicitDeny,
        };
        Ok((outcome, diagnostics.errors().count()))
    }
}

// ----------------------------------------------------------------- regorus

struct Rego {
    engine: regorus::Engine,
    principal: String,
}

impl Rego {
    fn new(s: &Scenario) -> Result<Self, BoxError> {
        let mut engine = regorus::Engine::new();
        engine.add_policy("iam.rego".to_owned(), scenario::REGO_POLICY.to_owned())?;
        engine.add_data(regorus::Value::from(scenario::to_rego_data(s)))?;
        let subject = s.users.get(s.subject).ok_or("no subject user")?;
        Ok(Self {
            engine,
            principal: subject.arn.clone(),
        })
    }

    /// One decision: input built from the strings of `r`, then the rule.
    fn decide(&mut self, r: &Req) -> Result<Outcome, BoxError> {
        use regorus::Value;
        let mut ctx = BTreeMap::new();
        for (k, v) in &r.ctx {
            let v = match v {
                CtxValue::Str(s) | CtxValue::Ip(s) => Value::from(s.as_str()),
                CtxValue::List(l) => Value::from(
                    l.iter()
                        .map(|s| Value::from(s.as_str()))
                        .collect::<Vec<_>>(),
                ),
            };
            ctx.insert(Value::from(k.to_ascii_lowercase()), v);
        }
        let input = BTreeMap::from([
            (
                Value::from("principal"),
                Value::from(self.principal.as_str()),
            ),
            (
                Value::from("action"),
                Value::from(r.action.to_ascii_lowercase()),
            ),
            (Value::from("resource"), Value::from(r.resource.as_str())),
            (Value::from("context"), Value::from(ctx)),
        ]);
        self.engine.set_input(Value::from(input));
        let answer = self.engine.eval_rule(scenario::REGO_RULE.to_owned())?;
        match answer.as_string()?.as_ref() {
            "allowed" => Ok(Outcome::Allowed),
            "implicitDeny" => Ok(Outcome::ImplicitDeny),
            "explicitDeny" => Ok(Outcome::ExplicitDeny),
            other => Err(format!("regorus answered {other:?}").into()),
        }
    }
}

// ------------------------------------------------------------------ checks

fn expect(n: usize, engine: &str, r: &Req, got: Outcome) -> Result<(), BoxError> {
    let want = r.expect.as_str();
    if got.as_str() == want {
        Ok(())
    } else {
        Err(format!(
            "{n} policies, request `{}` ({} on {}): {engine} decides {got}, the scenario expects {want}",
            r.name, r.action, r.resource
        )
        .into())
    }
}

/// Every engine must give the expected outcome for every check request; the
/// one-set variant for the benched ones (more of the others would allow it).
fn verify(
    n: usize,
    iam: &Iam,
    cedar: &Cedar,
    rego: &mut Rego,
    s: &Scenario,
) -> Result<(), BoxError> {
    for r in scenario::checks(s) {
        expect(n, "iamgate", &r, iam.decide(false, &r))?;
        let (got, errors) = cedar.decide(&r)?;
        if errors > 0 {
            return Err(format!(
                "{n} policies, request `{}`: {errors} Cedar policies failed to evaluate",
                r.name
            )
            .into());
        }
        expect(n, "cedar", &r, got)?;
        expect(n, "regorus", &r, rego.decide(&r)?)?;
    }
    for r in scenario::benched(s) {
        expect(n, "iamgate (one set)", &r, iam.decide(true, &r))?;
    }
    Ok(())
}

// ----------------------------------------------------------------- benches

fn bench_size(c: &mut Criterion, n: usize) -> Result<(), BoxError> {
    let s = scenario::generate(n);
    let benched = scenario::benched(&s);
    let order = [Expect::Allowed, Expect::ImplicitDeny, Expect::ExplicitDeny];
    if benched.iter().map(|r| r.expect).ne(order) {
        return Err("the benched requests are not allowed, implicitDeny, explicitDeny".into());
    }
    let iam = Iam::new(&s)?;
    let cedar = Cedar::new(&s, &scenario::checks(&s))?;
    let mut rego = Rego::new(&s)?;
    verify(n, &iam, &cedar, &mut rego, &s)?;
    eprintln!(
        "scenario {n}: {} users, {} identity policies ({} statements; subject has {}), {} SCPs, {} Cedar policies",
        s.users.len(),
        s.identity.len(),
        iam.one_set.statement_count(),
        iam.by_arn
            .get(iam.subject.arn())
            .and_then(|&i| iam.sets.get(i))
            .map_or(0, PolicySet::statement_count),
        s.scps.len(),
        cedar.policies.policies().count(),
    );

    let mut g = c.benchmark_group("engine");
    for r in &benched {
        bench(&mut g, "iamgate", r, n, || iam.decide(false, black_box(r)));
    }
    for r in &benched {
        bench(&mut g, "iamgate-one-set", r, n, || {
            iam.decide(true, black_box(r))
        });
    }
    // The reference engines take milliseconds at 10,000 policies.
    g.sample_size(match n {
        0..=100 => 50,
        101..=1_000 => 20,
        _ => 10,
    });
    for r in &benched {
        bench(&mut g, "cedar", r, n, || cedar.decide(black_box(r)).ok());
    }
    for r in &benched {
        bench(&mut g, "regorus", r, n, || rego.decide(black_box(r)).ok());
    }
    g.finish();
    Ok(())
}

fn bench<O>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    engine: &str,
    r: &Req,
    n: usize,
    mut f: impl FnMut() -> O,
) {
    g.bench_function(format!("{engine}/{}/{n}", r.expect.as_str()), |b| {
        b.iter(&mut f)
    });
}
