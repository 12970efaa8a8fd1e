//! The lockdown, in the order `main` applies it (DESIGN §1):
//!
//! 1. [`lockdown_a`] — while the process has exactly one thread: optional
//!    switch to an unprivileged user, `PR_SET_NO_NEW_PRIVS`, not dumpable,
//!    no core files, every capability set emptied, Landlock (read-only
//!    beneath the model repository, no TCP bind/connect, abstract unix
//!    sockets and signals scoped). Threads created later inherit all of it.
//! 2. [`trap::install`] — the SIGSYS handler that counts blocked calls.
//! 3. [`seccomp_filter`] — on every thread, once every model file has been
//!    read and before any is parsed: no exec, fork, sockets, ptrace,
//!    namespaces, file access, or further filters. It is the only seccomp
//!    stage: the models are parsed under it, so a parser bug meets the same
//!    walls as a request.
//!
//! Each step records what it achieved in a [`Status`], which start-up logs
//! and metrics expose. Whether a missing layer is fatal is decided by the
//! [`Mode`].

mod caps;
pub mod fatal;
mod landlock;
pub mod seccomp;
pub mod syscalls;
pub mod trap;

use std::path::PathBuf;

/// How hard the lockdown insists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// No-new-privs, capabilities and seccomp are mandatory; Landlock is
    /// applied as far as the kernel allows (gaps are warned about).
    Enforce,
    /// Refuse to start unless every layer is fully in force.
    Strict,
    /// Apply nothing (debugging, and measuring the lockdown's cost).
    Off,
}

/// What a blocked system call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    /// SIGSYS: counted, logged, the call returns EPERM, liveness fails.
    Trap,
    /// The call returns EPERM silently.
    Errno,
    /// The process is killed.
    Kill,
}

/// What the lockdown is asked to do.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub action: Action,
    /// Switch to this uid:gid (only when started as root).
    pub user: Option<(u32, u32)>,
    /// Directories left readable (the model repository).
    pub readable: Vec<PathBuf>,
}

/// Why the lockdown could not be applied; start-up stops.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// INVARIANT violated: lockdown A needs a single-threaded process.
    #[error("the process has {0} threads; the lockdown must be applied while it has exactly one")]
    NotSingleThreaded(usize),
    /// A layer failed.
    #[error("{layer}: {reason}")]
    Layer { layer: &'static str, reason: String },
    /// Strict mode found a layer not fully in force.
    #[error("--sandbox=strict: layer '{layer}' is not fully in force ({detail})")]
    NotFullyEnforced { layer: &'static str, detail: String },
}

fn layer_err(layer: &'static str, reason: impl ToString) -> SandboxError {
    SandboxError::Layer { layer, reason: reason.to_string() }
}

/// One layer's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub name: &'static str,
    pub active: bool,
    pub detail: String,
}

/// The state of every layer, for logs and metrics.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub layers: Vec<Layer>,
}

impl Status {
    fn set(&mut self, name: &'static str, active: bool, detail: impl Into<String>) {
        let detail = detail.into();
        match self.layers.iter_mut().find(|l| l.name == name) {
            Some(l) => {
                l.active = active;
                l.detail = detail;
            }
            None => self.layers.push(Layer { name, active, detail }),
        }
    }

    pub fn is_active(&self, name: &str) -> bool {
        self.layers.iter().any(|l| l.name == name && l.active)
    }
}

/// Counts the threads of this process (reads `/proc`, so only before the lockdown).
pub fn thread_count() -> std::io::Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| std::io::Error::other("no Threads: line in /proc/self/status"))
}

/// Lockdown A: identity, privileges, capabilities, Landlock.
///
/// INVARIANT: called while the process has exactly one thread. Landlock
/// (below ABI 8) and the credential changes apply to the calling thread and
/// its future children only; a thread that already exists would stay
/// outside the walls. This fails closed if the invariant does not hold.
pub fn lockdown_a(cfg: &Config) -> Result<Status, SandboxError> {
    let mut status = Status::default();
    if cfg.mode == Mode::Off {
        return Ok(status);
    }
    let threads = thread_count().map_err(|e| layer_err("threads", e))?;
    if threads != 1 {
        return Err(SandboxError::NotSingleThreaded(threads));
    }
    if let Some((uid, gid)) = cfg.user {
        caps::switch_user(uid, gid)?;
        status.set("user", true, format!("uid={uid} gid={gid}, no supplementary groups"));
    }
    prctl_basics()?;
    status.set("no_new_privs", true, "PR_SET_NO_NEW_PRIVS=1");
    limit_arenas();
    status.set("not_dumpable", true, "PR_SET_DUMPABLE=0, RLIMIT_CORE=0");
    let detail = caps::drop_all()?;
    status.set("capabilities", true, detail);
    let ll = landlock::restrict(&cfg.readable, cfg.mode == Mode::Strict)?;
    for (name, active, detail) in ll {
        if cfg.mode == Mode::Strict && !active {
            return Err(SandboxError::NotFullyEnforced { layer: name, detail });
        }
        status.set(name, active, detail);
    }
    Ok(status)
}

/// Closes every descriptor above 2 that the parent left open, and points
/// standard input at `/dev/null`.
///
/// SECURITY: a descriptor inherited from whatever started warden (a secret
/// file, a socket of the supervisor) stays readable through `read`, which
/// the serving filter allows: neither Landlock nor seccomp looks at which
/// descriptor a call names. Closing them first thing leaves the process
/// with only what it opens itself.
pub fn close_inherited() -> std::io::Result<()> {
    // SAFETY: close_range takes three integers and touches no memory.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if rc != 0 {
        // Kernels before 5.9: close what /proc lists (collected first, as
        // the listing's own descriptor is among them).
        let fds: Vec<i32> =
            std::fs::read_dir("/proc/self/fd")?.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).filter(|&fd| fd > 2).collect();
        for fd in fds {
            // SAFETY: closing a descriptor number; nothing in this process
            // owns those above 2 yet.
            unsafe { libc::close(fd) };
        }
    }
    let null = std::fs::File::open("/dev/null")?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&null);
    // dup3, not dup2: aarch64 has only dup3, and the container profile
    // allows the one call on both architectures. Rust's runtime keeps 0-2
    // open, so `fd` is above 2 and dup3's "same descriptor" error cannot
    // happen.
    // SAFETY: dup3 between two valid descriptors.
    if fd != 0 && unsafe { libc::dup3(fd, 0, 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A fixed arena limit keeps glibc from counting CPUs (which may read
/// `/sys`) the first time a thread needs a new arena after the lockdown.
fn limit_arenas() {
    #[cfg(target_env = "gnu")]
    {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: mallopt only sets an allocator parameter.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, (8 * cpus) as libc::c_int) };
    }
}

fn prctl_basics() -> Result<(), SandboxError> {
    // SAFETY: prctl with integer arguments only; no memory is passed.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(layer_err("no_new_privs", std::io::Error::last_os_error()));
    }
    // SAFETY: as above.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if rc != 0 {
        return Err(layer_err("not_dumpable", std::io::Error::last_os_error()));
    }
    let zero = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: setrlimit reads the struct we pass by reference.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
    if rc != 0 {
        return Err(layer_err("not_dumpable", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Makes glibc read, while files can still be opened, the files it otherwise
/// reads lazily later and then caches: the first heap trim in a thread arena
/// opens `/proc/sys/vm/overcommit_memory`. Under the filter that open would
/// be a (harmless) violation that marks the process compromised.
fn prime_libc() {
    // A thread other than main allocates from its own arena; freeing 4 MiB
    // of small blocks leaves a top chunk above the trim threshold, so the
    // arena trims and glibc caches its answer (Landlock makes the read fail
    // with EACCES, which glibc also caches).
    let _ = std::thread::Builder::new()
        .name("warden-prime".into())
        .spawn(|| {
            let blocks: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 64 << 10]).collect();
            std::hint::black_box(&blocks);
            drop(blocks);
        })
        .map(|h| h.join());
}

/// `prctl` option and flag of memory-deny-write-execute (linux/prctl.h).
const PR_SET_MDWE: libc::c_int = 65;
const PR_MDWE_REFUSE_EXEC_GAIN: libc::c_ulong = 1;

/// The seccomp filters on every thread (see [`seccomp`]): nothing reads a
/// file, opens a socket or installs a filter from here on.
pub fn seccomp_filter(cfg: &Config, status: &mut Status) -> Result<(), SandboxError> {
    if cfg.mode == Mode::Off {
        return Ok(());
    }
    prime_libc();
    // SECURITY: W^X from here on. The kernel's memory-deny-write-execute
    // (6.3+) refuses writable-and-executable mappings and any mapping
    // becoming executable; the filter refuses PROT_EXEC in mmap and
    // mprotect (pkey_mprotect is not allowed at all). Per process, so
    // every thread has it.
    // SAFETY: prctl with integer arguments only.
    let mdwe = unsafe { libc::prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) };
    let mdwe = if mdwe == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) };
    seccomp::apply_filters(cfg.action).map_err(|e| layer_err("seccomp", e))?;
    status.set("seccomp", true, format!("serving allowlist, no file access, violation action {:?}", cfg.action));
    let (active, detail) = match mdwe {
        Ok(()) => (true, "PR_SET_MDWE refuses write+execute and exec gain; PROT_EXEC refused in mmap and mprotect".to_string()),
        Err(e) => (false, format!("PR_SET_MDWE unavailable ({e}; kernel 6.3+): only the filter refuses PROT_EXEC")),
    };
    if cfg.mode == Mode::Strict && !active {
        return Err(SandboxError::NotFullyEnforced { layer: "memory_wx", detail });
    }
    status.set("memory_wx", active, detail);
    Ok(())
}

/// Every layer warden knows, for metrics that show 0 when one is missing.
pub const LAYERS: &[&str] =
    &["user", "no_new_privs", "not_dumpable", "capabilities", "landlock_fs", "landlock_net", "landlock_scope", "seccomp", "memory_wx"];
