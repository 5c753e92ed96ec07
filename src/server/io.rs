//! Connections of the listeners before HTTP: accepting them within a
//! per-listener connection limit, backing off when `accept` fails (out of
//! file descriptors, say) instead of spinning, the descriptor budget that
//! the limits are fitted to, and a wrapper that shapes h2's writes.
//!
//! What a connection may do once accepted (header and idle timeouts,
//! graceful shutdown) is `http_util`'s.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// First pause after `accept` fails for a reason other than the one
/// connection (e.g. `EMFILE`); it doubles up to [`ACCEPT_BACKOFF_MAX`].
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest pause between failing `accept`s.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(100);

/// Limits of one listener's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Open connections at most; a connection beyond is closed at once.
    pub max_connections: usize,
    /// Time for a new connection's TLS handshake and first request
    /// headers, and for each later request's headers over HTTP/1.1.
    pub header_read_timeout: Duration,
    /// A connection with no new request for this long is closed
    /// gracefully (HTTP/2: GOAWAY; requests in flight finish).
    pub idle_timeout: Duration,
}

/// Where connections come from: a TCP listener, or a test's fake.
pub trait Listen: Send {
    /// An accepted connection.
    type Conn: Send;
    /// Accepts the next connection.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Conn, SocketAddr)>> + Send;
}

impl Listen for TcpListener {
    type Conn = TcpStream;

    fn accept(&mut self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send {
        TcpListener::accept(self)
    }
}

/// A connection admitted within the limit; the permit goes back when it is
/// dropped (with the connection's task).
#[derive(Debug)]
pub struct Admitted<C> {
    pub conn: C,
    pub peer: SocketAddr,
    pub permit: OwnedSemaphorePermit,
}

/// Accepts connections of one listener within its connection limit.
#[derive(Debug)]
pub struct Acceptor<L> {
    listener: L,
    permits: Arc<Semaphore>,
    max: usize,
    /// The next pause after a failing `accept`; reset by a success.
    backoff: Duration,
    /// Whether the listener is refusing connections over its limit (logged
    /// once per episode).
    refusing: bool,
}

impl<L: Listen> Acceptor<L> {
    /// An acceptor admitting at most `max_connections` at a time (at least
    /// one).
    pub fn new(listener: L, max_connections: usize) -> Self {
        let max = max_connections.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            listener,
            permits: Arc::new(Semaphore::new(max)),
            max,
            backoff: ACCEPT_BACKOFF_MIN,
            refusing: false,
        }
    }

    /// The next connection within the limit. A connection over the limit
    /// is closed at once (dropped); an `accept` error about one connection
    /// (reset or aborted before it was accepted) is skipped; any other
    /// error (out of file descriptors, out of memory) pauses, 10 ms at
    /// first and doubling up to 100 ms, so a listener that cannot accept
    /// sleeps instead of spinning and accepts again once it can.
    pub async fn accept(&mut self) -> Admitted<L::Conn> {
        loop {
            match self.listener.accept().await {
                Ok((conn, peer)) => {
                    self.backoff = ACCEPT_BACKOFF_MIN;
                    match self.permits.clone().try_acquire_owned() {
                        Ok(permit) => {
                            self.refusing = false;
                            return Admitted { conn, peer, permit };
                        }
                        Err(_) => {
                            if !self.refusing {
                                tracing::warn!(
                                    limit = self.max,
                                    %peer,
                                    "connection limit reached: closing new connections"
                                );
                                self.refusing = true;
                            }
                            drop(conn);
                        }
                    }
                }
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    if self.backoff == ACCEPT_BACKOFF_MIN {
                        tracing::warn!(error = %e, "accept failed; backing off");
                    }
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
            }
        }
    }

    /// Stops accepting (drops the listener, so new clients are refused by
    /// the kernel) and waits, at most `drain`, until every admitted
    /// connection has ended.
    pub async fn drain(self, drain: Duration) {
        let Self {
            listener,
            permits,
            max,
            ..
        } = self;
        drop(listener);
        let all = u32::try_from(max).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(drain, permits.acquire_many(all)).await;
    }
}

/// Errors that concern one connection, not the listener: try again at once.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Descriptors kept for everything but connections (bundle files, logs,
/// the watcher, TLS files, the runtime), at most a quarter of the limit.
const RESERVED_DESCRIPTORS: u64 = 64;

/// The connection limits of the API listeners (each) and of the admin
/// listener, fitted to the process's open-files limit `nofile` so that
/// connections alone can never exhaust the descriptors: the admin listener
/// keeps its own share and stays answerable while the API listeners are
/// flooded. `api` is the operator's `--max-connections`, or `None` for the
/// largest share that fits (at most `default_api`); `admin` is capped to
/// an eighth of the limit.
pub fn fit_connection_limits(
    api: Option<usize>,
    default_api: usize,
    admin: usize,
    nofile: Option<u64>,
) -> (usize, usize) {
    let Some(nofile) = nofile else {
        return (api.unwrap_or(default_api), admin);
    };
    let as_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let reserved = RESERVED_DESCRIPTORS.min(nofile / 4);
    let admin = admin.min(as_usize(nofile / 8)).max(1);
    let share = as_usize(nofile.saturating_sub(reserved) / 2).saturating_sub(admin / 2);
    let fitted = share.max(1);
    match api {
        Some(n) => {
            if n > fitted {
                tracing::warn!(
                    max_connections = n,
                    open_files_limit = nofile,
                    fits = fitted,
                    "--max-connections exceeds what the open-files limit allows; \
                     a flood can exhaust descriptors (accept then backs off)"
                );
            }
            (n, admin)
        }
        None => (default_api.min(fitted), admin),
    }
}

/// The soft limit on open files of this process (`RLIMIT_NOFILE`), read
/// from `/proc/self/limits`; `None` where that is not available or the
/// limit is unlimited.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files(&limits)
}

fn parse_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.strip_prefix("Max open files")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A connection that tells h2 it has no vectored writes. h2 then copies
/// DATA payloads under 1 KiB into its write buffer instead of chaining
/// payloads of 256 bytes or more as a separate buffer (which ends the
/// write), so each answer leaves in one write rather than two. Measured on
/// the load benchmark: about 5 µs of server CPU saved per ext_authz Check.
#[derive(Debug)]
pub struct NoVectored<T>(pub T);

/// For tonic's own server (the load benchmark's null server uses it).
impl<T: tonic::transport::server::Connected> tonic::transport::server::Connected for NoVectored<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.connect_info()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for NoVectored<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for NoVectored<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A listener that plays back accept results, then fails with `EMFILE`
    /// forever; counts its calls.
    struct Script {
        results: VecDeque<io::Result<u32>>,
        calls: Arc<AtomicUsize>,
    }

    impl Listen for Script {
        type Conn = u32;

        async fn accept(&mut self) -> io::Result<(u32, SocketAddr)> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let peer = SocketAddr::from(([127, 0, 0, 1], 9));
            match self.results.pop_front() {
                Some(r) => r.map(|c| (c, peer)),
                None => Err(io::Error::from_raw_os_error(24)), // EMFILE
            }
        }
    }

    fn script(results: Vec<io::Result<u32>>) -> (Script, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let s = Script {
            results: results.into(),
            calls: calls.clone(),
        };
        (s, calls)
    }

    /// Issue 11, item 13: out of descriptors, `accept` fails at once, every
    /// time; the loop sleeps between tries (10 ms, doubling to 100 ms)
    /// instead of spinning.
    #[tokio::test]
    async fn failing_accept_backs_off() {
        let (listener, calls) = script(vec![]);
        let mut acceptor = Acceptor::new(listener, 4);
        let waited = tokio::time::timeout(Duration::from_millis(600), acceptor.accept()).await;
        assert!(waited.is_err(), "no connection can be accepted");
        // 10 + 20 + 40 + 80 ms, then one try per 100 ms: 9 or 10 tries
        // (a spinning loop makes millions).
        let n = calls.load(Ordering::Relaxed);
        assert!((5..=12).contains(&n), "{n} accept calls in 600 ms");
    }

    /// Errors about one connection are skipped at once; a success resets
    /// the backoff.
    #[tokio::test]
    async fn connection_errors_do_not_pause() {
        let aborted = || Err(io::Error::from(io::ErrorKind::ConnectionAborted));
        let emfile = || Err(io::Error::from_raw_os_error(24));
        let (listener, calls) = script(vec![aborted(), aborted(), Ok(1), emfile(), Ok(2)]);
        let mut acceptor = Acceptor::new(listener, 4);
        let start = tokio::time::Instant::now();
        assert_eq!(acceptor.accept().await.conn, 1);
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        assert!(start.elapsed() < ACCEPT_BACKOFF_MIN);
        assert_eq!(acceptor.accept().await.conn, 2);
        assert!(start.elapsed() >= ACCEPT_BACKOFF_MIN);
        assert_eq!(acceptor.backoff, ACCEPT_BACKOFF_MIN);
    }

    /// Over the limit, a new connection is dropped at once and the next one
    /// waits for a permit to come back.
    #[tokio::test]
    async fn connections_over_the_limit_are_closed() {
        let (listener, calls) = script(vec![Ok(1), Ok(2), Ok(3), Ok(4)]);
        let mut acceptor = Acceptor::new(listener, 2);
        let first = acceptor.accept().await;
        let second = acceptor.accept().await;
        assert_eq!((first.conn, second.conn), (1, 2));
        // 3 and 4 are refused; then only EMFILE is left.
        let none = tokio::time::timeout(Duration::from_millis(50), acceptor.accept()).await;
        assert!(none.is_err());
        assert!(calls.load(Ordering::Relaxed) >= 4);
        drop(first);
        assert_eq!(acceptor.permits.available_permits(), 1);
    }

    #[test]
    fn limits_fit_the_descriptor_budget() {
        // No limit known: the configured values.
        assert_eq!(fit_connection_limits(None, 1024, 64, None), (1024, 64));
        // Plenty of descriptors: the defaults.
        assert_eq!(
            fit_connection_limits(None, 1024, 64, Some(1 << 20)),
            (1024, 64)
        );
        // 256 descriptors: 64 reserved, 32 for admin, the rest shared.
        let (api, admin) = fit_connection_limits(None, 1024, 64, Some(256));
        assert_eq!(admin, 32);
        assert!(2 * api + admin + 64 <= 256, "{api}");
        assert_eq!(api, 80);
        // An explicit value is kept (and warned about).
        assert_eq!(
            fit_connection_limits(Some(5000), 1024, 64, Some(256)),
            (5000, 32)
        );
        // Tiny limits still admit one connection each.
        assert_eq!(fit_connection_limits(None, 1024, 64, Some(4)), (1, 1));
    }

    #[test]
    fn open_files_limit_parses() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max open files            1024                 524288               files     \n";
        assert_eq!(parse_open_files(text), Some(1024));
        assert_eq!(
            parse_open_files("Max open files            unlimited            unlimited  files"),
            None
        );
        assert!(open_files_limit().is_some_and(|n| n > 0));
    }
}
