//! Operators warden refuses at load time, because the V2 protocol carries
//! tensors only and these take or produce maps (or sequences of maps). The
//! error names the operator and says what to do instead.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

type Built = TractResult<(Box<dyn InferenceOp>, Vec<String>)>;

/// skl2onnx appends `ZipMap` to classifiers by default.
pub(crate) fn zipmap(_ctx: &ParsingContext, node: &NodeProto) -> Built {
    bail!(
        "operator ZipMap (node '{}') turns probabilities into a list of maps, which the KServe V2 protocol cannot carry; \
         re-export the classifier without it: skl2onnx.to_onnx(model, X, options={{id(model): {{\"zipmap\": False}}}}), \
         and the probabilities are served as a [N, classes] FP32 tensor",
        node.name
    )
}

pub(crate) fn castmap(_ctx: &ParsingContext, node: &NodeProto) -> Built {
    bail!(
        "operator CastMap (node '{}') takes a map, which the KServe V2 protocol cannot carry; \
         convert the map to a dense tensor before the model and make that tensor the model's input",
        node.name
    )
}

pub(crate) fn dict_vectorizer(_ctx: &ParsingContext, node: &NodeProto) -> Built {
    bail!(
        "operator DictVectorizer (node '{}') takes a map, which the KServe V2 protocol cannot carry; \
         export the pipeline from the step after the DictVectorizer, so the model takes the dense feature tensor",
        node.name
    )
}
