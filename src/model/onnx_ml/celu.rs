//! `Celu` (a standard ONNX operator, not `ai.onnx.ml`):
//! `max(0, x) + min(0, alpha * (exp(x / alpha) - 1))`. tract drops the
//! factor `alpha` in float16 (the node suite's `test_celu_float16` gets
//! `exp(x / alpha) - 1`), so warden computes it for every float type, half
//! precision in f32.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::f16;
use tract_onnx::tract_hir::internal::*;

use super::{Kernel, OutShape, OutType};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Celu {
    alpha: f32,
}

pub(crate) fn build(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    super::op(Celu::parse(node)?)
}

impl Celu {
    fn parse(node: &NodeProto) -> TractResult<Celu> {
        let alpha = node.get_attr_opt::<f32>("alpha")?.unwrap_or(1.0);
        ensure!(alpha != 0.0 && alpha.is_finite(), "Celu (node '{}'): alpha must be finite and non-zero", node.name);
        Ok(Celu { alpha })
    }

    fn celu(&self, x: f64) -> f64 {
        let a = self.alpha as f64;
        x.max(0.0) + (a * ((x / a).exp() - 1.0)).min(0.0)
    }
}

impl Kernel for Celu {
    fn name(&self) -> &'static str {
        "Celu"
    }

    fn outputs(&self) -> TVec<(OutType, OutShape)> {
        tvec![(OutType::Input, OutShape::Input)]
    }

    fn check_input(&self, dt: DatumType, _features: Option<usize>) -> TractResult<()> {
        ensure!(matches!(dt, DatumType::F16 | DatumType::F32 | DatumType::F64), "Celu takes float, float16 or double, not {dt:?}");
        Ok(())
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        self.check_input(input.datum_type(), None)?;
        let mut out = input.clone();
        match input.datum_type() {
            DatumType::F64 => out.try_as_plain_ram_mut()?.as_slice_mut::<f64>()?.iter_mut().for_each(|v| *v = self.celu(*v)),
            // f32 arithmetic for f32 (as ONNX Runtime), widened for the exp.
            DatumType::F32 => out.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?.iter_mut().for_each(|v| *v = self.celu(*v as f64) as f32),
            _ => out
                .try_as_plain_ram_mut()?
                .as_slice_mut::<f16>()?
                .iter_mut()
                .for_each(|v| *v = f16::from_f32(self.celu(v.to_f32() as f64) as f32)),
        }
        Ok(tvec!(out))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    #[test]
    fn alpha_scales_the_negative_side_in_every_float_type() {
        let c = Celu::parse(&node("Celu", vec![a_float("alpha", 2.0)])).unwrap();
        // -1 with alpha 2: 2 * (exp(-0.5) - 1) = -0.786938680574733
        let want = [-0.786_938_7f32, 0.0, 3.0];
        let got = c.eval(&tensor1(&[-1.0f32, 0.0, 3.0])).unwrap().remove(0);
        let got32 = got.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
        assert!(got32.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-6), "{got32:?}");
        let half = tensor1(&[-1.0f32, 0.0, 3.0]).cast_to::<f16>().unwrap().into_owned();
        let got = c.eval(&half).unwrap().remove(0).cast_to::<f32>().unwrap().into_owned();
        let got = got.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
        assert!((got[0] - want[0]).abs() < 1e-3 && got[1] == 0.0 && got[2] == 3.0, "{got:?}");
        assert!(c.eval(&tensor1(&[1i64])).is_err());
        assert!(Celu::parse(&node("Celu", vec![a_float("alpha", 0.0)])).is_err());
    }
}
