//! What warden checks and mends in an ONNX model before tract builds a graph
//! from it, in one walk over the graph and its subgraphs:
//!
//! - weights must be in the file: warden reads each model file before the
//!   lockdown's filter and parses it under the filter, so a tensor kept in
//!   an external data file could not be read;
//! - every graph output, a subgraph's included, must be defined by a node,
//!   an input or an initializer of its graph or a graph around it (tract
//!   0.23 panics otherwise; found by fuzzing);
//! - every operator must be one the engine runs; all the missing ones are
//!   named at once, with what to do (tract stops at the first);
//! - no operator may be one tract computes wrongly with the node's
//!   attributes ([`miscomputed`](super::miscomputed));
//! - omitted inputs and outputs are made what tract's builders expect
//!   ([`node_slots`](super::node_slots)).
//!
//! The four are reported in that order, so a file with several faults gets
//! the same message whichever node comes first.

use std::collections::{HashMap, HashSet};

use tract_onnx::model::OnnxOpRegister;
use tract_onnx::pb::tensor_proto::DataLocation;
use tract_onnx::pb::{GraphProto, ModelProto, NodeProto};

use super::LoadError;
use super::node_slots;

/// Checks `proto` and mends its omitted node inputs and outputs in place.
/// Errors carry no path: the caller knows the file.
pub(super) fn check(proto: &mut ModelProto, registry: &OnnxOpRegister) -> Result<(), LoadError> {
    let parse = |reason: String| LoadError::Parse { path: String::new(), reason };
    let opset = proto.opset_import.iter().find(|o| standard(&o.domain).is_empty()).map_or(0, |o| o.version);
    let Some(graph) = proto.graph.as_mut() else { return Err(parse("the file holds no graph".into())) };
    let mut walk = Walk {
        registry,
        opset,
        scopes: Vec::new(),
        undefined: None,
        external: None,
        unsupported: Unsupported::default(),
        miscomputed: None,
        misplaced: None,
    };
    walk.graph(graph);
    if let Some(reason) = walk.external.or(walk.undefined) {
        return Err(parse(reason));
    }
    if let Some(reason) = walk.unsupported.report(proto) {
        return Err(LoadError::Unsupported { path: String::new(), reason });
    }
    if let Some(reason) = walk.miscomputed {
        return Err(LoadError::Unsupported { path: String::new(), reason });
    }
    walk.misplaced.map_or(Ok(()), |reason| Err(parse(reason)))
}

struct Walk<'r> {
    registry: &'r OnnxOpRegister,
    /// The standard domain's opset.
    opset: i64,
    /// The names defined by each graph being walked, innermost last: a
    /// subgraph's outputs are looked up through the stack rather than
    /// copied into it, so a file of many subgraphs stays linear to check.
    scopes: Vec<HashSet<String>>,
    /// The first graph output nothing defines.
    undefined: Option<String>,
    /// The first tensor whose data lives in another file.
    external: Option<String>,
    unsupported: Unsupported,
    /// The first node tract would compute wrongly.
    miscomputed: Option<String>,
    /// The first node whose omitted input or output tract would misplace.
    misplaced: Option<String>,
}

impl Walk<'_> {
    /// Subgraphs are walked by recursion: prost refuses a file nested
    /// deeper than its recursion limit, so the depth is bounded.
    fn graph(&mut self, graph: &mut GraphProto) {
        let defined = graph
            .node
            .iter()
            .flat_map(|n| &n.output)
            .chain(graph.input.iter().map(|i| &i.name))
            .chain(graph.initializer.iter().map(|t| &t.name))
            // An empty name is ONNX's "omitted": it defines nothing.
            .filter(|n| !n.is_empty())
            .cloned()
            .collect();
        self.scopes.push(defined);
        if self.external.is_none()
            && let Some(t) = graph.initializer.iter().find(|t| t.data_location == Some(DataLocation::External as i32))
        {
            self.external = Some(format!(
                "tensor '{}' keeps its data in an external file, which warden does not read; save the model with its weights inside \
                 (onnx.save(model, path, save_as_external_data=False), up to 2 GB)",
                shown(&t.name)
            ));
        }
        if self.undefined.is_none()
            && let Some(o) = graph.output.iter().find(|o| !self.scopes.iter().any(|s| s.contains(&o.name)))
        {
            self.undefined = Some(format!("graph output '{}' is not produced by any node, input or initializer", shown(&o.name)));
        }
        for node in &mut graph.node {
            self.unsupported.note(node, self.registry);
            if self.miscomputed.is_none() && standard(&node.domain).is_empty() {
                self.miscomputed = super::miscomputed::check(node);
            }
            if let Err(reason) = node_slots::mend(node, self.opset)
                && self.misplaced.is_none()
            {
                self.misplaced = Some(reason);
            }
        }
        // A graph's own nodes before its subgraphs': the first fault named
        // is the outermost one.
        for a in graph.node.iter_mut().flat_map(|n| &mut n.attribute) {
            for g in a.g.iter_mut().chain(&mut a.graphs) {
                self.graph(g);
            }
        }
        self.scopes.pop();
    }
}

/// Domains tract's registry stands for. It keys operators by name alone, so
/// a node of any other domain (a vendor's or a custom one) would silently run
/// the standard operator of the same name, if there is one.
const ENGINE_DOMAINS: [&str; 3] = ["", "ai.onnx", "ai.onnx.ml"];

/// The standard domain's two spellings made one.
pub(super) fn standard(domain: &str) -> &str {
    if domain == "ai.onnx" { "" } else { domain }
}

/// How many unsupported operators the start-up message lists by name.
const MAX_LISTED: usize = 20;

/// The operators of the graph and its subgraphs that the engine cannot run.
#[derive(Default)]
struct Unsupported {
    /// (domain, op_type) -> node labels, in order of first use.
    found: Vec<((String, String), Vec<String>)>,
    /// Where each key is in `found`: a file of a million distinct unknown
    /// operators stays linear to scan.
    index: HashMap<(String, String), usize>,
}

impl Unsupported {
    fn note(&mut self, node: &NodeProto, registry: &OnnxOpRegister) {
        let domain = standard(&node.domain);
        if ENGINE_DOMAINS.contains(&domain) && registry.0.contains_key(&node.op_type) {
            return;
        }
        let key = (shown(domain), shown(&node.op_type));
        let label = node_label(node);
        match self.index.get(&key) {
            Some(&i) => self.found[i].1.push(label),
            None => {
                self.index.insert(key.clone(), self.found.len());
                self.found.push((key, vec![label]));
            }
        }
    }

    /// The start-up message: each operator with its domain, opset and
    /// nodes, then what to do; `None` when every operator runs.
    fn report(&self, proto: &ModelProto) -> Option<String> {
        if self.found.is_empty() {
            return None;
        }
        let opset = |domain: &str| {
            proto.opset_import.iter().find(|o| standard(&o.domain) == domain).map_or_else(String::new, |o| format!(" opset {}", o.version))
        };
        let listed: Vec<String> = self
            .found
            .iter()
            .take(MAX_LISTED)
            .map(|((domain, op), nodes)| {
                let shown = nodes.iter().take(3).map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ");
                let more = if nodes.len() > 3 { format!(" and {} more", nodes.len() - 3) } else { String::new() };
                let domain_name = if domain.is_empty() { "ai.onnx" } else { domain };
                format!("{op} (domain {domain_name}{}, node{} {shown}{more})", opset(domain), if nodes.len() > 1 { "s" } else { "" })
            })
            .collect();
        let ops_of = |want: &dyn Fn(&str) -> bool| -> Vec<&str> {
            self.found.iter().filter(|((d, _), _)| want(d)).take(MAX_LISTED).map(|((_, op), _)| op.as_str()).collect()
        };
        let mut todo = Vec::new();
        let ml = ops_of(&|d| d == "ai.onnx.ml");
        if !ml.is_empty() {
            todo.push(format!(
                "{} from ai.onnx.ml: warden runs the ai.onnx.ml operators listed in README \"Serving a scikit-learn model\"; \
                 re-export the model so that it avoids {} (another estimator, or converter options such as skl2onnx's \
                 options={{id(model): {{\"zipmap\": False}}}} or another target_opset)",
                ml.join(", "),
                if ml.len() > 1 { "them" } else { "it" }
            ));
        }
        let std_ops = ops_of(&|d| d.is_empty());
        if !std_ops.is_empty() {
            todo.push(format!(
                "{} from the standard domain: tract, warden's engine, does not implement {} at this opset; \
                 re-export the model with another opset (e.g. torch.onnx.export(..., opset_version=17)) or replace the layers that need {}",
                std_ops.join(", "),
                if std_ops.len() > 1 { "these operators" } else { "this operator" },
                if std_ops.len() > 1 { "them" } else { "it" }
            ));
        }
        let other = ops_of(&|d| !ENGINE_DOMAINS.contains(&d));
        if !other.is_empty() {
            todo.push(format!(
                "{} from custom or vendor domains: warden runs only the standard and ai.onnx.ml operators; \
                 export the model without {} (e.g. without onnxruntime's graph optimisations or contrib operators)",
                other.join(", "),
                if other.len() > 1 { "them" } else { "it" }
            ));
        }
        let unlisted =
            if self.found.len() > MAX_LISTED { format!("; and {} more operators", self.found.len() - MAX_LISTED) } else { String::new() };
        Some(format!("{}{unlisted}. What to do: {}", listed.join("; "), todo.join(". ")))
    }
}

/// A node as start-up messages name it: its name, or else its first output.
pub(super) fn node_label(node: &NodeProto) -> String {
    shown(if node.name.is_empty() { node.output.first().map_or("", String::as_str) } else { &node.name })
}

/// A name from the model file as the start-up message shows it: printable
/// characters only and at most 64 of them, so a hostile file cannot flood
/// or garble the log line.
pub(super) fn shown(name: &str) -> String {
    let mut out: String = name.chars().take(64).map(|c| if c.is_control() { '?' } else { c }).collect();
    if name.chars().nth(64).is_some() {
        out.push('…');
    }
    out
}

/// Builders of small model protos for the model tests.
#[cfg(test)]
pub(super) mod build {
    use tract_onnx::pb::{AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, ValueInfoProto};

    pub fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            name: format!("{op}_node"),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    pub fn value(name: &str) -> ValueInfoProto {
        ValueInfoProto { name: name.into(), ..Default::default() }
    }

    /// A graph of `nodes` with input `x` and the given outputs.
    pub fn graph(nodes: Vec<NodeProto>, outputs: &[&str]) -> GraphProto {
        GraphProto { node: nodes, input: vec![value("x")], output: outputs.iter().map(|o| value(o)).collect(), ..Default::default() }
    }

    pub fn model(opset: i64, graph: GraphProto) -> ModelProto {
        ModelProto {
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: opset }],
            graph: Some(graph),
            ..Default::default()
        }
    }

    /// An `If` node (input `x`, output `y`) whose then-branch is `body`.
    pub fn branch(body: GraphProto) -> NodeProto {
        let mut n = node("If", &["x"], &["y"]);
        n.attribute = vec![AttributeProto { name: "then_branch".into(), g: Some(body), ..Default::default() }];
        n
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    fn registry() -> OnnxOpRegister {
        let mut onnx = tract_onnx::onnx();
        super::super::onnx_ml::register(&mut onnx.op_register);
        onnx.op_register
    }

    fn refusal(mut m: ModelProto) -> LoadError {
        check(&mut m, &registry()).unwrap_err()
    }

    /// An empty name defines nothing, and subgraph outputs are checked too,
    /// with the enclosing graph's names in scope (tract panicked on both).
    #[test]
    fn graph_outputs_must_be_defined_in_subgraphs_and_not_empty() {
        let LoadError::Parse { reason: e, .. } = refusal(model(13, graph(vec![node("Dropout", &["x"], &["y", ""])], &["y", ""]))) else {
            panic!()
        };
        assert!(e.contains("graph output ''"), "{e}");
        let body =
            |output: &str| GraphProto { node: vec![node("Identity", &["x"], &["t"])], output: vec![value(output)], ..Default::default() };
        let LoadError::Parse { reason: e, .. } = refusal(model(13, graph(vec![branch(body("nowhere"))], &["y"]))) else { panic!() };
        assert!(e.contains("graph output 'nowhere'"), "{e}");
        // Defined in the branch, or in the graph around it: accepted.
        for defined in ["t", "x"] {
            check(&mut model(13, graph(vec![branch(body(defined))], &["y"])), &registry()).unwrap();
        }
    }

    #[test]
    fn weights_in_an_external_file_are_refused() {
        use tract_onnx::pb::TensorProto;
        let mut g = graph(vec![node("Identity", &["x"], &["y"])], &["y"]);
        g.initializer.push(TensorProto { name: "w".into(), data_location: Some(DataLocation::External as i32), ..Default::default() });
        let e = refusal(model(13, g)).to_string();
        assert!(e.contains("tensor 'w' keeps its data in an external file") && e.contains("save_as_external_data=False"), "{e}");
    }

    #[test]
    fn a_file_without_a_graph_is_refused() {
        assert!(matches!(refusal(ModelProto::default()), LoadError::Parse { reason, .. } if reason == "the file holds no graph"));
    }

    /// A fault of each kind in one file: the undefined output is reported
    /// first, then the operators, whichever node comes first.
    #[test]
    fn faults_are_reported_in_a_fixed_order() {
        let misplaced = node("Conv", &["", "w"], &["c"]);
        let unknown = node("WardenNoSuchOp", &["x"], &["y"]);
        let m = |outputs: &[&str]| model(13, graph(vec![misplaced.clone(), unknown.clone()], outputs));
        assert!(matches!(refusal(m(&["nowhere"])), LoadError::Parse { reason: e, .. } if e.contains("graph output 'nowhere'")));
        assert!(matches!(refusal(m(&["y"])), LoadError::Unsupported { reason: e, .. } if e.contains("WardenNoSuchOp")));
        let m = model(13, graph(vec![misplaced], &["c"]));
        assert!(matches!(refusal(m), LoadError::Parse { reason: e, .. } if e.contains("node 'Conv_node' (Conv) leaves input 0 empty")));
    }

    /// A graph's own nodes are named before its subgraphs', whatever
    /// their order: the outermost fault is reported first.
    #[test]
    fn the_outer_graph_is_reported_before_its_subgraphs() {
        let body = |op: &str| GraphProto { node: vec![node(op, &["a", "", "c"], &["t"])], output: vec![value("t")], ..Default::default() };
        let m = model(13, graph(vec![branch(body("Gemm")), node("Conv", &["", "w"], &["c"])], &["y"]));
        let LoadError::Parse { reason: e, .. } = refusal(m) else { panic!() };
        assert!(e.contains("node 'Conv_node' (Conv)"), "{e}");
        let m = model(13, graph(vec![branch(body("InnerNoSuchOp")), node("OuterNoSuchOp", &["x"], &["z"])], &["y"]));
        let LoadError::Unsupported { reason: e, .. } = refusal(m) else { panic!() };
        assert!(e.find("OuterNoSuchOp").unwrap() < e.find("InnerNoSuchOp").unwrap(), "{e}");
    }

    /// Nodes in subgraphs are mended and checked like the main graph's.
    #[test]
    fn subgraph_nodes_are_mended_and_checked() {
        let body = GraphProto { node: vec![node("Gemm", &["a", "", "c"], &["t"])], output: vec![value("t")], ..Default::default() };
        let LoadError::Parse { reason: e, .. } = refusal(model(13, graph(vec![branch(body)], &["y"]))) else { panic!() };
        assert!(e.contains("node 'Gemm_node' (Gemm) leaves input 1 empty"), "{e}");

        let body = GraphProto { node: vec![node("Conv", &["x", "w", ""], &["t"])], output: vec![value("t")], ..Default::default() };
        let mut m = model(13, graph(vec![branch(body)], &["y"]));
        check(&mut m, &registry()).unwrap();
        let conv = &m.graph.as_ref().unwrap().node[0].attribute[0].g.as_ref().unwrap().node[0];
        assert_eq!(conv.input, ["x", "w"]);
    }

    /// Operators of another domain with a standard name are not tract's.
    #[test]
    fn a_vendor_operator_with_a_standard_name_is_unsupported() {
        let mut vendor = node("Clip", &["x"], &["y"]);
        vendor.domain = "com.example".into();
        let LoadError::Unsupported { reason: e, .. } = refusal(model(13, graph(vec![vendor], &["y"]))) else { panic!() };
        assert!(e.contains("Clip (domain com.example, node 'Clip_node')"), "{e}");
    }

    /// A hostile file with very many distinct unknown operators is named in
    /// a bounded, printable message (an index, not a rescan, finds each
    /// operator's entry).
    #[test]
    fn many_unknown_operators_make_a_bounded_message() {
        let long = "x".repeat(100);
        let node = |i: usize| NodeProto { op_type: format!("Evil{i}\u{1b}[2J{long}"), name: format!("n{i}\n"), ..Default::default() };
        let LoadError::Unsupported { reason: msg, .. } =
            refusal(model(13, GraphProto { node: (0..100_000).map(node).collect(), ..Default::default() }))
        else {
            panic!()
        };
        assert!(msg.contains("and 99980 more operators"), "{}", &msg[..200]);
        assert!(msg.len() < 8 * 1024, "{} bytes", msg.len());
        assert!(!msg.chars().any(char::is_control), "control characters reach the log");
        assert!(msg.contains("Evil0?[2Jxxx"), "{}", &msg[..200]);
    }

    #[test]
    fn nodes_are_labelled_by_name_or_first_output() {
        let mut n = node("Relu", &["x"], &["y"]);
        assert_eq!(node_label(&n), "Relu_node");
        n.name.clear();
        assert_eq!(node_label(&n), "y");
        n.output.clear();
        assert_eq!(node_label(&n), "");
    }
}
