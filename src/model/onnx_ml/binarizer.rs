//! `Binarizer`: 1 where `x > threshold`, else 0 (NaN gives 0), in the
//! input's type.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::{Kernel, OutShape, OutType};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Binarizer {
    threshold: f64,
}

pub(crate) fn build(_ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    super::op(Binarizer::parse(node)?)
}

impl Binarizer {
    fn parse(node: &NodeProto) -> TractResult<Binarizer> {
        Ok(Binarizer { threshold: node.get_attr_opt::<f32>("threshold")?.unwrap_or(0.0) as f64 })
    }
}

impl Kernel for Binarizer {
    fn name(&self) -> &'static str {
        "Binarizer"
    }

    fn outputs(&self) -> TVec<(OutType, OutShape)> {
        tvec![(OutType::Input, OutShape::Input)]
    }

    fn check_input(&self, dt: DatumType, _features: Option<usize>) -> TractResult<()> {
        super::check_numeric(self.name(), dt, None, 0)
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        self.check_input(input.datum_type(), None)?;
        let x = input.cast_to::<f64>()?;
        let y: Vec<f64> = x.try_as_plain_ram()?.as_slice::<f64>()?.iter().map(|&v| if v > self.threshold { 1.0 } else { 0.0 }).collect();
        Ok(tvec!(tensor1(&y).into_shape(input.shape())?.cast_to_dt(input.datum_type())?.into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    #[test]
    fn strictly_above_the_threshold_is_one() {
        let b = Binarizer::parse(&node("Binarizer", vec![a_float("threshold", 0.5)])).unwrap();
        assert_eq!(b.eval(&tensor2(&[[0.5f32, 0.6, f32::NAN]])).unwrap()[0], tensor2(&[[0.0f32, 1.0, 0.0]]));
        assert_eq!(b.eval(&tensor1(&[1i64, 0])).unwrap()[0], tensor1(&[1i64, 0]));
    }
}
