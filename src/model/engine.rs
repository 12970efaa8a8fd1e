//! The engine: the only file that builds and runs tract models.
//!
//! Loading parses the ONNX bytes, fixes the input facts (from
//! `config.pbtxt` or the graph), optimises, and builds plans. Running turns
//! protocol tensors into tract tensors and back. Each inference worker keeps
//! a [`Scratch`] with one reusable plan state per plan, so a request does not
//! rebuild the state.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use super::pbtxt::{ModelConfigFile, TensorConfig};
use super::shapes::ShapePlan;
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
    /// Time spent parsing and optimising.
    pub load_time: Duration,
    /// The plan for any batch size; None when the graph can only be built
    /// with a known batch.
    plan: Option<Arc<TypedSimplePlan>>,
    /// Plans specialised per batch size, where measured faster:
    /// convolutions run several times slower on symbolic shapes.
    by_batch: Option<ByBatch>,
    input_types: Vec<DatumType>,
    /// Some operator keeps state between runs: every run starts afresh.
    stateful: bool,
    guard: ShapeGuard,
    /// Plans built per input shape, for a graph that cannot be built with
    /// variable dimensions.
    dynamic: Option<Dynamic>,
}

/// Plans specialised per batch size, built the first time a batch of that
/// size comes (batch 1 at load): building all sixteen at start-up took a
/// speech model 90 s and gigabytes.
struct ByBatch {
    /// The decluttered model with a symbolic batch.
    typed: TypedModel,
    batch: Symbol,
    /// Index = batch size, up to [`MAX_SPECIALISED_BATCH`].
    plans: Mutex<Vec<Option<Arc<TypedSimplePlan>>>>,
}

impl std::fmt::Debug for ByBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.plans.lock().map_or(0, |p| p.iter().flatten().count());
        write!(f, "ByBatch({n} plans)")
    }
}

impl ByBatch {
    fn new(typed: TypedModel, batch: Symbol, max: u32) -> Result<ByBatch, LoadError> {
        let by = ByBatch { typed, batch, plans: Mutex::new(vec![None; max.min(MAX_SPECIALISED_BATCH) as usize + 1]) };
        by.plan(1)?;
        Ok(by)
    }

    /// The plan for batch `b`, built now if it is the first of that size;
    /// None beyond the specialised sizes.
    fn plan(&self, b: usize) -> Result<Option<Arc<TypedSimplePlan>>, LoadError> {
        let lock = || self.plans.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match lock().get(b) {
            None => return Ok(None),
            Some(Some(p)) => return Ok(Some(p.clone())),
            Some(None) if b == 0 => return Ok(None),
            Some(None) => {}
        }
        let subs: HashMap<Symbol, TDim> = [(self.batch.clone(), TDim::from(b))].into_iter().collect();
        let typed = self.typed.set_symbols(&subs).map_err(|e| optimise(format!("batch {b}: {e:#}")))?;
        let plan = optimised(typed)?;
        Ok(Some(lock()[b].get_or_insert(plan).clone()))
    }
}

/// How many per-shape plans a model keeps: the least recently used goes.
const DYNAMIC_PLANS: usize = 8;

/// What building a plan for one more input shape needs, and the plans so far.
struct Dynamic {
    onnx: tract_onnx::Onnx,
    proto: tract_onnx::pb::ModelProto,
    shapes: ShapePlan,
    /// Most recently used last.
    plans: Mutex<Vec<ShapedPlan>>,
}

/// A plan and the input shapes it was built for.
type ShapedPlan = (Vec<Vec<usize>>, Arc<TypedSimplePlan>);

impl std::fmt::Debug for Dynamic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.plans.lock().map_or(0, |p| p.len());
        write!(f, "Dynamic({n} plans)")
    }
}

impl Dynamic {
    /// The plan for these input shapes, built now if it is new (on the
    /// request's thread: only CPU and memory, no file or system access).
    fn plan(&self, dims: Vec<Vec<usize>>) -> Result<Arc<TypedSimplePlan>, EngineError> {
        let lock = || self.plans.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        {
            let mut plans = lock();
            if let Some(i) = plans.iter().position(|(d, _)| *d == dims) {
                let hit = plans.remove(i);
                let plan = hit.1.clone();
                plans.push(hit);
                return Ok(plan);
            }
        }
        let fixed = self.shapes.with_dims(&dims).map_err(EngineError::Client)?;
        let plan = Built::new(&self.onnx, &self.proto, &fixed).and_then(|b| optimised(b.typed)).map_err(|e| {
            tracing::warn!(error = %e, shapes = ?dims, "no plan for these input shapes");
            EngineError::Client(format!("the model cannot run on inputs of shapes {dims:?}"))
        })?;
        let mut plans = lock();
        plans.push((dims, plan.clone()));
        if plans.len() > DYNAMIC_PLANS {
            plans.remove(0);
        }
        Ok(plan)
    }
}

/// Input sizes too small for a convolution or pooling window reach tract's
/// kernels as negative extents, and those fault (a 1x1 image into a 3x3
/// convolution): every such node's output size, as an expression of the
/// inputs' variable dimensions, is checked before a request runs.
#[derive(Debug, Default)]
struct ShapeGuard {
    /// Per input, per dimension: the symbol the request's size gives a value.
    input_symbols: Vec<Vec<Option<Symbol>>>,
    /// (node, operator, axis, output size) for sizes that vary.
    sizes: Vec<(String, String, usize, TDim)>,
}

impl ShapeGuard {
    fn new(model: &TypedModel) -> ShapeGuard {
        let input_symbols = (0..model.inputs.len())
            .map(|i| {
                model.input_fact(i).map_or_else(
                    |_| Vec::new(),
                    |f| f.shape.iter().map(|d| if let TDim::Sym(s) = d { Some(s.clone()) } else { None }).collect(),
                )
            })
            .collect();
        let mut sizes = Vec::new();
        for node in model.nodes() {
            let op = node.op().name();
            if !(op.contains("Conv") || op.contains("Pool")) {
                continue;
            }
            for fact in &node.outputs {
                for (axis, d) in fact.fact.shape.iter().enumerate() {
                    if d.to_i64().is_err() {
                        sizes.push((node.name.clone(), op.to_string(), axis, d.clone()));
                    }
                }
            }
        }
        ShapeGuard { input_symbols, sizes }
    }

    /// Refuses shapes that give some window an empty or negative output.
    fn check(&self, shapes: &[&[usize]]) -> Result<(), String> {
        if self.sizes.is_empty() {
            return Ok(());
        }
        let mut values = SymbolValues::default();
        for (syms, shape) in self.input_symbols.iter().zip(shapes) {
            for (s, &n) in syms.iter().zip(shape.iter()) {
                if let Some(s) = s {
                    values.set(s, n as i64);
                }
            }
        }
        for (node, op, axis, d) in &self.sizes {
            if let Ok(n) = d.eval(&values).to_i64()
                && n < 1
            {
                return Err(format!(
                    "the input is too small for this model: node '{node}' ({op}) would have an output of size {n} on axis {axis}; \
                     make the variable dimensions at least as large as the model's windows"
                ));
            }
        }
        Ok(())
    }
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
    /// Reads, parses and optimises one model version (`warden bench` and
    /// tests; `serve` reads every file first, then parses under the filter).
    pub fn load(
        name: &str,
        version: u64,
        path: &Path,
        config: Option<&ModelConfigFile>,
        config_path: &Path,
        opts: &LoadOptions,
    ) -> Result<LoadedModel, LoadError> {
        let bytes = read_model(path, opts.max_model_bytes)?;
        Self::from_file_bytes(name, version, path, &bytes, config, config_path, opts)
    }

    /// Parses and optimises the bytes read from `path`; errors name `path`
    /// and `config_path`.
    pub fn from_file_bytes(
        name: &str,
        version: u64,
        path: &Path,
        bytes: &[u8],
        config: Option<&ModelConfigFile>,
        config_path: &Path,
        opts: &LoadOptions,
    ) -> Result<LoadedModel, LoadError> {
        let p = path.display().to_string();
        Self::from_bytes(name, version, bytes, config, opts).map_err(|e| match e {
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

            let mut onnx = tract_onnx::onnx();
            super::onnx_ml::register(&mut onnx.op_register);
            extra_ops(&mut onnx.op_register);
            let mut proto = onnx.proto_model_for_read(&mut &bytes[..]).map_err(|e| parse(format!("{e:#}")))?;
            super::preflight::check(&mut proto, &onnx.op_register)?;
            let shapes = ShapePlan::new(&proto, config, opts.default_max_batch_size)?;
            let onnx = onnx.with_ignore_value_info(shapes.drop_hints);
            let max_batch_size = shapes.max_batch_size;
            let hinted = |e: LoadError| match (e, shapes.fix_hint()) {
                (LoadError::Optimise { path, reason }, Some(hint)) => LoadError::Optimise { path, reason: format!("{reason}; {hint}") },
                (e, _) => e,
            };

            // The plans: one for a variable batch, and one per batch size
            // where measured faster (convolutions run several times slower
            // on symbolic shapes), built when that size first comes; or, for
            // a graph that cannot be built with variable sizes, one per
            // input shape. Each is optimised from the decluttered model:
            // optimising an optimised model again is slow to run.
            let mut dynamic = None;
            let (built, generic, by_batch) = match Built::new(&onnx, &proto, &shapes) {
                Ok(built) => {
                    let plan = optimised(built.typed.clone()).map_err(hinted)?;
                    let has_conv = built.typed.nodes().iter().any(|n| n.op().name().contains("Conv"));
                    let by_batch = match (has_conv, &shapes.batch) {
                        (true, Some(batch)) => {
                            let batch = built.typed.symbols.sym(batch);
                            Some(ByBatch::new(built.typed.clone(), batch, max_batch_size).map_err(hinted)?)
                        }
                        _ => None,
                    };
                    (built, Some(plan), by_batch)
                }
                Err(e @ LoadError::Optimise { .. }) if shapes.has_variable() => {
                    // The graph only types with known sizes (a Reshape or a
                    // Concat whose shapes are computed from them): plans
                    // are built per input shape, on demand, and kept.
                    let Some((dims, fixed)) = WARM_UP_SIZES.iter().find_map(|&free| {
                        let dims = shapes.concrete(1, free);
                        let fixed = shapes.with_dims(&dims).ok()?;
                        Built::new(&onnx, &proto, &fixed).ok().map(|b| (dims, b))
                    }) else {
                        return Err(hinted(e));
                    };
                    let plan = optimised(fixed.typed.clone()).map_err(hinted)?;
                    dynamic = Some(Dynamic { onnx, proto, shapes: shapes.clone(), plans: Mutex::new(vec![(dims, plan)]) });
                    (fixed, None, None)
                }
                Err(e) => return Err(hinted(e)),
            };

            let guard = ShapeGuard::new(&built.typed);
            let Built { typed, graph_inputs, output_names } = built;
            let mut input_meta = Vec::with_capacity(graph_inputs.len());
            let mut input_types = Vec::with_capacity(graph_inputs.len());
            for (i, (iname, dt, dims)) in graph_inputs.into_iter().enumerate() {
                let dims = if dynamic.is_some() { shapes.served_dims(i) } else { dims };
                let cfg: Option<&TensorConfig> = config.and_then(|c| c.inputs.iter().find(|t| t.name == iname));
                let datatype = datatype_of(dt)
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
                let mut dims = dims;
                if max_batch_size > 0
                    && let Some(d) = dims.first_mut()
                {
                    *d = -1;
                }
                input_meta.push(TensorMeta { name: iname, datatype, shape: dims });
                input_types.push(dt);
            }
            if let Some(c) = config {
                for t in &c.outputs {
                    if !output_names.contains(&t.name) {
                        return Err(cfg_err(format!("output '{}' is not an output of the model", t.name)));
                    }
                }
            }
            let mut output_meta = Vec::with_capacity(output_names.len());
            for (i, oname) in output_names.iter().enumerate() {
                let fact = typed.output_fact(i).map_err(|e| optimise(format!("{e:#}")))?;
                let datatype = datatype_of(fact.datum_type).ok_or_else(|| {
                    parse(format!("output '{oname}' has element type {:?}, which the V2 protocol cannot carry", fact.datum_type))
                })?;
                let mut dims = dims_of(&fact.shape.to_tvec());
                if dynamic.is_some() {
                    // Sizes of the one shape built so far, not of the model.
                    dims.iter_mut().for_each(|d| *d = -1);
                }
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

            // SECURITY: a plan with operator state (recurrent layers carry
            // their hidden state between runs) must not be reused across
            // requests: one client's input would change the next answer.
            let mut stateful = false;
            let batch_one = by_batch.as_ref().map(|b| b.plan(1)).transpose()?.flatten();
            for p in generic.iter().chain(batch_one.iter()) {
                let state = p.spawn().map_err(|e| optimise(format!("{e:#}")))?;
                stateful |= state.op_states.iter().any(Option::is_some);
            }
            Ok(LoadedModel {
                meta: ModelMeta { name: name.into(), version, max_batch_size, inputs: input_meta, outputs: output_meta },
                load_time: started.elapsed(),
                plan: generic,
                by_batch,
                input_types,
                stateful,
                guard,
                dynamic,
            })
        })
    }

    /// Runs the plans once (see [`LoadedModel::warm_up_with`] for which), so
    /// that lazy initialisation in the engine happens at start-up and a
    /// model that cannot run at all is reported there. Variable dimensions take a moderate size
    /// (a 1x1 image is smaller than most convolutions' kernels); the data
    /// are ones, then zeros (ones keep integer divisors non-zero, zeros keep
    /// indices in range). A model whose runs depend on its data may fail
    /// both: that is not a reason to refuse it, so the failure comes back
    /// as a warning for the log.
    pub fn warm_up(&self) -> Option<String> {
        let mut last = None;
        for fill in [1u8, 0] {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.warm_up_with(fill)))
                .unwrap_or_else(|_| Err(EngineError::Internal("the engine panicked".into())));
            match run {
                Ok(()) => return None,
                Err(e) => last = Some(e.to_string()),
            }
        }
        last
    }

    fn warm_up_with(&self, fill: u8) -> Result<(), EngineError> {
        let mut scratch = Scratch::default();
        // The generic plan and the batch-1 plan, at batch 1: other batch
        // sizes get their plan, and its first run, when they first come.
        let batch_one = match &self.by_batch {
            Some(b) => b.plan(1).map_err(|e| EngineError::Internal(e.to_string()))?,
            None => None,
        };
        let plans: Vec<&Arc<TypedSimplePlan>> = self.plan.iter().chain(batch_one.iter()).collect();
        if let Some(d) = &self.dynamic {
            // The shapes the model was built with at load.
            let dims =
                d.plans.lock().unwrap_or_else(std::sync::PoisonError::into_inner).first().map(|(d, _)| d.clone()).unwrap_or_default();
            let inputs = dims
                .iter()
                .zip(&self.input_types)
                .map(|(shape, &dt)| filled(dt, shape, fill).map(Tensor::into_tvalue))
                .collect::<TractResult<TVec<_>>>()
                .map_err(|e| EngineError::Internal(format!("{e:#}")))?;
            return self.run(&mut scratch, 1, inputs).map(drop);
        }
        for plan in plans {
            let shapes = self.warm_up_shapes(1);
            let mut inputs = TVec::new();
            for (shape, &dt) in shapes.iter().zip(&self.input_types) {
                inputs.push(filled(dt, shape, fill).map_err(|e| EngineError::Internal(format!("{e:#}")))?.into_tvalue());
            }
            self.run_plan(plan, &mut scratch, inputs)?;
        }
        Ok(())
    }

    /// Warm-up input shapes: the batch, and for other variable dimensions
    /// the first of 32, 64 ... 512 that every window accepts and that keeps
    /// each input moderate (else 1).
    fn warm_up_shapes(&self, batch: usize) -> Vec<Vec<usize>> {
        let with = |free: usize| -> Vec<Vec<usize>> {
            let batches = self.meta.max_batch_size > 0;
            self.meta
                .inputs
                .iter()
                .map(|m| {
                    let dim = |(k, &d): (usize, &i64)| {
                        if d >= 0 {
                            d as usize
                        } else if k == 0 && batches {
                            batch
                        } else {
                            free
                        }
                    };
                    m.shape.iter().enumerate().map(dim).collect()
                })
                .collect()
        };
        for &free in WARM_UP_SIZES {
            let shapes = with(free);
            let small = shapes.iter().all(|s| s.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).is_some_and(|n| n <= WARM_UP_ELEMENTS));
            let refs: Vec<&[usize]> = shapes.iter().map(Vec::as_slice).collect();
            if small && self.guard.check(&refs).is_ok() {
                return shapes;
            }
        }
        with(1)
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
        if !self.guard.sizes.is_empty() {
            let shapes: Vec<&[usize]> =
                self.meta.inputs.iter().filter_map(|m| inputs.iter().find(|t| t.name == m.name)).map(|t| t.shape.as_slice()).collect();
            self.guard.check(&shapes).map_err(EngineError::Client)?;
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
        if let Some(d) = &self.dynamic {
            let plan = d.plan(inputs.iter().map(|t| t.shape().to_vec()).collect())?;
            let mut fresh = plan.spawn().map_err(|e| EngineError::Internal(format!("{e:#}")))?;
            return fresh.run(inputs).map_err(|e| EngineError::Internal(format!("{e:#}")));
        }
        if let Some(b) = &self.by_batch
            && let Some(plan) = b.plan(batch).map_err(|e| EngineError::Internal(e.to_string()))?
        {
            return self.run_plan(&plan, scratch, inputs);
        }
        let plan = self.plan.as_ref().ok_or_else(|| EngineError::Client(format!("batch size {batch} has no plan")))?;
        self.run_plan(plan, scratch, inputs)
    }

    fn run_plan(&self, plan: &Arc<TypedSimplePlan>, scratch: &mut Scratch, inputs: TVec<TValue>) -> Result<TVec<TValue>, EngineError> {
        if self.stateful {
            let mut fresh = plan.spawn().map_err(|e| EngineError::Internal(format!("{e:#}")))?;
            return fresh.run(inputs).map_err(|e| EngineError::Internal(format!("{e:#}")));
        }
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

/// Makes the engine's one-time probes now, before the filters: which
/// instructions the CPU has (on x86_64 with AMX that asks the kernel for
/// the tile state with `arch_prctl`, on aarch64 it reads `/proc/cpuinfo`)
/// and its cache sizes (`/sys`). tract makes them on first use and caches
/// the answers for the process, so after this no model run repeats them.
pub fn prime() {
    use tract_onnx::prelude::tract_linalg;
    let _ = tract_linalg::isa::native();
    let _ = tract_linalg::cache::cache_info();
    let _ = tract_linalg::cache::last_level_cache();
}

/// A model parsed and decluttered with its served input shapes.
struct Built {
    typed: TypedModel,
    /// Name, element type and dims (-1 where variable) of each input.
    graph_inputs: Vec<(String, DatumType, Vec<i64>)>,
    output_names: Vec<String>,
}

impl Built {
    fn new(onnx: &tract_onnx::Onnx, proto: &tract_onnx::pb::ModelProto, shapes: &ShapePlan) -> Result<Built, LoadError> {
        let parse = |reason: String| LoadError::Parse { path: String::new(), reason };
        let mut proto = proto.clone();
        shapes.apply(&mut proto);
        let model = onnx.model_for_proto_model(&proto).map_err(|e| parse(format!("{e:#}")))?;
        let mut graph_inputs = Vec::new();
        for (i, outlet) in model.input_outlets().map_err(|e| parse(format!("{e:#}")))?.iter().enumerate() {
            let name = model.node(outlet.node).name.clone();
            let fact = model.input_fact(i).map_err(|e| parse(format!("{e:#}")))?;
            let dt = fact.datum_type.concretize().ok_or_else(|| parse(format!("input '{name}' has no element type")))?;
            if fact.shape.is_open() {
                return Err(parse(format!("input '{name}' has no fixed rank")));
            }
            let dims = fact.shape.dims().map(|d| d.concretize().and_then(|d| d.to_i64().ok()).unwrap_or(-1)).collect();
            graph_inputs.push((name, dt, dims));
        }
        let output_names = model
            .output_outlets()
            .map_err(|e| parse(format!("{e:#}")))?
            .iter()
            .map(|&o| model.outlet_label(o).map(str::to_owned).unwrap_or_else(|| model.node(o.node).name.clone()))
            .collect();
        let typed = model.into_typed().and_then(|m| m.into_decluttered()).map_err(|e| optimise(format!("{e:#}")))?;
        Ok(Built { typed, graph_inputs, output_names })
    }
}

fn optimise(reason: String) -> LoadError {
    LoadError::Optimise { path: String::new(), reason }
}

fn optimised(typed: TypedModel) -> Result<Arc<TypedSimplePlan>, LoadError> {
    typed.into_optimized().and_then(|m| m.into_runnable()).map_err(|e| optimise(format!("{e:#}")))
}

/// Sizes tried for the variable dimensions of warm-up inputs.
const WARM_UP_SIZES: &[usize] = &[32, 64, 128, 256, 512];

/// Largest warm-up input, in elements.
const WARM_UP_ELEMENTS: usize = 1 << 22;

/// A tensor of `fill` converted to `dt` (an empty string for text).
fn filled(dt: DatumType, shape: &[usize], fill: u8) -> TractResult<Tensor> {
    if dt == DatumType::String {
        return Ok(tract_ndarray::ArrayD::<String>::default(tract_ndarray::IxDyn(shape)).into_tensor());
    }
    let t = tract_ndarray::ArrayD::<u8>::from_elem(tract_ndarray::IxDyn(shape), fill).into_tensor();
    Ok(t.cast_to_dt(dt)?.into_owned())
}

/// Runs `f` with a panic inside the parser or optimiser turned into a
/// parse error: a hostile model file must end start-up with a clear
/// message, not a crash.
fn guarded<T>(f: impl FnOnce() -> Result<T, LoadError>) -> Result<T, LoadError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(LoadError::Parse { path: String::new(), reason: "the ONNX parser failed on this file (internal panic)".into() })
    })
}

/// Reads a model file, refusing one larger than `max` bytes.
pub fn read_model(path: &Path, max: u64) -> Result<Vec<u8>, LoadError> {
    read_bounded(path, max).map_err(|reason| LoadError::Read { path: path.display().to_string(), reason })
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
