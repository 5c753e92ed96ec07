//! ext_authz request mapping: an Envoy `CheckRequest` for any HTTP API →
//! one [`AuthzRequest`]. Owns the route templates (`iamgate.action`,
//! `iamgate.resource`, `iamgate.context.KEY`, `iamgate.path.*` context
//! extensions), careful splitting and decoding of Envoy's raw request
//! target, the principal (the identity sources below) and the derived
//! context keys.
//!
//! Rules, in order:
//! 1. The route must carry `iamgate.action` and `iamgate.resource`; a route
//!    without them, with a template that does not parse or does not give
//!    the action or ARN its structure (see 3), or with an unknown
//!    `iamgate.*` extension (a typo would silently drop a context key;
//!    `iamgate.mapping` is reserved for selecting a service mapping), is a
//!    configuration error ([`MappingError::is_config`]) and becomes an
//!    ext_authz `error_response`, so Envoy's failure mode applies. Nothing
//!    else is: every other refusal is the request's, a denial.
//! 2. Principal ([`principal`]), from the identity sources the operator
//!    configured, in this order: the verified peer certificate's URI SAN
//!    (`--uri-san-principal`; a verified peer whose SAN matches no prefix is
//!    refused, 403); a claim of a JWT that Envoy's `jwt_authn` verified,
//!    read from `metadata_context` (`--jwt-principal`; a payload without a
//!    usable claim is refused, 403); a header a trusted hop sets
//!    (`--principal-header`, none by default). Without any, 401.
//!    A route with `iamgate.auth: sigv4` reads none of them: its caller is
//!    the IAM user whose access key signed the request, verified first
//!    (`super::sigv4`, credential scope `iamgate.region` /
//!    `iamgate.service` from the route) and passed in as
//!    [`Caller::Signed`]; `aws:userid` is the bundle's id for that user and
//!    `aws:RequestedRegion` the route's region.
//! 3. Templates render with `{method}`, `{host}`, `{path.N}` (0-based,
//!    percent-decoded), `{path.N+}` (segments N.. joined with `/`),
//!    `{header.NAME}` and `{query.NAME}` (form-decoded); `{{` and `}}` are
//!    literal braces. The action template is `SERVICE:ACTION` and the
//!    resource template `*` or an ARN, with their `:` separators written in
//!    the template: a value filling the action or an ARN field before the
//!    resource part holds only ASCII letters, digits and `-`; a value in
//!    the resource part holds no `:`, `/`, `*`, `?`, whitespace or control
//!    characters (only `{path.N+}` puts `/` there, between segments). A
//!    value that breaks its rule, or that is missing, empty or ambiguous,
//!    refuses the request (a 400), never guesses: invalid
//!    percent-encoding, `%2F`/`%5C`/`\` in the path, dot segments, control
//!    characters, `;` or whitespace in a path segment (unless the route
//!    sets `iamgate.path.allow_params` / `iamgate.path.allow_spaces`),
//!    repeated headers or query parameters.
//! 4. Context: `aws:SourceIp`, `aws:SecureTransport`, `aws:CurrentTime`,
//!    `aws:EpochTime` are derived; `iamgate.context.KEY` extensions add (or
//!    override) keys with templated single values. A value taken from a
//!    header, the query or the path is whatever the client sent.
//!
//! Files: this one maps a request (keys, principal, errors);
//! `template.rs` parses and renders the route templates, `view.rs` reads
//! the request under the route's strict decoding rules, and
//! `request_keys.rs` adds the keys every request carries.

use std::borrow::Cow;
use std::cell::{OnceCell, RefCell};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use smallvec::SmallVec;

use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::google::protobuf::value::Kind;

use crate::bundle::AuthzRequest;
use crate::engine::{Context, ContextValue, ascii_lowercase};
use crate::server::config::{JwtMapping, ServeConfig, UriSanMapping};
use crate::server::errors::ServeError;
use crate::server::ext_authz::sigv4;
use crate::server::ext_authz::wire::{
    self, CheckView, HttpFields, MetadataPath, MetadataValue, RawHeader,
};
use crate::uri;

/// Context extension holding the action template.
pub const ACTION_KEY: &str = "iamgate.action";
/// Context extension holding the resource template.
pub const RESOURCE_KEY: &str = "iamgate.resource";
/// Prefix of context extensions that add context keys.
pub const CONTEXT_PREFIX: &str = "iamgate.context.";
/// Context extension that lets path segments hold `;` (matrix parameters
/// such as `;jsessionid=...`): `true` or `false` (the default).
pub const ALLOW_PARAMS_KEY: &str = "iamgate.path.allow_params";
/// Context extension that lets path segments hold whitespace (`%20`):
/// `true` or `false` (the default).
pub const ALLOW_SPACES_KEY: &str = "iamgate.path.allow_spaces";
/// Context extension selecting a service mapping: `generic` (this module)
/// or a registered service's (`ec2-query`, `s3`; see
/// `ext_authz::service_route`); without it, `--default-mapping`.
pub const MAPPING_KEY: &str = "iamgate.mapping";

/// Why a `CheckRequest` could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error(
        "route misconfigured: no `{0}` context extension (every route behind iamgate's ext_authz needs `iamgate.action` and `iamgate.resource`)"
    )]
    MissingTemplate(&'static str),
    #[error("route misconfigured: context extension `{key}`: {message}")]
    BadTemplate { key: String, message: String },
    #[error("the CheckRequest carries no HTTP request attributes")]
    NoHttpRequest,
    #[error("no principal: {sources}")]
    NoPrincipal { sources: String },
    /// A verified identity that maps to no principal.
    #[error("the verified identity maps to no principal: {0}")]
    UnmappedIdentity(String),
    #[error("ambiguous principal: {0}")]
    AmbiguousPrincipal(String),
    /// A placeholder's value would change the structure of the action or
    /// ARN it fills.
    #[error("`{placeholder}` fills {what}, which allows {allowed}")]
    Value {
        placeholder: String,
        what: &'static str,
        allowed: &'static str,
    },
    #[error("ambiguous or invalid path: {0}")]
    Path(String),
    #[error("the path has no segment {0} (0-based) for `{{path.{0}}}`")]
    NoSegment(usize),
    #[error("path segment {0} is empty")]
    EmptySegment(usize),
    #[error("ambiguous or invalid query string: {0}")]
    Query(String),
    #[error("query parameter `{0}` is missing or empty")]
    MissingQuery(String),
    #[error("query parameter `{0}` appears more than once")]
    DuplicateQuery(String),
    #[error("header `{0}` is missing or empty")]
    MissingHeader(String),
    #[error("header `{0}` appears more than once")]
    DuplicateHeader(String),
    #[error("header `{0}` is not valid UTF-8")]
    HeaderEncoding(String),
    #[error("the request has no {0}")]
    MissingAttribute(&'static str),
}

impl MappingError {
    /// Whether this is the route's fault (configuration) rather than the
    /// request's.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            MappingError::MissingTemplate(_) | MappingError::BadTemplate { .. }
        )
    }

    /// The shared error for this mapping failure: configuration errors are
    /// internal (→ `error_response`), the rest are bad requests (→ a 400
    /// `denied_response`).
    pub fn into_serve_error(self) -> ServeError {
        if self.is_config() {
            ServeError::Internal(self.to_string())
        } else if matches!(self, MappingError::NoPrincipal { .. }) {
            ServeError::Unauthenticated(self.to_string())
        } else if matches!(self, MappingError::UnmappedIdentity(_)) {
            ServeError::Forbidden(self.to_string())
        } else {
            ServeError::BadRequest(self.to_string())
        }
    }
}

/// Where principals come from: the operator's identity sources, tried in
/// this order.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrincipalSource<'c> {
    /// URI SAN prefix → principal ARN template, first match wins.
    pub uri_sans: &'c [UriSanMapping],
    /// JWT claims Envoy's `jwt_authn` verified → principal ARN templates.
    pub jwts: &'c [JwtMapping],
    /// The header (lower case) a trusted hop sets; `None` trusts no header.
    pub header: Option<&'c str>,
}

impl<'c> PrincipalSource<'c> {
    /// The sources `serve` was configured with.
    pub fn new(config: &'c ServeConfig) -> Self {
        Self {
            uri_sans: &config.uri_san_principals,
            jwts: &config.jwt_principals,
            header: config.principal_header.as_deref(),
        }
    }

    /// The `metadata_context` paths of the configured JWT claims, in order
    /// (empty, without allocating, when none is configured).
    pub fn metadata_paths(&self) -> SmallVec<[MetadataPath<'c>; 2]> {
        self.jwts
            .iter()
            .map(|j| {
                [
                    JWT_AUTHN_NAMESPACE,
                    j.payload_key.as_str(),
                    j.claim.as_str(),
                ]
            })
            .collect()
    }
}

/// The metadata namespace of Envoy's `jwt_authn` filter.
pub const JWT_AUTHN_NAMESPACE: &str = "envoy.filters.http.jwt_authn";

/// What Envoy verified about one request's caller.
#[derive(Debug, Clone, Default)]
pub struct Verified<'r> {
    /// `source.principal`: for a client certificate Envoy verified, its URI
    /// SAN (else DNS SAN, else subject); empty without one.
    pub peer: &'r str,
    /// The configured JWT claims ([`PrincipalSource::metadata_paths`]), in
    /// order.
    pub claims: SmallVec<[MetadataValue<'r>; 2]>,
}

impl<'r> Verified<'r> {
    /// From a request read off the wire with the source's metadata paths.
    pub fn from_view(check: &CheckView<'r>) -> Self {
        Self {
            peer: check.source_principal,
            claims: check.metadata.clone(),
        }
    }

    /// From a decoded request.
    pub fn from_message(attrs: &'r AttributeContext, source: PrincipalSource<'_>) -> Self {
        let metadata = attrs.metadata_context.as_ref();
        Self {
            peer: attrs
                .source
                .as_ref()
                .map(|s| s.principal.as_str())
                .unwrap_or_default(),
            claims: source
                .metadata_paths()
                .into_iter()
                .map(|path| metadata_value(metadata, path))
                .collect(),
        }
    }
}

/// The value at `path` in a decoded `metadata_context`, as
/// [`CheckView::parse_with`] reads it off the wire.
pub fn metadata_value<'m>(
    metadata: Option<&'m Metadata>,
    [namespace, key, field]: MetadataPath<'_>,
) -> MetadataValue<'m> {
    let Some(payload) = metadata.and_then(|m| m.filter_metadata.get(namespace)) else {
        return MetadataValue::Missing(0);
    };
    let Some(value) = payload.fields.get(key) else {
        return MetadataValue::Missing(1);
    };
    let Some(Kind::StructValue(inner)) = &value.kind else {
        return MetadataValue::Missing(2);
    };
    match inner.fields.get(field).map(|v| &v.kind) {
        None => MetadataValue::Missing(2),
        Some(Some(Kind::StringValue(s))) => MetadataValue::String(s),
        Some(_) => MetadataValue::Other,
    }
}

/// Who the caller of a mapped request is.
#[derive(Debug, Clone)]
pub enum Caller<'c> {
    /// From the operator's identity sources (a `proxy` route).
    Sources(PrincipalSource<'c>),
    /// The IAM user whose access key signed the request, already verified
    /// (`super::sigv4`), with the user's unique id when the bundle has it.
    /// Only a route with `iamgate.auth: sigv4` takes it; no identity source
    /// is read for such a route. `region` is the route's (the credential
    /// scope's), which becomes `aws:RequestedRegion`.
    Signed {
        arn: String,
        user_id: Option<String>,
        region: String,
    },
}

/// Maps a `CheckRequest` (read off the wire) to the request iamgate
/// decides, the principal from the identity sources. A route that requires
/// SigV4 (`iamgate.auth: sigv4`) is refused here as misconfigured: its
/// caller comes only from [`map_request_as`] after verification.
pub fn map_request(
    check: &CheckView<'_>,
    principals: PrincipalSource<'_>,
    now: SystemTime,
) -> Result<AuthzRequest, MappingError> {
    map_request_as(check, Caller::Sources(principals), now)
}

/// Maps a `CheckRequest` (read off the wire) for `caller`.
pub fn map_request_as(
    check: &CheckView<'_>,
    caller: Caller<'_>,
    now: SystemTime,
) -> Result<AuthzRequest, MappingError> {
    if !check.has_attributes {
        return Err(MappingError::NoHttpRequest);
    }
    // One pass over the extensions (no hashing); configuration errors come
    // first, whatever the request looks like: the action's, the
    // resource's, then unknown or empty names, then context templates.
    let (mut action_src, mut resource_src) = (None, None);
    let mut unknown: Option<MappingError> = None;
    let mut extra_src: SmallVec<[(&str, &str, &str); 4]> = SmallVec::new();
    let mut path_rules = PathRules::default();
    let (mut auth_src, mut scope_keys) = (None, false);
    for &(key, value) in &check.extensions {
        match key {
            ACTION_KEY => action_src = Some(value),
            RESOURCE_KEY => resource_src = Some(value),
            MAPPING_KEY => {}
            sigv4::AUTH_KEY => auth_src = Some(value),
            sigv4::REGION_KEY | sigv4::SERVICE_KEY => scope_keys = true,
            ALLOW_PARAMS_KEY => path_rules.allow_params = switch(key, value)?,
            ALLOW_SPACES_KEY => path_rules.allow_spaces = switch(key, value)?,
            k => {
                if let Some(name) = k.strip_prefix(CONTEXT_PREFIX) {
                    if name.is_empty() && unknown.is_none() {
                        unknown = Some(MappingError::BadTemplate {
                            key: key.to_owned(),
                            message: "the context key name is empty".to_owned(),
                        });
                    }
                    extra_src.push((key, name, value));
                } else if k.starts_with("iamgate.") && unknown.is_none() {
                    // A misspelt extension would silently drop a context key.
                    unknown = Some(MappingError::BadTemplate {
                        key: key.to_owned(),
                        message: format!(
                            "unknown iamgate extension (known: `{ACTION_KEY}`, `{RESOURCE_KEY}`, `{CONTEXT_PREFIX}KEY`, `{ALLOW_PARAMS_KEY}`, `{ALLOW_SPACES_KEY}`, `{MAPPING_KEY}`, `{}`, `{}`, `{}`)",
                            sigv4::AUTH_KEY,
                            sigv4::REGION_KEY,
                            sigv4::SERVICE_KEY
                        ),
                    });
                }
            }
        }
    }
    let action_t = template(action_src, ACTION_KEY, Role::Action)?;
    let resource_t = template(resource_src, RESOURCE_KEY, Role::Resource)?;
    if let Some(e) = unknown {
        return Err(e);
    }
    let signed = sigv4::route_auth(auth_src)? == Some(sigv4::RouteAuth::SigV4);
    if scope_keys && !signed {
        return Err(MappingError::BadTemplate {
            key: sigv4::REGION_KEY.to_owned(),
            message: format!(
                "`{}` and `{}` name a SigV4 credential scope: only on a route with `{}: sigv4`",
                sigv4::REGION_KEY,
                sigv4::SERVICE_KEY,
                sigv4::AUTH_KEY
            ),
        });
    }
    let mut extra: SmallVec<[(&str, Template<'_>); 4]> = SmallVec::new();
    for (key, name, value) in extra_src {
        let t = Template::parse(value).map_err(|e| MappingError::BadTemplate {
            key: key.to_owned(),
            message: e.to_string(),
        })?;
        extra.push((name, t));
    }
    // Deterministic order (context_extensions is a map).
    extra.sort_by(|a, b| a.0.cmp(b.0));

    let http = check.http.as_ref().ok_or(MappingError::NoHttpRequest)?;
    let mut view = HttpView::from_wire(http);
    view.path_rules = path_rules;
    // On a SigV4 route the signature alone names the caller; on any other
    // route a signature is never taken for one.
    let (principal_arn, user_id, region) = match (caller, signed) {
        (
            Caller::Signed {
                arn,
                user_id,
                region,
            },
            true,
        ) => (arn, user_id, Some(region)),
        (Caller::Sources(principals), false) => (
            principal(&Verified::from_view(check), &view, principals)?,
            None,
            None,
        ),
        (Caller::Sources(_), true) => {
            return Err(MappingError::BadTemplate {
                key: sigv4::AUTH_KEY.to_owned(),
                message: "a SigV4 route's caller comes only from its verified signature".to_owned(),
            });
        }
        (Caller::Signed { .. }, false) => {
            return Err(MappingError::BadTemplate {
                key: sigv4::AUTH_KEY.to_owned(),
                message: "a signed caller on a route without `iamgate.auth: sigv4`".to_owned(),
            });
        }
    };
    let action = action_t.render(&view)?;
    let resource = resource_t.render(&view)?;

    let mut context = Context::new();
    let source_ip = check.source_address.and_then(|a| a.parse::<IpAddr>().ok());
    insert_request_keys(&mut context, source_ip, http.scheme, now);
    // The engine derives the other principal keys from the ARN; the user's
    // unique id is the bundle's.
    if let Some(id) = user_id {
        context.insert_static("aws:userid", ContextValue::One(id));
    }
    // The region the request was signed for and sent to (the route's).
    if let Some(region) = region {
        context.insert_static("aws:requestedregion", ContextValue::One(region));
    }
    for (name, t) in &extra {
        context.insert(name, ContextValue::One(t.render(&view)?));
    }

    Ok(AuthzRequest {
        principal_arn,
        action,
        resource,
        context,
        session_tags: Vec::new(),
        session_policy: None,
        session_policy_arns: Vec::new(),
        resource_account: None,
        outcome_only: true,
    })
}

/// The request's W3C `traceparent` header as received, if there is exactly
/// one (the decision path parses it).
pub fn traceparent(check: &CheckView<'_>) -> Option<String> {
    HttpView::from_wire(check.http.as_ref()?).traceparent()
}

fn template<'e>(
    src: Option<&'e str>,
    key: &'static str,
    role: Role,
) -> Result<Template<'e>, MappingError> {
    let src = src
        .filter(|s| !s.is_empty())
        .ok_or(MappingError::MissingTemplate(key))?;
    Template::parse_as(src, role).map_err(|e| MappingError::BadTemplate {
        key: key.to_owned(),
        message: e.to_string(),
    })
}

/// A route's `iamgate.path.*` switch: `true` or `false`.
fn switch(key: &str, value: &str) -> Result<bool, MappingError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(MappingError::BadTemplate {
            key: key.to_owned(),
            message: format!("expected `true` or `false`, got `{}`", clip(value)),
        }),
    }
}

/// The principal, from the first identity source the request presents:
/// 1. a verified peer certificate, when URI SAN mappings are configured:
///    its SAN must match a prefix, else the request is refused, whatever
///    else it carries;
/// 2. a verified JWT payload under a configured key: the first configured
///    claim it holds must be a string that fits the template, and a
///    payload without any is refused;
/// 3. the trusted header, when one is configured.
///
/// A verified identity that maps to no principal is never re-identified by
/// a later source.
pub(crate) fn principal(
    verified: &Verified<'_>,
    view: &HttpView<'_>,
    source: PrincipalSource<'_>,
) -> Result<String, MappingError> {
    if !source.uri_sans.is_empty() && !verified.peer.is_empty() {
        let peer = verified.peer;
        let m = source
            .uri_sans
            .iter()
            .find(|m| peer.starts_with(m.prefix.as_str()))
            .ok_or_else(|| {
                MappingError::UnmappedIdentity(format!(
                    "the client certificate's URI SAN `{}` matches no --uri-san-principal prefix",
                    clip(peer)
                ))
            })?;
        let rest = peer.get(m.prefix.len()..).unwrap_or_default();
        if rest.is_empty() || !rest.bytes().all(is_name_byte) {
            return Err(MappingError::UnmappedIdentity(format!(
                "the URI SAN after `{}` must be a non-empty IAM name or path (letters, digits, `+=,.@_-/`)",
                m.prefix
            )));
        }
        return Ok(m.template.replace("{rest}", rest));
    }
    // A payload (a verified token) without any mapped claim.
    let mut unclaimed: Option<&JwtMapping> = None;
    for (m, claim) in source.jwts.iter().zip(&verified.claims) {
        let value = match claim {
            // No payload under this key: no token from this provider.
            MetadataValue::Missing(0 | 1) => continue,
            // A token without this claim: another mapping may name it.
            MetadataValue::Missing(_) => {
                unclaimed.get_or_insert(m);
                continue;
            }
            MetadataValue::String(v) if !v.is_empty() && v.bytes().all(is_name_byte) => *v,
            MetadataValue::String(_) | MetadataValue::Other => {
                return Err(MappingError::UnmappedIdentity(format!(
                    "claim `{}` of the verified JWT payload `{}` must be a non-empty IAM name or path (letters, digits, `+=,.@_-/`)",
                    m.claim, m.payload_key
                )));
            }
        };
        return Ok(m.template.replace("{claim}", value));
    }
    if let Some(m) = unclaimed {
        return Err(MappingError::UnmappedIdentity(format!(
            "the verified JWT payload `{}` has no claim a --jwt-principal maps (`{}`, ...)",
            m.payload_key, m.claim
        )));
    }
    let no_principal = || MappingError::NoPrincipal {
        sources: sources_text(source),
    };
    let Some(header) = source.header else {
        return Err(no_principal());
    };
    let value = view.header(header)?.ok_or_else(no_principal)?;
    let value = value.trim();
    if value.is_empty() {
        return Err(no_principal());
    }
    if value
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(MappingError::AmbiguousPrincipal(format!(
            "header `{header}` contains whitespace"
        )));
    }
    // Envoy joins repeated headers with `,` in `headers`; only raw headers
    // (`encode_raw_headers`) tell a comma in a name from two values.
    if !view.raw_headers() && value.contains(',') {
        return Err(MappingError::AmbiguousPrincipal(format!(
            "header `{header}` contains `,` (repeated headers are merged with commas; enable `encode_raw_headers` for names with commas)"
        )));
    }
    Ok(value.to_owned())
}

/// The configured identity sources, for a refusal's message.
fn sources_text(source: PrincipalSource<'_>) -> String {
    let mut parts = Vec::new();
    if !source.uri_sans.is_empty() {
        parts.push("a client certificate URI SAN matching a --uri-san-principal prefix".to_owned());
    }
    if !source.jwts.is_empty() {
        parts.push("a JWT verified by Envoy's jwt_authn (--jwt-principal)".to_owned());
    }
    if let Some(h) = source.header {
        parts.push(format!("a `{h}` header"));
    }
    if parts.is_empty() {
        "none is configured (--uri-san-principal, --jwt-principal, --principal-header)".to_owned()
    } else {
        format!("the request has none of {}", parts.join(", "))
    }
}

mod request_keys;
mod template;
mod view;

pub(crate) use request_keys::insert_request_keys;
use template::*;
pub use template::{Role, Template};
use view::*;
pub use view::{HttpView, PathRules, Segments, split_path, split_query};

#[cfg(test)]
mod tests;
