//! Errors of the bundle stage. Each names the file and the JSON path, so an
//! operator can fix a refused bundle without guessing, and keeps the error
//! that caused it (`std::error::Error::source`) where there is one: an I/O
//! error, a JSON error, a policy parse error. The cause is shared (`Arc`)
//! so that a refused bundle can be kept and reported more than once.

use std::error::Error as StdError;
use std::sync::Arc;

use thiserror::Error;

/// The cause a [`BundleError`] keeps. Not an error itself, so that
/// `source()` yields the cause (which `downcast_ref` finds), not a wrapper.
#[derive(Clone)]
pub struct Cause(Arc<dyn StdError + Send + Sync>);

impl std::ops::Deref for Cause {
    type Target = dyn StdError + Send + Sync + 'static;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Debug for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A bundle that was refused; the running snapshot keeps serving.
#[derive(Debug, Clone, Error)]
pub enum BundleError {
    /// A file or archive that could not be read; `source` is why.
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: Cause,
    },
    /// Content that is not what the layout says it must be, at a JSON path
    /// of a file; `source` is the error found there, when one was.
    #[error("{file}: at `{path}`: {message}")]
    Invalid {
        file: String,
        path: String,
        message: String,
        #[source]
        source: Option<Cause>,
    },
    #[error("bundle test failed: {file}: {test}: expected {expected}, got {got}")]
    TestFailed {
        file: String,
        test: String,
        expected: String,
        got: String,
    },
    /// A path the bundle layout does not know, or an entry that is not a
    /// regular file or folder inside the bundle.
    #[error("`{path}`: {message}")]
    Layout { path: String, message: String },
    #[error("bundle too large: `{path}`: the bundle exceeds {limit} bytes")]
    TooLarge { path: String, limit: u64 },
    #[error(
        "`{source_name}`: the bundle holds no principals (no users or roles in `iam/`); \
         start with --allow-empty-bundle to serve it anyway"
    )]
    Empty { source_name: String },
    #[error("loading the bundle took longer than {seconds} s; the load was abandoned")]
    Timeout { seconds: f64 },
    #[error("{stuck} earlier bundle loads are still running; not starting another")]
    Busy { stuck: usize },
    /// `--bundle-verify-key` is set and the bundle's signature or manifest
    /// does not hold.
    #[error("`{source_name}`: bundle signature check failed: {reason}")]
    Signature {
        source_name: String,
        #[source]
        reason: crate::bundle::source::signature::SignatureError,
    },
    /// The candidate changes more sampled decisions than allowed (issue 15:
    /// decision-diff gated reloads).
    #[error(
        "the bundle changes {changed} of {sampled} sampled decisions; at most {limit} allowed \
         ({limit_source})"
    )]
    DecisionDiff {
        changed: usize,
        sampled: usize,
        limit: u64,
        limit_source: &'static str,
    },
}

impl BundleError {
    pub(crate) fn invalid(
        file: impl Into<String>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        BundleError::Invalid {
            file: file.into(),
            path: path.into(),
            message: message.into(),
            source: None,
        }
    }

    /// [`BundleError::Invalid`] with `source` as its cause and its text as
    /// the message.
    pub(crate) fn invalid_from(
        file: impl Into<String>,
        path: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        BundleError::Invalid {
            file: file.into(),
            path: path.into(),
            message: source.to_string(),
            source: Some(Cause(Arc::new(source))),
        }
    }

    /// Keeps `cause` as the source of an [`BundleError::Invalid`] (other
    /// variants are returned unchanged): the message stays the one given.
    pub(crate) fn caused_by(mut self, cause: impl StdError + Send + Sync + 'static) -> Self {
        if let BundleError::Invalid { source, .. } = &mut self {
            *source = Some(Cause(Arc::new(cause)));
        }
        self
    }

    /// [`BundleError::Io`]: `path` could not be read because of `e` (an
    /// error, or a sentence where there is none).
    pub(crate) fn io(
        path: impl Into<String>,
        e: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        BundleError::Io {
            path: path.into(),
            source: Cause(Arc::from(e.into())),
        }
    }

    pub(crate) fn layout(path: impl Into<String>, message: impl Into<String>) -> Self {
        BundleError::Layout {
            path: path.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use serde_json::json;

    use super::*;
    use crate::bundle::files::BundleFiles;

    fn refused(files: &[(&str, &str)]) -> BundleError {
        match crate::bundle::load_files(&BundleFiles::from_pairs(files.iter().copied()), "t") {
            Ok(_) => panic!("the bundle was accepted"),
            Err(e) => e,
        }
    }

    /// Issue 12: a refused bundle keeps the error that caused it, and the
    /// message still names the file and the JSON path.
    #[test]
    fn policy_errors_keep_their_parse_error() {
        let account = json!({"UserDetailList": [{"UserName": "u",
            "Arn": "arn:aws:iam::111122223333:user/u",
            "UserPolicyList": [{"PolicyName": "p", "PolicyDocument":
                {"Version": "2012-10-17", "Statement": [{"Effect": "Maybe",
                 "Action": "ec2:*", "Resource": "*"}]}}]}],
            "GroupDetailList": [], "RoleDetailList": [], "Policies": []})
        .to_string();
        let e = refused(&[("iam/111122223333.json", &account)]);
        let shown = e.to_string();
        assert!(
            shown.starts_with("iam/111122223333.json: at `$.UserDetailList[0]"),
            "{shown}"
        );
        let cause = e.source().expect("a source");
        assert!(
            cause.downcast_ref::<crate::policy::ParseError>().is_some(),
            "{cause:?}"
        );
    }

    #[test]
    fn json_errors_keep_the_serde_error() {
        let e = refused(&[("iam/111122223333.json", "{\"UserDetailList\": 7}")]);
        assert!(e.to_string().contains("at `$.UserDetailList`"), "{e}");
        let cause = e.source().expect("a source");
        assert!(
            cause.downcast_ref::<serde_json::Error>().is_some(),
            "{cause:?}"
        );
    }

    #[test]
    fn io_errors_keep_the_io_error() {
        let missing =
            std::env::temp_dir().join(format!("iamgate-no-such-{}", uuid::Uuid::new_v4()));
        let Err(e) = crate::bundle::load_path(&missing) else {
            panic!("a missing bundle loaded");
        };
        assert!(matches!(e, BundleError::Io { .. }), "{e:?}");
        let io = e
            .source()
            .and_then(|c| c.downcast_ref::<std::io::Error>())
            .expect("an io::Error source");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(
            e.to_string(),
            format!("cannot read `{}`: {io}", missing.display())
        );
        // A sentence where there is no error still reads as before.
        let e = BundleError::io("x", "no bundle has been fetched");
        assert_eq!(e.to_string(), "cannot read `x`: no bundle has been fetched");
    }
}
