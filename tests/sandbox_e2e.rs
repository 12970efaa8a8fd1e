//! The real binary under `--sandbox=strict`: it serves exactly as before,
//! trips nothing while doing so, and the kernel confirms every layer.

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::support::{Server, proc_status, read_response, request, send, status_field};

fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

#[test]
fn strict_mode_serves_a_thousand_requests_without_a_violation() {
    let s = Server::start(&["--sandbox", "strict"]);
    let status = proc_status(s.pid());
    assert_eq!(status_field(&status, "NoNewPrivs:"), "1");
    assert_eq!(status_field(&status, "Seccomp:"), "2", "seccomp filter mode");
    assert!(status_field(&status, "Seccomp_filters:").parse::<u32>().unwrap() >= 3, "clone3 + stage 1 + stage 2");
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
    for layer in ["no_new_privs", "capabilities", "landlock_fs", "landlock_net", "landlock_scope", "seccomp_stage1", "seccomp_stage2"] {
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
    assert_eq!(metric(&text, "warden_sandbox_layer_active{layer=\"seccomp_stage2\"}"), Some(0.0));
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
