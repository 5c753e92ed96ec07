//! The policy test file format and its compilation into engine inputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use crate::engine::Outcome;
use crate::engine::{
    Applicable, CompiledPolicy, Context, EngineError, PolicySet, Principal, Request,
};
use crate::policy::{ParseError, PolicyKind};

/// A test file that cannot be used, with the file and JSON path.
#[derive(Debug, Error)]
pub enum TestFileError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: at `{path}`: {message}")]
    Format {
        file: PathBuf,
        path: String,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    /// The file's JSON Schema (`schemas/policy-test.v1.json`), for editors.
    #[serde(default, rename = "$schema")]
    _schema: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    source: Option<String>,
    principal: RawPrincipal,
    #[serde(default)]
    policies: Option<RawPolicies>,
    #[serde(default)]
    resource_account: Option<String>,
    #[serde(default)]
    tests: Option<Vec<RawTest>>,
    #[serde(default)]
    expect_invalid: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrincipal {
    arn: String,
    #[serde(default)]
    role_arn: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicies {
    #[serde(default)]
    identity: Vec<Value>,
    #[serde(default)]
    boundary: Option<Value>,
    #[serde(default)]
    session: Option<Value>,
    #[serde(default)]
    resource: Option<Value>,
    #[serde(default)]
    scps: Option<Vec<Vec<Value>>>,
    #[serde(default)]
    rcps: Option<Vec<Vec<Value>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    name: String,
    action: String,
    resource: String,
    #[serde(default)]
    context: BTreeMap<String, Value>,
    expect: String,
}

/// One test, ready to run.
#[derive(Debug, Clone)]
pub struct CompiledCase {
    pub name: String,
    pub action: String,
    pub resource: String,
    pub context: Context,
    pub expect: Outcome,
}

/// The policies of a test file, compiled, and its tests.
#[derive(Debug)]
pub struct CompiledFile {
    pub path: PathBuf,
    pub description: Option<String>,
    pub source: Option<String>,
    pub principal: Principal,
    /// The ARN as written (for resolving it in a bundle).
    pub principal_arn: String,
    pub principal_tags: BTreeMap<String, String>,
    /// Whether the file carries its own `policies` (bundle tests may omit
    /// them to test the bundle's policies).
    pub has_policies: bool,
    pub resource_account: Option<String>,
    pub identity: PolicySet,
    pub boundary: Option<PolicySet>,
    pub session: Option<PolicySet>,
    pub resource: Option<PolicySet>,
    pub scps: Option<Vec<PolicySet>>,
    pub rcps: Option<Vec<PolicySet>>,
    /// `Some(error)` when the file expects its policies to be refused; the
    /// error is the refusal (or `None` inside when nothing was refused).
    pub expect_invalid: Option<Option<EngineError>>,
    pub cases: Vec<CompiledCase>,
}

impl CompiledFile {
    /// The engine's view of the file's policies.
    pub fn applicable(&self) -> Applicable<'_> {
        Applicable {
            identity: Some(&self.identity),
            boundary: self.boundary.as_ref(),
            session: self.session.as_ref(),
            resource: self.resource.as_ref(),
            scps: self.scps.as_deref(),
            rcps: self.rcps.as_deref(),
        }
    }

    /// Builds the engine request for one case.
    pub fn request<'a>(&'a self, case: &'a CompiledCase) -> Request<'a> {
        let req = Request::new(&self.principal, &case.action, &case.resource, &case.context);
        match &self.resource_account {
            Some(acct) => req.with_resource_account(acct),
            None => req,
        }
    }
}

/// Reads and compiles a test file from disk.
pub fn load_file(path: &Path) -> Result<CompiledFile, TestFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| TestFileError::Read {
        file: path.to_owned(),
        source,
    })?;
    parse_test_file(path, &text)
}

/// Parses and compiles test-file text; `path` is used in messages.
pub fn parse_test_file(path: &Path, text: &str) -> Result<CompiledFile, TestFileError> {
    let err = |at: String, message: String| TestFileError::Format {
        file: path.to_owned(),
        path: at,
        message,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let raw: RawFile = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = e.path().to_string();
        let at = if at == "." {
            "$".to_owned()
        } else {
            format!("$.{at}")
        };
        err(at, e.inner().to_string())
    })?;
    de.end().map_err(|e| err("$".to_owned(), e.to_string()))?;

    let principal_arn = raw.principal.arn.clone();
    let principal_tags = raw.principal.tags.clone();
    let principal = Principal::parse(&raw.principal.arn)
        .map_err(|e| err("$.principal.arn".to_owned(), e.to_string()))?;
    let principal = match raw.principal.role_arn {
        Some(role) => principal.with_role_arn(role),
        None => principal,
    }
    .with_tags(raw.principal.tags);

    let expect_invalid = raw.expect_invalid.unwrap_or(false);
    if expect_invalid && raw.tests.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(err(
            "$.tests".to_owned(),
            "a file with `expect_invalid` has no tests".to_owned(),
        ));
    }
    if !expect_invalid && raw.tests.is_none() {
        return Err(err("$".to_owned(), "missing field `tests`".to_owned()));
    }

    let has_policies = raw.policies.is_some();
    let compiled = compile_policies(&raw.policies.unwrap_or_default());
    let (identity, boundary, session, resource, scps, rcps, refusal) = match compiled {
        Ok(c) => (c.0, c.1, c.2, c.3, c.4, c.5, None),
        Err((at, e)) => {
            if !expect_invalid {
                let message = match &e {
                    EngineError::Policy { source, .. } => source.kind.to_string(),
                    other => other.to_string(),
                };
                return Err(err(at, message));
            }
            (PolicySet::default(), None, None, None, None, None, Some(e))
        }
    };

    let mut cases = Vec::new();
    for (i, t) in raw.tests.unwrap_or_default().into_iter().enumerate() {
        let expect = Outcome::parse(&t.expect).ok_or_else(|| {
            err(
                format!("$.tests[{i}].expect"),
                format!(
                    "unknown decision `{}`: expected `allowed`, `explicitDeny` or `implicitDeny`",
                    t.expect
                ),
            )
        })?;
        let mut context = Context::new();
        for (k, v) in &t.context {
            let value = crate::engine::authz::context_value(v).ok_or_else(|| {
                err(
                    format!("$.tests[{i}].context.{k}"),
                    "a context value is a string, number, boolean or an array of those".to_owned(),
                )
            })?;
            context.insert(k, value);
        }
        cases.push(CompiledCase {
            name: t.name,
            action: t.action,
            resource: t.resource,
            context,
            expect,
        });
    }

    Ok(CompiledFile {
        path: path.to_owned(),
        description: raw.description,
        source: raw.source,
        principal,
        principal_arn,
        principal_tags,
        has_policies,
        resource_account: raw.resource_account,
        identity,
        boundary,
        session,
        resource,
        scps,
        rcps,
        expect_invalid: expect_invalid.then_some(refusal),
        cases,
    })
}
type Compiled = (
    PolicySet,
    Option<PolicySet>,
    Option<PolicySet>,
    Option<PolicySet>,
    Option<Vec<PolicySet>>,
    Option<Vec<PolicySet>>,
);

fn compile_policies(p: &RawPolicies) -> Result<Compiled, (String, EngineError)> {
    let one = |id: String,
               kind: PolicyKind,
               v: &Value|
     -> Result<Arc<CompiledPolicy>, (String, EngineError)> {
        CompiledPolicy::from_json(id.clone(), kind, v)
            .map(Arc::new)
            .map_err(|e| (json_path(&id, &e), e))
    };
    let identity = p
        .identity
        .iter()
        .enumerate()
        .map(|(i, v)| one(format!("identity[{i}]"), PolicyKind::Identity, v))
        .collect::<Result<Vec<_>, _>>()?;
    let single = |name: &str, kind: PolicyKind, v: &Option<Value>| {
        v.as_ref()
            .map(|v| one(name.to_owned(), kind, v).map(|p| PolicySet::new(vec![p])))
            .transpose()
    };
    let levels = |name: &str, kind: PolicyKind, v: &Option<Vec<Vec<Value>>>| {
        v.as_ref()
            .map(|levels| {
                levels
                    .iter()
                    .enumerate()
                    .map(|(l, docs)| {
                        docs.iter()
                            .enumerate()
                            .map(|(i, d)| one(format!("{name}[{l}][{i}]"), kind, d))
                            .collect::<Result<Vec<_>, _>>()
                            .map(PolicySet::new)
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
    };
    Ok((
        PolicySet::new(identity),
        single("boundary", PolicyKind::Boundary, &p.boundary)?,
        single("session", PolicyKind::Session, &p.session)?,
        single("resource", PolicyKind::Resource, &p.resource)?,
        levels("scps", PolicyKind::Scp, &p.scps)?,
        levels("rcps", PolicyKind::Rcp, &p.rcps)?,
    ))
}

/// `$.policies.identity[0].Statement[1].Effect` from a policy id and a
/// document-relative path.
fn json_path(id: &str, e: &EngineError) -> String {
    match e {
        EngineError::Policy {
            source: ParseError { path, .. },
            ..
        } => format!("$.policies.{id}{}", path.strip_prefix('$').unwrap_or(path)),
        _ => format!("$.policies.{id}"),
    }
}
