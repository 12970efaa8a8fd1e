//! The kernel functions and attributes shared by `SVMClassifier` and
//! `SVMRegressor`, computed in f64 (scikit-learn's precision) rather than
//! the input's f32.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::floats;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum SvmKernel {
    Linear,
    Poly { gamma: f64, coef0: f64, degree: i32 },
    Rbf { gamma: f64 },
    Sigmoid { gamma: f64, coef0: f64 },
}

impl SvmKernel {
    pub(crate) fn parse(ctx: Option<&ParsingContext>, node: &NodeProto) -> TractResult<SvmKernel> {
        let params = floats(ctx, node, "kernel_params")?.unwrap_or_default();
        let p = |i: usize| params.get(i).copied().unwrap_or(0.0);
        let (gamma, coef0, degree) = (p(0), p(1), p(2));
        Ok(match node.get_attr_opt::<&str>("kernel_type")?.unwrap_or("LINEAR") {
            "LINEAR" => SvmKernel::Linear,
            "POLY" => {
                ensure!((0.0..=64.0).contains(&degree), "{}: polynomial degree {degree} is out of range", node.op_type);
                SvmKernel::Poly { gamma, coef0, degree: degree as i32 }
            }
            "RBF" => SvmKernel::Rbf { gamma },
            "SIGMOID" => SvmKernel::Sigmoid { gamma, coef0 },
            other => bail!("{}: unknown kernel_type {other:?}", node.op_type),
        })
    }

    pub(crate) fn apply(self, a: &[f64], b: &[f64]) -> f64 {
        let dot = || a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        match self {
            SvmKernel::Linear => dot(),
            SvmKernel::Poly { gamma, coef0, degree } => (dot() * gamma + coef0).powi(degree),
            SvmKernel::Rbf { gamma } => (-gamma * a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>()).exp(),
            SvmKernel::Sigmoid { gamma, coef0 } => (dot() * gamma + coef0).tanh(),
        }
    }
}

/// The input as f64 rows, checked against the feature count.
pub(crate) fn rows(input: &Tensor, name: &str, features: usize) -> TractResult<(Vec<f64>, usize)> {
    ensure!(input.rank() == 2, "{name} expects a [N, features] input, got shape {:?}", input.shape());
    ensure!(input.shape()[1] == features, "{name} expects {features} features, the input has {}", input.shape()[1]);
    let x = match input.datum_type() {
        // The common case converts once, without a float64 tensor in between.
        DatumType::F32 => input.try_as_plain_ram()?.as_slice::<f32>()?.iter().map(|&v| f64::from(v)).collect(),
        _ => input.cast_to::<f64>()?.try_as_plain_ram()?.as_slice::<f64>()?.to_vec(),
    };
    Ok((x, input.shape()[0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels() {
        let (a, b) = ([1.0, 2.0], [3.0, 1.0]);
        assert_eq!(SvmKernel::Linear.apply(&a, &b), 5.0);
        assert_eq!(SvmKernel::Poly { gamma: 2.0, coef0: 1.0, degree: 2 }.apply(&a, &b), 121.0);
        assert!((SvmKernel::Rbf { gamma: 0.5 }.apply(&a, &b) - (-2.5f64).exp()).abs() < 1e-15);
        assert!((SvmKernel::Sigmoid { gamma: 0.1, coef0: 0.0 }.apply(&a, &b) - 0.5f64.tanh()).abs() < 1e-15);
    }
}
