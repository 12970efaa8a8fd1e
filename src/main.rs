//! The start-up sequence (DESIGN §1), in order. Everything it calls lives
//! in the library; this file only orders it and maps failures to exit codes.

use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

use warden::config::{Cli, Command, ServeArgs, Settings};
use warden::http::{AppState, Health};
use warden::model::{LoadedModel, ModelSource, engine::LoadOptions};
use warden::sandbox::{self, Mode};
use warden::{logging, metrics, model, server, worker};

/// Exit codes, one per failure class.
mod exit {
    pub const CONFIG: u8 = 2;
    pub const MODELS: u8 = 3;
    pub const BIND: u8 = 4;
    pub const SANDBOX: u8 = 5;
    pub const RUNTIME: u8 = 6;
}

fn main() -> ExitCode {
    // SAFETY: no other thread exists yet, so nothing reads the environment
    // concurrently. tract builds errors on hot paths; with the machine's
    // RUST_BACKTRACE=1 each one would capture a backtrace.
    unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Healthcheck(a)) => match warden::healthcheck::check(a.http_port, Duration::from_secs(a.timeout_secs)) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("warden healthcheck: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Serve(a)) => serve(*a),
        Some(Command::Bench(a)) => warden::bench::run(*a),
        None => serve(ServeArgs::from_env()),
    }
}

/// Pending connections the kernel keeps per listener. `listen` is only
/// possible before the lockdown; std's default of 128 silently drops
/// connections from a burst (the kernel caps this at `somaxconn`).
const LISTEN_BACKLOG: i32 = 4096;

/// A non-blocking listener with address reuse and a deep backlog.
fn listener(addr: std::net::SocketAddr, backlog: i32) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    tracing::error!("{msg}");
    eprintln!("warden: {msg}");
    ExitCode::from(code)
}

fn serve(args: ServeArgs) -> ExitCode {
    // 0. Nothing inherited: descriptors above 2 closed, stdin from /dev/null.
    if let Err(e) = sandbox::close_inherited() {
        eprintln!("warden: cannot close inherited descriptors: {e}");
        return ExitCode::from(exit::SANDBOX);
    }
    // 1. Configuration, logs, repository scan (directory listings and
    //    config.pbtxt only: model files are parsed inside the walls, step 8).
    let settings = match args.validate() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("warden: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    logging::init(settings.log_format, settings.log_verbose);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        repository = %settings.model_repository.display(),
        sandbox = ?settings.sandbox.mode,
        seccomp_action = ?settings.sandbox.action,
        max_body = settings.max_body,
        queue_depth = settings.queue_depth,
        "starting"
    );
    // A panic after the lockdown must not read files to print a backtrace,
    // and a fault must end the process by its signal under the filters.
    logging::install_panic_hook();
    if let Err(e) = sandbox::fatal::install() {
        return fail(exit::SANDBOX, format!("cannot install the fatal-signal handler: {e}"));
    }
    let sources = match model::scan(&settings.model_repository) {
        Ok(s) => s,
        Err(e) => return fail(exit::MODELS, e),
    };

    // 2. Every listener, before sockets are forbidden.
    let bind = |addr| listener(addr, LISTEN_BACKLOG);
    let http = match bind(settings.http_addr) {
        Ok(l) => l,
        Err(e) => return fail(exit::BIND, format!("cannot bind HTTP {}: {e}", settings.http_addr)),
    };
    let metrics_listener = match settings.metrics_addr.map(bind).transpose() {
        Ok(l) => l,
        Err(e) => return fail(exit::BIND, format!("cannot bind metrics {:?}: {e}", settings.metrics_addr)),
    };

    // 3. System facts that need the file system (cgroup CPU quota).
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let open_files = server::raise_fd_limit();
    if (open_files as usize) < settings.max_connections + 64 {
        tracing::warn!(open_files, max_connections = settings.max_connections, "the open-file limit is below --max-connections");
    }

    // 4. Lockdown A.
    // INVARIANT: the process has one thread here; lockdown_a checks it and
    // fails closed, because a thread that exists now would escape Landlock.
    if settings.sandbox.mode == Mode::Off {
        tracing::warn!("SANDBOX OFF: --sandbox=off applies no lockdown; code running in this process can exec, open files and sockets");
    }
    let mut status = match sandbox::lockdown_a(&settings.sandbox) {
        Ok(s) => s,
        Err(e) => return fail(exit::SANDBOX, format!("lockdown failed: {e}")),
    };

    // 5. Threads: inference workers and the async runtime inherit step 4.
    let infer_threads = settings.infer_threads.unwrap_or(cpus);
    let pool = match worker::Pool::start(infer_threads, settings.queue_depth) {
        Ok(p) => p,
        Err(e) => return fail(exit::RUNTIME, format!("cannot start inference workers: {e}")),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.http_threads.unwrap_or(if cpus > 2 { 2 } else { 1 }))
        .thread_name("warden-http")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(exit::RUNTIME, format!("cannot start the runtime: {e}")),
    };
    rt.block_on(run(settings, sources, http, metrics_listener, pool, &mut status))
}

async fn run(
    settings: Settings,
    sources: Vec<ModelSource>,
    http: TcpListener,
    metrics_listener: Option<TcpListener>,
    pool: worker::Pool,
    status: &mut sandbox::Status,
) -> ExitCode {
    let cfg = &settings.sandbox;
    // Signal handlers now: tokio's signal driver needs socketpair and
    // rt_sigaction, which the filters forbid.
    let (mut sigterm, mut sigint) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => return fail(exit::RUNTIME, format!("cannot install signal handlers: {e}")),
    };
    if cfg.mode != Mode::Off
        && cfg.action == sandbox::Action::Trap
        && let Err(e) = sandbox::trap::install()
    {
        return fail(exit::SANDBOX, format!("cannot install the SIGSYS handler: {e}"));
    }

    // The engine's one-time CPU probes, which the filters would refuse.
    model::engine::prime();

    // 6. Every model file read, bounded, into memory; nothing parsed yet.
    let opts = LoadOptions { default_max_batch_size: settings.default_max_batch_size, ..LoadOptions::default() };
    let mut files = Vec::new();
    for src in &sources {
        for v in &src.versions {
            match model::engine::read_model(&v.path, opts.max_model_bytes) {
                Ok(bytes) => files.push((src, v, bytes)),
                Err(e) => return fail(exit::MODELS, format!("model '{}' version {}: {e}", src.name, v.version)),
            }
        }
    }

    // 7. The seccomp filters on every thread: no exec, fork, sockets, file
    //    access, or further filters. The files above are closed.
    if let Err(e) = sandbox::seccomp_filter(cfg, status) {
        return fail(exit::SANDBOX, format!("lockdown failed: {e}"));
    }

    // 8. Parse, optimise and warm up every model from memory, inside every
    //    wall: a parser bug meets what a request would.
    let started = Instant::now();
    let mut models = Vec::new();
    for (src, v, bytes) in files {
        let loaded =
            LoadedModel::from_file_bytes(&src.name, v.version, &v.path, &bytes, src.config.as_ref(), &src.config_path, &opts).inspect(|m| {
                if let Some(w) = m.warm_up() {
                    tracing::warn!(model = %src.name, version = v.version, reason = %w, "the warm-up run failed on made-up inputs; the model loads, and requests whose data it cannot run on get an error");
                }
            });
        drop(bytes);
        match loaded {
            Ok(m) => {
                let fmt = |ts: &[warden::model::TensorMeta]| {
                    ts.iter().map(|t| format!("{} {} {:?}", t.name, t.datatype, t.shape)).collect::<Vec<_>>().join(", ")
                };
                tracing::info!(
                    model = %m.meta.name,
                    version = m.meta.version,
                    max_batch_size = m.meta.max_batch_size,
                    inputs = %fmt(&m.meta.inputs),
                    outputs = %fmt(&m.meta.outputs),
                    load_ms = m.load_time.as_millis() as u64,
                    "model loaded"
                );
                models.push(m);
            }
            Err(e) => return fail(exit::MODELS, format!("model '{}' version {}: {e}", src.name, v.version)),
        }
    }

    let metrics = metrics::Metrics::new();
    for layer in sandbox::LAYERS {
        let active = status.is_active(layer);
        metrics.sandbox_layer.with_label_values(&[layer]).set(i64::from(active));
    }
    for l in &status.layers {
        tracing::info!(layer = l.name, active = l.active, detail = %l.detail, "lockdown layer");
    }
    for layer in sandbox::LAYERS.iter().filter(|l| !status.is_active(l) && **l != "user") {
        if cfg.mode != Mode::Off {
            tracing::warn!(layer, "lockdown layer not in force");
        }
    }

    // 9. Serve; ready only now.
    let health = Health::new(settings.live_after_violation);
    let state = Arc::new(
        AppState::new(models, pool, metrics.clone(), settings.limits, settings.max_body, settings.request_timeout, health)
            .with_inline_max(settings.inline_max),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    tokio::spawn(warden::watch_violations(state.clone(), Duration::from_millis(200)));
    let opts = server::ServerOptions {
        max_connections: settings.max_connections,
        header_read_timeout: settings.header_read_timeout,
        idle_timeout: settings.idle_timeout,
        exit_timeout: settings.exit_timeout,
        max_header_bytes: settings.max_header_bytes,
        max_headers: settings.max_headers,
        rejections: Some(metrics.limit_rejections.clone()),
        open_connections: Some(metrics.open_connections.clone()),
    };
    let http_addr = http.local_addr().map(|a| a.to_string()).unwrap_or_default();
    if let Some(l) = metrics_listener {
        let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(address = %addr, "metrics listening on /metrics");
        let router = warden::metrics_router(metrics.clone());
        let mopts = server::ServerOptions {
            max_connections: 64,
            exit_timeout: Duration::from_secs(1),
            rejections: None,
            open_connections: None,
            ..opts.clone()
        };
        let s = stopped();
        tokio::spawn(async move {
            if let Err(e) = server::run(l, router, mopts, s).await {
                tracing::error!(error = %e, "metrics listener failed");
            }
        });
    }
    let shutdown_state = state.clone();
    tokio::spawn(async move {
        let sig = tokio::select! {
            _ = sigterm.recv() => "SIGTERM",
            _ = sigint.recv() => "SIGINT",
        };
        shutdown_state.health.set_draining();
        tracing::info!(signal = sig, "shutting down: readiness off, draining in-flight requests");
        let _ = stop_tx.send(true);
    });
    state.health.set_ready();
    tracing::info!(address = %http_addr, startup_ms = started.elapsed().as_millis() as u64, "HTTP listening; ready");
    match server::run(http, warden::http::service(state), opts, stopped()).await {
        Ok(true) => {
            tracing::info!("all connections closed; exiting");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            tracing::warn!("exit timeout reached with connections still open; exiting");
            ExitCode::SUCCESS
        }
        Err(e) => fail(exit::RUNTIME, format!("HTTP server failed: {e}")),
    }
}
