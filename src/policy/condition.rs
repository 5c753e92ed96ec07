//! Condition operators: their names, and the evaluation of one
//! `operator: {key: values}` entry against a request's keys.
//!
//! The rules follow the IAM User Guide's "Condition operators" and
//! "Single-valued vs. multivalued context keys" pages: several values of one
//! key are alternatives (for a negated operator: "none of"); a missing key
//! makes a negated operator, `...IfExists` and `ForAllValues:` true, and the
//! rest false; `ForAnyValue:` needs one request value to pass, `ForAllValues:`
//! every one.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::policy::arn;
use crate::policy::intern::intern;
use crate::policy::value::{Decimal, parse_bool, parse_date, parse_ip, parse_ip_net};
use crate::policy::variables::{
    Lookup, MissingKeys, Resolved, Template, ValueRef, concat, equals_tokens,
};
use crate::policy::wildcard;

/// The comparison an operator makes, without qualifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    NotIpAddress,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    Null,
}

const OPERATORS: &[(&str, OpKind)] = &[
    ("StringEquals", OpKind::StringEquals),
    ("StringNotEquals", OpKind::StringNotEquals),
    ("StringEqualsIgnoreCase", OpKind::StringEqualsIgnoreCase),
    (
        "StringNotEqualsIgnoreCase",
        OpKind::StringNotEqualsIgnoreCase,
    ),
    ("StringLike", OpKind::StringLike),
    ("StringNotLike", OpKind::StringNotLike),
    ("NumericEquals", OpKind::NumericEquals),
    ("NumericNotEquals", OpKind::NumericNotEquals),
    ("NumericLessThan", OpKind::NumericLessThan),
    ("NumericLessThanEquals", OpKind::NumericLessThanEquals),
    ("NumericGreaterThan", OpKind::NumericGreaterThan),
    ("NumericGreaterThanEquals", OpKind::NumericGreaterThanEquals),
    ("DateEquals", OpKind::DateEquals),
    ("DateNotEquals", OpKind::DateNotEquals),
    ("DateLessThan", OpKind::DateLessThan),
    ("DateLessThanEquals", OpKind::DateLessThanEquals),
    ("DateGreaterThan", OpKind::DateGreaterThan),
    ("DateGreaterThanEquals", OpKind::DateGreaterThanEquals),
    ("Bool", OpKind::Bool),
    ("BinaryEquals", OpKind::BinaryEquals),
    ("IpAddress", OpKind::IpAddress),
    ("NotIpAddress", OpKind::NotIpAddress),
    ("ArnEquals", OpKind::ArnEquals),
    ("ArnLike", OpKind::ArnLike),
    ("ArnNotEquals", OpKind::ArnNotEquals),
    ("ArnNotLike", OpKind::ArnNotLike),
    ("Null", OpKind::Null),
];

impl OpKind {
    /// The operator's name as IAM spells it.
    pub fn name(self) -> &'static str {
        OPERATORS
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .unwrap_or("Null")
    }

    /// Negated operators are true when no policy value matches, including
    /// when the key is missing.
    pub fn is_negated(self) -> bool {
        matches!(
            self,
            OpKind::StringNotEquals
                | OpKind::StringNotEqualsIgnoreCase
                | OpKind::StringNotLike
                | OpKind::NumericNotEquals
                | OpKind::DateNotEquals
                | OpKind::NotIpAddress
                | OpKind::ArnNotEquals
                | OpKind::ArnNotLike
        )
    }
}

/// `ForAllValues:` / `ForAnyValue:` or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetQualifier {
    None,
    ForAllValues,
    ForAnyValue,
}

/// A condition operator with its qualifiers, e.g. `ForAnyValue:StringLikeIfExists`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Operator {
    pub kind: OpKind,
    pub set: SetQualifier,
    pub if_exists: bool,
}

/// Why an operator name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorError {
    Unknown,
    NullIfExists,
}

impl Operator {
    /// Parses an operator name as IAM accepts it (names are case-sensitive).
    pub fn parse(name: &str) -> Result<Self, OperatorError> {
        let (set, rest) = if let Some(r) = name.strip_prefix("ForAllValues:") {
            (SetQualifier::ForAllValues, r)
        } else if let Some(r) = name.strip_prefix("ForAnyValue:") {
            (SetQualifier::ForAnyValue, r)
        } else {
            (SetQualifier::None, name)
        };
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (rest, false),
        };
        let kind = OPERATORS
            .iter()
            .find(|(n, _)| *n == base)
            .map(|(_, k)| *k)
            .ok_or(OperatorError::Unknown)?;
        if kind == OpKind::Null && if_exists {
            return Err(OperatorError::NullIfExists);
        }
        if kind == OpKind::Null && set != SetQualifier::None {
            return Err(OperatorError::Unknown);
        }
        Ok(Self {
            kind,
            set,
            if_exists,
        })
    }

    /// The operator's full name, as it would be written in a policy.
    pub fn to_name(self) -> String {
        let mut s = String::new();
        match self.set {
            SetQualifier::ForAllValues => s.push_str("ForAllValues:"),
            SetQualifier::ForAnyValue => s.push_str("ForAnyValue:"),
            SetQualifier::None => {}
        }
        s.push_str(self.kind.name());
        if self.if_exists {
            s.push_str("IfExists");
        }
        s
    }
}

/// Policy values, typed once at compile time.
#[derive(Debug, Clone, PartialEq)]
enum Operands {
    /// `StringEquals` family, `BinaryEquals`: exact text.
    Exact(Box<[Template]>),
    /// `*IgnoreCase`: compared after lower-casing both sides.
    IgnoreCase(Box<[Template]>),
    /// `StringLike` family: wildcards.
    Like(Box<[Template]>),
    /// `Arn*`: wildcards, field by field.
    Arn(Box<[Template]>),
    /// `Numeric*`; `None` for a value that is not a number.
    Numeric(Box<[Option<Decimal>]>),
    /// `Date*` in epoch milliseconds.
    Date(Box<[Option<i64>]>),
    /// `IpAddress` family.
    Ip(Box<[Option<IpNet>]>),
    /// `Bool`.
    Bool(Box<[Template]>),
    /// `Null`: `Some(true)` requires the key to be absent.
    Null(Box<[Option<bool>]>),
}

/// How an equality condition compares a request value with its policy
/// values, as one text per value: two values compare equal exactly when
/// their texts from [`EqualityForm::normalize`] are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EqualityForm {
    /// Byte for byte (`StringEquals`, `BinaryEquals`, `ArnEquals` and
    /// `ArnLike` without wildcards).
    Exact,
    /// Lower-cased (`StringEqualsIgnoreCase`).
    IgnoreCase,
    /// As a boolean (`Bool`).
    Bool,
    /// As a decimal number (`NumericEquals`).
    Numeric,
    /// As an instant (`DateEquals`).
    Date,
}

impl EqualityForm {
    /// The text `v` compares as, or `None` when it equals no value at all
    /// (not a boolean, number or date).
    pub fn normalize(self, v: &str) -> Option<Cow<'_, str>> {
        match self {
            EqualityForm::Exact => Some(Cow::Borrowed(v)),
            EqualityForm::IgnoreCase => Some(Cow::Owned(v.to_lowercase())),
            EqualityForm::Bool => {
                parse_bool(v).map(|b| Cow::Borrowed(if b { "true" } else { "false" }))
            }
            EqualityForm::Numeric => Decimal::parse(v).map(|d| Cow::Owned(d.canonical())),
            EqualityForm::Date => parse_date(v).map(|d| Cow::Owned(d.to_string())),
        }
    }
}

/// One compiled `operator: {key: values}` entry. Equal conditions
/// evaluate alike.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    op: Operator,
    key: Arc<str>,
    key_written: Arc<str>,
    operands: Operands,
}

impl Condition {
    /// Compiles a condition; `variables` is whether the policy's version
    /// substitutes `${...}`.
    pub fn compile(op: Operator, key: &str, values: &[String], variables: bool) -> Self {
        let templates = |wild: bool| -> Box<[Template]> {
            values
                .iter()
                .map(|v| Template::parse(v, variables, wild))
                .collect()
        };
        let operands = match op.kind {
            OpKind::StringEquals | OpKind::StringNotEquals | OpKind::BinaryEquals => {
                Operands::Exact(templates(false))
            }
            OpKind::StringEqualsIgnoreCase | OpKind::StringNotEqualsIgnoreCase => {
                Operands::IgnoreCase(templates(false))
            }
            OpKind::StringLike | OpKind::StringNotLike => Operands::Like(templates(true)),
            OpKind::ArnEquals | OpKind::ArnLike | OpKind::ArnNotEquals | OpKind::ArnNotLike => {
                Operands::Arn(templates(true))
            }
            OpKind::NumericEquals
            | OpKind::NumericNotEquals
            | OpKind::NumericLessThan
            | OpKind::NumericLessThanEquals
            | OpKind::NumericGreaterThan
            | OpKind::NumericGreaterThanEquals => {
                Operands::Numeric(values.iter().map(|v| Decimal::parse(v)).collect())
            }
            OpKind::DateEquals
            | OpKind::DateNotEquals
            | OpKind::DateLessThan
            | OpKind::DateLessThanEquals
            | OpKind::DateGreaterThan
            | OpKind::DateGreaterThanEquals => {
                Operands::Date(values.iter().map(|v| parse_date(v)).collect())
            }
            OpKind::IpAddress | OpKind::NotIpAddress => {
                Operands::Ip(values.iter().map(|v| parse_ip_net(v)).collect())
            }
            OpKind::Bool => Operands::Bool(templates(false)),
            OpKind::Null => Operands::Null(values.iter().map(|v| parse_bool(v)).collect()),
        };
        Self {
            op,
            key: intern(&key.to_ascii_lowercase()),
            key_written: intern(key),
            operands,
        }
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.op
    }

    /// The key in lower case.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The key in lower case and as written, shared.
    pub fn keys_shared(&self) -> (&Arc<str>, &Arc<str>) {
        (&self.key, &self.key_written)
    }

    /// The key as the policy wrote it.
    pub fn key_as_written(&self) -> &str {
        &self.key_written
    }

    /// For a condition that can only hold when one of the request's values
    /// for its key equals one of its policy values: how values compare and
    /// the policy values, normalised (values that can equal nothing are
    /// left out). `None` for every other condition: negated, ordered,
    /// wildcard and `Null` operators, `...IfExists` and `ForAllValues:`
    /// (both hold without the key), and values with policy variables.
    pub fn equality_values(&self) -> Option<(EqualityForm, Vec<String>)> {
        if self.op.if_exists || self.op.set == SetQualifier::ForAllValues {
            return None;
        }
        let literals = |ts: &[Template], form: EqualityForm| -> Option<Vec<String>> {
            let mut out = Vec::with_capacity(ts.len());
            for t in ts {
                if let Some(v) = form.normalize(t.as_literal()?) {
                    out.push(v.into_owned());
                }
            }
            Some(out)
        };
        let form_values = match (&self.operands, self.op.kind) {
            (Operands::Exact(ts), OpKind::StringEquals | OpKind::BinaryEquals) => {
                (EqualityForm::Exact, literals(ts, EqualityForm::Exact)?)
            }
            (Operands::Arn(ts), OpKind::ArnEquals | OpKind::ArnLike) => {
                (EqualityForm::Exact, literals(ts, EqualityForm::Exact)?)
            }
            (Operands::IgnoreCase(ts), OpKind::StringEqualsIgnoreCase) => (
                EqualityForm::IgnoreCase,
                literals(ts, EqualityForm::IgnoreCase)?,
            ),
            (Operands::Bool(ts), OpKind::Bool) => {
                (EqualityForm::Bool, literals(ts, EqualityForm::Bool)?)
            }
            (Operands::Numeric(ns), OpKind::NumericEquals) => (
                EqualityForm::Numeric,
                ns.iter().flatten().map(Decimal::canonical).collect(),
            ),
            (Operands::Date(ds), OpKind::DateEquals) => (
                EqualityForm::Date,
                ds.iter().flatten().map(i64::to_string).collect(),
            ),
            _ => return None,
        };
        Some(form_values)
    }

    /// Evaluates the condition. `missing` hears each key the condition (or a
    /// variable in its values) needed and the request lacked.
    pub fn evaluate<'p, L: Lookup + ?Sized>(
        &'p self,
        ctx: &L,
        missing: &mut MissingKeys<'p>,
    ) -> bool {
        let value = ctx.get(&self.key);
        if let Operands::Null(expect) = &self.operands {
            let absent = match value {
                None => true,
                Some(ValueRef::Many(v)) => v.is_empty(),
                Some(ValueRef::One(_)) => false,
            };
            return expect.contains(&Some(absent));
        }
        let Some(value) = value else {
            missing.note(&self.key_written);
            return self.op.if_exists
                || self.op.set == SetQualifier::ForAllValues
                || (self.op.set == SetQualifier::None && self.op.kind.is_negated());
        };
        let negated = self.op.kind.is_negated();
        let one = |v: &str, missing: &mut MissingKeys<'p>| -> bool {
            self.matches_any(v, ctx, missing) != negated
        };
        match (self.op.set, value) {
            (SetQualifier::None, ValueRef::One(v)) => one(v, missing),
            (SetQualifier::None, ValueRef::Many(vs)) => {
                // Without a set qualifier a multivalued key passes when any
                // value matches; a negated operator needs none to match.
                let any = vs.iter().any(|v| self.matches_any(v, ctx, missing));
                any != negated
            }
            (SetQualifier::ForAnyValue, ValueRef::One(v)) => one(v, missing),
            (SetQualifier::ForAnyValue, ValueRef::Many(vs)) => vs.iter().any(|v| one(v, missing)),
            (SetQualifier::ForAllValues, ValueRef::One(v)) => one(v, missing),
            (SetQualifier::ForAllValues, ValueRef::Many(vs)) => vs.iter().all(|v| one(v, missing)),
        }
    }

    /// Whether one request value matches any policy value under the
    /// operator's positive comparison.
    fn matches_any<'p, L: Lookup + ?Sized>(
        &'p self,
        v: &str,
        ctx: &L,
        missing: &mut MissingKeys<'p>,
    ) -> bool {
        match &self.operands {
            Operands::Exact(ts) => ts.iter().any(|t| match t.as_literal() {
                Some(lit) => lit == v,
                None => match t.resolve(ctx, missing) {
                    Resolved::Tokens(toks) => equals_tokens(&toks, v),
                    Resolved::Unresolved => false,
                },
            }),
            Operands::IgnoreCase(ts) => {
                let v = v.to_lowercase();
                ts.iter().any(|t| match t.as_literal() {
                    Some(lit) => lit.to_lowercase() == v,
                    None => match t.resolve(ctx, missing) {
                        Resolved::Tokens(toks) => concat(&toks).to_lowercase() == v,
                        Resolved::Unresolved => false,
                    },
                })
            }
            Operands::Like(ts) => ts.iter().any(|t| match t.resolve(ctx, missing) {
                Resolved::Tokens(toks) => wildcard::matches(&toks, v),
                Resolved::Unresolved => false,
            }),
            Operands::Arn(ts) => ts.iter().any(|t| match t.resolve(ctx, missing) {
                Resolved::Tokens(mut toks) => arn::arn_like(&mut toks, v),
                Resolved::Unresolved => false,
            }),
            Operands::Numeric(ns) => {
                let Some(x) = Decimal::parse(v) else {
                    return false;
                };
                ns.iter().flatten().any(|n| ordered(self.op.kind, x.cmp(n)))
            }
            Operands::Date(ds) => {
                let Some(x) = parse_date(v) else {
                    return false;
                };
                ds.iter().flatten().any(|d| ordered(self.op.kind, x.cmp(d)))
            }
            Operands::Ip(nets) => {
                let Some(addr) = parse_ip(v) else {
                    return false;
                };
                nets.iter().flatten().any(|n| net_contains(n, addr))
            }
            Operands::Bool(ts) => {
                let Some(x) = parse_bool(v) else {
                    return false;
                };
                ts.iter().any(|t| {
                    let text = match t.as_literal() {
                        Some(lit) => parse_bool(lit),
                        None => match t.resolve(ctx, missing) {
                            Resolved::Tokens(toks) => parse_bool(&concat(&toks)),
                            Resolved::Unresolved => None,
                        },
                    };
                    text == Some(x)
                })
            }
            Operands::Null(_) => false,
        }
    }
}

fn net_contains(net: &IpNet, addr: IpAddr) -> bool {
    match (net, addr) {
        (IpNet::V4(n), IpAddr::V4(a)) => n.contains(&a),
        (IpNet::V6(n), IpAddr::V6(a)) => n.contains(&a),
        (IpNet::V6(n), IpAddr::V4(a)) => n.contains(&a.to_ipv6_mapped()),
        (IpNet::V4(n), IpAddr::V6(a)) => a.to_ipv4_mapped().is_some_and(|a| n.contains(&a)),
    }
}

/// Whether `request cmp policy` satisfies an ordered operator.
fn ordered(kind: OpKind, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match kind {
        OpKind::NumericEquals
        | OpKind::NumericNotEquals
        | OpKind::DateEquals
        | OpKind::DateNotEquals => ord == Equal,
        OpKind::NumericLessThan | OpKind::DateLessThan => ord == Less,
        OpKind::NumericLessThanEquals | OpKind::DateLessThanEquals => ord != Greater,
        OpKind::NumericGreaterThan | OpKind::DateGreaterThan => ord == Greater,
        OpKind::NumericGreaterThanEquals | OpKind::DateGreaterThanEquals => ord != Less,
        _ => false,
    }
}
