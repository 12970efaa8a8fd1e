//! Models: the repository scan (no model parsing), the metadata the
//! protocol exposes, the checks a model passes before tract builds it, the
//! ai.onnx.ml operators warden adds to tract, and the engine.

pub mod engine;
mod miscomputed;
mod node_slots;
pub mod onnx_ml;
pub mod pbtxt;
mod preflight;
mod repository;
mod shapes;

pub use engine::{EngineError, LoadError, LoadedModel, Scratch};
pub use repository::{ModelSource, RepositoryError, VersionSource, scan};

use crate::protocol::DataType;

/// The platform name Triton tooling expects for ONNX models.
pub const PLATFORM: &str = "onnxruntime_onnx";

/// One input or output as the protocol shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorMeta {
    pub name: String,
    pub datatype: DataType,
    /// Full shape, batch dimension included; -1 where variable.
    pub shape: Vec<i64>,
}

/// What a client learns about a model: its metadata and configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelMeta {
    pub name: String,
    pub version: u64,
    /// 0: the model does not batch; otherwise the first dimension of every
    /// input and output is the batch, at most this large.
    pub max_batch_size: u32,
    pub inputs: Vec<TensorMeta>,
    pub outputs: Vec<TensorMeta>,
}

impl ModelMeta {
    /// Triton's `dims` for a tensor: the shape without the batch dimension
    /// when the model batches.
    pub fn config_dims<'a>(&self, t: &'a TensorMeta) -> &'a [i64] {
        if self.max_batch_size > 0 { &t.shape[1..] } else { &t.shape }
    }
}
