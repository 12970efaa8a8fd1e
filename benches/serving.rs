//! End to end: the router and serve's service in-process (`oneshot`, no socket), the real
//! accept loop over loopback (`server::run` on a port-0 listener), and the
//! lockdown on vs off.
//!
//! Lockdown on vs off runs two child processes of the real binary, one with
//! the full lockdown and one with `--sandbox=off`, and drives each over one
//! keep-alive loopback connection. What it measures is the whole request
//! path including the kernel's seccomp filter on every system call; process
//! placement and scheduling noise land on both alike (criterion alternates
//! nothing, so compare the two within one run only).

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use tower::ServiceExt;

const IRIS_ROW: [f32; 4] = [5.1, 3.5, 1.4, 0.2];

fn oneshot(c: &mut Criterion) {
    let app = warden::http::router(common::app_state(64 << 20));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let json = common::json_body("float_input", &[1, 4], &IRIS_ROW);
    let (bin, header) = common::binary_body("float_input", &[1, 4], &IRIS_ROW);
    let call = |body: bytes::Bytes, header: Option<usize>| {
        let mut r = Request::post("/v2/models/iris/infer");
        if let Some(h) = header {
            r = r.header("inference-header-content-length", h);
        }
        let resp = rt.block_on(app.clone().oneshot(r.body(Body::from(body)).unwrap())).unwrap();
        let status = resp.status();
        let body = rt.block_on(resp.into_body().collect()).unwrap().to_bytes();
        (status, body)
    };
    assert_eq!(call(json.clone(), None).0, StatusCode::OK);
    assert_eq!(call(bin.clone(), Some(header)).0, StatusCode::OK);
    let mut g = c.benchmark_group("http_oneshot");
    g.bench_function("iris_json", |b| b.iter(|| black_box(call(json.clone(), None))));
    g.bench_function("iris_binary", |b| b.iter(|| black_box(call(bin.clone(), Some(header)))));
    // serve's service: the same request on its direct inference route.
    let svc = warden::http::service(common::app_state(64 << 20));
    let direct = |body: bytes::Bytes| {
        let resp = rt.block_on(svc.clone().oneshot(Request::post("/v2/models/iris/infer").body(Body::from(body)).unwrap())).unwrap();
        let status = resp.status();
        (status, rt.block_on(resp.into_body().collect()).unwrap().to_bytes())
    };
    assert_eq!(direct(json.clone()), call(json.clone(), None));
    g.bench_function("iris_json_direct", |b| b.iter(|| black_box(direct(json.clone()))));
    g.finish();
}

/// One keep-alive request/response over `s`.
fn roundtrip(s: &mut TcpStream, body: &[u8]) -> u16 {
    let head = format!(
        "POST /v2/models/iris/infer HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut req = head.into_bytes();
    req.extend_from_slice(body);
    s.write_all(&req).unwrap();
    support::read_response(s).expect("a response").status
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn loopback(c: &mut Criterion) {
    let state = common::app_state(64 << 20);
    // As serve wires it: the connection count decides the inline path.
    let opts = warden::server::ServerOptions {
        open_connections: Some(state.metrics.open_connections.clone()),
        ..warden::server::ServerOptions::default()
    };
    let app = warden::http::service(state);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.spawn(warden::server::run(listener, app, opts, std::future::pending::<()>()));
    let body = common::json_body("float_input", &[1, 4], &IRIS_ROW);
    let mut s = connect(addr);
    assert_eq!(roundtrip(&mut s, &body), 200);
    c.bench_function("http_loopback/iris_json", |b| b.iter(|| roundtrip(&mut s, &body)));
}

fn lockdown(c: &mut Criterion) {
    let body = common::json_body("float_input", &[1, 4], &IRIS_ROW);
    let on = support::Server::start(&[]);
    let off = support::Server::start(&["--sandbox=off"]);
    let (mut s_on, mut s_off) = (connect(on.http), connect(off.http));
    assert_eq!(roundtrip(&mut s_on, &body), 200);
    assert_eq!(roundtrip(&mut s_off, &body), 200);
    let mut g = c.benchmark_group("lockdown");
    g.bench_function("on", |b| b.iter(|| roundtrip(&mut s_on, &body)));
    g.bench_function("off", |b| b.iter(|| roundtrip(&mut s_off, &body)));
    g.finish();
}

criterion_group!(benches, oneshot, loopback, lockdown);
criterion_main!(benches);
