//! Candidate lists indexed on the values of equality conditions.
//!
//! Many statements often share an action and differ only in a condition
//! value (`StringEquals ec2:ResourceTag/team = team<i>`). A statement whose
//! condition can only hold when one of the request's values for a key
//! equals one of a fixed set of policy values (see
//! [`Condition::equality_values`]) is filed under those values; a decision
//! reads the request's values for the key and visits only the statements
//! filed under them, plus those that cannot be filed (the scan list), in
//! the list's order. Skipping a statement whose condition cannot hold never
//! changes a decision: `engine::reference` checks that.

use std::hash::BuildHasher;
use std::sync::Arc;

use rustc_hash::FxBuildHasher;
use smallvec::SmallVec;

use crate::engine::compile::{Cand, Slot, Statement};
use crate::engine::request::Request;
use crate::policy::condition::{Condition, EqualityForm};
use crate::policy::variables::{Lookup, MissingKeys, ValueRef};

/// Lists shorter than this are scanned: the index would not pay for its
/// lookups.
const VALUE_INDEX_MIN: usize = 4;

/// Statements that may match one action (or one service, or any action),
/// in slot order, with an index on condition values when that helps.
#[derive(Debug, Default)]
pub(crate) struct CandList {
    pub list: Vec<Cand>,
    values: Option<Box<ValueIndex>>,
}

#[derive(Debug)]
struct ValueIndex {
    /// Positions in the list of statements that are always visited.
    scan: Box<[u32]>,
    keys: Box<[KeyValues]>,
}

/// The statements filed under one condition key and one way of comparing.
#[derive(Debug)]
struct KeyValues {
    /// The key in lower case.
    key: Arc<str>,
    /// The key as a policy wrote it, to report when the request lacks it.
    written: Arc<str>,
    form: EqualityForm,
    /// (hash of a normalised policy value, position in the list), sorted.
    /// Values are filed by hash, not by text: a collision only visits a
    /// statement whose condition then fails, and the index stays a few
    /// bytes per statement.
    positions: Box<[(u64, u32)]>,
}

fn value_hash(v: &str) -> u64 {
    FxBuildHasher.hash_one(v)
}

impl KeyValues {
    fn hits(&self, value: &str, out: &mut SmallVec<[u32; 16]>) {
        let Some(v) = self.form.normalize(value) else {
            return;
        };
        let h = value_hash(&v);
        let start = self.positions.partition_point(|(k, _)| *k < h);
        let found = self.positions.get(start..).unwrap_or_default();
        out.extend(found.iter().take_while(|(k, _)| *k == h).map(|(_, p)| *p));
    }
}

/// Where a statement is filed: its first equality condition, with the
/// hashes of its normalised values. Computed once per statement of a set,
/// however many candidate lists the statement is in.
#[derive(Debug)]
pub(crate) struct Filing<'s> {
    cond: &'s Condition,
    form: EqualityForm,
    hashes: SmallVec<[u64; 2]>,
}

/// The filing of `s`, if one of its conditions can be indexed.
pub(crate) fn filing(s: &Statement) -> Option<Filing<'_>> {
    s.conditions().iter().find_map(|cond| {
        let (form, values) = cond.equality_values()?;
        let hashes = values.iter().map(|v| value_hash(v)).collect();
        Some(Filing { cond, form, hashes })
    })
}

impl CandList {
    /// Builds the value index (once the list is complete).
    pub fn index_values<'f, 's: 'f>(&mut self, filed_as: impl Fn(Slot) -> Option<&'f Filing<'s>>) {
        self.values = None;
        if self.list.len() < VALUE_INDEX_MIN {
            return;
        }
        let mut scan = Vec::new();
        let mut keys: Vec<(KeyValues, Vec<(u64, u32)>)> = Vec::new();
        for (pos, cand) in self.list.iter().enumerate() {
            let pos = u32::try_from(pos).unwrap_or(u32::MAX);
            let Some(Filing { cond, form, hashes }) = filed_as(cand.slot) else {
                scan.push(pos);
                continue;
            };
            let form = *form;
            let at = match keys
                .iter()
                .position(|(k, _)| k.form == form && *k.key == *cond.key())
            {
                Some(at) => at,
                None => {
                    let (key, written) = cond.keys_shared();
                    let k = KeyValues {
                        key: key.clone(),
                        written: written.clone(),
                        form,
                        positions: Box::default(),
                    };
                    keys.push((k, Vec::new()));
                    keys.len() - 1
                }
            };
            let Some((_, filed)) = keys.get_mut(at) else {
                scan.push(pos);
                continue;
            };
            filed.extend(hashes.iter().map(|h| (*h, pos)));
        }
        if keys.is_empty() {
            return;
        }
        let keys = keys
            .into_iter()
            .map(|(mut k, mut filed)| {
                // A value written twice files the statement once.
                filed.sort_unstable();
                filed.dedup();
                k.positions = filed.into();
                k
            })
            .collect();
        self.values = Some(Box::new(ValueIndex {
            scan: scan.into(),
            keys,
        }));
    }

    /// Calls `f(candidate, known, missing)` for each statement whose
    /// conditions can hold for the request's values, in list order, until
    /// `f` returns false; returns whether it ran to the end.
    #[inline]
    pub fn visit<'p>(
        &'p self,
        req: &Request<'_>,
        known: bool,
        missing: &mut MissingKeys<'p>,
        f: &mut impl FnMut(Cand, bool, &mut MissingKeys<'p>) -> bool,
    ) -> bool {
        let Some(index) = &self.values else {
            return self.list.iter().all(|c| f(*c, known, missing));
        };
        let mut hits: SmallVec<[u32; 16]> = SmallVec::new();
        for k in index.keys.iter() {
            match req.get(&k.key) {
                // The skipped statements' conditions would have noted it.
                None => missing.note(&k.written),
                Some(ValueRef::One(v)) => k.hits(v, &mut hits),
                Some(ValueRef::Many(vs)) => {
                    for v in vs {
                        k.hits(v, &mut hits);
                    }
                }
            }
        }
        let positions: &[u32] = if hits.is_empty() {
            &index.scan
        } else {
            hits.extend_from_slice(&index.scan);
            hits.sort_unstable();
            hits.dedup();
            &hits
        };
        positions
            .iter()
            .filter_map(|p| self.list.get(*p as usize))
            .all(|c| f(*c, known, missing))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use crate::engine::compile::{CompiledPolicy, PolicySet};
    use crate::engine::err::EngineError;
    use crate::engine::request::{Context, ContextValue, Principal, Request};
    use crate::policy::PolicyKind;
    use crate::policy::variables::MissingKeys;

    /// Issue 12: statements that differ only in an equality condition's
    /// value cost one visit, whatever their number; statements the index
    /// cannot file (here `StringLike`) are always visited; a missing key is
    /// still reported.
    #[test]
    fn a_decision_visits_only_statements_filed_under_the_request_values() -> Result<(), EngineError>
    {
        let mut statements: Vec<_> = (0..1000)
            .map(|i| {
                json!({"Effect": "Allow", "Action": "ec2:StartInstances", "Resource": "*",
                       "Condition": {"StringEqualsIgnoreCase": {"ec2:ResourceTag/team": [format!("Team{i}"), format!("alias{i}")]}}})
            })
            .collect();
        statements.push(
            json!({"Effect": "Allow", "Action": "ec2:StartInstances", "Resource": "*",
            "Condition": {"StringLike": {"ec2:ResourceTag/team": "x*"}}}),
        );
        let doc = json!({"Version": "2012-10-17", "Statement": statements});
        let p = CompiledPolicy::from_json("p", PolicyKind::Identity, &doc)?;
        let set = PolicySet::new(vec![Arc::new(p)]);
        let caller = Principal::parse("arn:aws:iam::111122223333:user/alice")?;
        let visits = |ctx: &Context| {
            let req = Request::new(&caller, "ec2:StartInstances", "*", ctx);
            let mut missing = MissingKeys::default();
            let mut seen = Vec::new();
            set.allow.candidates(&req, &mut missing, |c, _, _| {
                seen.push(c.slot.statement);
                true
            });
            (seen, missing.keys().join(","))
        };
        let one = Context::new().with("ec2:ResourceTag/team", "TEAM7");
        assert_eq!(visits(&one), (vec![7, 1000], String::new()));
        let mut many = Context::new();
        many.insert(
            "ec2:ResourceTag/team",
            ContextValue::Many(vec!["alias9".into(), "team3".into(), "team9".into()]),
        );
        assert_eq!(visits(&many), (vec![3, 9, 1000], String::new()));
        let none = Context::new().with("ec2:ResourceTag/team", "nobody");
        assert_eq!(visits(&none), (vec![1000], String::new()));
        assert_eq!(
            visits(&Context::new()),
            (vec![1000], "ec2:ResourceTag/team".to_owned())
        );
        Ok(())
    }
}
