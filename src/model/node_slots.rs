//! Omitted inputs and outputs, made what tract's operator builders expect.
//!
//! ONNX marks an omitted optional input or output with an empty name, and
//! lets trailing ones be left out altogether. tract 0.23 drops empty names
//! and numbers what is left, but most of its builders then count a node's
//! names, or assume fixed positions:
//!
//! - a trailing empty name is counted as given: Conv with inputs
//!   `[x, w, ""]` is built with a bias at position 2 that is not wired, and
//!   tract panics in shape inference (found by fuzzing, model_load);
//! - an empty name before a given one shifts the rest: Conv `["", w, b]`
//!   runs `w` as the data; TopK with outputs `["", indices]` labels the
//!   values output `indices`, a silently wrong answer.
//!
//! [`mend`] removes a node's trailing empty names (ONNX defines the two
//! spellings as the same), and refuses an empty name before a given one
//! unless the operator's builder reads that slot as optional. The
//! [`preflight`](super::preflight) walk calls it on every node of every
//! graph and subgraph.

use tract_onnx::pb::NodeProto;

use super::preflight::{node_label, shown, standard};

/// Standard-domain operators whose tract builders read inputs as optional
/// from this position on (by `optional_inputs`, or slot by slot), so an
/// empty name there is understood. Before it, every input is required.
/// The opset matters only for Resize: the older Clip, Pad and Slice take
/// attributes, and tract refuses extra inputs to them with an error.
fn first_optional_input(op: &str, opset: i64) -> Option<usize> {
    Some(match op {
        "Clip" | "Dropout" | "DFT" => 1,
        "Pad" | "ConvInteger" | "MatMulInteger" | "NonMaxSuppression" | "STFT" => 2,
        "Slice" | "LSTM" | "GRU" | "RNN" | "Attention" => 3,
        // Resize-11 has fixed roi and scales positions; from opset 13 all
        // three are optional.
        "Resize" if opset >= 13 => 1,
        "Resize" => 3,
        _ => return None,
    })
}

/// As [`first_optional_input`], for outputs (`optional_outputs` in tract).
fn first_optional_output(op: &str) -> Option<usize> {
    match op {
        "LSTM" | "GRU" | "RNN" => Some(0),
        "LayerNormalization" | "Attention" => Some(1),
        _ => None,
    }
}

/// Operators whose tract builder takes the number of outputs from the
/// length of the list, empty names included (Split into `[a, b, ""]` is
/// three parts, the last unused): their trailing empty outputs are kept.
fn counts_outputs(op: &str) -> bool {
    op == "Split"
}

/// Strips the node's trailing empty input and output names, and refuses it
/// when tract would misplace an empty name before a given one.
pub(super) fn mend(node: &mut NodeProto, opset: i64) -> Result<(), String> {
    let is_standard = standard(&node.domain).is_empty();
    trim_trailing_empty(&mut node.input);
    if !(is_standard && counts_outputs(&node.op_type)) {
        trim_trailing_empty(&mut node.output);
    }
    let slots = [
        ("input", &node.input, if is_standard { first_optional_input(&node.op_type, opset) } else { None }),
        ("output", &node.output, if is_standard { first_optional_output(&node.op_type) } else { None }),
    ];
    for (kind, names, first_optional) in slots {
        // Only an empty name before the last given one shifts anything.
        let given = names.iter().rposition(|n| !n.is_empty()).map_or(0, |last| last + 1);
        if let Some(k) = names[..given].iter().position(String::is_empty)
            && first_optional.is_none_or(|first| k < first)
        {
            let op = shown(&node.op_type);
            let what = if first_optional.is_some() {
                format!("{kind} {k} of {op} is required")
            } else {
                format!("warden's engine cannot run {op} with an omitted {kind} before a given one")
            };
            return Err(format!("node '{}' ({op}) leaves {kind} {k} empty, but {what}", node_label(node)));
        }
    }
    Ok(())
}

fn trim_trailing_empty(names: &mut Vec<String>) {
    while names.last().is_some_and(String::is_empty) {
        names.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::super::preflight::build::node;
    use super::*;

    /// The node after [`mend`], as (inputs, outputs).
    fn mended(mut n: NodeProto, opset: i64) -> Result<(Vec<String>, Vec<String>), String> {
        mend(&mut n, opset).map(|()| (n.input, n.output))
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn trailing_empty_names_are_removed() {
        assert_eq!(mended(node("Conv", &["x", "w", ""], &["y"]), 13), Ok((names(&["x", "w"]), names(&["y"]))));
        assert_eq!(mended(node("MaxPool", &["y"], &["z", ""]), 13), Ok((names(&["y"]), names(&["z"]))));
        // Split's parts are as many as its output names: kept.
        assert_eq!(mended(node("Split", &["z", ""], &["a", "b", ""]), 13), Ok((names(&["z"]), names(&["a", "b", ""]))));
    }

    #[test]
    fn a_gap_is_refused_where_tract_would_shift_the_names() {
        for (n, needle) in [
            (node("Conv", &["", "w", "b"], &["y"]), "node 'Conv_node' (Conv) leaves input 0 empty"),
            (node("TopK", &["x", "k"], &["", "indices"]), "leaves output 0 empty"),
            // Optional-aware operators still need their required slots.
            (node("Slice", &["x", "", "ends"], &["y"]), "input 1 of Slice is required"),
            (node("Resize", &["x", "", "scales"], &["y"]), "input 1 of Resize is required"),
            (node("Split", &["x"], &["a", "", "c"]), "leaves output 1 empty"),
        ] {
            let e = mended(n, 11).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn a_gap_is_kept_where_the_builder_reads_it_as_optional() {
        for (opset, n) in [
            (13, node("Resize", &["x", "", "", "sizes"], &["y"])),
            (11, node("Resize", &["x", "roi", "scales", "sizes"], &["y"])),
            (13, node("Clip", &["x", "", "max"], &["y"])),
            (13, node("Slice", &["x", "s", "e", "", "steps"], &["y"])),
            (13, node("LSTM", &["x", "w", "r", "", "lens"], &["", "y_h"])),
            (23, node("Attention", &["q", "k", "v", "", "past_k", "past_v"], &["y", "", "present_v"])),
        ] {
            assert_eq!(mended(n.clone(), opset), Ok((n.input, n.output)));
        }
    }

    /// The same operator name in another domain is not tract's, so it gets
    /// no exception.
    #[test]
    fn other_domains_get_no_exception() {
        let mut vendor = node("Clip", &["x", "", "max"], &["y"]);
        vendor.domain = "com.example".into();
        assert!(mended(vendor.clone(), 13).unwrap_err().contains("cannot run Clip"));
        vendor.domain = "ai.onnx".into();
        assert!(mended(vendor, 13).is_ok());
    }
}
