//! `Scaler`: `(x - offset) * scale`, per feature (or one pair for all),
//! always producing floats.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::{Kernel, OutShape, OutType, floats};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scaler {
    offset: Vec<f64>,
    scale: Vec<f64>,
}

pub(crate) fn build(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    super::op(Scaler::parse(Some(ctx), node)?)
}

/// A per-feature value: one for all features, or one each.
pub(crate) fn per_feature<T: Copy>(v: &[T], feature: usize) -> T {
    if v.len() == 1 { v[0] } else { v[feature] }
}

/// Checks that a per-feature attribute fits `features`.
pub(crate) fn fits(name: &str, attr: &str, len: usize, features: Option<usize>) -> TractResult<()> {
    if let Some(f) = features {
        ensure!(len == 1 || len == f, "{name}: {attr} has {len} values for {f} features");
    }
    Ok(())
}

impl Scaler {
    fn parse(ctx: Option<&ParsingContext>, node: &NodeProto) -> TractResult<Scaler> {
        let offset = floats(ctx, node, "offset")?.unwrap_or_else(|| vec![0.0]);
        let scale = floats(ctx, node, "scale")?.unwrap_or_else(|| vec![1.0]);
        ensure!(!offset.is_empty() && !scale.is_empty(), "Scaler {}: offset and scale must not be empty", node.name);
        Ok(Scaler { offset, scale })
    }
}

impl Kernel for Scaler {
    fn name(&self) -> &'static str {
        "Scaler"
    }

    fn outputs(&self) -> TVec<(OutType, OutShape)> {
        tvec![(OutType::Fixed(DatumType::F32), OutShape::Input)]
    }

    fn check_input(&self, dt: DatumType, features: Option<usize>) -> TractResult<()> {
        super::check_numeric(self.name(), dt, None, 0)?;
        fits(self.name(), "offset", self.offset.len(), features)?;
        fits(self.name(), "scale", self.scale.len(), features)
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        let cols = input.shape().last().copied().unwrap_or(1).max(1);
        self.check_input(input.datum_type(), Some(cols))?;
        let x = input.cast_to::<f64>()?;
        let x = x.try_as_plain_ram()?.as_slice::<f64>()?;
        let y: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| ((v - per_feature(&self.offset, i % cols)) * per_feature(&self.scale, i % cols)) as f32)
            .collect();
        Ok(tvec!(tensor1(&y).into_shape(input.shape())?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    #[test]
    fn scales_per_feature_and_broadcasts_one_value() {
        let s = Scaler::parse(None, &node("Scaler", vec![a_floats("offset", &[1.0, 2.0]), a_floats("scale", &[2.0])])).unwrap();
        let y = s.eval(&tensor2(&[[1.0f32, 4.0], [3.0, 0.0]])).unwrap();
        assert_eq!(y[0], tensor2(&[[0.0f32, 4.0], [4.0, -4.0]]));
        let ints = s.eval(&tensor2(&[[2i64, 2]])).unwrap();
        assert_eq!(ints[0], tensor2(&[[2.0f32, 0.0]]));
    }

    #[test]
    fn mismatched_lengths_are_refused() {
        let s = Scaler::parse(None, &node("Scaler", vec![a_floats("offset", &[1.0, 2.0])])).unwrap();
        assert!(s.eval(&tensor2(&[[1.0f32, 2.0, 3.0]])).is_err());
        assert!(s.check_input(DatumType::String, Some(2)).is_err());
    }
}
