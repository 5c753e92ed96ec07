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
    /// Splits an ARN; `None` when it has fewer than six fields.
    pub fn parse(s: &'a str) -> Option<Self> {
        let mut parts = s.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        Some(Self {
            partition: parts.next()?,
            service: parts.next()?,
            region: parts.next()?,
            account: parts.next()?,
            resource: parts.next()?,
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
