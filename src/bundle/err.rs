//! Errors of the bundle stage. Each names the file and the JSON path, so an
//! operator can fix a refused bundle without guessing.

use thiserror::Error;

/// A bundle that was refused; the running snapshot keeps serving.
#[derive(Debug, Clone, Error)]
pub enum BundleError {
    #[error("cannot read `{path}`: {message}")]
    Io { path: String, message: String },
    #[error("{file}: at `{path}`: {message}")]
    Invalid {
        file: String,
        path: String,
        message: String,
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
        }
    }

    pub(crate) fn io(path: impl Into<String>, e: impl std::fmt::Display) -> Self {
        BundleError::Io {
            path: path.into(),
            message: e.to_string(),
        }
    }

    pub(crate) fn layout(path: impl Into<String>, message: impl Into<String>) -> Self {
        BundleError::Layout {
            path: path.into(),
            message: message.into(),
        }
    }
}
