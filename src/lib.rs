//! warden serves ONNX models over the KServe V2 / Triton HTTP protocol and,
//! once its models are loaded and its ports bound, locks itself down: no
//! capabilities, no file access, no new sockets, no new processes.
//!
//! `main.rs` is the start-up sequence; everything it calls lives here.
//!
//! # Layout
//! - [`config`]: flags (clap, `WARDEN_*` env) → validated [`config::Settings`].
//! - [`model`]: repository scan, `config.pbtxt` reader, metadata, the checks
//!   a model passes before tract builds it (`model::preflight`), warden's
//!   ai.onnx.ml operators, and the engine (`model::engine`, the only file
//!   that builds and runs tract models).
//! - [`protocol`]: V2 wire types and codecs, JSON and binary (no axum, no tract).
//! - [`http`]: `router(state)`: health, metadata, config, statistics, inference;
//!   `service(state)`: the router with a direct route for inference (what serve runs).
//! - [`server`]: the accept loop with connection limits and graceful shutdown.
//! - [`worker`]: inference threads behind a bounded queue.
//! - [`metrics`], [`stats`]: Prometheus metrics and Triton statistics.
//! - [`sandbox`]: the lockdown (capabilities, Landlock, seccomp, SIGSYS trap).
//! - [`bench`]: `warden bench`, in-process and over HTTP.
//! - [`healthcheck`]: the `warden healthcheck` client for container probes.
//! - [`allocator`]: the global allocator (glibc's, without `posix_memalign` for tensors).

pub mod allocator;
pub mod bench;
pub mod config;
pub mod healthcheck;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod protocol;
pub mod sandbox;
pub mod server;
pub mod stats;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

/// glibc's malloc, with tract's over-aligned tensors served without
/// `posix_memalign` (see [`allocator`]). Declared here rather than in
/// `main.rs` so the unit tests run on it too.
#[global_allocator]
static ALLOCATOR: allocator::Allocator = allocator::Allocator;

/// Turns blocked-syscall counts into log events and metrics, and marks the
/// process compromised (liveness fails unless configured otherwise).
pub async fn watch_violations(state: Arc<http::AppState>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        for (nr, name, count) in sandbox::trap::drain() {
            state.metrics.sandbox_violations.with_label_values(&[name]).inc_by(count);
            state.health.set_compromised();
            tracing::error!(syscall = name, nr, count, live = state.health.is_live(), "lockdown blocked a system call");
        }
    }
}

/// The metrics router (its own listener, never the inference port).
pub fn metrics_router(metrics: metrics::Metrics) -> axum::Router {
    use axum::routing::get;
    axum::Router::new().route(
        "/metrics",
        get(move || {
            let m = metrics.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], m.render()) }
        }),
    )
}
