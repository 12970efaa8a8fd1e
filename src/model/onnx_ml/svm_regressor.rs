//! `SVMRegressor`: `sum_j coef_j K(x, sv_j) + rho` (or a linear model when
//! there are no support vectors); `one_class` turns the value into ±1.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::post_transform::PostTransform;
use super::svm::{SvmKernel, rows};
use super::{Kernel, OutShape, OutType, floats};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SvmRegressor {
    kernel: SvmKernel,
    coefficients: Vec<f64>,
    /// `[n_supports, features]`, empty in linear mode.
    support_vectors: Vec<f64>,
    features: usize,
    rho: f64,
    one_class: bool,
    post_transform: PostTransform,
}

pub(crate) fn build(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    super::op(SvmRegressor::parse(Some(ctx), node)?)
}

impl SvmRegressor {
    fn parse(ctx: Option<&ParsingContext>, node: &NodeProto) -> TractResult<SvmRegressor> {
        let coefficients = floats(ctx, node, "coefficients")?.unwrap_or_default();
        ensure!(!coefficients.is_empty(), "SVMRegressor {}: no coefficients", node.name);
        let n_supports: i64 = node.get_attr_opt("n_supports")?.unwrap_or(0);
        let support_vectors = floats(ctx, node, "support_vectors")?.unwrap_or_default();
        let rho = floats(ctx, node, "rho")?.and_then(|r| r.first().copied()).unwrap_or(0.0);
        let (kernel, features) = if n_supports > 0 {
            let n = n_supports as usize;
            ensure!(coefficients.len() == n, "SVMRegressor {}: {} coefficients for {n} support vectors", node.name, coefficients.len());
            ensure!(
                !support_vectors.is_empty() && support_vectors.len().is_multiple_of(n),
                "SVMRegressor {}: {} support vector values for {n} vectors",
                node.name,
                support_vectors.len()
            );
            (SvmKernel::parse(ctx, node)?, support_vectors.len() / n)
        } else {
            (SvmKernel::Linear, coefficients.len())
        };
        Ok(SvmRegressor {
            kernel,
            coefficients,
            support_vectors,
            features,
            rho,
            one_class: node.get_attr_opt::<i64>("one_class")?.unwrap_or(0) != 0,
            post_transform: PostTransform::parse(node)?,
        })
    }
}

impl Kernel for SvmRegressor {
    fn name(&self) -> &'static str {
        "SVMRegressor"
    }

    fn outputs(&self) -> TVec<(OutType, OutShape)> {
        tvec![(OutType::Fixed(DatumType::F32), OutShape::RowsBy(1))]
    }

    fn check_input(&self, dt: DatumType, features: Option<usize>) -> TractResult<()> {
        super::check_numeric(self.name(), dt, None, 0)?;
        if let Some(f) = features {
            ensure!(f == self.features, "SVMRegressor expects {} features, the input has {f}", self.features);
        }
        Ok(())
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        let (x, n) = rows(input, self.name(), self.features)?;
        let mut out = Vec::with_capacity(n);
        for row in x.chunks_exact(self.features) {
            let mut s = if self.support_vectors.is_empty() {
                self.kernel.apply(row, &self.coefficients)
            } else {
                self.support_vectors.chunks_exact(self.features).zip(&self.coefficients).map(|(sv, c)| c * self.kernel.apply(row, sv)).sum()
            } + self.rho;
            if self.one_class {
                s = if s > 0.0 { 1.0 } else { -1.0 };
            }
            let mut v = [s];
            self.post_transform.apply(&mut v);
            out.push(v[0] as f32);
        }
        Ok(tvec!(tensor1(&out).into_shape(&[n, 1])?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    #[test]
    fn rbf_support_vectors() {
        let r = SvmRegressor::parse(
            None,
            &node(
                "SVMRegressor",
                vec![
                    a_floats("coefficients", &[2.0, -1.0]),
                    a_floats("support_vectors", &[0.0, 0.0, 1.0, 1.0]),
                    a_int("n_supports", 2),
                    a_floats("rho", &[0.5]),
                    a_string("kernel_type", "RBF"),
                    a_floats("kernel_params", &[1.0, 0.0, 3.0]),
                ],
            ),
        )
        .unwrap();
        let y = r.eval(&tensor2(&[[0.0f32, 1.0]])).unwrap();
        let want = 2.0 * (-1.0f64).exp() - (-1.0f64).exp() + 0.5;
        assert!((y[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap()[0] as f64 - want).abs() < 1e-6);
        assert!(r.eval(&tensor2(&[[0.0f32, 1.0, 2.0]])).is_err(), "wrong feature count");
    }

    #[test]
    fn linear_and_one_class() {
        let lin = node("SVMRegressor", vec![a_floats("coefficients", &[1.0, 2.0]), a_floats("rho", &[-4.0])]);
        let r = SvmRegressor::parse(None, &lin).unwrap();
        assert_eq!(r.eval(&tensor2(&[[1.0f32, 1.0]])).unwrap()[0], tensor2(&[[-1.0f32]]));
        let mut oc = lin.clone();
        oc.attribute.push(a_int("one_class", 1));
        let r = SvmRegressor::parse(None, &oc).unwrap();
        assert_eq!(r.eval(&tensor2(&[[1.0f32, 1.0], [3.0, 1.0]])).unwrap()[0], tensor2(&[[-1.0f32], [1.0]]));
    }
}
