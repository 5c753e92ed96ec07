//! The bundle layout: the one table of every path a bundle may hold, and the
//! check that refuses anything else. A misspelled name (`organisation.json`,
//! `test/`, `iam/acct.json`) would otherwise be ignored and silently drop
//! policies or tests, so an unknown entry refuses the whole bundle, with its
//! path.
//!
//! Hidden entries (a name that starts with `.`, at any depth) are not part
//! of a bundle and are skipped without being read: version control
//! (`.git/`), desktop litter (`.DS_Store`, `._*`), editor swap files, and the
//! `..data` links of a Kubernetes volume live there. A file that should be
//! read is never hidden, so skipping them cannot drop a policy.
//!
//! A later feature that adds bundle data adds a row to [`LAYOUT`].

use crate::bundle::err::BundleError;
use crate::policy::{AccountId, Region};

/// One kind of path a bundle may hold.
#[derive(Debug, Clone, Copy)]
pub struct Known {
    /// `/`-separated segments: a literal name, or a placeholder
    /// (`{account}`: a 12-digit account id, `{region}`: an AWS region name,
    /// `{name}`: any name that is not hidden) with an optional literal
    /// suffix (`{account}.json`).
    pub pattern: &'static str,
    /// What the file holds, for messages and documentation.
    pub holds: &'static str,
}

/// Every path a bundle may hold (files; folders are the prefixes).
pub const LAYOUT: &[Known] = &[
    Known {
        pattern: "manifest.json",
        holds: "the bundle's revision",
    },
    Known {
        pattern: "organization.json",
        holds: "the organization tree with its SCPs and RCPs",
    },
    Known {
        pattern: "organization/describe-organization.json",
        holds: "`aws organizations describe-organization` output",
    },
    Known {
        pattern: "organization/list-roots.json",
        holds: "`aws organizations list-roots` output",
    },
    Known {
        pattern: "organization/parents/{name}/list-organizational-units-for-parent.json",
        holds: "`aws organizations list-organizational-units-for-parent` output",
    },
    Known {
        pattern: "organization/parents/{name}/list-accounts-for-parent.json",
        holds: "`aws organizations list-accounts-for-parent` output",
    },
    Known {
        pattern: "organization/policies/{name}/describe-policy.json",
        holds: "`aws organizations describe-policy` output",
    },
    Known {
        pattern: "organization/policies/{name}/list-targets-for-policy.json",
        holds: "`aws organizations list-targets-for-policy` output",
    },
    Known {
        pattern: "resource-policies.json",
        holds: "resource policies",
    },
    Known {
        pattern: "credentials.json",
        holds: "access keys",
    },
    Known {
        pattern: "iam/{account}.json",
        holds: "`aws iam get-account-authorization-details` output of one account",
    },
    Known {
        pattern: "ec2/{account}/{region}/{name}.json",
        holds: "`aws ec2 describe-*` output",
    },
    Known {
        pattern: "iam-roles/{account}.json",
        holds: "`aws iam list-roles` output of one account (roles' `MaxSessionDuration`)",
    },
    Known {
        pattern: "tests/{name}.json",
        holds: "policy tests that must pass before the bundle serves",
    },
];

/// Whether a file or folder name is hidden (skipped, never read).
pub fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// Checks that `rel` (a `/`-separated path inside the bundle) is a file
/// (`is_dir` false) or folder the layout knows.
pub fn check(rel: &str, is_dir: bool) -> Result<(), BundleError> {
    let segments: Vec<&str> = rel.split('/').collect();
    let known = LAYOUT.iter().any(|k| {
        let pattern: Vec<&str> = k.pattern.split('/').collect();
        let fits = if is_dir {
            segments.len() < pattern.len()
        } else {
            segments.len() == pattern.len()
        };
        fits && segments
            .iter()
            .zip(&pattern)
            .all(|(s, p)| segment_matches(p, s))
    });
    if known {
        return Ok(());
    }
    let shown = if is_dir {
        format!("{rel}/")
    } else {
        rel.to_owned()
    };
    Err(BundleError::Layout {
        path: shown,
        message: format!(
            "not part of the bundle layout; {}",
            expected_at(&segments[..segments.len().saturating_sub(1)])
        ),
    })
}

/// What may sit in the folder `parent` (segments), for a refusal message.
fn expected_at(parent: &[&str]) -> String {
    let mut names: Vec<String> = Vec::new();
    for k in LAYOUT {
        let pattern: Vec<&str> = k.pattern.split('/').collect();
        let Some(next) = pattern.get(parent.len()) else {
            continue;
        };
        let inside = parent
            .iter()
            .zip(&pattern)
            .all(|(s, p)| segment_matches(p, s));
        if !inside {
            continue;
        }
        let mut shown = human(next);
        if pattern.len() > parent.len() + 1 {
            shown.push('/');
        }
        if !names.contains(&shown) {
            names.push(shown);
        }
    }
    let place = if parent.is_empty() {
        "the bundle root".to_owned()
    } else {
        format!("`{}/`", parent.join("/"))
    };
    if names.is_empty() {
        format!("nothing belongs in {place}")
    } else {
        format!("{place} holds only {}", names.join(", "))
    }
}

/// A pattern segment as an operator reads it (`<account-id>.json`).
fn human(pattern: &str) -> String {
    pattern
        .replace("{account}", "<12-digit account id>")
        .replace("{region}", "<region>")
        .replace("{name}", "<name>")
}

fn segment_matches(pattern: &str, segment: &str) -> bool {
    let Some(rest) = pattern.strip_prefix('{') else {
        return pattern == segment;
    };
    let Some((placeholder, suffix)) = rest.split_once('}') else {
        return false;
    };
    let Some(stem) = segment.strip_suffix(suffix) else {
        return false;
    };
    match placeholder {
        "account" => is_account_id(stem),
        "region" => Region::is_valid(stem),
        "name" => !stem.is_empty() && !is_hidden(stem),
        _ => false,
    }
}

/// A 12-digit AWS account id ([`AccountId`]'s rule).
pub fn is_account_id(s: &str) -> bool {
    AccountId::is_valid(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_paths_pass() {
        for rel in [
            "manifest.json",
            "organization.json",
            "resource-policies.json",
            "credentials.json",
            "iam/111122223333.json",
            "ec2/111122223333/us-east-1/describe-instances.json",
            "ec2/111122223333/us-gov-west-1/x.json",
            "tests/bob.json",
        ] {
            assert!(check(rel, false).is_ok(), "{rel}");
        }
        for dir in [
            "iam",
            "ec2",
            "ec2/111122223333",
            "ec2/111122223333/eu-west-3",
            "tests",
        ] {
            assert!(check(dir, true).is_ok(), "{dir}/");
        }
    }

    #[test]
    fn misspelled_and_misplaced_paths_are_refused_with_their_path() {
        for (rel, is_dir) in [
            ("organisation.json", false),
            ("test", true),
            ("README.md", false),
            ("iam", false),
            ("tests", false),
            ("manifest.json", true),
            ("iam/acct.json", false),
            ("iam/11112222333.json", false),
            ("iam/111122223333.JSON", false),
            ("iam/111122223333", true),
            ("iam/111122223333.json.bak", false),
            ("tests/sub", true),
            ("tests/notes.txt", false),
            ("ec2/prod", true),
            ("ec2/111122223333/useast1", true),
            ("ec2/111122223333/us-east-1/x.yaml", false),
            ("ec2/111122223333/us-east-1/deeper", true),
            ("ec2/111122223333/describe-instances.json", false),
        ] {
            let err = check(rel, is_dir).err();
            let msg = err.map(|e| e.to_string()).unwrap_or_default();
            assert!(msg.contains(rel), "{rel}: {msg}");
        }
    }

    #[test]
    fn refusals_say_what_belongs_there() {
        let msg = check("organisation.json", false)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.contains("organization.json") && msg.contains("iam/"),
            "{msg}"
        );
        let msg = check("iam/acct.json", false)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("<12-digit account id>.json"), "{msg}");
        let msg = check("tests/x/y.json", false)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("nothing belongs in `tests/x/`"), "{msg}");
    }

    #[test]
    fn hidden_names() {
        assert!(is_hidden(".git") && is_hidden("..data") && is_hidden("._iam"));
        assert!(!is_hidden("iam"));
        // Hidden names never match a placeholder either.
        assert!(check("tests/.x.json", false).is_err());
    }
}
