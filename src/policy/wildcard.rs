//! Glob matching with IAM's two wildcards: `*` (any run of characters,
//! possibly empty) and `?` (exactly one character).
//!
//! Patterns are token sequences so that text substituted from a policy
//! variable stays literal even when it contains `*` or `?`.

use std::sync::Arc;

use smallvec::SmallVec;

use crate::policy::intern::intern;

/// One token of a resolved pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tok<'a> {
    /// Text that must appear exactly.
    Lit(&'a str),
    /// `*`; `colon` says whether it may consume `:` (false inside the
    /// first five fields of an ARN compared with `ArnLike`).
    Star { colon: bool },
    /// `?`; `colon` as for `Star`.
    Quest { colon: bool },
}

/// A pattern resolved for one match; most fit without allocating.
pub type Toks<'a> = SmallVec<[Tok<'a>; 8]>;

/// Splits a plain pattern (no policy variables) into tokens.
pub fn tokenize(pattern: &str) -> Toks<'_> {
    let mut out = Toks::new();
    let mut start = 0;
    for (i, c) in pattern.char_indices() {
        if c == '*' || c == '?' {
            if start < i {
                out.push(Tok::Lit(pattern.get(start..i).unwrap_or_default()));
            }
            out.push(if c == '*' {
                Tok::Star { colon: true }
            } else {
                Tok::Quest { colon: true }
            });
            start = i + 1;
        }
    }
    if start < pattern.len() {
        out.push(Tok::Lit(pattern.get(start..).unwrap_or_default()));
    }
    out
}

/// Whether `text` matches the whole token sequence (case-sensitive).
pub fn matches(tokens: &[Tok<'_>], text: &str) -> bool {
    let mut ti = 0usize;
    let mut pos = 0usize;
    // Backtrack point: token index just after the last `*`, and where the
    // text resumes after that star's current extent.
    let mut star: Option<(usize, usize, bool)> = None;
    loop {
        let rest = text.get(pos..).unwrap_or_default();
        let advanced = match tokens.get(ti) {
            Some(Tok::Star { colon }) => {
                star = Some((ti + 1, pos, *colon));
                ti += 1;
                continue;
            }
            Some(Tok::Quest { colon }) => match rest.chars().next() {
                Some(c) if *colon || c != ':' => {
                    pos += c.len_utf8();
                    true
                }
                _ => false,
            },
            Some(Tok::Lit(lit)) => {
                if rest.starts_with(lit) {
                    pos += lit.len();
                    true
                } else {
                    false
                }
            }
            None => {
                if rest.is_empty() {
                    return true;
                }
                false
            }
        };
        if advanced {
            ti += 1;
            continue;
        }
        // Mismatch: let the last star swallow more. When a literal follows
        // the star, jump straight to its next occurrence.
        match star {
            Some((after, spos, colon)) => {
                let Some(c) = text.get(spos..).and_then(|s| s.chars().next()) else {
                    return false;
                };
                if !colon && c == ':' {
                    return false;
                }
                let mut next = spos + c.len_utf8();
                if let Some(Tok::Lit(lit)) = tokens.get(after) {
                    let Some(found) = text.get(next..).and_then(|rest| find(rest, lit)) else {
                        return false;
                    };
                    if !colon
                        && text
                            .get(next..next + found)
                            .is_some_and(|s| s.contains(':'))
                    {
                        return false;
                    }
                    next += found;
                }
                star = Some((after, next, colon));
                ti = after;
                pos = next;
            }
            None => return false,
        }
    }
}

/// The first occurrence of `needle` in `hay`, as `str::find` gives it. On
/// the short texts policies match (ARNs, keys), scanning for the first byte
/// beats the two-way searcher, whose setup runs on every call. A match
/// starts on a character boundary: `needle` starts with one, and UTF-8
/// never puts one inside a character.
fn find(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    let Some(&first) = n.first() else {
        return Some(0);
    };
    let last = h.len().checked_sub(n.len())?;
    let mut from = 0;
    while from <= last {
        let at = from + h.get(from..=last)?.iter().position(|&b| b == first)?;
        if h.get(at..at + n.len()) == Some(n) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// A pattern without variables, classified once so that the common shapes
/// (`*`, exact text, `prefix*`) match without tokenising.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// `*`: everything.
    Any,
    /// No wildcard: equality.
    Exact(Arc<str>),
    /// `prefix*` with no other wildcard.
    Prefix(Arc<str>),
    /// Anything else; tokens kept owned.
    Glob(Box<[OwnedTok]>),
}

/// An owned wildcard token (see [`Tok`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OwnedTok {
    Lit(Arc<str>),
    Star,
    Quest,
}

impl Pattern {
    /// Classifies a plain pattern.
    pub fn compile(pattern: &str) -> Self {
        if pattern == "*" {
            return Pattern::Any;
        }
        match pattern.find(['*', '?']) {
            None => Pattern::Exact(intern(pattern)),
            Some(i) if i + 1 == pattern.len() && pattern.ends_with('*') => {
                Pattern::Prefix(intern(pattern.get(..i).unwrap_or_default()))
            }
            Some(_) => Pattern::Glob(
                tokenize(pattern)
                    .iter()
                    .map(|t| match t {
                        Tok::Lit(s) => OwnedTok::Lit(intern(s)),
                        Tok::Star { .. } => OwnedTok::Star,
                        Tok::Quest { .. } => OwnedTok::Quest,
                    })
                    .collect(),
            ),
        }
    }

    /// Whether `text` matches, case-sensitively.
    #[inline]
    pub fn matches(&self, text: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(e) => **e == *text,
            Pattern::Prefix(p) => text.starts_with(&**p),
            Pattern::Glob(toks) => {
                let toks: Toks<'_> = toks
                    .iter()
                    .map(|t| match t {
                        OwnedTok::Lit(s) => Tok::Lit(s),
                        OwnedTok::Star => Tok::Star { colon: true },
                        OwnedTok::Quest => Tok::Quest { colon: true },
                    })
                    .collect();
                matches(&toks, text)
            }
        }
    }
}

/// Matches a plain pattern (no variables) against text, case-sensitively.
pub fn matches_str(pattern: &str, text: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if !pattern.contains(['*', '?']) {
        return pattern == text;
    }
    matches(&tokenize(pattern), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_agrees_with_str_find() {
        let texts = [
            "",
            "a",
            "arn:aws:ec2:us-east-1:111111111111:instance/i-0abc",
            "aaab",
            "abababc",
            "héllo wörld ünïcode é",
            "::::",
        ];
        let needles = [
            "",
            "a",
            "b",
            "ab",
            "abc",
            "aab",
            ":",
            "::",
            "instance/",
            "i-0abc",
            "é",
            "ö",
            "wörld",
            "zzz",
            "c:",
            "111111111111:",
        ];
        for t in texts {
            for n in needles {
                assert_eq!(find(t, n), t.find(n), "find({t:?}, {n:?})");
            }
        }
    }

    #[test]
    fn literal_and_wildcards() {
        assert!(matches_str("abc", "abc"));
        assert!(!matches_str("abc", "abcd"));
        assert!(matches_str("a*c", "abbbc"));
        assert!(matches_str("a*c", "ac"));
        assert!(!matches_str("a*c", "acb"));
        assert!(matches_str("a?c", "abc"));
        assert!(!matches_str("a?c", "ac"));
        assert!(matches_str("*", ""));
        assert!(matches_str("**", "x"));
        assert!(matches_str("a*b*c", "a-b-b-c"));
        assert!(!matches_str("a*b*c", "a-b-b-"));
        assert!(matches_str("?é?", "aéb"));
        assert!(matches_str("ec2:describe*", "ec2:describeinstances"));
        assert!(matches_str("*log*/*", "Production-logs/report.csv"));
        assert!(!matches_str("*log*/*", "Production/app.log.gz"));
        assert!(matches_str("a*bc", "abcbc"));
        for (p, t) in [
            ("*", "x"),
            ("ab", "ab"),
            ("ab*", "abc"),
            ("a?c*", "abcd"),
            ("*b", "ab"),
        ] {
            assert_eq!(Pattern::compile(p).matches(t), matches_str(p, t), "{p} {t}");
        }
        assert!(!Pattern::compile("ab*").matches("a"));
    }

    #[test]
    fn restricted_star_stops_at_colon() {
        let toks = [Tok::Lit("a:"), Tok::Star { colon: false }, Tok::Lit(":c")];
        assert!(matches(&toks, "a:bbb:c"));
        assert!(!matches(&toks, "a:b:b:c"));
    }
}
