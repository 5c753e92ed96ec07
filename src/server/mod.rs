//! `iamgate serve`: the decision server. Thin adapters over one shared
//! decision path ([`state::AppState`]): iamgate's gRPC API, the same API as
//! HTTP/JSON, Envoy ext_authz, the admin listener (probes, status,
//! metrics), and the optional authenticated control listener (inventory
//! writes, reload, message decoding; [`control`]). This module wires
//! listeners, reloads, signals and graceful shutdown; it holds no policy
//! semantics.

pub mod admin;
pub mod config;
pub mod control;
pub mod credentials;
pub mod errors;
pub mod ext_authz;
pub mod grpc;
pub mod grpc_api;
pub mod http_api;
pub mod http_util;
pub mod imds;
pub mod inventory_api;
pub mod io;
pub mod network_api;
pub mod reload;
pub mod remote;
pub mod router;
pub mod seen;
pub mod session_keys;
pub mod shadow;
pub mod state;
pub mod streams;
pub mod sts;
pub mod sts_web_identity;
pub mod tls;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::bundle::SnapshotStore;
use crate::ec2::inventory_store::InventoryStore;
use crate::server::config::ServeConfig;
use crate::server::reload::BundleSource;
use crate::server::state::AppState;
use crate::telemetry::decision_log::LogSink;
use crate::telemetry::{DecisionLog, Frontend, Metrics};

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot load the bundle: {0}")]
    Bundle(#[from] crate::bundle::BundleError),
    #[error("cannot load the bundle: {0}")]
    Source(#[from] crate::bundle::source::SourceError),
    #[error("cannot load the bundle: the loading task failed: {0}")]
    LoadTask(#[source] tokio::task::JoinError),
    #[error("services: {0}")]
    Services(#[from] crate::service::RegistryError),
    #[error("--default-mapping: {0}")]
    DefaultMapping(#[source] ext_authz::UnknownMapping),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("decision log: {0}")]
    DecisionLog(std::io::Error),
    #[error("watching the bundle: {0}")]
    Watch(#[from] notify::Error),
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("signals: {0}")]
    Signal(std::io::Error),
    #[error("gRPC server: {0}")]
    Grpc(#[from] grpc::GrpcError),
    #[error("control listener: {0}")]
    Control(#[from] control::ControlError),
    #[error("inventory: {0}")]
    Inventory(#[from] crate::ec2::inventory_store::InventoryStoreError),
    #[error("{0}")]
    Credentials(#[from] crate::identity::CredentialsError),
    #[error("{0}")]
    Sts(#[from] sts::StsSetupError),
    #[error("webhook: {0}")]
    Webhook(#[from] webhook::WebhookError),
    #[error("{0}")]
    Imds(#[from] imds::ImdsSetupError),
}

/// The bound addresses, reported once listening (tests bind port 0).
#[derive(Debug, Clone, Copy)]
pub struct BoundAddrs {
    pub grpc: std::net::SocketAddr,
    pub http: std::net::SocketAddr,
    pub admin: std::net::SocketAddr,
    /// The control listener, when configured.
    pub control: Option<std::net::SocketAddr>,
}

async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Listen { addr, source })
}

/// Runs the server until SIGTERM or SIGINT, then drains and returns.
pub async fn run(config: ServeConfig) -> Result<(), ServerError> {
    let config = Arc::new(config);
    let metrics = Metrics::new()?;
    let store = Arc::new(SnapshotStore::new());
    // Runtime inventory changes of a previous run, replayed once the first
    // bundle seeds the inventory.
    let inventory = Arc::new(match &config.inventory_state {
        Some(dir) => InventoryStore::open(dir)?,
        None => InventoryStore::new(),
    });
    let services = Arc::new(crate::registry::builtin(inventory)?);
    ext_authz::check_default_mapping(&config.default_mapping, &services)
        .map_err(ServerError::DefaultMapping)?;
    let source = BundleSource::try_from_config(&config, &services.loaders())?;

    // The first load happens before any listener opens.
    let first = match &source {
        BundleSource::Remote(remote) => {
            remote::first_load(remote, &source, &store, &metrics, config.reload_timeout).await
        }
        _ => reload::load_bounded(&source, config.reload_timeout).await,
    };
    let first = {
        let (store, services, metrics) = (store.clone(), services.clone(), metrics.clone());
        tokio::task::spawn_blocking(move || reload::apply(&store, &services, &metrics, first))
            .await
            .map_err(ServerError::LoadTask)?
    };
    if let Err(e) = first {
        if !config.wait_for_bundle {
            return Err(ServerError::Bundle(e));
        }
        tracing::warn!("not ready: waiting for a valid bundle");
    }

    let fleet = &config.fleet;
    let diff_gate = Arc::new(crate::bundle::gate::DiffGate::new(
        Arc::new(crate::bundle::sample::RequestSample::new(
            fleet.decision_sample_size,
            fleet.decision_sample_every,
        )),
        fleet.max_changed_decisions,
    ));
    let reload = reload::spawn_gated(
        source.clone(),
        diff_gate.clone(),
        store.clone(),
        services.clone(),
        metrics.clone(),
        Duration::from_millis(300),
        config.reload_timeout,
    );
    let _watcher = match (&source, config.watch) {
        (BundleSource::Path { path, .. }, true) => Some(reload::watch(path, reload.clone())?),
        (BundleSource::Signed { path, .. }, true) => Some(reload::watch(path, reload.clone())?),
        _ => None,
    };
    if let BundleSource::Remote(remote) = &source {
        remote::spawn_poller(
            remote.clone(),
            reload.clone(),
            store.clone(),
            metrics.clone(),
        );
    }
    // A remote source has its own poller.
    let remote_source = matches!(source, BundleSource::Remote(_));
    if config.wait_for_bundle && store.load().is_none() && !remote_source {
        // Also poll, in case the bundle path does not exist yet.
        let (handle, store) = (reload.clone(), store.clone());
        tokio::spawn(async move {
            while store.load().is_none() {
                tokio::time::sleep(Duration::from_secs(2)).await;
                handle.trigger();
            }
        });
    }

    let decision_log = {
        let sink = config.decision_log.as_deref().map(|sink| {
            if sink == "-" {
                LogSink::Stdout
            } else {
                LogSink::File(sink.into())
            }
        });
        DecisionLog::start_with(
            sink,
            config.decision_log_queue,
            metrics.clone(),
            &config.fleet.log_ship,
        )
        .map_err(ServerError::DecisionLog)?
    };

    let shadow = match &fleet.shadow_bundle {
        Some(path) => shadow::Shadow::start(
            // The shadow may be promoted, so it answers to the same
            // signature keys as the main bundle.
            shadow_source(path, &config, &services.loaders())?,
            fleet.shadow_sample_every,
            fleet.shadow_queue,
            config.reload_timeout,
            metrics.clone(),
            decision_log.clone(),
        )
        .await
        .map_err(ServerError::DecisionLog)?,
        None => shadow::Shadow::disabled(),
    };
    let shadow = Arc::new(shadow);
    // The shadow bundle is watched like the main one.
    let _shadow_watcher = match (&fleet.shadow_bundle, config.watch) {
        (Some(path), true) if shadow.remote().is_none() => {
            let (sh, timeout) = (shadow.clone(), config.reload_timeout);
            let handle = reload::trigger_task(Duration::from_millis(300), move || {
                let sh = sh.clone();
                async move {
                    let _ = sh.reload(timeout).await;
                }
            });
            Some(reload::watch(path, handle)?)
        }
        _ => None,
    };
    // A remote shadow source is polled instead.
    if let Some(remote) = shadow.remote() {
        remote::spawn_shadow_poller(
            remote,
            shadow.clone(),
            metrics.clone(),
            config.reload_timeout,
        );
    }
    let state = AppState::new(store, metrics, config.clone(), decision_log, reload.clone())
        .with_fleet(diff_gate, shadow)
        .with_services(services.clone());
    let state = sts::with_session_keys(state, &config)?;
    let state = sts_web_identity::with_oidc_providers(state, &config)?;
    let credentials = match &config.credentials {
        Some(path) => {
            let file = credentials::CredentialsFile::open(path, state.credentials.clone())?;
            file.poll(Duration::from_secs(2));
            Some(file)
        }
        None => None,
    };
    // Issue 13: the session key file is re-read like the credentials file.
    if let (Some(path), Some(keys)) = (&config.session_key, &state.sessions) {
        session_keys::SessionKeyFile::new(path, keys.clone(), state.metrics.clone())
            .watch(Duration::from_secs(2));
    }
    if credentials.is_none() && config.ec2.auth == config::Ec2Auth::SigV4 {
        tracing::warn!("--ec2-auth sigv4 without --credentials: every signed request is refused");
    }
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let grpc_server = grpc::GrpcServer::new(state.clone())?;
    // Credentials are checked before any listener opens.
    let control = match &config.control {
        Some(c) => Some((control::Control::new(state.clone(), c)?, c.listen)),
        None => {
            tracing::info!(
                "no --control-listen: inventory writes, reloads over the API and message decoding are not served"
            );
            None
        }
    };
    let grpc = bind(config.grpc_listen).await?;
    let http = bind(config.http_listen).await?;
    let admin = bind(config.admin_listen).await?;
    let control = match control {
        Some((c, addr)) => Some((c, bind(addr).await?)),
        None => None,
    };
    let addrs = BoundAddrs {
        grpc: grpc.local_addr().unwrap_or(config.grpc_listen),
        http: http.local_addr().unwrap_or(config.http_listen),
        admin: admin.local_addr().unwrap_or(config.admin_listen),
        control: control.as_ref().and_then(|(_, l)| l.local_addr().ok()),
    };
    // Kubernetes webhooks: HTTPS only, on their own listener.
    let webhook = match &config.webhook {
        Some(w) => {
            let hook = Arc::new(webhook::Webhook::new(w.clone())?);
            hook.watch_aws_auth(Duration::from_secs(2));
            let tls = tls::ReloadingAcceptor::start(
                w.tls.clone(),
                &[b"h2", b"http/1.1"],
                Duration::from_secs(2),
            )?;
            Some((hook, tls, bind(w.listen).await?))
        }
        None => None,
    };
    let webhook_addr = webhook.as_ref().and_then(|(_, _, l)| l.local_addr().ok());
    let token_file = control.as_ref().and_then(|(c, _)| c.token_file().cloned());
    let drain = Duration::from_secs(10);
    // TLS on the API listeners (HTTP/JSON and gRPC); admin stays plain on
    // loopback for probes and scrapers.
    let api_tls = match &config.tls {
        Some(files) => Some(
            tls::ReloadingAcceptor::start(
                files.clone(),
                &[b"h2", b"http/1.1"],
                Duration::from_secs(2),
            )
            .map_err(ServerError::Tls)?,
        ),
        None => None,
    };
    let (api_options, admin_options) = listener_options(&config, drain, api_tls);
    let webhook_options = api_options.clone();
    let mut tasks = Vec::new();
    // The STS listener: the API listeners' limits and TLS (when
    // configured).
    let sts_addr = match config.sts_listen {
        Some(addr) => {
            let listener = bind(addr).await?;
            let bound = listener.local_addr().unwrap_or(addr);
            // Shared, not cloned per request (a clone of `AppState` copies
            // each of its handles).
            let state = Arc::new(state.clone());
            tasks.push(tokio::spawn(http_util::serve(
                listener,
                move |req, peer| sts::handle(state.clone(), req, peer),
                shutdown_rx.clone(),
                api_options.clone(),
            )));
            Some(bound)
        }
        None => None,
    };
    // The instance metadata listener: plain HTTP, as IMDS is.
    let imds_addr = match config.imds_listen {
        Some(addr) => {
            imds::check_setup(&state)?;
            let listener = bind(addr).await?;
            let bound = listener.local_addr().unwrap_or(addr);
            let state = Arc::new(state.clone());
            let mut options = api_options.clone();
            options.tls = None;
            tasks.push(tokio::spawn(http_util::serve(
                listener,
                move |req, peer| imds::handle(state.clone(), req, peer),
                shutdown_rx.clone(),
                options,
            )));
            Some(bound)
        }
        None => None,
    };
    tasks.push(tokio::spawn(grpc_server.serve(
        grpc,
        shutdown_rx.clone(),
        api_options.clone(),
    )));
    // Shared by the routers, not cloned per request (a clone of
    // `AppState` copies each of its handles).
    let shared = std::sync::Arc::new(state.clone());
    let errors = |frontend| router::ErrorCounter {
        metrics: state.metrics.clone(),
        frontend,
    };
    tasks.push(tokio::spawn(router::serve(
        http,
        http_api::router(shared.clone()),
        Some(errors(Frontend::Http)),
        shutdown_rx.clone(),
        api_options,
    )));
    // The admin listener counts no errors: probes and scrapes are not
    // requests of a front door.
    tasks.push(tokio::spawn(router::serve(
        admin,
        admin::router(shared.clone()),
        None,
        shutdown_rx.clone(),
        admin_options,
    )));
    if let Some((hook, tls, listener)) = webhook {
        let options = http_util::ServeOptions {
            tls: Some(tls),
            ..webhook_options
        };
        tasks.push(tokio::spawn(router::serve(
            listener,
            webhook::router(shared.clone(), hook),
            Some(errors(Frontend::Webhook)),
            shutdown_rx.clone(),
            options,
        )));
    }
    if let Some((control, listener)) = control {
        tasks.push(tokio::spawn(control.serve(
            listener,
            shutdown_rx.clone(),
            drain,
        )));
    }
    tracing::info!(
        grpc = %addrs.grpc,
        http = %addrs.http,
        admin = %addrs.admin,
        control = ?addrs.control,
        "iamgate serving"
    );
    let signals = Signals::register()?;
    // A machine-readable line for scripts and tests that bind port 0.
    let mut listening = serde_json::json!({
        "grpc": addrs.grpc.to_string(),
        "http": addrs.http.to_string(),
        "admin": addrs.admin.to_string(),
    });
    if let Some(c) = addrs.control {
        listening["control"] = serde_json::Value::String(c.to_string());
    }
    if let Some(a) = sts_addr {
        listening["sts"] = serde_json::Value::String(a.to_string());
    }
    if let Some(a) = imds_addr {
        listening["imds"] = serde_json::Value::String(a.to_string());
    }
    if let Some(w) = webhook_addr {
        listening["webhook"] = serde_json::Value::String(w.to_string());
    }
    println!("{}", serde_json::json!({ "listening": listening }));

    signals
        .wait(&reload, token_file.as_ref(), credentials.as_ref())
        .await;
    tracing::info!("shutting down: draining connections");
    let _ = shutdown_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    // Decision-log records still queued are written and shipped.
    state.decision_log.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

/// How the API listeners (each) and the admin listener serve connections:
/// TLS on the API listeners only, and connection limits fitted to the
/// open-files limit so that connections alone cannot exhaust descriptors.
fn listener_options(
    config: &ServeConfig,
    drain: Duration,
    api_tls: Option<tls::ReloadingAcceptor>,
) -> (http_util::ServeOptions, http_util::ServeOptions) {
    let l = config.listeners;
    let nofile = io::open_files_limit();
    let (api, admin) = io::fit_connection_limits(
        l.max_connections,
        config::ListenerLimits::DEFAULT_MAX_CONNECTIONS,
        l.admin_max_connections,
        nofile,
    );
    tracing::info!(
        api_max_connections = api,
        admin_max_connections = admin,
        open_files_limit = nofile,
        "connection limits"
    );
    let limits = |max_connections| io::ConnLimits {
        max_connections,
        header_read_timeout: l.header_read_timeout,
        idle_timeout: l.idle_timeout,
    };
    let api_options = http_util::ServeOptions {
        max_headers: config.limits.max_headers,
        drain,
        tls: api_tls,
        limits: limits(api),
        http2_only: false,
    };
    let admin_options = http_util::ServeOptions {
        tls: None,
        limits: limits(admin),
        ..api_options.clone()
    };
    (api_options, admin_options)
}

/// Signal handlers, registered before the server announces itself so that
/// an early SIGTERM still drains and exits cleanly.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> Result<Self, ServerError> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).map_err(ServerError::Signal)?,
            int: signal(SignalKind::interrupt()).map_err(ServerError::Signal)?,
            hup: signal(SignalKind::hangup()).map_err(ServerError::Signal)?,
        })
    }

    /// Returns on SIGTERM or SIGINT; SIGHUP triggers a reload (and re-reads
    /// the control token file and the credentials file).
    async fn wait(
        mut self,
        reload: &reload::ReloadHandle,
        token: Option<&control::TokenFile>,
        credentials: Option<&credentials::CredentialsFile>,
    ) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => {
                    tracing::info!("SIGHUP: reloading");
                    reload.trigger();
                    if let Some(token) = token {
                        let token = token.clone();
                        let _ = tokio::task::spawn_blocking(move || token.reload()).await;
                    }
                    if let Some(file) = credentials {
                        let file = file.clone();
                        let _ = tokio::task::spawn_blocking(move || file.reload(true)).await;
                    }
                }
            }
        }
    }
}

/// `--shadow-bundle` as a source: a local path, signed when
/// `--bundle-verify-key` is set (a promoted shadow becomes the active
/// snapshot, so it must pass the same signature check).
fn shadow_source(
    path: &std::path::Path,
    config: &ServeConfig,
    loaders: &crate::bundle::service_data::DataLoaders,
) -> Result<BundleSource, crate::bundle::source::SourceError> {
    let options = crate::bundle::LoadOptions {
        max_bytes: config.max_bundle_bytes,
        allow_empty: config.allow_empty_bundle,
        loaders: loaders.clone(),
    };
    let keys = crate::bundle::source::load_keys(&config.bundle_sources.verify_keys)?;
    // A URL: fetched and polled like the main source, but never cached
    // (the cache holds the main source's last-known-good).
    let text = path.to_string_lossy();
    if crate::bundle::source::is_remote(&text) {
        let settings = crate::bundle::source::SourceSettings {
            cache_dir: None,
            ..config.bundle_sources.clone()
        };
        let remote = crate::bundle::source::RemoteBundle::new(&text, &settings, options, keys)?;
        return Ok(BundleSource::Remote(Arc::new(remote)));
    }
    Ok(if keys.is_empty() {
        BundleSource::Path {
            path: path.to_path_buf(),
            options,
        }
    } else {
        BundleSource::Signed {
            path: path.to_path_buf(),
            options,
            keys: Arc::new(keys),
        }
    })
}
