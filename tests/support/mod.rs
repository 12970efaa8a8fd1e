//! Test support: start the real binary on free ports, and a minimal
//! HTTP/1.1 client over a raw socket (so hostile tests can send anything).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `/proc/PID/status` of a process: the kernel's own account of its
/// lockdown (NoNewPrivs, Seccomp, capabilities, ids) and memory.
pub fn proc_status(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"))
}

/// The value of the `name` line (e.g. `"Seccomp:"`) of a `proc_status` text, trimmed.
pub fn status_field<'a>(status: &'a str, name: &str) -> &'a str {
    status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).unwrap_or_else(|| panic!("no {name} in /proc status"))
}

/// A running `warden serve`; killed on drop.
pub struct Server {
    pub child: Child,
    pub http: SocketAddr,
    pub metrics: Option<SocketAddr>,
    pub lines: mpsc::Receiver<String>,
    /// Log lines printed before readiness.
    pub startup: Vec<String>,
}

impl Server {
    /// Starts the binary with the bundled models and `extra` flags; waits for readiness.
    pub fn start(extra: &[&str]) -> Server {
        let models = repo_root().join("models");
        let mut args = vec!["--http-address", "127.0.0.1"];
        args.extend_from_slice(extra);
        Self::start_repo(&models, &args).unwrap_or_else(|e| panic!("server did not start: {e}"))
    }

    /// Serves the repository `repo` on ephemeral ports with JSON logs, plus
    /// `extra`; Err carries its output when it exits early.
    pub fn start_repo(repo: &Path, extra: &[&str]) -> Result<Server, String> {
        let mut args =
            vec!["serve", "--model-repository", repo.to_str().unwrap(), "--http-port", "0", "--metrics-port", "0", "--log-format", "json"];
        args.extend_from_slice(extra);
        Self::start_args(&args)
    }

    /// Starts the binary with exactly `args`; Err carries its output when it exits early.
    pub fn start_args(args: &[&str]) -> Result<Server, String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn warden");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx2.send(format!("stderr: {l}")).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        let mut metrics = None;
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                        let msg = v["message"].as_str().unwrap_or("");
                        if msg.starts_with("metrics listening") {
                            metrics = v["address"].as_str().and_then(|a| a.parse().ok());
                        }
                        if msg.starts_with("HTTP listening") {
                            let http = v["address"].as_str().unwrap().parse().unwrap();
                            return Ok(Server { child, http, metrics, lines: rx, startup: seen });
                        }
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    return Err(format!("exit code {:?}; output:\n{}", status.and_then(|s| s.code()), seen.join("\n")));
                }
            }
        }
    }

    pub fn get(&self, path: &str) -> Response {
        request(self.http, "GET", path, &[], b"")
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        request(self.http, "POST", path, headers, body)
    }

    /// Log lines received so far (drains the channel).
    pub fn drain_lines(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM and wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill with a pid we own and a valid signal.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// One request on a fresh connection.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    send(&mut s, method, path, headers, body);
    read_response(&mut s).expect("a response")
}

pub fn send(s: &mut TcpStream, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    s.write_all(&bytes).unwrap();
}

/// Reads one response (Content-Length bodies, or until close).
pub fn read_response(s: &mut TcpStream) -> Option<Response> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-length")).and_then(|(_, v)| v.parse::<usize>().ok());
    let mut body = Vec::new();
    match len {
        Some(n) => {
            body.resize(n, 0);
            s.read_exact(&mut body).ok()?;
        }
        None => {
            let _ = s.read_to_end(&mut body);
        }
    }
    Some(Response { status, headers, body })
}

/// The reference file of a bundled model.
pub fn reference(model: &str) -> serde_json::Value {
    let p = repo_root().join("tests/reference").join(format!("{model}.json"));
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

/// Compares numeric JSON arrays with the reference tolerances.
pub fn assert_close(got: &serde_json::Value, want: &serde_json::Value, rtol: f64, atol: f64, what: &str) {
    let g = got.as_array().unwrap_or_else(|| panic!("{what}: not an array: {got}"));
    let w = want.as_array().unwrap();
    assert_eq!(g.len(), w.len(), "{what}: length");
    for (i, (a, b)) in g.iter().zip(w).enumerate() {
        let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
        assert!((a - b).abs() <= atol + rtol * b.abs(), "{what}[{i}]: got {a}, want {b}");
    }
}
