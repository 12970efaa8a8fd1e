//! Hostile requests, benched like the happy path so that the safety checks
//! stay cheap: deep JSON, huge declared shapes, lying binary sizes, and a
//! body one byte over the limit through the router. Each case first asserts
//! that it is rejected, so a bench that silently starts accepting fails.

mod common;

use std::hint::black_box;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt;
use warden::protocol::{Limits, decode_request};

fn decode_rejections(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("adversarial_decode");
    let cases: Vec<(&str, Bytes, Option<usize>)> = vec![
        // 1 MB of nested arrays: must stop at max_json_depth, not recurse.
        (
            "deep_json_1MB",
            Bytes::from(format!(
                r#"{{"inputs":[{{"name":"x","shape":[1],"datatype":"FP32","data":{}1{}}}]}}"#,
                "[".repeat(500_000),
                "]".repeat(500_000)
            )),
            None,
        ),
        (
            "huge_shape",
            Bytes::from_static(
                br#"{"inputs":[{"name":"x","shape":[4611686018427387904,4611686018427387904],"datatype":"FP32","data":[1]}]}"#,
            ),
            None,
        ),
        (
            "huge_element_count",
            Bytes::from_static(br#"{"inputs":[{"name":"x","shape":[1073741824,1024],"datatype":"FP32","data":[1]}]}"#),
            None,
        ),
        (
            "lying_binary_size",
            {
                let h =
                    br#"{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":18446744073709551615}}]}"#;
                let mut b = h.to_vec();
                b.extend_from_slice(&[0; 16]);
                Bytes::from(b)
            },
            Some(0),
        ), // the header length is the JSON part, found below
        (
            "many_inputs",
            Bytes::from(format!(
                r#"{{"inputs":[{}]}}"#,
                (0..10_000).map(|i| format!(r#"{{"name":"x{i}","shape":[1],"datatype":"FP32","data":[1]}}"#)).collect::<Vec<_>>().join(",")
            )),
            None,
        ),
    ];
    for (name, body, header) in cases {
        let header = header.map(|_| body.iter().position(|&b| b == 0).unwrap_or(body.len()));
        assert!(decode_request(body.clone(), header, &limits, None).is_err(), "{name} must be rejected");
        g.bench_function(name, |b| b.iter(|| decode_request(black_box(body.clone()), header, &limits, None).is_err()));
    }
    g.finish();
}

fn oversized_body(c: &mut Criterion) {
    let max_body = 64 << 20;
    let state = common::app_state(max_body);
    let app = warden::http::router(state);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let body = Bytes::from(vec![b' '; max_body + 1]);
    let req =
        |body: Bytes| Request::post("/v2/models/iris/infer").header("content-type", "application/json").body(Body::from(body)).unwrap();
    let status = rt.block_on(app.clone().oneshot(req(body.clone()))).unwrap().status();
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "a body over the limit is refused");
    let mut g = c.benchmark_group("adversarial_http");
    g.sample_size(10);
    g.bench_function("body_over_max_64MB", |b| b.iter(|| rt.block_on(app.clone().oneshot(req(body.clone()))).unwrap().status()));
    g.finish();
}

criterion_group!(benches, decode_rejections, oversized_body);
criterion_main!(benches);
