//! `Normalizer`: each row (the last axis) divided by its norm, `MAX`
//! (largest absolute value, as scikit-learn's `norm="max"`), `L1` or `L2`,
//! computed in float32 as the output is. As tract's expansion did: a MAX or
//! L1 norm below 1e-12 counts as 1e-12, and an L2 sum of squares below
//! 1e-12 as 1e-12 (a norm of 1e-6), so an all-zero row stays zero.
//! Unlike it, a NaN anywhere in a row makes the whole row NaN, for every
//! norm (tract's clamp turned a NaN norm into 1e-12; ONNX Runtime's L1 and
//! L2 give NaN rows too).
//!
//! tract's own `Normalizer` expands into five or six generic operators
//! (abs or square, a reduction, a clamp, a reciprocal, a broadcast
//! product), each allocating its result; skl2onnx ends every linear
//! classifier's probabilities with one, so it runs on many requests.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::{Kernel, OutShape, OutType};

/// MAX and L1 norms, and L2 sums of squares, below this are replaced by it.
const FLOOR: f32 = 1e-12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Norm {
    Max,
    L1,
    L2,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Normalizer {
    norm: Norm,
}

pub(crate) fn build(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    super::op(Normalizer::parse(node)?)
}

impl Normalizer {
    fn parse(node: &NodeProto) -> TractResult<Normalizer> {
        let name: String = node.get_attr_opt("norm")?.unwrap_or_else(|| "MAX".to_string());
        let norm = match name.to_ascii_uppercase().as_str() {
            "MAX" => Norm::Max,
            "L1" => Norm::L1,
            "L2" => Norm::L2,
            _ => bail!("Normalizer: norm must be MAX, L1 or L2, not {:?}", name.chars().take(32).collect::<String>()),
        };
        Ok(Normalizer { norm })
    }

    fn norm_of(&self, row: &[f32]) -> f32 {
        // `<` is false for NaN, so a NaN norm is kept (where `f32::max`
        // would drop it) and the division spreads it over the row.
        let floor = |v: f32| if v < FLOOR { FLOOR } else { v };
        match self.norm {
            // Once NaN, `a > m` stays false: the NaN sticks.
            Norm::Max => floor(row.iter().map(|v| v.abs()).fold(0f32, |m, a| if a > m || a.is_nan() { a } else { m })),
            Norm::L1 => floor(row.iter().map(|v| v.abs()).sum()),
            Norm::L2 => floor(row.iter().map(|v| v * v).sum::<f32>()).sqrt(),
        }
    }
}

impl Kernel for Normalizer {
    fn name(&self) -> &'static str {
        "Normalizer"
    }

    fn outputs(&self) -> TVec<(OutType, OutShape)> {
        tvec![(OutType::Fixed(DatumType::F32), OutShape::Input)]
    }

    fn check_input(&self, dt: DatumType, _features: Option<usize>) -> TractResult<()> {
        super::check_numeric(self.name(), dt, None, 0)
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        self.check_input(input.datum_type(), None)?;
        ensure!(input.rank() >= 1, "Normalizer expects an input of rank 1 or more");
        let x = input.cast_to::<f32>()?;
        let x = x.try_as_plain_ram()?.as_slice::<f32>()?;
        let width = input.shape()[input.rank() - 1];
        let y = super::filled::<f32>(input.shape(), |y| {
            if width > 0 {
                for (row, out) in x.chunks_exact(width).zip(y.chunks_exact_mut(width)) {
                    let n = self.norm_of(row);
                    for (o, v) in out.iter_mut().zip(row) {
                        *o = v / n;
                    }
                }
            }
            Ok(())
        })?;
        Ok(tvec!(y))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn normalizer(norm: &str) -> Normalizer {
        Normalizer::parse(&node("Normalizer", vec![a_string("norm", norm)])).unwrap()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec()
    }

    #[test]
    fn each_row_is_divided_by_its_norm() {
        let x = tensor2(&[[3.0f32, -4.0], [0.0, 2.0]]);
        assert_eq!(values(&normalizer("MAX").eval(&x).unwrap()[0]), [0.75, -1.0, 0.0, 1.0]);
        assert_eq!(values(&normalizer("l1").eval(&x).unwrap()[0]), [3.0 / 7.0, -4.0 / 7.0, 0.0, 1.0]);
        assert_eq!(values(&normalizer("L2").eval(&x).unwrap()[0]), [0.6, -0.8, 0.0, 1.0]);
    }

    #[test]
    fn integer_and_double_inputs_give_float_and_zero_rows_stay_zero() {
        let y = normalizer("L1").eval(&tensor2(&[[0i64, 0], [1, 3]])).unwrap();
        assert_eq!(y[0].datum_type(), DatumType::F32);
        assert_eq!(values(&y[0]), [0.0, 0.0, 0.25, 0.75]);
        let y = normalizer("L2").eval(&tensor1(&[0.0f64, 0.0])).unwrap();
        assert_eq!(values(&y[0]), [0.0, 0.0]);
    }

    #[test]
    fn a_nan_spreads_over_its_row_only_for_every_norm() {
        for norm in ["MAX", "L1", "L2"] {
            for x in [[f32::NAN, 2.0], [2.0, f32::NAN]] {
                let y = normalizer(norm).eval(&tensor2(&[x, [3.0, 4.0]])).unwrap();
                let v = values(&y[0]);
                assert!(v[0].is_nan() && v[1].is_nan(), "{norm} {x:?}: {v:?}");
                assert!(v[2..].iter().all(|f| f.is_finite() && *f > 0.0), "{norm}: {v:?}");
            }
        }
    }

    #[test]
    fn tiny_norms_are_floored_as_before() {
        // L2 floors the sum of squares (norm 1e-6), MAX and L1 the norm.
        let close = |got: Vec<f32>, want: [f32; 2]| got.iter().zip(want).all(|(g, w)| (g - w).abs() <= 1e-6);
        assert!(close(values(&normalizer("L2").eval(&tensor1(&[3e-7f32, 4e-7])).unwrap()[0]), [0.3, 0.4]));
        assert!(close(values(&normalizer("L1").eval(&tensor1(&[3e-13f32, 4e-13])).unwrap()[0]), [0.3, 0.4]));
        assert!(close(values(&normalizer("MAX").eval(&tensor1(&[3e-13f32, -4e-13])).unwrap()[0]), [0.3, -0.4]));
    }

    #[test]
    fn an_empty_last_axis_or_batch_is_an_empty_output() {
        let y = normalizer("MAX").eval(&Tensor::zero::<f32>(&[3, 0]).unwrap()).unwrap();
        assert_eq!(y[0].shape(), [3, 0]);
        let y = normalizer("MAX").eval(&Tensor::zero::<f32>(&[0, 4]).unwrap()).unwrap();
        assert_eq!(y[0].shape(), [0, 4]);
    }

    #[test]
    fn an_unknown_norm_or_input_type_is_refused() {
        assert!(Normalizer::parse(&node("Normalizer", vec![a_string("norm", "L3")])).is_err());
        assert!(normalizer("L1").eval(&tensor1(&[1u8])).is_err());
        assert!(normalizer("L1").eval(&tensor0(1.0f32)).is_err());
    }

    /// The same numbers as tract's expansion, which warden ran before, on
    /// rows of every sign and scale, tiny, zero and infinite rows included
    /// (within float32 rounding: tract multiplies by a reciprocal where this
    /// divides). NaN rows differ on purpose (see the module comment).
    #[test]
    fn agrees_with_the_expansion_it_replaces() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 20_001) as f32 / 1000.0 - 10.0
        };
        let mut rows: Vec<f32> = (0..8 * 5).map(|_| next()).collect();
        rows.extend([3e-7, 4e-7, 0.0, -2e-7, 1e-7]);
        rows.extend([3e-13, -4e-13, 0.0, 1e-13, 0.0]);
        rows.extend([0.0; 5]);
        rows.extend([f32::INFINITY, 1.0, -2.0, 0.0, 3.0]);
        rows.extend([1e30, -1e30, 1e-30, 5.0, -0.0]);
        let x = tract_ndarray::Array2::from_shape_vec((13, 5), rows).unwrap().into_tensor();
        for norm in ["MAX", "L1", "L2"] {
            let ours = values(&normalizer(norm).eval(&x).unwrap()[0]);
            let theirs = values(&with_tract_normalizer(norm, &x));
            for (a, b) in ours.iter().zip(&theirs) {
                let same = (a.is_nan() && b.is_nan()) || (a - b).abs() <= 2.0 * f32::EPSILON * b.abs().max(1e-6);
                assert!(same, "{norm}: {a} vs {b}");
            }
        }
    }

    /// Runs tract's own `Normalizer` (its registry without warden's) on `x`.
    fn with_tract_normalizer(norm: &str, x: &Tensor) -> Tensor {
        use tract_onnx::pb::{GraphProto, ModelProto, OperatorSetIdProto, TypeProto, ValueInfoProto, type_proto};
        use tract_onnx::prelude::*;
        let mut n = node("Normalizer", vec![a_string("norm", norm)]);
        n.domain = "ai.onnx.ml".into();
        n.input = vec!["x".into()];
        n.output = vec!["y".into()];
        let float = TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor { elem_type: 1, shape: None })),
            ..Default::default()
        };
        let value = |name: &str| ValueInfoProto { name: name.into(), r#type: Some(float.clone()), ..Default::default() };
        let graph = GraphProto { node: vec![n], input: vec![value("x")], output: vec![value("y")], ..Default::default() };
        let opset = |domain: &str, version| OperatorSetIdProto { domain: domain.into(), version };
        let proto = ModelProto {
            ir_version: 8,
            opset_import: vec![opset("", 17), opset("ai.onnx.ml", 3)],
            graph: Some(graph),
            ..Default::default()
        };
        let model = tract_onnx::onnx().model_for_proto_model(&proto).unwrap();
        let model = model.with_input_fact(0, f32::fact(x.shape()).into()).unwrap();
        let plan = model.into_optimized().unwrap().into_runnable().unwrap();
        plan.run(tvec!(x.clone().into_tvalue())).unwrap().remove(0).into_tensor()
    }
}
