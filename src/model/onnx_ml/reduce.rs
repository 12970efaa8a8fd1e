//! Standard reductions tract computes wrongly at the edges, as warden's own
//! expansions into tract's operators.
//!
//! `ReduceMax` and `ReduceMin` start from the largest finite value, so a
//! slice of only infinities (an attention row whose mask hides every key)
//! or an empty slice gives -FLT_MAX where ONNX defines -inf (and FLT_MAX for
//! +inf): a softmax over such a row then gives NaN instead of zeros. warden
//! keeps tract's reduction and replaces its answer with the infinity where
//! no element of the slice is finite or larger.
//!
//! `ReduceLogSumExp` (a standard ONNX operator, not `ai.onnx.ml`), computed
//! stably: `m + ln(sum(exp(x - m)))` with `m` the maximum over the reduced
//! axes, as ONNX Runtime does. tract computes `ln(sum(exp(x)))` literally,
//! which underflows to `ln(0) = -inf` when every `x` is below about -104
//! (f32). scikit-learn's naive Bayes graphs normalise joint
//! log-likelihoods of several hundreds below zero this way, and tract's
//! version turns their probabilities into `exp(x + inf) = inf`.
//!
//! A non-finite maximum is clamped to the largest finite value (ONNX
//! Runtime uses 0), so that a slice of only -inf still gives -inf and one
//! holding +inf gives +inf, rather than NaN from `inf - inf`. Types other
//! than float and double keep tract's literal form.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::logic::{self, Iff};
use tract_onnx::tract_core::ops::{cast::cast, math};
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::ops::nn::{Reduce, Reducer};

/// Which reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    LogSumExp,
    Max,
    Min,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ReduceLogSumExp {
    kind: Kind,
    /// The `axes` attribute (opset < 18); `None` is every axis.
    axes_attr: Option<Vec<i64>>,
    /// Opset 18 takes the axes as an optional second input instead.
    axes_input: bool,
    keep_dims: bool,
    noop_with_empty_axes: bool,
}

pub(crate) fn log_sum_exp(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    build(ctx, node, Kind::LogSumExp)
}

pub(crate) fn max(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    build(ctx, node, Kind::Max)
}

pub(crate) fn min(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    build(ctx, node, Kind::Min)
}

fn build(ctx: &ParsingContext, node: &NodeProto, kind: Kind) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let op = ReduceLogSumExp {
        kind,
        axes_attr: if ctx.onnx_operator_set_version >= 18 { None } else { node.get_attr_opt_vec("axes")? },
        axes_input: ctx.onnx_operator_set_version >= 18 && node.input.len() == 2 && !node.input[1].is_empty(),
        keep_dims: node.get_attr_opt("keepdims")?.unwrap_or(1i64) == 1,
        noop_with_empty_axes: node.get_attr_opt("noop_with_empty_axes")?.unwrap_or(0i64) == 1,
    };
    Ok((expand(op), vec![]))
}

impl ReduceLogSumExp {
    /// The reduced axes, sorted; empty means the input passes through.
    fn axes(&self, rank: usize, from_input: Option<&Tensor>) -> TractResult<Vec<usize>> {
        let given: Vec<i64> = match (from_input, &self.axes_attr) {
            (Some(t), _) => t.cast_to::<i64>()?.try_as_plain_ram()?.as_slice::<i64>()?.to_vec(),
            (None, Some(a)) => a.clone(),
            (None, None) => vec![],
        };
        if given.is_empty() {
            return Ok(if self.noop_with_empty_axes && self.axes_attr.is_none() { vec![] } else { (0..rank).collect() });
        }
        let mut axes = given
            .iter()
            .map(|&a| {
                let r = rank as i64;
                ensure!((-r..r).contains(&a), "{}: axis {a} is out of range for rank {rank}", self.op_name());
                Ok(a.rem_euclid(r) as usize)
            })
            .collect::<TractResult<Vec<usize>>>()?;
        axes.sort_unstable();
        axes.dedup();
        Ok(axes)
    }

    /// The same reduction as tract's, for its shape rules.
    fn as_tract(&self, axes: Vec<usize>) -> Reduce {
        let reducer = match self.kind {
            Kind::LogSumExp => Reducer::LogSumExp,
            Kind::Max => Reducer::Max,
            Kind::Min => Reducer::Min,
        };
        Reduce::new(Some(axes.into_iter().map(|a| a as i64).collect()), self.keep_dims, reducer)
    }

    fn op_name(&self) -> &'static str {
        match self.kind {
            Kind::LogSumExp => "ReduceLogSumExp",
            Kind::Max => "ReduceMax",
            Kind::Min => "ReduceMin",
        }
    }

    /// tract's max or min (dims kept), with the answer made the infinity
    /// the reduction starts from where no element of the slice is finite or
    /// beyond it (all of them that infinity, or none at all).
    fn wire_extremum(&self, prefix: &str, model: &mut TypedModel, x: OutletId, axes: &[usize]) -> TractResult<OutletId> {
        let fact = model.outlet_fact(x)?.clone();
        let rank = fact.rank();
        let start = if self.kind == Kind::Max { f64::NEG_INFINITY } else { f64::INFINITY };
        let start = tensor0(start).cast_to_dt(fact.datum_type)?.into_owned().broadcast_into_rank(rank)?;
        let keep = |r: Reducer| Reduce::new(Some(axes.iter().map(|&a| a as i64).collect()), true, r);
        let reducer = if self.kind == Kind::Max { Reducer::Max } else { Reducer::Min };
        let y = keep(reducer).wire(&format!("{prefix}.reduce"), model, &[x])?[0];
        let start = model.add_const(format!("{prefix}.start"), start)?;
        let at_start = model.wire_node(format!("{prefix}.at_start"), TypedBinOp(logic::comp_eq(), None), &[x, start])?[0];
        let other = model.wire_node(format!("{prefix}.other"), logic::not(), &[at_start])?[0];
        let other = model.wire_node(format!("{prefix}.other_u8"), cast(DatumType::U8), &[other])?[0];
        // u8 max over the slice: 1 if any element is not the infinity; an
        // empty slice starts (and stays) at 0.
        let any = keep(Reducer::Max).wire(&format!("{prefix}.any"), model, &[other])?[0];
        let any = model.wire_node(format!("{prefix}.any_bool"), cast(DatumType::Bool), &[any])?[0];
        Ok(model.wire_node(format!("{prefix}.select"), Iff, &[any, y, start])?[0])
    }
}

impl Expansion for ReduceLogSumExp {
    fn name(&self) -> StaticName {
        self.op_name().into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(&'s self, s: &mut Solver<'r>, inputs: &'p [TensorProxy], outputs: &'p [TensorProxy]) -> InferenceResult {
        check_input_arity(inputs, 1 + usize::from(self.axes_input))?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
        let shape_rule = move |s: &mut Solver<'r>, shape: TVec<TDim>, axes: Vec<usize>| {
            if axes.is_empty() {
                return s.equals(&outputs[0].shape, shape);
            }
            s.equals(&outputs[0].shape, self.as_tract(axes).output_shape(&shape))
        };
        if self.axes_input {
            s.given_2(&inputs[0].shape, &inputs[1].value, move |s, shape, axes| {
                let axes = self.axes(shape.len(), Some(&axes))?;
                shape_rule(s, shape, axes)
            })
        } else {
            s.given(&inputs[0].shape, move |s, shape| {
                let axes = self.axes(shape.len(), None)?;
                shape_rule(s, shape, axes)
            })
        }
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let x = inputs[0];
        let fact = model.outlet_fact(x)?.clone();
        let from_input = if self.axes_input {
            Some(
                model
                    .outlet_fact(inputs[1])?
                    .konst
                    .clone()
                    .with_context(|| format!("{}: the axes input must be a constant", self.op_name()))?,
            )
        } else {
            None
        };
        let axes = self.axes(fact.rank(), from_input.as_deref())?;
        if axes.is_empty() {
            return Ok(tvec!(x));
        }
        if self.kind != Kind::LogSumExp {
            if !matches!(fact.datum_type, DatumType::F16 | DatumType::F32 | DatumType::F64) {
                return self.as_tract(axes).wire(prefix, model, &[x]);
            }
            let mut wire = self.wire_extremum(prefix, model, x, &axes)?;
            if !self.keep_dims {
                for &axis in axes.iter().rev() {
                    wire = model.wire_node(format!("{prefix}.rm{axis}"), AxisOp::Rm(axis), &[wire])?[0];
                }
            }
            return Ok(tvec!(wire));
        }
        let (hi, lo) = match fact.datum_type {
            DatumType::F32 => (tensor0(f32::MAX), tensor0(f32::MIN)),
            DatumType::F64 => (tensor0(f64::MAX), tensor0(f64::MIN)),
            _ => return self.as_tract(axes).wire(prefix, model, &[x]),
        };
        let keep = |r: Reducer| Reduce::new(Some(axes.iter().map(|&a| a as i64).collect()), true, r);
        let rank = fact.rank();
        let max = keep(Reducer::Max).wire(&format!("{prefix}.max"), model, &[x])?[0];
        let hi = model.add_const(format!("{prefix}.hi"), hi.broadcast_into_rank(rank)?)?;
        let lo = model.add_const(format!("{prefix}.lo"), lo.broadcast_into_rank(rank)?)?;
        let max = model.wire_node(format!("{prefix}.clamp_hi"), math::min(), &[max, hi])?[0];
        let max = model.wire_node(format!("{prefix}.clamp_lo"), math::max(), &[max, lo])?[0];
        let shifted = model.wire_node(format!("{prefix}.shift"), math::sub(), &[x, max])?[0];
        let exp = model.wire_node(format!("{prefix}.exp"), math::exp(), &[shifted])?[0];
        let sum = keep(Reducer::Sum).wire(&format!("{prefix}.sum"), model, &[exp])?[0];
        let ln = model.wire_node(format!("{prefix}.ln"), math::ln(), &[sum])?[0];
        let mut wire = model.wire_node(format!("{prefix}.unshift"), math::add(), &[ln, max])?[0];
        if !self.keep_dims {
            for &axis in axes.iter().rev() {
                wire = model.wire_node(format!("{prefix}.rm{axis}"), AxisOp::Rm(axis), &[wire])?[0];
            }
        }
        Ok(tvec!(wire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(op: ReduceLogSumExp, x: Tensor) -> TractResult<Tensor> {
        let mut model = InferenceModel::default();
        let source = model.add_source("x", x.datum_type().fact(x.shape()).into())?;
        let out = model.wire_node("r", expand(op), &[source])?;
        model.select_output_outlets(&out)?;
        let plan = model.into_typed()?.into_decluttered()?.into_runnable()?;
        Ok(plan.run(tvec!(x.into_tvalue()))?.remove(0).into_tensor())
    }

    fn op(axes: Option<Vec<i64>>, keep_dims: bool) -> ReduceLogSumExp {
        ReduceLogSumExp { kind: Kind::LogSumExp, axes_attr: axes, axes_input: false, keep_dims, noop_with_empty_axes: false }
    }

    fn extremum(kind: Kind, axes: Vec<i64>, keep_dims: bool) -> ReduceLogSumExp {
        ReduceLogSumExp { kind, ..op(Some(axes), keep_dims) }
    }

    /// A row of -inf has maximum -inf (tract gave -FLT_MAX), and an empty
    /// slice -inf; ordinary rows and the largest finite value are kept.
    #[test]
    fn max_and_min_of_infinities_and_empty_slices_are_infinite() {
        let inf = f32::INFINITY;
        let x = tensor2(&[[-inf, -inf], [-inf, f32::MIN], [1.0, -2.0]]);
        assert_eq!(run(extremum(Kind::Max, vec![1], false), x.clone()).unwrap(), tensor1(&[-inf, f32::MIN, 1.0]));
        assert_eq!(run(extremum(Kind::Min, vec![1], true), x).unwrap(), tensor2(&[[-inf], [-inf], [-2.0]]));
        let y = tensor2(&[[inf, inf], [inf, 3.0]]);
        assert_eq!(run(extremum(Kind::Min, vec![1], false), y).unwrap(), tensor1(&[inf, 3.0]));
        let empty = Tensor::zero::<f64>(&[2, 0]).unwrap();
        assert_eq!(run(extremum(Kind::Max, vec![1], false), empty.clone()).unwrap(), tensor1(&[f64::NEG_INFINITY; 2]));
        assert_eq!(run(extremum(Kind::Min, vec![1], false), empty).unwrap(), tensor1(&[f64::INFINITY; 2]));
        // Integers keep tract's reduction.
        assert_eq!(run(extremum(Kind::Max, vec![0], false), tensor1(&[3i64, 7, 5])).unwrap(), tensor0(7i64));
    }

    #[test]
    fn large_negative_inputs_do_not_underflow() {
        // ln(e^-1000 + e^-1001 + e^-1002) = -1000 + ln(1 + e^-1 + e^-2).
        let want = -1000.0 + (1.0 + (-1.0f64).exp() + (-2.0f64).exp()).ln();
        let out = run(op(Some(vec![1]), false), tensor2(&[[-1000f32, -1001.0, -1002.0], [0.0, 0.0, 0.0]])).unwrap();
        assert_eq!(out.shape(), &[2]);
        let v = out.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
        assert!((v[0] as f64 - want).abs() < 1e-3, "{v:?}");
        assert!((v[1] as f64 - 3f64.ln()).abs() < 1e-6, "{v:?}");
    }

    #[test]
    fn large_positive_inputs_do_not_overflow_in_double() {
        let out = run(op(None, true), tensor2(&[[1000f64, 1000.0]])).unwrap();
        assert_eq!(out.shape(), &[1, 1]);
        let v = out.try_as_plain_ram().unwrap().as_slice::<f64>().unwrap()[0];
        assert!((v - (1000.0 + 2f64.ln())).abs() < 1e-9, "{v}");
    }

    #[test]
    fn infinite_slices_stay_infinite() {
        let out = run(op(Some(vec![-1]), false), tensor2(&[[f32::NEG_INFINITY, f32::NEG_INFINITY], [f32::INFINITY, 0.0]])).unwrap();
        assert_eq!(out, tensor1(&[f32::NEG_INFINITY, f32::INFINITY]));
    }

    #[test]
    fn first_axis_and_bad_axes() {
        let out = run(op(Some(vec![0]), false), tensor2(&[[0f32, 1.0], [0.0, 1.0]])).unwrap();
        let v = out.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
        assert!((v[0] as f64 - 2f64.ln()).abs() < 1e-6 && (v[1] as f64 - 1.0 - 2f64.ln()).abs() < 1e-6, "{v:?}");
        assert!(run(op(Some(vec![2]), false), tensor2(&[[0f32]])).is_err());
    }
}
