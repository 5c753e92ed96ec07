//! The HTTP/2 streams of one connection, run inside that connection's own
//! task ([`ConnStreams`] is the executor hyper hands each stream to,
//! [`Served`] the connection future that runs them). Owns nothing else:
//! limits and timeouts are `http_util`'s.
//!
//! Why not a task per stream (hyper's default, `TokioExecutor`): a stream's
//! answer wakes the connection's task to write it, and tokio runs a task
//! woken from a worker next (its LIFO slot), so every answer was written
//! and sent on its own: one `sendto` per request, each waking the peer. Run
//! here, the answers to the requests one read brought are all queued before
//! the connection writes, and leave in one write: under the load bench the
//! same server sent one `sendto` per ~15 requests instead of one per
//! request, and served about twice the gRPC requests per core
//! (README, "Server"). The price: the streams of one connection share one
//! core at a time; a client wanting more opens more connections (Envoy
//! opens one per worker). Work that may take long (session policies,
//! batches) already moves off the async workers.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_util::stream::{FuturesUnordered, StreamExt};
use hyper_util::server::graceful::GracefulConnection;

type StreamFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How many times one poll of [`Served`] may go round (read, answer,
/// write) before it yields to the runtime's other tasks.
const ROUNDS: usize = 4;

/// The executor of one connection's streams: hyper hands it each stream
/// it accepts, and the connection's [`Served`] runs them.
#[derive(Clone, Default)]
pub struct ConnStreams(Arc<Mutex<Vec<StreamFuture>>>);

impl ConnStreams {
    fn take(&self) -> Vec<StreamFuture> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl<F> hyper::rt::Executor<F> for ConnStreams
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::pin(fut));
    }
}

/// A connection and the streams it started: done when the connection is
/// and every stream has finished.
pub struct Served<C> {
    conn: Pin<Box<C>>,
    closed: bool,
    queue: ConnStreams,
    running: FuturesUnordered<StreamFuture>,
}

impl<C: GracefulConnection> Served<C> {
    /// `conn`, whose streams `queue` (its builder's executor) receives.
    pub fn new(conn: C, queue: ConnStreams) -> Self {
        Self {
            conn: Box::pin(conn),
            closed: false,
            queue,
            running: FuturesUnordered::new(),
        }
    }

    /// Starts a graceful close of the connection: no new streams; the
    /// ones in flight finish.
    pub fn graceful_shutdown(&mut self) {
        self.conn.as_mut().graceful_shutdown();
    }
}

impl<C: GracefulConnection> Future for Served<C> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Each round: the connection reads what has arrived, starts its
        // streams and writes what earlier rounds answered; then the
        // streams run. Wakers keep this correct whatever the rounds do:
        // the rounds only let answers leave together without waiting for
        // the scheduler.
        for _ in 0..ROUNDS {
            if !this.closed && this.conn.as_mut().poll(cx).is_ready() {
                // Its error (a reset, a protocol error) ends the
                // connection; there is no one to tell.
                this.closed = true;
            }
            let started = this.queue.take();
            let mut progressed = !started.is_empty();
            this.running.extend(started);
            while let Poll::Ready(Some(())) = this.running.poll_next_unpin(cx) {
                progressed = true;
            }
            if this.closed && this.running.is_empty() {
                return Poll::Ready(());
            }
            if !progressed {
                return Poll::Pending;
            }
        }
        // More may be ready; let other tasks run first.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::rt::Executor;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use std::io;
    use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};

    #[test]
    fn streams_handed_to_the_executor_are_queued_for_the_connection() {
        let queue = ConnStreams::default();
        queue.execute(async {});
        queue.clone().execute(async {});
        assert_eq!(queue.take().len(), 2);
        assert!(queue.take().is_empty());
    }

    /// The server's side of a connection, keeping every write it makes.
    struct Recorded {
        io: DuplexStream,
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    impl AsyncRead for Recorded {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Recorded {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = &mut *self;
            let written = Pin::new(&mut this.io).poll_write(cx, buf);
            if let Poll::Ready(Ok(n)) = written {
                this.writes.lock().unwrap().push(buf[..n].to_vec());
            }
            written
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_shutdown(cx)
        }
    }

    const REQUESTS: u32 = 8;

    /// An HTTP/2 client's first bytes: the preface, empty SETTINGS and
    /// `REQUESTS` bodiless `GET /` requests, all in one piece.
    fn requests_in_one_piece() -> Vec<u8> {
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        out.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
        for i in 0..REQUESTS {
            // HEADERS, END_STREAM | END_HEADERS; `:method GET`, `:scheme
            // http`, `:path /` from HPACK's static table.
            out.extend_from_slice(&[0, 0, 3, 0x1, 0x5]);
            out.extend_from_slice(&(2 * i + 1).to_be_bytes());
            out.extend_from_slice(&[0x82, 0x86, 0x84]);
        }
        out
    }

    /// The HTTP/2 frame headers in `bytes`: (offset, type, flags, stream).
    fn frames(bytes: &[u8]) -> impl Iterator<Item = (usize, u8, u8, u32)> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            let h = bytes.get(at..at + 9)?;
            let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
            let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
            let frame = (at, h[3], h[4], stream);
            at += 9 + len;
            Some(frame)
        })
    }

    /// How many of the server's writes carry a HEADERS frame (an answer's
    /// start), once every request has its answer.
    fn writes_with_answers(writes: &[Vec<u8>]) -> usize {
        let all: Vec<u8> = writes.concat();
        // Where each write starts in the stream of frames.
        let starts: Vec<usize> = writes
            .iter()
            .scan(0, |offset, w| {
                let start = *offset;
                *offset += w.len();
                Some(start)
            })
            .collect();
        let answers: Vec<usize> = frames(&all)
            .filter(|&(_, kind, _, _)| kind == 0x1)
            .map(|(at, ..)| at)
            .collect();
        assert_eq!(
            answers.len(),
            REQUESTS as usize,
            "every request is answered"
        );
        let with_answers: std::collections::BTreeSet<usize> = answers
            .iter()
            .map(|&at| starts.partition_point(|&s| s <= at))
            .collect();
        with_answers.len()
    }

    /// Serves one connection whose requests all arrive at once, with
    /// `exec` as hyper's executor, and returns the server's writes.
    async fn serve_at_once<E>(
        exec: E,
        run: impl FnOnce(E, DuplexStream, Arc<Mutex<Vec<Vec<u8>>>>),
    ) -> Vec<Vec<u8>>
    where
        E: Clone,
    {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        client.write_all(&requests_in_one_piece()).await.unwrap();
        let writes = Arc::new(Mutex::new(Vec::new()));
        run(exec, server, writes.clone());
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let read_all = async {
            // Until every answer has ended (its DATA frame with END_STREAM).
            while ends(&seen) < REQUESTS as usize {
                let n = tokio::io::AsyncReadExt::read(&mut client, &mut buf)
                    .await
                    .unwrap();
                assert!(n > 0, "the server closed early");
                seen.extend_from_slice(&buf[..n]);
            }
            // The server notes a write just after making it.
            while writes.lock().unwrap().concat().len() < seen.len() {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), read_all)
            .await
            .expect("every request answered");
        writes.lock().unwrap().clone()
    }

    /// How many streams the frames in `bytes` ended (DATA or HEADERS with
    /// END_STREAM).
    fn ends(bytes: &[u8]) -> usize {
        frames(bytes)
            .filter(|&(_, kind, flags, stream)| {
                stream != 0 && matches!(kind, 0x0 | 0x1) && flags & 0x1 != 0
            })
            .count()
    }

    fn ok(
        _req: http::Request<hyper::body::Incoming>,
    ) -> std::future::Ready<Result<http::Response<Full<Bytes>>, std::convert::Infallible>> {
        std::future::ready(Ok(http::Response::new(Full::new(Bytes::from_static(
            b"ok",
        )))))
    }

    /// Issue 12: answers to requests that arrived together leave together;
    /// with a task per stream (hyper's default) each left in its own write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn answers_to_requests_read_together_leave_together() {
        let writes = serve_at_once(ConnStreams::default(), |streams, io, writes| {
            let conn = hyper::server::conn::http2::Builder::new(streams.clone()).serve_connection(
                TokioIo::new(Recorded { io, writes }),
                hyper::service::service_fn(ok),
            );
            tokio::spawn(Served::new(conn, streams));
        })
        .await;
        let together = writes_with_answers(&writes);
        assert_eq!(together, 1, "{} answers in {together} writes", REQUESTS);

        let writes = serve_at_once(TokioExecutor::new(), |exec, io, writes| {
            let conn = hyper::server::conn::http2::Builder::new(exec).serve_connection(
                TokioIo::new(Recorded { io, writes }),
                hyper::service::service_fn(ok),
            );
            tokio::spawn(conn);
        })
        .await;
        let apart = writes_with_answers(&writes);
        assert!(
            apart > REQUESTS as usize / 2,
            "a task per stream: {REQUESTS} answers in {apart} writes"
        );
    }
}
