//! Statistics, metrics and logs reflect exactly the traffic sent.

use serde_json::json;

use std::net::TcpStream;
use std::time::Duration;

use crate::support::{Response, Server, read_response, request, send};

fn iris_ok() -> Vec<u8> {
    json!({"inputs": [{"name": "float_input", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6, 7, 8]}]})
        .to_string()
        .into_bytes()
}

fn metric(text: &str, line_prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .unwrap_or_else(|| panic!("no metric line {line_prefix}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The Prometheus text of the metrics listener.
fn metrics_text(s: &Server) -> String {
    let metrics = request(s.metrics.expect("metrics listener"), "GET", "/metrics", &[], b"");
    assert_eq!(metrics.status, 200);
    String::from_utf8(metrics.body).unwrap()
}

#[test]
fn statistics_and_metrics_count_exactly() {
    let s = Server::start(&[]);
    for _ in 0..5 {
        assert_eq!(s.post("/v2/models/iris/infer", &[], &iris_ok()).status, 200);
    }
    for _ in 0..3 {
        assert_eq!(s.post("/v2/models/iris/infer", &[], b"{}").status, 400);
    }
    let st = s.get("/v2/models/iris/stats").json();
    let m = &st["model_stats"][0];
    assert_eq!(m["name"], "iris");
    assert_eq!(m["version"], "1");
    assert_eq!(m["inference_count"], 10);
    assert_eq!(m["execution_count"], 5);
    assert_eq!(m["inference_stats"]["success"]["count"], 5);
    assert_eq!(m["inference_stats"]["fail"]["count"], 3);
    assert_eq!(m["inference_stats"]["queue"]["count"], 5);
    assert_eq!(m["batch_stats"][0]["batch_size"], 2);
    assert_eq!(m["batch_stats"][0]["compute_infer"]["count"], 5);
    let all = s.get("/v2/models/stats").json();
    assert_eq!(all["model_stats"].as_array().unwrap().len(), 3);
    assert_eq!(s.get("/v2/models/iris/versions/1/stats").json()["model_stats"][0]["execution_count"], 5);

    let text = metrics_text(&s);
    assert_eq!(metric(&text, "nv_inference_request_success{model=\"iris\",version=\"1\"}"), 5.0);
    assert_eq!(metric(&text, "nv_inference_count{model=\"iris\",version=\"1\"}"), 10.0);
    assert_eq!(metric(&text, "nv_inference_exec_count{model=\"iris\",version=\"1\"}"), 5.0);
    assert_eq!(metric(&text, "nv_inference_request_failure{model=\"iris\",reason=\"REJECTED\",version=\"1\"}"), 3.0);
    assert_eq!(metric(&text, "warden_inference_request_duration_seconds_count{model=\"iris\",version=\"1\"}"), 5.0);
    assert_eq!(metric(&text, "warden_http_requests_total{method=\"POST\",route=\"/v2/models/{model}/infer\",status=\"400\"}"), 3.0);
    assert_eq!(metric(&text, "warden_sandbox_layer_active{layer=\"seccomp\"}"), 1.0);
    assert!(metric(&text, "warden_process_max_resident_memory_bytes") > 1e6);
    // The inference port does not serve metrics.
    assert_eq!(s.get("/metrics").status, 404);
}

#[test]
fn metrics_can_be_turned_off() {
    let s = Server::start(&["--allow-metrics=false"]);
    assert!(s.metrics.is_none());
}

#[test]
fn request_ids_are_echoed_and_logged() {
    let s = Server::start(&["--log-verbose", "1"]);
    let r = request(s.http, "POST", "/v2/models/iris/infer", &[("x-request-id", "client-id-42")], &iris_ok());
    assert_eq!(r.header("x-request-id"), Some("client-id-42"));
    let r = s.get("/v2/health/ready");
    assert!(r.header("x-request-id").is_some_and(|v| !v.is_empty()));
    let r = request(s.http, "POST", "/v2/models/iris/infer", &[("x-request-id", "bad-42")], b"{}");
    assert_eq!(r.status, 400);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let lines = s.drain_lines();
    let events: Vec<serde_json::Value> =
        lines.iter().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"))).collect();
    let ok = events.iter().find(|e| e["request_id"] == "client-id-42").expect("a log event with the client's request id");
    assert_eq!(ok["level"], "DEBUG");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["model"], "iris");
    assert!(ok["latency_us"].as_u64().is_some());
    assert!(ok["timestamp"].is_string() && ok["target"].is_string());
    let bad = events.iter().find(|e| e["request_id"] == "bad-42").expect("the failed request is logged");
    assert_eq!(bad["level"], "WARN");
    assert_eq!(bad["status"], 400);
}

fn inline_runs(s: &Server) -> f64 {
    metric(&metrics_text(s), "warden_inline_inferences_total")
}

/// A keep-alive client connection.
fn connect(s: &Server) -> TcpStream {
    let c = TcpStream::connect(s.http).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c
}

fn infer_on(c: &mut TcpStream, body: &[u8]) -> Response {
    send(c, "POST", "/v2/models/iris/infer", &[], body);
    read_response(c).expect("a response")
}

#[test]
fn a_lone_client_s_small_requests_run_inline_with_the_same_answers() {
    // A generous bound, so that the unoptimised test build qualifies too.
    let s = Server::start(&["--inline-max-us", "1000000"]);
    let mut c = connect(&s);
    let first = infer_on(&mut c, &iris_ok());
    assert_eq!(first.status, 200);
    // The first request has no cost estimate yet and goes to a worker.
    assert_eq!(inline_runs(&s), 0.0);
    for _ in 0..4 {
        let r = infer_on(&mut c, &iris_ok());
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["outputs"], first.json()["outputs"], "an inline answer differs from the worker's");
    }
    assert_eq!(inline_runs(&s), 4.0);
    // A body over 64 KiB always goes to a worker, whatever the estimate.
    let mut padded = iris_ok();
    padded.extend(std::iter::repeat_n(b' ', 70 << 10));
    let r = infer_on(&mut c, &padded);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["outputs"], first.json()["outputs"]);
    assert_eq!(inline_runs(&s), 4.0);
    // With a second connection open, requests go to the workers.
    let mut other = connect(&s);
    assert_eq!(infer_on(&mut other, &iris_ok()).status, 200);
    for _ in 0..3 {
        assert_eq!(infer_on(&mut c, &iris_ok()).status, 200);
    }
    assert_eq!(inline_runs(&s), 4.0);
    let st = s.get("/v2/models/iris/stats").json();
    assert_eq!(st["model_stats"][0]["inference_stats"]["success"]["count"], 10);
    // The connection thread's first inline run (its scratch space, made
    // after the lockdown) needed nothing the filters forbid.
    let text = metrics_text(&s);
    assert!(!text.contains("warden_sandbox_violations_total{"), "{text}");
    assert_eq!(metric(&text, "warden_sandbox_layer_active{layer=\"seccomp\"}"), 1.0);
}

#[test]
fn inline_runs_can_be_turned_off() {
    let s = Server::start(&["--inline-max-us", "0"]);
    let mut c = connect(&s);
    for _ in 0..5 {
        assert_eq!(infer_on(&mut c, &iris_ok()).status, 200);
    }
    assert_eq!(inline_runs(&s), 0.0);
}
