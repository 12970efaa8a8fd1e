//! The engine: the only file that builds and runs tract models.
//!
//! Loading parses the ONNX bytes, fixes the input facts (from
//! `config.pbtxt` or the graph), optimises, and builds plans. Running turns
//! protocol tensors into tract tensors and back. Each inference worker keeps
//! a [`Scratch`] with one reusable plan state per plan, so a request does not
//! rebuild the state.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use super::pbtxt::{ModelConfigFile, TensorConfig};
use super::{ModelMeta, TensorMeta};
use crate::protocol::{DataType, InputTensor, OutputTensor, TensorData};

/// Why a model could not be loaded (start-up only: messages may name files).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("cannot parse {path}: {reason}")]
    Parse { path: String, reason: String },
    #[error("{path}: {reason}")]
    Config { path: String, reason: String },
    #[error("cannot optimise {path}: {reason}")]
    Optimise { path: String, reason: String },
    /// Operators the engine does not implement; the reason lists them all
    /// and says what to do.
    #[error("{path} uses operators warden cannot run: {reason}")]
    Unsupported { path: String, reason: String },
}

/// Why one inference failed. `Client` messages are safe to return; `Internal`
/// detail is logged and the client sees a generic message.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Client(String),
    #[error("inference failed: {0}")]
    Internal(String),
}

/// A model version, parsed and optimised, ready to run.
#[derive(Debug)]
pub struct LoadedModel {
    pub meta: ModelMeta,
    /// Time spent reading, parsing and optimising.
    pub load_time: Duration,
    /// The plan for any batch size.
    plan: Arc<TypedSimplePlan>,
    /// Plans specialised per batch size (index = batch), where measured
    /// faster: convolutions run several times slower on symbolic shapes.
    by_batch: Vec<Option<Arc<TypedSimplePlan>>>,
    input_types: Vec<DatumType>,
}

/// Per-worker reusable plan states, keyed by plan address.
#[derive(Default)]
pub struct Scratch {
    states: HashMap<usize, TypedSimpleState>,
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scratch({} states)", self.states.len())
    }
}

/// Largest batch size that gets its own specialised plan.
const MAX_SPECIALISED_BATCH: u32 = 16;

fn datatype_of(dt: DatumType) -> Option<DataType> {
    Some(match dt {
        DatumType::Bool => DataType::Bool,
        DatumType::U8 => DataType::U8,
        DatumType::U16 => DataType::U16,
        DatumType::U32 => DataType::U32,
        DatumType::U64 => DataType::U64,
        DatumType::I8 => DataType::I8,
        DatumType::I16 => DataType::I16,
        DatumType::I32 => DataType::I32,
        DatumType::I64 | DatumType::TDim => DataType::I64,
        DatumType::F16 => DataType::F16,
        DatumType::F32 => DataType::F32,
        DatumType::F64 => DataType::F64,
        DatumType::String => DataType::Bytes,
        _ => return None,
    })
}

#[cfg(test)]
fn datum_of(dt: DataType) -> Option<DatumType> {
    Some(match dt {
        DataType::Bool => DatumType::Bool,
        DataType::U8 => DatumType::U8,
        DataType::U16 => DatumType::U16,
        DataType::U32 => DatumType::U32,
        DataType::U64 => DatumType::U64,
        DataType::I8 => DatumType::I8,
        DataType::I16 => DatumType::I16,
        DataType::I32 => DatumType::I32,
        DataType::I64 => DatumType::I64,
        DataType::F16 => DatumType::F16,
        DataType::F32 => DatumType::F32,
        DataType::F64 => DatumType::F64,
        DataType::Bytes => DatumType::String,
        DataType::Bf16 => return None,
    })
}

fn dims_of(shape: &[TDim]) -> Vec<i64> {
    shape.iter().map(|d| d.to_i64().unwrap_or(-1)).collect()
}

/// Options that change how models load.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// `max_batch_size` given to models without a `config.pbtxt` whose
    /// inputs and outputs all have a variable first dimension (Triton's
    /// auto-complete does the same).
    pub default_max_batch_size: u32,
    /// Largest model file accepted.
    pub max_model_bytes: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { default_max_batch_size: 64, max_model_bytes: 2 << 30 }
    }
}

impl LoadedModel {
    /// Reads, parses and optimises one model version.
    pub fn load(
        name: &str,
        version: u64,
        path: &Path,
        config: Option<&ModelConfigFile>,
        config_path: &Path,
        opts: &LoadOptions,
    ) -> Result<LoadedModel, LoadError> {
        let started = Instant::now();
        let p = path.display().to_string();
        let bytes = read_bounded(path, opts.max_model_bytes).map_err(|reason| LoadError::Read { path: p.clone(), reason })?;
        Self::from_bytes(name, version, &bytes, config, opts)
            .map(|mut m| {
                m.load_time = started.elapsed();
                m
            })
            .map_err(|e| match e {
                LoadError::Parse { reason, .. } => LoadError::Parse { path: p.clone(), reason },
                LoadError::Optimise { reason, .. } => LoadError::Optimise { path: p.clone(), reason },
                LoadError::Unsupported { reason, .. } => LoadError::Unsupported { path: p.clone(), reason },
                LoadError::Config { reason, .. } => LoadError::Config { path: config_path.display().to_string(), reason },
                e => e,
            })
    }

    /// Parses and optimises a model from bytes (file names are filled in by
    /// [`LoadedModel::load`]).
    pub fn from_bytes(
        name: &str,
        version: u64,
        bytes: &[u8],
        config: Option<&ModelConfigFile>,
        opts: &LoadOptions,
    ) -> Result<LoadedModel, LoadError> {
        Self::from_bytes_with_ops(name, version, bytes, config, opts, &|_| {})
    }

    /// As [`LoadedModel::from_bytes`], with extra operators registered last
    /// (the lockdown tests register a probe operator whose constructor runs
    /// while the model is parsed).
    pub fn from_bytes_with_ops(
        name: &str,
        version: u64,
        bytes: &[u8],
        config: Option<&ModelConfigFile>,
        opts: &LoadOptions,
        extra_ops: &dyn Fn(&mut tract_onnx::model::OnnxOpRegister),
    ) -> Result<LoadedModel, LoadError> {
        guarded(|| {
            let started = Instant::now();
            let parse = |reason: String| LoadError::Parse { path: String::new(), reason };
            let cfg_err = |reason: String| LoadError::Config { path: String::new(), reason };
            let optimise = |reason: String| LoadError::Optimise { path: String::new(), reason };

            let mut onnx = tract_onnx::onnx();
            super::onnx_ml::register(&mut onnx.op_register);
            extra_ops(&mut onnx.op_register);
            let mut proto = onnx.proto_model_for_read(&mut &bytes[..]).map_err(|e| parse(format!("{e:#}")))?;
            super::preflight::check(&mut proto, &onnx.op_register)?;
            let mut model = onnx.model_for_proto_model(&proto).map_err(|e| parse(format!("{e:#}")))?;
            let batch = model.symbols.sym("batch");

            // Input facts: the graph's, overridden by config.pbtxt where given.
            let n_inputs = model.input_outlets().map_err(|e| parse(format!("{e:#}")))?.len();
            let mut graph_inputs = Vec::with_capacity(n_inputs);
            for i in 0..n_inputs {
                let outlet = model.input_outlets().map_err(|e| parse(format!("{e:#}")))?[i];
                let name = model.node(outlet.node).name.clone();
                let fact = model.input_fact(i).map_err(|e| parse(format!("{e:#}")))?;
                let dt = fact.datum_type.concretize().ok_or_else(|| parse(format!("input '{name}' has no element type")))?;
                if fact.shape.is_open() {
                    return Err(parse(format!("input '{name}' has no fixed rank")));
                }
                let dims: Vec<Option<i64>> = fact.shape.dims().map(|d| d.concretize().and_then(|d| d.to_i64().ok())).collect();
                graph_inputs.push((name, dt, dims));
            }
            let n_outputs = model.output_outlets().map_err(|e| parse(format!("{e:#}")))?.len();
            let output_names: Vec<String> = (0..n_outputs)
                .map(|i| {
                    let o = model.output_outlets().expect("outputs listed above")[i];
                    model.outlet_label(o).map(str::to_owned).unwrap_or_else(|| model.node(o.node).name.clone())
                })
                .collect();

            let max_batch_size = match config.and_then(|c| c.max_batch_size) {
                Some(n) => n,
                None if config.is_some_and(|c| !c.inputs.is_empty()) => 0,
                None => {
                    let all_variable = graph_inputs.iter().all(|(_, _, d)| d.first().is_some_and(|d| d.is_none()));
                    if all_variable { opts.default_max_batch_size } else { 0 }
                }
            };

            let mut input_meta = Vec::with_capacity(n_inputs);
            let mut input_types = Vec::with_capacity(n_inputs);
            for (i, (iname, dt, gdims)) in graph_inputs.iter().enumerate() {
                let cfg: Option<&TensorConfig> = config.and_then(|c| c.inputs.iter().find(|t| &t.name == iname));
                let datatype = datatype_of(*dt)
                    .ok_or_else(|| parse(format!("input '{iname}' has element type {dt:?}, which the V2 protocol cannot carry")))?;
                if let Some(want) = cfg.and_then(|c| c.data_type)
                    && want != datatype
                {
                    return Err(cfg_err(format!(
                        "input '{iname}': data_type {} does not match the model's {}",
                        want.config_name(),
                        datatype.config_name()
                    )));
                }
                let mut dims: Vec<i64> = gdims.iter().map(|d| d.unwrap_or(-1)).collect();
                if let Some(cdims) = cfg.and_then(|c| c.dims.as_ref()) {
                    let full: Vec<i64> =
                        if max_batch_size > 0 { std::iter::once(-1).chain(cdims.iter().copied()).collect() } else { cdims.clone() };
                    if full.len() != dims.len() {
                        return Err(cfg_err(format!(
                            "input '{iname}': dims {cdims:?} give rank {}, the model's input has rank {}",
                            full.len(),
                            dims.len()
                        )));
                    }
                    for (k, (&c, &g)) in full.iter().zip(&dims).enumerate() {
                        if c >= 0 && g >= 0 && c != g && !(k == 0 && max_batch_size > 0) {
                            return Err(cfg_err(format!("input '{iname}': dims {cdims:?} do not match the model's shape {dims:?}")));
                        }
                    }
                    dims = full.iter().zip(&dims).map(|(&c, &g)| if c >= 0 { c } else { g }).collect();
                }
                if max_batch_size > 0 {
                    match dims.first() {
                        Some(_) => dims[0] = -1,
                        None => return Err(cfg_err(format!("input '{iname}' is a scalar, so max_batch_size must be 0"))),
                    }
                }
                let tdims: TVec<TDim> = dims
                    .iter()
                    .enumerate()
                    .map(|(k, &d)| {
                        if d >= 0 {
                            TDim::from(d as usize)
                        } else if k == 0 {
                            batch.clone().into()
                        } else {
                            model.symbols.new_with_prefix("d").into()
                        }
                    })
                    .collect();
                model.set_input_fact(i, InferenceFact::dt_shape(*dt, tdims)).map_err(|e| parse(format!("{e:#}")))?;
                input_meta.push(TensorMeta { name: iname.clone(), datatype, shape: dims });
                input_types.push(*dt);
            }
            if let Some(c) = config {
                for t in &c.inputs {
                    if !graph_inputs.iter().any(|(n, _, _)| n == &t.name) {
                        return Err(cfg_err(format!("input '{}' is not an input of the model", t.name)));
                    }
                }
                for t in &c.outputs {
                    if !output_names.contains(&t.name) {
                        return Err(cfg_err(format!("output '{}' is not an output of the model", t.name)));
                    }
                }
            }

            let typed = model.into_optimized().map_err(|e| optimise(format!("{e:#}")))?;
            let mut output_meta = Vec::with_capacity(n_outputs);
            for (i, oname) in output_names.iter().enumerate() {
                let fact = typed.output_fact(i).map_err(|e| optimise(format!("{e:#}")))?;
                let datatype = datatype_of(fact.datum_type).ok_or_else(|| {
                    parse(format!("output '{oname}' has element type {:?}, which the V2 protocol cannot carry", fact.datum_type))
                })?;
                let mut dims = dims_of(&fact.shape.to_tvec());
                if let Some(want) = config.and_then(|c| c.outputs.iter().find(|t| &t.name == oname)).and_then(|t| t.data_type)
                    && want != datatype
                {
                    return Err(cfg_err(format!(
                        "output '{oname}': data_type {} does not match the model's {}",
                        want.config_name(),
                        datatype.config_name()
                    )));
                }
                if max_batch_size > 0 {
                    match dims.first_mut() {
                        Some(d) => *d = -1,
                        None => return Err(cfg_err(format!("output '{oname}' is a scalar, so max_batch_size must be 0"))),
                    }
                }
                output_meta.push(TensorMeta { name: oname.clone(), datatype, shape: dims });
            }

            let has_conv = typed.nodes().iter().any(|n| n.op().name().contains("Conv"));
            let mut by_batch = Vec::new();
            if has_conv && max_batch_size > 0 {
                by_batch.push(None);
                for b in 1..=max_batch_size.min(MAX_SPECIALISED_BATCH) {
                    let subs: HashMap<Symbol, TDim> = [(batch.clone(), TDim::from(b as usize))].into_iter().collect();
                    let concrete = typed.set_symbols(&subs).and_then(|m| m.into_optimized()).and_then(|m| m.into_runnable());
                    by_batch.push(Some(concrete.map_err(|e| optimise(format!("batch {b}: {e:#}")))?));
                }
            }
            let plan = typed.into_runnable().map_err(|e| optimise(format!("{e:#}")))?;
            Ok(LoadedModel {
                meta: ModelMeta { name: name.into(), version, max_batch_size, inputs: input_meta, outputs: output_meta },
                load_time: started.elapsed(),
                plan,
                by_batch,
                input_types,
            })
        })
    }

    /// Runs every plan once on zeros (variable dimensions set to 1), so that
    /// lazy initialisation in the engine (tract probes CPU caches under
    /// `/sys` on its first matrix product) happens now, while file reads are
    /// still allowed, instead of tripping the serving filter later.
    pub fn warm_up(&self) -> Result<(), EngineError> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.warm_up_inner()))
            .unwrap_or_else(|_| Err(EngineError::Internal("the engine panicked during the warm-up run".into())))
    }

    fn warm_up_inner(&self) -> Result<(), EngineError> {
        let mut scratch = Scratch::default();
        let batches: Vec<usize> = std::iter::once(1).chain((1..self.by_batch.len()).filter(|&b| b > 1)).collect();
        for batch in batches {
            let mut inputs = TVec::new();
            for (m, &dt) in self.meta.inputs.iter().zip(&self.input_types) {
                let shape: Vec<usize> = m
                    .shape
                    .iter()
                    .enumerate()
                    .map(|(k, &d)| {
                        if d >= 0 {
                            d as usize
                        } else if k == 0 {
                            batch
                        } else {
                            1
                        }
                    })
                    .collect();
                let t = if dt == DatumType::String {
                    tract_ndarray::ArrayD::<String>::default(tract_ndarray::IxDyn(&shape)).into_tensor()
                } else {
                    Tensor::zero_dt(dt, &shape).map_err(|e| EngineError::Internal(format!("{e:#}")))?
                };
                inputs.push(t.into_tvalue());
            }
            self.run(&mut scratch, batch, inputs)?;
        }
        Ok(())
    }

    /// Checks the request's tensors against the model, before any work.
    pub fn check_inputs(&self, inputs: &[InputTensor]) -> Result<(), EngineError> {
        let c = |m: String| Err(EngineError::Client(m));
        for t in inputs {
            if !self.meta.inputs.iter().any(|m| m.name == t.name) {
                return c(format!("unexpected input '{}' for model '{}'", t.name, self.meta.name));
            }
        }
        let mut batch = None;
        for m in &self.meta.inputs {
            let Some(t) = inputs.iter().find(|t| t.name == m.name) else {
                return c(format!("expected {} inputs but got {}; input '{}' is missing", self.meta.inputs.len(), inputs.len(), m.name));
            };
            if t.datatype != m.datatype {
                return c(format!("input '{}': datatype {} does not match the model's {}", m.name, t.datatype, m.datatype));
            }
            let ok = t.shape.len() == m.shape.len() && t.shape.iter().zip(&m.shape).all(|(&s, &d)| d < 0 || s as i64 == d);
            if !ok {
                return c(format!("input '{}': shape {:?} does not match the model's shape {:?}", m.name, t.shape, m.shape));
            }
            if self.meta.max_batch_size > 0 {
                let b = t.shape[0];
                if b == 0 || b > self.meta.max_batch_size as usize {
                    return c(format!("input '{}': batch size {b} is outside 1..={} (max_batch_size)", m.name, self.meta.max_batch_size));
                }
                if *batch.get_or_insert(b) != b {
                    return c("all inputs must have the same batch size".into());
                }
            }
        }
        Ok(())
    }

    /// Batch size of a checked request (1 for models that do not batch).
    pub fn batch_size(&self, inputs: &[InputTensor]) -> usize {
        if self.meta.max_batch_size > 0 { inputs.first().and_then(|t| t.shape.first()).copied().unwrap_or(1) } else { 1 }
    }

    /// Converts checked protocol tensors into engine inputs, in model order.
    pub fn prepare(&self, mut inputs: Vec<InputTensor>) -> Result<TVec<TValue>, EngineError> {
        let mut out = TVec::with_capacity(self.meta.inputs.len());
        for (m, &dt) in self.meta.inputs.iter().zip(&self.input_types) {
            // A model has a handful of inputs: a scan beats a map.
            let i = inputs
                .iter()
                .position(|t| t.name == m.name)
                .ok_or_else(|| EngineError::Client(format!("input '{}' is missing", m.name)))?;
            out.push(to_tensor(&inputs.swap_remove(i), dt)?.into_tvalue());
        }
        Ok(out)
    }

    /// Runs the model. `batch` selects a specialised plan when one exists.
    pub fn run(&self, scratch: &mut Scratch, batch: usize, inputs: TVec<TValue>) -> Result<TVec<TValue>, EngineError> {
        let plan = self.by_batch.get(batch).and_then(Option::as_ref).unwrap_or(&self.plan);
        let key = Arc::as_ptr(plan) as usize;
        let state = match scratch.states.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert(plan.spawn().map_err(|e| EngineError::Internal(format!("{e:#}")))?),
        };
        state.run(inputs).map_err(|e| EngineError::Internal(format!("{e:#}")))
    }

    /// Converts engine outputs into protocol tensors; `wanted` holds
    /// (output index, binary) pairs in response order.
    pub fn outputs(&self, values: TVec<TValue>, wanted: &[(usize, bool)]) -> Result<Vec<OutputTensor<'_>>, EngineError> {
        let mut out = Vec::with_capacity(wanted.len());
        for &(i, binary) in wanted {
            let m = &self.meta.outputs[i];
            let v = values.get(i).ok_or_else(|| EngineError::Internal(format!("output {i} missing")))?;
            let data = from_tensor(v)?;
            out.push(OutputTensor { name: &m.name, datatype: m.datatype, shape: v.shape().to_vec(), data, binary });
        }
        Ok(out)
    }
}

/// Runs `f` with a panic inside the parser or optimiser turned into a
/// parse error: a hostile model file must end start-up with a clear
/// message, not a crash.
fn guarded<T>(f: impl FnOnce() -> Result<T, LoadError>) -> Result<T, LoadError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(LoadError::Parse { path: String::new(), reason: "the ONNX parser failed on this file (internal panic)".into() })
    })
}

fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    f.take(max + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > max {
        return Err(format!("larger than the limit of {max} bytes"));
    }
    Ok(bytes)
}

fn to_tensor(t: &InputTensor, dt: DatumType) -> Result<Tensor, EngineError> {
    match &t.data {
        TensorData::Raw(raw) => {
            let normalised;
            let raw: &[u8] = if dt == DatumType::Bool {
                // SECURITY: a bool must be 0 or 1; any other byte is UB in Rust.
                normalised = raw.iter().map(|&b| u8::from(b != 0)).collect::<Vec<u8>>();
                &normalised
            } else {
                raw
            };
            // SAFETY: `dt` is a plain numeric or bool type (strings take the
            // other branch), every bit pattern of which is valid once bools are
            // normalised; tract checks that the length matches the shape.
            unsafe { Tensor::from_raw_dt(dt, &t.shape, raw) }.map_err(|e| EngineError::Client(format!("input '{}': {e}", t.name)))
        }
        TensorData::Strings(v) => {
            if dt != DatumType::String {
                return Err(EngineError::Client(format!("input '{}' needs numeric data", t.name)));
            }
            let strings = v
                .iter()
                .map(|b| String::from_utf8(b.to_vec()))
                .collect::<Result<Vec<String>, _>>()
                .map_err(|_| EngineError::Client(format!("input '{}': BYTES elements must be valid UTF-8 for this model", t.name)))?;
            let arr = tract_ndarray::ArrayD::from_shape_vec(tract_ndarray::IxDyn(&t.shape), strings)
                .map_err(|e| EngineError::Client(format!("input '{}': {e}", t.name)))?;
            Ok(arr.into_tensor())
        }
    }
}

fn from_tensor(v: &Tensor) -> Result<TensorData, EngineError> {
    let internal = |e: TractError| EngineError::Internal(format!("{e:#}"));
    match v.datum_type() {
        DatumType::String => {
            let view = v.to_plain_array_view::<String>().map_err(internal)?;
            Ok(TensorData::Strings(view.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect()))
        }
        DatumType::TDim => {
            let t = v.cast_to::<i64>().map_err(internal)?;
            Ok(TensorData::Raw(Bytes::copy_from_slice(t.as_bytes())))
        }
        dt if datatype_of(dt).is_some() => Ok(TensorData::Raw(Bytes::copy_from_slice(v.as_bytes()))),
        dt => Err(EngineError::Internal(format!("unsupported output type {dt:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datatype_mapping_round_trips() {
        for dt in DataType::ALL {
            if let Some(d) = datum_of(dt) {
                assert_eq!(datatype_of(d), Some(dt));
            }
        }
        assert_eq!(datatype_of(DatumType::TDim), Some(DataType::I64));
        assert_eq!(datum_of(DataType::Bf16), None);
    }

    /// Regression (fuzzing, model_load): tract panicked on a graph output no
    /// node defines; warden refuses the file with a parse error first.
    #[test]
    fn undefined_graph_output_is_a_parse_error_not_a_panic() {
        let bytes = include_bytes!("../../tests/data/fuzz/model_load-undefined-graph-output.onnx");
        let e = LoadedModel::from_bytes("m", 1, bytes, None, &LoadOptions::default()).unwrap_err();
        assert!(matches!(e, LoadError::Parse { .. }), "{e}");
        assert!(e.to_string().contains("graph output"), "{e}");
    }

    /// Every unsupported operator is named at once, with its domain, its
    /// nodes (subgraphs included) and what to do.
    #[test]
    fn unsupported_operators_are_all_listed_with_what_to_do() {
        let bytes = include_bytes!("../../tests/data/unsupported_ops.onnx");
        let e = LoadedModel::from_bytes("m", 1, bytes, None, &LoadOptions::default()).unwrap_err();
        assert!(matches!(e, LoadError::Unsupported { .. }), "{e}");
        let msg = e.to_string();
        for needle in [
            "WardenNoSuchOp (domain ai.onnx opset 13, nodes 'first', 'inside_if')",
            "FeatureHasher (domain ai.onnx.ml opset 3, node 'hasher')",
            "Relu (domain com.example opset 1, node 'vendor_relu')",
            "README \"Serving a scikit-learn model\"",
            "opset_version",
            "vendor domains",
        ] {
            assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
        }
        // Operators warden and tract do run are not listed.
        assert!(!msg.contains("Cast") && !msg.contains("If ("), "{msg}");
    }

    /// Regression (fuzzing, model_load): a Conv whose data input is empty
    /// made tract panic in shape inference; warden names the node instead.
    #[test]
    fn an_empty_conv_input_is_a_parse_error_not_a_panic() {
        let bytes = include_bytes!("../../tests/data/fuzz/model_load-conv-empty-input.onnx");
        let e = LoadedModel::from_bytes("m", 1, bytes, None, &LoadOptions::default()).unwrap_err();
        assert!(matches!(e, LoadError::Parse { .. }), "{e}");
        assert!(e.to_string().contains("node 'conv2' (Conv) leaves input 0 empty"), "{e}");
    }

    /// An omitted optional input spelt as a trailing empty name (a Conv
    /// without bias as `[x, w, ""]`) made tract expect a bias and panic; it
    /// now loads and answers as the same node without the empty name.
    #[test]
    fn a_trailing_empty_input_means_omitted() {
        use prost::Message;
        let bytes = include_bytes!("../../models/mnist_cnn/1/model.onnx");
        let mut proto = tract_onnx::onnx().proto_model_for_read(&mut &bytes[..]).unwrap();
        let conv = &mut proto.graph.as_mut().unwrap().node[0];
        assert_eq!(conv.op_type, "Conv");
        conv.input.truncate(2);
        let without = proto.encode_to_vec();
        proto.graph.as_mut().unwrap().node[0].input.push(String::new());
        let with_empty = proto.encode_to_vec();

        let answer = |bytes: &[u8]| {
            let m = LoadedModel::from_bytes("m", 1, bytes, None, &LoadOptions::default()).unwrap();
            let input = Tensor::from_shape(&[1, 1, 28, 28], &(0..784).map(|i| (i % 17) as f32 / 17.0).collect::<Vec<_>>()).unwrap();
            let out = m.run(&mut Scratch::default(), 1, tvec![input.into_tvalue()]).unwrap();
            out[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec()
        };
        assert_eq!(answer(&with_empty), answer(&without));
    }

    #[test]
    fn garbage_is_a_parse_error() {
        let e = LoadedModel::from_bytes("m", 1, b"not a model", None, &LoadOptions::default()).unwrap_err();
        assert!(matches!(e, LoadError::Parse { .. }), "{e}");
    }

    #[test]
    fn bools_are_normalised() {
        let t = InputTensor {
            name: "b".into(),
            datatype: DataType::Bool,
            shape: vec![3],
            data: TensorData::Raw(Bytes::from_static(&[0, 2, 255])),
        };
        let tensor = to_tensor(&t, DatumType::Bool).unwrap();
        assert_eq!(tensor.as_bytes(), &[0, 1, 1]);
        let bad = InputTensor { shape: vec![4], ..t };
        assert!(to_tensor(&bad, DatumType::Bool).is_err());
    }
}
