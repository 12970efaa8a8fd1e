//! Accepting connections: hyper's HTTP/1 server over listeners bound
//! before the lockdown, with connection, header-size and header-time
//! limits, and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;

/// Connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    /// How long in-flight requests may run after shutdown begins.
    pub exit_timeout: Duration,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Most request headers.
    pub max_headers: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            exit_timeout: Duration::from_secs(30),
            max_header_bytes: 64 << 10,
            max_headers: 100,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting and waits up to `exit_timeout` for open connections.
/// Returns whether every connection finished in time.
///
/// The listener must already be non-blocking: `set_nonblocking` is an
/// `ioctl`, which the lockdown forbids.
pub async fn run(
    listener: std::net::TcpListener,
    router: Router,
    opts: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<bool> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(opts.max_connections));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout)
        .max_buf_size(opts.max_header_bytes.max(8192))
        .max_headers(opts.max_headers)
        .keep_alive(true);
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
        let service = TowerToHyperService::new(router.clone());
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    Ok(tokio::time::timeout(opts.exit_timeout, graceful.shutdown()).await.is_ok())
}
