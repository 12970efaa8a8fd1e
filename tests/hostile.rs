//! Hostile clients against the real binary: malformed, lying, huge, slow,
//! idle, vanishing and overloading clients. Each is answered with the right
//! status and a JSON error or cut off, every limit breach is counted, the
//! server keeps serving others meanwhile, and its memory stays bounded.
//!
//! Timeouts are set short by flags so the whole file runs in well under a
//! minute.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Response, Server, proc_status, read_response, request, send, status_field};

const IRIS: &str = "/v2/models/iris/infer";

/// Flags for a server whose timeouts make the slow-client cases quick.
const SHORT: &[&str] =
    &["--header-read-timeout-secs", "2", "--idle-timeout-secs", "3", "--request-timeout-secs", "3", "--http-max-input-size", "1048576"];

fn iris_body(data: serde_json::Value, shape: serde_json::Value, datatype: &str) -> Vec<u8> {
    json!({"inputs": [{"name": "float_input", "shape": shape, "datatype": datatype, "data": data}]}).to_string().into_bytes()
}

fn good_iris() -> Vec<u8> {
    iris_body(json!([5.1, 3.5, 1.4, 0.2]), json!([1, 4]), "FP32")
}

/// The server still answers a correct request correctly.
fn assert_serving(s: &Server) {
    let r = s.post(IRIS, &[], &good_iris());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["outputs"][0]["data"], json!([0]));
}

fn assert_json_error(r: &Response, status: u16, needle: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/json")), "{:?}", r.headers);
    let v = r.json();
    let msg = v["error"].as_str().unwrap_or_else(|| panic!("no error field: {v}"));
    assert!(msg.contains(needle), "error {msg:?} should mention {needle:?}");
    assert!(!msg.contains("/work") && !msg.contains("src/") && !msg.contains("panicked"), "internal detail leaked: {msg}");
}

/// Sends raw bytes on a fresh connection (from another thread, so a server
/// that answers before reading everything cannot deadlock the test) and
/// reads one answer; `None` when the server cut the connection instead.
fn raw(addr: SocketAddr, bytes: Vec<u8>) -> Option<Response> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&bytes);
    });
    let r = read_response(&mut s);
    drop(s);
    let _ = writer.join();
    r
}

fn metrics_text(s: &Server) -> String {
    let r = request(s.metrics.expect("metrics listener"), "GET", "/metrics", &[], b"");
    String::from_utf8(r.body).unwrap()
}

fn limit_count(s: &Server, limit: &str) -> u64 {
    let needle = format!("warden_limit_rejections_total{{limit=\"{limit}\"}} ");
    metrics_text(s).lines().find_map(|l| l.strip_prefix(needle.as_str()).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    let status = proc_status(pid);
    let rss = status_field(&status, "VmRSS:");
    rss.trim_end_matches("kB").trim().parse().unwrap_or_else(|_| panic!("VmRSS: {rss}"))
}

#[test]
fn lying_and_malformed_requests_get_json_errors() {
    let s = Server::start(SHORT);
    let post = |headers: &[(&str, &str)], body: &[u8]| s.post(IRIS, headers, body);

    // Lying Inference-Header-Content-Length: beyond the body, inside a UTF-8 sequence, not a number.
    let header = json!({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]})
        .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&[0; 16]);
    assert_json_error(&post(&[("Inference-Header-Content-Length", "99999")], &body), 400, "larger than the request body");
    assert_json_error(&post(&[("Inference-Header-Content-Length", "5")], &body), 400, "JSON");
    assert_json_error(&post(&[("Inference-Header-Content-Length", "18446744073709551616")], &body), 400, "Inference-Header");
    let hl = header.len().to_string();
    assert_eq!(post(&[("Inference-Header-Content-Length", &hl)], &body).status, 200);

    // binary_data_size sums that do not match the binary section.
    for (size, tail) in [(16, 12), (16, 20), (12, 12), (18446744073709551615u64, 16)] {
        let header =
            json!({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": size}}]})
                .to_string();
        let mut body = header.clone().into_bytes();
        body.extend(std::iter::repeat_n(0u8, tail));
        let r = post(&[("Inference-Header-Content-Length", &header.len().to_string())], &body);
        assert_json_error(&r, 400, "binary");
    }

    // Shapes: product overflowing u64, negative, huge, beyond i64.
    let before = limit_count(&s, "elements");
    assert_json_error(&post(&[], &iris_body(json!([1]), json!([4294967296u64, 4294967296u64, 16]), "FP32")), 400, "elements");
    assert_json_error(&post(&[], &iris_body(json!([1]), json!([i64::MAX, i64::MAX]), "FP32")), 400, "elements");
    assert_json_error(&post(&[], &iris_body(json!([1]), json!([1_000_000_000_000i64]), "FP32")), 400, "elements");
    assert_json_error(&post(&[], &iris_body(json!([1, 2, 3, 4]), json!([-1, 4]), "FP32")), 400, "negative");
    assert_json_error(&post(&[], &iris_body(json!([1]), json!([18446744073709551616u128 as f64]), "FP32")), 400, "JSON");
    assert!(limit_count(&s, "elements") >= before + 3);

    // NaN/Infinity literals are accepted for floats, as Triton (rapidjson) and
    // perf_analyzer's random JSON inputs need; elsewhere, and other bare
    // words, they are malformed JSON. Wrong types in data.
    for data in ["[NaN, 1, 2, 3]", "[Infinity, 1, 2, 3]", "[-Infinity, 1, 2, 3]"] {
        let body = format!(r#"{{"inputs":[{{"name":"float_input","shape":[1,4],"datatype":"FP32","data":{data}}}]}}"#);
        assert_eq!(post(&[], body.as_bytes()).status, 200, "{data}");
    }
    for data in ["[Inf, 1, 2, 3]", "[nan, 1, 2, 3]", "[NaNa, 1, 2, 3]"] {
        let body = format!(r#"{{"inputs":[{{"name":"float_input","shape":[1,4],"datatype":"FP32","data":{data}}}]}}"#);
        assert_eq!(post(&[], body.as_bytes()).status, 400, "{data}");
    }
    assert_json_error(&post(&[], br#"{"inputs": NaN}"#), 400, "JSON");
    for data in [json!(["a", 1, 2, 3]), json!([null, 1, 2, 3]), json!([{}, 1, 2, 3]), json!([true, 1, 2, 3]), json!("1234"), json!(7)] {
        assert_eq!(post(&[], &iris_body(data.clone(), json!([1, 4]), "FP32")).status, 400, "{data}");
    }
    assert_json_error(&post(&[], br#"{"inputs": "x"}"#), 400, "JSON");
    assert_json_error(&post(&[], br#"{"inputs": [{"name": 1, "shape": [1], "datatype": "FP32", "data": [1]}]}"#), 400, "JSON");

    // BYTES with bad lengths.
    let header =
        json!({"inputs": [{"name": "float_input", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 8}}]}).to_string();
    for tail in [[0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4], [4, 0, 0, 0, 1, 2, 3, 4]] {
        let mut body = header.clone().into_bytes();
        body.extend_from_slice(&tail[..if tail[0] == 4 { 7 } else { 8 }]);
        let r = post(&[("Inference-Header-Content-Length", &header.len().to_string())], &body);
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
        r.json();
    }

    // Invalid UTF-8 in the JSON, in a header value, in the path.
    assert_json_error(
        &post(&[], b"{\"inputs\": [{\"name\": \"\xff\xfe\", \"shape\": [1], \"datatype\": \"FP32\", \"data\": [1]}]}"),
        400,
        "JSON",
    );
    let mut req = b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nX-Bad: \xff\xfe\r\nContent-Length: ".to_vec();
    let good = good_iris();
    req.extend_from_slice(format!("{}\r\n\r\n", good.len()).as_bytes());
    req.extend_from_slice(&good);
    // An opaque header value is no business of ours: the request succeeds.
    assert_eq!(raw(s.http, req).map(|r| r.status), Some(200));
    let r = raw(s.http, b"GET /v2/models/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()).expect("an answer");
    assert!(r.status == 400 || r.status == 404, "{}", r.status);
    r.json();

    // Deep JSON is refused without recursion, and counted.
    let before = limit_count(&s, "json_depth");
    let deep = format!(
        r#"{{"inputs":[{{"name":"float_input","shape":[1,4],"datatype":"FP32","data":{}1{}}}]}}"#,
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    assert_json_error(&post(&[], deep.as_bytes()), 400, "nested");
    assert_eq!(limit_count(&s, "json_depth"), before + 1);
    assert_serving(&s);
}

#[test]
fn lying_content_length_and_truncated_bodies() {
    let s = Server::start(SHORT);
    let good = good_iris();

    // Longer than sent: the body never completes; 408 at the request timeout.
    let started = Instant::now();
    let mut c = TcpStream::connect(s.http).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!("POST {IRIS} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", good.len() + 100);
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(&good).unwrap();
    assert_serving(&s);
    let r = read_response(&mut c).expect("an answer");
    assert_json_error(&r, 408, "timed out");
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());

    // Truncated: the client gives up half way (half-close). The body cannot
    // complete, so the answer is a 400 or the connection is closed.
    let mut c = TcpStream::connect(s.http).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!("POST {IRIS} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", good.len());
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(&good[..good.len() / 2]).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    if let Some(r) = read_response(&mut c) {
        assert_json_error(&r, 400, "body");
    }

    // Shorter than sent: the rest is read as the next request, which is not HTTP.
    let mut c = TcpStream::connect(s.http).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!("POST {IRIS} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", good.len() - 10);
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(&good).unwrap();
    assert_json_error(&read_response(&mut c).expect("first answer"), 400, "JSON");
    // Not a request line: refused at once, or timed out as an incomplete head.
    let r = read_response(&mut c).expect("second answer");
    assert!(r.status == 400 || r.status == 408, "{}", r.status);
    assert!(r.json()["error"].is_string());
    assert_serving(&s);
}

#[test]
fn huge_and_many_headers_are_431_json_and_counted() {
    let s = Server::start(SHORT);
    let before = limit_count(&s, "headers");

    let mut one_mb = format!("GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(1 << 20)).into_bytes();
    let r = raw(s.http, std::mem::take(&mut one_mb));
    // Either answered (the usual case) or cut off; never served.
    if let Some(r) = &r {
        assert_json_error(r, 431, "headers");
    }

    let mut many = String::from("GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n");
    for i in 0..10_000 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let r2 = raw(s.http, many.into_bytes()).expect("an answer");
    assert_json_error(&r2, 431, "headers");

    // 101 small headers: over the count, well under the size.
    let mut over = String::from("GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n");
    for i in 0..101 {
        over.push_str(&format!("X-H{i}: v\r\n"));
    }
    over.push_str("\r\n");
    assert_json_error(&raw(s.http, over.into_bytes()).expect("an answer"), 431, "headers");
    let counted = limit_count(&s, "headers") - before;
    assert!((2 + u64::from(r.is_some())..=3).contains(&counted), "431s are counted: {counted}");

    // A request line that is not HTTP is a JSON 400 too.
    let r = raw(s.http, b"\x00\x01\x02 garbage\r\n\r\n".to_vec()).expect("an answer");
    assert_json_error(&r, 400, "malformed");
    assert_serving(&s);
}

#[test]
fn slowloris_is_cut_off_while_others_are_served() {
    let s = Server::start(SHORT);
    let before = limit_count(&s, "header_read_timeout");
    let addr = s.http;
    // Two slow clients: one byte per second (the idle timer never fires,
    // the header deadline must), and one that stops half way.
    let trickle = std::thread::spawn(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let started = Instant::now();
        let line = b"GET /v2/health/ready HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        let mut got = Vec::new();
        for b in line {
            if c.write_all(&[*b]).is_err() {
                break;
            }
            let mut buf = [0u8; 4096];
            match c.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
            std::thread::sleep(Duration::from_millis(900));
        }
        (started.elapsed(), got)
    });
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled.write_all(b"GET /v2/health/ready HTTP/1.1\r\nHo").unwrap();
    stalled.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for _ in 0..5 {
        assert_serving(&s);
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = read_response(&mut stalled).expect("a 408");
    assert_json_error(&r, 408, "headers");
    let (took, got) = trickle.join().unwrap();
    assert!(took < Duration::from_secs(6), "slowloris kept its connection for {took:?}");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(limit_count(&s, "header_read_timeout") >= before + 2);
}

#[test]
fn a_thousand_idle_connections_do_not_stop_service() {
    let s = Server::start(SHORT);
    let rss0 = rss_kib(s.pid());
    let before = limit_count(&s, "idle_timeout");
    // Some idle after one request (keep-alive), most never send a byte.
    // Connecting a thousand can take seconds (listen backlog, SYN retries),
    // longer than the idle timeout, so the keep-alive ones come first.
    warden::server::raise_fd_limit();
    let mut idle: Vec<TcpStream> = Vec::with_capacity(1000);
    for _ in 0..50 {
        let mut c = TcpStream::connect(s.http).unwrap();
        send(&mut c, "GET", "/v2", &[], b"");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(read_response(&mut c).unwrap().status, 200);
        idle.push(c);
    }
    for i in 0..950 {
        idle.push(TcpStream::connect(s.http).expect("connect (ulimit -n?)"));
        if i % 50 == 49 {
            // The listen backlog is 128 (std's); a connection whose handshake
            // completes while it is full can be lost silently (SYN cookies),
            // leaving the client to believe it is connected. Connections are
            // accepted in order, so one answered request on a new connection
            // shows the ones before it were accepted: the backlog never fills.
            assert_eq!(request(s.http, "GET", "/v2", &[], b"").status, 200);
        }
    }
    let started = Instant::now();
    assert_serving(&s);
    assert!(started.elapsed() < Duration::from_secs(2));
    let grown = rss_kib(s.pid()).saturating_sub(rss0);
    assert!(grown < 64 * 1024, "1000 idle connections took {grown} KiB");
    // The idle timeout (3 s) closes them all: reads see EOF, never data.
    for c in &idle {
        c.set_nonblocking(true).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while !idle.is_empty() && Instant::now() < deadline {
        idle.retain_mut(|c| {
            let mut buf = [0u8; 64];
            match c.read(&mut buf) {
                Ok(0) => false,
                Ok(n) => panic!("an idle connection got data: {:?}", String::from_utf8_lossy(&buf[..n])),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
                Err(_) => false,
            }
        });
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(idle.is_empty(), "{} idle connections still open after 15 s", idle.len());
    assert!(limit_count(&s, "idle_timeout") >= before + 1000);
    assert_serving(&s);
}

#[test]
fn vanishing_pipelining_old_and_odd_clients() {
    let s = Server::start(SHORT);
    let good = good_iris();

    // Disconnect mid-body, and mid-response (a large answer never read).
    for _ in 0..20 {
        let mut c = TcpStream::connect(s.http).unwrap();
        let head = format!("POST {IRIS} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", good.len());
        c.write_all(head.as_bytes()).unwrap();
        c.write_all(&good[..10]).unwrap();
    }
    let batch: Vec<f32> = vec![0.5; 8 * 28 * 28];
    let mnist = json!({"inputs": [{"name": "input", "shape": [8, 1, 28, 28], "datatype": "FP32", "data": batch}]}).to_string();
    for _ in 0..20 {
        let mut c = TcpStream::connect(s.http).unwrap();
        send(&mut c, "POST", "/v2/models/mnist_cnn/infer", &[], mnist.as_bytes());
        c.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        let _ = c.read(&mut [0u8; 10]);
    }
    assert_serving(&s);

    // Pipelined: three requests in one write, three answers in order.
    let mut c = TcpStream::connect(s.http).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut bytes = format!("POST {IRIS} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", good.len()).into_bytes();
    bytes.extend_from_slice(&good);
    bytes.extend_from_slice(b"GET /v2/models/nope HTTP/1.1\r\nHost: x\r\n\r\n");
    bytes.extend_from_slice(b"GET /v2 HTTP/1.1\r\nHost: x\r\n\r\n");
    c.write_all(&bytes).unwrap();
    let statuses: Vec<u16> = (0..3).map(|_| read_response(&mut c).expect("pipelined answer").status).collect();
    assert_eq!(statuses, [200, 404, 200]);

    // HTTP/1.0: answered, then closed.
    let mut c = TcpStream::connect(s.http).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /v2 HTTP/1.0\r\n\r\n").unwrap();
    let r = read_response(&mut c).expect("an answer");
    assert_eq!(r.status, 200);
    assert!(r.headers.iter().all(|(k, _)| !k.eq_ignore_ascii_case("transfer-encoding")));
    assert_eq!(c.read(&mut [0u8; 8]).unwrap_or(0), 0, "HTTP/1.0 without keep-alive is closed");

    // Unknown and odd methods.
    for m in ["BREW", "PROPFIND", "TRACE", "CONNECT"] {
        let r = raw(s.http, format!("{m} /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes());
        if let Some(r) = r {
            assert!(r.status == 405 || r.status == 400 || r.status == 404, "{m}: {}", r.status);
            r.json();
        }
    }
    assert_serving(&s);
}

#[test]
fn memory_stays_bounded_under_hostile_bodies() {
    let s = Server::start(SHORT);
    let addr = s.http;
    // Warm up, then measure.
    for _ in 0..20 {
        assert_serving(&s);
    }
    let rss0 = rss_kib(s.pid());
    let max_body = 1 << 20;
    let bodies: Vec<Vec<u8>> = vec![
        // Just under the body limit: JSON numbers that a naive decoder would box one by one.
        iris_body(json!(vec![0; (max_body - 200) / 2]), json!([1, 4]), "FP32"),
        // Over the limit, declared and chunked.
        vec![b' '; max_body + 1],
        // A shape claiming a huge tensor with a tiny body.
        iris_body(json!([1, 2, 3, 4]), json!([16_000_000, 4]), "FP32"),
        format!(
            r#"{{"inputs":[{{"name":"float_input","shape":[1,4],"datatype":"FP32","data":{}1{}}}]}}"#,
            "[".repeat(400_000),
            "]".repeat(400_000)
        )
        .into_bytes(),
    ];
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let bodies = bodies.clone();
            std::thread::spawn(move || {
                for i in 0..15 {
                    let b = &bodies[(i + t) % bodies.len()];
                    if let Some(r) = raw(addr, {
                        let mut req = format!("POST {IRIS} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", b.len()).into_bytes();
                        req.extend_from_slice(b);
                        req
                    }) {
                        assert!(r.status == 400 || r.status == 413, "{}", r.status);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_serving(&s);
    let rss1 = rss_kib(s.pid());
    // Four concurrent bodies of at most 1 MiB each, their decoding, and
    // allocator slack: far below what an unbounded decoder would use.
    assert!(rss1 < rss0 + 96 * 1024, "RSS grew from {rss0} KiB to {rss1} KiB");
}

#[test]
fn overload_answers_503_at_once_and_accepted_ones_are_correct() {
    let s = Server::start(&["--infer-threads", "1", "--queue-depth", "2", "--request-timeout-secs", "10"]);
    let batch: Vec<f32> = (0..8 * 28 * 28).map(|i| (i % 255) as f32 / 255.0).collect();
    let req = json!({"inputs": [{"name": "input", "shape": [8, 1, 28, 28], "datatype": "FP32", "data": batch}]}).to_string();
    let expected = s.post("/v2/models/mnist_cnn/infer", &[], req.as_bytes()).json()["outputs"][0]["data"].clone();
    assert!(expected.is_array());
    let addr = s.http;
    let handles: Vec<_> = (0..24)
        .map(|_| {
            let req = req.clone();
            std::thread::spawn(move || {
                let t = Instant::now();
                let r = request(addr, "POST", "/v2/models/mnist_cnn/infer", &[], req.as_bytes());
                (r, t.elapsed())
            })
        })
        .collect();
    let results: Vec<(Response, Duration)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut ok = 0;
    let mut busy = 0;
    for (r, took) in &results {
        assert!(*took < Duration::from_secs(10), "a client waited {took:?}");
        match r.status {
            200 => {
                ok += 1;
                crate::support::assert_close(&r.json()["outputs"][0]["data"], &expected, 1e-5, 1e-5, "logits");
            }
            503 => {
                busy += 1;
                assert_eq!(r.header("retry-after"), Some("1"));
                assert!(*took < Duration::from_secs(2), "a 503 took {took:?}");
                assert_json_error(r, 503, "overloaded");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(ok >= 1 && busy >= 1, "ok {ok}, busy {busy}");
    assert_serving(&s);
}

#[test]
fn sigterm_finishes_in_flight_refuses_new_and_exits_zero() {
    let mut s = Server::start(&["--exit-timeout-secs", "10"]);
    let addr = s.http;
    let good = good_iris();
    // In flight: headers and half the body sent before SIGTERM, the rest after.
    let mut inflight: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let head = format!("POST {IRIS} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", good.len());
            c.write_all(head.as_bytes()).unwrap();
            c.write_all(&good[..good.len() / 2]).unwrap();
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill with the pid of our own child and a valid signal.
    unsafe { libc::kill(s.pid() as i32, libc::SIGTERM) };
    std::thread::sleep(Duration::from_millis(500));
    // New connections are refused once the listener is closed.
    let refused = (0..20).any(|_| {
        let r = TcpStream::connect(addr).is_err();
        if !r {
            std::thread::sleep(Duration::from_millis(100));
        }
        r
    });
    assert!(refused, "new connections still accepted after SIGTERM");
    for c in &mut inflight {
        c.write_all(&good[good.len() / 2..]).unwrap();
        let r = read_response(c).expect("the in-flight request completes");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["outputs"][0]["data"], json!([0]));
    }
    drop(inflight);
    let status = s.child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    let lines = s.drain_lines();
    assert!(lines.iter().any(|l| l.contains("shutting down")), "{lines:?}");
}

/// After hostile traffic the lockdown must not have blocked anything: a
/// blocked call marks the process compromised and fails liveness, so an
/// orchestrator would restart a server that was only busy.
#[test]
fn hostile_traffic_trips_no_lockdown_violation() {
    let s = Server::start(SHORT);
    let addr = s.http;
    let conns: Vec<TcpStream> = (0..300).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let _ = raw(addr, {
                        let b = vec![b'['; 200_000];
                        let mut req = format!("POST {IRIS} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", b.len()).into_bytes();
                        req.extend_from_slice(&b);
                        req
                    });
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(conns);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(s.get("/v2/health/live").status, 200);
    let lines = s.drain_lines();
    assert!(
        !lines.iter().any(|l| l.contains("lockdown blocked a system call")),
        "{:?}",
        lines.iter().filter(|l| l.contains("blocked")).collect::<Vec<_>>()
    );
}
