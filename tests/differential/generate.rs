//! Random but valid policy test files (POLICY-TESTS.md) for the
//! differential test: every policy type, every condition operator family,
//! wildcards, negations, principals and policy variables, biased towards
//! statements that are relevant to the requests so that all three outcomes
//! are well represented.
//!
//! The constructs listed as known oracle defects at the top of
//! `tests/differential.rs` are not generated (or are detected and counted
//! separately, see [`oracle_defect`]).

use serde_json::{Map, Value, json};

use crate::rng::Rng;

/// The caller's account.
pub const ACCOUNT: &str = "111122223333";
/// Another account (cross-account resources and principals).
pub const OTHER: &str = "444455556666";

const FULL_ACCESS_STATEMENT: &str = r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    User,
    Session,
    Root,
    Anonymous,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Ec2,
    S3,
    Sns,
}

const EC2_ACTIONS: &[&str] = &[
    "ec2:StartInstances",
    "ec2:StopInstances",
    "ec2:TerminateInstances",
    "ec2:RunInstances",
    "ec2:DescribeInstances",
    "ec2:CreateTags",
    "ec2:AttachVolume",
    "ec2:DeleteVolume",
];
const S3_ACTIONS: &[&str] = &[
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:ListBucket",
];
const SNS_ACTIONS: &[&str] = &[
    "sns:Publish",
    "sns:Subscribe",
    "sns:DeleteTopic",
    "sns:GetTopicAttributes",
];

/// Action patterns a policy may use (wildcards, `?`, other case, `*`).
const ACTION_PATTERNS: &[&str] = &[
    "*",
    "ec2:*",
    "ec2:Describe*",
    "ec2:?tartInstances",
    "ec2:St*",
    "ec2:*Instances",
    "ec2:*Volume",
    "ec2:startinstances",
    "ec2:Stop?nstances",
    "s3:*",
    "s3:Get*",
    "s3:*Object",
    "s3:List*",
    "s3:?etObject",
    "sns:*",
    "sns:*Topic*",
    "sns:Get*",
    "sns:publish",
];

/// Condition value kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Str,
    Num,
    Date,
    Bool,
    Ip,
    Arn,
    Bin,
    /// A multivalued string key.
    Multi,
}

struct KeyDef {
    key: &'static str,
    ty: Ty,
    /// Derived by the engines from the principal (never put in the context).
    derived: bool,
    /// Values a request may carry.
    request: &'static [&'static str],
    /// Values a policy may test (besides the request values).
    policy: &'static [&'static str],
}

const KEYS: &[KeyDef] = &[
    KeyDef {
        key: "ec2:ResourceTag/env",
        ty: Ty::Str,
        derived: false,
        request: &["prod", "dev", "Prod", "staging"],
        policy: &["PROD", "pr*", "*a*", "d?v"],
    },
    KeyDef {
        key: "ec2:ResourceTag/owner",
        ty: Ty::Str,
        derived: false,
        request: &["alice", "bob", "carol", "blue"],
        policy: &[
            "${aws:username}",
            "${aws:PrincipalTag/team}",
            "a*",
            "${aws:username, 'bob'}",
        ],
    },
    KeyDef {
        key: "aws:RequestedRegion",
        ty: Ty::Str,
        derived: false,
        request: &["us-east-1", "eu-west-1", "ap-south-1"],
        policy: &["eu-*", "us-*-1", "*"],
    },
    KeyDef {
        key: "s3:prefix",
        ty: Ty::Str,
        derived: false,
        request: &["home/", "home/alice/", "public/", "home/bob/x"],
        policy: &[
            "home/*",
            "home/${aws:username}/",
            "home/${aws:username}/*",
            "*/",
        ],
    },
    KeyDef {
        key: "aws:PrincipalTag/team",
        ty: Ty::Str,
        derived: true,
        request: &["blue", "red"],
        policy: &["Blue", "b*", "${ec2:ResourceTag/owner}"],
    },
    KeyDef {
        key: "aws:username",
        ty: Ty::Str,
        derived: true,
        request: &["alice", "carol", "bob"],
        policy: &["a*", "${ec2:ResourceTag/owner}"],
    },
    KeyDef {
        key: "aws:PrincipalType",
        ty: Ty::Str,
        derived: true,
        request: &["User", "AssumedRole", "Account", "Anonymous"],
        policy: &["user", "*Role"],
    },
    KeyDef {
        key: "aws:PrincipalAccount",
        ty: Ty::Str,
        derived: true,
        request: &[ACCOUNT, OTHER],
        policy: &["1111*"],
    },
    KeyDef {
        key: "aws:SourceArn",
        ty: Ty::Arn,
        derived: false,
        request: &[
            "arn:aws:sns:us-east-1:111122223333:alerts",
            "arn:aws:s3:::bucket-a",
            "arn:aws:ec2:eu-west-1:444455556666:instance/i-0b12",
        ],
        policy: &[
            "arn:aws:sns:*:111122223333:*",
            "arn:aws:s3:::bucket-*",
            "arn:aws:ec2:*:*:instance/*",
            // D14: variables only in the last ARN component.
            "arn:aws:sns:*:*:${aws:PrincipalTag/team}-*",
            "arn:aws:sns:us-east-1:111122223333:al?rts",
        ],
    },
    KeyDef {
        key: "aws:PrincipalArn",
        ty: Ty::Arn,
        derived: true,
        request: &[
            "arn:aws:iam::111122223333:user/alice",
            "arn:aws:iam::111122223333:role/Admin",
        ],
        policy: &[
            "arn:aws:iam::111122223333:user/*",
            "arn:aws:iam::*:role/*",
            "arn:aws:iam::111122223333:user/${aws:username}",
            "arn:aws:iam::111122223333:root",
            "arn:aws:iam::111122223333:role/ops/Admin",
        ],
    },
    KeyDef {
        key: "s3:max-keys",
        ty: Ty::Num,
        derived: false,
        request: &["5", "10", "100", "2.5", "-3", "10.0"],
        policy: &["50", "0", "-1", "2.50"],
    },
    KeyDef {
        key: "ec2:VolumeSize",
        ty: Ty::Num,
        derived: false,
        request: &["8", "500", "1000"],
        policy: &["100", "1000", "999.5"],
    },
    KeyDef {
        key: "aws:CurrentTime",
        ty: Ty::Date,
        derived: false,
        request: &[
            "2024-06-01T12:00:00Z",
            "2025-01-01T00:00:00Z",
            "2023-12-31T23:59:59Z",
            "2024-06-01T14:00:00+02:00",
        ],
        policy: &[
            "2024-01-01",
            "2024-06-01T12:00:00.000Z",
            "2024-06-01T11:00:00-01:00",
            "2025-01-01T00:00:00Z",
        ],
    },
    KeyDef {
        key: "aws:TokenIssueTime",
        ty: Ty::Date,
        derived: false,
        request: &["2024-03-01T08:30:00Z", "2024-03-02T00:00:00Z"],
        policy: &[
            "2024-03-01T08:30:00Z",
            "2024-03-02",
            "2024-03-01T09:00:00+00:30",
        ],
    },
    KeyDef {
        key: "aws:SecureTransport",
        ty: Ty::Bool,
        derived: false,
        request: &["true", "false"],
        policy: &["TRUE", "False"],
    },
    KeyDef {
        key: "aws:MultiFactorAuthPresent",
        ty: Ty::Bool,
        derived: false,
        request: &["true", "false"],
        policy: &[],
    },
    KeyDef {
        key: "aws:SourceIp",
        ty: Ty::Ip,
        derived: false,
        request: &[
            "203.0.113.9",
            "10.1.2.3",
            "192.0.2.7",
            "198.51.100.1",
            "2001:db8::1",
            "2001:db9::5",
        ],
        policy: &[
            "203.0.113.0/24",
            "10.0.0.0/8",
            "192.0.2.7/32",
            "192.0.2.7",
            "2001:db8::/32",
            "2001:db8::1",
            "198.51.0.0/16",
        ],
    },
    KeyDef {
        key: "aws:RequestTag/blob",
        ty: Ty::Bin,
        derived: false,
        request: &["QUJD", "REVG"],
        policy: &["qujd"],
    },
    KeyDef {
        key: "aws:TagKeys",
        ty: Ty::Multi,
        derived: false,
        request: &["env", "team", "owner", "Project"],
        policy: &["project", "*o*", "t*", "${aws:PrincipalTag/team}"],
    },
    KeyDef {
        key: "aws:CalledVia",
        ty: Ty::Multi,
        derived: false,
        request: &["cloudformation.amazonaws.com", "athena.amazonaws.com"],
        policy: &["*.amazonaws.com", "CloudFormation.amazonaws.com"],
    },
];

fn operators(ty: Ty) -> &'static [&'static str] {
    match ty {
        Ty::Str | Ty::Multi => &[
            "StringEquals",
            "StringNotEquals",
            "StringEqualsIgnoreCase",
            "StringNotEqualsIgnoreCase",
            "StringLike",
            "StringNotLike",
        ],
        Ty::Num => &[
            "NumericEquals",
            "NumericNotEquals",
            "NumericLessThan",
            "NumericLessThanEquals",
            "NumericGreaterThan",
            "NumericGreaterThanEquals",
        ],
        Ty::Date => &[
            "DateEquals",
            "DateNotEquals",
            "DateLessThan",
            "DateLessThanEquals",
            "DateGreaterThan",
            "DateGreaterThanEquals",
        ],
        Ty::Bool => &["Bool"],
        Ty::Ip => &["IpAddress", "NotIpAddress"],
        Ty::Arn => &[
            "ArnEquals",
            "ArnLike",
            "ArnNotEquals",
            "ArnNotLike",
            "StringLike",
            "StringEquals",
        ],
        Ty::Bin => &["BinaryEquals"],
    }
}

/// One request of a scenario.
struct Target {
    action: &'static str,
    resource: String,
}

/// What the policies of one file are generated around.
struct Scenario {
    caller: Caller,
    principal_arn: String,
    role_arn: Option<String>,
    service: Service,
    res_acct: &'static str,
    targets: Vec<Target>,
    /// A session policy applies: resource-policy grants never name the
    /// session directly (D11).
    session_policy: bool,
}

/// Case-insensitive `*`/`?` matching (actions, and resources before variable
/// substitution), used only to steer generation towards relevant statements.
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

fn service_actions(s: Service) -> &'static [&'static str] {
    match s {
        Service::Ec2 => EC2_ACTIONS,
        Service::S3 => S3_ACTIONS,
        Service::Sns => SNS_ACTIONS,
    }
}

fn resource_for(rng: &mut Rng, action: &str, acct: &str) -> String {
    let region = *rng.pick(&["us-east-1", "eu-west-1"]);
    match action {
        "ec2:DescribeInstances" | "ec2:RunInstances" if rng.chance(0.5) => "*".to_owned(),
        "ec2:AttachVolume" | "ec2:DeleteVolume" if rng.chance(0.7) => {
            format!(
                "arn:aws:ec2:{region}:{acct}:volume/vol-0{}",
                rng.pick(&["a1", "b2"])
            )
        }
        a if a.starts_with("ec2:") => {
            let id = *rng.pick(&["i-0a12", "i-0b12", "i-0b99"]);
            format!("arn:aws:ec2:{region}:{acct}:instance/{id}")
        }
        "s3:ListBucket" => format!("arn:aws:s3:::{}", rng.pick(&["bucket-a", "bucket-b"])),
        a if a.starts_with("s3:") => format!(
            "arn:aws:s3:::{}/{}",
            rng.pick(&["bucket-a", "bucket-b"]),
            rng.pick(&["alice/notes.txt", "bob/data.csv", "public/index.html"])
        ),
        _ => format!(
            "arn:aws:sns:{region}:{acct}:{}",
            rng.pick(&["alerts", "topic-a", "topic-b"])
        ),
    }
}

fn resource_patterns(s: Service, acct: &str, vars: bool) -> Vec<String> {
    let mut v: Vec<String> = match s {
        Service::Ec2 => vec![
            format!("arn:aws:ec2:*:{acct}:instance/*"),
            "arn:aws:ec2:us-east-1:*:instance/*".to_owned(),
            "arn:aws:ec2:*:*:volume/*".to_owned(),
            "arn:aws:ec2:*:*:instance/i-0a*".to_owned(),
            "arn:aws:ec2:us-east-?:*:*".to_owned(),
            format!("arn:aws:ec2:*:{acct}:*"),
            "arn:aws:ec2:*:*:instance/i-0?12".to_owned(),
            format!("arn:aws:ec2:eu-west-1:{OTHER}:*"),
        ],
        Service::S3 => vec![
            "arn:aws:s3:::bucket-a/*".to_owned(),
            "arn:aws:s3:::bucket-?/*".to_owned(),
            "arn:aws:s3:::bucket-a".to_owned(),
            "arn:aws:s3:::*".to_owned(),
            "arn:aws:s3:::*/public/*".to_owned(),
            "arn:aws:s3:::bucket-b/bob/*".to_owned(),
        ],
        Service::Sns => vec![
            format!("arn:aws:sns:*:{acct}:*"),
            "arn:aws:sns:us-east-1:*:topic-*".to_owned(),
            "arn:aws:sns:*:*:alerts".to_owned(),
            format!("arn:aws:sns:eu-west-1:{OTHER}:topic-?"),
        ],
    };
    if vars {
        match s {
            Service::S3 => {
                v.push("arn:aws:s3:::bucket-a/${aws:username}/*".to_owned());
                v.push("arn:aws:s3:::bucket-*/${aws:username, 'bob'}/*".to_owned());
            }
            Service::Ec2 => {
                v.push("arn:aws:ec2:*:*:instance/i-0${ec2:ResourceTag/env}".to_owned());
            }
            Service::Sns => {
                v.push("arn:aws:sns:*:*:topic-${aws:PrincipalTag/team}".to_owned());
            }
        }
    }
    v
}

/// Which kind of policy a statement is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Identity,
    Boundary,
    Session,
    Resource,
    Scp,
    Rcp,
}

struct Gen<'a> {
    rng: &'a mut Rng,
    sc: Scenario,
}

impl Gen<'_> {
    fn target(&mut self) -> (&'static str, String) {
        let t = &self.sc.targets[self.rng.below(self.sc.targets.len())];
        (t.action, t.resource.clone())
    }

    fn action_pattern(&mut self, relevant: bool) -> String {
        if relevant {
            let (action, _) = self.target();
            let matching: Vec<&str> = ACTION_PATTERNS
                .iter()
                .copied()
                .filter(|p| glob(p, action))
                .collect();
            if self.rng.chance(0.35) || matching.is_empty() {
                return action.to_owned();
            }
            return (*self.rng.pick(&matching)).to_owned();
        }
        if self.rng.chance(0.5) {
            (*self.rng.pick(service_actions(self.sc.service))).to_owned()
        } else {
            (*self.rng.pick(ACTION_PATTERNS)).to_owned()
        }
    }

    fn actions(&mut self, relevant: bool) -> Value {
        let n = self.rng.weighted(&[70, 25, 5]) + 1;
        let mut v: Vec<String> = Vec::new();
        for i in 0..n {
            let p = self.action_pattern(relevant && i == 0);
            if !v.contains(&p) {
                v.push(p);
            }
        }
        list_or_one(v, self.rng)
    }

    fn resource_pattern(&mut self, relevant: bool, vars: bool) -> String {
        let acct = if self.rng.chance(0.8) {
            self.sc.res_acct
        } else {
            OTHER
        };
        let pool = resource_patterns(self.sc.service, acct, vars);
        if relevant {
            let (_, res) = self.target();
            if res == "*" || self.rng.chance(0.25) {
                return if self.rng.chance(0.5) {
                    "*".to_owned()
                } else {
                    res
                };
            }
            let matching: Vec<&String> = pool
                .iter()
                .filter(|p| p.contains("${") || glob(p, &res))
                .collect();
            if matching.is_empty() {
                return res;
            }
            return (*self.rng.pick(&matching)).clone();
        }
        if self.rng.chance(0.15) {
            return "*".to_owned();
        }
        self.rng.pick(&pool).clone()
    }

    fn resources(&mut self, relevant: bool, vars: bool) -> Value {
        let n = self.rng.weighted(&[75, 25]) + 1;
        let mut v: Vec<String> = Vec::new();
        for i in 0..n {
            let p = self.resource_pattern(relevant && i == 0, vars);
            if !v.contains(&p) {
                v.push(p);
            }
        }
        list_or_one(v, self.rng)
    }

    fn condition_value(&mut self, def: &KeyDef, vars: bool) -> String {
        loop {
            let v = if def.policy.is_empty() || self.rng.chance(0.6) {
                (*self.rng.pick(def.request)).to_owned()
            } else {
                (*self.rng.pick(def.policy)).to_owned()
            };
            if v.contains("${") && !vars {
                continue;
            }
            return v;
        }
    }

    fn condition_values(&mut self, def: &KeyDef, op: &str, vars: bool) -> Vec<String> {
        let n = self.rng.weighted(&[65, 30, 5]) + 1;
        let mut vals = Vec::new();
        while vals.len() < n {
            let v = self.condition_value(def, vars);
            // D9: a single address under NotIpAddress; CIDR blocks only.
            if op.contains("NotIpAddress") && !v.contains('/') {
                continue;
            }
            if !vals.contains(&v) {
                vals.push(v);
            } else if self.rng.chance(0.5) {
                break;
            }
        }
        vals
    }

    /// One `Condition` element with 1-2 operator blocks.
    fn condition(&mut self, vars: bool, kind: Kind) -> Value {
        let mut cond = Map::new();
        let blocks = self.rng.weighted(&[75, 25]) + 1;
        for _ in 0..blocks {
            // Anonymous callers: test the principal keys more often.
            let def = if self.sc.caller == Caller::Anonymous && self.rng.chance(0.5) {
                let derived: Vec<&KeyDef> = KEYS.iter().filter(|k| k.derived).collect();
                *self.rng.pick(&derived)
            } else {
                &KEYS[self.rng.below(KEYS.len())]
            };
            if kind == Kind::Rcp && def.key == "aws:PrincipalArn" {
                continue;
            }
            let (op, values) = if self.rng.chance(0.08) {
                let v = if self.rng.chance(0.5) {
                    "true"
                } else {
                    "false"
                };
                ("Null".to_owned(), vec![v.to_owned()])
            } else {
                let mut op = (*self.rng.pick(operators(def.ty))).to_owned();
                // A multivalued key always gets a set qualifier (unsettled U1).
                let set = if def.ty == Ty::Multi {
                    self.rng.weighted(&[0, 50, 50])
                } else {
                    self.rng.weighted(&[92, 4, 4])
                };
                if self.rng.chance(0.2) {
                    op.push_str("IfExists");
                }
                match set {
                    1 => op.insert_str(0, "ForAllValues:"),
                    2 => op.insert_str(0, "ForAnyValue:"),
                    _ => {}
                }
                let vals = self.condition_values(def, &op, vars);
                (op, vals)
            };
            let block = cond
                .entry(op)
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("operator block");
            block.insert(def.key.to_owned(), list_or_one(values, self.rng));
        }
        Value::Object(cond)
    }

    fn principal_entry(&mut self, match_caller: bool) -> String {
        let sc = &self.sc;
        let mut own: Vec<String> = vec![ACCOUNT.to_owned(), format!("arn:aws:iam::{ACCOUNT}:root")];
        match sc.caller {
            Caller::User | Caller::Root => own.push(sc.principal_arn.clone()),
            Caller::Session => {
                own.push(sc.principal_arn.clone());
                own.push(sc.role_arn.clone().expect("role ARN"));
            }
            Caller::Anonymous => {}
        }
        if match_caller && sc.caller != Caller::Anonymous {
            return self.rng.pick(&own).clone();
        }
        let others = [
            format!("arn:aws:iam::{ACCOUNT}:user/alice"),
            format!("arn:aws:iam::{ACCOUNT}:user/dev/carol"),
            // The role's ARN with its path, as IAM stores it: a role's name
            // is unique whatever its path, so another path names no role.
            sc.role_arn
                .clone()
                .unwrap_or_else(|| format!("arn:aws:iam::{ACCOUNT}:role/Admin")),
            format!("arn:aws:sts::{ACCOUNT}:assumed-role/Admin/bob"),
            format!("arn:aws:sts::{ACCOUNT}:assumed-role/Admin/eve"),
            OTHER.to_owned(),
            format!("arn:aws:iam::{OTHER}:root"),
            format!("arn:aws:iam::{OTHER}:user/alice"),
        ];
        self.rng.pick(&others).clone()
    }

    /// Every identity of the caller, as a `NotPrincipal` must list them to
    /// exclude it: the account, and the user, or the role and the session.
    fn caller_chain(&mut self) -> Vec<String> {
        let account = if self.rng.chance(0.5) {
            ACCOUNT.to_owned()
        } else {
            format!("arn:aws:iam::{ACCOUNT}:root")
        };
        let sc = &self.sc;
        match sc.caller {
            Caller::User => vec![account, sc.principal_arn.clone()],
            Caller::Session => vec![
                account,
                sc.role_arn.clone().expect("role ARN"),
                sc.principal_arn.clone(),
            ],
            Caller::Root => vec![account],
            Caller::Anonymous => Vec::new(),
        }
    }

    /// Whether a principal entry names one of the caller's identities.
    fn caller_identity(&self, entry: &str) -> bool {
        let sc = &self.sc;
        sc.caller != Caller::Anonymous
            && (entry == ACCOUNT
                || entry == format!("arn:aws:iam::{ACCOUNT}:root")
                || entry == sc.principal_arn
                || sc.role_arn.as_deref() == Some(entry))
    }

    fn principal(&mut self, effect_allow: bool) -> (String, Value) {
        if !effect_allow && self.rng.chance(0.15) {
            // NotPrincipal (Deny only). D10: the caller's identities are
            // listed all or none.
            let mut v = if self.rng.chance(0.5) {
                self.caller_chain()
            } else {
                Vec::new()
            };
            let n = if v.is_empty() {
                self.rng.range(1, 2)
            } else {
                self.rng.range(0, 1)
            };
            for _ in 0..n {
                let e = self.principal_entry(false);
                if !v.contains(&e) && !self.caller_identity(&e) {
                    v.push(e);
                }
            }
            if v.is_empty() {
                v.push(format!("arn:aws:iam::{OTHER}:root"));
            }
            return (
                "NotPrincipal".to_owned(),
                json!({"AWS": list_or_one(v, self.rng)}),
            );
        }
        // D11: no direct grant to a session that has a session policy.
        let direct_ok = !(effect_allow && self.sc.session_policy);
        let p = match self.rng.weighted(&[18, 7, 75]) {
            0 if direct_ok => json!("*"),
            1 if direct_ok => json!({"AWS": "*"}),
            _ => {
                let n = self.rng.weighted(&[75, 25]) + 1;
                let mut v = Vec::new();
                for _ in 0..n {
                    let match_caller = self.rng.chance(0.6);
                    let e = self.principal_entry(match_caller);
                    if !direct_ok && e == self.sc.principal_arn {
                        continue;
                    }
                    if !v.contains(&e) {
                        v.push(e);
                    }
                }
                if v.is_empty() {
                    v.push(OTHER.to_owned());
                }
                json!({"AWS": list_or_one(v, self.rng)})
            }
        };
        ("Principal".to_owned(), p)
    }

    fn statement(&mut self, kind: Kind, allow: bool, vars: bool, sid: Option<usize>) -> Value {
        let mut st = Map::new();
        if let Some(i) = sid {
            st.insert("Sid".to_owned(), json!(format!("S{i}")));
        }
        st.insert(
            "Effect".to_owned(),
            json!(if allow { "Allow" } else { "Deny" }),
        );
        if kind == Kind::Resource {
            let (el, p) = self.principal(allow);
            st.insert(el, p);
        }
        if kind == Kind::Rcp {
            st.insert("Principal".to_owned(), json!("*"));
        }
        let relevant = self.rng.chance(if allow { 0.8 } else { 0.6 });
        if kind == Kind::Rcp {
            let a = *self
                .rng
                .pick(&["s3:*", "s3:GetObject", "s3:Put*", "s3:*Object"]);
            st.insert("Action".to_owned(), json!(a));
        } else if self.rng.chance(0.1) {
            // NotAction: relevant means "does not exclude the request".
            let mut p = self.action_pattern(false);
            if relevant {
                for _ in 0..8 {
                    let (action, _) = self.target();
                    if !glob(&p, action) {
                        break;
                    }
                    p = self.action_pattern(false);
                }
            }
            st.insert("NotAction".to_owned(), json!(p));
        } else {
            let a = self.actions(relevant);
            st.insert("Action".to_owned(), a);
        }
        if self.rng.chance(0.1) {
            let p = self.resource_pattern(false, vars);
            st.insert("NotResource".to_owned(), json!(p));
        } else {
            let r = self.resources(relevant, vars);
            st.insert("Resource".to_owned(), r);
        }
        let p_cond = match kind {
            Kind::Rcp => 0.6,
            Kind::Scp => 0.25,
            _ if allow => 0.35,
            _ => 0.45,
        };
        if self.rng.chance(p_cond) {
            let c = self.condition(vars, kind);
            if c.as_object().is_some_and(|m| !m.is_empty()) {
                st.insert("Condition".to_owned(), c);
            }
        }
        Value::Object(st)
    }

    fn policy(&mut self, kind: Kind, p_allow: f64, max_statements: usize) -> Value {
        let version = match kind {
            Kind::Rcp => 0,
            _ => self.rng.weighted(&[85, 10, 5]),
        };
        let vars = version == 0;
        let n = self.rng.range(1, max_statements);
        let sids = self.rng.chance(0.3);
        let statements: Vec<Value> = (0..n)
            .map(|i| {
                let allow = kind != Kind::Rcp && self.rng.chance(p_allow);
                self.statement(kind, allow, vars, sids.then_some(i))
            })
            .collect();
        let mut doc = Map::new();
        match version {
            0 => {
                doc.insert("Version".to_owned(), json!("2012-10-17"));
            }
            1 => {
                doc.insert("Version".to_owned(), json!("2008-10-17"));
            }
            _ => {}
        }
        let st = if statements.len() == 1 && self.rng.chance(0.3) {
            statements.into_iter().next().expect("one statement")
        } else {
            Value::Array(statements)
        };
        doc.insert("Statement".to_owned(), st);
        Value::Object(doc)
    }

    fn context(&mut self) -> Value {
        let mut ctx = Map::new();
        for def in KEYS.iter().filter(|d| !d.derived) {
            if !self.rng.chance(0.4) {
                continue;
            }
            let v = match def.ty {
                Ty::Multi => {
                    let mut vals: Vec<&str> = def
                        .request
                        .iter()
                        .copied()
                        .filter(|_| self.rng.chance(0.45))
                        .collect();
                    if vals.is_empty() && self.rng.chance(0.5) {
                        vals.push(def.request[0]);
                    }
                    json!(vals)
                }
                Ty::Bool if self.rng.chance(0.3) => json!(self.rng.chance(0.5)),
                Ty::Num if self.rng.chance(0.2) => json!(self.rng.below(200)),
                // Single-valued keys get one value (unsettled U1).
                _ => json!(*self.rng.pick(def.request)),
            };
            ctx.insert(def.key.to_owned(), v);
        }
        Value::Object(ctx)
    }
}

fn list_or_one(mut v: Vec<String>, rng: &mut Rng) -> Value {
    if v.len() == 1 && rng.chance(0.7) {
        json!(v.remove(0))
    } else {
        json!(v)
    }
}

/// Generates one policy test file with `tests` requests.
pub fn test_file(rng: &mut Rng, tests: usize) -> Value {
    let caller = match rng.weighted(&[38, 38, 12, 12]) {
        0 => Caller::User,
        1 => Caller::Session,
        2 => Caller::Root,
        _ => Caller::Anonymous,
    };
    let (principal_arn, role_arn) = match caller {
        Caller::User => {
            let name = *rng.pick(&["alice", "dev/carol"]);
            (format!("arn:aws:iam::{ACCOUNT}:user/{name}"), None)
        }
        Caller::Session => {
            let session = *rng.pick(&["bob", "eve"]);
            let role = if rng.chance(0.3) {
                format!("arn:aws:iam::{ACCOUNT}:role/ops/Admin")
            } else {
                format!("arn:aws:iam::{ACCOUNT}:role/Admin")
            };
            (
                format!("arn:aws:sts::{ACCOUNT}:assumed-role/Admin/{session}"),
                Some(role),
            )
        }
        Caller::Root => (format!("arn:aws:iam::{ACCOUNT}:root"), None),
        Caller::Anonymous => ("anonymous".to_owned(), None),
    };
    let service = match rng.weighted(&[50, 30, 20]) {
        0 => Service::Ec2,
        1 => Service::S3,
        _ => Service::Sns,
    };
    let res_acct = if rng.chance(0.3) { OTHER } else { ACCOUNT };
    let n_actions = rng.range(1, 3);
    let actions: Vec<&'static str> = (0..n_actions)
        .map(|_| *rng.pick(service_actions(service)))
        .collect();
    let targets: Vec<Target> = (0..tests)
        .map(|_| {
            let action = *rng.pick(&actions);
            let resource = resource_for(rng, action, res_acct);
            Target { action, resource }
        })
        .collect();
    let sc = Scenario {
        caller,
        principal_arn: principal_arn.clone(),
        role_arn: role_arn.clone(),
        service,
        res_acct,
        targets,
        session_policy: false,
    };
    let mut g = Gen { rng, sc };

    let mut policies = Map::new();
    let has_identity = matches!(caller, Caller::User | Caller::Session);
    if has_identity {
        let n = g.rng.weighted(&[8, 52, 30, 10]);
        let docs: Vec<Value> = (0..n).map(|_| g.policy(Kind::Identity, 0.75, 3)).collect();
        if !docs.is_empty() || g.rng.chance(0.5) {
            policies.insert("identity".to_owned(), Value::Array(docs));
        }
        if g.rng.chance(0.2) {
            let b = g.policy(Kind::Boundary, 0.85, 2);
            policies.insert("boundary".to_owned(), b);
        }
    }
    if caller == Caller::Session && g.rng.chance(0.25) {
        let s = g.policy(Kind::Session, 0.85, 2);
        policies.insert("session".to_owned(), s);
        g.sc.session_policy = true;
    }
    let p_rp = match caller {
        Caller::Anonymous => 0.9,
        _ if res_acct == OTHER => 0.75,
        _ => 0.35,
    };
    if g.rng.chance(p_rp) {
        let r = g.policy(Kind::Resource, 0.75, 3);
        policies.insert("resource".to_owned(), r);
    }
    if g.rng.chance(0.25) {
        let levels = g.rng.range(1, 3);
        let mut v = Vec::new();
        for l in 0..levels {
            let mut level = Vec::new();
            if l == 0 && g.rng.chance(0.7) || g.rng.chance(0.4) {
                level.push(json!({"Version": "2012-10-17", "Statement": [full_access()]}));
            } else {
                level.push(g.policy(Kind::Scp, 0.9, 2));
            }
            if g.rng.chance(0.3) {
                level.push(g.policy(Kind::Scp, 0.1, 2));
            }
            v.push(Value::Array(level));
        }
        policies.insert("scps".to_owned(), Value::Array(v));
    }
    if g.rng.chance(if service == Service::S3 { 0.3 } else { 0.1 }) {
        let levels = g.rng.range(1, 2);
        let mut v = Vec::new();
        for _ in 0..levels {
            let mut level = vec![json!({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]
            })];
            if g.rng.chance(0.6) {
                level.push(g.policy(Kind::Rcp, 0.0, 2));
            }
            v.push(Value::Array(level));
        }
        policies.insert("rcps".to_owned(), Value::Array(v));
    }

    let mut principal = Map::new();
    principal.insert("arn".to_owned(), json!(principal_arn));
    if let Some(role) = &role_arn
        && (role.contains("/ops/") || g.rng.chance(0.3))
    {
        principal.insert("role_arn".to_owned(), json!(role));
    }
    if caller != Caller::Anonymous && g.rng.chance(0.6) {
        let mut tags = Map::new();
        tags.insert("team".to_owned(), json!(*g.rng.pick(&["blue", "red"])));
        if g.rng.chance(0.3) {
            tags.insert("Project".to_owned(), json!("apollo"));
        }
        principal.insert("tags".to_owned(), Value::Object(tags));
    }

    let targets = std::mem::take(&mut g.sc.targets);
    let tests: Vec<Value> = targets
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            json!({
                "name": format!("case {i}"),
                "action": t.action,
                "resource": t.resource,
                "context": g.context(),
                "expect": "implicitDeny"
            })
        })
        .collect();

    let mut file = Map::new();
    file.insert("principal".to_owned(), Value::Object(principal));
    file.insert("policies".to_owned(), Value::Object(policies));
    if tests.iter().any(|t| {
        t["resource"]
            .as_str()
            .is_some_and(|r| r.starts_with("arn:aws:s3:"))
    }) || res_acct == OTHER
    {
        file.insert("resource_account".to_owned(), json!(res_acct));
    }
    file.insert("tests".to_owned(), Value::Array(tests));
    Value::Object(file)
}

fn full_access() -> Value {
    serde_json::from_str(FULL_ACCESS_STATEMENT).expect("full access statement")
}
