//! Every error is JSON `{"error": ...}` with Triton's status, names only what
//! the client sent, and leaves the server serving.

use serde_json::json;

use crate::support::{Server, request};

fn assert_error(resp: &crate::support::Response, status: u16, needle: &str) {
    assert_eq!(resp.status, status, "{}", String::from_utf8_lossy(&resp.body));
    let v = resp.json();
    let msg = v["error"].as_str().unwrap_or_else(|| panic!("no error field: {v}"));
    assert!(msg.contains(needle), "error {msg:?} should mention {needle:?}");
    assert!(!msg.contains("/work") && !msg.contains(".onnx") && !msg.contains("src/"), "internal detail leaked: {msg}");
}

fn iris(data: serde_json::Value, shape: serde_json::Value, datatype: &str) -> Vec<u8> {
    json!({"inputs": [{"name": "float_input", "shape": shape, "datatype": datatype, "data": data}]}).to_string().into_bytes()
}

#[test]
fn client_errors() {
    let s = Server::start(&[]);
    let ok = iris(json!([1, 2, 3, 4]), json!([1, 4]), "FP32");
    assert_error(&s.post("/v2/models/nope/infer", &[], &ok), 404, "nope");
    assert_error(&s.get("/v2/models/nope"), 404, "unknown model");
    assert_error(&s.post("/v2/models/iris/versions/9/infer", &[], &ok), 404, "version");
    assert_error(&s.get("/v2/models/iris/versions/x"), 400, "version");
    assert_error(&s.post("/v2/models/iris/infer", &[], &iris(json!([1, 2, 3]), json!([1, 3]), "FP32")), 400, "shape");
    assert_error(&s.post("/v2/models/iris/infer", &[], &iris(json!([1, 2, 3, 4]), json!([1, 4]), "INT32")), 400, "datatype");
    assert_error(&s.post("/v2/models/iris/infer", &[], &iris(json!([1, 2, 3, 4]), json!([1, 4]), "FP16")), 400, "binary");
    assert_error(
        &s.post("/v2/models/iris/infer", &[], &iris(json!([1]), json!([4294967296u64, 4294967296u64, 4294967296u64]), "FP32")),
        400,
        "elements",
    );
    assert_error(&s.post("/v2/models/iris/infer", &[], &iris(json!([1, 2, 3, 4]), json!([65, 4]), "FP32")), 400, "elements");
    let many: Vec<f32> = vec![0.5; 65 * 4];
    assert_error(&s.post("/v2/models/iris/infer", &[], &iris(json!(many), json!([65, 4]), "FP32")), 400, "batch size");
    assert_error(&s.post("/v2/models/iris/infer", &[], br#"{"inputs": []}"#), 400, "missing");
    assert_error(
        &s.post("/v2/models/iris/infer", &[], br#"{"inputs": [{"name": "other", "shape": [1], "datatype": "FP32", "data": [1]}]}"#),
        400,
        "other",
    );
    assert_error(&s.post("/v2/models/iris/infer", &[], b"{not json"), 400, "JSON");
    assert_error(&s.post("/v2/models/iris/infer", &[], &[0xff, 0xfe]), 400, "JSON");
    let body = json!({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}], "outputs": [{"name": "nope"}]}).to_string();
    assert_error(&s.post("/v2/models/iris/infer", &[], body.as_bytes()), 400, "nope");

    // Binary: truncated body, header length beyond the body, non-numeric header.
    let header = json!({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]})
        .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&[0; 8]);
    let hl = header.len().to_string();
    assert_error(&s.post("/v2/models/iris/infer", &[("Inference-Header-Content-Length", &hl)], &body), 400, "binary_data_size");
    assert_error(
        &s.post("/v2/models/iris/infer", &[("Inference-Header-Content-Length", "100000")], &body),
        400,
        "larger than the request body",
    );
    assert_error(
        &s.post("/v2/models/iris/infer", &[("Inference-Header-Content-Length", "-1")], &body),
        400,
        "Inference-Header-Content-Length",
    );

    // Routing errors are JSON too.
    assert_error(&s.get("/v2/nothing"), 404, "not found");
    assert_error(&request(s.http, "DELETE", "/v2/models/iris", &[], b""), 405, "method");
    assert_error(&s.get("/v2/models/iris/infer"), 405, "method");

    // Deep JSON.
    let deep = format!(
        r#"{{"inputs":[{{"name":"float_input","shape":[1,4],"datatype":"FP32","data":{}1{}}}]}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    assert_error(&s.post("/v2/models/iris/infer", &[], deep.as_bytes()), 400, "nested");

    // Still serving.
    assert_eq!(s.post("/v2/models/iris/infer", &[], &ok).status, 200);
}

#[test]
fn body_limit_is_413() {
    let s = Server::start(&["--http-max-input-size", "1024"]);
    let big = iris(json!(vec![0.5f32; 400]), json!([100, 4]), "FP32");
    assert!(big.len() > 1024);
    let r = s.post("/v2/models/iris/infer", &[], &big);
    assert_eq!(r.status, 413);
    assert!(r.json()["error"].as_str().unwrap().contains("1024"));
    // Chunked, with no Content-Length: bounded while streaming.
    let mut stream = std::net::TcpStream::connect(s.http).unwrap();
    use std::io::Write;
    stream.write_all(b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    for _ in 0..4 {
        let _ = stream.write_all(b"200\r\n");
        let _ = stream.write_all(&[b' '; 0x200]);
        let _ = stream.write_all(b"\r\n");
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let r = crate::support::read_response(&mut stream).expect("an answer");
    assert_eq!(r.status, 413);
}

#[test]
fn full_queue_answers_503_at_once() {
    // One worker, queue of one: a burst of concurrent requests must see some 503s with Retry-After.
    let s = Server::start(&["--infer-threads", "1", "--queue-depth", "1"]);
    let body: Vec<f32> = vec![0.5; 8 * 28 * 28];
    let req = json!({"inputs": [{"name": "input", "shape": [8, 1, 28, 28], "datatype": "FP32", "data": body}]}).to_string();
    let addr = s.http;
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let req = req.clone();
            std::thread::spawn(move || request(addr, "POST", "/v2/models/mnist_cnn/infer", &[], req.as_bytes()))
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = results.iter().filter(|r| r.status == 200).count();
    let busy: Vec<_> = results.iter().filter(|r| r.status == 503).collect();
    assert!(ok >= 1, "some requests must succeed");
    assert_eq!(ok + busy.len(), 16);
    for r in &busy {
        assert_eq!(r.header("retry-after"), Some("1"));
        assert!(r.json()["error"].as_str().unwrap().contains("overloaded"));
    }
    assert!(!busy.is_empty(), "16 concurrent requests on 1 worker with a queue of 1 must overflow");
}

/// Issue 8: an operator warden cannot run stops start-up with the models
/// exit code, and the message names the file, every such operator, and
/// what to do.
#[test]
fn unsupported_operators_stop_start_up_and_say_what_to_do() {
    let dir = std::env::temp_dir().join(format!("warden-unsupported-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("odd/1")).unwrap();
    std::fs::copy(crate::support::repo_root().join("tests/data/unsupported_ops.onnx"), dir.join("odd/1/model.onnx")).unwrap();
    let err = Server::start_repo(&dir, &[]).err().expect("start-up must fail");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(err.contains("exit code Some(3)"), "models failing is exit code 3: {err}");
    let stderr: Vec<&str> = err.lines().filter(|l| l.starts_with("stderr: ")).collect();
    let stderr = stderr.join("\n");
    for needle in [
        "odd/1/model.onnx",
        "WardenNoSuchOp",
        "FeatureHasher (domain ai.onnx.ml",
        "Relu (domain com.example",
        "What to do",
        "Serving a scikit-learn model",
    ] {
        assert!(stderr.contains(needle), "stderr should mention {needle:?}: {stderr}");
    }
}
