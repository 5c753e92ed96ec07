//! The scenario in Rego for regorus (the interpreter): generic IAM rules
//! ([`REGO_POLICY`]) over the statements as data, and an adapter that
//! evaluates [`REGO_RULE`].
//!
//! Like iamgate, the adapter holds one engine per principal (the rules with
//! that principal's policies and the SCP level as data) in a hash map keyed
//! by ARN, found per request; and, for the worst case, one engine with every
//! identity policy attached to the subject.

use std::collections::BTreeMap;

use iamgate::engine::Outcome;
use rustc_hash::FxHashMap;
use serde_json::{Value, json};

use crate::iam::Attach;
use crate::scenario::{CtxValue, Policy, Req, Scenario, Stmt, User};
use crate::{BoxError, has_wildcard, substitute};

/// The generic IAM rules: statements are data, conditions interpreted.
pub const REGO_POLICY: &str = r#"package iam

import rego.v1

decision := "explicitDeny" if {
	explicit_deny
} else := "allowed" if {
	scps_allow
	identity_allow
} else := "implicitDeny"

explicit_deny if {
	some p in data.bundle.identity
	p.principal == input.principal
	some s in p.statements
	s.effect == "Deny"
	applies(s)
}

explicit_deny if {
	some level in data.bundle.scps
	some p in level
	some s in p.statements
	s.effect == "Deny"
	applies(s)
}

scps_allow if {
	every level in data.bundle.scps {
		level_allows(level)
	}
}

level_allows(level) if {
	some p in level
	some s in p.statements
	s.effect == "Allow"
	applies(s)
}

identity_allow if {
	some p in data.bundle.identity
	p.principal == input.principal
	some s in p.statements
	s.effect == "Allow"
	applies(s)
}

applies(s) if {
	action_ok(s)
	resource_ok(s)
	every c in s.conditions {
		cond_ok(c)
	}
}

action_ok(s) if {
	not s.not_action
	action_hit(s)
}

action_ok(s) if {
	s.not_action
	not action_hit(s)
}

action_hit(s) if s.action_any

action_hit(s) if input.action in s.actions

action_hit(s) if {
	some p in s.action_globs
	glob.match(p, null, input.action)
}

resource_ok(s) if s.resource_any

resource_ok(s) if input.resource in s.resources

resource_ok(s) if {
	some p in s.resource_globs
	glob.match(p, null, input.resource)
}

cond_ok(c) if {
	c.op == "StringEquals"
	input.context[c.key] in c.values
}

cond_ok(c) if {
	c.op == "StringNotEquals"
	not input.context[c.key] in c.values
}

cond_ok(c) if {
	c.op == "StringLike"
	like_any(c)
}

cond_ok(c) if {
	c.op == "StringNotLike"
	not like_any(c)
}

cond_ok(c) if {
	c.op == "IpAddress"
	ip_any(c)
}

cond_ok(c) if {
	c.op == "NotIpAddress"
	not ip_any(c)
}

cond_ok(c) if {
	c.op == "ForAllValues:StringEquals"
	not value_outside(c)
}

like_any(c) if {
	some p in c.values
	glob.match(p, null, input.context[c.key])
}

ip_any(c) if {
	some n in c.values
	net.cidr_contains(n, input.context[c.key])
}

value_outside(c) if {
	some v in input.context[c.key]
	not v in c.values
}
"#;

/// The rule the benches evaluate.
pub const REGO_RULE: &str = "data.iam.decision";

fn rego_stmt(st: &Stmt, user: Option<&User>) -> Value {
    let lower: Vec<String> = st.actions.iter().map(|a| a.to_ascii_lowercase()).collect();
    let (action_globs, actions): (Vec<String>, Vec<String>) =
        lower.into_iter().partition(|a| has_wildcard(a));
    let action_any = action_globs.iter().any(|a| a == "*");
    let resources: Vec<String> = st.resources.iter().map(|r| substitute(r, user)).collect();
    let resource_any = resources.iter().any(|r| r == "*");
    let (resource_globs, resources): (Vec<String>, Vec<String>) =
        resources.into_iter().partition(|r| has_wildcard(r));
    let conditions: Vec<Value> = st
        .conds
        .iter()
        .map(|c| {
            json!({
                "op": c.op.iam_name(),
                "key": c.key.to_ascii_lowercase(),
                "values": c.values,
            })
        })
        .collect();
    json!({
        "sid": st.sid,
        "effect": st.effect.as_str(),
        "not_action": st.not_action,
        "action_any": action_any,
        "actions": actions,
        "action_globs": action_globs,
        "resource_any": resource_any,
        "resources": resources,
        "resource_globs": resource_globs,
        "conditions": conditions,
    })
}

/// The Rego data document (`data.bundle`): the identity policies
/// `attached` (each to its user) and the SCP level.
pub fn data<'a>(s: &Scenario, attached: impl IntoIterator<Item = (&'a Policy, &'a User)>) -> Value {
    let identity: Vec<Value> = attached
        .into_iter()
        .map(|(p, user)| {
            let stmts: Vec<Value> = p.stmts.iter().map(|st| rego_stmt(st, Some(user))).collect();
            json!({ "id": p.id, "principal": user.arn, "statements": stmts })
        })
        .collect();
    let level: Vec<Value> = s
        .scps
        .iter()
        .map(|p| {
            let stmts: Vec<Value> = p.stmts.iter().map(|st| rego_stmt(st, None)).collect();
            json!({ "id": p.id, "statements": stmts })
        })
        .collect();
    json!({ "bundle": { "identity": identity, "scps": [level] } })
}

pub struct Rego {
    /// Each user's engine: the rules, its own policies and the SCP level.
    by_arn: FxHashMap<Box<str>, regorus::Engine>,
    /// The rules, every identity policy attached to the subject and the
    /// SCP level.
    one_set: regorus::Engine,
    principal: String,
}

impl Rego {
    pub fn new(s: &Scenario) -> Result<Self, BoxError> {
        let mut rules = regorus::Engine::new();
        rules.add_policy("iam.rego".to_owned(), REGO_POLICY.to_owned())?;
        let engine = |data: Value| -> Result<regorus::Engine, BoxError> {
            let mut e = rules.clone();
            e.add_data(regorus::Value::from(data))?;
            Ok(e)
        };
        let mut by_arn = FxHashMap::default();
        for user in &s.users {
            let own = s.identity.get(user.policies.clone()).unwrap_or_default();
            let e = engine(data(s, own.iter().map(|p| (p, user))))?;
            by_arn.insert(user.arn.as_str().into(), e);
        }
        let subject = s.users.get(s.subject).ok_or("no subject user")?;
        let one_set = engine(data(s, s.identity.iter().map(|p| (p, subject))))?;
        Ok(Self {
            by_arn,
            one_set,
            principal: subject.arn.clone(),
        })
    }

    /// One decision: the subject's engine found by ARN, input built from
    /// the strings of `r`, then the rule.
    pub fn decide(&mut self, attach: Attach, r: &Req) -> Result<Outcome, BoxError> {
        use regorus::Value;
        let engine = match attach {
            Attach::PerPrincipal => self
                .by_arn
                .get_mut(self.principal.as_str())
                .ok_or("no engine for the subject")?,
            Attach::OneSet => &mut self.one_set,
        };
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
        engine.set_input(Value::from(input));
        let answer = engine.eval_rule(REGO_RULE.to_owned())?;
        match answer.as_string()?.as_ref() {
            "allowed" => Ok(Outcome::Allowed),
            "implicitDeny" => Ok(Outcome::ImplicitDeny),
            "explicitDeny" => Ok(Outcome::ExplicitDeny),
            other => Err(format!("regorus answered {other:?}").into()),
        }
    }
}
