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
    #[error("bundle too large: {0}")]
    TooLarge(String),
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
}
