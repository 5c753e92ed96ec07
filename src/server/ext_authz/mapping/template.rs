//! Route templates (`iamgate.action`, `iamgate.resource`,
//! `iamgate.context.*`): parsed with the rule of the field each placeholder
//! fills, rendered per request from the [`HttpView`].

use super::*;

/// Bytes allowed in IAM names and paths.
pub(super) fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b)
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Part<'t> {
    Lit(Cow<'t, str>),
    /// A placeholder, and what its value may hold where it stands.
    Value(Source<'t>, Rule),
}

/// Where a placeholder's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Source<'t> {
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
pub(super) enum Rule {
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
    pub(super) parts: SmallVec<[Part<'t>; 4]>,
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
    pub fn parse(src: &'t str) -> Result<Self, TemplateError> {
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
                return Err(TemplateError::UnmatchedClose(src.len() - after.len()));
            } else {
                let close = after
                    .find('}')
                    .ok_or(TemplateError::Unterminated(src.len() - after.len()))?;
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
    pub fn parse_as(src: &'t str, role: Role) -> Result<Self, TemplateError> {
        let mut t = Self::parse(src)?;
        let structure = match role {
            Role::Context => return Ok(t),
            Role::Action => TemplateError::ActionShape,
            Role::Resource if src == "*" => return Ok(t),
            Role::Resource => TemplateError::ResourceShape,
        };
        if role == Role::Resource
            && !matches!(t.parts.first(), Some(Part::Lit(l)) if l.starts_with("arn:"))
        {
            return Err(structure);
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
                        return Err(TemplateError::PathRestOutsideResource(source.to_string()));
                    }
                }
            }
        }
        let complete = match role {
            Role::Action => colons == 1,
            _ => colons >= 5,
        };
        if !complete {
            return Err(structure);
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

pub(super) fn placeholder(name: &str) -> Result<Source<'_>, TemplateError> {
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
            return Err(TemplateError::SegmentIndex(name.to_owned()));
        }
        let n = n
            .parse()
            .map_err(|_| TemplateError::SegmentIndexTooLarge(name.to_owned()))?;
        return Ok(if rest {
            Source::PathRest(n)
        } else {
            Source::Path(n)
        });
    }
    if let Some(h) = name.strip_prefix("header.") {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if h.is_empty() || !h.bytes().all(token) {
            return Err(TemplateError::HeaderName(name.to_owned()));
        }
        return Ok(Source::Header(ascii_lowercase(h)));
    }
    if let Some(q) = name.strip_prefix("query.") {
        if q.is_empty() {
            return Err(TemplateError::EmptyQueryName(name.to_owned()));
        }
        return Ok(Source::Query(q));
    }
    Err(TemplateError::UnknownPlaceholder(name.to_owned()))
}

/// Why a route's template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unmatched `}}` at byte {0} (write `}}}}` for a literal brace)")]
    UnmatchedClose(usize),
    #[error("unterminated `{{` at byte {0}")]
    Unterminated(usize),
    #[error(
        "unknown placeholder `{{{0}}}` (known: {{method}}, {{host}}, {{path.N}}, {{path.N+}}, {{header.NAME}}, {{query.NAME}})"
    )]
    UnknownPlaceholder(String),
    #[error("`{{{0}}}`: the segment index is a number, e.g. {{path.0}} or {{path.1+}}")]
    SegmentIndex(String),
    #[error("`{{{0}}}`: segment index too large")]
    SegmentIndexTooLarge(String),
    #[error("`{{{0}}}`: not a header name")]
    HeaderName(String),
    #[error("`{{{0}}}`: empty parameter name")]
    EmptyQueryName(String),
    #[error("an action template is `SERVICE:ACTION` with its one `:` written in the template")]
    ActionShape,
    #[error(
        "a resource template is `*` or an ARN, `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`, with its five `:` written in the template"
    )]
    ResourceShape,
    #[error("`{0}` joins path segments with `/`: it may only fill an ARN's resource part")]
    PathRestOutsideResource(String),
}
