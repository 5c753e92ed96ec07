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
        /// As `serve --bundle-verify-key` (repeatable): the bundle's
        /// signature must verify by one of these public keys.
        #[arg(long, value_name = "PEM")]
        bundle_verify_key: Vec<PathBuf>,
    },
    /// Check a bundle directory as `check` does and write it as a .tar.gz
    /// with a manifest of every file's SHA-256, signed with --sign.
    Build {
        /// Bundle directory.
        dir: PathBuf,
        /// The archive to write (replaced atomically).
        #[arg(short, long)]
        output: PathBuf,
        /// Ed25519 private key (PEM, `openssl genpkey -algorithm ed25519`);
        /// repeatable, one signature per key.
        #[arg(long, value_name = "KEY.pem")]
        sign: Vec<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// As `serve --max-bundle-bytes`.
        #[arg(long, default_value_t = iamgate::bundle::files::DEFAULT_MAX_BUNDLE_BYTES)]
        max_bundle_bytes: u64,
        /// As `serve --allow-empty-bundle`.
        #[arg(long)]
        allow_empty_bundle: bool,
    },
    /// Decide the same requests on two bundles and report which change
    /// decision, grouped by principal and action: exit 0 if none changes,
    /// 1 if some do, 2 if a bundle or request file cannot be used.
    Diff {
        /// The bundle serving now (directory or .tar.gz).
        old: PathBuf,
        /// The candidate bundle (directory or .tar.gz).
        new: PathBuf,
        /// Policy test files (or folders of them) or decision-log JSON
        /// lines; repeatable.
        #[arg(long, required = true)]
        requests: Vec<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// As `serve --max-bundle-bytes`.
        #[arg(long, default_value_t = iamgate::bundle::files::DEFAULT_MAX_BUNDLE_BYTES)]
        max_bundle_bytes: u64,
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
    /// (`generic` templates, or a registered service's: the EC2 Query API
    /// `ec2-query`, S3-compatible stores `s3`).
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
    /// Ed25519 public key (PEM, `openssl pkey -pubout`) trusted to sign
    /// bundles; repeatable (key rotation). With any, unsigned, wrongly
    /// signed or tampered bundles are refused.
    #[arg(
        long,
        value_name = "PEM",
        env = "IAMGATE_BUNDLE_VERIFY_KEY",
        value_delimiter = ','
    )]
    bundle_verify_key: Vec<PathBuf>,
    /// Seconds between polls of an http(s):// or s3:// --bundle (±20 %
    /// jitter; longer, exponentially, while the source fails).
    #[arg(long, env = "IAMGATE_BUNDLE_POLL_INTERVAL", default_value_t = 30.0, value_parser = parse_seconds)]
    bundle_poll_interval: f64,
    /// Time one fetch of a remote bundle may take, in milliseconds.
    #[arg(long, env = "IAMGATE_BUNDLE_FETCH_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    bundle_fetch_timeout_ms: u64,
    /// PEM CA bundle trusted for an https:// --bundle (default: the system's).
    #[arg(long, env = "IAMGATE_BUNDLE_CA_FILE")]
    bundle_ca_file: Option<PathBuf>,
    /// S3 endpoint for an s3:// --bundle (an S3-compatible store), e.g.
    /// `http://127.0.0.1:9000`.
    #[arg(long, env = "IAMGATE_BUNDLE_S3_ENDPOINT")]
    bundle_s3_endpoint: Option<String>,
    /// Region for SigV4 of an s3:// --bundle (default AWS_REGION,
    /// AWS_DEFAULT_REGION, else us-east-1).
    #[arg(long, env = "IAMGATE_BUNDLE_S3_REGION")]
    bundle_s3_region: Option<String>,
    /// Path-style S3 addressing (`ENDPOINT/BUCKET/KEY`).
    #[arg(long, env = "IAMGATE_BUNDLE_S3_PATH_STYLE")]
    bundle_s3_path_style: bool,
    /// Directory keeping the last activated remote bundle; served (marked
    /// stale) when the source cannot be reached at startup.
    #[arg(long, env = "IAMGATE_BUNDLE_CACHE")]
    bundle_cache: Option<PathBuf>,
    /// Long polling of an http(s):// --bundle: ask the server to hold each
    /// poll up to this many seconds until the bundle changes (`Prefer:
    /// wait=N`); servers that do not hold requests are polled as usual.
    #[arg(long, env = "IAMGATE_BUNDLE_LONG_POLL", value_parser = clap::value_parser!(u64).range(1..=3600))]
    bundle_long_poll: Option<u64>,
    /// Listen address of the Kubernetes webhooks (HTTPS only): POST
    /// /admission (AdmissionReview) and /authorize (SubjectAccessReview).
    #[arg(long, env = "IAMGATE_WEBHOOK_LISTEN", requires_all = ["webhook_tls_cert", "webhook_tls_key"])]
    webhook_listen: Option<std::net::SocketAddr>,
    /// PEM certificate chain of the webhook listener (re-read on change).
    #[arg(long, env = "IAMGATE_WEBHOOK_TLS_CERT", requires = "webhook_listen")]
    webhook_tls_cert: Option<PathBuf>,
    /// PEM private key for --webhook-tls-cert.
    #[arg(long, env = "IAMGATE_WEBHOOK_TLS_KEY", requires = "webhook_listen")]
    webhook_tls_key: Option<PathBuf>,
    /// PEM CA bundle: the webhook listener requires client certificates
    /// signed by it (the API server's webhook client certificate).
    #[arg(long, env = "IAMGATE_WEBHOOK_CLIENT_CA", requires = "webhook_listen")]
    webhook_client_ca: Option<PathBuf>,
    /// The ACK controller's own user (`system:serviceaccount:NS:NAME`),
    /// whose writes pass admission; repeatable.
    #[arg(long, env = "IAMGATE_WEBHOOK_CONTROLLER_USERS", value_delimiter = ',')]
    webhook_controller_user: Vec<String>,
    /// EKS aws-auth ConfigMap (YAML) to read usernames back to IAM principals.
    #[arg(long, env = "IAMGATE_WEBHOOK_AWS_AUTH")]
    webhook_aws_auth: Option<PathBuf>,
    /// Identify users only by the AWS IAM authenticator's `extra`, never by
    /// their username.
    #[arg(long, env = "IAMGATE_WEBHOOK_REQUIRE_EXTRA")]
    webhook_require_extra: bool,
    /// Admission of a user with no IAM principal: `deny` or `allow`.
    #[arg(long, env = "IAMGATE_WEBHOOK_UNMAPPED", default_value = "deny")]
    webhook_unmapped: iamgate::server::webhook::Unmapped,
    /// SubjectAccessReview answer to an implicit deny: `no-opinion` (RBAC
    /// decides) or `deny`.
    #[arg(
        long,
        env = "IAMGATE_WEBHOOK_IMPLICIT_DENY",
        default_value = "no-opinion"
    )]
    webhook_implicit_deny: iamgate::server::webhook::ImplicitDeny,
    /// The ACK controller's region (its --aws-region).
    #[arg(long, env = "IAMGATE_WEBHOOK_REGION", value_parser = parse_region)]
    webhook_region: Option<String>,
    /// The ACK controller's account (default: the user's).
    #[arg(long, env = "IAMGATE_WEBHOOK_ACCOUNT", value_parser = parse_account)]
    webhook_account: Option<String>,
    /// NAMESPACE=REGION[/ACCOUNT], repeatable: a namespace's defaults (its
    /// services.k8s.aws/default-region and owner-account-id annotations).
    #[arg(
        long,
        env = "IAMGATE_WEBHOOK_NAMESPACE_DEFAULTS",
        value_delimiter = ','
    )]
    webhook_namespace_default: Vec<iamgate::server::webhook::NamespaceDefault>,
    /// KEY=VALUE, repeatable: the controller's --resource-tags
    /// (%K8S_NAMESPACE%, %K8S_RESOURCE_NAME% expanded).
    #[arg(long, env = "IAMGATE_WEBHOOK_RESOURCE_TAGS", value_delimiter = ',')]
    webhook_resource_tag: Vec<iamgate::k8s::ack::ControllerTag>,
    /// Tag carrying an object's name on the resources the controller made
    /// (SubjectAccessReviews on named objects find them by it).
    #[arg(long, env = "IAMGATE_WEBHOOK_NAME_TAG")]
    webhook_name_tag: Option<String>,
    /// SubjectAccessReview action template for other resources ({verb},
    /// {group}, {version}, {resource}, {subresource}, {namespace}, {name}).
    #[arg(
        long,
        env = "IAMGATE_WEBHOOK_RESOURCE_ACTION",
        requires = "webhook_resource_arn"
    )]
    webhook_resource_action: Option<String>,
    /// Resource ARN template for --webhook-resource-action.
    #[arg(
        long,
        env = "IAMGATE_WEBHOOK_RESOURCE_ARN",
        requires = "webhook_resource_action"
    )]
    webhook_resource_arn: Option<String>,
    /// SubjectAccessReview action template for non-resource URLs ({verb}, {path}).
    #[arg(
        long,
        env = "IAMGATE_WEBHOOK_NON_RESOURCE_ACTION",
        requires = "webhook_non_resource_arn"
    )]
    webhook_non_resource_action: Option<String>,
    /// Resource ARN template for --webhook-non-resource-action.
    #[arg(
        long,
        env = "IAMGATE_WEBHOOK_NON_RESOURCE_ARN",
        requires = "webhook_non_resource_action"
    )]
    webhook_non_resource_arn: Option<String>,
    /// Refuse a reloaded bundle that changes more than N decisions of the
    /// sample of recent requests (the running snapshot keeps serving); a
    /// bundle's manifest.json `max_changed_decisions` may set a lower limit.
    #[arg(long, env = "IAMGATE_MAX_CHANGED_DECISIONS")]
    max_changed_decisions: Option<u64>,
    /// Recent distinct requests kept to compare a reloaded bundle with the
    /// active one (0: none).
    #[arg(long, env = "IAMGATE_DECISION_SAMPLE_SIZE", default_value_t = iamgate::bundle::sample::DEFAULT_CAPACITY)]
    decision_sample_size: usize,
    /// One decided request in N is offered to that sample.
    #[arg(long, env = "IAMGATE_DECISION_SAMPLE_EVERY", default_value_t = iamgate::bundle::sample::DEFAULT_EVERY, value_parser = clap::value_parser!(u64).range(1..))]
    decision_sample_every: u64,
    /// A second bundle (directory or .tar.gz), validated like the main one
    /// and evaluated beside it on a sample of live requests, off the
    /// decision path; promote it with `POST /v1/shadow/promote` (control
    /// listener).
    #[arg(long, env = "IAMGATE_SHADOW_BUNDLE")]
    shadow_bundle: Option<PathBuf>,
    /// One live request in N is decided again on the shadow bundle.
    #[arg(long, env = "IAMGATE_SHADOW_SAMPLE_EVERY", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    shadow_sample_every: u64,
    /// Requests waiting for the shadow evaluator; more are dropped and
    /// counted.
    #[arg(long, env = "IAMGATE_SHADOW_QUEUE", default_value_t = 4096)]
    shadow_queue: usize,
    /// Ship decision-log records to this http:// or https:// URL: gzip'd
    /// JSON-array batches POSTed like OPA's decision-log plugin.
    #[arg(long, env = "IAMGATE_DECISION_LOG_HTTP")]
    decision_log_http: Option<String>,
    /// Export decision-log records as OTLP logs to this gRPC endpoint
    /// (`http://HOST:PORT`, or `https://` verified against
    /// --decision-log-otlp-ca).
    #[arg(long, env = "IAMGATE_DECISION_LOG_OTLP")]
    decision_log_otlp: Option<String>,
    /// Records a shipping sink buffers; more are dropped and counted.
    #[arg(
        long,
        env = "IAMGATE_DECISION_LOG_SHIP_BUFFER",
        default_value_t = 10_000
    )]
    decision_log_ship_buffer: usize,
    /// Largest upload batch, in bytes of JSON before compression.
    #[arg(long, env = "IAMGATE_DECISION_LOG_BATCH_BYTES", default_value_t = 1024 * 1024)]
    decision_log_batch_bytes: usize,
    /// Longest a record waits before its batch is sent, in milliseconds.
    #[arg(long, env = "IAMGATE_DECISION_LOG_FLUSH_MS", default_value_t = 1000)]
    decision_log_flush_ms: u64,
    /// Delivery attempts of one batch before it is dropped and counted.
    #[arg(long, env = "IAMGATE_DECISION_LOG_RETRIES", default_value_t = 5)]
    decision_log_retries: u32,
    /// Decision-log fields to mask, repeatable: `principal`, `resource`,
    /// `context` (all of it) or `context.KEY` (e.g. `context.aws:SourceIp`).
    #[arg(long, env = "IAMGATE_DECISION_LOG_MASK", value_delimiter = ',')]
    decision_log_mask: Vec<String>,
    /// Also log each decision's request context (masked as configured).
    #[arg(long, env = "IAMGATE_DECISION_LOG_CONTEXT")]
    decision_log_context: bool,
    /// PEM CA certificates that verify an https:// --decision-log-http
    /// (default: /etc/ssl/certs/ca-certificates.crt).
    #[arg(long, env = "IAMGATE_DECISION_LOG_HTTP_CA")]
    decision_log_http_ca: Option<PathBuf>,
    /// PEM CA certificates that verify an https:// --decision-log-otlp
    /// (default: /etc/ssl/certs/ca-certificates.crt).
    #[arg(long, env = "IAMGATE_DECISION_LOG_OTLP_CA")]
    decision_log_otlp_ca: Option<PathBuf>,
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
    /// Serve instance metadata credentials (IMDSv2's token, `iam/info`
    /// and `iam/security-credentials/`) on this address (plain HTTP): an
    /// instance of the inventory, recognised by its private IPv4 address,
    /// gets its instance profile role's credentials (needs --session-key).
    #[arg(long, env = "IAMGATE_IMDS_LISTEN")]
    imds_listen: Option<std::net::SocketAddr>,
    /// Virtual MFA devices (`aws iam list-virtual-mfa-devices` entries
    /// with their `Base32StringSeed` and user), checked for STS
    /// GetSessionToken / AssumeRole `SerialNumber` + `TokenCode` (TOTP);
    /// read at startup. Needs --sts-listen.
    #[arg(long, env = "IAMGATE_MFA_DEVICES")]
    mfa_devices: Option<PathBuf>,
}

/// A positive number of seconds.
fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!("`{s}` is not a number of seconds in (0, 86400]")),
    }
}

/// `--ec2-region`: a region name.
fn parse_region(s: &str) -> Result<String, String> {
    if iamgate::server::ext_authz::ec2::is_region(s) {
        Ok(s.to_owned())
    } else {
        Err(format!("`{s}` is not a region name (e.g. `us-east-1`)"))
    }
}

/// `--webhook-account`: a 12-digit account id.
fn parse_account(s: &str) -> Result<String, String> {
    iamgate::policy::AccountId::parse(s)
        .map(String::from)
        .map_err(|e| e.to_string())
}

impl ServeArgs {
    fn into_config(
        self,
        message_key: iamgate::sts::message::MessageKey,
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
            bundle_sources: iamgate::bundle::source::SourceSettings {
                verify_keys: self.bundle_verify_key,
                poll_interval: Duration::from_secs_f64(self.bundle_poll_interval),
                fetch_timeout: Duration::from_millis(self.bundle_fetch_timeout_ms),
                ca_file: self.bundle_ca_file,
                s3_endpoint: self.bundle_s3_endpoint,
                s3_region: self.bundle_s3_region,
                s3_path_style: self.bundle_s3_path_style,
                cache_dir: self.bundle_cache,
                long_poll: self.bundle_long_poll.map(Duration::from_secs),
            },
            webhook: match (
                self.webhook_listen,
                self.webhook_tls_cert,
                self.webhook_tls_key,
            ) {
                (Some(listen), Some(cert), Some(key)) => {
                    Some(iamgate::server::webhook::WebhookConfig {
                        listen,
                        tls: iamgate::server::tls::TlsFiles {
                            cert,
                            key,
                            client_ca: self.webhook_client_ca,
                        },
                        controller_users: self.webhook_controller_user,
                        aws_auth: self.webhook_aws_auth,
                        require_extra: self.webhook_require_extra,
                        unmapped_admission: self.webhook_unmapped,
                        implicit_deny: self.webhook_implicit_deny,
                        region: self.webhook_region,
                        account: self.webhook_account,
                        namespace_defaults: self.webhook_namespace_default,
                        controller_tags: self.webhook_resource_tag,
                        name_tag: self.webhook_name_tag,
                        resource_action: self.webhook_resource_action,
                        resource_arn: self.webhook_resource_arn,
                        non_resource_action: self.webhook_non_resource_action,
                        non_resource_arn: self.webhook_non_resource_arn,
                    })
                }
                _ => None,
            },
            fleet: iamgate::server::config::FleetSettings {
                max_changed_decisions: self.max_changed_decisions,
                decision_sample_size: self.decision_sample_size,
                decision_sample_every: self.decision_sample_every,
                shadow_bundle: self.shadow_bundle,
                shadow_sample_every: self.shadow_sample_every,
                shadow_queue: self.shadow_queue,
                log_ship: iamgate::telemetry::decision_log_ship::ShipSettings {
                    http_url: self.decision_log_http,
                    otlp_endpoint: self.decision_log_otlp,
                    buffer: self.decision_log_ship_buffer,
                    batch_bytes: self.decision_log_batch_bytes,
                    flush_interval: Duration::from_millis(self.decision_log_flush_ms),
                    retries: self.decision_log_retries,
                    mask: self.decision_log_mask,
                    log_context: self.decision_log_context,
                    http_ca: self.decision_log_http_ca,
                    otlp_ca: self.decision_log_otlp_ca,
                },
            },
            oidc_providers: self.oidc_provider,
            oidc_audiences: self.oidc_audience,
            imds_listen: self.imds_listen,
            mfa_devices: self.mfa_devices,
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
        match iamgate::sts::message::MessageKey::load_or_generate(args.message_key_file.as_deref())
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

/// jemalloc returns the pages a compile or a reload freed to the system;
/// glibc keeps them in the arena of each thread that compiled (about
/// 100 MB on a 100,000-policy bundle).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
        Command::Validate { files, kind, json } => match iamgate::registry::offline() {
            Ok(services) => commands::validate::run(
                files,
                (*kind).into(),
                &services.catalogs(),
                *json,
                &mut out,
            ),
            Err(e) => Err(std::io::Error::other(e.to_string())),
        },
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
            bundle_verify_key,
        }) => {
            match (
                bundle_load_options(*max_bundle_bytes, *allow_empty_bundle),
                iamgate::bundle::source::load_keys(bundle_verify_key),
            ) {
                (Err(e), _) => Err(e),
                (Ok(options), Ok(keys)) => {
                    commands::bundle_check::run_verified(path, options, keys, *json, &mut out)
                }
                (_, Err(e)) => Err(std::io::Error::other(e.to_string())),
            }
        }
        Command::Bundle(BundleCommand::Build {
            dir,
            output,
            sign,
            json,
            max_bundle_bytes,
            allow_empty_bundle,
        }) => bundle_load_options(*max_bundle_bytes, *allow_empty_bundle).and_then(|options| {
            commands::bundle_build::run(dir, output, sign, options, *json, &mut out)
        }),
        Command::Bundle(BundleCommand::Diff {
            old,
            new,
            requests,
            json,
            max_bundle_bytes,
        }) => commands::bundle_diff::run(
            &commands::bundle_diff::DiffArgs {
                old,
                new,
                requests,
                max_bundle_bytes: *max_bundle_bytes,
                json: *json,
            },
            &mut out,
        ),
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

/// How the bundle commands load a bundle: as `serve` does, with every
/// registered service's bundle data read (and checked).
fn bundle_load_options(
    max_bytes: u64,
    allow_empty: bool,
) -> std::io::Result<iamgate::bundle::LoadOptions> {
    let services =
        iamgate::registry::offline().map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(iamgate::bundle::LoadOptions {
        max_bytes,
        allow_empty,
        loaders: services.loaders(),
    })
}
