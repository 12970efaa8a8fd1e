//! `BitShift` (a standard ONNX operator, not `ai.onnx.ml`), as its
//! definition says for every shift amount: a shift by a negative amount or
//! by at least the type's width gives 0 to the left, and to the right the
//! sign (0, or -1 for a negative signed value); a left shift wraps. tract
//! shifts with Rust's `<<`, which panics on such amounts in a debug build
//! and in a release build shifts by the amount modulo the width: a silent
//! wrong answer decided by the request's data.
//!
//! It takes two inputs (broadcast against each other), so it is its own op
//! rather than a single-input [`super::Kernel`].

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::tract_ndarray::{ArrayD, IxDyn, Zip};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct BitShift {
    left: bool,
}

pub(crate) fn build(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let direction: String = node.get_attr("direction")?;
    let left = match direction.as_str() {
        "LEFT" => true,
        "RIGHT" => false,
        other => bail!("BitShift (node '{}'): direction must be LEFT or RIGHT, not {other:?}", node.name),
    };
    Ok((expand(BitShift { left }), vec![]))
}

macro_rules! shift_fn {
    ($name:ident, $t:ty, $signed:expr) => {
        fn $name(x: $t, s: $t, left: bool) -> $t {
            let bits = <$t>::BITS as i128;
            let s = s as i128;
            if (0..bits).contains(&s) {
                if left { x.wrapping_shl(s as u32) } else { x >> s }
            } else if left || !$signed || x >= (0 as $t) {
                0
            } else {
                // Only reached for signed types, where !0 is -1.
                !(0 as $t)
            }
        }
    };
}

shift_fn!(shift_u8, u8, false);
shift_fn!(shift_u16, u16, false);
shift_fn!(shift_u32, u32, false);
shift_fn!(shift_u64, u64, false);
shift_fn!(shift_i8, i8, true);
shift_fn!(shift_i16, i16, true);
shift_fn!(shift_i32, i32, true);
shift_fn!(shift_i64, i64, true);

fn apply<T: Datum + Copy>(x: &Tensor, y: &Tensor, f: impl Fn(T, T) -> T) -> TractResult<Tensor> {
    let shape = tract_onnx::tract_core::broadcast::multi_broadcast(&[x.shape(), y.shape()])?;
    let xv = x.to_plain_array_view::<T>()?;
    let yv = y.to_plain_array_view::<T>()?;
    let xb = xv.broadcast(IxDyn(&shape)).context("BitShift: inputs do not broadcast")?;
    let yb = yv.broadcast(IxDyn(&shape)).context("BitShift: inputs do not broadcast")?;
    let out: ArrayD<T> = Zip::from(&xb).and(&yb).map_collect(|&a, &b| f(a, b));
    Ok(out.into_tensor())
}

impl BitShift {
    fn eval_t(&self, x: &Tensor, y: &Tensor) -> TractResult<Tensor> {
        ensure!(x.datum_type() == y.datum_type(), "BitShift: inputs of types {:?} and {:?}", x.datum_type(), y.datum_type());
        let l = self.left;
        match x.datum_type() {
            DatumType::U8 => apply(x, y, |a, b| shift_u8(a, b, l)),
            DatumType::U16 => apply(x, y, |a, b| shift_u16(a, b, l)),
            DatumType::U32 => apply(x, y, |a, b| shift_u32(a, b, l)),
            DatumType::U64 => apply(x, y, |a, b| shift_u64(a, b, l)),
            DatumType::I8 => apply(x, y, |a, b| shift_i8(a, b, l)),
            DatumType::I16 => apply(x, y, |a, b| shift_i16(a, b, l)),
            DatumType::I32 => apply(x, y, |a, b| shift_i32(a, b, l)),
            DatumType::I64 => apply(x, y, |a, b| shift_i64(a, b, l)),
            dt => bail!("BitShift takes integer inputs, not {dt:?}"),
        }
    }
}

impl Expansion for BitShift {
    fn name(&self) -> StaticName {
        "BitShift".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(&'s self, s: &mut Solver<'r>, inputs: &'p [TensorProxy], outputs: &'p [TensorProxy]) -> InferenceResult {
        check_input_arity(inputs, 2)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(&inputs[1].datum_type, &inputs[0].datum_type)?;
        s.given_2(&inputs[0].shape, &inputs[1].shape, move |s, x, y| {
            let shape = tract_onnx::tract_core::broadcast::multi_broadcast(&[x, y])?;
            s.equals(&outputs[0].shape, shape)
        })
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

impl Op for BitShift {
    fn name(&self) -> StaticName {
        "BitShift".into()
    }

    op_as_typed_op!();
}

impl EvalOp for BitShift {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, y) = args_2!(inputs);
        Ok(tvec!(self.eval_t(&x, &y)?.into_tvalue()))
    }
}

impl TypedOp for BitShift {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let shape = tract_onnx::tract_core::broadcast::multi_broadcast(&[inputs[0].shape.to_tvec(), inputs[1].shape.to_tvec()])?;
        Ok(tvec!(inputs[0].datum_type.fact(shape)))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shift_amount_is_defined() {
        let (l, r) = (BitShift { left: true }, BitShift { left: false });
        let x = tensor1(&[-8i8, 4, -1, 64]);
        // Negative and too-wide shifts: 0 to the left, the sign to the right.
        assert_eq!(l.eval_t(&x, &tensor1(&[-1i8, 8, 127, 1])).unwrap(), tensor1(&[0i8, 0, 0, -128]));
        assert_eq!(r.eval_t(&x, &tensor1(&[-1i8, 8, 127, 1])).unwrap(), tensor1(&[-1i8, 0, -1, 32]));
        // Arithmetic right shift of negatives, logical of unsigned.
        assert_eq!(r.eval_t(&tensor1(&[-128i8]), &tensor0(1i8)).unwrap(), tensor1(&[-64i8]));
        assert_eq!(r.eval_t(&tensor1(&[200u8, 1]), &tensor1(&[1u8, 9])).unwrap(), tensor1(&[100u8, 0]));
        // Broadcast, and the full u64 range.
        assert_eq!(
            l.eval_t(&tensor2(&[[1u64], [u64::MAX]]), &tensor1(&[0u64, 63, 64])).unwrap(),
            tensor2(&[[1u64, 1 << 63, 0], [u64::MAX, 1 << 63, 0]])
        );
        assert!(l.eval_t(&tensor1(&[1.0f32]), &tensor1(&[1.0f32])).is_err());
    }
}
