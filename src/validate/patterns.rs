//! Wildcard pattern algebra for validation, over IAM globs (`*` any run,
//! `?` one character) and catalog ARN templates (`${Placeholder}`):
//! whether two patterns can match a common string ([`may_overlap`]), and
//! whether one pattern matches everything another does ([`covers`]).
//! Both answer conservatively in the direction that avoids false findings.

/// Which characters a wildcard element accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Any,
    NoColon,
}

impl Class {
    fn accepts(self, c: char) -> bool {
        self == Class::Any || c != ':'
    }
}

/// One element of a pattern over characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum El {
    Char(char),
    /// Exactly one character of the class.
    One(Class),
    /// Any run (possibly empty) of characters of the class.
    Many(Class),
}

/// A pattern compiled to elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern(Vec<El>);

impl Pattern {
    /// An IAM glob (`Resource` or `Action` element). With `variables`,
    /// `${...}` policy variables stand for any text.
    pub fn glob(s: &str, variables: bool) -> Self {
        let mut out = Vec::with_capacity(s.len());
        let mut rest = s;
        while let Some(c) = rest.chars().next() {
            if variables
                && rest.starts_with("${")
                && let Some(close) = rest.find('}')
            {
                out.push(El::Many(Class::Any));
                rest = rest.get(close + 1..).unwrap_or("");
                continue;
            }
            out.push(match c {
                '*' => El::Many(Class::Any),
                '?' => El::One(Class::Any),
                c => El::Char(c),
            });
            rest = rest.get(c.len_utf8()..).unwrap_or("");
        }
        Self(out)
    }

    /// A catalog ARN template: each `${...}` placeholder is a non-empty run
    /// without `:`. Unlike `ResourceTypeDef::matches_arn`, which lets the
    /// resource id hold anything, ids are taken to hold no `:` (no EC2 id
    /// does): otherwise `arn:aws:ec2:*:*:volume/*` could "match" an instance
    /// whose id ends in `:volume/x`, and no ARN pattern would ever be flagged.
    pub fn template(t: &str) -> Self {
        let mut out = Vec::with_capacity(t.len());
        let mut i = 0usize;
        while let Some(rest) = t.get(i..) {
            let Some(c) = rest.chars().next() else { break };
            if rest.starts_with("${")
                && let Some(close) = rest.find('}')
            {
                out.push(El::One(Class::NoColon));
                out.push(El::Many(Class::NoColon));
                i += close + 1;
                continue;
            }
            out.push(El::Char(c));
            i += c.len_utf8();
        }
        Self(out)
    }
}

/// Whether some string matches both patterns.
pub(crate) fn may_overlap(a: &Pattern, b: &Pattern) -> bool {
    let (a, b) = (&a.0, &b.0);
    let width = b.len() + 1;
    let mut seen = vec![false; (a.len() + 1) * width];
    let mut stack = vec![(0usize, 0usize)];
    while let Some((i, j)) = stack.pop() {
        let Some(slot) = seen.get_mut(i * width + j) else {
            continue;
        };
        if *slot {
            continue;
        }
        *slot = true;
        let (ea, eb) = (a.get(i).copied(), b.get(j).copied());
        if ea.is_none() && eb.is_none() {
            return true;
        }
        // A run may end here without consuming anything.
        if let Some(El::Many(_)) = ea {
            stack.push((i + 1, j));
        }
        if let Some(El::Many(_)) = eb {
            stack.push((i, j + 1));
        }
        // Or both consume one common character.
        let (Some(ea), Some(eb)) = (ea, eb) else {
            continue;
        };
        let common = match (ea, eb) {
            (El::Char(x), El::Char(y)) => x == y,
            (El::Char(x), El::One(c) | El::Many(c)) | (El::One(c) | El::Many(c), El::Char(x)) => {
                c.accepts(x)
            }
            // Both classes accept ordinary letters.
            _ => true,
        };
        if !common {
            continue;
        }
        let ni = if matches!(ea, El::Many(_)) { i } else { i + 1 };
        let nj = if matches!(eb, El::Many(_)) { j } else { j + 1 };
        if (ni, nj) != (i, j) {
            stack.push((ni, nj));
        }
    }
    false
}

/// Whether every string that glob `b` matches is also matched by glob `a`
/// (both plain globs, compared as written). Sound, not complete: `true`
/// is always right.
pub(crate) fn covers(a: &str, b: &str) -> bool {
    let a = Pattern::glob(a, false).0;
    let b = Pattern::glob(b, false).0;
    let width = b.len() + 1;
    // memo[i][j]: whether a[i..] covers b[j..]; filled from the ends backwards.
    let mut memo = vec![false; (a.len() + 1) * width];
    for i in (0..=a.len()).rev() {
        for j in (0..=b.len()).rev() {
            let at = |i: usize, j: usize| memo.get(i * width + j).copied().unwrap_or(false);
            let v = match (a.get(i), b.get(j)) {
                (None, None) => true,
                (None, Some(_)) => false,
                // `*` matches nothing more of b, or swallows b's next element.
                (Some(El::Many(_)), _) => at(i + 1, j) || (j < b.len() && at(i, j + 1)),
                (Some(_), None) => false,
                (Some(El::One(_)), Some(El::Char(_) | El::One(_))) => at(i + 1, j + 1),
                (Some(El::Char(x)), Some(El::Char(y))) => x == y && at(i + 1, j + 1),
                _ => false,
            };
            if let Some(slot) = memo.get_mut(i * width + j) {
                *slot = v;
            }
        }
    }
    memo.first().copied().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlap(glob: &str, template: &str) -> bool {
        may_overlap(&Pattern::glob(glob, true), &Pattern::template(template))
    }

    const INSTANCE: &str = "arn:${Partition}:ec2:${Region}:${Account}:instance/${InstanceId}";
    const IMAGE: &str = "arn:${Partition}:ec2:${Region}::image/${ImageId}";

    #[test]
    fn globs_against_templates() {
        assert!(overlap("arn:aws:ec2:*:*:instance/*", INSTANCE));
        assert!(overlap(
            "arn:aws:ec2:us-east-1:111122223333:instance/i-1",
            INSTANCE
        ));
        assert!(overlap("*", INSTANCE));
        assert!(overlap("arn:aws:ec2:*", INSTANCE));
        assert!(overlap("arn:*:*:*:*:inst*", INSTANCE));
        assert!(overlap("arn:aws:ec2:??-*:*:instance/a/b", INSTANCE));
        assert!(overlap("arn:aws:ec2:*:instance/*", INSTANCE));
        assert!(!overlap("arn:aws:ec2:*:*:instance/a:b", INSTANCE));
        assert!(overlap(
            "arn:aws:ec2:*:*:instance/${aws:username}",
            INSTANCE
        ));
        assert!(!overlap("arn:aws:ec2:*:*:volume/*", INSTANCE));
        assert!(!overlap("arn:aws:ec2:us-east-1::instance/i-1", INSTANCE));
        assert!(!overlap("arn:aws:ec2:a:b:c:instance/i-1", INSTANCE));
        assert!(!overlap("arn:aws:ec2:*:*:instance/", INSTANCE));
        assert!(!overlap(
            "arn:aws:ec2:us-east-1:111122223333:image/*",
            IMAGE
        ));
        assert!(overlap("arn:aws:ec2:us-east-1::image/ami-1", IMAGE));
        assert!(overlap("arn:aws:ec2:*:*:image/*", IMAGE));
    }

    #[test]
    fn glob_coverage() {
        assert!(covers("ec2:*", "ec2:runinstances"));
        assert!(covers("ec2:*", "ec2:describe*"));
        assert!(covers("*", "ec2:describe*"));
        assert!(covers("ec2:describe*", "ec2:describe?nstances"));
        assert!(covers("ec2:d?scribe*", "ec2:describe*"));
        assert!(covers("a*b*c", "a-b-c*c"));
        assert!(!covers("ec2:describe*", "ec2:*"));
        assert!(!covers("a?", "a*"));
        assert!(!covers("x*y", "x*"));
        assert!(!covers("ec2:runinstances", "ec2:run*"));
        assert!(covers("ec2:runinstances", "ec2:runinstances"));
    }
}
