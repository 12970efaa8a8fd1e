//! `Squeeze` before opset 13 without its `axes` attribute, which ONNX
//! defines as "every axis of size 1" and tract refuses to build ("expected
//! attribute 'axes'"; speech-quality models exported at opset 11 use it).
//! Every other form goes to tract's own builder.

use std::sync::OnceLock;

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::ops::array::Squeeze;

type Builder = fn(&ParsingContext, &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)>;

/// tract's builder, taken from the registry before warden's replaces it.
static TRACT: OnceLock<Builder> = OnceLock::new();

pub(crate) fn register(ops: &mut OnnxOpRegister) {
    if let Some(&tract) = ops.0.get("Squeeze") {
        TRACT.get_or_init(|| tract);
        ops.insert("Squeeze", build);
    }
}

fn build(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    if ctx.onnx_operator_set_version < 13 && !node.attribute.iter().any(|a| a.name == "axes") {
        return Ok((expand(Squeeze::new(None)), vec![]));
    }
    let tract = TRACT.get().context("Squeeze: tract's builder is not registered")?;
    tract(ctx, node)
}
