//! TLS for the API listeners: certificate and key from PEM files, optional
//! client-certificate verification, and hot reload (the files are re-read
//! when they change, so rotated certificates take effect without a
//! restart; a broken pair keeps the previous configuration serving).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Where the TLS material lives.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA bundle for verifying client certificates; `None` disables mTLS.
    pub client_ca: Option<PathBuf>,
}

/// Why TLS material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("`{0}` holds no certificate")]
    NoCertificate(String),
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn read_err(path: &Path, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> TlsError {
    TlsError::Read {
        path: path.display().to_string(),
        source: e.into(),
    }
}

impl TlsFiles {
    /// Builds a rustls server configuration offering `alpn` protocols.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<ServerConfig, TlsError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|e| read_err(&self.cert, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| read_err(&self.cert, e))?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificate(self.cert.display().to_string()));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| read_err(&self.key, e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                use crate::tls_roots::CaError;
                let roots = crate::tls_roots::read_roots(ca).map_err(|e| match e {
                    CaError::Read { source, .. } => read_err(ca, source),
                    CaError::Certificate { source, .. } => TlsError::Config(source.to_string()),
                    CaError::Empty { .. } => TlsError::Config(e.to_string()),
                })?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| TlsError::Config(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }

    fn stamp(&self) -> Vec<Option<SystemTime>> {
        let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let mut v = vec![mtime(&self.cert), mtime(&self.key)];
        if let Some(ca) = &self.client_ca {
            v.push(mtime(ca));
        }
        v
    }
}

/// A TLS acceptor whose configuration follows the files on disk.
#[derive(Clone)]
pub struct ReloadingAcceptor {
    current: Arc<ArcSwap<ServerConfig>>,
}

impl std::fmt::Debug for ReloadingAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReloadingAcceptor")
    }
}

impl ReloadingAcceptor {
    /// Loads the files now (failing if they are unusable) and re-reads them
    /// every `interval` when their modification times change.
    pub fn start(
        files: TlsFiles,
        alpn: &'static [&'static [u8]],
        interval: Duration,
    ) -> Result<Self, TlsError> {
        let current = Arc::new(ArcSwap::from_pointee(files.server_config(alpn)?));
        let swap = current.clone();
        tokio::spawn(async move {
            let mut seen = files.stamp();
            loop {
                tokio::time::sleep(interval).await;
                let now = files.stamp();
                if now == seen {
                    continue;
                }
                seen = now;
                match files.server_config(alpn) {
                    Ok(c) => {
                        swap.store(Arc::new(c));
                        tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "TLS files unusable; keeping the previous certificate");
                    }
                }
            }
        });
        Ok(Self { current })
    }

    /// Performs the server handshake with the current configuration.
    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        TlsAcceptor::from(self.current.load_full())
            .accept(stream)
            .await
    }
}
