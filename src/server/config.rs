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
    /// JSON logs on stderr.
    pub log_json: bool,
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
