//! Policy variables (`${aws:username}`, `${aws:PrincipalTag/team, 'none'}`,
//! `${*}`, `${?}`, `${$}`) in resource patterns and condition values.
//!
//! A template is parsed once at compile time; at decision time it resolves
//! against the request's keys into wildcard tokens, with substituted text
//! always literal. Only `Version: 2012-10-17` documents get variables; in
//! older ones `${...}` is plain text.

use std::sync::Arc;

use crate::policy::intern::intern;
use crate::policy::wildcard::{Tok, Toks};

/// How a request's value for a key is seen by conditions and variables.
#[derive(Debug, Clone, Copy)]
pub enum ValueRef<'a> {
    /// A single-valued key.
    One(&'a str),
    /// A multivalued key (may be empty).
    Many(&'a [String]),
}

/// Where condition keys and policy variables get their values.
pub trait Lookup {
    /// The value of a key, given in lower case.
    fn get(&self, key_lower: &str) -> Option<ValueRef<'_>>;
}

/// The keys a decision needed and the request lacked, without duplicates.
#[derive(Debug, Default, Clone)]
pub struct MissingKeys<'p>(smallvec::SmallVec<[&'p str; 4]>);

impl<'p> MissingKeys<'p> {
    /// Records a key (compared case-insensitively with those already seen).
    pub fn note(&mut self, key: &'p str) {
        if !self.0.iter().any(|k| k.eq_ignore_ascii_case(key)) {
            self.0.push(key);
        }
    }

    /// The keys, in the order first seen.
    pub fn keys(&self) -> &[&'p str] {
        &self.0
    }

    /// Whether no key was missing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Piece {
    /// Literal text.
    Lit(Arc<str>),
    /// A `*` wildcard (only where the element or operator has wildcards).
    Star,
    /// A `?` wildcard (likewise).
    Quest,
    /// `${key}` or `${key, 'default'}`; the key in lower case.
    Var {
        key: Arc<str>,
        default: Option<Arc<str>>,
    },
}

/// A pattern or value that may contain policy variables and wildcards.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Template {
    pieces: Box<[Piece]>,
    has_vars: bool,
}

/// The outcome of resolving a template.
#[expect(
    clippy::large_enum_variant,
    reason = "lives on the stack for one match; boxing would allocate on the hot path"
)]
pub enum Resolved<'a> {
    /// Every variable had a value (or a default).
    Tokens(Toks<'a>),
    /// A variable had no value and no default: the value matches nothing.
    Unresolved,
}

impl Template {
    /// Parses `text`. `variables` enables `${...}`; `wildcards` makes `*` and
    /// `?` wildcards rather than literal characters.
    pub fn parse(text: &str, variables: bool, wildcards: bool) -> Self {
        // Only these characters can start something other than literal
        // text; the runs between them are copied whole (most texts have
        // none: one literal, interned as it is).
        let special = |c: char| (variables && c == '$') || (wildcards && (c == '*' || c == '?'));
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        let mut has_vars = false;
        loop {
            let run = rest.find(special).unwrap_or(rest.len());
            let (literal, tail) = rest.split_at(run);
            if tail.is_empty() && lit.is_empty() && pieces.is_empty() {
                // The whole text is one literal.
                if !literal.is_empty() {
                    pieces.push(Piece::Lit(intern(literal)));
                }
                break;
            }
            lit.push_str(literal);
            rest = tail;
            let Some(c) = rest.chars().next() else {
                break;
            };
            if c == '$' {
                if rest.starts_with("${")
                    && let Some(end) = rest.find('}')
                {
                    let inner = rest.get(2..end).unwrap_or_default().trim();
                    rest = rest.get(end + 1..).unwrap_or_default();
                    match inner {
                        "*" | "?" | "$" => lit.push_str(inner),
                        _ => {
                            flush(&mut lit, &mut pieces);
                            pieces.push(parse_var(inner));
                            has_vars = true;
                        }
                    }
                } else {
                    lit.push('$');
                    rest = rest.get(1..).unwrap_or_default();
                }
                continue;
            }
            // A wildcard (`special` admits nothing else).
            rest = rest.get(1..).unwrap_or_default();
            flush(&mut lit, &mut pieces);
            pieces.push(if c == '*' { Piece::Star } else { Piece::Quest });
        }
        flush(&mut lit, &mut pieces);
        Self {
            pieces: pieces.into_boxed_slice(),
            has_vars,
        }
    }

    /// Whether the template holds a policy variable.
    pub fn has_vars(&self) -> bool {
        self.has_vars
    }

    /// The template's pieces.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// The literal text when the template has neither variables nor wildcards.
    pub fn as_literal(&self) -> Option<&str> {
        match &*self.pieces {
            [] => Some(""),
            [Piece::Lit(s)] => Some(s),
            _ => None,
        }
    }

    /// Resolves the variables against `lookup` into wildcard tokens.
    /// `missing` records every variable key that had no value.
    pub fn resolve<'x, 't: 'x, 'l: 'x, L: Lookup + ?Sized>(
        &'t self,
        lookup: &'l L,
        missing: &mut MissingKeys<'t>,
    ) -> Resolved<'x> {
        let mut toks = Toks::new();
        for piece in self.pieces.iter() {
            match piece {
                Piece::Lit(s) => toks.push(Tok::Lit(s)),
                Piece::Star => toks.push(Tok::Star { colon: true }),
                Piece::Quest => toks.push(Tok::Quest { colon: true }),
                Piece::Var { key, default } => {
                    let value = match lookup.get(key) {
                        Some(ValueRef::One(v)) => Some(v),
                        Some(ValueRef::Many([v])) => Some(v.as_str()),
                        _ => None,
                    };
                    match (value, default) {
                        (Some(v), _) => toks.push(Tok::Lit(v)),
                        (None, Some(d)) => {
                            missing.note(key);
                            toks.push(Tok::Lit(d));
                        }
                        (None, None) => {
                            missing.note(key);
                            return Resolved::Unresolved;
                        }
                    }
                }
            }
        }
        Resolved::Tokens(toks)
    }
}

fn flush(lit: &mut String, pieces: &mut Vec<Piece>) {
    if !lit.is_empty() {
        pieces.push(Piece::Lit(intern(lit)));
        lit.clear();
    }
}

fn parse_var(inner: &str) -> Piece {
    let (key, default) = match inner.split_once(',') {
        Some((k, d)) => {
            let d = d.trim();
            let d = d
                .strip_prefix('\'')
                .and_then(|d| d.strip_suffix('\''))
                .unwrap_or(d);
            (k.trim(), Some(intern(d)))
        }
        None => (inner, None),
    };
    Piece::Var {
        key: intern(&key.to_ascii_lowercase()),
        default,
    }
}

/// Concatenates resolved tokens into text (literal templates only need this
/// when an operator compares whole strings).
pub fn concat(toks: &[Tok<'_>]) -> String {
    let mut out = String::new();
    for t in toks {
        match t {
            Tok::Lit(s) => out.push_str(s),
            Tok::Star { .. } => out.push('*'),
            Tok::Quest { .. } => out.push('?'),
        }
    }
    out
}

/// Whether `text` equals the concatenation of literal tokens, without
/// allocating.
pub fn equals_tokens(toks: &[Tok<'_>], text: &str) -> bool {
    let mut rest = text;
    for t in toks {
        let Tok::Lit(s) = t else { return false };
        match rest.strip_prefix(s) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::wildcard::matches;

    struct Ctx;
    impl Lookup for Ctx {
        fn get(&self, key: &str) -> Option<ValueRef<'_>> {
            match key {
                "aws:username" => Some(ValueRef::One("alice*")),
                _ => None,
            }
        }
    }

    /// The parser as first written, a character at a time: the reference
    /// the run-copying parser must agree with.
    fn parse_by_char(text: &str, variables: bool, wildcards: bool) -> Template {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        let mut has_vars = false;
        while let Some(c) = rest.chars().next() {
            if variables
                && rest.starts_with("${")
                && let Some(end) = rest.find('}')
            {
                let inner = rest.get(2..end).unwrap_or_default().trim();
                rest = rest.get(end + 1..).unwrap_or_default();
                match inner {
                    "*" | "?" | "$" => lit.push_str(inner),
                    _ => {
                        flush(&mut lit, &mut pieces);
                        pieces.push(parse_var(inner));
                        has_vars = true;
                    }
                }
                continue;
            }
            rest = rest.get(c.len_utf8()..).unwrap_or_default();
            if wildcards && (c == '*' || c == '?') {
                flush(&mut lit, &mut pieces);
                pieces.push(if c == '*' { Piece::Star } else { Piece::Quest });
            } else {
                lit.push(c);
            }
        }
        flush(&mut lit, &mut pieces);
        Template {
            pieces: pieces.into_boxed_slice(),
            has_vars,
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_copies_runs_as_parsing_by_character_did(
            text in "[a-z:/$*?{}, 'é-]{0,24}",
            variables: bool,
            wildcards: bool,
        ) {
            proptest::prop_assert_eq!(
                Template::parse(&text, variables, wildcards),
                parse_by_char(&text, variables, wildcards)
            );
        }
    }

    fn toks(t: &Template) -> Option<String> {
        match t.resolve(&Ctx, &mut MissingKeys::default()) {
            Resolved::Tokens(t) => Some(concat(&t)),
            Resolved::Unresolved => None,
        }
    }

    #[test]
    fn variables_resolve_literally() {
        let t = Template::parse("arn:aws:s3:::b/${aws:username}/*", true, true);
        let Resolved::Tokens(resolved) = t.resolve(&Ctx, &mut MissingKeys::default()) else {
            unreachable!("username resolves")
        };
        assert!(matches(&resolved, "arn:aws:s3:::b/alice*/x"));
        assert!(!matches(&resolved, "arn:aws:s3:::b/alicebob/x"));
    }

    #[test]
    fn defaults_specials_and_versions() {
        let t = Template::parse("${aws:PrincipalTag/team, 'none'}", true, true);
        assert_eq!(toks(&t).as_deref(), Some("none"));
        let t = Template::parse("${aws:nothing}", true, true);
        assert_eq!(toks(&t), None);
        let t = Template::parse("a${*}b${?}${$}", true, true);
        assert_eq!(t.as_literal(), Some("a*b?$"));
        let t = Template::parse("${aws:username}", false, true);
        assert_eq!(t.as_literal(), Some("${aws:username}"));
    }
}
