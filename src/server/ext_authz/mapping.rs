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

/// Adds the keys every request carries: `aws:SourceIp`,
/// `aws:SecureTransport`, `aws:CurrentTime` and `aws:EpochTime`.
pub(crate) fn insert_request_keys(
    context: &mut Context,
    source_ip: Option<IpAddr>,
    scheme: &str,
    now: SystemTime,
) {
    if let Some(ip) = source_ip {
        context.insert_static("aws:sourceip", ContextValue::One(ip_text(ip)));
    }
    let epoch = now
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let [secure, current, epoch] = texts(scheme.eq_ignore_ascii_case("https"), epoch);
    context.insert_static("aws:securetransport", ContextValue::Shared(secure));
    context.insert_static("aws:currenttime", ContextValue::Shared(current));
    context.insert_static("aws:epochtime", ContextValue::Shared(epoch));
}

/// An address as `Display` writes it; IPv4 (the usual case) without the
/// formatting machinery.
fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut s = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if octet >= 100 {
            s.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            s.push(char::from(b'0' + octet / 10 % 10));
        }
        s.push(char::from(b'0' + octet % 10));
    }
    s
}

/// Context values shared by the requests of one thread.
struct Texts {
    /// The second `current` and `epoch` are for.
    second: i64,
    current: Arc<str>,
    epoch: Arc<str>,
    yes: Arc<str>,
    no: Arc<str>,
}

impl Texts {
    fn new(second: i64) -> Self {
        let (current, epoch) = Self::clock(second);
        Self {
            second,
            current,
            epoch,
            yes: "true".into(),
            no: "false".into(),
        }
    }

    /// `aws:CurrentTime` and `aws:EpochTime`.
    fn clock(second: i64) -> (Arc<str>, Arc<str>) {
        let current = prost_types::Timestamp {
            seconds: second,
            nanos: 0,
        };
        (current.to_string().into(), second.to_string().into())
    }

    fn get(&mut self, secure: bool, second: i64) -> [Arc<str>; 3] {
        if self.second != second {
            (self.current, self.epoch) = Self::clock(second);
            self.second = second;
        }
        let secure = if secure { &self.yes } else { &self.no };
        [secure.clone(), self.current.clone(), self.epoch.clone()]
    }
}

/// `aws:SecureTransport`, `aws:CurrentTime` and `aws:EpochTime` for a
/// second since the epoch: formatted once per second per thread, then
/// shared.
fn texts(secure: bool, second: i64) -> [Arc<str>; 3] {
    thread_local! {
        static LAST: RefCell<Option<Texts>> = const { RefCell::new(None) };
    }
    LAST.with(|last| match last.try_borrow_mut() {
        Ok(mut last) => last
            .get_or_insert_with(|| Texts::new(second))
            .get(secure, second),
        Err(_) => Texts::new(second).get(secure, second),
    })
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
        let t = Template::parse(value).map_err(|message| MappingError::BadTemplate {
            key: key.to_owned(),
            message,
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
    Template::parse_as(src, role).map_err(|message| MappingError::BadTemplate {
        key: key.to_owned(),
        message,
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

/// Bytes allowed in IAM names and paths.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b)
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part<'t> {
    Lit(Cow<'t, str>),
    /// A placeholder, and what its value may hold where it stands.
    Value(Source<'t>, Rule),
}

/// Where a placeholder's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source<'t> {
    Method,
    Host,
    /// `{path.N}`: one segment.
    Path(usize),
    /// `{path.N+}`: segment N and those after it, joined with `/`.
    PathRest(usize),
    Header(Cow<'t, str>),
    Query(&'t str),
}

impl std::fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Method => f.write_str("{method}"),
            Source::Host => f.write_str("{host}"),
            Source::Path(n) => write!(f, "{{path.{n}}}"),
            Source::PathRest(n) => write!(f, "{{path.{n}+}}"),
            Source::Header(h) => write!(f, "{{header.{h}}}"),
            Source::Query(q) => write!(f, "{{query.{q}}}"),
        }
    }
}

/// What a template renders: each decides what its placeholders' values
/// may hold, so that a value never changes the structure the operator's
/// template gives the action or the ARN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `SERVICE:ACTION`, its `:` written in the template.
    Action,
    /// `*`, or an ARN whose five `:` separators are written in the template.
    Resource,
    /// A context value: any text.
    Context,
}

/// What a placeholder's value may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Anything (context values).
    Any,
    /// Part of the action, or of the ARN field named: ASCII letters,
    /// digits and `-`.
    Field(&'static str),
    /// In the ARN's resource part: no `:`, `/`, `*`, `?`, whitespace or
    /// control characters (`{path.N+}` joins its segments with `/`).
    Resource,
}

impl Rule {
    fn check(self, source: &Source<'_>, value: &str) -> Result<(), MappingError> {
        let (what, allowed, ok) = match self {
            Rule::Any => return Ok(()),
            Rule::Field(what) => (
                what,
                "only ASCII letters, digits and `-`",
                value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            ),
            Rule::Resource => (
                "the ARN's resource part",
                "no `:`, `/`, `*`, `?`, whitespace or control characters",
                !value.chars().any(|c| {
                    matches!(c, ':' | '/' | '*' | '?') || c.is_whitespace() || c.is_control()
                }),
            ),
        };
        if ok {
            Ok(())
        } else {
            Err(MappingError::Value {
                placeholder: source.to_string(),
                what,
                allowed,
            })
        }
    }
}

/// A parsed `iamgate.*` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template<'t> {
    parts: SmallVec<[Part<'t>; 4]>,
}

/// Room for a rendered action or ARN without growing.
const RENDER_CAPACITY: usize = 96;

/// The ARN fields before the resource part, by the number of `:` before
/// them.
const ARN_FIELDS: [&str; 5] = [
    "the ARN's `arn` prefix",
    "the ARN's partition",
    "the ARN's service",
    "the ARN's region",
    "the ARN's account",
];

/// Appends `s` to a literal run, borrowing while the run is one slice.
fn push_lit<'t>(lit: &mut Option<Cow<'t, str>>, s: &'t str) {
    if s.is_empty() {
        return;
    }
    match lit {
        None => *lit = Some(Cow::Borrowed(s)),
        Some(l) => l.to_mut().push_str(s),
    }
}

impl<'t> Template<'t> {
    /// Parses a context value template; the error says what is wrong with
    /// it. Literal runs borrow from `src` unless they contain `{{`/`}}`
    /// escapes.
    pub fn parse(src: &'t str) -> Result<Self, String> {
        let mut parts = SmallVec::new();
        let mut lit: Option<Cow<'t, str>> = None;
        let mut rest = src;
        while let Some(i) = rest.bytes().position(|b| b == b'{' || b == b'}') {
            let (before, after) = rest.split_at(i);
            push_lit(&mut lit, before);
            if let Some(tail) = after.strip_prefix("{{") {
                push_lit(&mut lit, "{");
                rest = tail;
            } else if let Some(tail) = after.strip_prefix("}}") {
                push_lit(&mut lit, "}");
                rest = tail;
            } else if after.starts_with('}') {
                return Err(format!(
                    "unmatched `}}` at byte {} (write `}}}}` for a literal brace)",
                    src.len() - after.len()
                ));
            } else {
                let close = after.find('}').ok_or_else(|| {
                    format!("unterminated `{{` at byte {}", src.len() - after.len())
                })?;
                let name = after.get(1..close).unwrap_or_default();
                if let Some(l) = lit.take() {
                    parts.push(Part::Lit(l));
                }
                parts.push(Part::Value(placeholder(name)?, Rule::Any));
                rest = after.get(close + 1..).unwrap_or_default();
            }
        }
        push_lit(&mut lit, rest);
        if let Some(l) = lit {
            parts.push(Part::Lit(l));
        }
        Ok(Self { parts })
    }

    /// Parses a template for `role`: its literal text must give the action
    /// or ARN its structure, and each placeholder gets the rule of the
    /// field it fills.
    pub fn parse_as(src: &'t str, role: Role) -> Result<Self, String> {
        let mut t = Self::parse(src)?;
        let structure = match role {
            Role::Context => return Ok(t),
            Role::Action => {
                "an action template is `SERVICE:ACTION` with its one `:` written in the template"
            }
            Role::Resource if src == "*" => return Ok(t),
            Role::Resource => {
                "a resource template is `*` or an ARN, `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`, with its five `:` written in the template"
            }
        };
        if role == Role::Resource
            && !matches!(t.parts.first(), Some(Part::Lit(l)) if l.starts_with("arn:"))
        {
            return Err(structure.to_owned());
        }
        let mut colons = 0;
        for part in &mut t.parts {
            match part {
                Part::Lit(l) => colons += l.matches(':').count(),
                Part::Value(source, rule) => {
                    *rule = match role {
                        Role::Action => Rule::Field("the action"),
                        _ => match ARN_FIELDS.get(colons) {
                            Some(field) => Rule::Field(field),
                            None => Rule::Resource,
                        },
                    };
                    if matches!(source, Source::PathRest(_)) && *rule != Rule::Resource {
                        return Err(format!(
                            "`{source}` joins path segments with `/`: it may only fill an ARN's resource part"
                        ));
                    }
                }
            }
        }
        let complete = match role {
            Role::Action => colons == 1,
            _ => colons >= 5,
        };
        if !complete {
            return Err(structure.to_owned());
        }
        Ok(t)
    }

    /// Renders the template for one request.
    pub fn render(&self, view: &HttpView<'_>) -> Result<String, MappingError> {
        let mut out = String::with_capacity(RENDER_CAPACITY);
        for part in &self.parts {
            let (source, rule) = match part {
                Part::Lit(s) => {
                    out.push_str(s);
                    continue;
                }
                Part::Value(source, rule) => (source, *rule),
            };
            let value: Cow<'_, str> = match source {
                Source::Method => non_empty(view.method, "method")?.into(),
                Source::Host => non_empty(view.host, "host")?.into(),
                Source::Path(n) => view.segment(*n)?.into(),
                Source::PathRest(n) => {
                    let segments = view.segments_from(*n)?;
                    for (i, segment) in segments.iter().enumerate() {
                        rule.check(source, segment)?;
                        if i > 0 {
                            out.push('/');
                        }
                        out.push_str(segment);
                    }
                    continue;
                }
                Source::Header(name) => view
                    .header(name)?
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| MappingError::MissingHeader(name.to_string()))?,
                Source::Query(name) => view.query(name)?.into(),
            };
            rule.check(source, &value)?;
            out.push_str(&value);
        }
        Ok(out)
    }
}

fn non_empty<'s>(s: &'s str, what: &'static str) -> Result<&'s str, MappingError> {
    if s.is_empty() {
        Err(MappingError::MissingAttribute(what))
    } else {
        Ok(s)
    }
}

fn placeholder(name: &str) -> Result<Source<'_>, String> {
    let unknown = || {
        format!(
            "unknown placeholder `{{{name}}}` (known: {{method}}, {{host}}, {{path.N}}, {{path.N+}}, {{header.NAME}}, {{query.NAME}})"
        )
    };
    match name {
        "method" => return Ok(Source::Method),
        "host" => return Ok(Source::Host),
        _ => {}
    }
    if let Some(n) = name.strip_prefix("path.") {
        let (n, rest) = match n.strip_suffix('+') {
            Some(n) => (n, true),
            None => (n, false),
        };
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "`{{{name}}}`: the segment index is a number, e.g. {{path.0}} or {{path.1+}}"
            ));
        }
        let n = n
            .parse()
            .map_err(|_| format!("`{{{name}}}`: segment index too large"))?;
        return Ok(if rest {
            Source::PathRest(n)
        } else {
            Source::Path(n)
        });
    }
    if let Some(h) = name.strip_prefix("header.") {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if h.is_empty() || !h.bytes().all(token) {
            return Err(format!("`{{{name}}}`: not a header name"));
        }
        return Ok(Source::Header(ascii_lowercase(h)));
    }
    if let Some(q) = name.strip_prefix("query.") {
        if q.is_empty() {
            return Err(format!("`{{{name}}}`: empty parameter name"));
        }
        return Ok(Source::Query(q));
    }
    Err(unknown())
}

/// The HTTP request as templates see it: raw fields plus the decoded path
/// and query, computed on first use.
#[derive(Debug)]
pub struct HttpView<'r> {
    method: &'r str,
    host: &'r str,
    /// The request target: path and query.
    target: &'r str,
    headers: Headers<'r>,
    raw_path: &'r str,
    raw_query: Option<&'r str>,
    /// What path segments may hold beyond the canonical form (the route's
    /// `iamgate.path.*` switches); set before the first segment is read.
    pub path_rules: PathRules,
    segments: OnceCell<Result<Segments<'r>, MappingError>>,
    query: OnceCell<Result<Vec<(String, String)>, MappingError>>,
}

/// What a route lets path segments hold beyond the canonical form: by
/// default, a segment holds no `;`, whitespace or control characters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathRules {
    /// `;` (`iamgate.path.allow_params`).
    pub allow_params: bool,
    /// Whitespace other than control characters
    /// (`iamgate.path.allow_spaces`).
    pub allow_spaces: bool,
}

/// Where a view's headers are.
#[derive(Debug, Clone, Copy)]
enum Headers<'r> {
    /// A decoded envoy-types request.
    Message(&'r HttpRequest),
    /// A request read off the wire (slices: `HttpFields` itself is
    /// invariant in its lifetime).
    Wire {
        map: &'r [(&'r str, &'r str)],
        raw: &'r [RawHeader<'r>],
    },
}

impl<'r> HttpView<'r> {
    /// Wraps Envoy's HTTP attributes, decoded.
    pub fn new(http: &'r HttpRequest) -> Self {
        Self::with(&http.method, &http.host, &http.path, Headers::Message(http))
    }

    /// Wraps Envoy's HTTP attributes, read off the wire.
    pub fn from_wire<'a: 'r>(http: &'r HttpFields<'a>) -> Self {
        let headers = Headers::Wire {
            map: &http.headers,
            raw: &http.raw_headers,
        };
        Self::with(http.method, http.host, http.path, headers)
    }

    fn with(method: &'r str, host: &'r str, target: &'r str, headers: Headers<'r>) -> Self {
        let (raw_path, raw_query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        Self {
            method,
            host,
            target,
            headers,
            raw_path,
            raw_query,
            path_rules: PathRules::default(),
            segments: OnceCell::new(),
            query: OnceCell::new(),
        }
    }

    /// Whether Envoy sent raw headers (`encode_raw_headers`), which tell
    /// repeated headers apart.
    fn raw_headers(&self) -> bool {
        match self.headers {
            Headers::Message(http) => http
                .header_map
                .as_ref()
                .is_some_and(|m| !m.headers.is_empty()),
            Headers::Wire { raw, .. } => !raw.is_empty(),
        }
    }

    /// A header's value (`name` in lower case); repeated raw headers are
    /// refused.
    pub fn header(&self, name: &str) -> Result<Option<Cow<'r, str>>, MappingError> {
        match self.headers {
            Headers::Message(http) => match http.header_map.as_ref() {
                Some(map) if !map.headers.is_empty() => raw_header(
                    map.headers
                        .iter()
                        .map(|h| (h.key.as_str(), h.value.as_str(), h.raw_value.as_slice())),
                    name,
                ),
                _ => Ok(http.headers.get(name).map(|v| Cow::Borrowed(v.as_str()))),
            },
            Headers::Wire { map, raw: [] } => Ok(wire::header(map, name).map(Cow::Borrowed)),
            Headers::Wire { raw, .. } => {
                raw_header(raw.iter().map(|h| (h.key, h.value, h.raw_value)), name)
            }
        }
    }

    /// The request's W3C `traceparent` header as received, if there is
    /// exactly one (the decision path parses it).
    pub fn traceparent(&self) -> Option<String> {
        let value = self.header("traceparent").ok()??;
        Some(value.into_owned())
    }

    fn segments(&self) -> Result<&Segments<'r>, MappingError> {
        self.segments
            .get_or_init(|| split_path(self.raw_path, self.target, self.path_rules))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Path segment `n` (0-based), percent-decoded.
    pub fn segment(&self, n: usize) -> Result<&str, MappingError> {
        let s = self.segments()?.get(n).ok_or(MappingError::NoSegment(n))?;
        if s.is_empty() {
            return Err(MappingError::EmptySegment(n));
        }
        Ok(s)
    }

    /// Path segments `n` (0-based) and after, percent-decoded; none may be
    /// empty.
    pub fn segments_from(&self, n: usize) -> Result<&[Cow<'r, str>], MappingError> {
        let segments = self.segments()?;
        let rest = segments
            .get(n..)
            .filter(|r| !r.is_empty())
            .ok_or(MappingError::NoSegment(n))?;
        if let Some(i) = rest.iter().position(|s| s.is_empty()) {
            return Err(MappingError::EmptySegment(n + i));
        }
        Ok(rest)
    }

    /// The single, non-empty value of query parameter `name`.
    pub fn query(&self, name: &str) -> Result<&str, MappingError> {
        let params = self
            .query
            .get_or_init(|| split_query(self.raw_query.unwrap_or_default()))
            .as_ref()
            .map_err(Clone::clone)?;
        let mut found = None;
        for (k, v) in params {
            if k == name {
                if found.is_some() {
                    return Err(MappingError::DuplicateQuery(name.to_owned()));
                }
                found = Some(v.as_str());
            }
        }
        found
            .filter(|v| !v.is_empty())
            .ok_or_else(|| MappingError::MissingQuery(name.to_owned()))
    }
}

/// The value of raw header `name` (key, value, raw value; the raw value
/// wins when set): a repeated header is refused.
fn raw_header<'h>(
    headers: impl Iterator<Item = (&'h str, &'h str, &'h [u8])>,
    name: &str,
) -> Result<Option<Cow<'h, str>>, MappingError> {
    let mut found = None;
    for (_, value, raw_value) in headers.filter(|(k, _, _)| k.eq_ignore_ascii_case(name)) {
        if found.is_some() {
            return Err(MappingError::DuplicateHeader(name.to_owned()));
        }
        found = Some((value, raw_value));
    }
    match found {
        None => Ok(None),
        Some((_, raw)) if !raw.is_empty() => std::str::from_utf8(raw)
            .map(|s| Some(Cow::Borrowed(s)))
            .map_err(|_| MappingError::HeaderEncoding(name.to_owned())),
        Some((value, _)) => Ok(Some(Cow::Borrowed(value))),
    }
}

/// Decoded path segments; most borrow from the request target.
pub type Segments<'r> = SmallVec<[Cow<'r, str>; 8]>;

/// Splits and decodes the path part of a request target. The whole path is
/// checked, since an ambiguity anywhere shifts the segments after it: a
/// segment is refused if it decodes to a `/`, a `\`, a dot segment, a
/// control character, or (unless `rules` allow them) `;` or whitespace,
/// which servers read differently (matrix parameters, trimming).
pub fn split_path<'r>(
    raw_path: &'r str,
    target: &str,
    rules: PathRules,
) -> Result<Segments<'r>, MappingError> {
    let bad = |m: String| Err(MappingError::Path(m));
    let Some(rest) = raw_path.strip_prefix('/') else {
        return bad(format!(
            "the request target `{}` does not start with `/`",
            clip(target)
        ));
    };
    if target.contains('#') {
        return bad("the request target contains `#`".to_owned());
    }
    let mut out = SmallVec::new();
    for (i, raw) in rest.split('/').enumerate() {
        if raw.contains('\\') {
            return bad(format!("segment {i} contains a backslash"));
        }
        let decoded = percent_decode(raw, false)
            .map_err(|m| MappingError::Path(format!("segment {i}: {m}")))?;
        if decoded.contains('/') {
            return bad(format!("segment {i} contains an encoded `/` (%2F)"));
        }
        if decoded.contains('\\') {
            return bad(format!("segment {i} contains a backslash"));
        }
        if decoded == "." || decoded == ".." {
            return bad(format!("segment {i} is a dot segment (`{decoded}`)"));
        }
        if !rules.allow_params && decoded.contains(';') {
            return bad(format!(
                "segment {i} contains `;` (matrix parameters; a route may allow them with `{ALLOW_PARAMS_KEY}`)"
            ));
        }
        if !rules.allow_spaces && decoded.chars().any(char::is_whitespace) {
            return bad(format!(
                "segment {i} contains whitespace (a route may allow it with `{ALLOW_SPACES_KEY}`)"
            ));
        }
        out.push(decoded);
    }
    Ok(out)
}

/// Splits and form-decodes a query string (`+` is a space).
pub fn split_query(raw: &str) -> Result<Vec<(String, String)>, MappingError> {
    if raw.contains(';') {
        return Err(MappingError::Query(
            "`;` is a parameter separator for some servers and not for others".to_owned(),
        ));
    }
    let mut out = Vec::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k, true).map_err(MappingError::Query)?;
        let v = percent_decode(v, true)
            .map_err(|m| MappingError::Query(format!("parameter `{k}`: {m}")))?;
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

/// Strict percent-decoding ([`crate::uri`], the one decoder of every
/// mapping): a path segment (`+` is itself) or a form-encoded query part
/// (`+` is a space).
fn percent_decode(raw: &str, plus_is_space: bool) -> Result<Cow<'_, str>, String> {
    let component = if plus_is_space {
        uri::Component::Query
    } else {
        uri::Component::PathSegment
    };
    uri::decode(raw.as_bytes(), component).map_err(|e| e.to_string())
}

fn clip(s: &str) -> &str {
    let mut end = s.len().min(80);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::Address as EnvoyAddress;
    use envoy_types::pb::envoy::config::core::v3::HeaderValue;
    use envoy_types::pb::envoy::config::core::v3::address::Address;
    use envoy_types::pb::envoy::config::core::v3::{HeaderMap, SocketAddress};
    use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{Peer, Request};
    use envoy_types::pb::google::protobuf::{Struct as ProtoStruct, Value as ProtoValue};
    use prost::Message as _;

    use crate::policy::variables::ValueRef;

    const BOB: &str = "arn:aws:iam::111111111111:user/engineering/bob";

    fn check(path: &str, headers: &[(&str, &str)], ext: &[(&str, &str)]) -> CheckRequest {
        CheckRequest {
            attributes: Some(AttributeContext {
                source: Some(Peer {
                    address: Some(EnvoyAddress {
                        address: Some(Address::SocketAddress(SocketAddress {
                            address: "10.1.2.3".to_owned(),
                            ..Default::default()
                        })),
                    }),
                    ..Default::default()
                }),
                request: Some(Request {
                    time: None,
                    http: Some(HttpRequest {
                        method: "POST".to_owned(),
                        path: path.to_owned(),
                        host: "api.example.com".to_owned(),
                        scheme: "https".to_owned(),
                        headers: headers
                            .iter()
                            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                            .collect(),
                        ..Default::default()
                    }),
                }),
                context_extensions: ext
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                ..Default::default()
            }),
        }
    }

    const ROUTE: &[(&str, &str)] = &[
        ("iamgate.action", "ec2:{path.2}Instances"),
        (
            "iamgate.resource",
            "arn:aws:ec2:us-east-1:111111111111:instance/{path.1}",
        ),
        ("iamgate.context.ec2:ResourceTag/team", "{header.x-team}"),
        ("iamgate.context.aws:RequestedRegion", "us-east-1"),
    ];

    /// Trusts the principal header (tests of templates and context).
    fn src() -> PrincipalSource<'static> {
        PrincipalSource {
            header: Some("x-iamgate-principal"),
            ..Default::default()
        }
    }

    /// Maps a request as the server does: encoded, then read off the wire.
    fn map_message(
        c: &CheckRequest,
        source: PrincipalSource<'_>,
        now: SystemTime,
    ) -> Result<AuthzRequest, MappingError> {
        let bytes = c.encode_to_vec();
        let view = CheckView::parse_with(&bytes, &source.metadata_paths()).unwrap();
        map_request(&view, source, now)
    }

    fn map(c: &CheckRequest) -> Result<AuthzRequest, MappingError> {
        map_message(
            c,
            src(),
            UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
        )
    }

    /// Issue 13: on a SigV4 route the verified signer is the principal and
    /// no identity source (here the trusted header) is read; such a route
    /// is never mapped from the identity sources, and a scope without
    /// SigV4 is the route's error.
    #[test]
    fn sigv4_routes_take_the_signer_only() {
        let mut ext = ROUTE.to_vec();
        ext.extend([
            ("iamgate.auth", "sigv4"),
            ("iamgate.region", "us-east-1"),
            ("iamgate.service", "widgets"),
        ]);
        let c = check(
            "/instances/i-1/Describe",
            &[("x-iamgate-principal", BOB), ("x-team", "a")],
            &ext,
        );
        let bytes = c.encode_to_vec();
        let view = CheckView::parse_with(&bytes, &src().metadata_paths()).unwrap();
        let signer = "arn:aws:iam::111111111111:user/alice";
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let signed = Caller::Signed {
            arn: signer.to_owned(),
            user_id: Some("AIDAALICE".to_owned()),
            region: "eu-west-1".to_owned(),
        };
        let r = map_request_as(&view, signed.clone(), now).unwrap();
        assert_eq!(r.principal_arn, signer);
        assert_eq!(ctx(&r, "aws:userid").as_deref(), Some("AIDAALICE"));
        // The route's `iamgate.context.aws:RequestedRegion` (configuration)
        // still wins over the derived key.
        assert_eq!(ctx(&r, "aws:RequestedRegion").as_deref(), Some("us-east-1"));
        // The identity sources cannot map a SigV4 route.
        let e = map_request(&view, src(), now).unwrap_err();
        assert!(e.is_config(), "{e}");
        // A signer is never taken on a route that does not require SigV4.
        let plain = check(
            "/instances/i-1/Describe",
            &[("x-iamgate-principal", BOB), ("x-team", "a")],
            ROUTE,
        );
        let bytes = plain.encode_to_vec();
        let view = CheckView::parse_with(&bytes, &src().metadata_paths()).unwrap();
        assert!(map_request_as(&view, signed, now).unwrap_err().is_config());
        // A credential scope on a proxy route, or an unknown auth value.
        for extra in [
            [("iamgate.auth", "proxy"), ("iamgate.region", "us-east-1")],
            [("iamgate.auth", "SIGV4"), ("iamgate.context.k", "v")],
        ] {
            let mut ext = ROUTE.to_vec();
            ext.extend(extra);
            let c = check(
                "/instances/i-1/Describe",
                &[("x-iamgate-principal", BOB)],
                &ext,
            );
            assert!(map(&c).unwrap_err().is_config(), "{extra:?}");
        }
        // `proxy` is the default, spelled out.
        let mut ext = ROUTE.to_vec();
        ext.push(("iamgate.auth", "proxy"));
        let c = check(
            "/instances/i-1/Describe",
            &[("x-iamgate-principal", BOB), ("x-team", "a")],
            &ext,
        );
        assert_eq!(map(&c).unwrap().principal_arn, BOB);
    }

    fn ctx(r: &AuthzRequest, key: &str) -> Option<String> {
        let key = key.to_ascii_lowercase();
        match r.context.iter().find(|(k, _)| *k == key)?.1.value() {
            ValueRef::One(s) => Some(s.to_owned()),
            ValueRef::Many(v) => Some(v.join(",")),
        }
    }

    #[test]
    fn maps_templates_principal_and_context() {
        let c = check(
            "/instances/i-0abc/Start?x=1",
            &[("x-iamgate-principal", BOB), ("x-team", "blue")],
            ROUTE,
        );
        let r = map(&c).unwrap();
        assert_eq!(r.principal_arn, BOB);
        assert_eq!(r.action, "ec2:StartInstances");
        assert_eq!(
            r.resource,
            "arn:aws:ec2:us-east-1:111111111111:instance/i-0abc"
        );
        assert_eq!(ctx(&r, "ec2:ResourceTag/team").as_deref(), Some("blue"));
        assert_eq!(ctx(&r, "aws:RequestedRegion").as_deref(), Some("us-east-1"));
        assert_eq!(ctx(&r, "aws:SourceIp").as_deref(), Some("10.1.2.3"));
        assert_eq!(ctx(&r, "aws:SecureTransport").as_deref(), Some("true"));
        assert_eq!(ctx(&r, "aws:EpochTime").as_deref(), Some("1700000000"));
        assert_eq!(
            ctx(&r, "aws:CurrentTime").as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
    }

    #[test]
    fn missing_or_bad_templates_are_config_errors() {
        let c = check("/a", &[("x-iamgate-principal", BOB)], &[]);
        let e = map(&c).unwrap_err();
        assert_eq!(e, MappingError::MissingTemplate(ACTION_KEY));
        assert!(e.is_config());
        assert!(matches!(e.into_serve_error(), ServeError::Internal(_)));

        let c = check(
            "/a",
            &[("x-iamgate-principal", BOB)],
            &[("iamgate.action", "ec2:{verb}"), ("iamgate.resource", "*")],
        );
        let e = map(&c).unwrap_err();
        assert!(e.is_config(), "{e}");
        assert!(
            e.to_string().contains("unknown placeholder `{verb}`"),
            "{e}"
        );

        // No principal on a misconfigured route: still the route's fault.
        let c = check("/a", &[], &[("iamgate.action", "ec2:X")]);
        assert!(map(&c).unwrap_err().is_config());
    }

    #[test]
    fn ip_text_matches_display() {
        for ip in [
            "0.0.0.0",
            "10.20.30.40",
            "192.168.100.9",
            "255.255.255.255",
            "1.2.3.4",
            "::1",
            "2001:db8::7",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }

    #[test]
    fn template_syntax() {
        let t = Template::parse("a{{b}}c{method}").unwrap();
        assert_eq!(
            t.parts.to_vec(),
            vec![
                Part::Lit("a{b}c".into()),
                Part::Value(Source::Method, Rule::Any)
            ]
        );
        for bad in [
            "{",
            "}",
            "{path.}",
            "{path.x}",
            "{header.}",
            "{header.a b}",
            "{query.}",
            "{nope}",
            "x{method",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Template::parse("{header.X-Team}").unwrap().parts.to_vec(),
            vec![Part::Value(Source::Header("x-team".into()), Rule::Any)]
        );
    }

    #[test]
    fn placeholders_render() {
        let c = check(
            "/v1/%7Euser/caf%C3%A9/a+b?name=J%C3%B6rg+M&empty=&dup=1&dup=2",
            &[("x-team", "blue")],
            &[],
        );
        let http = c
            .attributes
            .as_ref()
            .unwrap()
            .request
            .as_ref()
            .unwrap()
            .http
            .as_ref()
            .unwrap();
        let v = HttpView::new(http);
        let r = |s: &str| Template::parse(s).unwrap().render(&v);
        assert_eq!(r("{method} {host}").unwrap(), "POST api.example.com");
        assert_eq!(
            r("{path.0}|{path.1}|{path.2}|{path.3}").unwrap(),
            "v1|~user|café|a+b"
        );
        assert_eq!(r("{query.name}").unwrap(), "Jörg M");
        assert_eq!(r("{header.x-team}").unwrap(), "blue");
        assert_eq!(r("{path.4}").unwrap_err(), MappingError::NoSegment(4));
        assert_eq!(
            r("{query.empty}").unwrap_err(),
            MappingError::MissingQuery("empty".into())
        );
        assert_eq!(
            r("{query.none}").unwrap_err(),
            MappingError::MissingQuery("none".into())
        );
        assert_eq!(
            r("{query.dup}").unwrap_err(),
            MappingError::DuplicateQuery("dup".into())
        );
        assert_eq!(
            r("{header.x-none}").unwrap_err(),
            MappingError::MissingHeader("x-none".into())
        );
    }

    #[test]
    fn path_splitting() {
        let strict = PathRules::default();
        assert_eq!(split_path("/", "/", strict).unwrap().to_vec(), vec![""]);
        assert_eq!(
            split_path("/a//b/", "/a//b/", strict).unwrap().to_vec(),
            vec!["a", "", "b", ""]
        );
        assert_eq!(
            split_path("/caf%C3%A9/%25", "", strict).unwrap().to_vec(),
            vec!["café", "%"]
        );
        // `+` is literal in paths.
        assert_eq!(
            split_path("/a+b", "", strict).unwrap().to_vec(),
            vec!["a+b"]
        );
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for (path, why) in [
            ("/a%2Fb", "encoded `/`"),
            ("/a%2fb", "encoded `/`"),
            ("/a%5Cb", "backslash"),
            ("/a\\b", "backslash"),
            ("/a/../b", "dot segment"),
            ("/a/%2E%2E/b", "dot segment"),
            ("/a/./b", "dot segment"),
            ("/a%zz", "invalid percent-encoding"),
            ("/a%4", "invalid percent-encoding"),
            ("/a%", "invalid percent-encoding"),
            ("/a%00", "control character"),
            ("/a%FF", "invalid UTF-8"),
            ("http://h/a", "does not start with `/`"),
            ("*", "does not start with `/`"),
        ] {
            let e = split_path(path.split('?').next().unwrap(), path, PathRules::default())
                .unwrap_err();
            assert!(e.to_string().contains(why), "{path}: {e}");
        }
        // The refusal applies to any path placeholder, even an earlier segment.
        let c = check(
            "/instances/i-1/x%2Fy",
            &[("x-iamgate-principal", BOB)],
            &[
                ("iamgate.action", "ec2:X"),
                ("iamgate.resource", "arn:aws:ec2:::instance/{path.1}"),
            ],
        );
        let e = map(&c).unwrap_err();
        assert!(matches!(e, MappingError::Path(_)), "{e}");
        assert!(matches!(e.into_serve_error(), ServeError::BadRequest(_)));
        // Empty segments are never substituted.
        let c = check(
            "/instances//start",
            &[("x-iamgate-principal", BOB)],
            &[
                ("iamgate.action", "ec2:X"),
                ("iamgate.resource", "arn:aws:ec2:::instance/{path.1}"),
            ],
        );
        assert_eq!(map(&c).unwrap_err(), MappingError::EmptySegment(1));
        // A route that uses no path placeholder does not look at the path.
        let c = check(
            "/a%2Fb",
            &[("x-iamgate-principal", BOB)],
            &[("iamgate.action", "ec2:X"), ("iamgate.resource", "*")],
        );
        assert!(map(&c).is_ok());
    }

    #[test]
    fn ambiguous_queries_are_refused() {
        assert!(split_query("a=1;b=2").is_err());
        assert!(split_query("a=%G1").is_err());
        assert!(split_query("a=%0A").is_err());
        assert_eq!(
            split_query("a=1&&b&c=x%3Dy").unwrap(),
            vec![
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), String::new()),
                ("c".to_owned(), "x=y".to_owned())
            ]
        );
    }

    #[test]
    fn principal_sources() {
        // No principal at all.
        let c = check(
            "/a",
            &[],
            &[("iamgate.action", "ec2:X"), ("iamgate.resource", "*")],
        );
        assert!(matches!(
            map(&c).unwrap_err(),
            MappingError::NoPrincipal { .. }
        ));
        // Merged repeated headers are ambiguous.
        let c = check(
            "/a",
            &[(
                "x-iamgate-principal",
                "arn:aws:iam::1:user/a,arn:aws:iam::1:user/b",
            )],
            &[("iamgate.action", "ec2:X"), ("iamgate.resource", "*")],
        );
        assert!(matches!(
            map(&c).unwrap_err(),
            MappingError::AmbiguousPrincipal(_)
        ));

        // The header is trusted only when configured.
        let c = check(
            "/a",
            &[("x-iamgate-principal", "arn:aws:iam::111111111111:root")],
            &[("iamgate.action", "ec2:X"), ("iamgate.resource", "*")],
        );
        let e = map_message(&c, PrincipalSource::default(), SystemTime::now()).unwrap_err();
        assert!(matches!(e, MappingError::NoPrincipal { .. }), "{e}");
        assert!(e.to_string().contains("none is configured"), "{e}");
        assert!(matches!(
            e.into_serve_error(),
            ServeError::Unauthenticated(_)
        ));
    }

    const SPIFFE: &str = "spiffe://example.org/ns/ops/sa/";
    const OPS: &str = "arn:aws:sts::111111111111:assumed-role/ops-automation/spiffe";

    fn sans() -> Vec<UriSanMapping> {
        vec![UriSanMapping {
            prefix: SPIFFE.to_owned(),
            template: "arn:aws:sts::111111111111:assumed-role/{rest}/spiffe".to_owned(),
        }]
    }

    fn jwts() -> Vec<JwtMapping> {
        [
            "corp:sub=arn:aws:iam::111111111111:user/{claim}",
            "ci:role=arn:aws:sts::111111111111:assumed-role/{claim}/ci",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
    }

    fn set_peer(c: &mut CheckRequest, principal: &str) {
        c.attributes
            .as_mut()
            .unwrap()
            .source
            .as_mut()
            .unwrap()
            .principal = principal.to_owned();
    }

    fn string(s: &str) -> ProtoValue {
        ProtoValue {
            kind: Some(Kind::StringValue(s.to_owned())),
        }
    }

    fn object(fields: &[(&str, ProtoValue)]) -> ProtoStruct {
        ProtoStruct {
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        }
    }

    /// Sets the `jwt_authn` metadata: payload key → claims.
    fn set_jwt(c: &mut CheckRequest, payloads: &[(&str, ProtoValue)]) {
        c.attributes.as_mut().unwrap().metadata_context = Some(Metadata {
            filter_metadata: [(JWT_AUTHN_NAMESPACE.to_owned(), object(payloads))].into(),
            ..Default::default()
        });
    }

    fn payload(claims: &[(&str, ProtoValue)]) -> ProtoValue {
        ProtoValue {
            kind: Some(Kind::StructValue(object(claims))),
        }
    }

    #[test]
    fn a_verified_peer_is_mapped_or_refused() {
        let (sans, jwts) = (sans(), jwts());
        let source = PrincipalSource {
            uri_sans: &sans,
            jwts: &jwts,
            header: Some("x-iamgate-principal"),
        };
        let mut c = check(
            "/a",
            &[("x-iamgate-principal", BOB)],
            &[("iamgate.action", "ec2:X"), ("iamgate.resource", "*")],
        );
        set_jwt(&mut c, &[("corp", payload(&[("sub", string("carol"))]))]);
        let principal = |c: &CheckRequest| map_message(c, source, SystemTime::now());
        // The certificate wins over a JWT and the header.
        set_peer(&mut c, &format!("{SPIFFE}ops-automation"));
        assert_eq!(principal(&c).unwrap().principal_arn, OPS);
        // A SAN that matches no prefix is refused, never re-identified by
        // the JWT or the header.
        set_peer(&mut c, "spiffe://other.org/x");
        let e = principal(&c).unwrap_err();
        assert!(matches!(e, MappingError::UnmappedIdentity(_)), "{e}");
        assert!(e.to_string().contains("spiffe://other.org/x"), "{e}");
        assert!(matches!(e.into_serve_error(), ServeError::Forbidden(_)));
        // So is a matching prefix with a remainder that is no IAM name.
        for rest in ["a:b", "", "a b", "a*"] {
            set_peer(&mut c, &format!("{SPIFFE}{rest}"));
            let e = principal(&c).unwrap_err();
            assert!(
                matches!(e, MappingError::UnmappedIdentity(_)),
                "{rest}: {e}"
            );
        }
        // Without URI SAN mappings the certificate is not an identity
        // source: the next one applies.
        set_peer(&mut c, "spiffe://other.org/x");
        let no_sans = PrincipalSource {
            uri_sans: &[],
            ..source
        };
        assert_eq!(
            map_message(&c, no_sans, SystemTime::now())
                .unwrap()
                .principal_arn,
            "arn:aws:iam::111111111111:user/carol"
        );
    }

    #[test]
    fn verified_jwt_claims_are_mapped_or_refused() {
        let jwts = jwts();
        let source = PrincipalSource {
            jwts: &jwts,
            header: Some("x-iamgate-principal"),
            ..Default::default()
        };
        let with = |payloads: &[(&str, ProtoValue)]| {
            let mut c = check(
                "/a",
                &[("x-iamgate-principal", BOB)],
                &[("iamgate.action", "ec2:X"), ("iamgate.resource", "*")],
            );
            set_jwt(&mut c, payloads);
            map_message(&c, source, SystemTime::now())
        };
        let ok = |payloads: &[(&str, ProtoValue)]| with(payloads).unwrap().principal_arn;
        assert_eq!(
            ok(&[("corp", payload(&[("sub", string("engineering/bob"))]))]),
            BOB
        );
        assert_eq!(
            ok(&[("ci", payload(&[("role", string("deployer"))]))]),
            "arn:aws:sts::111111111111:assumed-role/deployer/ci"
        );
        // Mappings are tried in order; a payload under another key is no
        // identity, and then the header applies.
        assert_eq!(
            ok(&[
                ("ci", payload(&[("role", string("deployer"))])),
                ("corp", payload(&[("sub", string("alice"))]))
            ]),
            "arn:aws:iam::111111111111:user/alice"
        );
        assert_eq!(ok(&[("other", payload(&[("sub", string("alice"))]))]), BOB);
        // Two mappings of one payload: the first claim it holds.
        let two: Vec<JwtMapping> = [
            "corp:prod=arn:aws:iam::111111111111:user/{claim}",
            "corp:dev=arn:aws:iam::222222222222:user/{claim}",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let mut c = check(
            "/a",
            &[("x-iamgate-principal", BOB)],
            &[("iamgate.action", "ec2:X"), ("iamgate.resource", "*")],
        );
        set_jwt(&mut c, &[("corp", payload(&[("dev", string("dave"))]))]);
        let both = PrincipalSource {
            jwts: &two,
            ..source
        };
        assert_eq!(
            map_message(&c, both, SystemTime::now())
                .unwrap()
                .principal_arn,
            "arn:aws:iam::222222222222:user/dave"
        );
        // A verified payload without a usable claim is refused, never
        // re-identified by the header.
        for claims in [
            payload(&[]),
            payload(&[("sub", ProtoValue::default())]),
            payload(&[("sub", payload(&[("x", string("y"))]))]),
            payload(&[("sub", string(""))]),
            payload(&[("sub", string("arn:aws:iam::111111111111:root"))]),
            payload(&[("sub", string("bob smith"))]),
            string("not a payload"),
        ] {
            let e = with(&[("corp", claims.clone())]).unwrap_err();
            assert!(
                matches!(e, MappingError::UnmappedIdentity(_)),
                "{claims:?}: {e}"
            );
            assert!(matches!(e.into_serve_error(), ServeError::Forbidden(_)));
        }
        // Without the header, no payload is no principal.
        let jwt_only = PrincipalSource {
            header: None,
            ..source
        };
        let mut c = check(
            "/a",
            &[("x-iamgate-principal", BOB)],
            &[("iamgate.action", "ec2:X"), ("iamgate.resource", "*")],
        );
        set_jwt(&mut c, &[("other", payload(&[]))]);
        assert!(matches!(
            map_message(&c, jwt_only, SystemTime::now()).unwrap_err(),
            MappingError::NoPrincipal { .. }
        ));
        // A view read without the metadata paths sees no JWT (fails closed).
        set_jwt(&mut c, &[("corp", payload(&[("sub", string("alice"))]))]);
        let bytes = c.encode_to_vec();
        let view = CheckView::parse(&bytes).unwrap();
        assert!(matches!(
            map_request(&view, jwt_only, SystemTime::now()).unwrap_err(),
            MappingError::NoPrincipal { .. }
        ));
    }

    #[test]
    fn decoded_and_wire_metadata_agree() {
        // The EC2 path reads the decoded message; the generic path the wire.
        let jwts = jwts();
        let source = PrincipalSource {
            jwts: &jwts,
            ..Default::default()
        };
        let mut c = check("/a", &[], &[]);
        set_jwt(
            &mut c,
            &[
                ("corp", payload(&[("sub", string("bob"))])),
                ("ci", payload(&[("role", ProtoValue::default())])),
            ],
        );
        let bytes = c.encode_to_vec();
        let view = CheckView::parse_with(&bytes, &source.metadata_paths()).unwrap();
        let decoded = Verified::from_message(c.attributes.as_ref().unwrap(), source);
        assert_eq!(Verified::from_view(&view).claims, decoded.claims);
        assert_eq!(
            decoded.claims.to_vec(),
            vec![MetadataValue::String("bob"), MetadataValue::Other]
        );
    }

    #[test]
    fn action_and_resource_templates_must_give_the_structure() {
        for (role, src) in [
            (Role::Action, "ec2:{path.2}Instances"),
            (Role::Action, "{path.0}:{path.1}"),
            (Role::Resource, "*"),
            (
                Role::Resource,
                "arn:aws:ec2:us-east-1:111111111111:instance/{path.1}",
            ),
            (
                Role::Resource,
                "arn:{header.p}:ec2:{header.r}:{header.a}:instance/{path.1}",
            ),
            (Role::Resource, "arn:aws:s3:::bucket/{path.1+}"),
            (
                Role::Resource,
                "arn:aws:logs:us-east-1:1:log-group:{query.g}:*",
            ),
            (Role::Context, "{header.x}:{path.0+}"),
        ] {
            assert!(Template::parse_as(src, role).is_ok(), "{src}");
        }
        for (role, src, why) in [
            (Role::Action, "{header.x-action}", "SERVICE:ACTION"),
            (Role::Action, "ec2:{path.1}:x", "SERVICE:ACTION"),
            (Role::Action, "ec2:{path.1+}", "resource part"),
            (Role::Resource, "{header.x-resource}", "`*` or an ARN"),
            (Role::Resource, "instance/{path.1}", "`*` or an ARN"),
            (Role::Resource, "arn:aws:ec2:{header.x-region}", "five `:`"),
            (Role::Resource, "{{arn:aws:ec2:::x", "`*` or an ARN"),
            (
                Role::Resource,
                "arn:aws:ec2:{path.1+}::instance/x",
                "resource part",
            ),
        ] {
            let e = Template::parse_as(src, role).unwrap_err();
            assert!(e.contains(why), "{src}: {e}");
        }
        let t = Template::parse_as(
            "arn:aws:ec2:{header.x-region}:111111111111:instance/{path.1}",
            Role::Resource,
        )
        .unwrap();
        assert_eq!(
            t.parts.to_vec(),
            vec![
                Part::Lit("arn:aws:ec2:".into()),
                Part::Value(
                    Source::Header("x-region".into()),
                    Rule::Field("the ARN's region")
                ),
                Part::Lit(":111111111111:instance/".into()),
                Part::Value(Source::Path(1), Rule::Resource),
            ]
        );
    }

    /// A route whose resource takes its region from a header.
    const REGIONAL: &[(&str, &str)] = &[
        ("iamgate.action", "ec2:{path.2}Instances"),
        (
            "iamgate.resource",
            "arn:aws:ec2:{header.x-region}:111111111111:instance/{path.1}",
        ),
        ("iamgate.context.aws:RequestedRegion", "{header.x-region}"),
    ];

    #[test]
    fn values_never_change_the_arn_structure() {
        let map_with = |path: &str, region: &str, ext: &[(&str, &str)]| {
            map(&check(
                path,
                &[("x-iamgate-principal", BOB), ("x-region", region)],
                ext,
            ))
        };
        let r = map_with("/instances/i-0prod/Terminate", "eu-west-1", REGIONAL).unwrap();
        assert_eq!(
            r.resource,
            "arn:aws:ec2:eu-west-1:111111111111:instance/i-0prod"
        );
        // Issue 11, item 2: a region that carries the rest of another ARN.
        let e = map_with(
            "/instances/i-0prod/Terminate",
            "us-east-1:111111111111:instance/i-0dev:",
            REGIONAL,
        )
        .unwrap_err();
        assert_eq!(
            e,
            MappingError::Value {
                placeholder: "{header.x-region}".into(),
                what: "the ARN's region",
                allowed: "only ASCII letters, digits and `-`",
            }
        );
        assert!(matches!(e.into_serve_error(), ServeError::BadRequest(_)));
        for region in ["us-east-1/x", "us east", "*", "us-east-1."] {
            assert!(
                matches!(
                    map_with("/instances/i-1/Start", region, REGIONAL),
                    Err(MappingError::Value { .. })
                ),
                "{region}"
            );
        }
        // The resource part: no separators or wildcards from a value.
        for (path, what) in [
            ("/instances/a:b/Start", "{path.1}"),
            ("/instances/*/Start", "{path.1}"),
            ("/instances/i%3F/Start", "{path.1}"),
            ("/instances/i-1/Sta:rt", "{path.2}"),
            ("/instances/i-1/Sta.rt", "{path.2}"),
        ] {
            let e = map_with(path, "eu-west-1", REGIONAL).unwrap_err();
            assert!(
                matches!(&e, MappingError::Value { placeholder, .. } if placeholder == what),
                "{path}: {e}"
            );
        }
        let header_resource = [
            ("iamgate.action", "ec2:DescribeInstances"),
            (
                "iamgate.resource",
                "arn:aws:ec2:us-east-1:111111111111:instance/{header.x-region}",
            ),
        ];
        assert!(matches!(
            map_with("/x", "i-1/../i-2", &header_resource),
            Err(MappingError::Value { .. })
        ));
        // Context values are text: anything goes (and is untrusted).
        let r = map_with(
            "/x",
            "a:b/c *",
            &[
                ("iamgate.action", "ec2:X"),
                ("iamgate.resource", "*"),
                ("iamgate.context.app:Region", "{header.x-region}"),
            ],
        )
        .unwrap();
        assert_eq!(ctx(&r, "app:Region").as_deref(), Some("a:b/c *"));
    }

    #[test]
    fn path_rest_joins_canonical_segments() {
        let route = [
            ("iamgate.action", "s3:GetObject"),
            ("iamgate.resource", "arn:aws:s3:::{path.0}/{path.1+}"),
        ];
        let key = |path: &str| map(&check(path, &[("x-iamgate-principal", BOB)], &route));
        assert_eq!(
            key("/photos/2024/a%20b.jpg").unwrap_err(),
            MappingError::Path(
                "segment 2 contains whitespace (a route may allow it with `iamgate.path.allow_spaces`)"
                    .into()
            )
        );
        assert_eq!(
            key("/photos/2024/cat.jpg").unwrap().resource,
            "arn:aws:s3:::photos/2024/cat.jpg"
        );
        assert_eq!(key("/photos").unwrap_err(), MappingError::NoSegment(1));
        assert_eq!(key("/photos/").unwrap_err(), MappingError::EmptySegment(1));
        assert_eq!(
            key("/photos/a//b").unwrap_err(),
            MappingError::EmptySegment(2)
        );
        assert_eq!(
            key("/photos/a/b/").unwrap_err(),
            MappingError::EmptySegment(3)
        );
        assert!(matches!(
            key("/photos/a/b:c").unwrap_err(),
            MappingError::Value { .. }
        ));
    }

    #[test]
    fn matrix_parameters_and_whitespace_need_the_route_to_allow_them() {
        // Issue 11, item 6.
        let route = |extra: &[(&'static str, &'static str)]| {
            let mut ext = vec![
                ("iamgate.action", "ec2:{path.2}Instances"),
                (
                    "iamgate.resource",
                    "arn:aws:ec2:us-east-1:111111111111:instance/{path.1}",
                ),
            ];
            ext.extend_from_slice(extra);
            ext
        };
        let map_path = |path: &str, extra: &[(&'static str, &'static str)]| {
            map(&check(path, &[("x-iamgate-principal", BOB)], &route(extra)))
        };
        for (path, why) in [
            ("/instances/i-0prod;jsessionid=x/Terminate", "contains `;`"),
            ("/instances/i-0prod%3Bx/Terminate", "contains `;`"),
            ("/instances/i-0prod/Terminate;x", "contains `;`"),
            ("/instances/i-0prod%20/Terminate", "whitespace"),
            ("/instances/%C2%A0i-0prod/Terminate", "whitespace"),
            ("/instances/i-0prod%09/Terminate", "control character"),
            ("/instances/i-0prod%7F/Terminate", "control character"),
            // Anywhere in the path, even where no placeholder looks.
            ("/instances/i-0prod/Terminate/x;y", "contains `;`"),
        ] {
            let e = map_path(path, &[]).unwrap_err();
            assert!(
                matches!(&e, MappingError::Path(m) if m.contains(why)),
                "{path}: {e}"
            );
            assert!(matches!(e.into_serve_error(), ServeError::BadRequest(_)));
        }
        // A route may allow them; the resource part still refuses what
        // would change the ARN.
        let params = [("iamgate.path.allow_params", "true")];
        let r = map_path("/instances/i-0prod/Terminate/x;y", &params).unwrap();
        assert_eq!(r.action, "ec2:TerminateInstances");
        let r = map_path("/instances/i-0prod;v=1/Terminate", &params).unwrap();
        assert_eq!(
            r.resource,
            "arn:aws:ec2:us-east-1:111111111111:instance/i-0prod;v=1"
        );
        let spaces = [("iamgate.path.allow_spaces", "true")];
        assert!(map_path("/instances/i-0prod/Terminate/a%20b", &spaces).is_ok());
        assert!(matches!(
            map_path("/instances/i-0prod%20/Terminate", &spaces).unwrap_err(),
            MappingError::Value { .. }
        ));
        assert!(map_path("/instances/i-0prod%09/Terminate", &spaces).is_err());
        let off = [("iamgate.path.allow_params", "false")];
        assert!(map_path("/instances/i;x/Terminate", &off).is_err());
        // Anything but `true` or `false` is the route's error.
        let e = map_path(
            "/instances/i/Terminate",
            &[("iamgate.path.allow_params", "yes")],
        )
        .unwrap_err();
        assert!(e.is_config(), "{e}");
    }

    #[test]
    fn only_the_route_causes_error_responses() {
        // Issue 11, item 5: everything a client can cause is a denial.
        use crate::server::ext_authz::response;
        use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
        let config = [
            MappingError::MissingTemplate(ACTION_KEY),
            MappingError::BadTemplate {
                key: "k".into(),
                message: "m".into(),
            },
        ];
        let client = [
            MappingError::NoHttpRequest,
            MappingError::NoPrincipal {
                sources: "s".into(),
            },
            MappingError::UnmappedIdentity("u".into()),
            MappingError::AmbiguousPrincipal("a".into()),
            MappingError::Value {
                placeholder: "p".into(),
                what: "w",
                allowed: "a",
            },
            MappingError::Path("p".into()),
            MappingError::NoSegment(1),
            MappingError::EmptySegment(1),
            MappingError::Query("q".into()),
            MappingError::MissingQuery("q".into()),
            MappingError::DuplicateQuery("q".into()),
            MappingError::MissingHeader("h".into()),
            MappingError::DuplicateHeader("h".into()),
            MappingError::HeaderEncoding("h".into()),
            MappingError::MissingAttribute("host"),
        ];
        for e in config {
            assert!(e.is_config());
            let answer = response::refused(&e.into_serve_error());
            assert!(matches!(
                answer.http_response,
                Some(HttpResponse::ErrorResponse(_))
            ));
        }
        for e in client {
            assert!(!e.is_config(), "{e}");
            let err = e.clone().into_serve_error();
            let answer = response::refused(&err);
            let Some(HttpResponse::DeniedResponse(d)) = answer.http_response else {
                panic!("{e}: not a denial");
            };
            let status = d.status.unwrap().code;
            assert!((400..500).contains(&status), "{e}: {status}");
        }
    }

    #[test]
    fn raw_headers_detect_repeats() {
        let mut c = check(
            "/a",
            &[],
            &[("iamgate.action", "ec2:X"), ("iamgate.resource", "*")],
        );
        let raw = |pairs: &[(&str, &str)]| HeaderMap {
            headers: pairs
                .iter()
                .map(|(k, v)| HeaderValue {
                    key: (*k).to_owned(),
                    value: String::new(),
                    raw_value: v.as_bytes().to_vec(),
                })
                .collect(),
        };
        let set = |c: &mut CheckRequest, m: HeaderMap| {
            if let Some(h) = c
                .attributes
                .as_mut()
                .and_then(|a| a.request.as_mut())
                .and_then(|r| r.http.as_mut())
            {
                h.header_map = Some(m);
            }
        };
        set(
            &mut c,
            raw(&[("x-iamgate-principal", "arn:aws:iam::1:user/a,b")]),
        );
        assert_eq!(map(&c).unwrap().principal_arn, "arn:aws:iam::1:user/a,b");
        set(
            &mut c,
            raw(&[("x-iamgate-principal", BOB), ("x-iamgate-principal", BOB)]),
        );
        assert_eq!(
            map(&c).unwrap_err(),
            MappingError::DuplicateHeader("x-iamgate-principal".into())
        );
    }

    #[test]
    fn traceparent_header() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let of = |c: CheckRequest| traceparent(&CheckView::parse(&c.encode_to_vec()).unwrap());
        assert_eq!(
            of(check("/", &[("traceparent", tp)], &[])).as_deref(),
            Some(tp)
        );
        assert_eq!(of(check("/", &[], &[])), None);
    }

    #[test]
    fn extensions_override_derived_keys_and_render() {
        let c = check(
            "/x",
            &[("x-iamgate-principal", BOB)],
            &[
                ("iamgate.action", "ec2:X"),
                ("iamgate.resource", "*"),
                ("iamgate.context.aws:SecureTransport", "false"),
                ("iamgate.context.app:Host", "{host}"),
            ],
        );
        let r = map(&c).unwrap();
        assert_eq!(ctx(&r, "aws:SecureTransport").as_deref(), Some("false"));
        assert_eq!(ctx(&r, "app:host").as_deref(), Some("api.example.com"));
        let c = check(
            "/x",
            &[("x-iamgate-principal", BOB)],
            &[
                ("iamgate.action", "ec2:X"),
                ("iamgate.resource", "*"),
                ("iamgate.context.", "v"),
            ],
        );
        assert!(map(&c).unwrap_err().is_config());
        // Misspelt extensions are configuration errors; `iamgate.mapping`
        // is reserved and accepted.
        let with = |k: &'static str| {
            check(
                "/x",
                &[("x-iamgate-principal", BOB)],
                &[
                    ("iamgate.action", "ec2:X"),
                    ("iamgate.resource", "*"),
                    (k, "v"),
                ],
            )
        };
        let e = map(&with("iamgate.contxt.aws:SourceVpc")).unwrap_err();
        assert!(
            e.is_config() && e.to_string().contains("unknown iamgate extension"),
            "{e}"
        );
        assert!(map(&with("iamgate.mapping")).is_ok());
        assert!(map(&with("other.key")).is_ok());
    }
}
