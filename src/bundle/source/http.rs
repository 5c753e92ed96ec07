//! Conditional GETs of a bundle over HTTP/1.1 (plain or TLS with rustls):
//! `If-None-Match` with the last ETag, so an unchanged bundle costs a 304
//! and no body. The body is bounded by the bundle size limit (checked on
//! `Content-Length` and on the bytes actually received) and the whole
//! exchange by a timeout. Redirects are not followed: the configured URL
//! is the source.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use thiserror::Error;

/// The error under a [`FetchError`], shared so that the error stays
/// `Clone`.
pub type ErrorSource = Arc<dyn std::error::Error + Send + Sync>;

/// Why a fetch failed (the running snapshot keeps serving).
#[derive(Debug, Clone, Error)]
pub enum FetchError {
    #[error("`{0}` is not an http(s) URL with a host")]
    Url(String),
    #[error("connecting to `{addr}`: {source}")]
    Connect {
        addr: String,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error("TLS: {0}")]
    Tls(#[source] ErrorSource),
    #[error("TLS: `{host}` is not a server name: {source}")]
    ServerName {
        host: String,
        #[source]
        source: Arc<rustls_pki_types::InvalidDnsNameError>,
    },
    #[error("HTTP: {0}")]
    Http(#[source] ErrorSource),
    #[error("the server answered {status}")]
    Status { status: u16 },
    #[error("the bundle exceeds {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("no answer within {seconds} s")]
    Timeout { seconds: f64 },
    #[error("{0}")]
    Credentials(String),
    #[error("signing the request: {0}")]
    Signing(String),
}

/// What a conditional GET brought.
#[derive(Debug, Clone)]
pub enum Fetched {
    /// 304: the bundle behind the ETag sent is still current.
    NotModified,
    /// 200: a bundle, and its ETag if the server gave one.
    Body {
        bytes: Vec<u8>,
        etag: Option<String>,
    },
}

/// How to reach bundle servers: TLS trust, limits, timeout.
#[derive(Clone)]
pub struct HttpClient {
    tls: Arc<rustls::ClientConfig>,
    max_bytes: u64,
    timeout: Duration,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("max_bytes", &self.max_bytes)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The system's CA bundle, used when no `--bundle-ca-file` is given.
const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

impl HttpClient {
    /// A client trusting the CAs of `ca_file` (PEM), or the system's CA
    /// bundle without one.
    pub fn new(
        ca_file: Option<&std::path::Path>,
        max_bytes: u64,
        timeout: Duration,
    ) -> Result<Self, FetchError> {
        let roots = match ca_file {
            // The operator's file: every certificate in it must be usable.
            Some(path) => {
                crate::tls_roots::read_roots(path).map_err(|e| FetchError::Tls(Arc::new(e)))?
            }
            // The system's bundle: whatever in it parses (one odd entry
            // must not stop an http:// source from starting); without one,
            // https works only with --bundle-ca-file.
            None => {
                let mut roots = rustls::RootCertStore::empty();
                if let Ok(certs) = CertificateDer::pem_file_iter(SYSTEM_CA_FILE) {
                    roots.add_parsable_certificates(certs.filter_map(Result::ok));
                }
                roots
            }
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| FetchError::Tls(Arc::new(e)))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            tls: Arc::new(tls),
            max_bytes,
            timeout,
        })
    }

    /// GETs `url` with `headers`, sending `If-None-Match: etag` when given.
    pub async fn get(
        &self,
        url: &str,
        headers: &[(String, String)],
        etag: Option<&str>,
    ) -> Result<Fetched, FetchError> {
        self.get_waiting(url, headers, etag, None)
            .await
            .map(|(f, _)| f)
    }

    /// As [`HttpClient::get`], and with `wait` asks the server to hold the
    /// request until the bundle changes or `wait` passes (long polling,
    /// RFC 7240 `Prefer: wait=N`); the timeout grows by `wait`. Also says
    /// whether the server applied the preference (`Preference-Applied`).
    pub async fn get_waiting(
        &self,
        url: &str,
        headers: &[(String, String)],
        etag: Option<&str>,
        wait: Option<Duration>,
    ) -> Result<(Fetched, bool), FetchError> {
        let mut headers = headers.to_vec();
        let mut timeout = self.timeout;
        if let Some(wait) = wait {
            headers.push(("prefer".to_owned(), format!("wait={}", wait.as_secs())));
            timeout = timeout.saturating_add(wait);
        }
        let seconds = timeout.as_secs_f64();
        tokio::time::timeout(timeout, self.get_inner(url, &headers, etag))
            .await
            .map_err(|_| FetchError::Timeout { seconds })?
    }

    async fn get_inner(
        &self,
        url: &str,
        headers: &[(String, String)],
        etag: Option<&str>,
    ) -> Result<(Fetched, bool), FetchError> {
        let uri: Uri = url.parse().map_err(|_| FetchError::Url(url.to_owned()))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(FetchError::Url(url.to_owned())),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| FetchError::Url(url.to_owned()))?
            .clone();
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let addr = format!("{}:{port}", authority.host());
        let tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .map_err(|e| FetchError::Connect {
                addr: addr.clone(),
                source: Arc::new(e),
            })?;
        let _ = tcp.set_nodelay(true);
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());
        let mut req = Request::get(path)
            .header(http::header::HOST, authority.as_str())
            .header(
                http::header::USER_AGENT,
                concat!("iamgate/", env!("CARGO_PKG_VERSION")),
            );
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(etag) = etag {
            req = req.header(http::header::IF_NONE_MATCH, etag);
        }
        let req = req
            .body(Empty::<bytes::Bytes>::new())
            .map_err(|e| FetchError::Http(Arc::new(e)))?;
        if tls {
            let name =
                ServerName::try_from(host.to_owned()).map_err(|e| FetchError::ServerName {
                    host: host.to_owned(),
                    source: Arc::new(e),
                })?;
            let stream = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| FetchError::Tls(Arc::new(e)))?;
            self.exchange(TokioIo::new(stream), req).await
        } else {
            self.exchange(TokioIo::new(tcp), req).await
        }
    }

    async fn exchange<T>(
        &self,
        io: TokioIo<T>,
        req: Request<Empty<bytes::Bytes>>,
    ) -> Result<(Fetched, bool), FetchError>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let http = |e: hyper::Error| FetchError::Http(Arc::new(e));
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(http)?;
        let driver = tokio::spawn(conn);
        let result = async {
            let resp = sender.send_request(req).await.map_err(http)?;
            let waited = resp
                .headers()
                .get_all("preference-applied")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.split(',').any(|p| p.trim().starts_with("wait")));
            match resp.status() {
                StatusCode::NOT_MODIFIED => return Ok((Fetched::NotModified, waited)),
                StatusCode::OK => {}
                other => {
                    return Err(FetchError::Status {
                        status: other.as_u16(),
                    });
                }
            }
            let etag = resp
                .headers()
                .get(http::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let too_large = FetchError::TooLarge {
                limit: self.max_bytes,
            };
            let declared = resp
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > self.max_bytes) {
                return Err(too_large);
            }
            let mut body = resp.into_body();
            let mut bytes = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(http)?;
                if let Ok(data) = frame.into_data() {
                    let total =
                        u64::try_from(bytes.len().saturating_add(data.len())).unwrap_or(u64::MAX);
                    if total > self.max_bytes {
                        return Err(too_large);
                    }
                    bytes.extend_from_slice(&data);
                }
            }
            Ok((Fetched::Body { bytes, etag }, waited))
        }
        .await;
        driver.abort();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Failures keep what caused them: a refused connection its io error,
    /// a server that drops the connection hyper's error.
    #[tokio::test]
    async fn failures_keep_their_cause() {
        let client = HttpClient::new(None, 1024, Duration::from_secs(5)).unwrap();
        // A port that was just free: nothing listens there.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = client
            .get(&format!("http://{closed}/b.tar.gz"), &[], None)
            .await
            .unwrap_err();
        let FetchError::Connect { source, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(e.to_string().starts_with("connecting to `"), "{e}");

        // A server that accepts and closes at once.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                drop(conn);
            }
        });
        let e = client
            .get(&format!("http://{addr}/b.tar.gz"), &[], None)
            .await
            .unwrap_err();
        let FetchError::Http(source) = &e else {
            panic!("{e:?}")
        };
        assert!(source.downcast_ref::<hyper::Error>().is_some(), "{e:?}");
    }
}
