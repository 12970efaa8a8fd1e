//! `LinearRegressor`: `targets` outputs per row, `x · coefficients[t] +
//! intercepts[t]`, computed in f64, then the `post_transform`, as float.
//! tract's own version builds an EinSum that does not type on the graphs
//! skl2onnx writes for a pipeline ending in `Ridge` after
//! `PolynomialFeatures` (the model fails to load).

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::post_transform::PostTransform;
use super::{Kernel, OutShape, OutType, floats};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LinearRegressor {
    /// `[targets, features]`, row-major.
    coefficients: Vec<f64>,
    intercepts: Vec<f64>,
    targets: usize,
    features: usize,
    post_transform: PostTransform,
}

pub(crate) fn build(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    super::op(LinearRegressor::parse(Some(ctx), node)?)
}

impl LinearRegressor {
    fn parse(ctx: Option<&ParsingContext>, node: &NodeProto) -> TractResult<LinearRegressor> {
        let name = &node.name;
        let targets = node.get_attr_opt::<i64>("targets")?.unwrap_or(1);
        ensure!(targets >= 1, "LinearRegressor {name}: targets must be at least 1");
        let targets = targets as usize;
        let coefficients = floats(ctx, node, "coefficients")?.unwrap_or_default();
        ensure!(
            !coefficients.is_empty() && coefficients.len().is_multiple_of(targets),
            "LinearRegressor {name}: {} coefficients for {targets} targets",
            coefficients.len()
        );
        let intercepts = floats(ctx, node, "intercepts")?.unwrap_or_else(|| vec![0.0; targets]);
        ensure!(intercepts.len() == targets, "LinearRegressor {name}: {} intercepts for {targets} targets", intercepts.len());
        Ok(LinearRegressor {
            features: coefficients.len() / targets,
            coefficients,
            intercepts,
            targets,
            post_transform: PostTransform::parse(node)?,
        })
    }
}

impl Kernel for LinearRegressor {
    fn name(&self) -> &'static str {
        "LinearRegressor"
    }

    fn outputs(&self) -> TVec<(OutType, OutShape)> {
        tvec![(OutType::Fixed(DatumType::F32), OutShape::RowsBy(self.targets))]
    }

    fn check_input(&self, dt: DatumType, features: Option<usize>) -> TractResult<()> {
        super::check_numeric(self.name(), dt, None, 0)?;
        if let Some(f) = features {
            ensure!(f == self.features, "LinearRegressor expects {} features, the input has {f}", self.features);
        }
        Ok(())
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        let (x, n) = super::svm::rows(input, self.name(), self.features)?;
        let mut scores = Vec::with_capacity(self.targets);
        let y = super::filled::<f32>(&[n, self.targets], |out| {
            for (row, dst) in x.chunks_exact(self.features).zip(out.chunks_exact_mut(self.targets)) {
                super::linear_scores(&self.coefficients, &self.intercepts, row, &mut scores);
                self.post_transform.apply(&mut scores);
                dst.iter_mut().zip(&scores).for_each(|(d, &s)| *d = s as f32);
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

    #[test]
    fn each_target_is_a_dot_product_plus_its_intercept() {
        let r = LinearRegressor::parse(
            None,
            &node(
                "LinearRegressor",
                vec![a_floats("coefficients", &[1.0, 2.0, -1.0, 0.5]), a_floats("intercepts", &[0.5, -1.0]), a_int("targets", 2)],
            ),
        )
        .unwrap();
        let y = r.eval(&tensor2(&[[1.0f32, 1.0], [2.0, 0.0]])).unwrap().remove(0);
        assert_eq!(y, tensor2(&[[3.5f32, -1.5], [2.5, -3.0]]));
        // One target and no intercepts.
        let r = LinearRegressor::parse(None, &node("LinearRegressor", vec![a_floats("coefficients", &[2.0, 3.0])])).unwrap();
        assert_eq!(r.eval(&tensor2(&[[1.0f64, 1.0]])).unwrap().remove(0), tensor2(&[[5.0f32]]));
        assert!(r.eval(&tensor2(&[[1.0f32, 1.0, 1.0]])).is_err());
        assert!(
            LinearRegressor::parse(None, &node("LinearRegressor", vec![a_floats("coefficients", &[1.0, 2.0, 3.0]), a_int("targets", 2)]))
                .is_err()
        );
    }
}
