//! `warden bench`: measure a model's latency in-process, or any V2 server over HTTP.

use std::process::ExitCode;

/// Flags of `warden bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// A model directory, a model file, or a repository (with --model).
    pub target: Option<std::path::PathBuf>,
}

/// Runs the benchmark.
pub fn run(_args: BenchArgs) -> ExitCode {
    eprintln!("warden bench: not implemented yet");
    ExitCode::FAILURE
}
