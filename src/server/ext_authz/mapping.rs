//! ext_authz request mapping: an Envoy `CheckRequest` for any HTTP API →
//! one [`AuthzRequest`]. Owns the route templates (`iamgate.action`,
//! `iamgate.resource`, `iamgate.context.KEY` context extensions), careful
//! splitting and decoding of Envoy's raw request target, the principal
//! (URI SAN mapping, then the trusted header) and the derived context keys.
//!
//! Rules, in order:
//! 1. The route must carry `iamgate.action` and `iamgate.resource`; a route
//!    without them, with a template that does not parse, or with an
//!    unknown `iamgate.*` extension (a typo would silently drop a context
//!    key; `iamgate.mapping` is reserved for selecting a service mapping),
//!    is a configuration error ([`MappingError::is_config`]) and becomes an
//!    ext_authz `error_response`, so Envoy's failure mode applies.
//! 2. Principal: the peer's `source.principal` (the URI SAN Envoy reports
//!    for a client certificate) if a configured prefix matches it; otherwise
//!    the trusted principal header; otherwise the request is refused.
//! 3. Templates render with `{method}`, `{host}`, `{path.N}` (0-based,
//!    percent-decoded), `{header.NAME}` and `{query.NAME}` (form-decoded);
//!    `{{` and `}}` are literal braces. A placeholder whose value is
//!    missing, empty or ambiguous refuses the request (a 400), never
//!    guesses: invalid percent-encoding, `%2F`/`%5C`/`\` in the path, dot
//!    segments, control characters, repeated headers or query parameters.
//! 4. Context: `aws:SourceIp`, `aws:SecureTransport`, `aws:CurrentTime`,
//!    `aws:EpochTime` are derived; `iamgate.context.KEY` extensions add (or
//!    override) keys with templated single values.

use std::borrow::Cow;
use std::cell::{OnceCell, RefCell};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use smallvec::SmallVec;

use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;

use crate::bundle::AuthzRequest;
use crate::engine::{Context, ContextValue, ascii_lowercase};
use crate::server::config::UriSanMapping;
use crate::server::errors::ServeError;
use crate::server::ext_authz::wire::{self, CheckView, HttpFields, RawHeader};

/// Context extension holding the action template.
pub const ACTION_KEY: &str = "iamgate.action";
/// Context extension holding the resource template.
pub const RESOURCE_KEY: &str = "iamgate.resource";
/// Prefix of context extensions that add context keys.
pub const CONTEXT_PREFIX: &str = "iamgate.context.";
/// Context extension selecting a service mapping: `generic` (this module)
/// or `ec2-query` (see `ext_authz::ec2`); without it, `--default-mapping`.
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
    #[error(
        "no principal: no `{header}` header and no peer certificate URI SAN matching a configured prefix"
    )]
    NoPrincipal { header: String },
    #[error("ambiguous principal: {0}")]
    AmbiguousPrincipal(String),
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

/// Where principals come from.
#[derive(Debug, Clone, Copy)]
pub struct PrincipalSource<'c> {
    /// Trusted header (lower case) carrying the principal ARN; empty disables it.
    pub header: &'c str,
    /// URI SAN prefix → principal ARN template, first match wins.
    pub uri_sans: &'c [UriSanMapping],
}

/// Maps a `CheckRequest` (read off the wire) to the request iamgate
/// decides.
pub fn map_request(
    check: &CheckView<'_>,
    principals: PrincipalSource<'_>,
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
    for &(key, value) in &check.extensions {
        match key {
            ACTION_KEY => action_src = Some(value),
            RESOURCE_KEY => resource_src = Some(value),
            MAPPING_KEY => {}
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
                            "unknown iamgate extension (known: `{ACTION_KEY}`, `{RESOURCE_KEY}`, `{CONTEXT_PREFIX}KEY`, `{MAPPING_KEY}`)"
                        ),
                    });
                }
            }
        }
    }
    let action_t = template(action_src, ACTION_KEY)?;
    let resource_t = template(resource_src, RESOURCE_KEY)?;
    if let Some(e) = unknown {
        return Err(e);
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
    let view = HttpView::from_wire(http);
    let principal_arn = principal(check.source_principal, &view, principals)?;
    let action = action_t.render(&view)?;
    let resource = resource_t.render(&view)?;

    let mut context = Context::new();
    let source_ip = check.source_address.and_then(|a| a.parse::<IpAddr>().ok());
    insert_request_keys(&mut context, source_ip, http.scheme, now);
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
        resource_account: None,
        outcome_only: true,
    })
}

/// The request's W3C `traceparent` header as received, if there is exactly
/// one (the decision path parses it).
pub fn traceparent(check: &CheckView<'_>) -> Option<String> {
    HttpView::from_wire(check.http.as_ref()?).traceparent()
}

fn template<'e>(src: Option<&'e str>, key: &'static str) -> Result<Template<'e>, MappingError> {
    let src = src
        .filter(|s| !s.is_empty())
        .ok_or(MappingError::MissingTemplate(key))?;
    Template::parse(src).map_err(|message| MappingError::BadTemplate {
        key: key.to_owned(),
        message,
    })
}

/// The principal: a mapped URI SAN, else the trusted header.
pub(crate) fn principal(
    peer_principal: &str,
    view: &HttpView<'_>,
    source: PrincipalSource<'_>,
) -> Result<String, MappingError> {
    if !peer_principal.is_empty() {
        for m in source.uri_sans {
            if let Some(rest) = peer_principal.strip_prefix(m.prefix.as_str()) {
                if rest.is_empty() || !rest.bytes().all(is_name_byte) {
                    return Err(MappingError::AmbiguousPrincipal(format!(
                        "the URI SAN after `{}` must be a non-empty IAM name or path (letters, digits, `+=,.@_-/`)",
                        m.prefix
                    )));
                }
                return Ok(m.template.replace("{rest}", rest));
            }
        }
    }
    let no_principal = || MappingError::NoPrincipal {
        header: source.header.to_owned(),
    };
    if source.header.is_empty() {
        return Err(no_principal());
    }
    let value = view.header(source.header)?.ok_or_else(no_principal)?;
    let value = value.trim();
    if value.is_empty() {
        return Err(no_principal());
    }
    if value
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(MappingError::AmbiguousPrincipal(format!(
            "header `{}` contains whitespace",
            source.header
        )));
    }
    // Envoy joins repeated headers with `,` in `headers`; only raw headers
    // (`encode_raw_headers`) tell a comma in a name from two values.
    if !view.raw_headers() && value.contains(',') {
        return Err(MappingError::AmbiguousPrincipal(format!(
            "header `{}` contains `,` (repeated headers are merged with commas; enable `encode_raw_headers` for names with commas)",
            source.header
        )));
    }
    Ok(value.to_owned())
}

/// Bytes allowed in IAM names and paths.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b)
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part<'t> {
    Lit(Cow<'t, str>),
    Method,
    Host,
    Path(usize),
    Header(Cow<'t, str>),
    Query(&'t str),
}

/// A parsed `iamgate.*` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template<'t> {
    parts: SmallVec<[Part<'t>; 4]>,
}

/// Room for a rendered action or ARN without growing.
const RENDER_CAPACITY: usize = 96;

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
    /// Parses a template; the error says what is wrong with it. Literal
    /// runs borrow from `src` unless they contain `{{`/`}}` escapes.
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
                parts.push(placeholder(name)?);
                rest = after.get(close + 1..).unwrap_or_default();
            }
        }
        push_lit(&mut lit, rest);
        if let Some(l) = lit {
            parts.push(Part::Lit(l));
        }
        Ok(Self { parts })
    }

    /// Renders the template for one request.
    pub fn render(&self, view: &HttpView<'_>) -> Result<String, MappingError> {
        let mut out = String::with_capacity(RENDER_CAPACITY);
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Method => out.push_str(non_empty(view.method, "method")?),
                Part::Host => out.push_str(non_empty(view.host, "host")?),
                Part::Path(n) => out.push_str(view.segment(*n)?),
                Part::Header(name) => {
                    let v = view
                        .header(name)?
                        .filter(|v| !v.is_empty())
                        .ok_or_else(|| MappingError::MissingHeader(name.to_string()))?;
                    out.push_str(&v);
                }
                Part::Query(name) => out.push_str(view.query(name)?),
            }
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

fn placeholder(name: &str) -> Result<Part<'_>, String> {
    let unknown = || {
        format!(
            "unknown placeholder `{{{name}}}` (known: {{method}}, {{host}}, {{path.N}}, {{header.NAME}}, {{query.NAME}})"
        )
    };
    match name {
        "method" => return Ok(Part::Method),
        "host" => return Ok(Part::Host),
        _ => {}
    }
    if let Some(n) = name.strip_prefix("path.") {
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "`{{{name}}}`: the segment index is a number, e.g. {{path.0}}"
            ));
        }
        return n
            .parse()
            .map(Part::Path)
            .map_err(|_| format!("`{{{name}}}`: segment index too large"));
    }
    if let Some(h) = name.strip_prefix("header.") {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if h.is_empty() || !h.bytes().all(token) {
            return Err(format!("`{{{name}}}`: not a header name"));
        }
        return Ok(Part::Header(ascii_lowercase(h)));
    }
    if let Some(q) = name.strip_prefix("query.") {
        if q.is_empty() {
            return Err(format!("`{{{name}}}`: empty parameter name"));
        }
        return Ok(Part::Query(q));
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
    segments: OnceCell<Result<Segments<'r>, MappingError>>,
    query: OnceCell<Result<Vec<(String, String)>, MappingError>>,
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

    /// Path segment `n` (0-based), percent-decoded.
    pub fn segment(&self, n: usize) -> Result<&str, MappingError> {
        let segments = self
            .segments
            .get_or_init(|| split_path(self.raw_path, self.target))
            .as_ref()
            .map_err(Clone::clone)?;
        let s = segments.get(n).ok_or(MappingError::NoSegment(n))?;
        if s.is_empty() {
            return Err(MappingError::EmptySegment(n));
        }
        Ok(s)
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
/// checked, since an ambiguity anywhere shifts the segments after it.
pub fn split_path<'r>(raw_path: &'r str, target: &str) -> Result<Segments<'r>, MappingError> {
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

/// Strict percent-decoding: every `%` starts two hex digits, the result is
/// UTF-8 without control characters. Borrows when there is nothing to
/// decode.
fn percent_decode(raw: &str, plus_is_space: bool) -> Result<Cow<'_, str>, String> {
    let bytes = raw.as_bytes();
    if !bytes
        .iter()
        .any(|&b| b == b'%' || (plus_is_space && b == b'+'))
    {
        if raw.chars().any(char::is_control) {
            return Err("decodes to a control character".to_owned());
        }
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("invalid percent-encoding at byte {i}"))?;
                out.push(hex);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    let s = String::from_utf8(out).map_err(|_| "decodes to invalid UTF-8".to_owned())?;
    if s.chars().any(char::is_control) {
        return Err("decodes to a control character".to_owned());
    }
    Ok(Cow::Owned(s))
}

fn clip(s: &str) -> &str {
    let mut end = s.len().min(80);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::Address as EnvoyAddress;
    use envoy_types::pb::envoy::config::core::v3::HeaderValue;
    use envoy_types::pb::envoy::config::core::v3::address::Address;
    use envoy_types::pb::envoy::config::core::v3::{HeaderMap, SocketAddress};
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{Peer, Request};
    use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
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

    fn src() -> PrincipalSource<'static> {
        PrincipalSource {
            header: "x-iamgate-principal",
            uri_sans: &[],
        }
    }

    /// Maps a request as the server does: encoded, then read off the wire.
    fn map_message(
        c: &CheckRequest,
        source: PrincipalSource<'_>,
        now: SystemTime,
    ) -> Result<AuthzRequest, MappingError> {
        let bytes = c.encode_to_vec();
        map_request(&CheckView::parse(&bytes).unwrap(), source, now)
    }

    fn map(c: &CheckRequest) -> Result<AuthzRequest, MappingError> {
        map_message(
            c,
            src(),
            UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
        )
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
            vec![Part::Lit("a{b}c".into()), Part::Method]
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
            vec![Part::Header("x-team".into())]
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
        assert_eq!(split_path("/", "/").unwrap().to_vec(), vec![""]);
        assert_eq!(
            split_path("/a//b/", "/a//b/").unwrap().to_vec(),
            vec!["a", "", "b", ""]
        );
        assert_eq!(
            split_path("/a%20b/%25", "").unwrap().to_vec(),
            vec!["a b", "%"]
        );
        // `+` is literal in paths.
        assert_eq!(split_path("/a+b", "").unwrap().to_vec(), vec!["a+b"]);
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
            let e = split_path(path.split('?').next().unwrap(), path).unwrap_err();
            assert!(e.to_string().contains(why), "{path}: {e}");
        }
        // The refusal applies to any path placeholder, even an earlier segment.
        let c = check(
            "/instances/i-1/x%2Fy",
            &[("x-iamgate-principal", BOB)],
            &[
                ("iamgate.action", "ec2:X"),
                ("iamgate.resource", "{path.1}"),
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
                ("iamgate.resource", "instance/{path.1}"),
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

        // URI SAN mapping wins over the header.
        let sans = [UriSanMapping {
            prefix: "spiffe://example.org/ns/ops/sa/".to_owned(),
            template: "arn:aws:sts::111111111111:assumed-role/{rest}/spiffe".to_owned(),
        }];
        let source = PrincipalSource {
            header: "x-iamgate-principal",
            uri_sans: &sans,
        };
        let mut c = check(
            "/a",
            &[("x-iamgate-principal", BOB)],
            &[("iamgate.action", "ec2:X"), ("iamgate.resource", "*")],
        );
        let peer = |c: &mut CheckRequest, p: &str| {
            if let Some(s) = c.attributes.as_mut().and_then(|a| a.source.as_mut()) {
                s.principal = p.to_owned();
            }
        };
        peer(&mut c, "spiffe://example.org/ns/ops/sa/ops-automation");
        let r = map_message(&c, source, SystemTime::now()).unwrap();
        assert_eq!(
            r.principal_arn,
            "arn:aws:sts::111111111111:assumed-role/ops-automation/spiffe"
        );
        // An unmapped SAN falls back to the header.
        peer(&mut c, "spiffe://other.org/x");
        assert_eq!(
            map_message(&c, source, SystemTime::now())
                .unwrap()
                .principal_arn,
            BOB
        );
        // A mapped prefix with an odd remainder is refused.
        peer(&mut c, "spiffe://example.org/ns/ops/sa/a:b");
        assert!(matches!(
            map_message(&c, source, SystemTime::now()).unwrap_err(),
            MappingError::AmbiguousPrincipal(_)
        ));
        // The header can be disabled.
        peer(&mut c, "");
        let off = PrincipalSource {
            header: "",
            uri_sans: &sans,
        };
        assert!(matches!(
            map_message(&c, off, SystemTime::now()).unwrap_err(),
            MappingError::NoPrincipal { .. }
        ));
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
