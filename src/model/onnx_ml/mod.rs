//! warden's own `ai.onnx.ml` operators, registered into tract's ONNX op
//! registry (replacing tract's where they exist).
//!
//! tract keys its registry by `op_type` alone and ignores the node's domain,
//! so an `ai.onnx.ml` operator is registered under its plain name.
//!
//! Every operator here but `ArrayFeatureExtractor` (two inputs, its own op)
//! takes one input and is a [`Kernel`]: a plain Rust function from one
//! tensor to its outputs, plus a description of the outputs' types and
//! shapes. [`MlOp`] turns a kernel into both the
//! inference-time op tract parses into and the typed op it optimises and
//! runs, so each operator file holds only its attributes, its arithmetic and
//! its tests.
//!
//! Operators whose inputs or outputs are maps (`ZipMap`, `CastMap`,
//! `DictVectorizer`) are refused at load time with a message that says what
//! to do instead (see [`refused`]).

mod array_feature_extractor;
mod binarizer;
mod bit_shift;
mod celu;
mod imputer;
mod label_encoder;
mod linear_classifier;
mod linear_regressor;
mod normalizer;
mod one_hot_encoder;
mod post_transform;
mod reduce;
mod refused;
mod scaler;
mod squeeze;
mod svm;
mod svm_classifier;
mod svm_regressor;
mod tree;
mod tree_ensemble;
mod tree_ensemble_classifier;
mod tree_ensemble_regressor;

use std::fmt::Debug;

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

pub use tree::Forest;
pub use tree_ensemble_classifier::TreeEnsembleClassifier;
pub use tree_ensemble_regressor::TreeEnsembleRegressor;

/// Registers warden's operators, overriding tract's of the same name.
pub fn register(ops: &mut OnnxOpRegister) {
    ops.insert("TreeEnsembleClassifier", tree_ensemble_classifier::build);
    ops.insert("TreeEnsembleRegressor", tree_ensemble_regressor::build);
    ops.insert("TreeEnsemble", tree_ensemble::build);
    ops.insert("Scaler", scaler::build);
    ops.insert("Imputer", imputer::build);
    ops.insert("Binarizer", binarizer::build);
    ops.insert("OneHotEncoder", one_hot_encoder::build);
    ops.insert("LabelEncoder", label_encoder::build);
    ops.insert("SVMClassifier", svm_classifier::build);
    ops.insert("SVMRegressor", svm_regressor::build);
    ops.insert("ArrayFeatureExtractor", array_feature_extractor::build);
    ops.insert("LinearClassifier", linear_classifier::build);
    ops.insert("LinearRegressor", linear_regressor::build);
    ops.insert("ReduceLogSumExp", reduce::log_sum_exp);
    ops.insert("ReduceMax", reduce::max);
    ops.insert("ReduceMin", reduce::min);
    ops.insert("Celu", celu::build);
    ops.insert("BitShift", bit_shift::build);
    squeeze::register(ops);
    ops.insert("Normalizer", normalizer::build);
    ops.insert("ZipMap", refused::zipmap);
    ops.insert("CastMap", refused::castmap);
    ops.insert("DictVectorizer", refused::dict_vectorizer);
}

/// Element type of an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutType {
    Fixed(DatumType),
    /// Same as the input's.
    Input,
    /// Int64 for a string input, string otherwise (LabelEncoder opset 1).
    StringsOrI64,
}

/// Output type of [`OutType::StringsOrI64`].
fn strings_or_i64(input: DatumType) -> DatumType {
    if input == DatumType::String { DatumType::I64 } else { DatumType::String }
}

/// Shape of an output, given the input's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutShape {
    /// The input's shape.
    Input,
    /// `[N]` for an `[N, F]` input.
    Rows,
    /// `[N, k]` for an `[N, F]` input.
    RowsBy(usize),
    /// The input's shape with one more axis of this length.
    InputAnd(usize),
}

/// One single-input operator: its outputs and the function computing them.
pub(crate) trait Kernel: Debug + Clone + PartialEq + Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Inline for up to four outputs: [`MlOp`] reads it on every evaluation.
    fn outputs(&self) -> TVec<(OutType, OutShape)>;
    /// Rejects an input type or feature count at load time; `features` is
    /// the input's last dimension when known.
    fn check_input(&self, dt: DatumType, features: Option<usize>) -> TractResult<()>;
    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>>;
}

/// A [`Kernel`] as a tract operator, at inference and at typed level.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MlOp<K>(pub K);

// tract compares ops for equality when it merges identical nodes; the
// kernels' float attributes are never NaN where it matters, so equality is
// reflexive in practice.
impl<K: Kernel> Eq for MlOp<K> {}

/// The boxed op a builder returns to tract's parser.
pub(crate) fn op<K: Kernel>(k: K) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((expand(MlOp(k)), vec![]))
}

impl<K: Kernel> Expansion for MlOp<K> {
    fn name(&self) -> StaticName {
        self.0.name().into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(self.0.outputs().len())
    }

    fn rules<'r, 'p: 'r, 's: 'r>(&'s self, s: &mut Solver<'r>, inputs: &'p [TensorProxy], outputs: &'p [TensorProxy]) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, self.0.outputs().len())?;
        for (o, (ty, shape)) in outputs.iter().zip(self.0.outputs()) {
            match ty {
                OutType::Fixed(dt) => s.equals(&o.datum_type, dt)?,
                OutType::Input => s.equals(&o.datum_type, &inputs[0].datum_type)?,
                OutType::StringsOrI64 => s.given(&inputs[0].datum_type, move |s, dt| s.equals(&o.datum_type, strings_or_i64(dt)))?,
            }
            match shape {
                OutShape::Input => s.equals(&o.shape, &inputs[0].shape)?,
                OutShape::Rows => {
                    s.equals(&inputs[0].rank, 2)?;
                    s.equals(&o.rank, 1)?;
                    s.equals(&o.shape[0], &inputs[0].shape[0])?;
                }
                OutShape::RowsBy(k) => {
                    s.equals(&inputs[0].rank, 2)?;
                    s.equals(&o.rank, 2)?;
                    s.equals(&o.shape[0], &inputs[0].shape[0])?;
                    s.equals(&o.shape[1], k.to_dim())?;
                }
                OutShape::InputAnd(k) => {
                    s.equals(&o.rank, inputs[0].rank.bex() + 1)?;
                    s.given(&inputs[0].rank, move |s, rank| {
                        let rank = rank as usize;
                        for axis in 0..rank {
                            s.equals(&o.shape[axis], &inputs[0].shape[axis])?;
                        }
                        s.equals(&o.shape[rank], k.to_dim())
                    })?;
                }
            }
        }
        Ok(())
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl<K: Kernel> Op for MlOp<K> {
    fn name(&self) -> StaticName {
        self.0.name().into()
    }

    op_as_typed_op!();
}

impl<K: Kernel> EvalOp for MlOp<K> {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        Ok(self.checked_eval(&input)?.into_iter().map(IntoTValue::into_tvalue).collect())
    }
}

impl<K: Kernel> MlOp<K> {
    /// The kernel's `eval`, once every output's size is known to be within
    /// [`MAX_OUTPUT_ELEMENTS`].
    fn checked_eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        for (_, shape) in self.0.outputs() {
            let elements = match shape {
                OutShape::Input | OutShape::Rows => Some(input.len()),
                OutShape::RowsBy(k) => input.shape().first().and_then(|rows| rows.checked_mul(k)),
                OutShape::InputAnd(k) => input.len().checked_mul(k),
            };
            check_output_size(self.0.name(), elements)?;
        }
        self.0.eval(input)
    }
}

impl<K: Kernel> TypedOp for MlOp<K> {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let input = inputs[0];
        let features = input.shape.last().and_then(|d| d.to_usize().ok());
        self.0.check_input(input.datum_type, features).with_context(|| format!("{} input", self.0.name()))?;
        let mut facts = tvec!();
        for (ty, shape) in self.0.outputs() {
            let dt = match ty {
                OutType::Fixed(dt) => dt,
                OutType::Input => input.datum_type,
                OutType::StringsOrI64 => strings_or_i64(input.datum_type),
            };
            let rows = || -> TractResult<TDim> {
                ensure!(input.rank() == 2, "{} expects a [N, features] input, got shape {:?}", self.0.name(), input.shape);
                Ok(input.shape[0].clone())
            };
            let dims: TVec<TDim> = match shape {
                OutShape::Input => input.shape.to_tvec(),
                OutShape::Rows => tvec!(rows()?),
                OutShape::RowsBy(k) => tvec!(rows()?, k.to_dim()),
                OutShape::InputAnd(k) => input.shape.iter().cloned().chain(std::iter::once(k.to_dim())).collect(),
            };
            facts.push(dt.fact(dims));
        }
        Ok(facts)
    }

    as_op!();
}

/// Most elements one output of these operators may hold. Their output
/// widths come from the model file (`n_targets`, class and category counts),
/// so a request of legal size could otherwise ask for any allocation.
pub(crate) const MAX_OUTPUT_ELEMENTS: usize = 1 << 26;

/// Refuses an output of more than [`MAX_OUTPUT_ELEMENTS`] (`None`: the
/// count overflowed) before it is allocated.
pub(crate) fn check_output_size(op: &str, elements: Option<usize>) -> TractResult<()> {
    match elements {
        Some(n) if n <= MAX_OUTPUT_ELEMENTS => Ok(()),
        _ => bail!("{op}: this input would make an output of more than {MAX_OUTPUT_ELEMENTS} elements"),
    }
}

/// Float attributes, from `name` (floats) or `name_as_tensor` (any float
/// tensor, which converters use to keep double precision).
/// Unit tests pass no context (and no tensor attributes).
pub(crate) fn floats(ctx: Option<&ParsingContext>, node: &NodeProto, name: &str) -> TractResult<Option<Vec<f64>>> {
    let as_tensor = format!("{name}_as_tensor");
    if let Some(proto) = node.get_attr_opt::<&tract_onnx::pb::TensorProto>(&as_tensor)? {
        let ctx = ctx.with_context(|| format!("{}: attribute {as_tensor} needs a parsing context", node.op_type))?;
        let t = ctx.load_tensor(proto)?.cast_to::<f64>()?.into_owned();
        return Ok(Some(t.try_as_plain_ram()?.as_slice::<f64>()?.to_vec()));
    }
    Ok(node.get_attr_opt_vec::<f32>(name)?.map(|v| v.into_iter().map(f64::from).collect()))
}

/// Integer attributes.
pub(crate) fn ints(node: &NodeProto, name: &str) -> TractResult<Option<Vec<i64>>> {
    node.get_attr_opt_vec::<i64>(name)
}

/// String attributes.
pub(crate) fn strings(node: &NodeProto, name: &str) -> TractResult<Option<Vec<String>>> {
    node.get_attr_opt_vec::<String>(name)
}

/// Class labels: exactly one of the two attributes must be present.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Labels {
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

impl Labels {
    pub(crate) fn parse(node: &NodeProto, ints_attr: &str, strings_attr: &str) -> TractResult<Labels> {
        match (ints(node, ints_attr)?, strings(node, strings_attr)?) {
            (Some(i), None) if !i.is_empty() => Ok(Labels::Ints(i)),
            (None, Some(s)) if !s.is_empty() => Ok(Labels::Strings(s)),
            (Some(_), Some(_)) => bail!("{}: only one of {ints_attr} and {strings_attr} may be set", node.op_type),
            _ => bail!("{}: one of {ints_attr} and {strings_attr} must be set and non-empty", node.op_type),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Labels::Ints(v) => v.len(),
            Labels::Strings(v) => v.len(),
        }
    }

    pub(crate) fn datum_type(&self) -> DatumType {
        match self {
            Labels::Ints(_) => DatumType::I64,
            Labels::Strings(_) => DatumType::String,
        }
    }

    /// A 1-D tensor with the label of each winning class index.
    pub(crate) fn pick(&self, winners: &[usize]) -> TractResult<Tensor> {
        Ok(match self {
            Labels::Ints(v) => filled::<i64>(&[winners.len()], |out| {
                for (d, &w) in out.iter_mut().zip(winners) {
                    *d = v[w];
                }
                Ok(())
            })?,
            Labels::Strings(v) => tensor1(&winners.iter().map(|&w| v[w].clone()).collect::<Vec<String>>()),
        })
    }
}

/// `row · coefficients[t] + intercepts[t]` for every target `t`, in f64,
/// into `out` (cleared first); `coefficients` is `[targets, row.len()]`,
/// row-major. LinearClassifier and LinearRegressor share it.
pub(crate) fn linear_scores(coefficients: &[f64], intercepts: &[f64], row: &[f64], out: &mut Vec<f64>) {
    out.clear();
    out.extend(coefficients.chunks_exact(row.len()).zip(intercepts).map(|(c, b)| c.iter().zip(row).map(|(w, v)| w * v).sum::<f64>() + b));
}

/// A tensor of `shape` whose elements `fill` writes in place (no
/// intermediate `Vec` and copy); they start at zero.
pub(crate) fn filled<T: Datum>(shape: &[usize], fill: impl FnOnce(&mut [T]) -> TractResult<()>) -> TractResult<Tensor> {
    let mut t = Tensor::zero_dt(T::datum_type(), shape)?;
    fill(t.try_as_plain_ram_mut()?.as_slice_mut::<T>()?)?;
    Ok(t)
}

/// Checks that an input of numeric type has at least `needed` features.
pub(crate) fn check_numeric(name: &str, dt: DatumType, features: Option<usize>, needed: usize) -> TractResult<()> {
    ensure!(
        matches!(dt, DatumType::F32 | DatumType::F64 | DatumType::I64 | DatumType::I32),
        "{name} takes float, double, int64 or int32 inputs, not {dt:?}"
    );
    if let Some(f) = features {
        ensure!(f >= needed, "{name} reads {needed} features but the input has {f}");
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Hand-built ONNX nodes for the operators' unit tests.
    use tract_onnx::model::ParsingContext;
    use tract_onnx::pb::attribute_proto::AttributeType;
    use tract_onnx::pb::tensor_proto::DataType;
    use tract_onnx::pb::{AttributeProto, ModelProto, NodeProto, TensorProto};

    /// Runs `f` with a parsing context, which tensor attributes need.
    pub(crate) fn with_ctx<T>(f: impl FnOnce(&ParsingContext) -> T) -> T {
        let onnx = tract_onnx::onnx();
        let model = ModelProto::default();
        let ctx = ParsingContext {
            onnx_operator_set_version: 21,
            framework: &onnx,
            model: &model,
            parent_graphs: vec![],
            model_dir: None,
            template: Default::default(),
        };
        f(&ctx)
    }

    /// A 1-D tensor attribute of numbers (stored as `dt`).
    pub(crate) fn a_tensor(name: &str, dt: DataType, v: &[f64]) -> AttributeProto {
        let mut t = TensorProto { data_type: dt as i32, dims: vec![v.len() as i64], ..Default::default() };
        match dt {
            DataType::Double => t.double_data = v.to_vec(),
            DataType::Float => t.float_data = v.iter().map(|&x| x as f32).collect(),
            DataType::Int64 => t.int64_data = v.iter().map(|&x| x as i64).collect(),
            DataType::Int32 | DataType::Int16 => t.int32_data = v.iter().map(|&x| x as i32).collect(),
            _ => t.raw_data = v.iter().map(|&x| x as u8).collect(),
        }
        AttributeProto { name: name.into(), r#type: AttributeType::Tensor as i32, t: Some(t), ..Default::default() }
    }

    /// A 1-D tensor attribute of strings.
    pub(crate) fn a_str_tensor(name: &str, v: &[&str]) -> AttributeProto {
        let t = TensorProto {
            data_type: DataType::String as i32,
            dims: vec![v.len() as i64],
            string_data: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
            ..Default::default()
        };
        AttributeProto { name: name.into(), r#type: AttributeType::Tensor as i32, t: Some(t), ..Default::default() }
    }

    pub(crate) fn node(op_type: &str, attrs: Vec<AttributeProto>) -> NodeProto {
        NodeProto { op_type: op_type.into(), name: "n".into(), attribute: attrs, ..Default::default() }
    }

    pub(crate) fn a_floats(name: &str, v: &[f32]) -> AttributeProto {
        AttributeProto { name: name.into(), r#type: AttributeType::Floats as i32, floats: v.to_vec(), ..Default::default() }
    }

    pub(crate) fn a_float(name: &str, v: f32) -> AttributeProto {
        AttributeProto { name: name.into(), r#type: AttributeType::Float as i32, f: v, ..Default::default() }
    }

    pub(crate) fn a_ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto { name: name.into(), r#type: AttributeType::Ints as i32, ints: v.to_vec(), ..Default::default() }
    }

    pub(crate) fn a_int(name: &str, v: i64) -> AttributeProto {
        AttributeProto { name: name.into(), r#type: AttributeType::Int as i32, i: v, ..Default::default() }
    }

    pub(crate) fn a_strs(name: &str, v: &[&str]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::Strings as i32,
            strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
            ..Default::default()
        }
    }

    pub(crate) fn a_string(name: &str, v: &str) -> AttributeProto {
        AttributeProto { name: name.into(), r#type: AttributeType::String as i32, s: v.as_bytes().to_vec(), ..Default::default() }
    }
}
