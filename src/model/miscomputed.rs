//! Operator and attribute combinations tract 0.23 runs but computes wrongly.
//!
//! A server that answers wrongly without saying so is worse than one that
//! refuses the model: each combination below was found by the ONNX node
//! suite (tests/node_suite) giving a different answer from the operator's
//! definition, and is refused at load with the node, the attribute and what
//! to do. An entry goes away when warden runs its own kernel for it (as for
//! `Celu`) or tract is fixed; the node suite's stale-entry check says when.

use tract_onnx::pb::NodeProto;
use tract_onnx::pb::attribute_proto::AttributeType;

use super::preflight::node_label;

fn int_attr(node: &NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name && (a.r#type == AttributeType::Int as i32 || a.r#type == 0)).map(|a| a.i)
}

fn float_attr(node: &NodeProto, name: &str) -> Option<f32> {
    node.attribute.iter().find(|a| a.name == name && (a.r#type == AttributeType::Float as i32 || a.r#type == 0)).map(|a| a.f)
}

fn string_attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a [u8]> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.s.as_slice())
}

fn has_input(node: &NodeProto, slot: usize) -> bool {
    node.input.get(slot).is_some_and(|n| !n.is_empty())
}

/// Why tract would compute `node` (of the standard domain) wrongly, and
/// what to do; `None` when it computes it right as far as warden knows.
pub(super) fn check(node: &NodeProto) -> Option<String> {
    let label = node_label(node);
    let op = node.op_type.as_str();
    match op {
        "LSTM" | "GRU" | "RNN" if string_attr(node, "direction") == Some(b"reverse") => Some(format!(
            "node '{label}' ({op}) has direction=reverse, which the engine computes as forward; \
             reverse the sequence before the layer and after it and use direction=forward (or bidirectional)"
        )),
        "SpaceToDepth" if string_attr(node, "mode") == Some(b"CRD") => Some(format!(
            "node '{label}' (SpaceToDepth) has mode=CRD, which the engine lays out as DCR; \
             use mode=DCR and reorder the channels after it, or Reshape + Transpose"
        )),
        "Swish" if float_attr(node, "alpha").is_some_and(|a| a != 1.0) => Some(format!(
            "node '{label}' (Swish) has alpha != 1, which the engine ignores (it computes x * sigmoid(x)); \
             write it as Mul(x, Sigmoid(Mul(x, alpha)))"
        )),
        "Attention" => {
            let window = ["left_window_size", "right_window_size"].into_iter().find(|a| int_attr(node, a).is_some_and(|v| v >= 0));
            if let Some(a) = window {
                return Some(format!(
                    "node '{label}' (Attention) sets {a}, which the engine ignores; pass the window as an attn_mask input instead"
                ));
            }
            // Inputs 4 and 5 are past_key and past_value.
            if int_attr(node, "is_causal") == Some(1) && (has_input(node, 4) || has_input(node, 5)) {
                return Some(format!(
                    "node '{label}' (Attention) is causal with a past key/value cache, and the engine does not offset the causal mask \
                     by the past length; pass the causal mask as an attn_mask input instead"
                ));
            }
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::pb::AttributeProto;

    fn node(op: &str, attrs: Vec<AttributeProto>, inputs: &[&str]) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            name: "n".into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            attribute: attrs,
            ..Default::default()
        }
    }

    fn s(name: &str, v: &str) -> AttributeProto {
        AttributeProto { name: name.into(), s: v.as_bytes().to_vec(), r#type: AttributeType::String as i32, ..Default::default() }
    }

    fn i(name: &str, v: i64) -> AttributeProto {
        AttributeProto { name: name.into(), i: v, r#type: AttributeType::Int as i32, ..Default::default() }
    }

    fn f(name: &str, v: f32) -> AttributeProto {
        AttributeProto { name: name.into(), f: v, r#type: AttributeType::Float as i32, ..Default::default() }
    }

    #[test]
    fn refused_combinations_name_the_node_and_the_attribute() {
        for op in ["LSTM", "GRU", "RNN"] {
            let why = check(&node(op, vec![s("direction", "reverse")], &["x"])).unwrap();
            assert!(why.contains("direction=reverse") && why.contains("node 'n'"), "{why}");
            assert!(check(&node(op, vec![s("direction", "forward")], &["x"])).is_none());
            assert!(check(&node(op, vec![s("direction", "bidirectional")], &["x"])).is_none());
        }
        assert!(check(&node("SpaceToDepth", vec![s("mode", "CRD")], &["x"])).unwrap().contains("mode=CRD"));
        assert!(check(&node("SpaceToDepth", vec![], &["x"])).is_none());
        assert!(check(&node("Swish", vec![f("alpha", 0.5)], &["x"])).unwrap().contains("alpha"));
        assert!(check(&node("Swish", vec![f("alpha", 1.0)], &["x"])).is_none());
        assert!(check(&node("Attention", vec![i("left_window_size", 2)], &["q", "k", "v"])).unwrap().contains("left_window_size"));
        assert!(check(&node("Attention", vec![i("left_window_size", -1)], &["q", "k", "v"])).is_none());
        let causal_past = node("Attention", vec![i("is_causal", 1)], &["q", "k", "v", "", "pk", "pv"]);
        assert!(check(&causal_past).unwrap().contains("past key/value"));
        assert!(check(&node("Attention", vec![i("is_causal", 1)], &["q", "k", "v"])).is_none());
    }
}
