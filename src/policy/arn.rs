//! ARN handling: splitting into fields and the `ArnLike`/`ArnEquals`
//! comparison, which matches each of the six colon-separated fields on its
//! own (wildcards cannot cross a colon except in the resource field).

use crate::policy::wildcard::{self, Tok};

/// The fields of an ARN: `arn:partition:service:region:account:resource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// Splits an ARN; `None` when it has fewer than six fields. One pass
    /// over the bytes: every request parses its principal and resource.
    pub fn parse(s: &'a str) -> Option<Self> {
        let mut colons = [0usize; 5];
        let mut found = 0;
        for (i, b) in s.bytes().enumerate() {
            if b == b':'
                && let Some(slot) = colons.get_mut(found)
            {
                *slot = i;
                found += 1;
                if found == colons.len() {
                    break;
                }
            }
        }
        let [c0, c1, c2, c3, c4] = colons;
        if found < 5 || s.get(..c0)? != "arn" {
            return None;
        }
        // Colons are ASCII, so every cut is on a character boundary.
        Some(Self {
            partition: s.get(c0 + 1..c1)?,
            service: s.get(c1 + 1..c2)?,
            region: s.get(c2 + 1..c3)?,
            account: s.get(c3 + 1..c4)?,
            resource: s.get(c4 + 1..)?,
        })
    }
}

/// `ArnLike`: field-by-field wildcard match of `value` against the
/// resolved pattern tokens. A pattern that is exactly `*` matches any ARN.
pub fn arn_like(tokens: &mut [Tok<'_>], value: &str) -> bool {
    if let [Tok::Star { .. }] = tokens {
        return true;
    }
    if Arn::parse(value).is_none() {
        return false;
    }
    // Wildcards before the pattern's fifth colon stay inside their field.
    let mut colons = 0usize;
    for t in tokens.iter_mut() {
        match t {
            Tok::Lit(s) => colons += s.matches(':').count(),
            Tok::Star { colon } | Tok::Quest { colon } => *colon = colons >= 5,
        }
    }
    if colons < 5 {
        return false;
    }
    wildcard::matches(tokens, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::wildcard::tokenize;

    fn like(p: &str, v: &str) -> bool {
        arn_like(&mut tokenize(p), v)
    }

    #[test]
    fn parse_splits_six_fields() {
        let a = Arn::parse("arn:aws:ec2:us-east-1:111122223333:instance/i-1:x");
        assert_eq!(
            a,
            Some(Arn {
                partition: "aws",
                service: "ec2",
                region: "us-east-1",
                account: "111122223333",
                resource: "instance/i-1:x",
            })
        );
        let empty = Arn::parse("arn:::::");
        assert_eq!(empty.map(|a| (a.partition, a.resource)), Some(("", "")));
        for bad in [
            "",
            "arn",
            "arn:aws:ec2:r:a",
            "nar:aws:ec2:r:a:x",
            "arnx:aws:ec2:r:a:x",
        ] {
            assert_eq!(Arn::parse(bad), None, "{bad}");
        }
        assert_eq!(
            Arn::parse("arn:aws:s3:::bücket/ö").map(|a| a.resource),
            Some("bücket/ö")
        );
    }

    #[test]
    fn field_by_field() {
        let v = "arn:aws:ec2:us-east-1:111122223333:instance/i-1";
        assert!(like("arn:aws:ec2:*:111122223333:instance/*", v));
        assert!(like("arn:aws:ec2:us-east-1:*:*", v));
        assert!(!like("arn:aws:ec2:*:instance/*", v));
        assert!(!like("arn:aws:ec2:*", v));
        assert!(like("arn:aws:*:*:*:*", v));
        assert!(like("*", v));
        assert!(!like(
            "arn:aws:ec2:us-east-1:111122223333:instance/i-1",
            "not-an-arn"
        ));
        assert!(like(
            "arn:aws:lambda:*:*:function:*",
            "arn:aws:lambda:us-east-1:1:function:f:alias"
        ));
    }
}
