//! What a mapping reads of the request ([`HttpView`]): method, path
//! segments and query under the route's strict decoding rules, headers.

use super::*;

/// The HTTP request as templates see it: raw fields plus the decoded path
/// and query, computed on first use.
#[derive(Debug)]
pub struct HttpView<'r> {
    pub(super) method: &'r str,
    pub(super) host: &'r str,
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
    pub(super) fn raw_headers(&self) -> bool {
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
        let k = percent_decode(k, true).map_err(|e| MappingError::Query(e.to_string()))?;
        let v = percent_decode(v, true)
            .map_err(|m| MappingError::Query(format!("parameter `{k}`: {m}")))?;
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

/// Strict percent-decoding ([`crate::uri`], the one decoder of every
/// mapping): a path segment (`+` is itself) or a form-encoded query part
/// (`+` is a space).
fn percent_decode(raw: &str, plus_is_space: bool) -> Result<Cow<'_, str>, uri::DecodeError> {
    let component = if plus_is_space {
        uri::Component::Query
    } else {
        uri::Component::PathSegment
    };
    uri::decode(raw.as_bytes(), component)
}

pub(super) fn clip(s: &str) -> &str {
    let mut end = s.len().min(80);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}
