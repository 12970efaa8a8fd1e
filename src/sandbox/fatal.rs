//! Fatal signals end the process at once, by the signal, with a last line.
//!
//! Rust's runtime answers SIGSEGV and SIGBUS with a handler that, for a
//! fault outside a thread's stack guard, restores the default action with
//! `sigaction` and returns, so that the fault repeats and kills. Under the
//! lockdown `rt_sigaction` is denied: the restore fails, the handler
//! returns, the fault repeats, and the thread spins between the fault and
//! the handler for ever (100 % CPU, never ready, SIGTERM ignored). A hang is
//! worse than a crash for an orchestrator.
//!
//! warden's handler is installed with `SA_RESETHAND`: the kernel restores
//! the default action as it delivers the signal, so no system call is
//! needed. The handler writes one line to stderr (`write` is allowed in
//! every filter) and returns; the faulting instruction runs again and the
//! process dies by the signal, which is what the orchestrator and the exit
//! status show.

/// Signals a faulting instruction raises.
const FATAL: [(libc::c_int, &str); 4] = [
    (libc::SIGSEGV, "warden: fatal signal SIGSEGV (invalid memory access or stack overflow); the process ends\n"),
    (libc::SIGBUS, "warden: fatal signal SIGBUS (bus error); the process ends\n"),
    (libc::SIGILL, "warden: fatal signal SIGILL (illegal instruction); the process ends\n"),
    (libc::SIGFPE, "warden: fatal signal SIGFPE (arithmetic fault); the process ends\n"),
];

extern "C" fn on_fatal(sig: libc::c_int) {
    let msg = FATAL.iter().find(|(s, _)| *s == sig).map_or("warden: fatal signal; the process ends\n", |(_, m)| m);
    // SAFETY: write(2) is async-signal-safe; the buffer is a static string.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    // Returning re-runs the faulting instruction under the default action,
    // which the kernel restored on delivery (SA_RESETHAND).
}

/// Installs the handler for SIGSEGV, SIGBUS, SIGILL and SIGFPE. Must run
/// before the seccomp filters (which forbid `rt_sigaction`).
pub fn install() -> std::io::Result<()> {
    for (sig, _) in FATAL {
        // SAFETY: a zeroed sigaction is a valid starting point; the handler,
        // flags and an empty mask are set before it is passed to the kernel.
        // SA_ONSTACK: a stack overflow runs the handler on the alternate
        // stack Rust's runtime gives every thread it starts.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_fatal as *const () as usize;
            sa.sa_flags = libc::SA_RESETHAND | libc::SA_ONSTACK | libc::SA_NODEFER;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}
