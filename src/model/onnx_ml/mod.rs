//! warden's own `ai.onnx.ml` operators, registered into tract's ONNX op
//! registry (replacing tract's where they exist). Together with
//! `model::engine`, this is the only place that imports tract.

use tract_onnx::model::OnnxOpRegister;

/// Registers warden's operators, overriding tract's of the same name.
pub fn register(_ops: &mut OnnxOpRegister) {}
