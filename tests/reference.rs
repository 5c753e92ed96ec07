//! Issue 12: the indexed engine decides exactly as the reference evaluator
//! (`engine::reference`, every statement of every applicable policy checked
//! in order, no index) on generated policy sets and requests. Indexes on
//! actions, on condition values and shared results of copied statements may
//! only make a decision cheaper, never different.
//!
//! The generated policies mix exact and wildcard actions, `NotAction`,
//! `NotResource`, principals in resource policies, equality and other
//! condition operators with `IfExists`, `ForAnyValue:` and `ForAllValues:`,
//! policy variables, keys the request lacks and multivalued keys; every
//! policy role (identity, boundary, session, resource, SCP and RCP levels)
//! takes part. Values are drawn from small pools so that statements collide
//! on actions and condition values, as in the worst case the indexes serve.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use iamgate::engine::{
    Applicable, CompiledPolicy, Context, ContextValue, Decision, Outcome, PolicySet, Principal,
    Request, decide, reference,
};
use iamgate::policy::PolicyKind;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const ACTIONS: &[&str] = &[
    "ec2:RunInstances",
    "ec2:StartInstances",
    "ec2:StopInstances",
    "ec2:DescribeInstances",
    "s3:GetObject",
    "sts:AssumeRole",
];
const ACTION_PATTERNS: &[&str] = &[
    "ec2:RunInstances",
    "ec2:RunInstances",
    "ec2:StopInstances",
    "ec2:St*",
    "ec2:*",
    "*",
    "ec2:?topInstances",
    "s3:Get*",
    "sts:AssumeRole",
];
const RESOURCES: &[&str] = &[
    "arn:aws:ec2:us-east-1:111122223333:instance/i-1",
    "arn:aws:ec2:us-east-1:111122223333:instance/i-2",
    "arn:aws:ec2:us-east-1:444455556666:instance/i-9",
    "arn:aws:iam::111122223333:role/deploy",
    "*",
];
const RESOURCE_PATTERNS: &[&str] = &[
    "*",
    "*",
    "arn:aws:ec2:*:111122223333:instance/*",
    "arn:aws:ec2:us-east-1:111122223333:instance/i-1",
    "arn:aws:ec2:*:*:instance/${aws:username}",
    "arn:aws:iam::111122223333:role/*",
];
const PRINCIPALS: &[&str] = &[
    "arn:aws:iam::111122223333:user/alice",
    "arn:aws:sts::111122223333:assumed-role/deploy/s1",
    "arn:aws:iam::111122223333:root",
    "arn:aws:iam::444455556666:user/mallory",
    "anonymous",
    "arn:aws:iam::111122223333:oidc-provider/oidc.example.com/id/1",
];
const PRINCIPAL_ENTRIES: &[&str] = &[
    "*",
    "111122223333",
    "arn:aws:iam::111122223333:user/alice",
    "arn:aws:iam::111122223333:role/deploy",
    "arn:aws:iam::444455556666:root",
    "arn:aws:iam::111122223333:oidc-provider/oidc.example.com/id/1",
];

/// Condition keys, each with the operators and policy values that make
/// sense for it (equality operators first: those the index serves).
fn condition_entry() -> impl Strategy<Value = (String, String, Vec<String>)> {
    let team = prop::sample::subsequence(vec!["blue", "Blue", "red", "${aws:username}"], 1..3);
    let tags = prop::sample::subsequence(vec!["team", "env", "Team"], 1..3);
    let bools = prop::sample::subsequence(vec!["true", "false", "TRUE", "maybe"], 1..2);
    let nums = prop::sample::subsequence(vec!["1.5", "01.50", "2", "-0", "x"], 1..3);
    let arns = prop::sample::subsequence(
        vec![
            "arn:aws:sns:us-east-1:111122223333:topic",
            "arn:aws:sns:*:111122223333:*",
            "arn:aws:sns:us-east-1:111122223333:Topic",
        ],
        1..3,
    );
    let qualifier = prop::sample::select(vec!["", "", "ForAnyValue:", "ForAllValues:"]);
    let if_exists = prop::sample::select(vec!["", "", "IfExists"]);
    let kind = 0usize..6;
    (kind, qualifier, if_exists, team, tags, bools, nums, arns).prop_flat_map(
        |(kind, q, ie, team, tags, bools, nums, arns)| {
            let (key, ops, values): (&str, Vec<&str>, Vec<&str>) = match kind {
                0 => (
                    "ec2:ResourceTag/team",
                    vec![
                        "StringEquals",
                        "StringEqualsIgnoreCase",
                        "StringNotEquals",
                        "StringLike",
                    ],
                    team,
                ),
                1 => (
                    "aws:TagKeys",
                    vec!["StringEquals", "StringEqualsIgnoreCase", "StringNotEquals"],
                    tags,
                ),
                2 => ("aws:SecureTransport", vec!["Bool"], bools),
                3 => (
                    "ec2:InstanceCount",
                    vec!["NumericEquals", "NumericLessThan", "NumericNotEquals"],
                    nums,
                ),
                4 => (
                    "aws:SourceArn",
                    vec!["ArnEquals", "ArnLike", "ArnNotEquals"],
                    arns,
                ),
                _ => ("ec2:ResourceTag/team", vec!["Null"], vec!["true", "false"]),
            };
            let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
            prop::sample::select(ops).prop_map(move |op| {
                let name = if op == "Null" {
                    op.to_owned()
                } else {
                    format!("{q}{op}{ie}")
                };
                let values = if op == "Null" {
                    vec![values.first().cloned().unwrap_or_default()]
                } else {
                    values.clone()
                };
                (name, key.to_owned(), values)
            })
        },
    )
}

fn statement(kind: PolicyKind) -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec![true, true, false]),
        prop::sample::select(vec![false, false, false, true]),
        prop::sample::subsequence(ACTION_PATTERNS, 1..3),
        prop::sample::select(vec![false, false, false, true]),
        prop::sample::subsequence(RESOURCE_PATTERNS, 1..3),
        prop::collection::vec(condition_entry(), 0..3),
        prop::sample::subsequence(PRINCIPAL_ENTRIES, 1..3),
    )
        .prop_map(
            move |(allow, not_action, actions, not_resource, resources, conds, who)| {
                let mut s = json!({
                    "Effect": if allow { "Allow" } else { "Deny" },
                    if not_action { "NotAction" } else { "Action" }: actions,
                    if not_resource { "NotResource" } else { "Resource" }: resources,
                });
                if !conds.is_empty() {
                    let mut block = Map::new();
                    for (op, key, values) in conds {
                        let entry = block.entry(op).or_insert_with(|| Value::Object(Map::new()));
                        if let Value::Object(m) = entry {
                            m.insert(key, json!(values));
                        }
                    }
                    s["Condition"] = Value::Object(block);
                }
                match kind {
                    PolicyKind::Resource => {
                        // OIDC providers are named only by `Federated`.
                        let (federated, aws): (Vec<&str>, Vec<&str>) =
                            who.into_iter().partition(|w| w.contains(":oidc-provider/"));
                        let mut principal = Map::new();
                        if !aws.is_empty() {
                            principal.insert("AWS".into(), json!(aws));
                        }
                        if !federated.is_empty() {
                            principal.insert("Federated".into(), json!(federated));
                        }
                        s["Principal"] = Value::Object(principal);
                    }
                    PolicyKind::Rcp => s["Principal"] = json!("*"),
                    _ => {}
                }
                s
            },
        )
}

/// A policy set of one role: `policies` policies of up to `statements`
/// statements each.
fn policy_set(
    kind: PolicyKind,
    policies: std::ops::Range<usize>,
    statements: usize,
) -> impl Strategy<Value = Vec<Vec<Value>>> {
    prop::collection::vec(
        prop::collection::vec(statement(kind), 1..statements + 1),
        policies,
    )
}

fn compile(kind: PolicyKind, policies: &[Vec<Value>]) -> PolicySet {
    let compiled = policies
        .iter()
        .enumerate()
        .map(|(i, statements)| {
            // Sids are unique within a policy; copies differ only by Sid.
            let statements: Vec<Value> = statements
                .iter()
                .enumerate()
                .map(|(j, s)| {
                    let mut s = s.clone();
                    s["Sid"] = json!(format!("s{j}"));
                    s
                })
                .collect();
            let doc = json!({"Version": "2012-10-17", "Statement": statements});
            Arc::new(CompiledPolicy::from_json(format!("{kind:?}{i}"), kind, &doc).unwrap())
        })
        .collect();
    PolicySet::new(compiled)
}

#[derive(Debug, Clone)]
struct Case {
    identity: Vec<Vec<Value>>,
    boundary: Option<Vec<Vec<Value>>>,
    session: Option<Vec<Vec<Value>>>,
    resource: Option<Vec<Vec<Value>>>,
    scps: Option<Vec<Vec<Vec<Value>>>>,
    rcps: Option<Vec<Vec<Vec<Value>>>>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        policy_set(PolicyKind::Identity, 1..4, 8),
        prop::option::weighted(0.25, policy_set(PolicyKind::Boundary, 1..2, 4)),
        prop::option::weighted(0.25, policy_set(PolicyKind::Session, 1..2, 4)),
        prop::option::weighted(0.4, policy_set(PolicyKind::Resource, 1..2, 6)),
        prop::option::weighted(
            0.3,
            prop::collection::vec(policy_set(PolicyKind::Scp, 1..2, 3), 1..3),
        ),
        prop::option::weighted(
            0.2,
            prop::collection::vec(policy_set(PolicyKind::Rcp, 1..2, 3), 1..3),
        ),
    )
        .prop_map(|(identity, boundary, session, resource, scps, rcps)| Case {
            identity,
            boundary,
            session,
            resource,
            scps,
            rcps,
        })
}

/// Context keys: each present or missing, multivalued ones possibly empty.
fn context() -> impl Strategy<Value = Context> {
    (
        prop::option::of(prop::sample::select(vec!["blue", "Blue", "red", "alice"])),
        prop::option::of(prop::sample::subsequence(vec!["team", "env", "TEAM"], 0..3)),
        prop::option::of(prop::sample::select(vec!["true", "false", "True", "1"])),
        prop::option::of(prop::sample::select(vec!["1.5", "2.0", "-0", "0", "x"])),
        prop::option::of(prop::sample::select(vec![
            "arn:aws:sns:us-east-1:111122223333:topic",
            "arn:aws:sns:eu-west-1:111122223333:other",
            "arn:aws:sns:us-east-1:111122223333:Topic",
            "not-an-arn",
        ])),
    )
        .prop_map(|(team, tags, secure, count, source)| {
            let mut ctx = Context::new();
            if let Some(v) = team {
                ctx.insert("ec2:ResourceTag/team", ContextValue::One(v.to_owned()));
            }
            if let Some(v) = tags {
                let v = v.iter().map(|s| (*s).to_owned()).collect();
                ctx.insert("aws:TagKeys", ContextValue::Many(v));
            }
            if let Some(v) = secure {
                ctx.insert("aws:SecureTransport", ContextValue::One(v.to_owned()));
            }
            if let Some(v) = count {
                ctx.insert("ec2:InstanceCount", ContextValue::One(v.to_owned()));
            }
            if let Some(v) = source {
                ctx.insert("aws:SourceArn", ContextValue::One(v.to_owned()));
            }
            ctx
        })
}

/// What must agree: outcome, reason, and for an explicit deny every deny
/// statement (in any order); for an allow, the policy roles that allowed.
fn summary(d: &Decision<'_>) -> (Outcome, String, Vec<(String, usize)>) {
    let mut matched: Vec<(String, usize)> = d
        .matched
        .iter()
        .map(|m| {
            let index = if d.outcome == Outcome::ExplicitDeny {
                m.index
            } else {
                0
            };
            (format!("{:?}:{}", m.kind(), m.policy_id()), index)
        })
        .collect();
    if d.outcome == Outcome::ExplicitDeny {
        matched.sort();
    } else {
        for m in &mut matched {
            // The set, not the statement: another allow of the same
            // strength may be reported.
            m.0 = m.0.split(':').next().unwrap_or_default().to_owned();
        }
    }
    (d.outcome, format!("{:?}", d.reason), matched)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    /// Issue 12: the compiled snapshot and the reference evaluator agree.
    #[test]
    fn indexed_engine_decides_as_the_reference(
        case in case(),
        requests in prop::collection::vec(
            (
                prop::sample::select(PRINCIPALS),
                prop::sample::select(ACTIONS),
                prop::sample::select(RESOURCES),
                context(),
            ),
            1..6,
        ),
    ) {
        let identity = compile(PolicyKind::Identity, &case.identity);
        let boundary = case.boundary.as_ref().map(|p| compile(PolicyKind::Boundary, p));
        let session = case.session.as_ref().map(|p| compile(PolicyKind::Session, p));
        let resource = case.resource.as_ref().map(|p| compile(PolicyKind::Resource, p));
        let scps: Option<Vec<PolicySet>> = case
            .scps
            .as_ref()
            .map(|levels| levels.iter().map(|p| compile(PolicyKind::Scp, p)).collect());
        let rcps: Option<Vec<PolicySet>> = case
            .rcps
            .as_ref()
            .map(|levels| levels.iter().map(|p| compile(PolicyKind::Rcp, p)).collect());
        let applicable = Applicable {
            identity: Some(&identity),
            boundary: boundary.as_ref(),
            session: session.as_ref(),
            resource: resource.as_ref(),
            scps: scps.as_deref(),
            rcps: rcps.as_deref(),
        };
        for (who, action, resource, ctx) in &requests {
            let principal = Principal::parse(who).unwrap();
            let req = Request::new(&principal, action, resource, ctx);
            let fast = decide(&applicable, &req);
            let slow = reference::decide(&applicable, &req);
            prop_assert_eq!(
                summary(&fast),
                summary(&slow),
                "{} {} {} {:?}",
                who,
                action,
                resource,
                ctx
            );
        }
    }
}
