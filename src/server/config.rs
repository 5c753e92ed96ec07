//! `iamgate serve` settings: listeners, bundle source, limits, telemetry.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `serve` needs, resolved from flags, environment and defaults.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Bundle directory or `.tar.gz`; `None` serves the built-in demo.
    pub bundle: Option<PathBuf>,
    pub grpc_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// Start without a valid bundle and become ready when one appears.
    pub wait_for_bundle: bool,
    /// Watch the bundle path for changes.
    pub watch: bool,
    pub limits: Limits,
    /// Decision log sink: `None` (off), `-` (stdout) or a file path.
    pub decision_log: Option<String>,
    pub decision_log_queue: usize,
    /// Header carrying the caller's principal ARN for ext_authz.
    pub principal_header: String,
    /// ext_authz: peer certificate URI SAN prefix → principal ARN template,
    /// tried in order before the principal header.
    pub uri_san_principals: Vec<UriSanMapping>,
    /// JSON logs on stderr.
    pub log_json: bool,
    /// TLS for the API listeners; `None` serves plaintext.
    pub tls: Option<crate::server::tls::TlsFiles>,
}

/// Request limits; anything beyond them gets a clear 4xx / INVALID_ARGUMENT.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_batch: usize,
    pub max_depth: usize,
    pub max_headers: usize,
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_batch: 100,
            max_depth: 32,
            max_headers: 100,
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// ext_authz: maps a peer certificate URI SAN (Envoy's
/// `source.principal`) that starts with `prefix` to a principal ARN;
/// `{rest}` in the template stands for the SAN after the prefix. Written
/// `PREFIX=TEMPLATE`, e.g.
/// `spiffe://example.org/sa/=arn:aws:sts::111111111111:assumed-role/{rest}/mesh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriSanMapping {
    pub prefix: String,
    pub template: String,
}

/// Why a `PREFIX=TEMPLATE` URI SAN mapping does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriSanMappingError {
    #[error("expected PREFIX=TEMPLATE, got `{0}`")]
    Syntax(String),
    #[error("the URI SAN prefix is empty")]
    EmptyPrefix,
    #[error("the principal template `{0}` is not an ARN (`arn:...`)")]
    NotArn(String),
}

impl std::str::FromStr for UriSanMapping {
    type Err = UriSanMappingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (prefix, template) = s
            .split_once('=')
            .ok_or_else(|| UriSanMappingError::Syntax(s.to_owned()))?;
        let (prefix, template) = (prefix.trim(), template.trim());
        if prefix.is_empty() {
            return Err(UriSanMappingError::EmptyPrefix);
        }
        if !template.starts_with("arn:") {
            return Err(UriSanMappingError::NotArn(template.to_owned()));
        }
        Ok(Self {
            prefix: prefix.to_owned(),
            template: template.to_owned(),
        })
    }
}
