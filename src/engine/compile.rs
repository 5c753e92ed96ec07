//! Compilation: parsed documents become [`CompiledPolicy`] values (patterns
//! lower-cased and tokenised, condition operands typed), and a
//! [`PolicySet`] indexes their statements by action so that a decision only
//! looks at statements that can apply.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde_json::Value;
use smallvec::SmallVec;

use crate::engine::err::EngineError;
use crate::engine::request::{Principal, PrincipalKind, Request};
use crate::engine::values::{CandList, Filing, filing};
use crate::policy::arn::Arn;
use crate::policy::condition::Condition;
use crate::policy::intern::intern;
use crate::policy::variables::{MissingKeys, Resolved, Template};
use crate::policy::wildcard::Pattern;
use crate::policy::{
    Document, Effect, PolicyKind, PrincipalEntry, PrincipalSpec, StatementDoc,
    parse_document_value, wildcard,
};

/// A policy ready for evaluation.
#[derive(Debug)]
pub struct CompiledPolicy {
    id: Arc<str>,
    kind: PolicyKind,
    statements: Vec<Statement>,
}

impl CompiledPolicy {
    /// Compiles a parsed document.
    pub fn compile(id: impl Into<Arc<str>>, kind: PolicyKind, doc: &Document) -> Self {
        let vars = doc.version.has_variables();
        Self {
            id: id.into(),
            kind,
            statements: doc
                .statements
                .iter()
                .map(|s| Statement::compile(s, vars))
                .collect(),
        }
    }

    /// The same statements under another role (a managed policy used as a
    /// permissions boundary).
    pub fn retag(policy: &CompiledPolicy, kind: PolicyKind) -> Self {
        Self {
            id: policy.id.clone(),
            kind,
            statements: policy.statements.clone(),
        }
    }

    /// Parses (object, JSON string or URL-encoded string) and compiles.
    pub fn from_json(
        id: impl Into<Arc<str>>,
        kind: PolicyKind,
        value: &Value,
    ) -> Result<Self, EngineError> {
        let id = id.into();
        let doc = parse_document_value(value, kind).map_err(|source| EngineError::Policy {
            policy: id.to_string(),
            source,
        })?;
        Ok(Self::compile(id, kind, &doc))
    }

    /// The policy's id (name, ARN, or position in a test file).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The policy's id, shared.
    pub fn id_arc(&self) -> &Arc<str> {
        &self.id
    }

    /// Where the policy is attached.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// The compiled statements, in document order.
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }
}

/// How a statement's `Principal` element matched the caller. The order
/// matters: a direct grant is stronger than one through the role or account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PrincipalMatch {
    /// Through the caller's account (account id or `:root` ARN): the
    /// account's own policies must also allow.
    Account,
    /// Through the role of a role session.
    Role,
    /// The caller itself (user, session or federated user ARN) or everyone.
    Direct,
}

#[derive(Debug, Clone, PartialEq)]
struct ActionMatcher {
    negated: bool,
    /// Lower-cased patterns as written (for the index).
    patterns: Box<[Arc<str>]>,
    compiled: Box<[Pattern]>,
}

impl ActionMatcher {
    #[inline]
    fn matches(&self, action: &str) -> bool {
        let hit = self.compiled.iter().any(|p| p.matches(action));
        hit != self.negated
    }
}

/// A resource pattern: compiled once unless it holds a policy variable.
#[derive(Debug, Clone, PartialEq, Hash)]
enum ResourcePattern {
    Plain(Pattern),
    Template(Template),
}

#[derive(Debug, Clone, PartialEq, Hash)]
struct ResourceMatcher {
    negated: bool,
    any: bool,
    patterns: Box<[ResourcePattern]>,
}

/// A compiled statement.
#[derive(Debug, Clone)]
pub struct Statement {
    sid: Option<Arc<str>>,
    effect: Effect,
    principal: Option<PrincipalSpec>,
    actions: ActionMatcher,
    resources: Option<ResourceMatcher>,
    conditions: Box<[Condition]>,
}

impl Statement {
    fn compile(doc: &StatementDoc, vars: bool) -> Self {
        let patterns: Box<[Arc<str>]> = doc
            .action
            .patterns
            .iter()
            .map(|p| intern(&p.to_ascii_lowercase()))
            .collect();
        let actions = ActionMatcher {
            negated: doc.action.negated,
            compiled: patterns.iter().map(|p| Pattern::compile(p)).collect(),
            patterns,
        };
        let resources = doc.resource.as_ref().map(|r| ResourceMatcher {
            negated: r.negated,
            any: r.patterns.iter().any(|p| p == "*"),
            patterns: r
                .patterns
                .iter()
                .map(|p| {
                    let t = Template::parse(p, vars, true);
                    if t.has_vars() {
                        ResourcePattern::Template(t)
                    } else {
                        // `${*}`-style escapes are already literal text here.
                        ResourcePattern::Plain(plain_pattern(&t))
                    }
                })
                .collect(),
        });
        let conditions = doc
            .conditions
            .iter()
            .map(|c| Condition::compile(c.operator, &c.key, &c.values, vars))
            .collect();
        Self {
            sid: doc.sid.as_deref().map(Into::into),
            effect: doc.effect,
            principal: doc.principal.clone(),
            actions,
            resources,
            conditions,
        }
    }

    /// The statement id, if any.
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// The statement id, shared.
    pub fn sid_arc(&self) -> Option<&Arc<str>> {
        self.sid.as_ref()
    }

    /// `Allow` or `Deny`.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// The compiled conditions, in document order.
    pub(crate) fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// Whether `other` is the same rule (all but the Sid equal once
    /// compiled), so that it applies to exactly the same requests.
    fn same_rule(&self, other: &Statement) -> bool {
        self.effect == other.effect
            && self.actions == other.actions
            && self.resources == other.resources
            && self.principal == other.principal
            && self.conditions == other.conditions
    }

    /// A hash of the parts of the rule that are cheap to hash; equal rules
    /// have equal keys (see [`Statement::same_rule`]).
    fn rule_key(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = rustc_hash::FxHasher::default();
        self.effect.hash(&mut h);
        self.actions.negated.hash(&mut h);
        self.actions.patterns.hash(&mut h);
        self.resources.hash(&mut h);
        self.principal.is_some().hash(&mut h);
        for c in self.conditions.iter() {
            c.key().hash(&mut h);
        }
        h.finish()
    }

    /// Whether the statement applies to the request. `action_known` skips
    /// the action check when the index already matched it exactly.
    /// Returns how the principal matched (`Direct` when the statement names
    /// no principal).
    pub(crate) fn applies<'p>(
        &'p self,
        req: &Request<'_>,
        action_known: bool,
        has_boundary: bool,
        missing: &mut MissingKeys<'p>,
    ) -> Option<PrincipalMatch> {
        if !action_known && !self.actions.matches(req.action()) {
            return None;
        }
        if let Some(r) = &self.resources
            && !resource_matches(r, req, missing)
        {
            return None;
        }
        let how = match &self.principal {
            None => PrincipalMatch::Direct,
            Some(spec) => principal_matches(spec, self.effect, req.principal(), has_boundary)?,
        };
        for c in self.conditions.iter() {
            if !c.evaluate(req, missing) {
                return None;
            }
        }
        Some(how)
    }
}

fn resource_matches<'p>(
    r: &'p ResourceMatcher,
    req: &Request<'_>,
    missing: &mut MissingKeys<'p>,
) -> bool {
    let resource = req.resource();
    let hit = r.any
        || r.patterns.iter().any(|p| match p {
            ResourcePattern::Plain(p) => p.matches(resource),
            ResourcePattern::Template(t) => match t.resolve(req, missing) {
                Resolved::Tokens(toks) => wildcard::matches(&toks, resource),
                Resolved::Unresolved => false,
            },
        });
    hit != r.negated
}

/// A variable-free template as a compiled pattern. Literal text that came
/// from `${*}` or `${?}` must stay literal, so such templates keep the
/// token form.
fn plain_pattern(t: &Template) -> Pattern {
    use crate::policy::variables::Piece;
    let pieces = t.pieces();
    let literal_wildcards = pieces
        .iter()
        .any(|p| matches!(p, Piece::Lit(s) if s.contains(['*', '?'])));
    if !literal_wildcards {
        let mut text = String::new();
        for p in pieces {
            match p {
                Piece::Lit(s) => text.push_str(s),
                Piece::Star => text.push('*'),
                Piece::Quest => text.push('?'),
                Piece::Var { .. } => {}
            }
        }
        return Pattern::compile(&text);
    }
    Pattern::Glob(
        pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Lit(s) => Some(wildcard::OwnedTok::Lit(s.clone())),
                Piece::Star => Some(wildcard::OwnedTok::Star),
                Piece::Quest => Some(wildcard::OwnedTok::Quest),
                Piece::Var { .. } => None,
            })
            .collect(),
    )
}

/// Matches one `AWS` principal entry against the caller.
fn aws_entry(entry: &str, p: &Principal) -> Option<PrincipalMatch> {
    // A federated web identity is no AWS principal of any account.
    if matches!(
        p.kind(),
        PrincipalKind::Anonymous | PrincipalKind::WebIdentity | PrincipalKind::Service
    ) {
        return None;
    }
    if entry == p.arn() {
        return Some(if p.kind() == PrincipalKind::Root {
            PrincipalMatch::Account
        } else {
            PrincipalMatch::Direct
        });
    }
    if entry == p.account() || entry == p.account_root() {
        return Some(PrincipalMatch::Account);
    }
    if p.role_arn() == Some(entry) {
        return Some(PrincipalMatch::Role);
    }
    // `arn:aws:iam::ACCOUNT:root` in another partition spelling is still
    // the account.
    if let Some(a) = Arn::parse(entry)
        && a.service == "iam"
        && a.resource == "root"
        && a.account == p.account()
    {
        return Some(PrincipalMatch::Account);
    }
    None
}

fn entry_matches(entry: &PrincipalEntry, p: &Principal) -> Option<PrincipalMatch> {
    match entry {
        PrincipalEntry::Everyone => Some(PrincipalMatch::Direct),
        PrincipalEntry::Aws(a) => aws_entry(a, p),
        // The identity provider's ARN names a web identity caller.
        PrincipalEntry::Federated(f) if p.kind() == PrincipalKind::WebIdentity && f == p.arn() => {
            Some(PrincipalMatch::Direct)
        }
        PrincipalEntry::Service(s) => {
            (p.service_name() == Some(s.as_str())).then_some(PrincipalMatch::Direct)
        }
        PrincipalEntry::Federated(_) | PrincipalEntry::CanonicalUser(_) => None,
    }
}

fn principal_matches(
    spec: &PrincipalSpec,
    effect: Effect,
    p: &Principal,
    has_boundary: bool,
) -> Option<PrincipalMatch> {
    if !spec.negated {
        return spec
            .entries
            .iter()
            .filter_map(|e| entry_matches(e, p))
            .max();
    }
    // NotPrincipal: the statement applies unless every identity of the
    // caller (account, role, session or user) is listed. A Deny with
    // NotPrincipal always applies to a caller with a permissions boundary.
    if effect == Effect::Deny && has_boundary {
        return Some(PrincipalMatch::Direct);
    }
    let listed = |want: &str| {
        spec.entries.iter().any(|e| match e {
            PrincipalEntry::Everyone => true,
            PrincipalEntry::Aws(a) => a == want,
            _ => false,
        })
    };
    let excluded = match p.kind() {
        PrincipalKind::Anonymous => spec.entries.contains(&PrincipalEntry::Everyone),
        PrincipalKind::WebIdentity => spec.entries.iter().any(|e| match e {
            PrincipalEntry::Everyone => true,
            PrincipalEntry::Federated(f) => f == p.arn(),
            _ => false,
        }),
        PrincipalKind::Service => spec.entries.iter().any(|e| match e {
            PrincipalEntry::Everyone => true,
            PrincipalEntry::Service(s) => p.service_name() == Some(s.as_str()),
            _ => false,
        }),
        kind => {
            let account_listed = listed(p.account()) || listed(p.account_root());
            let self_listed = kind == PrincipalKind::Root || listed(p.arn());
            let role_listed = p.role_arn().is_none_or(listed);
            account_listed && self_listed && role_listed
        }
    };
    if excluded {
        None
    } else {
        Some(PrincipalMatch::Direct)
    }
}

/// A statement's place in a [`PolicySet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Slot {
    pub policy: u32,
    pub statement: u32,
}

/// Whether a statement repeats another of its set. The same guardrail is
/// often copied into several policies; it is evaluated once per request and
/// every copy is still reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Twin {
    /// No other statement of the set is the same rule.
    Unique,
    /// The first of several copies: its result decides theirs.
    First,
    /// A copy of the statement at this slot, which comes before it in every
    /// candidate list.
    Of(Slot),
}

/// One entry of a candidate list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cand {
    pub slot: Slot,
    pub twin: Twin,
}

/// Budget of [`ActionIndex::finish`]: at most this many action-pattern
/// evaluations, plus [`COMPLETION_WORK_PER_PATTERN`] per action pattern of
/// the set. Completing every exact action with every wildcard statement is
/// a product of the two counts; the budget keeps compilation linear in the
/// size of the policies (a session policy is compiled per request). Actions
/// left incomplete are decided exactly the same way, by matching the
/// wildcard statements' patterns at decision time.
const COMPLETION_WORK_BASE: usize = 1 << 16;
/// See [`COMPLETION_WORK_BASE`].
const COMPLETION_WORK_PER_PATTERN: usize = 256;

/// An exact action's candidates.
#[derive(Debug, Default)]
struct ExactEntry {
    /// Statements naming the action, then (when `complete`) the wildcard
    /// and `NotAction` statements that match it, each in slot order.
    list: CandList,
    /// Whether `list` holds every statement that can match the action;
    /// otherwise the wildcard lists are scanned at decision time.
    complete: bool,
}

/// Statements of one effect, indexed by the actions they can match.
#[derive(Debug, Default)]
pub(crate) struct ActionIndex {
    /// Lower-cased exact action → statements naming it without wildcards.
    exact: FxHashMap<Arc<str>, ExactEntry>,
    /// Service prefix → statements with a wildcard action in that service.
    service: FxHashMap<Arc<str>, CandList>,
    /// Statements whose service part has a wildcard, or with `NotAction`.
    any: CandList,
    /// Action patterns evaluated by `finish` (see [`COMPLETION_WORK_BASE`]).
    work: usize,
}

impl ActionIndex {
    fn add(&mut self, cand: Cand, actions: &ActionMatcher) {
        if actions.negated
            || actions.patterns.iter().any(|p| {
                p.split_once(':')
                    .is_none_or(|(s, _)| s.contains(['*', '?']))
            })
        {
            self.any.list.push(cand);
            return;
        }
        // Per service: one wildcard entry, or one exact entry per action.
        let mut wild_services: Vec<&str> = actions
            .patterns
            .iter()
            .filter_map(|p| p.split_once(':'))
            .filter(|(_, name)| name.contains(['*', '?']))
            .map(|(service, _)| service)
            .collect();
        wild_services.sort_unstable();
        wild_services.dedup();
        for s in &wild_services {
            self.service.entry(intern(s)).or_default().list.push(cand);
        }
        for p in actions.patterns.iter() {
            let service = p.split_once(':').map(|(s, _)| s).unwrap_or_default();
            if wild_services.binary_search(&service).is_ok() {
                continue;
            }
            // Statements are added in slot order, so a repeat of this
            // statement can only be the last entry.
            let list = &mut self.exact.entry(p.clone()).or_default().list.list;
            if list.last() != Some(&cand) {
                list.push(cand);
            }
        }
    }

    /// Completes exact-action lists with the wildcard and `NotAction`
    /// statements that match that action, decided once here, so that a
    /// request for a known action evaluates no action pattern at all (and an
    /// implicit deny costs no more than an allow). `weight` is the number of
    /// patterns `matches` evaluates for a statement; the work is bounded by
    /// `budget` (see [`COMPLETION_WORK_BASE`]).
    ///
    /// A statement in `service[svc]` never names an action of `svc`
    /// exactly, and one in `any` names none, so no candidate is added twice.
    fn finish(
        &mut self,
        budget: usize,
        weight: impl Fn(Slot) -> usize,
        matches: impl Fn(Slot, &str) -> bool,
    ) {
        let Self {
            exact,
            service,
            any,
            work,
        } = self;
        let any_weight: usize = any.list.iter().map(|c| weight(c.slot)).sum();
        let service_weight: FxHashMap<&str, usize> = service
            .iter()
            .map(|(svc, l)| (&**svc, l.list.iter().map(|c| weight(c.slot)).sum()))
            .collect();
        for (action, entry) in exact.iter_mut() {
            let svc = action.split_once(':').map(|(s, _)| s).unwrap_or(action);
            let cost = service_weight
                .get(svc)
                .copied()
                .unwrap_or_default()
                .saturating_add(any_weight);
            if work.saturating_add(cost) > budget {
                continue;
            }
            *work += cost;
            let wild = service
                .get(svc)
                .map(|l| l.list.as_slice())
                .unwrap_or_default();
            for cand in wild.iter().chain(any.list.iter()) {
                if matches(cand.slot, action) {
                    entry.list.list.push(*cand);
                }
            }
            entry.complete = true;
        }
    }

    /// Builds the condition-value index of every list (see
    /// [`CandList::index_values`]), once the lists are complete.
    fn index_values<'f, 's: 'f>(
        &mut self,
        filed_as: impl Fn(Slot) -> Option<&'f Filing<'s>> + Copy,
    ) {
        for entry in self.exact.values_mut() {
            entry.list.index_values(filed_as);
        }
        for list in self.service.values_mut() {
            list.index_values(filed_as);
        }
        self.any.index_values(filed_as);
    }

    /// Calls `f(candidate, action_known, missing)` for each statement that
    /// may match the request (by its action, and by the values of its
    /// equality conditions), until `f` returns false.
    #[inline]
    pub(crate) fn candidates<'p>(
        &'p self,
        req: &Request<'_>,
        missing: &mut MissingKeys<'p>,
        mut f: impl FnMut(Cand, bool, &mut MissingKeys<'p>) -> bool,
    ) {
        let action = req.action();
        if let Some(entry) = self.exact.get(action) {
            if !entry.list.visit(req, true, missing, &mut f) {
                return;
            }
            if entry.complete {
                // Complete for this action (see `finish`).
                return;
            }
        }
        if !self.service.is_empty() {
            let service = action.split_once(':').map(|(s, _)| s).unwrap_or(action);
            if let Some(list) = self.service.get(service)
                && !list.visit(req, false, missing, &mut f)
            {
                return;
            }
        }
        self.any.visit(req, false, missing, &mut f);
    }
}

/// Policies that apply together in one role of the evaluation (all the
/// identity-based policies of a caller, one SCP level, ...), indexed.
#[derive(Debug, Default)]
pub struct PolicySet {
    policies: Vec<Arc<CompiledPolicy>>,
    pub(crate) allow: ActionIndex,
    pub(crate) deny: ActionIndex,
    statements: usize,
    /// Statements compared by `twins`.
    twin_work: usize,
}

impl PolicySet {
    /// Indexes the statements of `policies`.
    pub fn new(policies: Vec<Arc<CompiledPolicy>>) -> Self {
        Self::with_budget(policies, None)
    }

    /// Indexes with a completion budget (`None`: the default, linear in the
    /// number of action patterns; see [`COMPLETION_WORK_BASE`]).
    fn with_budget(policies: Vec<Arc<CompiledPolicy>>, budget: Option<usize>) -> Self {
        let mut set = Self {
            policies,
            ..Self::default()
        };
        let (twins, twin_work) = twins(&set.policies);
        set.twin_work = twin_work;
        for (slot, s) in slots(&set.policies) {
            let twin = twins.get(&slot).copied().unwrap_or(Twin::Unique);
            let cand = Cand { slot, twin };
            match s.effect {
                Effect::Allow => set.allow.add(cand, &s.actions),
                Effect::Deny => set.deny.add(cand, &s.actions),
            }
            set.statements += 1;
        }
        let policies = &set.policies;
        let weight = |slot: Slot| {
            statement_at(policies, slot).map_or(1, |s| s.actions.compiled.len().max(1))
        };
        let matches = |slot: Slot, action: &str| {
            statement_at(policies, slot).is_some_and(|s| s.actions.matches(action))
        };
        let patterns: usize = slots(policies).map(|(_, s)| s.actions.compiled.len()).sum();
        let budget = budget.unwrap_or_else(|| {
            COMPLETION_WORK_BASE
                .saturating_add(patterns.saturating_mul(COMPLETION_WORK_PER_PATTERN))
        });
        set.allow.finish(budget, weight, matches);
        set.deny.finish(budget, weight, matches);
        let filings: FxHashMap<Slot, Filing<'_>> = slots(policies)
            .filter_map(|(slot, s)| Some((slot, filing(s)?)))
            .collect();
        let filed_as = |slot: Slot| filings.get(&slot);
        set.allow.index_values(filed_as);
        set.deny.index_values(filed_as);
        set
    }

    /// Work done while compiling the set: action patterns evaluated to
    /// complete the index and statements compared to find copies. Bounded
    /// by a constant times the number of statements and patterns.
    pub fn compile_work(&self) -> usize {
        self.allow.work + self.deny.work + self.twin_work
    }

    /// The policies, in the order given.
    pub fn policies(&self) -> &[Arc<CompiledPolicy>] {
        &self.policies
    }

    /// The number of statements.
    pub fn statement_count(&self) -> usize {
        self.statements
    }

    /// Whether the set holds no policy at all.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    pub(crate) fn get(&self, slot: Slot) -> Option<(&CompiledPolicy, &Statement)> {
        let p = self.policies.get(slot.policy as usize)?;
        let s = p.statements.get(slot.statement as usize)?;
        Some((p, s))
    }
}

/// Most statements of one [`Statement::rule_key`] that a statement is
/// compared with when looking for its copy; beyond them (hash collisions,
/// or many rules that differ only in their conditions) a statement is
/// treated as unique, which only costs evaluating it on its own.
const TWIN_PROBES: usize = 8;

/// The statements of `policies` that repeat another one (same rule, any
/// Sid): the first copy in slot order is `First`, the others point to it.
/// Copies have the same actions, so they sit in the same candidate lists,
/// in slot order. Also returns the number of comparisons made (at most
/// [`TWIN_PROBES`] per statement).
fn twins(policies: &[Arc<CompiledPolicy>]) -> (FxHashMap<Slot, Twin>, usize) {
    let mut by_key: FxHashMap<u64, SmallVec<[Slot; 2]>> = FxHashMap::default();
    let mut out = FxHashMap::default();
    let mut work = 0;
    for (slot, s) in slots(policies) {
        let firsts = by_key.entry(s.rule_key()).or_default();
        work += firsts.len();
        let first = firsts
            .iter()
            .copied()
            .find(|f| statement_at(policies, *f).is_some_and(|f| f.same_rule(s)));
        match first {
            Some(f) => {
                out.insert(f, Twin::First);
                out.insert(slot, Twin::Of(f));
            }
            None if firsts.len() < TWIN_PROBES => firsts.push(slot),
            None => {}
        }
    }
    (out, work)
}

/// Every statement of `policies` with its slot, in slot order.
fn slots(policies: &[Arc<CompiledPolicy>]) -> impl Iterator<Item = (Slot, &Statement)> {
    policies.iter().enumerate().flat_map(|(pi, p)| {
        p.statements.iter().enumerate().map(move |(si, s)| {
            let slot = Slot {
                policy: u32::try_from(pi).unwrap_or(u32::MAX),
                statement: u32::try_from(si).unwrap_or(u32::MAX),
            };
            (slot, s)
        })
    })
}

/// The statement at `slot`.
fn statement_at(policies: &[Arc<CompiledPolicy>], slot: Slot) -> Option<&Statement> {
    policies
        .get(slot.policy as usize)?
        .statements
        .get(slot.statement as usize)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::engine::err::EngineError;
    use crate::engine::evaluate::{Applicable, decide};
    use crate::engine::request::Context;

    fn set(statements: Vec<Value>, budget: Option<usize>) -> Result<PolicySet, EngineError> {
        let doc = json!({"Version": "2012-10-17", "Statement": statements});
        let p = CompiledPolicy::from_json("p", PolicyKind::Session, &doc)?;
        Ok(PolicySet::with_budget(vec![Arc::new(p)], budget))
    }

    /// Policies of `n` statements shaped to make completing the index
    /// quadratic: exact actions beside wildcard, many-pattern and
    /// `NotAction` statements of the same service, and statements that
    /// differ only in their resource (one rule key each since resources
    /// are hashed).
    fn hostile(shape: usize, n: usize) -> Vec<Value> {
        let exact = |i: usize| json!({"Effect": "Allow", "Action": format!("ec2:Action{i}"), "Resource": "*"});
        (0..n)
            .map(|i| match (shape, i % 2) {
                (0, 0) | (1, 0) | (2, 0) => exact(i),
                (0, _) => json!({"Effect": "Deny", "Action": "ec2:*", "Resource": format!("arn:aws:ec2:::x/{i}")}),
                (1, _) => json!({"Effect": "Allow", "Action": (0..8).map(|k| format!("ec2:A{i}x{k}*")).collect::<Vec<_>>(), "Resource": "*"}),
                (2, _) => json!({"Effect": "Allow", "NotAction": format!("ec2:X{i}"), "Resource": "*"}),
                _ => json!({"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": format!("arn:aws:ec2:::x/{i}")}),
            })
            .collect()
    }

    /// Issue 11, item 11: a session policy is compiled per request, so
    /// compiling must stay linear. The work (action patterns evaluated to
    /// complete the index, statements compared to find copies) stays within
    /// a constant per statement and pattern, and four times the statements
    /// cost at most about four times the work (it was the square, and the
    /// copies of a candidate were looked up in lists: a cube).
    #[test]
    fn compile_work_grows_linearly() -> Result<(), EngineError> {
        for shape in 0..4 {
            let mut works = Vec::new();
            for n in [1000, 4000] {
                let statements = hostile(shape, n);
                let set = set(statements, None)?;
                let patterns: usize = set
                    .policies()
                    .iter()
                    .flat_map(|p| p.statements())
                    .map(|s| s.actions.compiled.len())
                    .sum();
                let bound = 2 * (COMPLETION_WORK_BASE + COMPLETION_WORK_PER_PATTERN * patterns)
                    + TWIN_PROBES * n;
                let work = set.compile_work();
                assert!(work <= bound, "shape {shape}, n {n}: work {work} > {bound}");
                works.push(work.max(1));
            }
            if let [small, large] = works[..] {
                assert!(
                    large <= 5 * small,
                    "shape {shape}: 4x the statements took {large} / {small} the work"
                );
            }
        }
        Ok(())
    }

    /// An index left incomplete by the budget decides exactly as a complete
    /// one: the wildcard statements are matched at decision time instead.
    #[test]
    fn incomplete_index_decides_the_same() -> Result<(), EngineError> {
        let statements = vec![
            json!({"Sid": "Exact", "Effect": "Allow", "Action": ["ec2:StartInstances", "ec2:StopInstances"], "Resource": "*"}),
            json!({"Sid": "Prefix", "Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}),
            json!({"Sid": "Glob", "Effect": "Allow", "Action": "ec2:*Instances", "Resource": "arn:aws:ec2:*:*:instance/*"}),
            json!({"Sid": "Not", "Effect": "Allow", "NotAction": ["ec2:Delete*", "s3:*"], "Resource": "*"}),
            json!({"Sid": "AnySvc", "Effect": "Deny", "Action": "*:TerminateInstances", "Resource": "arn:aws:ec2:*:*:instance/i-prod"}),
            json!({"Sid": "Copy1", "Effect": "Deny", "Action": "ec2:StopInstances", "Resource": "arn:aws:ec2:*:*:instance/i-keep"}),
            json!({"Sid": "Copy2", "Effect": "Deny", "Action": "ec2:StopInstances", "Resource": "arn:aws:ec2:*:*:instance/i-keep"}),
            json!({"Sid": "Wild", "Effect": "Deny", "Action": "ec2:Stop*", "Resource": "arn:aws:ec2:*:*:instance/i-hold"}),
        ];
        let complete = set(statements.clone(), None)?;
        let incomplete = set(statements, Some(0))?;
        assert_eq!(incomplete.allow.work + incomplete.deny.work, 0);
        let caller = crate::engine::Principal::parse("arn:aws:iam::111122223333:user/alice")?;
        let ctx = Context::new();
        for action in [
            "ec2:startinstances",
            "ec2:stopinstances",
            "ec2:describevpcs",
            "ec2:terminateinstances",
            "ec2:deletevpc",
            "s3:getobject",
            "iam:createuser",
        ] {
            for resource in [
                "*",
                "arn:aws:ec2:us-east-1:111122223333:instance/i-prod",
                "arn:aws:ec2:us-east-1:111122223333:instance/i-keep",
                "arn:aws:ec2:us-east-1:111122223333:instance/i-hold",
                "arn:aws:ec2:us-east-1:111122223333:volume/v-1",
            ] {
                let req = Request::new(&caller, action, resource, &ctx);
                let answer = |set: &PolicySet| {
                    let d = decide(
                        &Applicable {
                            identity: Some(set),
                            ..Applicable::default()
                        },
                        &req,
                    );
                    let matched: Vec<(usize, Option<String>)> = d
                        .matched
                        .iter()
                        .map(|m| (m.index, m.sid().map(str::to_owned)))
                        .collect();
                    (d.outcome, matched)
                };
                assert_eq!(
                    answer(&complete),
                    answer(&incomplete),
                    "{action} on {resource}"
                );
            }
        }
        Ok(())
    }

    /// Issue 13: a service principal (ec2.amazonaws.com assuming an
    /// instance profile's role) is its own kind: a `Service` entry naming
    /// it (or `*`) matches, `AWS` entries never do, identity policies do
    /// not apply, `NotPrincipal` with its `Service` entry excludes it, its
    /// requests carry `aws:PrincipalServiceName` and no `aws:PrincipalType`
    /// / `aws:PrincipalAccount`; the indexed and the reference evaluator
    /// agree.
    #[test]
    fn service_principals_are_their_own_kind() -> Result<(), EngineError> {
        use crate::engine::Outcome;
        use crate::policy::variables::{Lookup as _, ValueRef};
        let ec2 = crate::engine::Principal::service("ec2.amazonaws.com");
        assert_eq!(ec2.kind(), PrincipalKind::Service);
        let ctx = Context::new();
        let role = "arn:aws:iam::111122223333:role/web";
        let req = Request::new(&ec2, "sts:assumerole", role, &ctx);
        assert!(matches!(
            req.get("aws:principalservicename"),
            Some(ValueRef::One("ec2.amazonaws.com"))
        ));
        assert!(req.get("aws:principaltype").is_none());
        assert!(req.get("aws:principalaccount").is_none());
        let resource_set = |statements: Vec<Value>| -> Result<PolicySet, EngineError> {
            let doc = json!({"Version": "2012-10-17", "Statement": statements});
            let p = CompiledPolicy::from_json("trust", PolicyKind::Resource, &doc)?;
            Ok(PolicySet::with_budget(vec![Arc::new(p)], None))
        };
        let trust = |principal: Value, effect: &str| {
            resource_set(vec![json!({"Effect": effect, "Principal": principal,
                                      "Action": "sts:AssumeRole", "Resource": "*"})])
        };
        let identity = set(
            vec![json!({"Effect": "Allow", "Action": "sts:*", "Resource": "*"})],
            None,
        )?;
        let not_ec2 = resource_set(vec![
            json!({"Effect": "Deny", "NotPrincipal": {"Service": "ec2.amazonaws.com"},
                   "Action": "sts:AssumeRole", "Resource": "*"}),
            json!({"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole",
                   "Resource": "*"}),
        ])?;
        for (resource, want) in [
            (
                trust(json!({"Service": "ec2.amazonaws.com"}), "Allow")?,
                Outcome::Allowed,
            ),
            (
                trust(json!({"Service": ["lambda.amazonaws.com"]}), "Allow")?,
                Outcome::ImplicitDeny,
            ),
            (
                trust(json!({"AWS": "111122223333"}), "Allow")?,
                Outcome::ImplicitDeny,
            ),
            (trust(json!("*"), "Allow")?, Outcome::Allowed),
            (
                trust(json!({"Service": "ec2.amazonaws.com"}), "Deny")?,
                Outcome::ExplicitDeny,
            ),
            (not_ec2, Outcome::Allowed),
        ] {
            let applicable = Applicable {
                identity: Some(&identity),
                resource: Some(&resource),
                ..Applicable::default()
            };
            let indexed = decide(&applicable, &req).outcome;
            let reference = crate::engine::reference::decide(&applicable, &req).outcome;
            assert_eq!(indexed, want);
            assert_eq!(reference, want);
        }
        // Identity policies alone never let a service principal in.
        let none = Applicable {
            identity: Some(&identity),
            ..Applicable::default()
        };
        assert_eq!(decide(&none, &req).outcome, Outcome::ImplicitDeny);
        Ok(())
    }
}
