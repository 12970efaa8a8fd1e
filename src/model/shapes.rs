//! The input shapes a model is served with, decided on the ONNX file itself
//! before tract sees it.
//!
//! A published model names its variable dimensions (`batch_size`, `height`,
//! `DynamicDimension.0`) and repeats those names, often inside expressions,
//! in the shape hints of its intermediate values (`value_info`). warden keeps
//! the model's own names, so that tract unifies the inputs with those hints,
//! and applies what `config.pbtxt` says by rewriting the file's shapes:
//!
//! - a variable dimension fixed by `dims` becomes that value wherever the
//!   model names it; a hint whose expression mentions it is dropped (it is
//!   only a hint, and tract derives the shape again);
//! - with `max_batch_size > 0` the first dimension of every input is the
//!   batch: one name for all inputs (the model's own where it has one, else
//!   `batch`); where the file fixed it to a number, every hint may hold that
//!   number for the batch, so the file's hints are not used at all;
//! - a dimension with neither value nor name gets a fresh name, so that
//!   tract treats it as a symbol.
//!
//! Everything here works on the protobuf: no tract model exists yet.

use std::collections::{HashMap, HashSet};

use tract_onnx::pb::tensor_shape_proto::dimension::Value as DimValue;
use tract_onnx::pb::type_proto::Value as TypeValue;
use tract_onnx::pb::{GraphProto, ModelProto, TensorShapeProto, ValueInfoProto};

use super::LoadError;
use super::pbtxt::ModelConfigFile;

/// One dimension of a graph input as the file gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Dim {
    Fixed(i64),
    Named(String),
    Unknown,
}

/// The input shapes to serve and the rewrites that give them.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ShapePlan {
    pub max_batch_size: u32,
    /// The batch dimension's name when the model batches.
    pub batch: Option<String>,
    /// Each graph input (initialisers excluded) with its served dims.
    pub inputs: Vec<(String, Vec<Dim>)>,
    /// Names fixed to a value.
    fixed: HashMap<String, i64>,
    /// Names replaced by another name (inputs' batch names, unified).
    renamed: HashMap<String, String>,
    /// The file's shape hints cannot be trusted after the rewrite.
    pub drop_hints: bool,
}

fn config_err(reason: String) -> LoadError {
    LoadError::Config { path: String::new(), reason }
}

fn tensor_shape(v: &ValueInfoProto) -> Option<&TensorShapeProto> {
    match v.r#type.as_ref()?.value.as_ref()? {
        TypeValue::TensorType(t) => t.shape.as_ref(),
    }
}

fn tensor_shape_mut(v: &mut ValueInfoProto) -> Option<&mut TensorShapeProto> {
    match v.r#type.as_mut()?.value.as_mut()? {
        TypeValue::TensorType(t) => t.shape.as_mut(),
    }
}

fn dim_of(d: &Option<DimValue>) -> Dim {
    match d {
        Some(DimValue::DimValue(v)) if *v >= 0 => Dim::Fixed(*v),
        Some(DimValue::DimParam(p)) if !p.is_empty() && p != "?" => Dim::Named(p.clone()),
        _ => Dim::Unknown,
    }
}

/// Every dimension name used anywhere in the file, subgraphs included.
fn all_names(graph: &GraphProto, out: &mut HashSet<String>) {
    for v in graph.input.iter().chain(&graph.output).chain(&graph.value_info) {
        for d in tensor_shape(v).map(|s| s.dim.as_slice()).unwrap_or_default() {
            if let Some(DimValue::DimParam(p)) = &d.value {
                out.insert(p.clone());
            }
        }
    }
    for n in &graph.node {
        for a in &n.attribute {
            for g in a.g.iter().chain(&a.graphs) {
                all_names(g, out);
            }
        }
    }
}

fn fresh(base: &str, taken: &mut HashSet<String>) -> String {
    let mut name = base.to_owned();
    let mut i = 0;
    while taken.contains(&name) {
        i += 1;
        name = format!("{base}_{i}");
    }
    taken.insert(name.clone());
    name
}

/// The graph's inputs that are not initialisers, with their dims; an input
/// without a tensor shape has no fixed rank and is refused.
pub(super) fn graph_inputs(proto: &ModelProto) -> Result<Vec<(String, Vec<Dim>)>, LoadError> {
    let parse = |reason: String| LoadError::Parse { path: String::new(), reason };
    let graph = proto.graph.as_ref().ok_or_else(|| parse("the file holds no graph".into()))?;
    let init: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut out = Vec::new();
    for v in graph.input.iter().filter(|v| !init.contains(v.name.as_str())) {
        let shape = tensor_shape(v).ok_or_else(|| parse(format!("input '{}' has no fixed rank", v.name)))?;
        out.push((v.name.clone(), shape.dim.iter().map(|d| dim_of(&d.value)).collect()));
    }
    Ok(out)
}

impl ShapePlan {
    /// Decides the served shapes from the file's inputs and the config.
    pub fn new(proto: &ModelProto, config: Option<&ModelConfigFile>, default_max_batch_size: u32) -> Result<ShapePlan, LoadError> {
        let mut inputs = graph_inputs(proto)?;
        let mut taken = HashSet::new();
        if let Some(g) = &proto.graph {
            all_names(g, &mut taken);
        }
        let max_batch_size = match config.and_then(|c| c.max_batch_size) {
            Some(n) => n,
            None if config.is_some_and(|c| !c.inputs.is_empty()) => 0,
            None => {
                let all_variable = inputs.iter().all(|(_, d)| d.first().is_some_and(|d| !matches!(d, Dim::Fixed(_))));
                if all_variable && !inputs.is_empty() { default_max_batch_size } else { 0 }
            }
        };
        let mut plan = ShapePlan {
            max_batch_size,
            batch: None,
            inputs: Vec::new(),
            fixed: HashMap::new(),
            renamed: HashMap::new(),
            drop_hints: false,
        };

        // config.pbtxt's dims, batch excluded when the model batches.
        if let Some(c) = config {
            for t in &c.inputs {
                let Some((_, dims)) = inputs.iter_mut().find(|(n, _)| n == &t.name) else {
                    return Err(config_err(format!("input '{}' is not an input of the model", t.name)));
                };
                let Some(cdims) = &t.dims else { continue };
                let shown = show_dims(dims);
                let full: Vec<i64> =
                    if max_batch_size > 0 { std::iter::once(-1).chain(cdims.iter().copied()).collect() } else { cdims.clone() };
                if full.len() != dims.len() {
                    return Err(config_err(format!(
                        "input '{}': dims {cdims:?} give rank {}, the model's input has rank {}{}",
                        t.name,
                        full.len(),
                        dims.len(),
                        if max_batch_size > 0 { " (with max_batch_size > 0, dims leave out the batch dimension)" } else { "" }
                    )));
                }
                for (k, (&c, d)) in full.iter().zip(dims.iter_mut()).enumerate() {
                    if c < 0 || (k == 0 && max_batch_size > 0) {
                        continue;
                    }
                    match d {
                        Dim::Fixed(g) if *g != c => {
                            return Err(config_err(format!("input '{}': dims {cdims:?} do not match the model's shape {}", t.name, shown)));
                        }
                        Dim::Fixed(_) => {}
                        Dim::Named(name) => match plan.fixed.insert(name.clone(), c) {
                            Some(prev) if prev != c => {
                                return Err(config_err(format!(
                                    "the model uses the dimension '{name}' in several places, and config.pbtxt fixes it to both {prev} and {c}"
                                )));
                            }
                            _ => *d = Dim::Fixed(c),
                        },
                        Dim::Unknown => *d = Dim::Fixed(c),
                    }
                }
            }
        }
        // A name fixed through one input is fixed in every input.
        for (_, dims) in inputs.iter_mut() {
            for d in dims.iter_mut() {
                if let Dim::Named(n) = d
                    && let Some(&v) = plan.fixed.get(n.as_str())
                {
                    *d = Dim::Fixed(v);
                }
            }
        }

        if max_batch_size > 0 {
            if let Some((name, _)) = inputs.iter().find(|(_, d)| d.is_empty()) {
                return Err(config_err(format!("input '{name}' is a scalar, so max_batch_size must be 0")));
            }
            let batch = inputs
                .iter()
                .find_map(|(_, d)| match &d[0] {
                    Dim::Named(n) => Some(n.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| fresh("batch", &mut taken));
            for (_, dims) in inputs.iter_mut() {
                match &dims[0] {
                    Dim::Named(n) if *n == batch => {}
                    Dim::Named(n) => {
                        plan.renamed.insert(n.clone(), batch.clone());
                    }
                    Dim::Fixed(_) => plan.drop_hints = true,
                    Dim::Unknown => {}
                }
                dims[0] = Dim::Named(batch.clone());
            }
            plan.batch = Some(batch);
        }
        for (i, (_, dims)) in inputs.iter_mut().enumerate() {
            for (k, d) in dims.iter_mut().enumerate() {
                if *d == Dim::Unknown {
                    *d = Dim::Named(fresh(&format!("unk__warden_{i}_{k}"), &mut taken));
                }
            }
        }
        plan.inputs = inputs;
        Ok(plan)
    }

    /// Whether some input dimension is variable.
    pub fn has_variable(&self) -> bool {
        self.inputs.iter().any(|(_, d)| d.iter().any(|d| !matches!(d, Dim::Fixed(_))))
    }

    /// The dims of input `i` as the protocol shows them: -1 where variable.
    pub fn served_dims(&self, i: usize) -> Vec<i64> {
        self.inputs.get(i).map_or_else(Vec::new, |(_, d)| d.iter().map(|d| if let Dim::Fixed(n) = d { *n } else { -1 }).collect())
    }

    /// Concrete input shapes: the batch dimension `batch`, other variable
    /// dimensions `free`.
    pub fn concrete(&self, batch: usize, free: usize) -> Vec<Vec<usize>> {
        let batched = self.batch.is_some();
        self.inputs
            .iter()
            .map(|(_, dims)| {
                let size = |(k, d): (usize, &Dim)| match d {
                    Dim::Fixed(n) => *n as usize,
                    _ if k == 0 && batched => batch,
                    _ => free,
                };
                dims.iter().enumerate().map(size).collect()
            })
            .collect()
    }

    /// The same plan with every variable dimension fixed to the size the
    /// given input shapes have; an Err (for the client) when two inputs
    /// give one named dimension different sizes.
    pub fn with_dims(&self, shapes: &[Vec<usize>]) -> Result<ShapePlan, String> {
        let mut p = self.clone();
        for ((name, dims), shape) in p.inputs.iter_mut().zip(shapes) {
            for (d, &n) in dims.iter_mut().zip(shape) {
                if let Dim::Named(sym) = d {
                    match p.fixed.insert(sym.clone(), n as i64) {
                        Some(prev) if prev != n as i64 => {
                            return Err(format!("input '{name}' gives the dimension '{sym}' size {n}, another input gives it {prev}"));
                        }
                        _ => *d = Dim::Fixed(n as i64),
                    }
                }
            }
        }
        Ok(p)
    }

    /// Writes the plan into the file: the inputs' shapes, and the names it
    /// fixes or renames in every hint.
    pub fn apply(&self, proto: &mut ModelProto) {
        let Some(graph) = proto.graph.as_mut() else { return };
        let init: HashSet<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
        for v in graph.input.iter_mut().filter(|v| !init.contains(&v.name)) {
            let Some((_, dims)) = self.inputs.iter().find(|(n, _)| *n == v.name) else { continue };
            if let Some(shape) = tensor_shape_mut(v) {
                for (d, want) in shape.dim.iter_mut().zip(dims) {
                    d.value = Some(match want {
                        Dim::Fixed(n) => DimValue::DimValue(*n),
                        Dim::Named(n) => DimValue::DimParam(n.clone()),
                        Dim::Unknown => continue,
                    });
                }
            }
        }
        if !self.fixed.is_empty() || !self.renamed.is_empty() {
            self.rewrite_hints(graph, true);
        }
    }

    fn rewrite_hints(&self, graph: &mut GraphProto, top: bool) {
        let init: HashSet<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
        let hints = graph
            .input
            .iter_mut()
            .filter(|v| !top || init.contains(&v.name))
            .chain(graph.output.iter_mut())
            .chain(graph.value_info.iter_mut());
        for v in hints {
            let Some(shape) = tensor_shape_mut(v) else { continue };
            for d in &mut shape.dim {
                let Some(DimValue::DimParam(p)) = &d.value else { continue };
                d.value = if let Some(&n) = self.fixed.get(p.as_str()) {
                    Some(DimValue::DimValue(n))
                } else if let Some(n) = self.renamed.get(p.as_str()) {
                    Some(DimValue::DimParam(n.clone()))
                } else if self.fixed.keys().chain(self.renamed.keys()).any(|name| p.contains(name.as_str())) {
                    // An expression over a rewritten name: only a hint.
                    None
                } else {
                    continue;
                };
            }
        }
        for n in &mut graph.node {
            for a in &mut n.attribute {
                for g in a.g.iter_mut().chain(a.graphs.iter_mut()) {
                    self.rewrite_hints(g, false);
                }
            }
        }
    }

    /// What a user can write in `config.pbtxt` to fix the variable
    /// dimensions, in the model's own names; None when nothing is variable.
    pub fn fix_hint(&self) -> Option<String> {
        let variable: Vec<String> = self
            .inputs
            .iter()
            .filter(|(_, d)| d.iter().skip(usize::from(self.max_batch_size > 0)).any(|d| !matches!(d, Dim::Fixed(_))))
            .map(|(n, d)| format!("'{n}' {}", show_dims(d)))
            .collect();
        if variable.is_empty() && self.max_batch_size == 0 {
            return None;
        }
        let mut s = String::new();
        if !variable.is_empty() {
            s.push_str(&format!(
                "the model's inputs have variable dimensions ({}); fix them in config.pbtxt with the sizes you serve, e.g. \
                 `input {{ name: \"...\" dims: [...] }}` (without the batch dimension when max_batch_size > 0)",
                variable.join(", ")
            ));
        }
        if self.max_batch_size > 0 {
            if !s.is_empty() {
                s.push_str("; ");
            }
            s.push_str(&format!(
                "max_batch_size is {} (from {}): with `max_batch_size: 0` and full dims the batch is fixed too",
                self.max_batch_size,
                self.batch.as_deref().map_or("the config".into(), |b| format!("the batch dimension '{b}'"))
            ));
        }
        Some(s)
    }
}

/// `[batch_size, 3, height, width]`, `?` for an unnamed variable dimension.
pub(super) fn show_dims(dims: &[Dim]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => n.to_string(),
            Dim::Named(n) if n.starts_with("unk__warden_") => "?".into(),
            Dim::Named(n) => n.clone(),
            Dim::Unknown => "?".into(),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::pbtxt::TensorConfig;
    use tract_onnx::pb::tensor_shape_proto::Dimension;
    use tract_onnx::pb::{TypeProto, type_proto};

    fn value(name: &str, dims: &[Dim]) -> ValueInfoProto {
        let dim = dims
            .iter()
            .map(|d| Dimension {
                value: match d {
                    Dim::Fixed(n) => Some(DimValue::DimValue(*n)),
                    Dim::Named(p) => Some(DimValue::DimParam(p.clone())),
                    Dim::Unknown => None,
                },
                ..Default::default()
            })
            .collect();
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                value: Some(TypeValue::TensorType(type_proto::Tensor { elem_type: 1, shape: Some(TensorShapeProto { dim }) })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn named(n: &str) -> Dim {
        Dim::Named(n.into())
    }

    fn model(inputs: Vec<ValueInfoProto>, hints: Vec<ValueInfoProto>) -> ModelProto {
        ModelProto { graph: Some(GraphProto { input: inputs, value_info: hints, ..Default::default() }), ..Default::default() }
    }

    fn config(max_batch_size: Option<u32>, inputs: &[(&str, &[i64])]) -> ModelConfigFile {
        ModelConfigFile {
            max_batch_size,
            inputs: inputs.iter().map(|(n, d)| TensorConfig { name: (*n).into(), data_type: None, dims: Some(d.to_vec()) }).collect(),
            ..Default::default()
        }
    }

    fn hint_dims(m: &ModelProto, i: usize) -> Vec<Dim> {
        tensor_shape(&m.graph.as_ref().unwrap().value_info[i]).unwrap().dim.iter().map(|d| dim_of(&d.value)).collect()
    }

    /// The model's own names stay, so tract can unify them with its hints.
    #[test]
    fn a_model_as_shipped_keeps_its_names() {
        let mut m = model(
            vec![value("images", &[named("batch_size"), Dim::Fixed(3), named("height"), named("width")])],
            vec![value("h", &[named("batch_size"), Dim::Fixed(16), named("floor(height/2)"), named("width")])],
        );
        let plan = ShapePlan::new(&m, None, 64).unwrap();
        assert_eq!(plan.max_batch_size, 64);
        assert_eq!(plan.batch.as_deref(), Some("batch_size"));
        assert!(!plan.drop_hints);
        let before = m.clone();
        plan.apply(&mut m);
        assert_eq!(m, before);
    }

    /// Triton's usual config fixes the model's names wherever they appear.
    #[test]
    fn config_dims_fix_names_in_inputs_and_hints() {
        let mut m = model(
            vec![value("images", &[named("batch_size"), Dim::Fixed(3), named("height"), named("width")])],
            vec![value("h", &[named("batch_size"), Dim::Fixed(16), named("floor(height/2)"), named("width")])],
        );
        let plan = ShapePlan::new(&m, Some(&config(Some(4), &[("images", &[3, 640, 320])])), 64).unwrap();
        plan.apply(&mut m);
        let inputs = graph_inputs(&m).unwrap();
        assert_eq!(inputs[0].1, vec![named("batch_size"), Dim::Fixed(3), Dim::Fixed(640), Dim::Fixed(320)]);
        // The expression over `height` is dropped, `width` becomes its value.
        assert_eq!(hint_dims(&m, 0), vec![named("batch_size"), Dim::Fixed(16), Dim::Unknown, Dim::Fixed(320)]);
    }

    #[test]
    fn inputs_share_one_batch_name() {
        let mut m = model(
            vec![value("a", &[named("N"), Dim::Fixed(4)]), value("b", &[named("M"), Dim::Fixed(2)]), value("c", &[Dim::Unknown])],
            vec![value("h", &[named("M"), Dim::Fixed(2)])],
        );
        let plan = ShapePlan::new(&m, None, 8).unwrap();
        plan.apply(&mut m);
        let inputs = graph_inputs(&m).unwrap();
        assert!(inputs.iter().all(|(_, d)| d[0] == named("N")), "{inputs:?}");
        assert_eq!(hint_dims(&m, 0), vec![named("N"), Dim::Fixed(2)]);
        assert!(!plan.drop_hints);
    }

    /// A fixed first dimension made variable by max_batch_size: the hints
    /// may hold that number for the batch, so they are not used.
    #[test]
    fn a_fixed_batch_made_variable_drops_the_hints() {
        let m = model(vec![value("x", &[Dim::Fixed(1), Dim::Fixed(3)])], vec![]);
        let plan = ShapePlan::new(&m, Some(&config(Some(8), &[("x", &[3])])), 64).unwrap();
        assert!(plan.drop_hints);
        assert_eq!(plan.batch.as_deref(), Some("batch"));
    }

    #[test]
    fn unnamed_dims_get_fresh_names_and_show_as_unknown() {
        let mut m = model(vec![value("x", &[Dim::Fixed(1), Dim::Unknown])], vec![]);
        let plan = ShapePlan::new(&m, None, 64).unwrap();
        assert_eq!(plan.max_batch_size, 0);
        plan.apply(&mut m);
        let inputs = graph_inputs(&m).unwrap();
        assert!(matches!(&inputs[0].1[1], Dim::Named(n) if n.starts_with("unk__warden_")));
        assert_eq!(show_dims(&inputs[0].1), "[1, ?]");
        assert!(plan.fix_hint().unwrap().contains("'x' [1, ?]"));
    }

    #[test]
    fn config_errors_name_the_input_and_the_fix() {
        let m = model(vec![value("x", &[named("b"), Dim::Fixed(3), named("h")])], vec![]);
        let e = ShapePlan::new(&m, Some(&config(Some(4), &[("x", &[1, 3, 640])])), 64).unwrap_err();
        assert!(e.to_string().contains("leave out the batch dimension"), "{e}");
        let e = ShapePlan::new(&m, Some(&config(Some(0), &[("x", &[1, 4, 640])])), 64).unwrap_err();
        assert!(e.to_string().contains("do not match the model's shape [b, 3, h]"), "{e}");
        let e = ShapePlan::new(&m, Some(&config(None, &[("y", &[1])])), 64).unwrap_err();
        assert!(e.to_string().contains("'y' is not an input"), "{e}");
    }

    #[test]
    fn concrete_shapes_fix_every_name_everywhere() {
        let mut m = model(
            vec![value("x", &[named("n"), Dim::Fixed(3), named("h")]), value("y", &[named("n"), named("h")])],
            vec![value("t", &[named("n"), named("2*h")])],
        );
        let plan = ShapePlan::new(&m, None, 4).unwrap();
        assert!(plan.has_variable());
        assert_eq!(plan.served_dims(0), vec![-1, 3, -1]);
        assert_eq!(plan.concrete(2, 32), vec![vec![2, 3, 32], vec![2, 32]]);
        let fixed = plan.with_dims(&[vec![2, 3, 5], vec![2, 5]]).unwrap();
        assert!(!fixed.has_variable());
        fixed.apply(&mut m);
        assert_eq!(graph_inputs(&m).unwrap()[1].1, vec![Dim::Fixed(2), Dim::Fixed(5)]);
        assert_eq!(hint_dims(&m, 0), vec![Dim::Fixed(2), Dim::Unknown]);
        let e = plan.with_dims(&[vec![2, 3, 5], vec![2, 6]]).unwrap_err();
        assert!(e.contains("'h' size 6, another input gives it 5"), "{e}");
    }
}
