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

use rustc_hash::FxHashMap;
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
    key: Box<str>,
    /// The key as a policy wrote it, to report when the request lacks it.
    written: Box<str>,
    form: EqualityForm,
    /// Normalised policy value → positions in the list.
    positions: FxHashMap<Box<str>, SmallVec<[u32; 1]>>,
}

impl KeyValues {
    fn hits(&self, value: &str, out: &mut SmallVec<[u32; 16]>) {
        if let Some(v) = self.form.normalize(value)
            && let Some(found) = self.positions.get(v.as_ref())
        {
            out.extend_from_slice(found);
        }
    }
}

/// The condition a statement is filed under: its first equality condition.
fn filing(s: &Statement) -> Option<(&Condition, EqualityForm, Vec<String>)> {
    s.conditions().iter().find_map(|c| {
        let (form, values) = c.equality_values()?;
        Some((c, form, values))
    })
}

impl CandList {
    /// Builds the value index (once the list is complete).
    pub fn index_values<'s>(&mut self, statement: impl Fn(Slot) -> Option<&'s Statement>) {
        self.values = None;
        if self.list.len() < VALUE_INDEX_MIN {
            return;
        }
        let mut scan = Vec::new();
        let mut keys: Vec<KeyValues> = Vec::new();
        for (pos, cand) in self.list.iter().enumerate() {
            let pos = u32::try_from(pos).unwrap_or(u32::MAX);
            let Some((cond, form, values)) = statement(cand.slot).and_then(filing) else {
                scan.push(pos);
                continue;
            };
            let at = match keys
                .iter()
                .position(|k| k.form == form && *k.key == *cond.key())
            {
                Some(at) => at,
                None => {
                    keys.push(KeyValues {
                        key: cond.key().into(),
                        written: cond.key_as_written().into(),
                        form,
                        positions: FxHashMap::default(),
                    });
                    keys.len() - 1
                }
            };
            let Some(k) = keys.get_mut(at) else {
                scan.push(pos);
                continue;
            };
            for v in values {
                let list = k.positions.entry(v.into_boxed_str()).or_default();
                // A value written twice files the statement once.
                if list.last() != Some(&pos) {
                    list.push(pos);
                }
            }
        }
        if keys.is_empty() {
            return;
        }
        for k in &mut keys {
            k.positions.shrink_to_fit();
        }
        self.values = Some(Box::new(ValueIndex {
            scan: scan.into(),
            keys: keys.into(),
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
