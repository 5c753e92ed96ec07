//! The compiled, immutable view of a bundle that every front-end decides
//! against: principals with their indexed identity policies, boundaries and
//! tags; SCP and RCP levels per account; resource policies by ARN.
//!
//! This file compiles ([`Snapshot::compile`]) and decides
//! ([`Snapshot::authorize`]); `lookup` finds principals by ARN or name,
//! `read` reads and checks the bundle's JSON files, `revision` names
//! the served revision.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rustc_hash::FxHashMap;
use serde::Serialize;
use serde_json::{Value, json};

use crate::bundle::aws::{
    AttachedPolicy, AuthorizationDetails, InlinePolicy, JsonText, ResourcePolicyEntry, Tag,
};
use crate::bundle::err::BundleError;
use crate::bundle::files::BundleFiles;
use crate::bundle::organization::OrgMembership;
use crate::engine::{
    Applicable, CallerFacts, CompiledPolicy, Context, EngineError, Outcome, PolicySet, Principal,
    PrincipalArn, PrincipalKind, Request, ascii_lowercase, decide,
};
use crate::policy::PolicyKind;

// The request and answer types are the engine's; re-exported here so that
// `bundle::snapshot::AuthzRequest` paths keep working.
pub use crate::engine::authz::{AnswerReason, AuthzAnswer, AuthzError, AuthzRequest, MatchedInfo};

mod lookup;
mod read;
mod revision;

pub(crate) use read::parse_json;
use read::{check_account_file, max_session_durations};

/// One IAM user or role, compiled.
#[derive(Debug)]
struct Entity {
    arn: String,
    identity: PolicySet,
    /// Shared by every user and role with the same boundary.
    boundary: Option<Arc<PolicySet>>,
    tags: Vec<(String, String)>,
    /// Prebuilt caller for users (role sessions are built per request).
    principal: Option<Principal>,
    /// The user's unique id (`UserId`, `aws:userid`), when the bundle has it.
    user_id: Option<String>,
    /// A role's trust policy: the resource-based policy of `sts:AssumeRole`
    /// (and the other trust-governed `sts:` actions) on the role.
    trust: Option<PolicySet>,
    /// A role's unique id (`RoleId`).
    role_id: Option<String>,
}

/// What STS needs to know of a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInfo {
    pub arn: String,
    /// `RoleId`, when the bundle has it.
    pub role_id: Option<String>,
    /// `MaxSessionDuration` in seconds (from `iam-roles/<account>.json`,
    /// `aws iam list-roles` output; 3600 when not given).
    pub max_session_duration: u64,
}

/// A role's session length when `list-roles` output does not give one.
pub const DEFAULT_MAX_SESSION_DURATION: u64 = 3600;

/// The users and roles of one account, by name.
#[derive(Debug, Default)]
struct Names {
    users: FxHashMap<String, Arc<Entity>>,
    roles: FxHashMap<String, Arc<Entity>>,
    /// Instance profiles by name in lower case.
    profiles: FxHashMap<String, InstanceProfile>,
}

/// An IAM instance profile, from the `InstanceProfileList` of the roles in
/// `get-account-authorization-details`: what EC2 needs to launch an
/// instance with it (the roles it passes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceProfile {
    pub arn: String,
    pub name: String,
    /// The profile's roles (IAM allows one).
    pub role_arns: Vec<String>,
    /// `InstanceProfileId`, when the bundle has it.
    pub id: Option<String>,
}

/// SCP and RCP levels that apply to one account.
#[derive(Debug, Default)]
struct AccountOrg {
    scps: Option<Vec<PolicySet>>,
    rcps: Option<Vec<PolicySet>>,
}

/// Counts shown in `/v1/status` and metrics.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Stats {
    pub accounts: usize,
    pub principals: usize,
    pub policies: usize,
    pub statements: usize,
    pub resource_policies: usize,
}

/// A compiled bundle.
#[derive(Debug)]
pub struct Snapshot {
    /// Identifies the content: the manifest's revision (if any) and a hash
    /// of every file.
    revision: Arc<str>,
    /// The revision `manifest.json` names, as written.
    manifest_revision: Option<String>,
    source: String,
    loaded_at: SystemTime,
    compile_duration: Duration,
    users: FxHashMap<String, Arc<Entity>>,
    /// Account → users and roles by name (role names in lower case: IAM
    /// names are unique in an account regardless of case).
    by_name: FxHashMap<String, Names>,
    accounts: FxHashMap<String, AccountOrg>,
    /// Organization and OU ARNs per member account (EC2 permission
    /// attributes); empty without an organization id.
    memberships: FxHashMap<String, OrgMembership>,
    /// `aws:PrincipalOrgID` / `aws:PrincipalOrgPaths` per member account;
    /// every other caller gets `direct_caller`.
    caller_facts: FxHashMap<String, CallerFacts>,
    direct_caller: CallerFacts,
    known_accounts: Vec<String>,
    resource_policies: FxHashMap<String, PolicySet>,
    stats: Stats,
    /// What the services' loaders read from the bundle (EC2's inventory,
    /// ...), opaque here; see [`crate::bundle::service_data`].
    service_data: crate::bundle::service_data::ServiceData,
    /// Managed policies by ARN (session policies name them).
    managed: HashMap<String, Arc<CompiledPolicy>>,
    /// `MaxSessionDuration` of roles by ARN, from `iam-roles/*.json`.
    max_session_durations: FxHashMap<String, u64>,
    /// `manifest.json`'s `max_changed_decisions` (see
    /// [`crate::bundle::diff::manifest_limit`]).
    max_changed_decisions: Option<u64>,
}

struct Builder<'a> {
    files: &'a BundleFiles,
    managed: HashMap<String, Arc<CompiledPolicy>>,
    /// Permissions boundaries by policy ARN, compiled once.
    boundaries: FxHashMap<String, Arc<PolicySet>>,
    policies: usize,
    statements: usize,
    memberships: FxHashMap<String, OrgMembership>,
    caller_facts: FxHashMap<String, CallerFacts>,
}

impl Snapshot {
    /// Compiles a bundle. Any problem refuses the whole bundle.
    pub fn compile(files: &BundleFiles, source: &str) -> Result<Self, BundleError> {
        files.check_layout()?;
        let accounts = files
            .iter()
            .filter(|(k, _)| revision::is_account_file(k))
            .map(|(k, v)| (k.to_owned(), Cow::Borrowed(v)))
            .collect();
        // Actions, keys and values repeat across policies: one copy each.
        crate::policy::intern::scope(|| Self::compile_interned(files, accounts, source))
    }

    /// [`Snapshot::compile`], taking the account files (`iam/*.json`, the
    /// bulk of a bundle) out of `files`: each one's text is freed once it
    /// is read, so a reload holds the old snapshot, the one being built
    /// and the text of one account file at a time.
    pub fn compile_taking(files: &mut BundleFiles, source: &str) -> Result<Self, BundleError> {
        files.check_layout()?;
        let accounts = files
            .take_where(revision::is_account_file)
            .into_iter()
            .map(|(k, v)| (k, Cow::Owned(v)))
            .collect();
        let files = &*files;
        crate::policy::intern::scope(|| Self::compile_interned(files, accounts, source))
    }

    fn compile_interned(
        files: &BundleFiles,
        accounts: Vec<(String, Cow<'_, str>)>,
        source: &str,
    ) -> Result<Self, BundleError> {
        let started = Instant::now();
        // Hashing the other files for the revision needs nothing compiled:
        // it runs beside the compile (its error, if any, still comes where
        // it always did).
        std::thread::scope(|s| {
            let hashing = std::thread::Builder::new()
                .spawn_scoped(s, || revision::other_digests(files))
                .ok();
            Self::compile_hashed(files, accounts, source, started, hashing)
        })
    }

    fn compile_hashed(
        files: &BundleFiles,
        accounts: Vec<(String, Cow<'_, str>)>,
        source: &str,
        started: Instant,
        hashing: Option<std::thread::ScopedJoinHandle<'_, Vec<revision::FileDigest>>>,
    ) -> Result<Self, BundleError> {
        let mut b = Builder {
            files,
            managed: HashMap::new(),
            boundaries: FxHashMap::default(),
            policies: 0,
            statements: 0,
            memberships: FxHashMap::default(),
            caller_facts: FxHashMap::default(),
        };
        let mut users = FxHashMap::default();
        let mut by_name: FxHashMap<String, Names> = FxHashMap::default();
        let mut known_accounts = Vec::new();

        // One account file at a time: digested (beside the parse) and
        // read, its text dropped, then its managed policies compiled and
        // dropped (the compiled copies are all that is used from here on)
        // before the next file is read, so a reload never holds more than
        // one account's policy texts.
        let mut digests = Vec::with_capacity(accounts.len());
        let mut details = Vec::new();
        for (file, text) in accounts {
            let (digest, d) = std::thread::scope(|s| {
                let hashing = std::thread::Builder::new()
                    .spawn_scoped(s, || revision::digest(&text))
                    .ok();
                let d = parse_json::<AuthorizationDetails>(&file, &text);
                let digest = hashing
                    .and_then(|h| h.join().ok())
                    .unwrap_or_else(|| revision::digest(&text));
                (digest, d)
            });
            drop(text);
            let mut d = d?;
            let account = file
                .strip_prefix("iam/")
                .and_then(|f| f.strip_suffix(".json"))
                .unwrap_or_default()
                .to_owned();
            check_account_file(&file, &account, &d)?;
            b.compile_managed(&file, &d.policies)?;
            d.policies = Vec::new();
            known_accounts.push(account);
            digests.push((file.clone(), digest));
            details.push((file, d));
        }
        // Each account file is dropped once its principals are built.
        for (file, mut d) in details {
            let file = &file.as_str();
            let groups: HashMap<&str, (usize, &crate::bundle::aws::GroupDetail)> = d
                .group_detail_list
                .iter()
                .enumerate()
                .map(|(i, g)| (g.group_name.as_str(), (i, g)))
                .collect();
            let managed = &b.managed;
            // A user's identity policies, compiled and indexed in parallel.
            let user_sets = par_map(&d.user_detail_list, |i, u| -> Result<_, BundleError> {
                let path = format!("$.UserDetailList[{i}]");
                let mut set = inline(file, &path, "UserPolicyList", &u.arn, &u.user_policy_list)?;
                let own = Counted::of(&set);
                set.extend(attached(
                    managed,
                    file,
                    &path,
                    &u.attached_managed_policies,
                )?);
                let mut counted = own;
                for (gi, g) in u.group_list.iter().enumerate() {
                    let (idx, group) = groups.get(g.as_str()).ok_or_else(|| {
                        BundleError::invalid(
                            *file,
                            format!("{path}.GroupList[{gi}]"),
                            format!("unknown group `{g}`"),
                        )
                    })?;
                    let gpath = format!("$.GroupDetailList[{idx}]");
                    let gid = group
                        .arn
                        .clone()
                        .unwrap_or_else(|| group.group_name.clone());
                    let g_inline = inline(
                        file,
                        &gpath,
                        "GroupPolicyList",
                        &gid,
                        &group.group_policy_list,
                    )?;
                    counted.add(Counted::of(&g_inline));
                    set.extend(g_inline);
                    set.extend(attached(
                        managed,
                        file,
                        &gpath,
                        &group.attached_managed_policies,
                    )?);
                }
                Ok((PolicySet::new(set), counted))
            })?;
            // The users' and groups' inline policies are compiled: free
            // their texts before the roles compile.
            drop(groups);
            for u in &mut d.user_detail_list {
                u.user_policy_list = Vec::new();
            }
            for g in &mut d.group_detail_list {
                g.group_policy_list = Vec::new();
            }
            let d = &d;
            for ((i, u), compiled) in d.user_detail_list.iter().enumerate().zip(user_sets) {
                let path = format!("$.UserDetailList[{i}]");
                let (identity, counted) = compiled?;
                b.policies += counted.policies;
                b.statements += counted.statements;
                let boundary = b.boundary(file, &path, u.permissions_boundary.as_ref())?;
                let tags = tags(&u.tags);
                let principal = Principal::parse(&u.arn)
                    .map_err(|e| BundleError::invalid_from(*file, format!("{path}.Arn"), e))?
                    .with_tags(tags.iter().map(|(k, v)| (k.as_str(), v.clone())));
                let entity = Arc::new(Entity {
                    arn: u.arn.clone(),
                    identity,
                    boundary,
                    tags,
                    principal: Some(principal.clone()),
                    user_id: u.user_id.clone(),
                    trust: None,
                    role_id: None,
                });
                users.insert(u.arn.clone(), entity.clone());
                by_name
                    .entry(principal.account().to_owned())
                    .or_default()
                    .users
                    .insert(u.user_name.clone(), entity);
            }
            let managed = &b.managed;
            let role_sets = par_map(&d.role_detail_list, |i, r| {
                let path = format!("$.RoleDetailList[{i}]");
                let identity = inline(file, &path, "RolePolicyList", &r.arn, &r.role_policy_list)
                    .and_then(|mut set| {
                        let counted = Counted::of(&set);
                        set.extend(attached(
                            managed,
                            file,
                            &path,
                            &r.attached_managed_policies,
                        )?);
                        Ok((PolicySet::new(set), counted))
                    });
                let trust = r.assume_role_policy_document.as_ref().map(|doc| {
                    let at = format!("{path}.AssumeRolePolicyDocument");
                    let id = format!("{}#trust", r.arn);
                    compile_text(file, &at, &id, PolicyKind::Trust, doc)
                });
                (identity, trust)
            })?;
            for ((i, r), (identity, trust)) in d.role_detail_list.iter().enumerate().zip(role_sets)
            {
                let path = format!("$.RoleDetailList[{i}]");
                let (identity, counted) = identity?;
                b.policies += counted.policies;
                b.statements += counted.statements;
                let boundary = b.boundary(file, &path, r.permissions_boundary.as_ref())?;
                let trust = match trust {
                    Some(t) => {
                        let t = t?;
                        b.count(&t);
                        Some(t)
                    }
                    None => None,
                };
                let account = crate::policy::arn::Arn::parse(&r.arn)
                    .map(|a| a.account.to_owned())
                    .ok_or_else(|| {
                        BundleError::invalid(*file, format!("{path}.Arn"), "not an ARN")
                    })?;
                let entity = Arc::new(Entity {
                    arn: r.arn.clone(),
                    identity,
                    boundary,
                    tags: tags(&r.tags),
                    principal: None,
                    user_id: None,
                    trust: trust.map(|t| PolicySet::new(vec![t])),
                    role_id: r.role_id.clone(),
                });
                let names = by_name.entry(account).or_default();
                names.roles.insert(r.role_name.to_ascii_lowercase(), entity);
                for (j, p) in r.instance_profile_list.iter().enumerate() {
                    let ppath = format!("{path}.InstanceProfileList[{j}]");
                    add_profile(&mut names.profiles, p, &r.arn)
                        .map_err(|e| BundleError::invalid_from(*file, ppath, e))?;
                }
            }
        }

        let accounts = b.organization()?;
        for acct in accounts.keys() {
            if !known_accounts.contains(acct) {
                known_accounts.push(acct.clone());
            }
        }
        let resource_policies = b.resource_policies()?;
        let others = match hashing {
            Some(h) => h
                .join()
                .map_err(|_| BundleError::invalid("bundle", "$", "hashing the bundle failed"))?,
            None => revision::other_digests(files),
        };
        digests.extend(others);
        let (revision, manifest_revision) = revision::revision(files, digests)?;
        let max_session_durations = max_session_durations(files)?;
        let max_changed_decisions = crate::bundle::diff::manifest_limit(files)?;
        let stats = Stats {
            accounts: known_accounts.len(),
            principals: by_name
                .values()
                .map(|n| n.users.len() + n.roles.len())
                .sum(),
            policies: b.policies,
            statements: b.statements,
            resource_policies: resource_policies.len(),
        };
        Ok(Self {
            revision: revision.into(),
            manifest_revision,
            source: source.to_owned(),
            loaded_at: SystemTime::now(),
            compile_duration: started.elapsed(),
            users,
            by_name,
            accounts,
            memberships: std::mem::take(&mut b.memberships),
            caller_facts: std::mem::take(&mut b.caller_facts),
            direct_caller: CallerFacts::direct(),
            known_accounts,
            resource_policies,
            stats,
            max_changed_decisions,
            service_data: Default::default(),
            managed: std::mem::take(&mut b.managed),
            max_session_durations,
        })
    }

    /// What the services' loaders read from this bundle (empty when the
    /// snapshot was compiled without loaders).
    pub fn service_data(&self) -> &crate::bundle::service_data::ServiceData {
        &self.service_data
    }

    /// The snapshot holding `data` beside its IAM view (one load: the data
    /// comes from the same files).
    pub fn with_service_data(mut self, data: crate::bundle::service_data::ServiceData) -> Self {
        self.service_data = data;
        self
    }

    /// The served revision: `<manifest revision>+sha256:<hash>`, or
    /// `sha256:<hash>` without one. The hash covers every file, so two
    /// different bundles never serve under one revision.
    pub fn revision(&self) -> &Arc<str> {
        &self.revision
    }

    /// The revision `manifest.json` names, if any.
    pub fn manifest_revision(&self) -> Option<&str> {
        self.manifest_revision.as_deref()
    }

    /// Where the bundle came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// When it was compiled.
    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }

    /// How long compilation took.
    pub fn compile_duration(&self) -> Duration {
        self.compile_duration
    }

    /// Counts of what the snapshot holds.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The most sampled decisions this bundle expects to change when it
    /// replaces the active snapshot (`manifest.json`), if it says.
    pub fn max_changed_decisions(&self) -> Option<u64> {
        self.max_changed_decisions
    }

    /// Decides a request. An unknown principal is an implicit deny with
    /// that reason, not an error.
    pub fn authorize(&self, req: &AuthzRequest) -> Result<AuthzAnswer, AuthzError> {
        self.authorize_with(req, !req.outcome_only)
    }

    /// [`Snapshot::authorize`], with the deciding statements and the missing
    /// context keys in the answer only when `explain` is set (whatever
    /// `req.outcome_only` says).
    pub fn authorize_with(
        &self,
        req: &AuthzRequest,
        explain: bool,
    ) -> Result<AuthzAnswer, AuthzError> {
        let deny = |reason: AnswerReason| AuthzAnswer {
            decision: Outcome::ImplicitDeny,
            reason,
            matched: Vec::new(),
            missing_context_keys: Vec::new(),
            revision: self.revision.clone(),
        };
        // Taken apart without copying: a known user is prebuilt.
        let parsed = match PrincipalArn::parse(&req.principal_arn) {
            Ok(p) => p,
            Err(e) => return Ok(deny(AnswerReason::InvalidPrincipal(e.to_string()))),
        };
        let entity = match parsed.kind() {
            // An ARN without the user's path (`user/NAME`) still names the
            // user (names are unique in an account); a wrong path does not.
            PrincipalKind::User => self.users.get(&req.principal_arn).or_else(|| {
                let resource = req.principal_arn.splitn(6, ':').nth(5).unwrap_or_default();
                let name = resource
                    .strip_prefix("user/")
                    .filter(|n| !n.contains('/'))?;
                self.by_name.get(parsed.account())?.users.get(name)
            }),
            PrincipalKind::AssumedRole => {
                let role = ascii_lowercase(parsed.role().unwrap_or_default());
                self.by_name
                    .get(parsed.account())
                    .and_then(|n| n.roles.get(&*role))
            }
            _ => None,
        };
        let known = match parsed.kind() {
            PrincipalKind::Anonymous => true,
            // A provider's ARN names a caller only for the one action a web
            // identity can ask for (the STS listener verified its token).
            PrincipalKind::WebIdentity => req
                .action
                .eq_ignore_ascii_case("sts:AssumeRoleWithWebIdentity"),
            PrincipalKind::Root => self.known_accounts.iter().any(|a| a == parsed.account()),
            _ => entity.is_some(),
        };
        if !known {
            return Ok(deny(AnswerReason::UnknownPrincipal(
                req.principal_arn.clone(),
            )));
        }
        // Build the caller: users are prebuilt unless session tags apply.
        let owned;
        let principal: &Principal = match (entity, parsed.kind()) {
            (Some(e), PrincipalKind::User) if req.session_tags.is_empty() => match &e.principal {
                Some(p) => p,
                None => {
                    owned = parsed.to_principal();
                    &owned
                }
            },
            (Some(e), kind) => {
                let mut tags: BTreeMap<String, String> = e.tags.iter().cloned().collect();
                for (k, v) in &req.session_tags {
                    tags.insert(k.to_ascii_lowercase(), v.clone());
                }
                let p = match (&e.principal, kind) {
                    (Some(user), PrincipalKind::User) => user.clone(),
                    _ => parsed.to_principal(),
                }
                .with_tags(tags);
                owned = if kind == PrincipalKind::AssumedRole {
                    p.with_role_arn(e.arn.clone())
                } else {
                    p
                };
                &owned
            }
            (None, _) => {
                owned = parsed.to_principal();
                &owned
            }
        };
        let mut session_policies = Vec::new();
        if let Some(doc) = &req.session_policy {
            let p = CompiledPolicy::from_json("session", PolicyKind::Session, doc)
                .map_err(AuthzError::SessionPolicy)?;
            session_policies.push(Arc::new(p));
        }
        // Managed session policies take part with the inline one (an allow
        // in any of them, within the identity policies); one the bundle
        // lacks adds nothing, so the session can only narrow.
        session_policies.extend(
            req.session_policy_arns
                .iter()
                .filter_map(|arn| self.managed.get(arn).cloned()),
        );
        let session = (req.session_policy.is_some() || !req.session_policy_arns.is_empty())
            .then(|| PolicySet::new(session_policies));
        let facts = self
            .caller_facts
            .get(principal.account())
            .unwrap_or(&self.direct_caller);
        let request = Request::new(principal, &req.action, &req.resource, &req.context)
            .with_caller_facts(facts);
        let request = match &req.resource_account {
            Some(a) => request.with_resource_account(a),
            None => request,
        };
        let resource_account = request.resource_account();
        let applicable = Applicable {
            identity: entity.map(|e| &e.identity),
            boundary: entity.and_then(|e| e.boundary.as_deref()),
            session: session.as_ref(),
            resource: self.resource_policies.get(&req.resource).or_else(|| {
                // A role's trust policy is the resource policy of the
                // trust-governed `sts:` actions on it.
                let trust_action = request.resource_policy_rule()
                    == crate::engine::ResourcePolicyRule::MustAllow
                    && request.action().starts_with("sts:");
                if trust_action {
                    self.role_entity(&req.resource)
                        .and_then(|e| e.trust.as_ref())
                } else {
                    None
                }
            }),
            scps: self
                .accounts
                .get(principal.account())
                .and_then(|a| a.scps.as_deref()),
            rcps: resource_account
                .and_then(|acct| self.accounts.get(acct))
                .and_then(|a| a.rcps.as_deref()),
        };
        let d = decide(&applicable, &request);
        let (matched, missing_context_keys) = if explain {
            (
                d.matched
                    .iter()
                    .map(|m| MatchedInfo {
                        policy: m.policy.id_arc().clone(),
                        policy_type: m.kind(),
                        statement: m.index,
                        sid: m.statement.sid_arc().cloned(),
                    })
                    .collect(),
                d.missing_keys.iter().map(|k| (*k).to_owned()).collect(),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(AuthzAnswer {
            decision: d.outcome,
            reason: AnswerReason::Decided(d.reason),
            matched,
            missing_context_keys,
            revision: self.revision.clone(),
        })
    }

    /// A JSON summary for `/v1/status`.
    pub fn summary(&self) -> Value {
        json!({
            "revision": &*self.revision,
            "manifest_revision": self.manifest_revision,
            "source": self.source,
            "compile_ms": self.compile_duration.as_secs_f64() * 1000.0,
            "counts": self.stats,
        })
    }
}

impl Builder<'_> {
    /// Compiles an account file's managed policies (users, groups and roles
    /// refer to them). Each compiles on its own, so they compile in
    /// parallel; the results are taken in file order, so the first error
    /// and the map are what compiling one by one gives.
    fn compile_managed(
        &mut self,
        file: &str,
        policies: &[crate::bundle::aws::ManagedPolicyDetail],
    ) -> Result<(), BundleError> {
        let compiled = par_map(policies, |i, p| {
            let path = format!("$.Policies[{i}]");
            let version = p
                .policy_version_list
                .iter()
                .enumerate()
                .find(|(_, v)| {
                    v.is_default_version
                        || (p.default_version_id.is_some() && v.version_id == p.default_version_id)
                })
                .ok_or_else(|| BundleError::invalid(file, &path, "no default policy version"))?;
            let at = format!("{path}.PolicyVersionList[{}].Document", version.0);
            compile_text(file, &at, &p.arn, PolicyKind::Identity, &version.1.document)
        })?;
        for (p, c) in policies.iter().zip(compiled) {
            let c = c?;
            self.count(&c);
            self.managed.insert(p.arn.clone(), c);
        }
        Ok(())
    }

    fn compile(
        &mut self,
        file: &str,
        path: &str,
        id: &str,
        kind: PolicyKind,
        doc: &Value,
    ) -> Result<Arc<CompiledPolicy>, BundleError> {
        let p = compile_value(file, path, id, kind, doc)?;
        self.count(&p);
        Ok(p)
    }

    /// Counts a compiled policy in the snapshot's stats.
    fn count(&mut self, p: &CompiledPolicy) {
        self.policies += 1;
        self.statements += p.statements().len();
    }

    fn boundary(
        &mut self,
        file: &str,
        path: &str,
        b: Option<&crate::bundle::aws::Boundary>,
    ) -> Result<Option<Arc<PolicySet>>, BundleError> {
        let Some(b) = b else { return Ok(None) };
        if let Some(set) = self.boundaries.get(&b.permissions_boundary_arn) {
            return Ok(Some(set.clone()));
        }
        let p = self
            .managed
            .get(&b.permissions_boundary_arn)
            .ok_or_else(|| {
                BundleError::invalid(
                    file,
                    format!("{path}.PermissionsBoundary"),
                    format!(
                        "boundary policy `{}` is not in the bundle",
                        b.permissions_boundary_arn
                    ),
                )
            })?;
        // The same managed document, evaluated in the boundary role.
        let boundary = Arc::new(CompiledPolicy::retag(p, PolicyKind::Boundary));
        let set = Arc::new(PolicySet::new(vec![boundary]));
        self.boundaries
            .insert(b.permissions_boundary_arn.clone(), set.clone());
        Ok(Some(set))
    }

    fn organization(&mut self) -> Result<FxHashMap<String, AccountOrg>, BundleError> {
        use crate::bundle::organization::FILE;
        let Some(source) = crate::bundle::organization::read(self.files)? else {
            return Ok(FxHashMap::default());
        };
        let org = &source.org;
        let parents: HashMap<&str, &str> = org
            .organizational_units
            .iter()
            .map(|o| (o.id.as_str(), o.parent_id.as_str()))
            .collect();
        let roots: Vec<&str> = org.roots.iter().map(|r| r.id.as_str()).collect();
        let mut scps: HashMap<&str, Vec<Arc<CompiledPolicy>>> = HashMap::new();
        let mut rcps: HashMap<&str, Vec<Arc<CompiledPolicy>>> = HashMap::new();
        let mut any_rcp = false;
        for (i, p) in org.policies.iter().enumerate() {
            let kind = match p.policy_type.as_str() {
                "SERVICE_CONTROL_POLICY" => PolicyKind::Scp,
                "RESOURCE_CONTROL_POLICY" => PolicyKind::Rcp,
                _ => continue,
            };
            let at = source.content_at.get(i);
            let compiled = self.compile(
                at.map_or(FILE, |a| a.file.as_str()),
                at.map_or("$", |a| a.path.as_str()),
                &p.id,
                kind,
                &p.content,
            )?;
            let map = if kind == PolicyKind::Scp {
                &mut scps
            } else {
                any_rcp = true;
                &mut rcps
            };
            for t in &p.targets {
                map.entry(t.as_str()).or_default().push(compiled.clone());
            }
        }
        // RCPFullAWSAccess is attached to every level and cannot be detached.
        let full_access = if any_rcp {
            let doc = json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]});
            Some(self.compile(FILE, "$", "RCPFullAWSAccess", PolicyKind::Rcp, &doc)?)
        } else {
            None
        };
        let mut out = FxHashMap::default();
        for (i, a) in org.accounts.iter().enumerate() {
            let mut path = vec![a.id.as_str()];
            let mut cur = a.parent_id.as_str();
            let mut guard = 0;
            while !roots.contains(&cur) {
                path.push(cur);
                cur = parents.get(cur).copied().ok_or_else(|| {
                    let at = source.account_at.get(i);
                    BundleError::invalid(
                        at.map_or(FILE, |a| a.file.as_str()),
                        at.map_or("$", |a| a.path.as_str()),
                        format!("`{cur}` is neither a root nor an organizational unit"),
                    )
                })?;
                guard += 1;
                if guard > 64 {
                    return Err(BundleError::invalid(
                        FILE,
                        format!("$.Accounts[{i}]"),
                        "organizational units form a cycle",
                    ));
                }
            }
            path.push(cur);
            path.reverse();
            if let Some(org_id) = &org.id {
                // aws:PrincipalOrgPaths: o-id/r-id/ou-id/.../ (the account's
                // parents, root first; the account itself is not a level).
                let parents = path.get(..path.len().saturating_sub(1)).unwrap_or_default();
                let mut org_path = format!("{org_id}/");
                for level in parents {
                    org_path.push_str(level);
                    org_path.push('/');
                }
                self.caller_facts
                    .insert(a.id.clone(), CallerFacts::in_organization(org_id, org_path));
            }
            if let (Some(org_id), Some(mgmt)) = (&org.id, &org.management_account_id) {
                // path = [root, OUs outermost first..., account]
                let ous = path
                    .get(1..path.len().saturating_sub(1))
                    .unwrap_or_default();
                self.memberships.insert(
                    a.id.clone(),
                    OrgMembership {
                        organization_arn: format!(
                            "arn:aws:organizations::{mgmt}:organization/{org_id}"
                        ),
                        ou_arns: ous
                            .iter()
                            .map(|ou| format!("arn:aws:organizations::{mgmt}:ou/{org_id}/{ou}"))
                            .collect(),
                    },
                );
            }
            if org.management_account_id.as_deref() == Some(a.id.as_str()) {
                out.insert(a.id.clone(), AccountOrg::default());
                continue;
            }
            let levels = |map: &HashMap<&str, Vec<Arc<CompiledPolicy>>>,
                          extra: Option<&Arc<CompiledPolicy>>| {
                path.iter()
                    .map(|t| {
                        let mut ps = map.get(t).cloned().unwrap_or_default();
                        if let Some(e) = extra {
                            ps.push(e.clone());
                        }
                        PolicySet::new(ps)
                    })
                    .collect::<Vec<_>>()
            };
            out.insert(
                a.id.clone(),
                AccountOrg {
                    scps: Some(levels(&scps, None)),
                    rcps: full_access.as_ref().map(|fa| levels(&rcps, Some(fa))),
                },
            );
        }
        Ok(out)
    }

    fn resource_policies(&mut self) -> Result<FxHashMap<String, PolicySet>, BundleError> {
        const FILE: &str = "resource-policies.json";
        let Some(text) = self.files.get(FILE) else {
            return Ok(FxHashMap::default());
        };
        let entries: Vec<ResourcePolicyEntry> = parse_json(FILE, text)?;
        let mut out = FxHashMap::default();
        for (i, e) in entries.iter().enumerate() {
            let p = self.compile(
                FILE,
                &format!("$[{i}].Policy"),
                &e.resource_arn,
                PolicyKind::Resource,
                &e.policy,
            )?;
            out.insert(e.resource_arn.clone(), PolicySet::new(vec![p]));
        }
        Ok(out)
    }
}

/// Policies and statements compiled for one principal (the snapshot's
/// stats count a group's inline policy once per member, as they compile).
#[derive(Debug, Clone, Copy, Default)]
struct Counted {
    policies: usize,
    statements: usize,
}

impl Counted {
    fn of(compiled: &[Arc<CompiledPolicy>]) -> Self {
        Self {
            policies: compiled.len(),
            statements: compiled.iter().map(|p| p.statements().len()).sum(),
        }
    }

    fn add(&mut self, other: Self) {
        self.policies += other.policies;
        self.statements += other.statements;
    }
}

/// Compiles a policy document read as text.
fn compile_text(
    file: &str,
    path: &str,
    id: &str,
    kind: PolicyKind,
    doc: &JsonText,
) -> Result<Arc<CompiledPolicy>, BundleError> {
    let value = doc
        .to_value()
        .map_err(|e| BundleError::invalid_from(file, path, e))?;
    compile_value(file, path, id, kind, &value)
}

/// Compiles a policy document; errors name the file and the JSON path.
fn compile_value(
    file: &str,
    path: &str,
    id: &str,
    kind: PolicyKind,
    doc: &Value,
) -> Result<Arc<CompiledPolicy>, BundleError> {
    let p = CompiledPolicy::from_json(id, kind, doc).map_err(|e| match e {
        EngineError::Policy { source, .. } => BundleError::invalid(
            file,
            format!(
                "{path}{}",
                source.path.strip_prefix('$').unwrap_or(&source.path)
            ),
            source.kind.to_string(),
        )
        .caused_by(source),
        other => BundleError::invalid_from(file, path, other),
    })?;
    Ok(Arc::new(p))
}

/// Compiles a principal's (or group's) inline policies, in order.
fn inline(
    file: &str,
    path: &str,
    list: &str,
    owner: &str,
    policies: &[InlinePolicy],
) -> Result<Vec<Arc<CompiledPolicy>>, BundleError> {
    policies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let at = format!("{path}.{list}[{i}].PolicyDocument");
            let id = format!("{owner}#{}", p.policy_name);
            compile_text(file, &at, &id, PolicyKind::Identity, &p.policy_document)
        })
        .collect()
}

/// The compiled managed policies a principal or group attaches.
fn attached(
    managed: &HashMap<String, Arc<CompiledPolicy>>,
    file: &str,
    path: &str,
    attached: &[AttachedPolicy],
) -> Result<Vec<Arc<CompiledPolicy>>, BundleError> {
    attached
        .iter()
        .enumerate()
        .map(|(i, a)| {
            managed.get(&a.policy_arn).cloned().ok_or_else(|| {
                BundleError::invalid(
                    file,
                    format!("{path}.AttachedManagedPolicies[{i}]"),
                    format!(
                        "attached policy `{}` is not in any `Policies` list of the bundle",
                        a.policy_arn
                    ),
                )
            })
        })
        .collect()
}

/// Items handed to a compile thread at a time: small enough to even out
/// policies of different sizes, large enough that taking them is cheap.
const PAR_BATCH: usize = 32;

/// `f` over every item, on as many threads as there are cores (each with
/// its own interning table); the results come back in item order, so what
/// is built from them does not depend on scheduling. A thread that cannot
/// be started leaves its share to the others.
fn par_map<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(usize, &T) -> R + Sync,
) -> Result<Vec<R>, BundleError> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len().div_ceil(PAR_BATCH));
    if threads <= 1 {
        return Ok(items.iter().enumerate().map(|(i, t)| f(i, t)).collect());
    }
    let next = AtomicUsize::new(0);
    let work = || {
        crate::policy::intern::scope(|| {
            let mut out = Vec::new();
            loop {
                let start = next.fetch_add(PAR_BATCH, Ordering::Relaxed);
                let Some(batch) = items.get(start..) else {
                    break;
                };
                if batch.is_empty() {
                    break;
                }
                for (k, item) in batch.iter().take(PAR_BATCH).enumerate() {
                    out.push((start + k, f(start + k, item)));
                }
            }
            out
        })
    };
    let parts = std::thread::scope(|s| {
        let handles: Vec<_> = (1..threads)
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(s, work).ok())
            .collect();
        let mut parts = vec![work()];
        let mut failed = false;
        for h in handles {
            match h.join() {
                Ok(p) => parts.push(p),
                Err(_) => failed = true,
            }
        }
        (!failed).then_some(parts)
    })
    .ok_or_else(|| BundleError::invalid("bundle", "$", "a compile thread failed"))?;
    let mut slots: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    for (i, r) in parts.into_iter().flatten() {
        if let Some(slot) = slots.get_mut(i) {
            *slot = Some(r);
        }
    }
    let out: Vec<R> = slots.into_iter().flatten().collect();
    if out.len() != items.len() {
        return Err(BundleError::invalid(
            "bundle",
            "$",
            "a compile thread failed",
        ));
    }
    Ok(out)
}

/// Records profile `p` of role `role_arn`. A profile is listed under each of
/// its roles; every listing must agree on its ARN and, since the profile is
/// in the role's account, name that account.
fn add_profile(
    profiles: &mut FxHashMap<String, InstanceProfile>,
    p: &crate::bundle::aws::InstanceProfileDetail,
    role_arn: &str,
) -> Result<(), ProfileError> {
    let account = |arn: &str| crate::policy::arn::Arn::parse(arn).map(|a| a.account.to_owned());
    if account(&p.arn).is_none() || account(&p.arn) != account(role_arn) {
        return Err(ProfileError::OtherAccount {
            profile: p.arn.clone(),
            role: role_arn.to_owned(),
        });
    }
    let entry = profiles
        .entry(p.instance_profile_name.to_ascii_lowercase())
        .or_insert_with(|| InstanceProfile {
            arn: p.arn.clone(),
            name: p.instance_profile_name.clone(),
            role_arns: Vec::new(),
            id: p.instance_profile_id.clone(),
        });
    if entry.arn != p.arn {
        return Err(ProfileError::TwoArns {
            name: p.instance_profile_name.clone(),
            first: entry.arn.clone(),
            second: p.arn.clone(),
        });
    }
    let roles = p.roles.iter().map(|r| r.arn.as_str()).chain([role_arn]);
    for role in roles {
        if !entry.role_arns.iter().any(|r| r == role) {
            entry.role_arns.push(role.to_owned());
        }
    }
    Ok(())
}

/// Why a role's instance profile listing was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum ProfileError {
    #[error("instance profile `{profile}` is not in the account of role `{role}`")]
    OtherAccount { profile: String, role: String },
    #[error("instance profile `{name}` is listed with two ARNs: `{first}` and `{second}`")]
    TwoArns {
        name: String,
        first: String,
        second: String,
    },
}

fn tags(tags: &[Tag]) -> Vec<(String, String)> {
    tags.iter()
        .map(|t| (t.key.to_ascii_lowercase(), t.value.clone()))
        .collect()
}

#[cfg(test)]
mod tests;
