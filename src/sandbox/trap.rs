//! Deny, detect, recover: the SIGSYS handler behind `--seccomp-action=trap`.
//!
//! The handler is async-signal-safe: it bumps an atomic counter for the
//! syscall number and makes the call return -EPERM. A normal task
//! ([`drain`]) turns new counts into log events and metrics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const SLOTS: usize = 512;

static COUNTS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
static SEEN: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
/// Syscall numbers beyond the table.
static OUT_OF_RANGE: AtomicU64 = AtomicU64::new(0);
static OUT_OF_RANGE_SEEN: AtomicU64 = AtomicU64::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Offset of `si_syscall` in `siginfo_t` on 64-bit Linux: signo, errno,
/// code (3 × int), padding to 8, then `_sigsys { void *call_addr; int syscall; }`.
const SI_SYSCALL_OFFSET: usize = 24;

extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers; for
    // SIGSYS raised by seccomp, `si_syscall` lives at this offset (uapi
    // `struct siginfo`, `_sigsys`) on both supported 64-bit architectures.
    let nr = unsafe { std::ptr::read_unaligned((info as *const u8).add(SI_SYSCALL_OFFSET) as *const libc::c_int) };
    match usize::try_from(nr).ok().filter(|&n| n < SLOTS) {
        Some(n) => COUNTS[n].fetch_add(1, Ordering::Relaxed),
        None => OUT_OF_RANGE.fetch_add(1, Ordering::Relaxed),
    };
    let uc = ctx as *mut libc::ucontext_t;
    let ret = -(libc::EPERM as i64);
    // SAFETY: `ctx` is the ucontext the kernel saved for this thread; writing
    // the return register makes the trapped syscall return -EPERM when the
    // handler returns (rt_sigreturn restores it).
    unsafe {
        #[cfg(target_arch = "x86_64")]
        {
            (*uc).uc_mcontext.gregs[libc::REG_RAX as usize] = ret;
        }
        #[cfg(target_arch = "aarch64")]
        {
            (*uc).uc_mcontext.regs[0] = ret as u64;
        }
    }
}

/// Installs the handler (before the seccomp filters, which forbid
/// `rt_sigaction`).
pub fn install() -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid starting point; we set the
    // handler, flags and an empty mask before passing it to the kernel.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigsys as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER | libc::SA_ONSTACK;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    INSTALLED.store(true, Ordering::Relaxed);
    Ok(())
}

/// Total blocked calls counted so far.
pub fn total() -> u64 {
    COUNTS.iter().map(|c| c.load(Ordering::Relaxed)).sum::<u64>() + OUT_OF_RANGE.load(Ordering::Relaxed)
}

/// Count for one syscall number.
pub fn count(nr: i64) -> u64 {
    usize::try_from(nr).ok().filter(|&n| n < SLOTS).map_or(0, |n| COUNTS[n].load(Ordering::Relaxed))
}

/// New blocked calls since the last drain: (syscall number, name, new count).
pub fn drain() -> Vec<(i64, &'static str, u64)> {
    let mut out = Vec::new();
    for n in 0..SLOTS {
        let now = COUNTS[n].load(Ordering::Relaxed);
        let before = SEEN[n].swap(now, Ordering::Relaxed);
        if now > before {
            out.push((n as i64, super::syscalls::name(n as i64), now - before));
        }
    }
    let now = OUT_OF_RANGE.load(Ordering::Relaxed);
    let before = OUT_OF_RANGE_SEEN.swap(now, Ordering::Relaxed);
    if now > before {
        out.push((-1, "other", now - before));
    }
    out
}
