//! Command line: raw flags (clap, each with a `WARDEN_*` environment
//! fallback) and their validation into [`Settings`] that cannot be wrong.
//! Flag names follow `tritonserver` so a deployment can swap the binary.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::protocol::Limits;
use crate::sandbox;

/// warden: an ONNX inference server speaking the KServe V2 / Triton
/// protocol that locks itself down once its models are loaded.
#[derive(Debug, Parser)]
#[command(name = "warden", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the model repository (the default when no command is given).
    Serve(Box<ServeArgs>),
    /// Ask a local warden whether it is ready (exit 0) or not (exit 1);
    /// for container health checks without a shell or curl.
    Healthcheck(HealthcheckArgs),
    /// Measure inference latency: a model in-process, or any V2 server with --url.
    Bench(Box<crate::bench::BenchArgs>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Flags of `warden serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Model repository: <repository>/<model>/<version>/model.onnx, optional <model>/config.pbtxt.
    #[arg(long, env = "WARDEN_MODEL_REPOSITORY", default_value = "models")]
    pub model_repository: PathBuf,

    /// Address the HTTP (inference) listener binds.
    #[arg(long, env = "WARDEN_HTTP_ADDRESS", default_value = "0.0.0.0")]
    pub http_address: IpAddr,

    /// Port of the HTTP (inference) listener; 0 picks a free port.
    #[arg(long, env = "WARDEN_HTTP_PORT", default_value_t = 8000)]
    pub http_port: u16,

    /// Serve Prometheus metrics on their own listener.
    #[arg(long, env = "WARDEN_ALLOW_METRICS", default_value_t = true, action = ArgAction::Set)]
    pub allow_metrics: bool,

    /// Address the metrics listener binds (default: the HTTP address).
    #[arg(long, env = "WARDEN_METRICS_ADDRESS")]
    pub metrics_address: Option<IpAddr>,

    /// Port of the metrics listener (path /metrics); 0 picks a free port.
    #[arg(long, env = "WARDEN_METRICS_PORT", default_value_t = 8002)]
    pub metrics_port: u16,

    /// Largest request body accepted, in bytes (413 beyond).
    #[arg(long, env = "WARDEN_HTTP_MAX_INPUT_SIZE", default_value_t = 64 << 20)]
    pub http_max_input_size: usize,

    /// Inference worker threads (default: the CPUs available).
    #[arg(long, env = "WARDEN_INFER_THREADS")]
    pub infer_threads: Option<usize>,

    /// Requests waiting for a worker before new ones get 503.
    #[arg(long, env = "WARDEN_QUEUE_DEPTH", default_value_t = 128)]
    pub queue_depth: usize,

    /// With one open connection and nothing else in flight, a request expected to take at most this many microseconds (from the model's recent requests) runs on the connection's thread instead of a worker; 0 sends every request to a worker.
    #[arg(long, env = "WARDEN_INLINE_MAX_US", default_value_t = crate::http::DEFAULT_INLINE_MAX.as_micros() as u64)]
    pub inline_max_us: u64,

    /// Threads of the async runtime that handles connections (default: 1 or 2, by CPU count).
    #[arg(long, env = "WARDEN_HTTP_THREADS")]
    pub http_threads: Option<usize>,

    /// max_batch_size given to models without config.pbtxt whose inputs and outputs all have a variable first dimension.
    #[arg(long, env = "WARDEN_DEFAULT_MAX_BATCH_SIZE", default_value_t = 64)]
    pub default_max_batch_size: u32,

    /// Deepest JSON nesting accepted in a request.
    #[arg(long, env = "WARDEN_MAX_JSON_DEPTH", default_value_t = 100)]
    pub max_json_depth: usize,

    /// Most tensor elements one request may declare (all inputs together).
    #[arg(long, env = "WARDEN_MAX_ELEMENTS", default_value_t = 64 << 20)]
    pub max_elements: u64,

    /// Most simultaneous client connections; more wait in the kernel's backlog.
    #[arg(long, env = "WARDEN_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Seconds a client has to send complete request headers (slowloris guard).
    #[arg(long, env = "WARDEN_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,

    /// Seconds a keep-alive connection may stay silent between requests (also a client that stops reading its answer).
    #[arg(long, env = "WARDEN_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,

    /// Largest request head (request line and headers) in bytes (431 beyond).
    #[arg(long, env = "WARDEN_MAX_HEADER_BYTES", default_value_t = 64 << 10)]
    pub max_header_bytes: usize,

    /// Most request headers (431 beyond).
    #[arg(long, env = "WARDEN_MAX_HEADERS", default_value_t = 100)]
    pub max_headers: usize,

    /// Seconds a whole request (body, queue and inference) may take before 408/503.
    #[arg(long, env = "WARDEN_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// Seconds to let in-flight requests finish after SIGTERM.
    #[arg(long, env = "WARDEN_EXIT_TIMEOUT_SECS", default_value_t = 30)]
    pub exit_timeout_secs: u64,

    /// Lockdown mode: enforce (default), strict (every layer or refuse to start), off (nothing; loud warning).
    #[arg(long, env = "WARDEN_SANDBOX", value_enum, default_value_t = sandbox::Mode::Enforce)]
    pub sandbox: sandbox::Mode,

    /// What a blocked system call does: trap (count, log, EPERM, fail liveness), errno (silent EPERM), kill.
    #[arg(long, env = "WARDEN_SECCOMP_ACTION", value_enum, default_value_t = sandbox::Action::Trap)]
    pub seccomp_action: sandbox::Action,

    /// Keep /v2/health/live at 200 after a blocked system call (default: fail it so the orchestrator replaces the process).
    #[arg(long, env = "WARDEN_LIVE_AFTER_VIOLATION")]
    pub live_after_violation: bool,

    /// Switch to UID:GID before the lockdown (only when started as root); supplementary groups are cleared.
    #[arg(long, env = "WARDEN_USER", value_parser = parse_user)]
    pub user: Option<(u32, u32)>,

    /// Log format: text or json (JSON lines with timestamp, level, target and fields).
    #[arg(long, env = "WARDEN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Verbose logging: 1 logs every request (debug), 2 adds trace. RUST_LOG overrides.
    #[arg(long, env = "WARDEN_LOG_VERBOSE", default_value_t = 0)]
    pub log_verbose: u8,
}

fn parse_user(s: &str) -> Result<(u32, u32), String> {
    let (u, g) = s.split_once(':').ok_or("expected UID:GID, e.g. 65532:65532")?;
    let u = u.parse().map_err(|_| format!("'{u}' is not a numeric uid"))?;
    let g = g.parse().map_err(|_| format!("'{g}' is not a numeric gid"))?;
    Ok((u, g))
}

/// Flags of `warden healthcheck`.
#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// Port of the local warden's HTTP listener.
    #[arg(long, env = "WARDEN_HTTP_PORT", default_value_t = 8000)]
    pub http_port: u16,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 2)]
    pub timeout_secs: u64,
}

/// A flag combination that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--model-repository {0}: {1}")]
    Repository(PathBuf, String),
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub model_repository: PathBuf,
    pub http_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub max_body: usize,
    pub infer_threads: Option<usize>,
    pub http_threads: Option<usize>,
    pub queue_depth: usize,
    pub inline_max: Duration,
    pub default_max_batch_size: u32,
    pub limits: Limits,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub request_timeout: Duration,
    pub exit_timeout: Duration,
    pub sandbox: sandbox::Config,
    pub live_after_violation: bool,
    pub log_format: LogFormat,
    pub log_verbose: u8,
}

impl ServeArgs {
    /// Defaults, with `WARDEN_*` environment variables applied.
    pub fn from_env() -> ServeArgs {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            args: ServeArgs,
        }
        Only::parse_from(["warden"]).args
    }

    pub fn validate(self) -> Result<Settings, ConfigError> {
        let repo = std::fs::canonicalize(&self.model_repository)
            .map_err(|e| ConfigError::Repository(self.model_repository.clone(), e.to_string()))?;
        if !repo.is_dir() {
            return Err(ConfigError::Repository(self.model_repository, "not a directory".into()));
        }
        for (name, v) in [
            ("--queue-depth", self.queue_depth),
            ("--max-connections", self.max_connections),
            ("--http-max-input-size", self.http_max_input_size),
            ("--max-json-depth", self.max_json_depth),
            ("--max-headers", self.max_headers),
        ] {
            if v == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if self.infer_threads == Some(0) {
            return Err(ConfigError::Zero("--infer-threads"));
        }
        if self.http_threads == Some(0) {
            return Err(ConfigError::Zero("--http-threads"));
        }
        Ok(Settings {
            http_addr: SocketAddr::new(self.http_address, self.http_port),
            metrics_addr: self.allow_metrics.then(|| SocketAddr::new(self.metrics_address.unwrap_or(self.http_address), self.metrics_port)),
            max_body: self.http_max_input_size,
            infer_threads: self.infer_threads,
            http_threads: self.http_threads,
            queue_depth: self.queue_depth,
            inline_max: Duration::from_micros(self.inline_max_us),
            default_max_batch_size: self.default_max_batch_size,
            limits: Limits {
                max_json_depth: self.max_json_depth,
                max_elements_per_tensor: self.max_elements,
                max_elements_per_request: self.max_elements,
                max_inputs: 64,
            },
            max_connections: self.max_connections,
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.max(1)),
            // hyper's parser needs room for at least a request line.
            max_header_bytes: self.max_header_bytes.max(1024),
            max_headers: self.max_headers,
            request_timeout: Duration::from_secs(self.request_timeout_secs.max(1)),
            exit_timeout: Duration::from_secs(self.exit_timeout_secs),
            sandbox: sandbox::Config { mode: self.sandbox, action: self.seccomp_action, user: self.user, readable: vec![repo.clone()] },
            model_repository: repo,
            live_after_violation: self.live_after_violation,
            log_format: self.log_format,
            log_verbose: self.log_verbose,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn triton_flag_names_parse() {
        let cli = Cli::try_parse_from([
            "warden",
            "serve",
            "--model-repository",
            ".",
            "--http-port",
            "0",
            "--metrics-port",
            "0",
            "--allow-metrics=false",
            "--user",
            "65532:65532",
        ])
        .unwrap();
        let Some(Command::Serve(a)) = cli.command else { panic!() };
        assert!(!a.allow_metrics);
        assert_eq!(a.user, Some((65532, 65532)));
        let s = a.validate().unwrap();
        assert!(s.metrics_addr.is_none());
        assert!(Cli::try_parse_from(["warden", "serve", "--user", "root"]).is_err());
        assert!(Cli::try_parse_from(["warden", "serve", "--sandbox", "maybe"]).is_err());
    }

    #[test]
    fn bad_repository_is_named() {
        let cli = Cli::try_parse_from(["warden", "serve", "--model-repository", "/nonexistent/x"]).unwrap();
        let Some(Command::Serve(a)) = cli.command else { panic!() };
        let e = a.validate().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/x"), "{e}");
    }
}
