//! `ArrayFeatureExtractor`: the last axis of X gathered at the indices in Y
//! (usually a constant initializer). The output's last axis has one entry
//! per index, whatever Y's shape: a scalar index keeps the axis (`[N, 1]`),
//! which skl2onnx's SVC graphs rely on and tract's own version (a plain
//! Gather, which drops the axis) does not give. A 1-D X is one row, as in
//! ONNX Runtime: `[F]` gives `[1, len(Y)]`.
//!
//! It takes two inputs, so it is its own op rather than a single-input
//! [`super::Kernel`].

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ArrayFeatureExtractor;

pub(crate) fn build(_ctx: &ParsingContext, _node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((expand(ArrayFeatureExtractor), vec![]))
}

/// The output shape for an X of shape `x` and `k` indices.
fn out_shape<D: Clone + From<usize>>(x: &[D], k: D) -> TVec<D> {
    if x.len() <= 1 { tvec!(D::from(1), k) } else { x[..x.len() - 1].iter().cloned().chain(std::iter::once(k)).collect() }
}

/// The indices as `usize`, each checked against the last axis's length.
fn indices(y: &Tensor, len: usize) -> TractResult<Vec<usize>> {
    ensure!(y.datum_type().is_integer(), "ArrayFeatureExtractor indices must be integers, not {:?}", y.datum_type());
    let y = y.cast_to::<i64>()?;
    y.try_as_plain_ram()?
        .as_slice::<i64>()?
        .iter()
        .map(|&i| {
            ensure!(i >= 0 && (i as u64) < len as u64, "ArrayFeatureExtractor index {i} is out of range for a last axis of length {len}");
            Ok(i as usize)
        })
        .collect()
}

fn gather<T: Datum + Clone>(x: &Tensor, idx: &[usize], shape: &[usize]) -> TractResult<Tensor> {
    let xs = x.try_as_plain_ram()?.as_slice::<T>()?;
    let width = x.shape().last().copied().unwrap_or(1);
    let rows = x.shape().iter().rev().skip(1).product::<usize>();
    let mut out = Vec::with_capacity(rows * idx.len());
    for r in 0..rows {
        out.extend(idx.iter().map(|&i| xs[r * width + i].clone()));
    }
    tensor1(&out).into_shape(shape)
}

impl ArrayFeatureExtractor {
    fn apply(x: &Tensor, y: &Tensor) -> TractResult<Tensor> {
        ensure!(x.rank() >= 1, "ArrayFeatureExtractor needs an input with at least one axis");
        let idx = indices(y, x.shape()[x.rank() - 1])?;
        let shape = out_shape(x.shape(), idx.len());
        super::check_output_size("ArrayFeatureExtractor", shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)))?;
        match x.datum_type() {
            DatumType::F32 => gather::<f32>(x, &idx, &shape),
            DatumType::F64 => gather::<f64>(x, &idx, &shape),
            DatumType::I64 => gather::<i64>(x, &idx, &shape),
            DatumType::I32 => gather::<i32>(x, &idx, &shape),
            DatumType::String => gather::<String>(x, &idx, &shape),
            dt => bail!("ArrayFeatureExtractor takes float, double, int64, int32 or string inputs, not {dt:?}"),
        }
    }
}

impl Expansion for ArrayFeatureExtractor {
    fn name(&self) -> StaticName {
        "ArrayFeatureExtractor".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(&'s self, s: &mut Solver<'r>, inputs: &'p [TensorProxy], outputs: &'p [TensorProxy]) -> InferenceResult {
        check_input_arity(inputs, 2)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.given_2(&inputs[0].shape, &inputs[1].shape, move |s, x, y| {
            let k: TDim = y.iter().product();
            s.equals(&outputs[0].shape, out_shape(&x, k))
        })
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl Op for ArrayFeatureExtractor {
    fn name(&self) -> StaticName {
        "ArrayFeatureExtractor".into()
    }

    op_as_typed_op!();
}

impl EvalOp for ArrayFeatureExtractor {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, y) = args_2!(inputs);
        Ok(tvec!(Self::apply(&x, &y)?.into_tvalue()))
    }
}

impl TypedOp for ArrayFeatureExtractor {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let (x, y) = (inputs[0], inputs[1]);
        ensure!(x.rank() >= 1, "ArrayFeatureExtractor needs an input with at least one axis");
        ensure!(y.datum_type.is_integer(), "ArrayFeatureExtractor indices must be integers, not {:?}", y.datum_type);
        // Constant indices (the usual case) are checked at load time.
        if let (Some(konst), Ok(len)) = (&y.konst, x.shape[x.rank() - 1].to_usize()) {
            indices(konst, len)?;
        }
        let k: TDim = y.shape.iter().product();
        Ok(tvec!(x.datum_type.fact(out_shape(&x.shape.to_tvec(), k))))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(x: Tensor, y: Tensor) -> TractResult<Tensor> {
        ArrayFeatureExtractor::apply(&x, &y)
    }

    #[test]
    fn a_scalar_index_keeps_the_last_axis() {
        let x = tensor2(&[[0f32, 1., 2.], [3., 4., 5.]]);
        assert_eq!(run(x.clone(), tensor0(1i64)).unwrap(), tensor2(&[[1f32], [4.]]));
        assert_eq!(run(x, tensor1(&[2i64])).unwrap(), tensor2(&[[2f32], [5.]]));
    }

    #[test]
    fn several_indices_in_their_order_whatever_their_shape() {
        let x = tensor2(&[[0f64, 1., 2.], [3., 4., 5.]]);
        assert_eq!(run(x.clone(), tensor1(&[2i64, 0])).unwrap(), tensor2(&[[2f64, 0.], [5., 3.]]));
        assert_eq!(run(x, tensor2(&[[2i64, 0]])).unwrap(), tensor2(&[[2f64, 0.], [5., 3.]]));
    }

    #[test]
    fn one_dimensional_input_is_one_row() {
        // ONNX Runtime: X [3], Y [2] -> [1, 2].
        assert_eq!(run(tensor1(&[7i64, 8, 9]), tensor1(&[2i64, 0])).unwrap(), tensor2(&[[9i64, 7]]));
        assert_eq!(run(tensor1(&[7i32, 8, 9]), tensor0(1i64)).unwrap(), tensor2(&[[8i32]]));
    }

    #[test]
    fn higher_rank_gathers_the_last_axis() {
        let x = tensor3(&[[[0f32, 1., 2.], [3., 4., 5.]], [[6., 7., 8.], [9., 10., 11.]]]);
        assert_eq!(run(x, tensor1(&[2i64])).unwrap(), tensor3(&[[[2f32], [5.]], [[8.], [11.]]]));
    }

    #[test]
    fn strings() {
        let x = tensor2(&[["a".to_string(), "b".to_string()], ["c".to_string(), "d".to_string()]]);
        assert_eq!(run(x, tensor1(&[1i64])).unwrap(), tensor2(&[["b".to_string()], ["d".to_string()]]));
    }

    #[test]
    fn out_of_range_indices_are_errors() {
        let x = tensor2(&[[0f32, 1., 2.]]);
        for bad in [3i64, -1] {
            let e = run(x.clone(), tensor0(bad)).unwrap_err().to_string();
            assert!(e.contains("out of range"), "{e}");
        }
        assert!(run(tensor1(&[true, false]), tensor0(0i64)).is_err(), "bool input");
        assert!(run(x, tensor0(0.5f32)).is_err(), "float indices");
    }

    #[test]
    fn typed_facts_follow_the_spec_and_check_constant_indices() {
        let x = f32::fact([5, 3]);
        let k = TypedFact::try_from(tensor0(1i64)).unwrap();
        let out = ArrayFeatureExtractor.output_facts(&[&x, &k]).unwrap();
        assert_eq!(out[0], f32::fact([5, 1]));
        let bad = TypedFact::try_from(tensor1(&[0i64, 3])).unwrap();
        assert!(ArrayFeatureExtractor.output_facts(&[&x, &bad]).is_err());
        let one_d = ArrayFeatureExtractor.output_facts(&[&f32::fact([3]), &k]).unwrap();
        assert_eq!(one_d[0], f32::fact([1, 1]));
    }
}
