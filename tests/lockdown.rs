//! Lockdown tests. Applying the lockdown is irreversible, so every case runs
//! in its own process: this `harness = false` binary re-runs itself with
//! `WARDEN_LOCKDOWN_CASE=<case>` and the parent checks what the child
//! reports. Each probe is an attack an intruder would try; the negative
//! controls run the same probes with the lockdown off and must succeed, which
//! proves the probes can see an open process.
//!
//! `cargo test --test lockdown [-- FILTER]`. The README's table of what the
//! lockdown blocks is checked against what the probes observe here
//! (`WARDEN_UPDATE_README=1` rewrites it).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use warden::sandbox::{self, Action, Mode};

const CASE_ENV: &str = "WARDEN_LOCKDOWN_CASE";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `Ok` when the call succeeded, `Err(errno)` otherwise.
fn check(rc: i64) -> Result<i64, i32> {
    if rc < 0 { Err(errno()) } else { Ok(rc) }
}

fn close(fd: i64) {
    // SAFETY: closing a descriptor this probe just obtained.
    unsafe { libc::close(fd as i32) };
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// What the child prepares before any lockdown: targets for the probes.
struct Targets {
    /// Another process (a child `sleep`), for ptrace, signals, pidfd, process_vm_readv.
    sleeper: std::process::Child,
    /// A readable address in the sleeper.
    sleeper_addr: usize,
    /// A TCP listener to connect to, and sockets made before the lockdown.
    listener: std::net::TcpListener,
    connect_fd: OwnedFd,
    bind_fd: OwnedFd,
    /// Fresh TCP sockets for the TCP Fast Open probes (sendto, sendmsg).
    fastopen_fds: [OwnedFd; 2],
    /// An abstract unix socket bound before the lockdown.
    _abstract: std::os::unix::net::UnixListener,
    abstract_name: String,
    tmp: PathBuf,
    lockdown: bool,
}

fn tcp_socket() -> OwnedFd {
    // SAFETY: plain socket(2); the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0, "socket: {}", errno());
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn sockaddr(port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be() },
        sin_zero: [0; 8],
    }
}

impl Targets {
    fn prepare(lockdown: bool) -> Targets {
        // Null stdio: a case that exits without dropping Targets would
        // otherwise leave the sleeper holding the parent's output pipes open
        // for a minute.
        let sleeper =
            Command::new("sleep").arg("60").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn sleep");
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", sleeper.id())).unwrap();
        let line = maps.lines().find(|l| l.split_whitespace().nth(1).is_some_and(|p| p.starts_with('r'))).unwrap();
        let sleeper_addr = usize::from_str_radix(line.split('-').next().unwrap(), 16).unwrap();
        let tmp = std::env::temp_dir().join(format!("warden-lockdown-{}", std::process::id()));
        std::fs::create_dir_all(tmp.join("mnt")).unwrap();
        std::fs::write(tmp.join("victim"), b"x").unwrap();
        std::fs::write(tmp.join("victim2"), b"x").unwrap();
        let abstract_name = format!("warden-test-{}", std::process::id());
        let addr =
            <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(abstract_name.as_bytes()).unwrap();
        let abstract_listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
        Targets {
            sleeper,
            sleeper_addr,
            listener: std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
            connect_fd: tcp_socket(),
            bind_fd: tcp_socket(),
            fastopen_fds: [tcp_socket(), tcp_socket()],
            _abstract: abstract_listener,
            abstract_name,
            tmp,
            lockdown,
        }
    }

    fn pid(&self) -> i32 {
        self.sleeper.id() as i32
    }
}

impl Drop for Targets {
    fn drop(&mut self) {
        let _ = self.sleeper.kill();
    }
}

type Probe = fn(&Targets) -> Result<i64, i32>;

/// Runs `f` in a forked child when the lockdown is off (an exec that works
/// would otherwise replace this process); directly when it is on.
fn in_child_if_open(lockdown: bool, f: impl Fn() -> i64) -> Result<i64, i32> {
    if lockdown {
        return check(f());
    }
    // SAFETY: fork in a single-threaded process; the child only execs or exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        f();
        // SAFETY: leave the child without running the parent's destructors.
        unsafe { libc::_exit(127) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 { Ok(0) } else { Err(libc::WEXITSTATUS(status)) }
}

fn socket_probe(family: i32, ty: i32) -> Result<i64, i32> {
    // SAFETY: plain socket(2).
    let fd = check(unsafe { libc::socket(family, ty, 0) } as i64)?;
    close(fd);
    Ok(fd)
}

fn exec_sh(use_execveat: bool) -> i64 {
    let sh = cstr("/bin/sh");
    let args = [cstr("sh"), cstr("-c"), cstr("exit 0")];
    let argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: NUL-terminated strings and NULL-terminated arrays that outlive the call.
    unsafe {
        if use_execveat {
            libc::syscall(libc::SYS_execveat, libc::AT_FDCWD, sh.as_ptr(), argv.as_ptr(), envp.as_ptr(), 0)
        } else {
            libc::execve(sh.as_ptr(), argv.as_ptr(), envp.as_ptr()) as i64
        }
    }
}

fn wait_child(pid: i64) {
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid as i32, &mut status, 0) };
}

/// The attacks, in an order that keeps the negative control usable
/// (setuid last: it drops root for what follows).
fn probes() -> Vec<(&'static str, &'static str, Probe)> {
    vec![
        ("socket_inet_stream", "socket", |_| socket_probe(libc::AF_INET, libc::SOCK_STREAM)),
        ("socket_inet_dgram", "socket", |_| socket_probe(libc::AF_INET, libc::SOCK_DGRAM)),
        ("socket_inet6_stream", "socket", |_| socket_probe(libc::AF_INET6, libc::SOCK_STREAM)),
        ("socket_inet6_dgram", "socket", |_| socket_probe(libc::AF_INET6, libc::SOCK_DGRAM)),
        ("socket_unix", "socket", |_| socket_probe(libc::AF_UNIX, libc::SOCK_STREAM)),
        ("socket_netlink", "socket", |_| socket_probe(libc::AF_NETLINK, libc::SOCK_RAW)),
        ("socket_packet", "socket", |_| socket_probe(libc::AF_PACKET, libc::SOCK_RAW)),
        ("socketpair", "socketpair", |_| {
            let mut fds = [0i32; 2];
            // SAFETY: fds has room for the two descriptors.
            check(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) } as i64)?;
            close(fds[0] as i64);
            close(fds[1] as i64);
            Ok(0)
        }),
        ("connect_tcp", "connect", |t| {
            let a = sockaddr(t.listener.local_addr().unwrap().port());
            // SAFETY: a valid sockaddr_in and its size.
            check(unsafe { libc::connect(t.connect_fd.as_raw_fd(), &a as *const _ as *const libc::sockaddr, size_of_val(&a) as u32) } as i64)
        }),
        ("bind_tcp", "bind", |t| {
            let a = sockaddr(0);
            // SAFETY: a valid sockaddr_in and its size.
            check(unsafe { libc::bind(t.bind_fd.as_raw_fd(), &a as *const _ as *const libc::sockaddr, size_of_val(&a) as u32) } as i64)
        }),
        ("mmap_rwx", "mmap", |_| {
            let prot = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
            // SAFETY: an anonymous private mapping, unmapped at once if made.
            let p = unsafe { libc::mmap(std::ptr::null_mut(), 4096, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
            if p == libc::MAP_FAILED {
                return Err(errno());
            }
            // SAFETY: the mapping just made.
            unsafe { libc::munmap(p, 4096) };
            Ok(0)
        }),
        ("mprotect_heap_rwx", "mprotect", |_| {
            // A page of the heap, as shellcode written into a buffer would need.
            let mut buf = vec![0u8; 3 * 4096];
            let page = (buf.as_mut_ptr() as usize + 4095) & !4095;
            let prot = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
            // SAFETY: the page lies inside `buf`; it is made RW again before `buf` is freed.
            let rc = unsafe { libc::mprotect(page as *mut libc::c_void, 4096, prot) };
            let r = check(rc as i64);
            if r.is_ok() {
                // SAFETY: as above.
                unsafe { libc::mprotect(page as *mut libc::c_void, 4096, libc::PROT_READ | libc::PROT_WRITE) };
            }
            drop(buf);
            r
        }),
        ("io_uring_setup", "io_uring_setup", |_| {
            let mut params = [0u8; 120];
            // SAFETY: io_uring_params is 120 bytes; zeroed is a valid request.
            let fd = check(unsafe { libc::syscall(libc::SYS_io_uring_setup, 4, params.as_mut_ptr()) })?;
            close(fd);
            Ok(fd)
        }),
        ("fork", "clone", |_| {
            // SAFETY: the child exits at once.
            let pid = check(unsafe { libc::fork() } as i64)?;
            if pid == 0 {
                // SAFETY: leave the child immediately.
                unsafe { libc::_exit(0) };
            }
            wait_child(pid);
            Ok(pid)
        }),
        ("vfork", "vfork", |_| {
            // SAFETY: the vfork child only calls exit(2), touching no memory.
            let pid = check(unsafe { libc::syscall(libc::SYS_vfork) })?;
            if pid == 0 {
                // SAFETY: as above.
                unsafe { libc::syscall(libc::SYS_exit, 0) };
            }
            wait_child(pid);
            Ok(pid)
        }),
        ("clone_without_thread", "clone", |_| {
            // SAFETY: fork-like clone (no CLONE_VM); the child exits at once.
            let pid = check(unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as i64, 0, 0, 0, 0) })?;
            if pid == 0 {
                // SAFETY: leave the child immediately.
                unsafe { libc::syscall(libc::SYS_exit, 0) };
            }
            wait_child(pid);
            Ok(pid)
        }),
        ("execve_sh", "execve", |t| in_child_if_open(t.lockdown, || exec_sh(false))),
        ("execveat_sh", "execveat", |t| in_child_if_open(t.lockdown, || exec_sh(true))),
        ("open_read_outside_repo", "openat", |_| {
            let p = cstr("/etc/hostname");
            // SAFETY: a NUL-terminated path.
            let fd = check(unsafe { libc::open(p.as_ptr(), libc::O_RDONLY) } as i64)?;
            close(fd);
            Ok(fd)
        }),
        ("open_read_model_file", "openat", |_| {
            let p = cstr(repo().join("iris/1/model.onnx").to_str().unwrap());
            // SAFETY: a NUL-terminated path.
            let fd = check(unsafe { libc::open(p.as_ptr(), libc::O_RDONLY) } as i64)?;
            close(fd);
            Ok(fd)
        }),
        ("create_file", "openat", |t| {
            let p = cstr(t.tmp.join("planted").to_str().unwrap());
            // SAFETY: a NUL-terminated path.
            let fd = check(unsafe { libc::open(p.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o600) } as i64)?;
            close(fd);
            Ok(fd)
        }),
        ("rename_file", "rename", |t| {
            let (a, b) = (cstr(t.tmp.join("victim").to_str().unwrap()), cstr(t.tmp.join("renamed").to_str().unwrap()));
            // SAFETY: NUL-terminated paths.
            check(unsafe { libc::rename(a.as_ptr(), b.as_ptr()) } as i64)
        }),
        ("delete_file", "unlink", |t| {
            let a = cstr(t.tmp.join("victim2").to_str().unwrap());
            // SAFETY: a NUL-terminated path.
            check(unsafe { libc::unlink(a.as_ptr()) } as i64)
        }),
        ("memfd_create", "memfd_create", |_| {
            let n = cstr("x");
            // SAFETY: a NUL-terminated name.
            let fd = check(unsafe { libc::memfd_create(n.as_ptr(), 0) } as i64)?;
            close(fd);
            Ok(fd)
        }),
        ("ptrace_attach_other", "ptrace", |t| {
            // SAFETY: ptrace on our own child `sleep`; detached at once.
            let rc = check(unsafe { libc::ptrace(libc::PTRACE_ATTACH, t.pid(), 0, 0) })?;
            let mut status = 0;
            // SAFETY: as above.
            unsafe {
                libc::waitpid(t.pid(), &mut status, 0);
                libc::ptrace(libc::PTRACE_DETACH, t.pid(), 0, 0);
            }
            Ok(rc)
        }),
        ("process_vm_readv_other", "process_vm_readv", |t| {
            let mut byte = [0u8; 1];
            let local = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
            let remote = libc::iovec { iov_base: t.sleeper_addr as *mut libc::c_void, iov_len: 1 };
            // SAFETY: one local byte of ours; the remote address is only read by the kernel.
            check(unsafe { libc::process_vm_readv(t.pid(), &local, 1, &remote, 1, 0) } as i64)
        }),
        // SAFETY: signal 0 only checks permission.
        ("kill_other", "kill", |t| check(unsafe { libc::kill(t.pid(), 0) } as i64)),
        ("pidfd_open_other", "pidfd_open", |t| {
            // SAFETY: pidfd_open(2) with a pid and no flags.
            let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, t.pid(), 0) })?;
            close(fd);
            Ok(fd)
        }),
        ("bpf_map_create", "bpf", |_| {
            let mut attr = [0u32; 16];
            attr[..4].copy_from_slice(&[2, 4, 4, 1]); // BPF_MAP_TYPE_ARRAY, key 4, value 4, 1 entry
            // SAFETY: a zero-padded bpf_attr of the size given.
            let fd = check(unsafe { libc::syscall(libc::SYS_bpf, 0, attr.as_ptr(), 64) })?;
            close(fd);
            Ok(fd)
        }),
        ("perf_event_open", "perf_event_open", |_| {
            let mut attr = [0u64; 16];
            attr[0] = 1 | (128u64 << 32); // PERF_TYPE_SOFTWARE, size 128; config 0 = CPU clock
            // SAFETY: a zero-padded perf_event_attr of 128 bytes.
            let fd = check(unsafe { libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), 0, -1, -1, 0) })?;
            close(fd);
            Ok(fd)
        }),
        ("unshare_mount_ns", "unshare", |_| {
            // SAFETY: a namespace flag only.
            check(unsafe { libc::unshare(libc::CLONE_NEWNS) } as i64)
        }),
        ("mount_tmpfs", "mount", |t| {
            let (root, none, tmpfs, at) = (cstr("/"), cstr("none"), cstr("tmpfs"), cstr(t.tmp.join("mnt").to_str().unwrap()));
            // SAFETY: NUL-terminated strings. The first call keeps the negative
            // control's mount private to the namespace unshared just before.
            unsafe {
                check(libc::mount(std::ptr::null(), root.as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_PRIVATE, std::ptr::null())
                    as i64)?;
                check(libc::mount(none.as_ptr(), at.as_ptr(), tmpfs.as_ptr(), 0, std::ptr::null()) as i64)
            }
        }),
        ("sendto_fastopen", "sendto", |t| {
            // TCP Fast Open: data and a connection in one call, no connect(2).
            let a = sockaddr(t.listener.local_addr().unwrap().port());
            // SAFETY: a one-byte buffer and a valid sockaddr_in with its size.
            check(unsafe {
                libc::sendto(
                    t.fastopen_fds[0].as_raw_fd(),
                    b"x".as_ptr().cast(),
                    1,
                    libc::MSG_FASTOPEN,
                    &a as *const _ as *const libc::sockaddr,
                    size_of_val(&a) as u32,
                )
            } as i64)
        }),
        ("sendmsg_fastopen", "sendmsg", |t| {
            let mut a = sockaddr(t.listener.local_addr().unwrap().port());
            let mut byte = *b"x";
            let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
            // SAFETY: a zeroed msghdr is valid; the fields set point at live locals.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = (&mut a as *mut libc::sockaddr_in).cast();
            msg.msg_namelen = size_of_val(&a) as u32;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            // SAFETY: msg describes the buffers above.
            check(unsafe { libc::sendmsg(t.fastopen_fds[1].as_raw_fd(), &msg, libc::MSG_FASTOPEN) } as i64)
        }),
        ("futex_lock_pi", "futex", |_| {
            let word = std::sync::atomic::AtomicU32::new(0);
            let op = libc::FUTEX_LOCK_PI | libc::FUTEX_PRIVATE_FLAG;
            // SAFETY: futex on a live, aligned u32; an uncontended PI lock takes it at once.
            let r = check(unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), op, 0, std::ptr::null::<libc::timespec>()) });
            if r.is_ok() {
                // SAFETY: as above; releases the lock just taken.
                unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_UNLOCK_PI | libc::FUTEX_PRIVATE_FLAG, 0) };
            }
            r
        }),
        ("shutdown_listener_read", "shutdown", |t| {
            // Turns the listener into a closed socket: the server stops accepting.
            // SAFETY: shutdown on a descriptor the targets own.
            check(unsafe { libc::shutdown(t.listener.as_raw_fd(), libc::SHUT_RD) } as i64)
        }),
        // SAFETY: setuid with a number; last, as it drops root in the negative control.
        ("setuid", "setuid", |_| check(unsafe { libc::setuid(65534) } as i64)),
    ]
}

fn syscall_nr(name: &str) -> i64 {
    match name {
        "socket" => libc::SYS_socket,
        "socketpair" => libc::SYS_socketpair,
        "connect" => libc::SYS_connect,
        "bind" => libc::SYS_bind,
        "io_uring_setup" => libc::SYS_io_uring_setup,
        "clone" => libc::SYS_clone,
        #[cfg(target_arch = "x86_64")]
        "vfork" => libc::SYS_vfork,
        "execve" => libc::SYS_execve,
        "execveat" => libc::SYS_execveat,
        "openat" => libc::SYS_openat,
        #[cfg(target_arch = "x86_64")]
        "rename" => libc::SYS_rename,
        #[cfg(target_arch = "x86_64")]
        "unlink" => libc::SYS_unlink,
        "memfd_create" => libc::SYS_memfd_create,
        "ptrace" => libc::SYS_ptrace,
        "process_vm_readv" => libc::SYS_process_vm_readv,
        "kill" => libc::SYS_kill,
        "pidfd_open" => libc::SYS_pidfd_open,
        "bpf" => libc::SYS_bpf,
        "perf_event_open" => libc::SYS_perf_event_open,
        "mmap" => libc::SYS_mmap,
        "sendto" => libc::SYS_sendto,
        "sendmsg" => libc::SYS_sendmsg,
        "futex" => libc::SYS_futex,
        "shutdown" => libc::SYS_shutdown,
        "mprotect" => libc::SYS_mprotect,
        "unshare" => libc::SYS_unshare,
        "mount" => libc::SYS_mount,
        "setuid" => libc::SYS_setuid,
        other => panic!("no syscall number for {other}"),
    }
}

fn config(action: Action, readable: PathBuf) -> sandbox::Config {
    sandbox::Config { mode: Mode::Strict, action, user: None, readable: vec![readable] }
}

/// The full lockdown exactly as `main` orders it, minus the model loading.
fn full_lockdown(action: Action) -> sandbox::Status {
    let cfg = config(action, repo());
    let mut status = sandbox::lockdown_a(&cfg).expect("lockdown A");
    if action == Action::Trap {
        sandbox::trap::install().expect("SIGSYS handler");
    }
    sandbox::seccomp_filter(&cfg, &mut status).expect("seccomp filters");
    status
}

fn run_probes(t: &Targets, list: &[(&'static str, &'static str, Probe)]) -> Value {
    let mut out = serde_json::Map::new();
    for (name, syscall, probe) in list {
        let before = sandbox::trap::count(syscall_nr(syscall));
        let r = probe(t);
        let trapped = sandbox::trap::count(syscall_nr(syscall)) - before;
        out.insert(name.to_string(), json!({"ok": r.is_ok(), "errno": r.err().unwrap_or(0), "trapped": trapped}));
    }
    Value::Object(out)
}

/// Every probe plus one that only Landlock's scoping can stop.
fn landlock_probes() -> Vec<(&'static str, &'static str, Probe)> {
    let mut v = probes();
    let last = v.pop().expect("setuid is last");
    v.push(("connect_abstract_unix", "connect", |t| {
        let addr =
            <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(t.abstract_name.as_bytes()).unwrap();
        std::os::unix::net::UnixStream::connect_addr(&addr).map(|_| 0).map_err(|e| e.raw_os_error().unwrap_or(0))
    }));
    v.push(last);
    v
}

// ---- the probe operator, for "models are parsed inside the walls" ----

static LOAD_RESULTS: std::sync::Mutex<Vec<(String, Result<i64, i32>)>> = std::sync::Mutex::new(Vec::new());
static LOCKDOWN_ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

type ParseOut = tract_onnx::prelude::TractResult<(Box<dyn tract_onnx::tract_hir::infer::InferenceOp>, Vec<String>)>;

/// The constructor of the `WardenProbe` operator: it runs while tract parses
/// the model, as code in a malicious model file exploiting the parser would.
fn probe_op(_ctx: &tract_onnx::model::ParsingContext, _node: &tract_onnx::pb::NodeProto) -> ParseOut {
    let lockdown = LOCKDOWN_ON.load(std::sync::atomic::Ordering::SeqCst);
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut r = LOAD_RESULTS.lock().unwrap();
    r.push(("socket".into(), socket_probe(libc::AF_INET, libc::SOCK_STREAM)));
    r.push(("execve_sh".into(), in_child_if_open(lockdown, || exec_sh(false))));
    let p = cstr("/etc/hostname");
    // SAFETY: a NUL-terminated path.
    let rc = check(unsafe { libc::open(p.as_ptr(), libc::O_RDONLY) } as i64);
    if let Ok(fd) = rc {
        close(fd);
    }
    r.push(("open_outside_repo".into(), rc));
    let p = cstr(data.join("planted-by-model").to_str().unwrap());
    // SAFETY: a NUL-terminated path.
    let rc = check(unsafe { libc::open(p.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o600) } as i64);
    if let Ok(fd) = rc {
        close(fd);
        let _ = std::fs::remove_file(data.join("planted-by-model"));
    }
    r.push(("create_in_repo".into(), rc));
    // Reading the model files again (the parser bug's next step: look for
    // secrets beside the model).
    let p = cstr(data.join("probe.onnx").to_str().unwrap());
    // SAFETY: a NUL-terminated path.
    let rc = check(unsafe { libc::open(p.as_ptr(), libc::O_RDONLY) } as i64);
    if let Ok(fd) = rc {
        close(fd);
    }
    r.push(("open_model_file".into(), rc));
    // The ordering attack: a filter of the model's own on every thread,
    // which could answer warden's later seccomp calls with ERRNO 0. This
    // one allows everything, so the negative control stays harmless.
    let allow = libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0x7fff_0000 };
    let prog = libc::sock_fprog { len: 1, filter: &allow as *const libc::sock_filter as *mut libc::sock_filter };
    // SAFETY: seccomp(SET_MODE_FILTER, TSYNC) reads the one-instruction program above.
    let rc = check(unsafe { libc::syscall(libc::SYS_seccomp, 1, 1, &prog as *const libc::sock_fprog) });
    r.push(("seccomp_tsync".into(), rc));
    Ok((Box::<tract_onnx::tract_hir::ops::identity::Identity>::default(), vec![]))
}

// ---- child side ----

fn child(case: &str) {
    let result = match case {
        "probes_off" => {
            let t = Targets::prepare(false);
            run_probes(&t, &probes())
        }
        "probes_trap" | "probes_errno" => {
            let action = if case == "probes_trap" { Action::Trap } else { Action::Errno };
            let t = Targets::prepare(true);
            full_lockdown(action);
            run_probes(&t, &probes())
        }
        "landlock_off" => {
            let t = Targets::prepare(false);
            run_probes(&t, &landlock_probes())
        }
        "landlock_only" => {
            let t = Targets::prepare(true);
            let status = sandbox::lockdown_a(&config(Action::Trap, repo())).expect("lockdown A");
            assert!(status.is_active("landlock_fs") && status.is_active("landlock_net") && status.is_active("landlock_scope"));
            run_probes(&t, &landlock_probes())
        }
        "threads" => {
            let cfg = config(Action::Trap, repo());
            let mut status = sandbox::lockdown_a(&cfg).expect("lockdown A");
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            sandbox::trap::install().unwrap();
            sandbox::seccomp_filter(&cfg, &mut status).unwrap();
            let std_thread = std::thread::spawn(|| 6 * 7).join().unwrap();
            let blocking = rt.block_on(async {
                let mut sum = 0;
                for i in 0..8 {
                    sum += tokio::task::spawn_blocking(move || i).await.unwrap();
                }
                sum
            });
            let scoped = std::thread::scope(|s| {
                (0..4).map(|i| s.spawn(move || i * 2)).collect::<Vec<_>>().into_iter().map(|h| h.join().unwrap()).sum::<i32>()
            });
            json!({"std_thread": std_thread, "spawn_blocking": blocking, "scoped": scoped, "violations": sandbox::trap::total()})
        }
        "load_on" | "load_off" => {
            let on = case == "load_on";
            LOCKDOWN_ON.store(on, std::sync::atomic::Ordering::SeqCst);
            let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
            let mut filtered = None;
            // As in main: lockdown A, the trap, the model's bytes read, the
            // seccomp filters — and only then the model is parsed.
            let cfg = config(Action::Trap, data.clone());
            let mut status = if on { Some(sandbox::lockdown_a(&cfg).expect("lockdown A")) } else { None };
            if on {
                sandbox::trap::install().unwrap();
            }
            let bytes = std::fs::read(data.join("probe.onnx")).expect("the model is readable before the filters");
            if let Some(status) = status.as_mut() {
                sandbox::seccomp_filter(&cfg, status).unwrap();
                filtered = Some(status.is_active("seccomp"));
            }
            let loaded = warden::model::LoadedModel::from_bytes_with_ops("probe", 1, &bytes, None, &Default::default(), &|ops| {
                ops.insert("WardenProbe", probe_op)
            });
            let results: BTreeMap<String, Value> = LOAD_RESULTS
                .lock()
                .unwrap()
                .iter()
                .map(|(n, r)| (n.clone(), json!({"ok": r.is_ok(), "errno": r.err().unwrap_or(0)})))
                .collect();
            json!({"loaded": loaded.is_ok(), "filtered": filtered, "probes": results, "violations": sandbox::trap::total()})
        }
        "fault_handled" | "fault_unhandled" => {
            let _t = Targets::prepare(true);
            if case == "fault_handled" {
                sandbox::fatal::install().expect("fatal-signal handler");
            }
            full_lockdown(Action::Trap);
            // A deliberate memory fault, as a kernel bug reached by an input would make.
            // SAFETY: none; the read faults on purpose, in a child process.
            let v = unsafe { std::ptr::read_volatile(std::hint::black_box(16usize) as *const u8) };
            json!({"survived": true, "value": v})
        }
        "kill_mode" => {
            let _t = Targets::prepare(true);
            full_lockdown(Action::Kill);
            // SAFETY: plain socket(2); in kill mode this must not return.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
            json!({"survived": true, "fd": fd})
        }
        other => panic!("unknown case {other}"),
    };
    println!("RESULT {result}");
}

// ---- parent side ----

fn run_case(case: &str) -> (Value, std::process::ExitStatus) {
    let out = Command::new(std::env::current_exe().unwrap()).env(CASE_ENV, case).output().expect("re-run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")).map(|r| serde_json::from_str(r).unwrap()).unwrap_or(Value::Null);
    if result.is_null() && out.status.success() {
        panic!("case {case} printed no result:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    }
    (result, out.status)
}

/// As [`run_case`], killing the child after `limit`: (stderr, status, killed).
fn run_case_limited(case: &str, limit: std::time::Duration) -> (String, std::process::ExitStatus, bool) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CASE_ENV, case)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("re-run the test binary");
    let started = std::time::Instant::now();
    let mut killed = false;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > limit {
            killed = true;
            let _ = child.kill();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    use std::io::Read;
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (stderr, status, killed)
}

fn expect_all_open(r: &Value, what: &str) {
    for (name, v) in r.as_object().unwrap() {
        assert_eq!(v["ok"], true, "{what}: negative control: probe {name} should succeed without the lockdown, got {v}");
    }
}

fn test_negative_control() {
    let (r, _) = run_case("probes_off");
    expect_all_open(&r, "lockdown off");
    assert_eq!(r.as_object().unwrap().len(), probes().len());
}

fn test_full_lockdown_trap() {
    let (r, _) = run_case("probes_trap");
    for (name, v) in r.as_object().unwrap() {
        assert_eq!(v["ok"], false, "{name} must fail under the lockdown: {v}");
        assert_eq!(v["errno"], libc::EPERM, "{name}: expected EPERM from the seccomp trap: {v}");
        assert!(v["trapped"].as_u64().unwrap() >= 1, "{name}: the SIGSYS counter must move: {v}");
    }
    *FULL.lock().unwrap() = Some(r);
}

fn test_full_lockdown_errno() {
    let (r, _) = run_case("probes_errno");
    for (name, v) in r.as_object().unwrap() {
        assert_eq!(v["ok"], false, "{name}: {v}");
        assert_eq!(v["errno"], libc::EPERM, "{name}: {v}");
        assert_eq!(v["trapped"], 0, "{name}: errno mode is silent: {v}");
    }
}

fn test_landlock_layer() {
    let (open, _) = run_case("landlock_off");
    expect_all_open(&open, "landlock negative control");
    let (r, _) = run_case("landlock_only");
    let want = [
        ("connect_tcp", libc::EACCES),
        ("bind_tcp", libc::EACCES),
        ("open_read_outside_repo", libc::EACCES),
        ("create_file", libc::EACCES),
        ("rename_file", libc::EACCES),
        ("delete_file", libc::EACCES),
        ("kill_other", libc::EPERM),
        ("connect_abstract_unix", libc::EPERM),
    ];
    for (name, errno) in want {
        assert_eq!(r[name]["ok"], false, "{name} must be denied by Landlock alone: {}", r[name]);
        assert_eq!(r[name]["errno"], errno, "{name}: {}", r[name]);
    }
    assert_eq!(r["open_read_model_file"]["ok"], true, "the model repository stays readable: {}", r["open_read_model_file"]);
    *NO_SECCOMP.lock().unwrap() = Some(r);
}

fn test_threads_after_lockdown() {
    let (r, status) = run_case("threads");
    assert!(status.success(), "the process must survive thread creation under the lockdown: {status:?}");
    assert_eq!(r["std_thread"], 42);
    assert_eq!(r["spawn_blocking"], 28);
    assert_eq!(r["scoped"], 12);
    assert_eq!(r["violations"], 0, "starting threads must not trip the filter");
}

fn test_models_parse_inside_the_walls() {
    let (off, _) = run_case("load_off");
    assert_eq!(off["loaded"], true, "{off}");
    expect_all_open(&off["probes"], "probe operator without lockdown");
    let (on, _) = run_case("load_on");
    assert_eq!(on["loaded"], true, "the model still loads inside the walls: {on}");
    assert_eq!(on["filtered"], true);
    let p = &on["probes"];
    assert_eq!(p.as_object().unwrap().len(), 6, "{on}");
    assert_eq!(p["socket"], json!({"ok": false, "errno": libc::EPERM}), "{on}");
    assert_eq!(p["execve_sh"], json!({"ok": false, "errno": libc::EPERM}), "{on}");
    for probe in ["open_outside_repo", "create_in_repo", "open_model_file"] {
        assert_eq!(p[probe], json!({"ok": false, "errno": libc::EPERM}), "no file opens while a model is parsed: {on}");
    }
    assert_eq!(p["seccomp_tsync"], json!({"ok": false, "errno": libc::EPERM}), "no filter of the model's own: {on}");
    assert!(on["violations"].as_u64().unwrap() >= 6, "every probe is trapped and counted: {on}");
}

fn test_kill_mode() {
    let (r, status) = run_case("kill_mode");
    assert!(r.is_null(), "the process must not survive a blocked call in kill mode: {r}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGSYS), "{status:?}");
}

/// A memory fault under the lockdown ends the process by SIGSEGV at once,
/// with a last line. The negative control shows why the handler exists:
/// without it, Rust's own handler cannot restore the default action under
/// the filter, and the fault repeats for ever.
fn test_fault_ends_the_process() {
    use std::os::unix::process::ExitStatusExt;
    let limit = std::time::Duration::from_secs(10);
    let (stderr, status, killed) = run_case_limited("fault_handled", limit);
    assert!(!killed, "the faulting process must end by itself, not spin: {stderr}");
    assert_eq!(status.signal(), Some(libc::SIGSEGV), "{status:?} {stderr}");
    assert!(stderr.contains("warden: fatal signal SIGSEGV"), "a last line names the signal: {stderr}");
    let (_, status, killed) = run_case_limited("fault_unhandled", std::time::Duration::from_secs(3));
    assert!(killed, "negative control: without warden's handler the fault loops under the filter: {status:?}");
}

static FULL: std::sync::Mutex<Option<Value>> = std::sync::Mutex::new(None);
static NO_SECCOMP: std::sync::Mutex<Option<Value>> = std::sync::Mutex::new(None);

const TABLE_BEGIN: &str = "<!-- lockdown-table:begin (generated by `cargo test --test lockdown`; WARDEN_UPDATE_README=1 rewrites it) -->";
const TABLE_END: &str = "<!-- lockdown-table:end -->";

fn outcome(v: &Value) -> String {
    if v["ok"] == true { "allowed".to_string() } else { errno_name(v["errno"].as_i64().unwrap_or(0) as i32).to_string() }
}

/// The README table: attack → what the process gets → which layer, from
/// what the probes observed in this run.
fn test_readme_table_is_what_the_probes_observe() {
    let full = FULL.lock().unwrap().clone().expect("the full-lockdown test ran first");
    let bare = NO_SECCOMP.lock().unwrap().clone().expect("the Landlock test ran first");
    let mut t = String::from(
        "| attack (probe) | default lockdown | stopped by | without seccomp (Landlock + no capabilities) |\n|---|---|---|---|\n",
    );
    for (name, v) in bare.as_object().unwrap() {
        let (res, by) = match full.get(name) {
            Some(f) => (format!("{} (trapped, counted)", outcome(f)), "seccomp"),
            None => ("EPERM (denied earlier by seccomp: no socket can be made)".to_string(), "seccomp"),
        };
        t.push_str(&format!("| `{name}` | {res} | {by} | {} |\n", outcome(v)));
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (Some(b), Some(e)) = (readme.find(TABLE_BEGIN), readme.find(TABLE_END)) else {
        panic!("README.md lacks the lockdown table markers")
    };
    let current = &readme[b + TABLE_BEGIN.len()..e];
    let wanted = format!("\n{t}");
    if std::env::var("WARDEN_UPDATE_README").is_ok() {
        let updated = format!("{}{}{}{}", &readme[..b], TABLE_BEGIN, wanted, &readme[e..]);
        std::fs::write(&path, updated).unwrap();
    } else {
        assert_eq!(current, wanted, "README's lockdown table differs from what the probes observed; rerun with WARDEN_UPDATE_README=1");
    }
}

fn errno_name(e: i32) -> &'static str {
    match e {
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::ENOSYS => "ENOSYS",
        0 => "success",
        _ => "other error",
    }
}

fn main() {
    if let Ok(case) = std::env::var(CASE_ENV) {
        child(&case);
        return;
    }
    let tests: &[(&str, fn())] = &[
        ("negative_control_probes_succeed_without_lockdown", test_negative_control),
        ("full_lockdown_denies_and_counts_every_probe", test_full_lockdown_trap),
        ("errno_action_denies_silently", test_full_lockdown_errno),
        ("landlock_alone_confines_files_network_and_signals", test_landlock_layer),
        ("threads_start_after_lockdown", test_threads_after_lockdown),
        ("models_are_parsed_inside_the_walls", test_models_parse_inside_the_walls),
        ("kill_action_kills_the_process", test_kill_mode),
        ("a_fault_ends_the_process_by_its_signal", test_fault_ends_the_process),
        ("readme_table_is_what_the_probes_observe", test_readme_table_is_what_the_probes_observe),
    ];
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, f) in tests {
        if filter.as_deref().is_some_and(|flt| !name.contains(flt)) {
            continue;
        }
        ran += 1;
        match std::panic::catch_unwind(f) {
            Ok(()) => println!("test lockdown::{name} ... ok"),
            Err(_) => {
                println!("test lockdown::{name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    println!("\nlockdown: {} passed; {} failed", ran - failed.len(), failed.len());
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
