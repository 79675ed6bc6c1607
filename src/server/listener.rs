//! Our own accept loop (axum::serve has no header-read timeout): every TCP connection is
//! admitted against the connection caps ([`ConnLimits`]) and then served by hyper's HTTP/1
//! server with a watchdog that closes it when it dawdles.
//!
//! The watchdog's deadlines, per connection ([`Timeouts`]):
//! - **headers**: the first request's headers must be complete `header` after accept — a client
//!   that sends half a request, or nothing, is closed and counted as `header_timeout`; on a
//!   keep-alive connection the same bound runs from the first byte of each later request;
//! - **keep-alive idle**: no new request `keepalive_idle` after the previous response was
//!   handed over (its body included — a client too slow to read it is bounded the same way):
//!   closed quietly;
//! - **request**: body and handler must produce the response head within `request`, else
//!   closed and counted as `request_timeout`.
//!
//! Once a connection is upgraded to a WebSocket it leaves the watchdog (the media session has
//! its own start and idle timeouts) but keeps its [`ConnSlot`]. On drain the loop stops
//! accepting, idle connections close, requests in flight finish, and [`serve`] returns when the
//! last HTTP connection is gone. Refusals close the socket at once; nothing here reads or
//! writes a byte itself.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower_service::Service;
use tracing::{debug, warn};

use super::client_ip::TrustedProxies;
use super::conn_limit::{ConnLimits, ConnSlot};
use super::guard::count_refusal;

/// Largest request head (and read buffer) hyper keeps per connection.
const MAX_BUF_BYTES: usize = 64 * 1024;
/// Back-off after a failed accept (out of file descriptors, …), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How long a connection may take at each stage (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header: Duration,
    pub keepalive_idle: Duration,
    pub request: Duration,
}

impl Timeouts {
    /// The watchdog never sleeps longer than this: every change of stage sets a deadline at
    /// least this far ahead, so waking this often enforces each deadline on time.
    fn step(&self) -> Duration {
        self.header.min(self.keepalive_idle).min(self.request)
    }

    pub fn from_config(limits: &crate::config::LimitsConfig) -> Self {
        Self {
            header: Duration::from_secs(limits.header_read_timeout_secs),
            keepalive_idle: Duration::from_secs(limits.keepalive_idle_secs),
            request: Duration::from_secs(limits.request_timeout_secs),
        }
    }
}

/// Pending handshakes the kernel may queue for us (clamped by `net.core.somaxconn`): a burst of
/// connections waits in the kernel instead of having its handshake dropped and retried seconds
/// later (tokio's default is 1024).
const LISTEN_BACKLOG: u32 = 4096;

/// Bind a listening socket at `addr` with [`LISTEN_BACKLOG`].
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Everything the accept loop needs.
pub struct Listener {
    pub listener: TcpListener,
    pub router: Router,
    pub limits: Arc<ConnLimits>,
    pub trusted: TrustedProxies,
    pub timeouts: Timeouts,
    /// Fired when shutdown starts.
    pub draining: CancellationToken,
}

/// Accept and serve until `draining`; then wait for the HTTP connections to finish.
pub async fn serve(l: Listener) -> io::Result<()> {
    let (tasks, _) = watch::channel(0usize);
    let tasks = Arc::new(tasks);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = l.draining.cancelled() => break,
            accepted = l.listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                debug!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let exempt = l.trusted.trusts(peer.ip());
        let slot = match l.limits.try_open(peer.ip(), exempt) {
            Ok(slot) => slot,
            Err(refusal) => {
                count_refusal(refusal.reason());
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let task = TaskCount::enter(&tasks);
        let conn = Conn {
            router: l.router.clone(),
            timeouts: l.timeouts,
            draining: l.draining.clone(),
        };
        tokio::spawn(async move {
            conn.serve(stream, peer, slot).await;
            drop(task);
        });
    }
    drop(l.listener);
    let mut rx = tasks.subscribe();
    let _ = rx.wait_for(|n| *n == 0).await;
    Ok(())
}

/// Counts connection tasks so that [`serve`] can wait for them.
struct TaskCount(Arc<watch::Sender<usize>>);

impl TaskCount {
    fn enter(tasks: &Arc<watch::Sender<usize>>) -> Self {
        tasks.send_modify(|n| *n += 1);
        Self(Arc::clone(tasks))
    }
}

impl Drop for TaskCount {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

struct Conn {
    router: Router,
    timeouts: Timeouts,
    draining: CancellationToken,
}

impl Conn {
    async fn serve(self, stream: TcpStream, peer: SocketAddr, slot: ConnSlot) {
        let epoch = Instant::now();
        let activity = Arc::new(Activity::default());
        let io = TokioIo::new(Tracked {
            io: stream,
            activity: Arc::clone(&activity),
            epoch,
            _slot: slot,
        });
        let router = self.router;
        let seen = Arc::clone(&activity);
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            seen.request_started(epoch);
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            let done = ResponseReady(Arc::clone(&seen), epoch);
            async move {
                let response = router.call(req.map(Body::new)).await;
                drop(done);
                response
            }
        });
        let conn = http1::Builder::new()
            .max_buf_size(MAX_BUF_BYTES)
            .header_read_timeout(None)
            .serve_connection(io, service)
            .with_upgrades();
        tokio::pin!(conn);
        let mut deadline = epoch + self.timeouts.step();
        let mut draining = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = self.draining.cancelled(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let now = Instant::now();
                    match activity.verdict(epoch, now, &self.timeouts) {
                        Ok(next) => deadline = next,
                        Err(reason) => {
                            if let Some(reason) = reason {
                                count_refusal(reason);
                                debug!(%peer, reason, "connection closed");
                            }
                            return; // dropping the connection closes the socket
                        }
                    }
                }
            }
        }
    }
}

/// What a connection is doing, shared by its socket, its service and its watchdog. All three
/// run in the connection's task, so relaxed atomics suffice. Times are ms since accept.
#[derive(Debug, Default)]
struct Activity {
    in_flight: AtomicBool,
    /// Responses handed over so far.
    responses: AtomicU64,
    /// When the current stage began (request start, or response handed over).
    since_ms: AtomicU64,
    /// First byte read since the last request started (`0`: none; stored as ms + 1).
    first_byte: AtomicU64,
}

impl Activity {
    fn request_started(&self, epoch: Instant) {
        self.since_ms.store(ms_since(epoch), Ordering::Relaxed);
        self.first_byte.store(0, Ordering::Relaxed);
        self.in_flight.store(true, Ordering::Relaxed);
    }

    fn response_ready(&self, epoch: Instant) {
        self.since_ms.store(ms_since(epoch), Ordering::Relaxed);
        self.responses.fetch_add(1, Ordering::Relaxed);
        self.in_flight.store(false, Ordering::Relaxed);
    }

    fn bytes_read(&self, epoch: Instant) {
        if self.first_byte.load(Ordering::Relaxed) == 0 {
            self.first_byte
                .store(ms_since(epoch) + 1, Ordering::Relaxed);
        }
    }

    /// The next time to look (the deadline, or sooner — see [`Timeouts::step`]), or why the connection must close now (`None`: quietly).
    fn verdict(
        &self,
        epoch: Instant,
        now: Instant,
        t: &Timeouts,
    ) -> Result<Instant, Option<&'static str>> {
        let at = |ms: u64| epoch + Duration::from_millis(ms);
        let since = at(self.since_ms.load(Ordering::Relaxed));
        let check = |deadline: Instant, reason| {
            if now >= deadline {
                Err(reason)
            } else {
                Ok(deadline.min(now + t.step()))
            }
        };
        if self.in_flight.load(Ordering::Relaxed) {
            return check(since + t.request, Some("request_timeout"));
        }
        if self.responses.load(Ordering::Relaxed) == 0 {
            return check(epoch + t.header, Some("header_timeout"));
        }
        match self.first_byte.load(Ordering::Relaxed) {
            0 => check(since + t.keepalive_idle, None),
            first => check(at(first - 1) + t.header, Some("header_timeout")),
        }
    }
}

fn ms_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX / 2)
}

/// Marks the response head as handed over when dropped (also if the request is abandoned).
struct ResponseReady(Arc<Activity>, Instant);

impl Drop for ResponseReady {
    fn drop(&mut self) {
        self.0.response_ready(self.1);
    }
}

/// The socket, noting reads for the watchdog and holding the connection's slot for as long
/// as the socket lives (through a WebSocket upgrade too).
struct Tracked {
    io: TcpStream,
    activity: Arc<Activity>,
    epoch: Instant,
    _slot: ConnSlot,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.bytes_read(this.epoch);
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Logged once at start-up when the file-descriptor limit is below the connection cap.
pub fn check_fd_limit(max_connections: usize) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(soft) = soft
        && soft < max_connections + 64
    {
        warn!(
            fd_limit = soft,
            max_connections, "the open-file limit is below limits.max_connections: raise ulimit -n"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Timeouts {
        Timeouts {
            header: Duration::from_secs(10),
            keepalive_idle: Duration::from_secs(30),
            request: Duration::from_secs(20),
        }
    }

    #[test]
    fn watchdog_deadlines() {
        let epoch = Instant::now();
        let s = |secs| epoch + Duration::from_secs(secs);
        let a = Activity::default();
        // First request: headers due 10 s after accept, bytes or not.
        assert_eq!(a.verdict(epoch, s(1), &t()), Ok(s(10)));
        a.first_byte.store(9_001, Ordering::Relaxed);
        assert_eq!(a.verdict(epoch, s(10), &t()), Err(Some("header_timeout")));
        // In flight: the request bound.
        a.since_ms.store(5_000, Ordering::Relaxed);
        a.in_flight.store(true, Ordering::Relaxed);
        assert_eq!(a.verdict(epoch, s(10), &t()), Ok(s(20)), "woken every 10 s");
        assert_eq!(a.verdict(epoch, s(20), &t()), Ok(s(25)));
        assert_eq!(a.verdict(epoch, s(25), &t()), Err(Some("request_timeout")));
        // Answered at 6 s: idle, woken every 10 s, closed quietly at 36 s.
        a.since_ms.store(6_000, Ordering::Relaxed);
        a.in_flight.store(false, Ordering::Relaxed);
        a.responses.store(1, Ordering::Relaxed);
        a.first_byte.store(0, Ordering::Relaxed);
        assert_eq!(a.verdict(epoch, s(7), &t()), Ok(s(17)));
        assert_eq!(a.verdict(epoch, s(30), &t()), Ok(s(36)));
        assert_eq!(a.verdict(epoch, s(36), &t()), Err(None));
        // A next request began at 20 s: its headers are due at 30 s.
        a.first_byte.store(20_001, Ordering::Relaxed);
        assert_eq!(a.verdict(epoch, s(27), &t()), Ok(s(30)));
        assert_eq!(a.verdict(epoch, s(30), &t()), Err(Some("header_timeout")));

        // A short idle bound after a long header bound: a change of stage that brings the
        // deadline forward is still seen in time, since the watchdog wakes every `step`.
        let short = Timeouts {
            keepalive_idle: Duration::from_secs(1),
            ..t()
        };
        assert_eq!(short.step(), Duration::from_secs(1));
        let b = Activity::default();
        b.since_ms.store(100, Ordering::Relaxed);
        b.responses.store(1, Ordering::Relaxed);
        let ms = |n| epoch + Duration::from_millis(n);
        assert_eq!(b.verdict(epoch, ms(1000), &short), Ok(ms(1100)));
        assert_eq!(b.verdict(epoch, ms(1100), &short), Err(None));
    }
}
