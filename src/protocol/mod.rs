//! The KServe V2 wire format: request decoding and response encoding, JSON
//! and the binary tensor extension.
//!
//! This module owns every byte that comes from a client before it reaches
//! the engine, so every size in it is checked (overflow-safe, against the
//! body and the [`Limits`]) before anything is allocated. It knows nothing
//! of axum or tract: tensors leave it as little-endian bytes or byte strings.
//! The common shapes of a JSON request (and of a binary request's JSON
//! header) are read by `fast_json`, everything else by serde; both give the
//! same intermediate form to the same checks.

mod datatype;
mod decode;
mod encode;
mod fast_json;

pub use datatype::DataType;
pub use decode::{DecodeError, InferRequest, InputTensor, RawInput, RequestedOutput, decode_request, fast_path_agrees};
pub use encode::{OutputTensor, encode_response};

use bytes::Bytes;

/// Tensor contents in wire layout.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// Fixed-size elements, little-endian, row-major, no padding (BOOL: one byte).
    Raw(Bytes),
    /// BYTES elements.
    Strings(Vec<Bytes>),
}

impl TensorData {
    /// Number of payload bytes this tensor carries (BYTES without their length prefixes).
    pub fn payload_len(&self) -> usize {
        match self {
            TensorData::Raw(b) => b.len(),
            TensorData::Strings(v) => v.iter().map(Bytes::len).sum(),
        }
    }
}

/// Limits applied while decoding a request. Every one is a hard ceiling
/// checked before allocation.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest allowed nesting of JSON arrays and objects (Triton: 100).
    pub max_json_depth: usize,
    /// Most elements one tensor may declare.
    pub max_elements_per_tensor: u64,
    /// Most elements all tensors of a request may declare together.
    pub max_elements_per_request: u64,
    /// Most inputs a request may carry.
    pub max_inputs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_json_depth: 100, max_elements_per_tensor: 64 << 20, max_elements_per_request: 64 << 20, max_inputs: 64 }
    }
}

/// Number of elements a shape declares, `None` on overflow.
pub fn element_count(shape: &[usize]) -> Option<u64> {
    shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
}

/// A fixed-seed xorshift generator for the decoders' generated-input tests.
#[cfg(test)]
pub(crate) fn test_rng(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}
