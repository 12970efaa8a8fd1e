//! `warden bench`: measure a model's latency in-process, or any V2 server over HTTP.
//!
//! In-process, the model is loaded exactly as `serve` loads it (repository
//! scan, [`LoadedModel::load`], [`LoadedModel::warm_up`]) and each request
//! goes through the same `prepare` → `run` → `outputs` path with a per-thread
//! [`crate::model::Scratch`], so the figures are what a worker thread spends.
//! Over HTTP (`--url`), N keep-alive connections send V2 requests (binary
//! tensor extension by default, like perf_analyzer) to any V2 server.
//!
//! This module owns measuring and reporting; it never applies the lockdown:
//! a benchmark is a measuring tool, not a server.
//!
//! [`LoadedModel::load`]: crate::model::LoadedModel::load
//! [`LoadedModel::warm_up`]: crate::model::LoadedModel::warm_up

mod engine;
mod http;
mod inputs;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

pub use inputs::{InputData, Request, random_requests};
pub use report::{BatchResult, Latency, Report};

/// Flags of `warden bench`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
The benchmark does NOT apply warden's lockdown (no Landlock, seccomp or capability drop): \
it is a measuring tool, not a server. To measure a locked-down server, start `warden serve` \
and point `warden bench --url` at it.

Examples:
  warden bench models --model iris --batch 1,8 --duration 5s --json iris.json --plot iris.svg
  warden bench models/mnist_cnn --iterations 2000
  warden bench --url http://127.0.0.1:8000 --model iris --concurrency 4 --duration 10s")]
pub struct BenchArgs {
    /// A model directory (<model>/<version>/model.onnx), an .onnx file, or a
    /// repository (with --model). Not used with --url.
    pub target: Option<PathBuf>,

    /// Model name: which model of the repository, or the model to request with --url.
    #[arg(long, env = "WARDEN_BENCH_MODEL")]
    pub model: Option<String>,

    /// Batch sizes to measure, comma-separated (models that do not batch use 1).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub batch: Vec<usize>,

    /// How long to measure each batch size (e.g. 10s, 500ms, 1m).
    #[arg(long, value_parser = parse_duration, conflicts_with = "iterations")]
    pub duration: Option<Duration>,

    /// Requests per batch size, instead of a duration.
    #[arg(long)]
    pub iterations: Option<u64>,

    /// Warm-up before each batch size is measured (e.g. 1s, 200ms).
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub warmup: Duration,

    /// In-process: inference threads running concurrently, each with its own plan state.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,

    /// Write the results as JSON to this file ("-" for standard output).
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Write an SVG latency-percentile chart to this file.
    #[arg(long)]
    pub plot: Option<PathBuf>,

    /// Inputs in perf_analyzer's --input-data JSON format instead of random data.
    #[arg(long)]
    pub input_data: Option<PathBuf>,

    /// Drive a V2 server at this base URL (http://host:port) instead of running in-process.
    #[arg(long)]
    pub url: Option<String>,

    /// With --url: concurrent keep-alive connections, each with one request in flight.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,

    /// With --url: send tensors as JSON instead of the binary tensor extension.
    #[arg(long)]
    pub json_tensors: bool,

    /// Random seed of the generated inputs.
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
}

/// How much to measure per batch size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    Duration(Duration),
    Iterations(u64),
}

/// Validated settings, shared by both modes.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub batches: Vec<usize>,
    pub amount: Amount,
    pub warmup: Duration,
    pub seed: u64,
    pub progress: bool,
}

/// Parses `10s`, `500ms`, `1.5s`, `2m`, `100us`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("'{s}' is not a duration (examples: 10s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1e3,
        "us" | "µs" => n / 1e6,
        "m" | "min" => n * 60.0,
        u => return Err(format!("'{s}': unknown unit '{u}' (use us, ms, s or m)")),
    };
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Flags that contradict each other or are out of range.
    #[error("{0}")]
    Usage(String),
    /// The model could not be found, loaded or run.
    #[error("{0}")]
    Model(String),
    /// The input data file is unreadable or does not fit the model.
    #[error("input data: {0}")]
    Inputs(String),
    /// The server could not be reached or answered with errors.
    #[error("{0}")]
    Http(String),
    /// Writing the JSON or the chart failed.
    #[error("{0}")]
    Output(String),
}

impl BenchArgs {
    fn plan(&self) -> Result<Plan, BenchError> {
        let usage = |m: &str| Err(BenchError::Usage(m.into()));
        if self.batch.is_empty() || self.batch.contains(&0) {
            return usage("--batch needs positive batch sizes, e.g. --batch 1,8,32");
        }
        if self.threads == 0 || self.threads > 1024 {
            return usage("--threads must be between 1 and 1024");
        }
        if self.concurrency == 0 || self.concurrency > 4096 {
            return usage("--concurrency must be between 1 and 4096");
        }
        let amount = match (self.duration, self.iterations) {
            (_, Some(0)) => return usage("--iterations must be positive"),
            (_, Some(n)) => Amount::Iterations(n),
            (Some(d), None) if d.is_zero() => return usage("--duration must be positive"),
            (Some(d), None) => Amount::Duration(d),
            (None, None) => Amount::Duration(Duration::from_secs(10)),
        };
        let mut batches = self.batch.clone();
        batches.dedup();
        use std::io::IsTerminal;
        Ok(Plan { batches, amount, warmup: self.warmup, seed: self.seed, progress: std::io::stderr().is_terminal() })
    }
}

/// Runs the benchmark.
pub fn run(args: BenchArgs) -> ExitCode {
    match run_inner(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warden bench: {e}");
            ExitCode::from(match e {
                BenchError::Usage(_) => 2,
                _ => 1,
            })
        }
    }
}

fn run_inner(args: &BenchArgs) -> Result<(), BenchError> {
    let plan = args.plan()?;
    let input_data = args
        .input_data
        .as_deref()
        .map(|p| {
            let bytes = std::fs::read(p).map_err(|e| BenchError::Inputs(format!("{}: {e}", p.display())))?;
            inputs::InputData::parse(&bytes).map_err(|e| BenchError::Inputs(format!("{}: {e}", p.display())))
        })
        .transpose()?;
    let report = match &args.url {
        Some(url) => {
            if args.target.is_some() && args.model.is_some() {
                return Err(BenchError::Usage("with --url, name the model with --model and give no path".into()));
            }
            let model = match (&args.model, &args.target) {
                (Some(m), _) => m.clone(),
                (None, Some(t)) => t.display().to_string(),
                (None, None) => return Err(BenchError::Usage("with --url, name the model with --model".into())),
            };
            http::run(url, &model, args.concurrency, !args.json_tensors, &plan, input_data.as_ref())?
        }
        None => {
            let target = args.target.as_deref().ok_or_else(|| {
                BenchError::Usage("give a model directory, an .onnx file or a repository (with --model), or --url".into())
            })?;
            engine::run(target, args.model.as_deref(), args.threads, &plan, input_data.as_ref())?
        }
    };
    print!("{}", report.table());
    if let Some(p) = &args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| BenchError::Output(e.to_string()))?;
        if p.as_os_str() == "-" {
            println!("{text}");
        } else {
            std::fs::write(p, text + "\n").map_err(|e| BenchError::Output(format!("{}: {e}", p.display())))?;
        }
    }
    if let Some(p) = &args.plot {
        report.plot(p).map_err(|e| BenchError::Output(format!("{}: {e}", p.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("1e400s").is_err());
    }
}
