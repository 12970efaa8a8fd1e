//! The real binary under `--sandbox=strict`: it serves exactly as before,
//! trips nothing while doing so, and the kernel confirms every layer.

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::support::{Server, proc_status, read_response, repo_root, request, send, status_field};

fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

#[test]
fn strict_mode_serves_a_thousand_requests_without_a_violation() {
    let s = Server::start(&["--sandbox", "strict"]);
    let status = proc_status(s.pid());
    assert_eq!(status_field(&status, "NoNewPrivs:"), "1");
    assert_eq!(status_field(&status, "Seccomp:"), "2", "seccomp filter mode");
    // Exactly warden's two (clone3's ENOSYS and the allowlist): a third
    // would be one somebody else installed, as a model's code could try.
    assert_eq!(status_field(&status, "Seccomp_filters:").parse::<u32>().unwrap(), 2, "clone3 + the allowlist");
    for cap in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert_eq!(status_field(&status, cap), "0000000000000000", "{cap} must be empty");
    }

    let body = json!({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}).to_string();
    // 1000 over one keep-alive connection.
    let mut conn = TcpStream::connect(s.http).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    for i in 0..1000 {
        send(&mut conn, "POST", "/v2/models/iris/infer", &[], body.as_bytes());
        let r = read_response(&mut conn).unwrap_or_else(|| panic!("keep-alive request {i} got no answer"));
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["outputs"][0]["data"], json!([0]));
    }
    // 1000 over fresh connections.
    for _ in 0..1000 {
        let r = request(s.http, "POST", "/v2/models/iris/infer", &[], body.as_bytes());
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["outputs"][0]["data"], json!([0]));
    }
    let text = String::from_utf8(request(s.metrics.unwrap(), "GET", "/metrics", &[], b"").body).unwrap();
    assert_eq!(metric(&text, "nv_inference_request_success{model=\"iris\",version=\"1\"}"), Some(2000.0));
    assert!(!text.contains("warden_sandbox_violations_total{"), "no syscall may be blocked while serving:\n{text}");
    for layer in ["no_new_privs", "capabilities", "landlock_fs", "landlock_net", "landlock_scope", "seccomp", "memory_wx"] {
        assert_eq!(metric(&text, &format!("warden_sandbox_layer_active{{layer=\"{layer}\"}}")), Some(1.0), "{layer}");
    }
    assert_eq!(s.get("/v2/health/live").status, 200);
}

#[test]
fn sandbox_off_is_visible() {
    let s = Server::start(&["--sandbox", "off"]);
    let status = proc_status(s.pid());
    assert_eq!(status_field(&status, "Seccomp:"), "0");
    let text = String::from_utf8(request(s.metrics.unwrap(), "GET", "/metrics", &[], b"").body).unwrap();
    assert_eq!(metric(&text, "warden_sandbox_layer_active{layer=\"seccomp\"}"), Some(0.0));
    let warned = s.startup.iter().any(|l| l.contains("SANDBOX OFF") && l.contains("WARN"));
    assert!(warned, "--sandbox=off must warn loudly");
}

#[test]
fn a_model_that_cannot_load_stops_start_up_with_its_name() {
    let dir = std::env::temp_dir().join(format!("warden-badrepo-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("broken/1")).unwrap();
    std::fs::write(dir.join("broken/1/model.onnx"), b"this is not an onnx file").unwrap();
    let err = Server::start_repo(&dir, &[]).err().expect("start-up must fail");
    assert!(err.contains("broken") && err.contains("model.onnx"), "{err}");
    assert!(err.contains("exit code Some(3)"), "models failing is exit code 3: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Probing from outside, as a process of the same unprivileged user would
/// (another container process, or code that escaped elsewhere): with
/// `--user` and `PR_SET_DUMPABLE=0` the server's memory, environment and
/// file descriptors are not readable, and it cannot be traced.
#[test]
fn same_user_cannot_read_or_trace_the_server() {
    use std::os::unix::process::CommandExt;
    let s = Server::start(&["--user", "65534:65534"]);
    let status = proc_status(s.pid());
    assert!(status_field(&status, "Uid:").starts_with("65534\t"), "{}", status_field(&status, "Uid:"));
    assert!(status_field(&status, "Groups:").is_empty(), "supplementary groups cleared");
    let as_nobody = |args: &[&str]| Command::new(args[0]).args(&args[1..]).uid(65534).gid(65534).output().unwrap();
    // Negative control: the same probes against an ordinary process of that user succeed.
    let mut victim = Command::new("sleep").arg("30").uid(65534).gid(65534).spawn().unwrap();
    let pid = victim.id().to_string();
    assert!(as_nobody(&["cat", &format!("/proc/{pid}/environ")]).status.success(), "control: environ readable");
    assert!(as_nobody(&["ls", &format!("/proc/{pid}/fd")]).status.success(), "control: fds listable");
    let _ = victim.kill();
    let _ = victim.wait();
    let server = s.pid().to_string();
    for probe in [format!("/proc/{server}/environ"), format!("/proc/{server}/mem"), format!("/proc/{server}/maps")] {
        let out = as_nobody(&["cat", &probe]);
        assert!(!out.status.success(), "{probe} must not be readable by the same user");
    }
    assert!(!as_nobody(&["ls", &format!("/proc/{server}/fd")]).status.success(), "fds must not be listable");
    assert_eq!(s.get("/v2/health/live").status, 200);
}

/// Nothing inherited (issue 19): a descriptor the parent leaves open (a
/// secret file on fd 7) is closed before anything else, and stdin is
/// /dev/null. The negative control runs an ordinary program with the same
/// descriptors, which keeps them.
#[test]
fn inherited_descriptors_are_closed() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let dir = std::env::temp_dir().join(format!("warden-inherit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, b"the parent's secret").unwrap();
    let file = std::fs::File::open(&secret).unwrap();
    let raw = file.as_raw_fd();
    let give_fd7 = move || {
        // SAFETY: dup2 in the child between fork and exec; fd 7 is not CLOEXEC.
        if unsafe { libc::dup2(raw, 7) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the closure only calls dup2, which is async-signal-safe.
    let mut control = unsafe { Command::new("sleep").arg("30").stdin(std::process::Stdio::piped()).pre_exec(give_fd7).spawn().unwrap() };
    let fd7 = |pid: u32| std::fs::read_link(format!("/proc/{pid}/fd/7")).ok();
    assert_eq!(fd7(control.id()), Some(secret.clone()), "control: an ordinary child keeps fd 7");
    let _ = control.kill();
    let _ = control.wait();

    let models = repo_root().join("models");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.args(["serve", "--model-repository", models.to_str().unwrap(), "--http-address", "127.0.0.1", "--http-port", "0"])
        .args(["--metrics-port", "0", "--log-format", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    // SAFETY: as above.
    let mut child = unsafe { cmd.pre_exec(give_fd7).spawn().unwrap() };
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    use std::io::BufRead;
    let ready = stdout.lines().map_while(Result::ok).any(|l| l.contains("HTTP listening; ready"));
    assert!(ready, "the server did not become ready");
    let pid = child.id();
    let found = fd7(pid);
    let stdin = std::fs::read_link(format!("/proc/{pid}/fd/0")).ok();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(found.as_deref() != Some(secret.as_path()), "the inherited secret must be closed, fd 7 is {found:?}");
    assert_eq!(stdin.as_deref(), Some(std::path::Path::new("/dev/null")), "stdin is /dev/null");
}
