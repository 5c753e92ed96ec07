//! iamgate, cedar-policy and regorus on the same generated IAM scenario
//! (`benches/support/scenario.rs`), each doing the same work: the policy
//! translations, one adapter per engine, and the agreement check that must
//! pass before anything is timed. The bench is `benches/engines.rs`; run it
//! with `benches/compare/run.sh`.
//!
//! A crate of its own (a workspace member outside the default members) so
//! that iamgate's own tests, benches and examples never build cedar-policy
//! or regorus.

#[path = "../../support/scenario.rs"]
pub mod scenario;

#[path = "../../support/iamgate.rs"]
pub mod iam;

pub mod cedar;
pub mod rego;

use iamgate::engine::Outcome;

use crate::iam::{Attach, Iam};
use crate::scenario::{Req, Scenario, User};

pub type BoxError = Box<dyn std::error::Error>;

/// `*`-only glob (the scenario's patterns have no `?`).
pub fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for m in middle {
        match rest.find(m) {
            Some(i) => rest = rest.get(i + m.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

fn has_wildcard(p: &str) -> bool {
    p.contains(['*', '?'])
}

/// Policy variables are resolved when translating for Cedar and Rego: every
/// identity policy is attached to one known user.
fn substitute(pattern: &str, user: Option<&User>) -> String {
    match user {
        Some(u) => pattern.replace("${aws:username}", &u.name),
        None => pattern.to_owned(),
    }
}

/// The three engines, each with the subject's policies both ways.
pub struct Engines {
    pub iam: Iam,
    pub cedar: cedar::Cedar,
    pub rego: rego::Rego,
}

impl Engines {
    pub fn new(s: &Scenario) -> Result<Self, BoxError> {
        Ok(Self {
            iam: Iam::new(s)?,
            cedar: cedar::Cedar::new(s, &scenario::checks(s))?,
            rego: rego::Rego::new(s)?,
        })
    }

    /// Every engine must give the expected outcome for every check request
    /// with per-principal sets, and for the benched ones with everything
    /// attached to the subject (more of the others would be allowed then).
    pub fn verify(&mut self, s: &Scenario) -> Result<(), BoxError> {
        let n = s.identity.len();
        let all = scenario::checks(s);
        let benched = scenario::benched(s);
        for (attach, reqs) in [(Attach::PerPrincipal, &all), (Attach::OneSet, &benched)] {
            for r in reqs {
                let how = match attach {
                    Attach::PerPrincipal => "per principal",
                    Attach::OneSet => "one set",
                };
                expect(
                    n,
                    &format!("iamgate ({how})"),
                    r,
                    self.iam.decide(attach, r),
                )?;
                let (got, errors) = self.cedar.decide(attach, r)?;
                if errors > 0 {
                    return Err(format!(
                        "{n} policies, request `{}`: {errors} Cedar policies failed to evaluate ({how})",
                        r.name
                    )
                    .into());
                }
                expect(n, &format!("cedar ({how})"), r, got)?;
                expect(
                    n,
                    &format!("regorus ({how})"),
                    r,
                    self.rego.decide(attach, r)?,
                )?;
            }
        }
        Ok(())
    }
}

fn expect(n: usize, engine: &str, r: &Req, got: Outcome) -> Result<(), BoxError> {
    let want = r.expect.as_str();
    if got.as_str() == want {
        Ok(())
    } else {
        Err(format!(
            "{n} policies, request `{}` ({} on {}): {engine} decides {got}, the scenario expects {want}",
            r.name, r.action, r.resource
        )
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engines_agree_on_a_small_scenario() -> Result<(), BoxError> {
        let s = scenario::generate(30);
        Engines::new(&s)?.verify(&s)
    }

    #[test]
    fn glob_matches_stars_only_where_they_are() {
        assert!(glob("ec2:describe*", "ec2:describeinstances"));
        assert!(glob("a*b*c", "aXbYc"));
        assert!(!glob("a*b*c", "aXbY"));
        assert!(!glob("ec2:get*", "ec2:describeinstances"));
        assert!(glob("*", ""));
    }
}
