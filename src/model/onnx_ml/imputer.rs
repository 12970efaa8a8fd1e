//! `Imputer`: replaces one value (NaN when `replaced_value_float` is NaN)
//! with a per-feature value, keeping the input's type.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::scaler::{fits, per_feature};
use super::{Kernel, OutShape, OutType, floats, ints};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Imputer {
    Floats { values: Vec<f64>, replaced: f64 },
    Ints { values: Vec<i64>, replaced: i64 },
}

pub(crate) fn build(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    super::op(Imputer::parse(Some(ctx), node)?)
}

impl Imputer {
    fn parse(ctx: Option<&ParsingContext>, node: &NodeProto) -> TractResult<Imputer> {
        match (floats(ctx, node, "imputed_value_floats")?, ints(node, "imputed_value_int64s")?) {
            (Some(values), None) if !values.is_empty() => {
                let replaced = node.get_attr_opt::<f32>("replaced_value_float")?.unwrap_or(0.0) as f64;
                Ok(Imputer::Floats { values, replaced })
            }
            (None, Some(values)) if !values.is_empty() => {
                Ok(Imputer::Ints { values, replaced: node.get_attr_opt("replaced_value_int64")?.unwrap_or(0) })
            }
            _ => bail!("Imputer {}: exactly one of imputed_value_floats and imputed_value_int64s must be set", node.name),
        }
    }

    fn len(&self) -> usize {
        match self {
            Imputer::Floats { values, .. } => values.len(),
            Imputer::Ints { values, .. } => values.len(),
        }
    }
}

impl Kernel for Imputer {
    fn name(&self) -> &'static str {
        "Imputer"
    }

    fn outputs(&self) -> TVec<(OutType, OutShape)> {
        tvec![(OutType::Input, OutShape::Input)]
    }

    fn check_input(&self, dt: DatumType, features: Option<usize>) -> TractResult<()> {
        match self {
            Imputer::Floats { .. } => {
                ensure!(matches!(dt, DatumType::F32 | DatumType::F64), "Imputer with float values takes float or double, not {dt:?}")
            }
            Imputer::Ints { .. } => ensure!(dt == DatumType::I64, "Imputer with int64 values takes int64, not {dt:?}"),
        }
        fits(self.name(), "imputed values", self.len(), features)
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        let cols = input.shape().last().copied().unwrap_or(1).max(1);
        self.check_input(input.datum_type(), Some(cols))?;
        let mut out = input.clone();
        match self {
            Imputer::Floats { values, replaced } => {
                let hit = |v: f64| if replaced.is_nan() { v.is_nan() } else { v == *replaced };
                if input.datum_type() == DatumType::F32 {
                    for (i, v) in out.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?.iter_mut().enumerate() {
                        if hit(*v as f64) {
                            *v = per_feature(values, i % cols) as f32;
                        }
                    }
                } else {
                    for (i, v) in out.try_as_plain_ram_mut()?.as_slice_mut::<f64>()?.iter_mut().enumerate() {
                        if hit(*v) {
                            *v = per_feature(values, i % cols);
                        }
                    }
                }
            }
            Imputer::Ints { values, replaced } => {
                for (i, v) in out.try_as_plain_ram_mut()?.as_slice_mut::<i64>()?.iter_mut().enumerate() {
                    if *v == *replaced {
                        *v = per_feature(values, i % cols);
                    }
                }
            }
        }
        Ok(tvec!(out))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    #[test]
    fn replaces_nan_per_feature() {
        let i = Imputer::parse(
            None,
            &node("Imputer", vec![a_floats("imputed_value_floats", &[7.0, 8.0]), a_float("replaced_value_float", f32::NAN)]),
        )
        .unwrap();
        let y = i.eval(&tensor2(&[[f32::NAN, 1.0], [2.0, f32::NAN]])).unwrap();
        assert_eq!(y[0], tensor2(&[[7.0f32, 1.0], [2.0, 8.0]]));
    }

    #[test]
    fn replaces_a_chosen_value_and_ints() {
        let f = Imputer::parse(None, &node("Imputer", vec![a_floats("imputed_value_floats", &[5.0])])).unwrap();
        assert_eq!(f.eval(&tensor2(&[[0.0f64, 1.0]])).unwrap()[0], tensor2(&[[5.0f64, 1.0]]));
        let i =
            Imputer::parse(None, &node("Imputer", vec![a_ints("imputed_value_int64s", &[9]), a_int("replaced_value_int64", -1)])).unwrap();
        assert_eq!(i.eval(&tensor2(&[[-1i64, 3]])).unwrap()[0], tensor2(&[[9i64, 3]]));
        assert!(i.eval(&tensor2(&[[1.0f32]])).is_err(), "int imputer on floats");
    }

    #[test]
    fn needs_exactly_one_kind_of_value() {
        assert!(Imputer::parse(None, &node("Imputer", vec![])).is_err());
    }
}
