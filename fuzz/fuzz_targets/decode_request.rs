//! The inference request decoder on arbitrary bodies, header lengths,
//! limits and raw-mode inputs; and the fast JSON parser against serde's.
//!
//! Input layout: byte 0 picks the `Inference-Header-Content-Length` mode
//! (absent, a length taken from bytes 1..3, or 0 = raw mode), byte 3 the
//! raw-mode input type and byte 4 small or default limits; the rest is the
//! body. `fuzz/make_corpus.py` writes seeds in this layout.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use warden::protocol::{DataType, Limits, RawInput, decode_request, element_count, fast_path_agrees};

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let (ctl, body) = data.split_at(5);
    // The fast parser of common JSON requests reads whatever it accepts
    // exactly as serde does (and accepts nothing serde refuses).
    assert!(fast_path_agrees(body), "the fast JSON parser disagrees with serde");
    let body = Bytes::copy_from_slice(body);
    let header_len = match ctl[0] % 3 {
        0 => None,
        1 => Some(usize::from(u16::from_le_bytes([ctl[1], ctl[2]]))),
        _ => Some(0),
    };
    let (datatype, dims): (DataType, &[i64]) = match ctl[3] % 4 {
        0 => (DataType::F32, &[-1, 4]),
        1 => (DataType::F32, &[-1, 1, 28, 28]),
        2 => (DataType::U8, &[3]),
        _ => (DataType::Bytes, &[-1]),
    };
    let raw = RawInput { name: "x", datatype, dims };
    let limits = if ctl[4] & 1 == 0 {
        Limits::default()
    } else {
        Limits { max_json_depth: 8, max_elements_per_tensor: 64, max_elements_per_request: 100, max_inputs: 3 }
    };
    let body_len = body.len();
    if let Ok(req) = decode_request(body, header_len, &limits, Some(raw)) {
        // What the decoder accepts keeps its promises to the engine.
        assert!(req.inputs.len() <= limits.max_inputs.max(1));
        let mut total = 0u64;
        for input in &req.inputs {
            let count = element_count(&input.shape).expect("accepted shapes do not overflow");
            assert!(count <= limits.max_elements_per_tensor);
            total += count;
            match (&input.data, input.datatype.size()) {
                (warden::protocol::TensorData::Raw(b), Some(size)) => assert_eq!(b.len() as u64, count * size as u64),
                (warden::protocol::TensorData::Strings(v), None) => assert_eq!(v.len() as u64, count),
                (d, s) => panic!("{} data {d:?} with element size {s:?}", input.datatype),
            }
            // Nothing decoded is larger than the body it came from, plus the
            // JSON-to-binary growth of at most 8 bytes per element.
            assert!(input.data.payload_len() as u64 <= body_len as u64 + 8 * count);
        }
        assert!(total <= limits.max_elements_per_request.max(limits.max_elements_per_tensor));
    }
});
