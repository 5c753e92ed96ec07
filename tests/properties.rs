//! Property tests of the engine: an applicable explicit deny always wins;
//! statement order and duplicated statements never change a decision; the
//! wildcard matcher agrees with a regular-expression oracle.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use iamgate::engine::{
    Applicable, CompiledPolicy, Context, Outcome, PolicySet, Principal, Request, decide,
};
use iamgate::policy::PolicyKind;
use iamgate::policy::arn::arn_like;
use iamgate::policy::wildcard::{Pattern, matches_str, tokenize};
use proptest::prelude::*;
use serde_json::{Value, json};

const ACTIONS: &[&str] = &[
    "ec2:RunInstances",
    "ec2:StartInstances",
    "ec2:StopInstances",
    "ec2:DescribeInstances",
    "ec2:TerminateInstances",
    "s3:GetObject",
];
const ACTION_PATTERNS: &[&str] = &[
    "ec2:RunInstances",
    "ec2:St*",
    "ec2:Describe*",
    "ec2:*",
    "*",
    "ec2:?topInstances",
    "s3:Get*",
];
const RESOURCES: &[&str] = &[
    "arn:aws:ec2:us-east-1:111122223333:instance/i-1",
    "arn:aws:ec2:us-east-1:111122223333:instance/i-2",
    "arn:aws:ec2:us-west-2:111122223333:volume/vol-1",
    "arn:aws:s3:::bucket/key",
];
const RESOURCE_PATTERNS: &[&str] = &[
    "*",
    "arn:aws:ec2:*:111122223333:instance/*",
    "arn:aws:ec2:us-east-1:111122223333:instance/i-1",
    "arn:aws:ec2:us-west-2:*",
    "arn:aws:s3:::bucket/*",
];

fn statement() -> impl Strategy<Value = Value> {
    (
        prop::bool::ANY,
        prop::bool::ANY,
        prop::sample::subsequence(ACTION_PATTERNS, 1..3),
        prop::sample::subsequence(RESOURCE_PATTERNS, 1..3),
        prop::option::of(prop::sample::select(vec!["blue", "red"])),
    )
        .prop_map(|(allow, not_action, actions, resources, team)| {
            let mut s = json!({
                "Effect": if allow { "Allow" } else { "Deny" },
                if not_action { "NotAction" } else { "Action" }: actions,
                "Resource": resources,
            });
            if let Some(team) = team {
                s["Condition"] = json!({"StringEquals": {"ec2:ResourceTag/team": team}});
            }
            s
        })
}

fn policy_set(statements: &[Value]) -> PolicySet {
    let doc = json!({"Version": "2012-10-17", "Statement": statements});
    let p = CompiledPolicy::from_json("p", PolicyKind::Identity, &doc).unwrap();
    PolicySet::new(vec![Arc::new(p)])
}

fn outcome(set: &PolicySet, action: &str, resource: &str, team: &str) -> Outcome {
    let principal = Principal::parse("arn:aws:iam::111122223333:user/alice").unwrap();
    let ctx = Context::new().with("ec2:ResourceTag/team", team);
    let req = Request::new(&principal, action, resource, &ctx);
    let applicable = Applicable {
        identity: Some(set),
        ..Applicable::default()
    };
    decide(&applicable, &req).outcome
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn applicable_explicit_deny_always_wins(
        statements in prop::collection::vec(statement(), 0..6),
        action in prop::sample::select(ACTIONS),
        resource in prop::sample::select(RESOURCES),
        team in prop::sample::select(vec!["blue", "red"]),
    ) {
        let mut with_deny = statements.clone();
        with_deny.push(json!({"Effect": "Deny", "Action": action, "Resource": resource}));
        let set = policy_set(&with_deny);
        prop_assert_eq!(outcome(&set, action, resource, team), Outcome::ExplicitDeny);
    }

    #[test]
    fn order_and_duplicates_do_not_matter(
        statements in prop::collection::vec(statement(), 1..6),
        action in prop::sample::select(ACTIONS),
        resource in prop::sample::select(RESOURCES),
        team in prop::sample::select(vec!["blue", "red"]),
        dup in 0usize..6,
    ) {
        let base = outcome(&policy_set(&statements), action, resource, team);
        let mut reversed = statements.clone();
        reversed.reverse();
        prop_assert_eq!(outcome(&policy_set(&reversed), action, resource, team), base);
        let mut duplicated = statements.clone();
        duplicated.push(statements[dup % statements.len()].clone());
        prop_assert_eq!(outcome(&policy_set(&duplicated), action, resource, team), base);
        // Splitting the statements over several policies changes nothing either.
        let split: Vec<Arc<CompiledPolicy>> = statements
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let doc = json!({"Version": "2012-10-17", "Statement": [s]});
                Arc::new(CompiledPolicy::from_json(format!("p{i}"), PolicyKind::Identity, &doc).unwrap())
            })
            .collect();
        prop_assert_eq!(outcome(&PolicySet::new(split), action, resource, team), base);
    }

    #[test]
    fn wildcard_matches_like_a_regex(
        pattern in "[ab:*?]{0,8}",
        text in "[ab:]{0,10}",
    ) {
        let mut re = String::from("^");
        for c in pattern.chars() {
            match c {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re.push('$');
        let oracle = regex::Regex::new(&re).unwrap().is_match(&text);
        prop_assert_eq!(matches_str(&pattern, &text), oracle);
    }

    #[test]
    fn compiled_patterns_agree_with_the_matcher(
        pattern in "[ab:*?]{0,8}",
        text in "[ab:]{0,10}",
    ) {
        prop_assert_eq!(Pattern::compile(&pattern).matches(&text), matches_str(&pattern, &text));
    }

    #[test]
    fn arn_like_matches_field_by_field_like_a_regex(
        fields in prop::collection::vec("[ab*?]{0,3}", 6..7),
        resource in "[ab:*?/]{0,6}",
        value_fields in prop::collection::vec("[ab]{0,3}", 5..6),
        value_resource in "[ab:/]{0,6}",
    ) {
        // Patterns and values with exactly six fields (the last may hold colons).
        let mut pattern_fields = fields[..5].to_vec();
        pattern_fields.push(resource);
        let pattern = format!("arn:{}", pattern_fields[1..].join(":"));
        let value = format!("arn:{}:{}", value_fields[1..].join(":"), value_resource);
        let mut re = String::from("^");
        let mut colons = 0;
        for c in pattern.chars() {
            match c {
                ':' => { colons += 1; re.push(':'); }
                '*' if colons < 5 => re.push_str("[^:]*"),
                '?' if colons < 5 => re.push_str("[^:]"),
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re.push('$');
        let oracle = pattern == "*" || regex::Regex::new(&re).unwrap().is_match(&value);
        prop_assert_eq!(arn_like(&mut tokenize(&pattern), &value), oracle, "{} {} {}", pattern, value, re);
    }
}
