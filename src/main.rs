#![forbid(unsafe_code)]
//! The `iamgate` binary: argument parsing and exit codes only.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use iamgate::commands;
use iamgate::policy::PolicyKind;

/// iamgate: decides exactly as AWS IAM would, fast enough for every request.
#[derive(Debug, Parser)]
#[command(name = "iamgate", version, about, args_override_self = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve decisions: gRPC, HTTP/JSON, Envoy ext_authz, and an admin listener.
    Serve(Box<ServeArgs>),
    /// Run policy test files (files and folders; folders are walked for *.json).
    Test {
        /// Test files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Also print a line for every passing test.
        #[arg(short, long)]
        verbose: bool,
        /// Decide tests without `policies` against this bundle (directory
        /// or .tar.gz); by default a file in a bundle's `tests/` uses that
        /// bundle.
        #[arg(long, value_name = "DIR")]
        bundle: Option<PathBuf>,
    },
    /// Evaluate one request against the policies of a policy test file.
    Eval {
        /// Policy test file whose principal and policies to use.
        #[arg(long)]
        policies: PathBuf,
        /// Caller ARN (default: the file's principal).
        #[arg(long)]
        principal: Option<String>,
        /// Action, e.g. ec2:RunInstances.
        #[arg(long)]
        action: String,
        /// Resource ARN, or `*`.
        #[arg(long, default_value = "*")]
        resource: String,
        /// Context key=value (repeatable; a key given twice is multivalued).
        #[arg(long = "context", value_name = "KEY=VALUE")]
        context: Vec<String>,
        /// Account that owns the resource when its ARN has none.
        #[arg(long)]
        resource_account: Option<String>,
        /// Print the decision as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate policies: errors, warnings and security warnings.
    Validate {
        /// Policy documents, or policy test files (all their policies).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// What plain policy documents are attached as.
        #[arg(long, value_enum, default_value_t = Kind::Identity)]
        kind: Kind,
        /// Print findings as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Decode an encoded authorization failure message (what
    /// sts:DecodeAuthorizationMessage returns); exit 1 if it does not
    /// authenticate under the key.
    DecodeMessage {
        /// File with the server's --message-key-file key.
        #[arg(long)]
        key_file: PathBuf,
        /// The encoded message from an UnauthorizedOperation error.
        message: String,
    },
    /// Bundle tools (offline).
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// Time every request of a policy test file against its compiled policies.
    Bench {
        /// Policy test file.
        file: PathBuf,
        /// Milliseconds spent timing each request.
        #[arg(long, default_value_t = 300)]
        time_ms: u64,
        /// Print results as JSON (name, median_ns, p99_ns per request).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum BundleCommand {
    /// Check a bundle exactly as the server does before activating it (read,
    /// parse, validate, compile, run its tests): exit 0 if it would be
    /// served, 1 if one of its tests fails, 2 if it is unreadable or invalid.
    Check {
        /// Bundle directory or .tar.gz.
        path: PathBuf,
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
        /// As `serve --max-bundle-bytes`.
        #[arg(long, default_value_t = iamgate::bundle::files::DEFAULT_MAX_BUNDLE_BYTES)]
        max_bundle_bytes: u64,
        /// As `serve --allow-empty-bundle`.
        #[arg(long)]
        allow_empty_bundle: bool,
    },
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// JSON file of flags (`{"bundle": "...", "http_listen": "..."}`); flags
    /// and IAMGATE_* variables override it. Also IAMGATE_CONFIG.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Bundle directory or .tar.gz (default: the built-in demo bundle).
    #[arg(long, env = "IAMGATE_BUNDLE")]
    bundle: Option<PathBuf>,
    /// Listen address of the gRPC API and Envoy ext_authz.
    #[arg(long, env = "IAMGATE_GRPC_LISTEN", default_value = "127.0.0.1:9191")]
    grpc_listen: std::net::SocketAddr,
    /// Listen address of the HTTP/JSON API.
    #[arg(long, env = "IAMGATE_HTTP_LISTEN", default_value = "127.0.0.1:8181")]
    http_listen: std::net::SocketAddr,
    /// Listen address of the admin API (health, readiness, status, metrics).
    #[arg(long, env = "IAMGATE_ADMIN_LISTEN", default_value = "127.0.0.1:8182")]
    admin_listen: std::net::SocketAddr,
    /// Start even if the bundle is missing or invalid; ready once a valid one appears.
    #[arg(long, env = "IAMGATE_WAIT_FOR_BUNDLE")]
    wait_for_bundle: bool,
    /// Do not watch the bundle path for changes (reload on SIGHUP or the control API only).
    #[arg(long, env = "IAMGATE_NO_WATCH")]
    no_watch: bool,
    /// Decision log: `-` for stdout, or a file path (off by default).
    #[arg(long, env = "IAMGATE_DECISION_LOG")]
    decision_log: Option<String>,
    /// Decision-log queue size; records beyond it are dropped and counted.
    #[arg(long, env = "IAMGATE_DECISION_LOG_QUEUE", default_value_t = 10_000)]
    decision_log_queue: usize,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "IAMGATE_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Most items in one batch request.
    #[arg(long, env = "IAMGATE_MAX_BATCH", default_value_t = 100)]
    max_batch: usize,
    /// Most changes in one inventory batch (POST /v1/inventory, Inventory.Apply).
    #[arg(long, env = "IAMGATE_MAX_INVENTORY_BATCH", default_value_t = 1000)]
    max_inventory_batch: usize,
    /// Deepest JSON nesting accepted.
    #[arg(long, env = "IAMGATE_MAX_DEPTH", default_value_t = 32)]
    max_depth: usize,
    /// Most request headers accepted.
    #[arg(long, env = "IAMGATE_MAX_HEADERS", default_value_t = 100)]
    max_headers: usize,
    /// Time allowed to receive a request, in milliseconds.
    #[arg(long, env = "IAMGATE_REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    request_timeout_ms: u64,
    /// ext_authz: trust this header for the caller's principal ARN (none is
    /// trusted by default). Only for a header a trusted hop sets: the proxy
    /// must remove the client's copy before ext_authz runs.
    #[arg(long, env = "IAMGATE_PRINCIPAL_HEADER", value_parser = iamgate::server::config::principal_header_name)]
    principal_header: Option<String>,
    /// ext_authz: map a peer certificate URI SAN to a principal, PREFIX=TEMPLATE
    /// (`{rest}` = the SAN after PREFIX); repeatable, first match wins, tried
    /// first. A verified peer whose SAN matches no prefix is denied.
    #[arg(long, env = "IAMGATE_URI_SAN_PRINCIPALS", value_delimiter = ',')]
    uri_san_principal: Vec<iamgate::server::config::UriSanMapping>,
    /// ext_authz: map a claim of a JWT verified by Envoy's jwt_authn filter
    /// to a principal, KEY:CLAIM=TEMPLATE (KEY: the provider's
    /// payload_in_metadata; `{claim}` = the claim's value); repeatable, tried
    /// after the peer certificate, before the principal header.
    #[arg(long, env = "IAMGATE_JWT_PRINCIPALS", value_delimiter = ',')]
    jwt_principal: Vec<iamgate::server::config::JwtMapping>,
    /// Write logs as JSON lines.
    #[arg(long, env = "IAMGATE_LOG_JSON")]
    log_json: bool,
    /// PEM certificate chain for TLS on the gRPC and HTTP listeners (re-read on change).
    #[arg(long, env = "IAMGATE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "IAMGATE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM CA bundle: require client certificates signed by it (mTLS).
    #[arg(long, env = "IAMGATE_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// ext_authz: service mapping of routes without `iamgate.mapping`
    /// (`generic` templates or the EC2 Query API, `ec2-query`).
    #[arg(long, env = "IAMGATE_DEFAULT_MAPPING", default_value = "generic")]
    default_mapping: iamgate::server::config::ServiceMapping,
    /// ext_authz (EC2): trusted proxy hops at the right of X-Forwarded-For
    /// for aws:SourceIp (0: the peer address).
    #[arg(long, env = "IAMGATE_XFF_TRUSTED_HOPS", default_value_t = 0)]
    xff_trusted_hops: usize,
    /// Key (32 bytes, hex or base64) of encoded authorization failure
    /// messages; without it a random key is made at startup.
    #[arg(long, env = "IAMGATE_MESSAGE_KEY_FILE")]
    message_key_file: Option<PathBuf>,
    /// Listen address of the authenticated control API (inventory writes,
    /// reload, message decoding; HTTP/JSON and gRPC). Off by default; needs
    /// --control-token-file or --control-client-ca.
    #[arg(long, env = "IAMGATE_CONTROL_LISTEN")]
    control_listen: Option<std::net::SocketAddr>,
    /// File holding the control API's bearer token (re-read on change and
    /// on SIGHUP).
    #[arg(long, env = "IAMGATE_CONTROL_TOKEN_FILE", requires = "control_listen")]
    control_token_file: Option<PathBuf>,
    /// PEM certificate chain for TLS on the control listener.
    #[arg(long, env = "IAMGATE_CONTROL_TLS_CERT", requires_all = ["control_tls_key", "control_listen"])]
    control_tls_cert: Option<PathBuf>,
    /// PEM private key for --control-tls-cert.
    #[arg(long, env = "IAMGATE_CONTROL_TLS_KEY", requires = "control_tls_cert")]
    control_tls_key: Option<PathBuf>,
    /// PEM CA bundle: the control listener requires client certificates
    /// signed by it.
    #[arg(long, env = "IAMGATE_CONTROL_CLIENT_CA", requires = "control_tls_cert")]
    control_client_ca: Option<PathBuf>,
    /// Directory keeping the inventory's runtime changes across restarts
    /// (default: in memory, kept across reloads only).
    #[arg(long, env = "IAMGATE_INVENTORY_STATE")]
    inventory_state: Option<PathBuf>,
    /// Largest bundle accepted, in bytes: all its files together, or a
    /// .tar.gz's decompressed stream.
    #[arg(long, env = "IAMGATE_MAX_BUNDLE_BYTES", default_value_t = iamgate::bundle::files::DEFAULT_MAX_BUNDLE_BYTES)]
    max_bundle_bytes: u64,
    /// Serve a bundle with no principals (refused by default: an empty or
    /// mistyped bundle would serve nothing and still report ready).
    #[arg(long, env = "IAMGATE_ALLOW_EMPTY_BUNDLE")]
    allow_empty_bundle: bool,
    /// Time a bundle load may take before it is abandoned and refused, in
    /// milliseconds (the running snapshot keeps serving).
    #[arg(long, env = "IAMGATE_RELOAD_TIMEOUT_MS", default_value_t = 60_000)]
    reload_timeout_ms: u64,
    /// ext_authz (EC2): the region of EC2 routes without an `iamgate.region`
    /// context extension (and without --ec2-host-region mappings).
    #[arg(long, env = "IAMGATE_EC2_REGION", value_parser = parse_region)]
    ec2_region: Option<String>,
    /// ext_authz (EC2): HOST=REGION, repeatable: the Host selects the region
    /// of EC2 routes without `iamgate.region`; any other Host is refused.
    #[arg(long, env = "IAMGATE_EC2_HOST_REGIONS", value_delimiter = ',')]
    ec2_host_region: Vec<iamgate::server::config::HostRegion>,
    /// ext_authz (EC2): most parameters in one EC2 Query API call.
    #[arg(long, env = "IAMGATE_EC2_MAX_PARAMETERS", default_value_t = iamgate::ec2::query::DEFAULT_MAX_PARAMETERS)]
    ec2_max_parameters: usize,
    /// ext_authz (EC2): who calls an EC2 route without an `iamgate.auth`
    /// extension: `proxy` (mTLS SAN, Envoy-verified JWT, trusted header) or
    /// `sigv4` (the request's AWS Signature Version 4, keys from
    /// --credentials).
    #[arg(long, env = "IAMGATE_EC2_AUTH", default_value = "proxy")]
    ec2_auth: iamgate::server::config::Ec2Auth,
    /// IAM users' access keys for SigV4: what `aws iam create-access-key`
    /// prints (one or a list). Watched and re-read on SIGHUP; keep it out of
    /// the bundle (a Kubernetes Secret).
    #[arg(long, env = "IAMGATE_CREDENTIALS")]
    credentials: Option<PathBuf>,
    /// Open connections per API listener (gRPC, HTTP); more are closed at
    /// once. Default: 1024, or less to fit the open-files limit.
    #[arg(long, env = "IAMGATE_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: Option<u32>,
    /// Open connections on the admin listener (its own budget).
    #[arg(long, env = "IAMGATE_ADMIN_MAX_CONNECTIONS", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    admin_max_connections: u32,
    /// Time for a new connection's TLS handshake and first request headers,
    /// and for each later HTTP/1.1 request's headers, in milliseconds.
    #[arg(long, env = "IAMGATE_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    header_read_timeout_ms: u64,
    /// Close a connection after this many milliseconds without a request.
    #[arg(long, env = "IAMGATE_IDLE_TIMEOUT_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout_ms: u64,
    /// Keys sealing temporary credentials (STS sessions), one
    /// `KEY_ID KEY` a line (32 bytes as hex or base64), the first sealing:
    /// every iamgate with the same file verifies the same sessions.
    #[arg(long, env = "IAMGATE_SESSION_KEY")]
    session_key: Option<PathBuf>,
    /// Serve the STS Query API (AssumeRole, GetCallerIdentity,
    /// GetSessionToken, DecodeAuthorizationMessage) on this address
    /// (TLS with --tls-cert/--tls-key like the API listeners, else plain
    /// HTTP; needs --session-key to issue credentials).
    #[arg(long, env = "IAMGATE_STS_LISTEN")]
    sts_listen: Option<std::net::SocketAddr>,
    /// The region in STS requests' credential scope.
    #[arg(long, env = "IAMGATE_STS_REGION", default_value = "us-east-1", value_parser = parse_region)]
    sts_region: String,
    /// An OIDC identity provider for AssumeRoleWithWebIdentity (Kubernetes
    /// service-account tokens): ISSUER_URL=JWKS_FILE, the issuer exactly as
    /// the tokens' `iss` says and its JSON Web Key Set (re-read when the
    /// file changes). Repeatable; needs --sts-listen.
    #[arg(long, env = "IAMGATE_OIDC_PROVIDER", value_delimiter = ',')]
    oidc_provider: Vec<String>,
    /// A client id (audience) a provider accepts: ISSUER_URL=CLIENT_ID.
    /// Repeatable; a provider without one accepts `sts.amazonaws.com`.
    #[arg(long, env = "IAMGATE_OIDC_AUDIENCE", value_delimiter = ',')]
    oidc_audience: Vec<String>,
}

/// `--ec2-region`: a region name.
fn parse_region(s: &str) -> Result<String, String> {
    if iamgate::server::ext_authz::ec2::is_region(s) {
        Ok(s.to_owned())
    } else {
        Err(format!("`{s}` is not a region name (e.g. `us-east-1`)"))
    }
}

impl ServeArgs {
    fn into_config(
        self,
        message_key: iamgate::ec2::message::MessageKey,
    ) -> iamgate::server::config::ServeConfig {
        use iamgate::server::config::{Limits, ServeConfig};
        ServeConfig {
            bundle: self.bundle,
            grpc_listen: self.grpc_listen,
            http_listen: self.http_listen,
            admin_listen: self.admin_listen,
            wait_for_bundle: self.wait_for_bundle,
            watch: !self.no_watch,
            limits: Limits {
                max_body_bytes: self.max_body_bytes,
                max_batch: self.max_batch,
                max_inventory_batch: self.max_inventory_batch,
                max_depth: self.max_depth,
                max_headers: self.max_headers,
                request_timeout: Duration::from_millis(self.request_timeout_ms),
            },
            decision_log: self.decision_log,
            decision_log_queue: self.decision_log_queue,
            principal_header: self.principal_header,
            uri_san_principals: self.uri_san_principal,
            jwt_principals: self.jwt_principal,
            log_json: self.log_json,
            tls: match (self.tls_cert, self.tls_key) {
                (Some(cert), Some(key)) => Some(iamgate::server::tls::TlsFiles {
                    cert,
                    key,
                    client_ca: self.tls_client_ca,
                }),
                _ => None,
            },
            default_mapping: self.default_mapping,
            xff_trusted_hops: self.xff_trusted_hops,
            message_key,
            control: self
                .control_listen
                .map(|listen| iamgate::server::control::ControlConfig {
                    listen,
                    token_file: self.control_token_file,
                    tls: match (self.control_tls_cert, self.control_tls_key) {
                        (Some(cert), Some(key)) => Some(iamgate::server::tls::TlsFiles {
                            cert,
                            key,
                            client_ca: self.control_client_ca,
                        }),
                        _ => None,
                    },
                }),
            inventory_state: self.inventory_state,
            max_bundle_bytes: self.max_bundle_bytes,
            allow_empty_bundle: self.allow_empty_bundle,
            reload_timeout: Duration::from_millis(self.reload_timeout_ms),
            ec2: iamgate::server::config::Ec2Settings {
                region: self.ec2_region,
                host_regions: self.ec2_host_region,
                max_parameters: self.ec2_max_parameters,
                auth: self.ec2_auth,
            },
            listeners: iamgate::server::config::ListenerLimits {
                max_connections: self.max_connections.map(|n| n as usize),
                admin_max_connections: self.admin_max_connections as usize,
                header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
                idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            },
            credentials: self.credentials,
            session_key: self.session_key,
            sts_listen: self.sts_listen,
            sts_region: self.sts_region,
            oidc_providers: self.oidc_provider,
            oidc_audiences: self.oidc_audience,
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let log_json = args.log_json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("iamgate: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // Declared after the runtime so that it drops (flushing spans) first.
    let _telemetry = match iamgate::telemetry::tracing_setup::init(log_json, runtime.handle()) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("iamgate: {e}");
            return ExitCode::from(1);
        }
    };
    let message_key =
        match iamgate::ec2::message::MessageKey::load_or_generate(args.message_key_file.as_deref())
        {
            Ok(k) => k,
            Err(e) => {
                eprintln!("iamgate: {e}");
                return ExitCode::from(1);
            }
        };
    let config = args.into_config(message_key);
    match runtime.block_on(iamgate::server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e = anyhow::Error::new(e);
            eprintln!("iamgate: {e:#}");
            ExitCode::from(1)
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    Identity,
    Boundary,
    Session,
    Resource,
    Scp,
    Rcp,
}

impl From<Kind> for PolicyKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Identity => PolicyKind::Identity,
            Kind::Boundary => PolicyKind::Boundary,
            Kind::Session => PolicyKind::Session,
            Kind::Resource => PolicyKind::Resource,
            Kind::Scp => PolicyKind::Scp,
            Kind::Rcp => PolicyKind::Rcp,
        }
    }
}

/// Expands `serve --config FILE` (or `IAMGATE_CONFIG`) into flags placed
/// before the command line's own, which therefore win.
fn expand_config(args: Vec<String>) -> Result<Vec<String>, String> {
    if args.get(1).map(String::as_str) != Some("serve") {
        return Ok(args);
    }
    let mut rest = Vec::new();
    let mut config = std::env::var("IAMGATE_CONFIG").ok();
    let mut it = args.iter().skip(2);
    while let Some(a) = it.next() {
        if a == "--config" {
            config = it.next().cloned();
        } else if let Some(v) = a.strip_prefix("--config=") {
            config = Some(v.to_owned());
        } else {
            rest.push(a.clone());
        }
    }
    let Some(path) = config else { return Ok(args) };
    let from_file = iamgate::server::config::file_args(std::path::Path::new(&path))
        .map_err(|e| e.to_string())?;
    let mut out = vec![
        args.first().cloned().unwrap_or_default(),
        "serve".to_owned(),
    ];
    out.extend(from_file);
    out.extend(rest);
    Ok(out)
}

fn main() -> ExitCode {
    let args = match expand_config(std::env::args().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("iamgate: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    let cli = match cli.command {
        Command::Serve(args) => return serve(*args),
        other => Cli { command: other },
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = match &cli.command {
        Command::Serve(_) => Ok(2),
        Command::Test {
            paths,
            verbose,
            bundle,
        } => commands::test::run(paths, *verbose, bundle.as_deref(), &mut out),
        Command::Eval {
            policies,
            principal,
            action,
            resource,
            context,
            resource_account,
            json,
        } => commands::eval::run(
            &commands::eval::EvalArgs {
                policies,
                principal: principal.as_deref(),
                action,
                resource,
                context,
                resource_account: resource_account.as_deref(),
                json: *json,
            },
            &mut out,
        ),
        Command::Validate { files, kind, json } => {
            commands::validate::run(files, (*kind).into(), *json, &mut out)
        }
        Command::Bench {
            file,
            time_ms,
            json,
        } => commands::bench::run(file, Duration::from_millis(*time_ms), *json, &mut out),
        Command::Bundle(BundleCommand::Check {
            path,
            json,
            max_bundle_bytes,
            allow_empty_bundle,
        }) => {
            let options = iamgate::bundle::LoadOptions {
                max_bytes: *max_bundle_bytes,
                allow_empty: *allow_empty_bundle,
            };
            commands::bundle_check::run(path, options, *json, &mut out)
        }
        Command::DecodeMessage { key_file, message } => {
            commands::decode_message::run(key_file, message, &mut std::io::stderr(), &mut out)
        }
    };
    let _ = out.flush();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("iamgate: {e}");
            ExitCode::from(2)
        }
    }
}
