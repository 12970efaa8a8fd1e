//! The request codec at 1 KB, 1 MB and 16 MB of tensor payload: JSON and
//! binary decoding of requests, JSON and binary encoding of responses.

mod common;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use warden::protocol::{DataType, Limits, OutputTensor, TensorData, decode_request, encode_response};

const SIZES: [(&str, usize); 3] = [("1KB", 1 << 10), ("1MB", 1 << 20), ("16MB", 16 << 20)];

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_request");
    g.sample_size(10);
    let limits = Limits::default();
    for (label, bytes) in SIZES {
        let n = bytes / 4;
        let values = common::floats(n);
        g.throughput(Throughput::Bytes(bytes as u64));
        let json = common::json_body("x", &[1, n], &values);
        assert!(decode_request(json.clone(), None, &limits, None).is_ok());
        g.bench_with_input(BenchmarkId::new("json", label), &json, |b, body| {
            b.iter(|| decode_request(black_box(body.clone()), None, &limits, None).unwrap())
        });
        let (bin, header) = common::binary_body("x", &[1, n], &values);
        assert!(decode_request(bin.clone(), Some(header), &limits, None).is_ok());
        g.bench_with_input(BenchmarkId::new("binary", label), &bin, |b, body| {
            b.iter(|| decode_request(black_box(body.clone()), Some(header), &limits, None).unwrap())
        });
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_response");
    g.sample_size(10);
    for (label, bytes) in SIZES {
        let n = bytes / 4;
        let raw: Vec<u8> = common::floats(n).iter().flat_map(|f| f.to_le_bytes()).collect();
        let out = OutputTensor { name: "y", datatype: DataType::F32, shape: vec![1, n], data: TensorData::Raw(raw.into()), binary: false };
        g.throughput(Throughput::Bytes(bytes as u64));
        for binary in [false, true] {
            let mut outs = vec![OutputTensor { binary, ..out.clone() }];
            g.bench_function(BenchmarkId::new(if binary { "binary" } else { "json" }, label), |b| {
                b.iter(|| encode_response("m", "1", None, black_box(&mut outs)))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
