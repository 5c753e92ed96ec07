//! The scenario in Cedar: every IAM statement as a Cedar policy scoped to
//! the principal it is attached to, the SCP level as `forbid` policies, and
//! an adapter that decides with `Authorizer::is_authorized`.
//!
//! Like iamgate, the adapter holds one `PolicySet` per principal (its own
//! policies and the SCP level) in a hash map keyed by ARN, found per
//! request; and, for the worst case, one set with every identity policy
//! attached to the subject.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::str::FromStr;

use cedar_policy as cedar;
use iamgate::engine::Outcome;
use rustc_hash::FxHashMap;

use crate::iam::Attach;
use crate::scenario::{Cond, CtxValue, Effect, Op, Policy, Req, Scenario, Stmt, User};
use crate::{BoxError, glob, has_wildcard, substitute};

/// Every wildcard action pattern (lower-cased) other than `*`: the Cedar
/// action groups.
fn action_groups(s: &Scenario) -> BTreeSet<String> {
    s.identity
        .iter()
        .chain(&s.scps)
        .flat_map(|p| &p.stmts)
        .flat_map(|st| &st.actions)
        .filter(|a| has_wildcard(a) && *a != "*")
        .map(|a| a.to_ascii_lowercase())
        .collect()
}

fn cedar_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn cedar_actions(actions: &[String]) -> String {
    let list: Vec<String> = actions
        .iter()
        .map(|a| format!("Action::{}", cedar_str(&a.to_ascii_lowercase())))
        .collect();
    format!("[{}]", list.join(", "))
}

fn cedar_resource(st: &Stmt, user: Option<&User>) -> Option<String> {
    if st.resources.iter().any(|r| r == "*") {
        return None;
    }
    let alts: Vec<String> = st
        .resources
        .iter()
        .map(|r| {
            let r = substitute(r, user);
            if has_wildcard(&r) {
                format!("resource.arn like {}", cedar_str(&r))
            } else {
                format!("resource.arn == {}", cedar_str(&r))
            }
        })
        .collect();
    Some(format!("({})", alts.join(" || ")))
}

fn cedar_cond(c: &Cond) -> String {
    let key = cedar_str(&c.key.to_ascii_lowercase());
    let has = format!("context has {key}");
    let val = format!("context[{key}]");
    let set = |vals: &[String]| {
        let v: Vec<String> = vals.iter().map(|v| cedar_str(v)).collect();
        format!("[{}]", v.join(", "))
    };
    let any = |f: &dyn Fn(&str) -> String| {
        let alts: Vec<String> = c.values.iter().map(|v| f(v)).collect();
        format!("({has} && ({}))", alts.join(" || "))
    };
    match c.op {
        Op::StringEquals => format!("({has} && {}.contains({val}))", set(&c.values)),
        Op::StringNotEquals => format!("!({has} && {}.contains({val}))", set(&c.values)),
        Op::StringLike => any(&|v| format!("{val} like {}", cedar_str(v))),
        Op::StringNotLike => format!("!{}", any(&|v| format!("{val} like {}", cedar_str(v)))),
        Op::IpAddress => any(&|v| format!("{val}.isInRange(ip({}))", cedar_str(v))),
        Op::NotIpAddress => format!(
            "!{}",
            any(&|v| format!("{val}.isInRange(ip({}))", cedar_str(v)))
        ),
        Op::ForAllValuesStringEquals => {
            format!("(!({has}) || {}.containsAll({val}))", set(&c.values))
        }
    }
}

fn cedar_body(st: &Stmt, user: Option<&User>) -> Vec<String> {
    let mut parts = Vec::new();
    if st.not_action {
        parts.push(format!("!(action in {})", cedar_actions(&st.actions)));
    }
    parts.extend(cedar_resource(st, user));
    parts.extend(st.conds.iter().map(cedar_cond));
    parts
}

/// Identity policy `p` attached to `user`, as Cedar policies `(id, text)`:
/// one per IAM statement, scoped to the user, its policy variables
/// resolved (Cedar has no string concatenation).
pub fn identity_policies(p: &Policy, user: &User) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(p.stmts.len());
    for (i, st) in p.stmts.iter().enumerate() {
        let head = if st.effect == Effect::Allow {
            "permit"
        } else {
            "forbid"
        };
        let action = if st.not_action || st.actions.iter().any(|a| a == "*") {
            "action".to_owned()
        } else {
            format!("action in {}", cedar_actions(&st.actions))
        };
        let mut text = format!(
            "{head} (principal == User::{}, {action}, resource)",
            cedar_str(&user.arn)
        );
        let body = cedar_body(st, Some(user));
        if !body.is_empty() {
            let _ = write!(text, " when {{ {} }}", body.join(" && "));
        }
        text.push(';');
        out.push((format!("{}#{i}", p.id), text));
    }
    out
}

/// The SCP level as Cedar policies `(id, text)`: each Deny statement a
/// `forbid`, and the level's allow requirement one `forbid ... unless { any
/// SCP allow matches }` whose id starts with `level-allow` (a deny by it
/// alone is an implicit deny in IAM terms).
pub fn scp_policies(s: &Scenario) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut level_allow = Vec::new();
    for p in &s.scps {
        for (i, st) in p.stmts.iter().enumerate() {
            let mut body = cedar_body(st, None);
            if !st.not_action && !st.actions.iter().any(|a| a == "*") {
                body.insert(0, format!("action in {}", cedar_actions(&st.actions)));
            }
            let expr = if body.is_empty() {
                "true".to_owned()
            } else {
                format!("({})", body.join(" && "))
            };
            match st.effect {
                Effect::Allow => level_allow.push(expr),
                Effect::Deny => out.push((
                    format!("scp:{}#{i}", p.id),
                    format!("forbid (principal, action, resource) when {{ {expr} }};"),
                )),
            }
        }
    }
    let allow = if level_allow.is_empty() {
        "false".to_owned()
    } else {
        level_allow.join(" || ")
    };
    out.push((
        "level-allow:scp0".to_owned(),
        format!("forbid (principal, action, resource) unless {{ {allow} }};"),
    ));
    out
}

fn parse(id: &str, text: &str) -> Result<cedar::Policy, BoxError> {
    cedar::Policy::parse(Some(cedar::PolicyId::new(id)), text)
        .map_err(|e| format!("Cedar policy {id} does not parse: {e}\n{text}").into())
}

/// A policy set of the SCP level and the identity policies `attached`.
fn policy_set<'a>(
    scps: &[cedar::Policy],
    attached: impl IntoIterator<Item = (&'a Policy, &'a User)>,
) -> Result<cedar::PolicySet, BoxError> {
    let mut set = cedar::PolicySet::new();
    for p in scps {
        set.add(p.clone())?;
    }
    for (p, user) in attached {
        for (id, text) in identity_policies(p, user) {
            set.add(parse(&id, &text)?)?;
        }
    }
    Ok(set)
}

pub struct Cedar {
    /// Each user's own policies and the SCP level, by ARN.
    by_arn: FxHashMap<Box<str>, cedar::PolicySet>,
    /// Every identity policy attached to the subject, and the SCP level.
    one_set: cedar::PolicySet,
    entities: cedar::Entities,
    authorizer: cedar::Authorizer,
    subject_arn: String,
    principal: cedar::EntityUid,
    action_type: cedar::EntityTypeName,
    resource_type: cedar::EntityTypeName,
    /// The `forbid ... unless { an SCP allows }` policy: denying through
    /// it alone is an implicit deny.
    level_allow: HashSet<cedar::PolicyId>,
}

impl Cedar {
    /// `reqs`: the requests to be asked, whose actions (with their wildcard
    /// groups as parents) and resources (with their `arn`) become entities.
    pub fn new(s: &Scenario, reqs: &[Req]) -> Result<Self, BoxError> {
        let mut scps = Vec::new();
        let mut level_allow = HashSet::new();
        for (id, text) in scp_policies(s) {
            let policy = parse(&id, &text)?;
            if id.starts_with("level-allow") {
                level_allow.insert(policy.id().clone());
            }
            scps.push(policy);
        }
        let mut by_arn = FxHashMap::default();
        for user in &s.users {
            let own = s.identity.get(user.policies.clone()).unwrap_or_default();
            let set = policy_set(&scps, own.iter().map(|p| (p, user)))?;
            by_arn.insert(user.arn.as_str().into(), set);
        }
        let subject = s.users.get(s.subject).ok_or("no subject user")?;
        let one_set = policy_set(&scps, s.identity.iter().map(|p| (p, subject)))?;

        let action_type = cedar::EntityTypeName::from_str("Action")?;
        let resource_type = cedar::EntityTypeName::from_str("Resource")?;
        let groups = action_groups(s);
        let mut entities = Vec::new();
        let actions: BTreeSet<String> =
            reqs.iter().map(|r| r.action.to_ascii_lowercase()).collect();
        for a in actions {
            let parents = groups
                .iter()
                .filter(|g| glob(g, &a))
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
        Ok(Self {
            by_arn,
            one_set,
            entities: cedar::Entities::from_entities(entities, None)?,
            authorizer: cedar::Authorizer::new(),
            subject_arn: subject.arn.clone(),
            principal: cedar::EntityUid::from_type_name_and_id(
                cedar::EntityTypeName::from_str("User")?,
                cedar::EntityId::new(&subject.arn),
            ),
            action_type,
            resource_type,
            level_allow,
        })
    }

    /// Cedar policies in the subject's own set and in the one set.
    pub fn policy_counts(&self) -> (usize, usize) {
        let own = self
            .by_arn
            .get(self.subject_arn.as_str())
            .map_or(0, |set| set.policies().count());
        (own, self.one_set.policies().count())
    }

    /// One decision (request and context built from the strings of `r`,
    /// the subject's set found by ARN) and the number of policies that
    /// failed to evaluate.
    pub fn decide(&self, attach: Attach, r: &Req) -> Result<(Outcome, usize), BoxError> {
        let policies = match attach {
            Attach::PerPrincipal => self
                .by_arn
                .get(self.subject_arn.as_str())
                .ok_or("no policy set for the subject")?,
            Attach::OneSet => &self.one_set,
        };
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
            .is_authorized(&request, policies, &self.entities);
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
