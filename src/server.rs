//! Accepting connections: hyper's HTTP/1 server over listeners bound
//! before the lockdown, with connection, header-size and time limits, and
//! graceful shutdown.
//!
//! Two limits live below hyper, in [`GuardedIo`], because hyper's HTTP/1
//! server has no idle keep-alive timeout, and its header-read timeout drops
//! the socket without an answer:
//! - header read timeout: from the first byte of a request head until the
//!   head is complete (a slowloris that trickles bytes is cut off);
//! - idle timeout: no byte read or written, while no request is being
//!   handled, for this long (idle keep-alive, and clients that stop reading
//!   their answer).
//!
//! When hyper refuses a request head (too large, too many headers, not
//! HTTP) it writes a bodiless error answer itself. [`GuardedIo`] holds that
//! answer back and the connection task writes a JSON one in its place, so
//! every refusal a client sees is `{"error": ...}`, and counts it.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use prometheus::{IntCounterVec, IntGauge};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

/// Raises the soft limit on open files to the hard limit (before the
/// lockdown: `setrlimit` is not allowed afterwards), so `--max-connections`
/// is not capped by a small default soft limit. Returns the limit in force.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return raised.rlim_cur;
        }
    }
    lim.rlim_cur
}

/// Connection-level limits.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub max_connections: usize,
    /// From the first byte of a request head until it is complete.
    pub header_read_timeout: Duration,
    /// No traffic while no request is being handled (idle keep-alive, or a
    /// client that does not read its answer).
    pub idle_timeout: Duration,
    /// How long in-flight requests may run after shutdown begins.
    pub exit_timeout: Duration,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Most request headers.
    pub max_headers: usize,
    /// `warden_limit_rejections_total`, where connection-level refusals are counted.
    pub rejections: Option<IntCounterVec>,
    /// `warden_http_open_connections`, kept up to date when given.
    pub open_connections: Option<IntGauge>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            exit_timeout: Duration::from_secs(30),
            max_header_bytes: 64 << 10,
            max_headers: 100,
            rejections: None,
            open_connections: None,
        }
    }
}

/// Serves `service` (a router, or `http::service`) on `listener` until `shutdown` resolves, then stops
/// accepting and waits up to `exit_timeout` for open connections.
/// Returns whether every connection finished in time.
///
/// The listener must already be non-blocking: `set_nonblocking` is an
/// `ioctl`, which the lockdown forbids.
pub async fn run<S>(
    listener: std::net::TcpListener,
    service: S,
    opts: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<bool>
where
    S: tower_service::Service<hyper::Request<Incoming>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(opts.max_connections));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        // The header read timeout is GuardedIo's: hyper's would drop the
        // socket without an answer.
        .header_read_timeout(None)
        .max_buf_size(opts.max_header_bytes.max(8192))
        .max_header_size(opts.max_header_bytes)
        .max_headers(opts.max_headers)
        // One flat buffer per write, so GuardedIo sees hyper's own error
        // answers whole.
        .writev(false)
        .keep_alive(true);
    let opts = Arc::new(opts);
    tokio::pin!(shutdown);
    loop {
        // Past the limit, new connections wait in the kernel's backlog.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let stream = Arc::new(stream);
        let conn_state = Arc::new(ConnState::default());
        let io = GuardedIo::new(stream.clone(), conn_state.clone(), &opts);
        let service = Tracked { inner: TowerToHyperService::new(service.clone()), state: conn_state.clone() };
        let conn = builder.serve_connection(TokioIo::new(io), service);
        let conn = graceful.watch(conn);
        let opts = opts.clone();
        if let Some(g) = &opts.open_connections {
            g.inc();
        }
        tokio::spawn(async move {
            let result = conn.await;
            finish(&stream, &conn_state, result.err(), &opts).await;
            if let Some(g) = &opts.open_connections {
                g.dec();
            }
            drop(permit);
        });
    }
    drop(listener);
    Ok(tokio::time::timeout(opts.exit_timeout, graceful.shutdown()).await.is_ok())
}

/// Why GuardedIo ended a connection.
const EXPIRED_HEADER: u8 = 1;
const EXPIRED_IDLE: u8 = 2;

/// What the connection's IO and its service share.
#[derive(Debug, Default)]
struct ConnState {
    /// Requests being handled by the router (0 or 1 on HTTP/1).
    in_service: AtomicUsize,
    /// Requests handed to the router so far: a change ends the current head.
    requests: AtomicU64,
    /// Bytes of a request head arrived that the router has not seen yet.
    partial: AtomicBool,
    /// EXPIRED_* when GuardedIo timed the connection out.
    expired: AtomicU8,
    /// Status of a bodiless error answer of hyper's that was held back.
    held_back: AtomicU64,
    /// The IO's task, parked while a request was in service with no timer
    /// armed: woken when the request ends, so the idle timer starts.
    parked: Mutex<Option<Waker>>,
}

/// The router, counting requests in service for GuardedIo.
struct Tracked<S> {
    inner: S,
    state: Arc<ConnState>,
}

struct InService(Arc<ConnState>);

impl Drop for InService {
    fn drop(&mut self) {
        self.0.partial.store(false, Ordering::SeqCst);
        self.0.in_service.fetch_sub(1, Ordering::SeqCst);
        if let Some(w) = self.0.parked.lock().unwrap_or_else(|e| e.into_inner()).take() {
            w.wake();
        }
    }
}

impl<S> hyper::service::Service<hyper::Request<Incoming>> for Tracked<S>
where
    S: hyper::service::Service<hyper::Request<Incoming>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        self.state.in_service.fetch_add(1, Ordering::SeqCst);
        self.state.requests.fetch_add(1, Ordering::SeqCst);
        self.state.partial.store(false, Ordering::SeqCst);
        let guard = InService(self.state.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let r = fut.await;
            drop(guard);
            r
        })
    }
}

/// The socket as hyper sees it, with the header-read and idle timeouts.
struct GuardedIo {
    stream: Arc<TcpStream>,
    state: Arc<ConnState>,
    header_timeout: Duration,
    idle_timeout: Duration,
    last_progress: Instant,
    /// When the first byte of the current request head arrived.
    head_started: Option<Instant>,
    seen_requests: u64,
    timer: Pin<Box<Sleep>>,
}

impl GuardedIo {
    fn new(stream: Arc<TcpStream>, state: Arc<ConnState>, opts: &ServerOptions) -> GuardedIo {
        let now = Instant::now();
        GuardedIo {
            stream,
            state,
            header_timeout: opts.header_read_timeout,
            idle_timeout: opts.idle_timeout,
            last_progress: now,
            head_started: None,
            seen_requests: 0,
            timer: Box::pin(tokio::time::sleep_until(now + opts.idle_timeout)),
        }
    }

    fn sync_with_service(&mut self) {
        let n = self.state.requests.load(Ordering::SeqCst);
        if n != self.seen_requests {
            self.seen_requests = n;
            self.head_started = None;
        }
    }

    fn in_service(&self) -> bool {
        self.state.in_service.load(Ordering::SeqCst) > 0
    }

    /// The next deadline and what it is for; none while a request is in
    /// service (the request timeout governs that).
    fn deadline(&self) -> Option<(Instant, u8)> {
        if self.in_service() {
            return None;
        }
        let idle = (self.last_progress + self.idle_timeout, EXPIRED_IDLE);
        match self.head_started {
            Some(t) if t + self.header_timeout < idle.0 => Some((t + self.header_timeout, EXPIRED_HEADER)),
            _ => Some(idle),
        }
    }

    /// Ready(error) once the deadline has passed; otherwise arms the timer.
    fn poll_expiry(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some((at, why)) = self.deadline() else {
            *self.state.parked.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
            // The request may have ended between the check and the parking.
            if !self.in_service() {
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        };
        // Progress only moves the deadline later, so the timer stays armed
        // at an earlier one and is moved when it fires: re-arming it on
        // every read was a timer-wheel update per request.
        if at < self.timer.deadline() {
            self.timer.as_mut().reset(at);
        }
        let fired = Instant::now() >= at
            || (self.timer.as_mut().poll(cx).is_ready() && {
                // Fired for an earlier deadline: arm it for this one.
                self.timer.as_mut().reset(at);
                self.timer.as_mut().poll(cx).is_ready()
            });
        if fired {
            self.state.expired.store(why, Ordering::SeqCst);
            let what = if why == EXPIRED_HEADER { "request header read timeout" } else { "idle timeout" };
            return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, what));
        }
        Poll::Pending
    }

    /// A readiness poll of the socket, or the connection's expiry while it
    /// is not ready: Ready(Ok) means try the socket now.
    fn ready_or_expiry(&mut self, ready: Poll<io::Result<()>>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => self.poll_expiry(cx).map(Err),
        }
    }

    fn progress(&mut self) {
        self.last_progress = Instant::now();
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.sync_with_service();
        loop {
            let ready = this.stream.poll_read_ready(cx);
            ready!(this.ready_or_expiry(ready, cx))?;
            // Into the unfilled part as it is: `initialize_unfilled` would
            // zero hyper's whole read buffer (up to 64 KiB) on every read,
            // which cost more than the rest of a small request's parsing.
            match this.stream.try_read_buf(buf) {
                Ok(n) => {
                    if n > 0 {
                        this.progress();
                        if !this.in_service() {
                            this.state.partial.store(true, Ordering::SeqCst);
                            if this.head_started.is_none() {
                                this.head_started = Some(this.last_progress);
                            }
                        }
                        // A slowloris makes progress on every byte; the head's own deadline still holds.
                        if let Some((at, EXPIRED_HEADER)) = this.deadline()
                            && Instant::now() >= at
                        {
                            this.state.expired.store(EXPIRED_HEADER, Ordering::SeqCst);
                            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "request header read timeout")));
                        }
                    }
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// A bodiless error answer written by hyper itself (it never comes from
/// the router, whose errors all carry a JSON body): its status.
fn hypers_error_answer(buf: &[u8]) -> Option<u16> {
    if buf.len() > 512 || !buf.starts_with(b"HTTP/1.") || !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let head = std::str::from_utf8(buf).ok()?;
    let status: u16 = head.get(9..12)?.parse().ok()?;
    let bodiless = head.to_ascii_lowercase().contains("\r\ncontent-length: 0\r\n");
    (matches!(status, 400 | 414 | 431 | 505) && bodiless && head.matches("\r\n\r\n").count() == 1).then_some(status)
}

impl AsyncWrite for GuardedIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(status) = hypers_error_answer(buf) {
            this.state.held_back.store(u64::from(status), Ordering::SeqCst);
            return Poll::Ready(Ok(buf.len()));
        }
        loop {
            let ready = this.stream.poll_write_ready(cx);
            ready!(this.ready_or_expiry(ready, cx))?;
            match this.stream.try_write(buf) {
                Ok(n) => {
                    this.progress();
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.state.held_back.load(Ordering::SeqCst) != 0 {
            // The connection task still has to write the JSON answer.
            return Poll::Ready(Ok(()));
        }
        Poll::Ready(shutdown_write(&self.stream))
    }
}

fn shutdown_write(stream: &TcpStream) -> io::Result<()> {
    // SAFETY: the descriptor is owned by `stream`, which outlives the call;
    // shutdown(2) only changes the socket's state.
    let rc = unsafe { libc::shutdown(stream.as_raw_fd(), libc::SHUT_WR) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// After hyper is done with a connection: answer what it refused or timed
/// out with JSON, count it, and close without losing that answer.
async fn finish(stream: &TcpStream, state: &ConnState, error: Option<hyper::Error>, opts: &ServerOptions) {
    let held_back = state.held_back.load(Ordering::SeqCst);
    let count = |limit: &str| {
        if let Some(c) = &opts.rejections {
            c.with_label_values(&[limit]).inc();
        }
    };
    let answer: Option<(u16, &str, String)> = match (held_back, state.expired.load(Ordering::SeqCst)) {
        (431, _) => {
            count("headers");
            Some((
                431,
                "Request Header Fields Too Large",
                format!(
                    "request headers are too large: at most {} headers and {} bytes for the request line and headers",
                    opts.max_headers, opts.max_header_bytes
                ),
            ))
        }
        (414, _) => {
            count("headers");
            Some((414, "URI Too Long", "request URI is too long".into()))
        }
        (400 | 505, _) => Some((400, "Bad Request", "malformed HTTP request".into())),
        (_, EXPIRED_HEADER) => {
            count("header_read_timeout");
            Some((408, "Request Timeout", format!("request headers not received within {} s", opts.header_read_timeout.as_secs_f64())))
        }
        (_, EXPIRED_IDLE) => {
            count("idle_timeout");
            state
                .partial
                .load(Ordering::SeqCst)
                .then(|| (408, "Request Timeout", format!("no data from the client for {} s", opts.idle_timeout.as_secs_f64())))
        }
        _ => {
            if let Some(e) = &error
                && !e.is_incomplete_message()
                && !e.is_canceled()
            {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            None
        }
    };
    let Some((status, reason, message)) = answer else { return };
    let body = serde_json::json!({ "error": message }).to_string();
    let text = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    // Bounded: a client that does not read its error answer gets nothing more.
    let write = async {
        let mut rest = text.as_bytes();
        while !rest.is_empty() {
            stream.writable().await?;
            match stream.try_write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok::<_, io::Error>(())
    };
    if !matches!(tokio::time::timeout(Duration::from_secs(1), write).await, Ok(Ok(()))) {
        return;
    }
    let _ = shutdown_write(stream);
    // Lingering close: closing with unread request bytes makes the kernel
    // send a reset, which can destroy the answer before the client reads
    // it. Read and discard for a bounded time instead.
    let drain = async {
        let mut sink = [0u8; 16 << 10];
        loop {
            if stream.readable().await.is_err() {
                return;
            }
            match stream.try_read(&mut sink) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_only_hypers_bodiless_errors() {
        let hyper431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n";
        assert_eq!(hypers_error_answer(hyper431), Some(431));
        assert_eq!(hypers_error_answer(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"), Some(400));
        // The router's errors carry a JSON body.
        assert_eq!(hypers_error_answer(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n{\"error\":1}"), None);
        assert_eq!(hypers_error_answer(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n"), None);
        assert_eq!(hypers_error_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"), None);
        assert_eq!(hypers_error_answer(b"HTTP/1.1 431 x\r\ncontent-length: 0\r\n\r\nHTTP/1.1 431 x\r\ncontent-length: 0\r\n\r\n"), None);
    }
}
