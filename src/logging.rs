//! Logging: `tracing` to stdout, text or JSON lines.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG` overrides `verbose`.
pub fn init(format: LogFormat, verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "info,warden=debug",
        _ => "debug,warden=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stdout);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stdout().is_terminal()).init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).with_span_list(false).init(),
    }
}

/// Replaces the panic hook with one that never captures a backtrace.
///
/// SECURITY: the default hook, with `RUST_BACKTRACE` set (as it is on many
/// machines), resolves the backtrace's symbols: it reads `/proc/self/exe`
/// and the binary's debug information, which the lockdown refuses, so one
/// request that panics inside a kernel would count as an attack and fail
/// the liveness probe. The message and the location are enough to report.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let location = info.location().map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        eprintln!("warden: thread '{}' panicked{location}: {message}", thread.name().unwrap_or("unnamed"));
    }));
}
