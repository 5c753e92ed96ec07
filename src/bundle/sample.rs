//! A bounded, de-duplicated sample of recent authorization requests, kept
//! so that a candidate snapshot can be compared with the active one on the
//! traffic the sidecar actually sees (see [`crate::bundle::diff`]).
//!
//! The sample is fed from the decision path, so offering a request costs
//! a thread-local counter increment when the request is not picked (1 in
//! `every` per thread: no cache line shared between cores), and a
//! `try_lock` when it is: a busy sample skips the request
//! rather than making a decision wait. Only a picked request that is not
//! already in the sample is copied. The sample keeps what decides
//! (principal, action, resource, context, session tags, resource account)
//! and never a session policy or a context key whose name says it holds a
//! secret (tokens, signatures, passwords, credentials). It must not know
//! about listeners or metrics.

use std::cell::Cell;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use rustc_hash::{FxHashSet, FxHasher};
use serde::Serialize;

use crate::bundle::snapshot::AuthzRequest;
use crate::engine::{Context, ContextValue};

/// Requests kept by default.
pub const DEFAULT_CAPACITY: usize = 1024;
/// One request in this many is offered to the sample by default.
pub const DEFAULT_EVERY: u64 = 16;
/// Largest request kept, counting the bytes of its strings: a request with
/// a huge context is skipped, so the sample's memory stays bounded by
/// `capacity × MAX_REQUEST_BYTES`.
pub const MAX_REQUEST_BYTES: usize = 4096;

/// Parts of a context key name that mark it as a secret; such keys are
/// never kept (IAM condition keys do not carry secrets, but a front-end
/// mapping may add caller-supplied keys).
const SECRET_KEY_PARTS: [&str; 7] = [
    "token",
    "signature",
    "secret",
    "password",
    "authorization",
    "credential",
    "cookie",
];

/// Whether this call is the one in `every` to pick, counting on the
/// calling thread: sampling without touching memory other cores write.
/// Each caller passes its own counter (a `thread_local!` of its module).
#[inline]
pub fn tick(counter: &'static std::thread::LocalKey<Cell<u64>>, every: u64) -> bool {
    // A countdown rather than a modulo: no division per decision.
    counter.with(|c| match c.get() {
        0 => {
            c.set(every.saturating_sub(1));
            true
        }
        n => {
            c.set(n - 1);
            false
        }
    })
}

thread_local! {
    static OFFERED: Cell<u64> = const { Cell::new(0) };
}

/// One sampled request: what decides, and nothing secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SampledRequest {
    pub principal: String,
    pub action: String,
    pub resource: String,
    #[serde(skip)]
    pub context: Context,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub session_tags: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_account: Option<String>,
}

impl SampledRequest {
    /// The request to decide again on another snapshot.
    pub fn to_request(&self) -> AuthzRequest {
        AuthzRequest {
            principal_arn: self.principal.clone(),
            action: self.action.clone(),
            resource: self.resource.clone(),
            context: self.context.clone(),
            session_tags: self.session_tags.clone(),
            session_policy: None,
            session_policy_arns: Vec::new(),
            resource_account: self.resource_account.clone(),
            outcome_only: true,
        }
    }

    /// Copies what decides out of a request, leaving secrets out.
    pub fn of(req: &AuthzRequest) -> Self {
        let mut context = Context::new();
        for (k, v) in req.context.iter() {
            if !is_secret_key(k) {
                context.insert(k, v.clone());
            }
        }
        Self {
            principal: req.principal_arn.clone(),
            action: req.action.clone(),
            resource: req.resource.clone(),
            context,
            session_tags: req.session_tags.clone(),
            resource_account: req.resource_account.clone(),
        }
    }
}

/// Whether a context key (in lower case) names a secret.
pub fn is_secret_key(key_lower: &str) -> bool {
    SECRET_KEY_PARTS.iter().any(|p| key_lower.contains(p))
}

fn value_bytes(v: &ContextValue) -> usize {
    match v {
        ContextValue::One(s) => s.len(),
        ContextValue::Shared(s) => s.len(),
        ContextValue::Many(v) => v.iter().map(String::len).sum(),
    }
}

/// The bytes of a request's strings, as the sample would keep them.
fn request_bytes(req: &AuthzRequest) -> usize {
    req.principal_arn.len()
        + req.action.len()
        + req.resource.len()
        + req
            .context
            .iter()
            .map(|(k, v)| k.len() + value_bytes(v))
            .sum::<usize>()
        + req
            .session_tags
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
        + req.resource_account.as_ref().map_or(0, String::len)
}

/// Context keys left out of the de-duplication key: the clock, which
/// front-ends set on every request, would make every request new (the copy
/// kept still carries the time it was decided at).
const CLOCK_KEYS: [&str; 2] = ["aws:currenttime", "aws:epochtime"];

/// A hash of what decides a request: two requests with the same hash are
/// kept once. Context keys are hashed in order (a front-end inserts them in
/// a fixed order), secrets and the clock left out.
fn request_key(req: &AuthzRequest) -> u64 {
    let mut h = FxHasher::default();
    req.principal_arn.hash(&mut h);
    req.action.hash(&mut h);
    req.resource.hash(&mut h);
    for (k, v) in req.context.iter() {
        if is_secret_key(k) || CLOCK_KEYS.contains(&k) {
            continue;
        }
        k.hash(&mut h);
        match v.value() {
            crate::policy::variables::ValueRef::One(s) => s.hash(&mut h),
            crate::policy::variables::ValueRef::Many(m) => m.hash(&mut h),
        }
    }
    req.session_tags.hash(&mut h);
    req.resource_account.hash(&mut h);
    h.finish()
}

#[derive(Debug, Default)]
struct Ring {
    entries: VecDeque<(u64, SampledRequest)>,
    keys: FxHashSet<u64>,
}

/// The sample (shared by every front-end through the server state).
#[derive(Debug)]
pub struct RequestSample {
    capacity: usize,
    every: u64,
    ring: Mutex<Ring>,
}

impl Default for RequestSample {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY, DEFAULT_EVERY)
    }
}

impl RequestSample {
    /// A sample of at most `capacity` requests, taking one request in
    /// `every` (at least 1). A capacity of 0 keeps nothing.
    pub fn new(capacity: usize, every: u64) -> Self {
        Self {
            capacity,
            every: every.max(1),
            ring: Mutex::new(Ring::default()),
        }
    }

    /// A sample that keeps nothing.
    pub fn disabled() -> Self {
        Self::new(0, 1)
    }

    /// Whether anything is kept.
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// Offers a decided request. Never blocks: a request not picked costs
    /// a thread-local increment; a picked one that finds the sample busy is
    /// skipped. A session policy (compiled per request) or an oversized
    /// request is not kept.
    #[inline]
    pub fn offer(&self, req: &AuthzRequest) {
        if self.capacity == 0 {
            return;
        }
        if tick(&OFFERED, self.every) {
            self.keep(req);
        }
    }

    #[cold]
    fn keep(&self, req: &AuthzRequest) {
        if req.session_policy.is_some() || request_bytes(req) > MAX_REQUEST_BYTES {
            return;
        }
        let key = request_key(req);
        let Ok(mut ring) = self.ring.try_lock() else {
            return;
        };
        if ring.keys.contains(&key) {
            return;
        }
        while ring.entries.len() >= self.capacity {
            match ring.entries.pop_front() {
                Some((old, _)) => {
                    ring.keys.remove(&old);
                }
                None => break,
            }
        }
        ring.keys.insert(key);
        ring.entries.push_back((key, SampledRequest::of(req)));
    }

    /// The requests kept, oldest first (a copy; the reload path only).
    pub fn requests(&self) -> Vec<SampledRequest> {
        let ring = self
            .ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        ring.entries.iter().map(|(_, r)| r.clone()).collect()
    }

    /// How many requests are kept.
    pub fn len(&self) -> usize {
        self.ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entries
            .len()
    }

    /// How many requests may be kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether no request is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(principal: &str, resource: &str) -> AuthzRequest {
        AuthzRequest {
            principal_arn: principal.into(),
            action: "ec2:StartInstances".into(),
            resource: resource.into(),
            context: Context::new()
                .with("aws:SourceIp", "203.0.113.7")
                .with("x-amz-security-token", "SECRET")
                .with("jwt:signature", "SIG"),
            ..AuthzRequest::default()
        }
    }

    #[test]
    fn duplicates_are_kept_once_and_the_oldest_goes_first() {
        let s = RequestSample::new(2, 1);
        s.offer(&req("arn:aws:iam::1:user/a", "*"));
        s.offer(&req("arn:aws:iam::1:user/a", "*"));
        assert_eq!(s.len(), 1);
        s.offer(&req("arn:aws:iam::1:user/b", "*"));
        s.offer(&req("arn:aws:iam::1:user/c", "*"));
        let kept: Vec<String> = s.requests().into_iter().map(|r| r.principal).collect();
        assert_eq!(kept, ["arn:aws:iam::1:user/b", "arn:aws:iam::1:user/c"]);
        // The evicted request may come back.
        s.offer(&req("arn:aws:iam::1:user/a", "*"));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn only_one_in_every_is_taken() {
        // A fresh thread: the count is per thread.
        let s = std::thread::scope(|t| {
            t.spawn(|| {
                let s = RequestSample::new(100, 4);
                for i in 0..40 {
                    s.offer(&req(&format!("arn:aws:iam::1:user/u{i}"), "*"));
                }
                s.len()
            })
            .join()
        });
        assert!(matches!(s, Ok(10)), "{s:?}");
    }

    #[test]
    fn every_one_is_taken_with_every_one() {
        let s = RequestSample::new(100, 1);
        for i in 0..40 {
            s.offer(&req(&format!("arn:aws:iam::1:user/u{i}"), "*"));
        }
        assert_eq!(s.len(), 40);
    }

    #[test]
    fn secrets_session_policies_and_huge_requests_are_not_kept() {
        let s = RequestSample::new(10, 1);
        s.offer(&req("arn:aws:iam::1:user/a", "*"));
        let kept = s.requests();
        let keys: Vec<&str> = kept[0].context.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["aws:sourceip"]);

        let mut with_policy = req("arn:aws:iam::1:user/p", "*");
        with_policy.session_policy = Some(serde_json::json!({}));
        s.offer(&with_policy);
        let mut huge = req("arn:aws:iam::1:user/h", "*");
        huge.context.insert(
            "ec2:ResourceTag/big",
            ContextValue::One("x".repeat(MAX_REQUEST_BYTES)),
        );
        s.offer(&huge);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn the_clock_does_not_make_a_request_new() {
        let s = RequestSample::new(10, 1);
        for t in 0..3 {
            let mut r = req("arn:aws:iam::1:user/a", "*");
            r.context
                .insert("aws:EpochTime", ContextValue::One(format!("{t}")));
            s.offer(&r);
        }
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn a_disabled_sample_keeps_nothing() {
        let s = RequestSample::disabled();
        s.offer(&req("arn:aws:iam::1:user/a", "*"));
        assert!(s.is_empty() && !s.enabled());
    }
}
