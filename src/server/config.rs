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
    /// ext_authz: the header (lower case) that carries the caller's
    /// principal ARN, set by a trusted hop; `None` (the default) trusts no
    /// header.
    pub principal_header: Option<String>,
    /// ext_authz: peer certificate URI SAN prefix → principal ARN template,
    /// tried in order before any other identity source.
    pub uri_san_principals: Vec<UriSanMapping>,
    /// ext_authz: claims of JWTs that Envoy's `jwt_authn` filter verified →
    /// principal ARN templates, tried in order after the peer certificate.
    pub jwt_principals: Vec<JwtMapping>,
    /// JSON logs on stderr.
    pub log_json: bool,
    /// TLS for the API listeners; `None` serves plaintext.
    pub tls: Option<crate::server::tls::TlsFiles>,
    /// ext_authz: the service mapping of routes whose context extensions
    /// do not choose one (`iamgate.mapping`).
    pub default_mapping: ServiceMapping,
    /// ext_authz (EC2): trusted proxy hops at the right of
    /// `X-Forwarded-For`; 0 takes `aws:SourceIp` from the peer address.
    pub xff_trusted_hops: usize,
    /// Key of the encoded authorization failure messages in EC2 errors.
    pub message_key: crate::sts::message::MessageKey,
    /// The authenticated control listener (inventory writes, reload,
    /// message decoding); `None`: those are not served at all.
    pub control: Option<crate::server::control::ControlConfig>,
    /// Directory keeping the inventory's runtime changes across restarts;
    /// `None`: they are kept in memory (across reloads only).
    pub inventory_state: Option<PathBuf>,
    /// Largest bundle accepted (all files, or an archive's decompressed
    /// stream).
    pub max_bundle_bytes: u64,
    /// Serve a bundle with no principals instead of refusing it.
    pub allow_empty_bundle: bool,
    /// Longest a bundle load may take before it is abandoned and refused.
    pub reload_timeout: Duration,
    /// ext_authz (EC2): region sources and parameter limit.
    pub ec2: Ec2Settings,
    /// Connection limits and timeouts of the listeners.
    pub listeners: ListenerLimits,
    /// `--credentials`: IAM users' access keys for SigV4 (watched; never
    /// in the bundle).
    pub credentials: Option<PathBuf>,
    /// `--session-key`: the keys sealing temporary credentials.
    pub session_key: Option<PathBuf>,
    /// `--sts-listen`: the STS Query API listener.
    pub sts_listen: Option<std::net::SocketAddr>,
    /// `--sts-region`: the region of STS requests' credential scope.
    pub sts_region: String,
    /// Remote (`http(s)://`, `s3://`) and signed bundles: verification
    /// keys, polling, TLS, S3 addressing, the persisted last-known-good.
    pub bundle_sources: crate::bundle::source::SourceSettings,
    /// Kubernetes admission and authorization webhooks (`--webhook-listen`).
    pub webhook: Option<crate::server::webhook::WebhookConfig>,
    /// Decision-diff gated reloads, shadow snapshots and decision-log
    /// shipping (issue 15).
    pub fleet: FleetSettings,
    /// `--oidc-provider ISSUER_URL=JWKS_FILE` entries (web identities).
    pub oidc_providers: Vec<String>,
    /// `--oidc-audience ISSUER_URL=CLIENT_ID` entries.
    pub oidc_audiences: Vec<String>,
    /// `--imds-listen`: the instance metadata credentials listener.
    pub imds_listen: Option<std::net::SocketAddr>,
    /// `--mfa-devices`: virtual MFA devices for STS `SerialNumber` /
    /// `TokenCode` (issue 13).
    pub mfa_devices: Option<PathBuf>,
}

/// Decision-diff gated reloads, shadow snapshots and decision-log shipping.
#[derive(Debug, Clone, Default)]
pub struct FleetSettings {
    /// Refuse a candidate that changes more sampled decisions than this.
    pub max_changed_decisions: Option<u64>,
    /// Recent requests kept for the reload diff (0: none).
    pub decision_sample_size: usize,
    /// One decided request in this many is offered to the sample.
    pub decision_sample_every: u64,
    /// A second bundle evaluated beside the active one.
    pub shadow_bundle: Option<PathBuf>,
    /// One live request in this many is decided again on the shadow.
    pub shadow_sample_every: u64,
    /// Requests waiting for the shadow evaluator; more are dropped.
    pub shadow_queue: usize,
    /// Decision-log shipping: HTTP upload and OTLP logs export.
    pub log_ship: crate::telemetry::decision_log_ship::ShipSettings,
}

/// Connection limits and timeouts of the listeners. Connection limits are
/// fitted to the process's open-files limit at startup
/// (`io::fit_connection_limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Open connections per API listener (gRPC, HTTP/JSON); `None`: the
    /// largest share of the open-files limit, at most
    /// [`ListenerLimits::DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: Option<usize>,
    /// Open connections on the admin listener: its own budget, so probes
    /// and scrapes answer while the API listeners are flooded.
    pub admin_max_connections: usize,
    /// Time for a new connection's TLS handshake and first request's
    /// headers, and for each later HTTP/1.1 request's headers.
    pub header_read_timeout: Duration,
    /// A connection without a new request for this long is closed
    /// (gracefully).
    pub idle_timeout: Duration,
}

impl ListenerLimits {
    /// Connections per API listener when the open-files limit allows.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            max_connections: None,
            admin_max_connections: 64,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// How an ext_authz route's requests become IAM requests: the name of a
/// mapping, `generic` (the `iamgate.action` / `iamgate.resource`
/// templates) or a registered service's ([`crate::service::Registry`],
/// e.g. `ec2-query`). Which names exist is the registry's to say: the
/// server checks `--default-mapping` against it at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceMapping(String);

impl ServiceMapping {
    /// The template mapping's name.
    pub const GENERIC: &'static str = "generic";

    /// The name used in `iamgate.mapping` and `--default-mapping`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ServiceMapping {
    fn default() -> Self {
        Self(Self::GENERIC.to_owned())
    }
}

impl std::str::FromStr for ServiceMapping {
    type Err = String;

    /// A mapping name: lower-case ASCII letters, digits and `-`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "`{s}` is not a mapping name (lower-case letters, digits and `-`)"
            ))
        }
    }
}

/// Request limits; anything beyond them gets a clear 4xx / INVALID_ARGUMENT.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_batch: usize,
    /// Most changes in one inventory batch.
    pub max_inventory_batch: usize,
    pub max_depth: usize,
    pub max_headers: usize,
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_batch: 100,
            max_inventory_batch: 1000,
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

/// ext_authz: maps a claim of a JWT that Envoy's `jwt_authn` filter
/// verified to a principal ARN. The provider's `payload_in_metadata` key
/// names the payload in the `envoy.filters.http.jwt_authn` metadata
/// namespace (the ext_authz filter must list that namespace in
/// `metadata_context_namespaces`); `{claim}` in the template stands for the
/// claim's value, a top-level string claim. Written `KEY:CLAIM=TEMPLATE`,
/// e.g. `corp_idp:sub=arn:aws:iam::111111111111:user/{claim}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtMapping {
    pub payload_key: String,
    pub claim: String,
    pub template: String,
}

/// Why a `KEY:CLAIM=TEMPLATE` JWT mapping does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtMappingError {
    #[error("expected KEY:CLAIM=TEMPLATE, got `{0}`")]
    Syntax(String),
    #[error("the principal template `{0}` is not an ARN (`arn:...`)")]
    NotArn(String),
    #[error("the principal template `{0}` must hold `{{claim}}` exactly once")]
    Placeholder(String),
}

impl std::str::FromStr for JwtMapping {
    type Err = JwtMappingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || JwtMappingError::Syntax(s.to_owned());
        let (key, rest) = s.split_once(':').ok_or_else(syntax)?;
        let (claim, template) = rest.split_once('=').ok_or_else(syntax)?;
        let (key, claim, template) = (key.trim(), claim.trim(), template.trim());
        if key.is_empty() || claim.is_empty() {
            return Err(syntax());
        }
        if !template.starts_with("arn:") {
            return Err(JwtMappingError::NotArn(template.to_owned()));
        }
        if template.matches("{claim}").count() != 1 {
            return Err(JwtMappingError::Placeholder(template.to_owned()));
        }
        Ok(Self {
            payload_key: key.to_owned(),
            claim: claim.to_owned(),
            template: template.to_owned(),
        })
    }
}

/// A `--principal-header` value: an HTTP header name (a token, not a
/// pseudo-header), lower-cased as Envoy sends header names.
pub fn principal_header_name(s: &str) -> Result<String, String> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if s.is_empty() || !s.bytes().all(token) {
        return Err(format!("`{s}` is not an HTTP header name"));
    }
    Ok(s.to_ascii_lowercase())
}

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config file `{path}`: {message}")]
    Invalid { path: String, message: String },
}

/// Turns a JSON configuration file into `serve` flags, so that one parser
/// validates both. Keys are flag names (`http_listen` or `http-listen`);
/// `true` sets a switch, `false` and `null` leave it out, arrays repeat a
/// flag. Keys whose `IAMGATE_*` environment variable is set are skipped:
/// flags override the environment, which overrides the file.
pub fn file_args(path: &std::path::Path) -> Result<Vec<String>, ConfigFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: shown.clone(),
        source,
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ConfigFileError::Invalid {
            path: shown.clone(),
            message: e.to_string(),
        })?;
    let obj = value.as_object().ok_or_else(|| ConfigFileError::Invalid {
        path: shown.clone(),
        message: "expected a JSON object of flag names".to_owned(),
    })?;
    let mut args = Vec::new();
    for (key, v) in obj {
        let flag = key.replace('_', "-");
        let env = format!("IAMGATE_{}", key.replace('-', "_").to_ascii_uppercase());
        if std::env::var_os(&env).is_some() {
            continue;
        }
        let scalar = |v: &serde_json::Value| -> Result<Option<String>, ConfigFileError> {
            match v {
                serde_json::Value::String(s) => Ok(Some(s.clone())),
                serde_json::Value::Number(n) => Ok(Some(n.to_string())),
                serde_json::Value::Null => Ok(None),
                _ => Err(ConfigFileError::Invalid {
                    path: shown.clone(),
                    message: format!("`{key}`: expected a string, number, boolean or array"),
                }),
            }
        };
        match v {
            serde_json::Value::Bool(true) => args.push(format!("--{flag}")),
            serde_json::Value::Bool(false) | serde_json::Value::Null => {}
            serde_json::Value::Array(items) => {
                for item in items {
                    if let Some(s) = scalar(item)? {
                        args.push(format!("--{flag}={s}"));
                    }
                }
            }
            other => {
                if let Some(s) = scalar(other)? {
                    args.push(format!("--{flag}={s}"));
                }
            }
        }
    }
    Ok(args)
}

/// ext_authz on EC2 Query API routes: where a request's region comes from,
/// and how many parameters one call may have. The region is configuration,
/// never the client's: a route's `iamgate.region` context extension, else
/// the request's Host when (and only when) the operator maps hosts to
/// regions (an unknown Host is refused), else `region`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2Settings {
    /// `--ec2-region`: the region of EC2 routes that name none.
    pub region: Option<String>,
    /// `--ec2-host-region HOST=REGION` (repeatable).
    pub host_regions: Vec<HostRegion>,
    /// `--ec2-max-parameters`: most parameters in one call.
    pub max_parameters: usize,
    /// `--ec2-auth`: who the caller of an EC2 route without an
    /// `iamgate.auth` extension is.
    pub auth: Ec2Auth,
}

/// Where the caller of an EC2 route comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ec2Auth {
    /// What the proxy verified: a mapped mTLS SAN, `jwt_authn` metadata,
    /// or the trusted principal header (`proxy`).
    #[default]
    Proxy,
    /// The request's AWS Signature Version 4 alone (`sigv4`).
    SigV4,
}

impl std::str::FromStr for Ec2Auth {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "proxy" => Ok(Ec2Auth::Proxy),
            "sigv4" => Ok(Ec2Auth::SigV4),
            other => Err(format!(
                "unknown EC2 authentication `{other}` (known: `proxy`, `sigv4`)"
            )),
        }
    }
}

impl Default for Ec2Settings {
    fn default() -> Self {
        Self {
            region: None,
            host_regions: Vec::new(),
            max_parameters: crate::ec2::query::DEFAULT_MAX_PARAMETERS,
            auth: Ec2Auth::default(),
        }
    }
}

/// One operator-mapped EC2 endpoint host, written `HOST=REGION`
/// (`ec2.eu-west-1.amazonaws.com=eu-west-1`). The host is compared ASCII
/// case-insensitively, without a trailing dot, and without the request's
/// port unless the mapping names one (`HOST:PORT=REGION`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRegion {
    /// Lowercase host, with a port when given.
    pub host: String,
    pub region: String,
}

/// Why a `HOST=REGION` mapping does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostRegionError {
    #[error("expected HOST=REGION, got `{0}`")]
    Syntax(String),
    #[error("`{0}` is not a host name")]
    Host(String),
    #[error("`{0}` is not a region name (e.g. `us-east-1`)")]
    Region(String),
}

impl std::str::FromStr for HostRegion {
    type Err = HostRegionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, region) = s
            .split_once('=')
            .ok_or_else(|| HostRegionError::Syntax(s.to_owned()))?;
        let (host, region) = (host.trim(), region.trim());
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let host_ok = !host.is_empty()
            && host.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']')
            });
        if !host_ok {
            return Err(HostRegionError::Host(host));
        }
        if !crate::server::ext_authz::ec2::is_region(region) {
            return Err(HostRegionError::Region(region.to_owned()));
        }
        Ok(Self {
            host,
            region: region.to_owned(),
        })
    }
}
#[cfg(test)]
mod identity_tests {
    use super::*;

    #[test]
    fn jwt_mappings_parse() {
        let m: JwtMapping = "corp_idp:sub=arn:aws:iam::111111111111:user/{claim}"
            .parse()
            .unwrap();
        assert_eq!(
            m,
            JwtMapping {
                payload_key: "corp_idp".into(),
                claim: "sub".into(),
                template: "arn:aws:iam::111111111111:user/{claim}".into(),
            }
        );
        // The claim may hold `:` (URL-named claims); the key may not.
        let m: JwtMapping = "k:https://example.com/role=arn:aws:sts::1:assumed-role/{claim}/x"
            .parse()
            .unwrap();
        assert_eq!(
            (m.payload_key.as_str(), m.claim.as_str()),
            ("k", "https://example.com/role")
        );
        for bad in [
            "sub=arn:aws:iam::1:user/{claim}",
            ":sub=arn:aws:iam::1:user/{claim}",
            "k:=arn:aws:iam::1:user/{claim}",
            "k:sub",
            "k:sub=user/{claim}",
            "k:sub=arn:aws:iam::1:user/bob",
            "k:sub=arn:aws:iam::1:user/{claim}/{claim}",
        ] {
            assert!(bad.parse::<JwtMapping>().is_err(), "{bad}");
        }
    }

    #[test]
    fn principal_header_names() {
        assert_eq!(
            principal_header_name("X-Iamgate-Principal").unwrap(),
            "x-iamgate-principal"
        );
        for bad in ["", ":authority", "a b", "x-é"] {
            assert!(principal_header_name(bad).is_err(), "{bad}");
        }
    }
}
