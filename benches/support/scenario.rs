//! The benchmark scenario, engine-neutral: an EC2 control plane in one
//! account, `n` identity policies spread over `n / 10` IAM users (ten each,
//! as a bundle would attach them), one SCP level, and the requests the
//! benches time or check. A deterministic generator: the same `n` always
//! gives the same policies.
//!
//! The policies are kept in a small intermediate form so that the same
//! statements can be written out as IAM JSON (here, for iamgate) and as
//! Cedar policies and Rego data (`benches/compare`), and the engines'
//! answers compared.

use serde_json::{Map, Value, json};

pub const ACCOUNT: &str = "111122223333";

const TEAMS: [&str; 8] = [
    "blue", "green", "red", "amber", "violet", "teal", "coral", "slate",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        }
    }
}

/// The condition operators the scenario uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    StringEquals,
    StringNotEquals,
    StringLike,
    StringNotLike,
    IpAddress,
    NotIpAddress,
    ForAllValuesStringEquals,
}

impl Op {
    /// The operator's IAM name (the Rego rules use the same spelling).
    pub fn iam_name(self) -> &'static str {
        match self {
            Op::StringEquals => "StringEquals",
            Op::StringNotEquals => "StringNotEquals",
            Op::StringLike => "StringLike",
            Op::StringNotLike => "StringNotLike",
            Op::IpAddress => "IpAddress",
            Op::NotIpAddress => "NotIpAddress",
            Op::ForAllValuesStringEquals => "ForAllValues:StringEquals",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Cond {
    pub op: Op,
    /// As IAM spells it (keys are case-insensitive; the Cedar and Rego
    /// translations lower-case them).
    pub key: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Stmt {
    pub sid: String,
    pub effect: Effect,
    pub not_action: bool,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    pub conds: Vec<Cond>,
}

impl Stmt {
    fn new(sid: &str, effect: Effect, actions: &[&str], resources: &[String]) -> Self {
        Self {
            sid: sid.to_owned(),
            effect,
            not_action: false,
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
            resources: resources.to_vec(),
            conds: Vec::new(),
        }
    }

    fn when(mut self, op: Op, key: &str, values: &[&str]) -> Self {
        self.conds.push(Cond {
            op,
            key: key.to_owned(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        });
        self
    }
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub id: String,
    pub stmts: Vec<Stmt>,
}

#[derive(Debug, Clone)]
pub struct User {
    pub arn: String,
    pub name: String,
    pub team: &'static str,
    /// Indices into [`Scenario::identity`].
    pub policies: std::ops::Range<usize>,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub users: Vec<User>,
    pub identity: Vec<Policy>,
    /// The one SCP level (the caller account's), all policies of it.
    pub scps: Vec<Policy>,
    /// The user whose requests are benched.
    pub subject: usize,
}

/// The outcome a request should get (IAM policy simulator spelling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Allowed,
    ImplicitDeny,
    ExplicitDeny,
}

impl Expect {
    pub fn as_str(self) -> &'static str {
        match self {
            Expect::Allowed => "allowed",
            Expect::ImplicitDeny => "implicitDeny",
            Expect::ExplicitDeny => "explicitDeny",
        }
    }
}

#[derive(Debug, Clone)]
pub enum CtxValue {
    Str(String),
    /// A string for IAM and Rego; an `ipaddr` value for Cedar.
    Ip(String),
    /// A multivalued key.
    List(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Req {
    pub name: String,
    pub action: String,
    pub resource: String,
    /// Keys as a front-end would receive them (mixed case).
    pub ctx: Vec<(String, CtxValue)>,
    pub expect: Expect,
}

fn ec2(kind: &str) -> String {
    format!("arn:aws:ec2:*:{ACCOUNT}:{kind}/*")
}

/// The ten identity policies of user `k` (fewer when `count < 10`).
fn user_policies(k: usize, user: &str, team: &str, count: usize) -> Vec<Policy> {
    let any = vec!["*".to_owned()];
    let mut out = Vec::with_capacity(count);
    for j in 0..count {
        let (name, stmts) = match j % 10 {
            0 => {
                let mut stmts = vec![Stmt::new(
                    "Ec2Read",
                    Effect::Allow,
                    &["ec2:Describe*", "ec2:Get*"],
                    &any,
                )];
                if k % 4 == 1 {
                    stmts.push(Stmt::new(
                        "LbRead",
                        Effect::Allow,
                        &["elasticloadbalancing:Describe*", "autoscaling:Describe*"],
                        &any,
                    ));
                }
                ("ec2-read", stmts)
            }
            1 => (
                "start-stop-own-team",
                vec![
                    Stmt::new(
                        "StartStopOwnTeam",
                        Effect::Allow,
                        &[
                            "ec2:StartInstances",
                            "ec2:StopInstances",
                            "ec2:RebootInstances",
                        ],
                        &[ec2("instance")],
                    )
                    .when(Op::StringEquals, "ec2:ResourceTag/team", &[team]),
                ],
            ),
            2 => (
                "run-tagged",
                vec![
                    Stmt::new(
                        "RunTaggedInstance",
                        Effect::Allow,
                        &["ec2:RunInstances"],
                        &[ec2("instance")],
                    )
                    .when(Op::StringEquals, "aws:RequestTag/team", &[team])
                    .when(
                        Op::ForAllValuesStringEquals,
                        "aws:TagKeys",
                        &["team", "name", "env"],
                    ),
                    Stmt::new(
                        "RunSupportingResources",
                        Effect::Allow,
                        &["ec2:RunInstances"],
                        &[
                            "arn:aws:ec2:*::image/*".to_owned(),
                            ec2("subnet"),
                            ec2("network-interface"),
                            ec2("security-group"),
                            ec2("volume"),
                            ec2("key-pair"),
                        ],
                    ),
                    Stmt::new(
                        "TagOnLaunch",
                        Effect::Allow,
                        &["ec2:CreateTags"],
                        &[format!("arn:aws:ec2:*:{ACCOUNT}:*/*")],
                    )
                    .when(
                        Op::StringEquals,
                        "ec2:CreateAction",
                        &["RunInstances"],
                    ),
                ],
            ),
            3 => (
                "terminate-guard",
                vec![
                    Stmt::new(
                        "Terminate",
                        Effect::Allow,
                        &["ec2:TerminateInstances"],
                        &[ec2("instance")],
                    ),
                    Stmt::new(
                        "TerminateOnlyOwnTeam",
                        Effect::Deny,
                        &["ec2:TerminateInstances"],
                        &[ec2("instance")],
                    )
                    .when(Op::StringNotEquals, "ec2:ResourceTag/team", &[team]),
                ],
            ),
            4 => {
                let office = format!("10.{}.0.0/16", k % 250);
                let vpn = format!("192.168.{}.0/24", k % 200);
                (
                    "security-groups-from-office",
                    vec![
                        Stmt::new(
                            "SgFromOffice",
                            Effect::Allow,
                            &[
                                "ec2:AuthorizeSecurityGroupIngress",
                                "ec2:RevokeSecurityGroupIngress",
                                "ec2:ModifySecurityGroupRules",
                            ],
                            &[ec2("security-group")],
                        )
                        .when(
                            Op::IpAddress,
                            "aws:SourceIp",
                            &[&office, &vpn],
                        ),
                    ],
                )
            }
            5 => (
                "volumes-own-team",
                vec![
                    Stmt::new(
                        "VolumesOwnTeam",
                        Effect::Allow,
                        &["ec2:AttachVolume", "ec2:DetachVolume", "ec2:CreateSnapshot"],
                        &[ec2("instance"), ec2("volume")],
                    )
                    .when(Op::StringEquals, "ec2:ResourceTag/team", &[team]),
                ],
            ),
            6 => {
                let prefix = format!("{user}/*");
                (
                    "s3-team-artifacts",
                    vec![
                        Stmt::new(
                            "OwnObjects",
                            Effect::Allow,
                            &["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                            &[format!("arn:aws:s3:::{team}-artifacts/{user}/*")],
                        ),
                        Stmt::new(
                            "ListOwnPrefix",
                            Effect::Allow,
                            &["s3:ListBucket"],
                            &[format!("arn:aws:s3:::{team}-artifacts")],
                        )
                        .when(Op::StringLike, "s3:prefix", &[&prefix]),
                    ],
                )
            }
            7 => (
                "iam-self-service",
                vec![Stmt::new(
                    "SelfService",
                    Effect::Allow,
                    &[
                        "iam:GetUser",
                        "iam:ChangePassword",
                        "iam:CreateAccessKey",
                        "iam:DeleteAccessKey",
                        "iam:ListAccessKeys",
                    ],
                    &[format!("arn:aws:iam::{ACCOUNT}:user/${{aws:username}}")],
                )],
            ),
            8 => (
                "messaging",
                vec![
                    Stmt::new(
                        "TeamAlerts",
                        Effect::Allow,
                        &["sns:Publish", "sns:Subscribe"],
                        &[format!("arn:aws:sns:*:{ACCOUNT}:{team}-alerts")],
                    ),
                    Stmt::new(
                        "OwnQueue",
                        Effect::Allow,
                        &["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:SendMessage"],
                        &[format!("arn:aws:sqs:*:{ACCOUNT}:{user}-queue")],
                    ),
                ],
            ),
            _ if k.is_multiple_of(2) => (
                "ec2-only-from-network",
                vec![
                    Stmt::new("Ec2OnlyFromNetwork", Effect::Deny, &["ec2:*"], &any).when(
                        Op::NotIpAddress,
                        "aws:SourceIp",
                        &["10.0.0.0/8", "192.168.0.0/16"],
                    ),
                ],
            ),
            _ => (
                "key-pairs",
                vec![Stmt::new(
                    "OwnKeyPairs",
                    Effect::Allow,
                    &[
                        "ec2:CreateKeyPair",
                        "ec2:DeleteKeyPair",
                        "ec2:ImportKeyPair",
                    ],
                    &[format!("arn:aws:ec2:*:{ACCOUNT}:key-pair/{user}-*")],
                )],
            ),
        };
        let suffix = if j >= 10 {
            format!("-{}", j / 10)
        } else {
            String::new()
        };
        out.push(Policy {
            id: format!("{user}-{name}{suffix}"),
            stmts,
        });
    }
    out
}

/// The SCP level: FullAWSAccess plus three guardrails.
fn scp_level() -> Vec<Policy> {
    let any = vec!["*".to_owned()];
    let mut regions = Stmt::new(
        "DenyOutsideApprovedRegions",
        Effect::Deny,
        &[
            "iam:*",
            "sts:*",
            "organizations:*",
            "support:*",
            "cloudfront:*",
            "route53:*",
            "budgets:*",
        ],
        &any,
    )
    .when(
        Op::StringNotEquals,
        "aws:RequestedRegion",
        &["us-east-1", "eu-west-1"],
    );
    regions.not_action = true;
    vec![
        Policy {
            id: "FullAWSAccess".to_owned(),
            stmts: vec![Stmt::new("FullAWSAccess", Effect::Allow, &["*"], &any)],
        },
        Policy {
            id: "deny-outside-approved-regions".to_owned(),
            stmts: vec![regions],
        },
        Policy {
            id: "deny-large-instances".to_owned(),
            stmts: vec![
                Stmt::new(
                    "DenyLargeInstances",
                    Effect::Deny,
                    &["ec2:RunInstances"],
                    &["arn:aws:ec2:*:*:instance/*".to_owned()],
                )
                .when(
                    Op::StringNotLike,
                    "ec2:InstanceType",
                    &["t3.*", "t3a.*", "m5.*"],
                ),
            ],
        },
        Policy {
            id: "protect-audit-trail".to_owned(),
            stmts: vec![Stmt::new(
                "ProtectAuditTrail",
                Effect::Deny,
                &[
                    "cloudtrail:StopLogging",
                    "cloudtrail:DeleteTrail",
                    "cloudtrail:UpdateTrail",
                ],
                &any,
            )],
        },
    ]
}

/// `n` identity policies over `max(1, n / 10)` users, and the SCP level.
pub fn generate(n: usize) -> Scenario {
    let user_count = (n / 10).max(1);
    let mut users = Vec::with_capacity(user_count);
    let mut identity = Vec::with_capacity(n);
    for k in 0..user_count {
        let name = format!("u{k}");
        let team = TEAMS[k % TEAMS.len()];
        // The last user takes what is left, so the total is exactly `n`.
        let count = if k + 1 == user_count { n - 10 * k } else { 10 };
        let start = identity.len();
        identity.extend(user_policies(k, &name, team, count));
        users.push(User {
            arn: format!("arn:aws:iam::{ACCOUNT}:user/{name}"),
            name,
            team,
            policies: start..identity.len(),
        });
    }
    Scenario {
        subject: 42.min(user_count - 1),
        users,
        identity,
        scps: scp_level(),
    }
}

fn ctx(pairs: &[(&str, &str)]) -> Vec<(String, CtxValue)> {
    pairs
        .iter()
        .map(|(k, v)| {
            let value = if k.eq_ignore_ascii_case("aws:SourceIp") {
                CtxValue::Ip((*v).to_owned())
            } else {
                CtxValue::Str((*v).to_owned())
            };
            ((*k).to_owned(), value)
        })
        .collect()
}

fn req(
    name: &str,
    action: &str,
    resource: &str,
    ctx: Vec<(String, CtxValue)>,
    expect: Expect,
) -> Req {
    Req {
        name: name.to_owned(),
        action: action.to_owned(),
        resource: resource.to_owned(),
        ctx,
        expect,
    }
}

/// The three timed requests of the subject: allowed, implicitDeny,
/// explicitDeny (in that order). They get the same outcome whether the
/// subject has only its own policies or all `n` of them.
pub fn benched(s: &Scenario) -> Vec<Req> {
    let team = s.users.get(s.subject).map_or("blue", |u| u.team);
    let inst = |id: &str| format!("arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0a1b2c3d4e5f6{id}");
    let base = |tag: &str| {
        ctx(&[
            ("aws:SourceIp", "10.1.2.3"),
            ("aws:RequestedRegion", "us-east-1"),
            ("ec2:ResourceTag/team", tag),
        ])
    };
    vec![
        req(
            "allowed",
            "ec2:StartInstances",
            &inst("0001"),
            base(team),
            Expect::Allowed,
        ),
        req(
            "implicitDeny",
            "ec2:StartInstances",
            &inst("0002"),
            base("unowned"),
            Expect::ImplicitDeny,
        ),
        req(
            "explicitDeny",
            "ec2:TerminateInstances",
            &inst("0003"),
            base("unowned"),
            Expect::ExplicitDeny,
        ),
    ]
}

/// More requests of the subject, not timed: every engine must answer them
/// as expected (with the subject's own policies only).
pub fn checks(s: &Scenario) -> Vec<Req> {
    let (k, user, team) = s
        .users
        .get(s.subject)
        .map_or((0, "u0", "blue"), |u| (s.subject, u.name.as_str(), u.team));
    let ip = "10.1.2.3";
    let region = "us-east-1";
    let inst = format!("arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0feedfacecafe0001");
    let run = format!("arn:aws:ec2:us-east-1:{ACCOUNT}:instance/*");
    let bucket = format!("arn:aws:s3:::{team}-artifacts");
    let office_ip = format!("10.{}.7.7", k % 250);
    let sg = format!("arn:aws:ec2:us-east-1:{ACCOUNT}:security-group/sg-0123");
    let own_prefix = format!("{user}/logs");
    let outside_deny = if k.is_multiple_of(2) {
        Expect::ExplicitDeny
    } else {
        Expect::Allowed
    };
    let tags = |keys: &[&str], itype: &str| {
        let mut c = ctx(&[
            ("aws:SourceIp", ip),
            ("aws:RequestedRegion", region),
            ("aws:RequestTag/team", team),
            ("ec2:InstanceType", itype),
        ]);
        c.push((
            "aws:TagKeys".to_owned(),
            CtxValue::List(keys.iter().map(|k| (*k).to_owned()).collect()),
        ));
        c
    };
    let plain = ctx(&[("aws:SourceIp", ip), ("aws:RequestedRegion", region)]);
    let mut out = benched(s);
    out.extend([
        req(
            "describe",
            "ec2:DescribeInstances",
            "*",
            plain.clone(),
            Expect::Allowed,
        ),
        req(
            "describe-from-internet",
            "ec2:DescribeInstances",
            "*",
            ctx(&[
                ("aws:SourceIp", "203.0.113.9"),
                ("aws:RequestedRegion", region),
            ]),
            outside_deny,
        ),
        req(
            "run-tagged",
            "ec2:RunInstances",
            &run,
            tags(&["team", "name"], "t3.micro"),
            Expect::Allowed,
        ),
        req(
            "run-large",
            "ec2:RunInstances",
            &run,
            tags(&["team", "name"], "c5.24xlarge"),
            Expect::ExplicitDeny,
        ),
        req(
            "run-extra-tag",
            "ec2:RunInstances",
            &run,
            tags(&["team", "costcenter"], "t3.micro"),
            Expect::ImplicitDeny,
        ),
        req(
            "s3-own-object",
            "s3:GetObject",
            &format!("{bucket}/{user}/build.tar"),
            plain.clone(),
            Expect::Allowed,
        ),
        req(
            "s3-other-object",
            "s3:GetObject",
            &format!("{bucket}/someone-else/build.tar"),
            plain.clone(),
            Expect::ImplicitDeny,
        ),
        req(
            "s3-no-region",
            "s3:GetObject",
            &format!("{bucket}/{user}/build.tar"),
            ctx(&[("aws:SourceIp", ip)]),
            Expect::ExplicitDeny,
        ),
        req(
            "s3-list-own-prefix",
            "s3:ListBucket",
            &bucket,
            ctx(&[
                ("aws:SourceIp", ip),
                ("aws:RequestedRegion", region),
                ("s3:prefix", &own_prefix),
            ]),
            Expect::Allowed,
        ),
        req(
            "iam-self",
            "iam:GetUser",
            &format!("arn:aws:iam::{ACCOUNT}:user/{user}"),
            plain.clone(),
            Expect::Allowed,
        ),
        req(
            "iam-other",
            "iam:GetUser",
            &format!("arn:aws:iam::{ACCOUNT}:user/admin"),
            plain.clone(),
            Expect::ImplicitDeny,
        ),
        req(
            "sns-team-alerts",
            "sns:Publish",
            &format!("arn:aws:sns:us-east-1:{ACCOUNT}:{team}-alerts"),
            plain.clone(),
            Expect::Allowed,
        ),
        req(
            "start-other-region",
            "ec2:StartInstances",
            &format!("arn:aws:ec2:eu-central-1:{ACCOUNT}:instance/i-0feedfacecafe0002"),
            ctx(&[
                ("aws:SourceIp", ip),
                ("aws:RequestedRegion", "eu-central-1"),
                ("ec2:ResourceTag/team", team),
            ]),
            Expect::ExplicitDeny,
        ),
        req(
            "stop-cloudtrail",
            "cloudtrail:StopLogging",
            &format!("arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/org-trail"),
            plain.clone(),
            Expect::ExplicitDeny,
        ),
        req(
            "sg-from-office",
            "ec2:AuthorizeSecurityGroupIngress",
            &sg,
            ctx(&[
                ("aws:SourceIp", &office_ip),
                ("aws:RequestedRegion", region),
            ]),
            Expect::Allowed,
        ),
        req(
            "sg-from-elsewhere",
            "ec2:AuthorizeSecurityGroupIngress",
            &sg,
            ctx(&[
                ("aws:SourceIp", "10.251.0.1"),
                ("aws:RequestedRegion", region),
            ]),
            Expect::ImplicitDeny,
        ),
        req(
            "terminate-own-team",
            "ec2:TerminateInstances",
            &inst,
            ctx(&[
                ("aws:SourceIp", ip),
                ("aws:RequestedRegion", region),
                ("ec2:ResourceTag/team", team),
            ]),
            Expect::Allowed,
        ),
        req(
            "start-untagged",
            "ec2:StartInstances",
            &inst,
            plain.clone(),
            Expect::ImplicitDeny,
        ),
        req(
            "terminate-untagged",
            "ec2:TerminateInstances",
            &inst,
            plain,
            Expect::ExplicitDeny,
        ),
    ]);
    out
}

// ---------------------------------------------------------------- IAM JSON

/// The policy as an IAM JSON document.
pub fn iam_json(p: &Policy) -> Value {
    let statements: Vec<Value> = p
        .stmts
        .iter()
        .map(|s| {
            let mut m = Map::new();
            m.insert("Sid".to_owned(), json!(s.sid));
            m.insert("Effect".to_owned(), json!(s.effect.as_str()));
            let action_key = if s.not_action { "NotAction" } else { "Action" };
            m.insert(action_key.to_owned(), json!(s.actions));
            m.insert("Resource".to_owned(), json!(s.resources));
            if !s.conds.is_empty() {
                let mut block = Map::new();
                for c in &s.conds {
                    if let Value::Object(keys) = block
                        .entry(c.op.iam_name())
                        .or_insert_with(|| Value::Object(Map::new()))
                    {
                        keys.insert(c.key.clone(), json!(c.values));
                    }
                }
                m.insert("Condition".to_owned(), Value::Object(block));
            }
            Value::Object(m)
        })
        .collect();
    json!({ "Version": "2012-10-17", "Statement": statements })
}
