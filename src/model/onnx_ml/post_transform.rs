//! The `post_transform` attribute shared by the classifiers and regressors,
//! computed as the ONNX-ML reference implementation (`onnx.reference`)
//! does, in f64 so that f32 rounding happens once, at the output.

use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PostTransform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
    Probit,
}

impl PostTransform {
    pub(crate) fn parse(node: &NodeProto) -> TractResult<PostTransform> {
        Ok(match node.get_attr_opt::<&str>("post_transform")?.unwrap_or("NONE") {
            "NONE" => PostTransform::None,
            "LOGISTIC" => PostTransform::Logistic,
            "SOFTMAX" => PostTransform::Softmax,
            "SOFTMAX_ZERO" => PostTransform::SoftmaxZero,
            "PROBIT" => PostTransform::Probit,
            other => bail!("{}: unknown post_transform {other:?}", node.op_type),
        })
    }

    /// Transforms one row of scores in place.
    pub(crate) fn apply(self, row: &mut [f64]) {
        match self {
            PostTransform::None => {}
            PostTransform::Logistic => row.iter_mut().for_each(|v| *v = logistic(*v)),
            PostTransform::Probit => row.iter_mut().for_each(|v| *v = probit(*v)),
            PostTransform::Softmax => {
                let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mut sum = 0.0;
                for v in row.iter_mut() {
                    *v = (*v - max).exp();
                    sum += *v;
                }
                row.iter_mut().for_each(|v| *v /= sum);
            }
            PostTransform::SoftmaxZero => {
                // Zero scores stay zero (scaled like the others) instead of
                // becoming exp(0 - max): "no evidence" keeps no probability.
                let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let exp_neg_max = (-max).exp();
                let mut sum = 0.0;
                for v in row.iter_mut() {
                    *v = if v.abs() > 1e-7 { (*v - max).exp() } else { *v * exp_neg_max };
                    sum += *v;
                }
                if sum == 0.0 {
                    row.iter_mut().for_each(|v| *v = 0.5);
                } else {
                    row.iter_mut().for_each(|v| *v /= sum);
                }
            }
        }
    }
}

/// Stable for large |x|: never computes exp of a large positive number.
pub(crate) fn logistic(x: f64) -> f64 {
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 { 1.0 - v } else { v }
}

/// The approximation of the inverse error function used by the reference
/// implementation and ONNX Runtime (Winitzki, a = 0.147), so that outputs
/// agree with theirs rather than with an exact probit.
pub(crate) fn probit(x: f64) -> f64 {
    std::f64::consts::SQRT_2 * erf_inv(x * 2.0 - 1.0)
}

fn erf_inv(x: f64) -> f64 {
    let sgn = if x < 0.0 { -1.0 } else { 1.0 };
    // At x = ±1 (probit of 0 or 1) the log is -inf and the result ±inf,
    // as in ONNX Runtime.
    let x = (1.0 - x) * (1.0 + x);
    let log = x.ln();
    let v = 2.0 / (std::f64::consts::PI * 0.147) + 0.5 * log;
    let v2 = 1.0 / 0.147 * log;
    sgn * (-v + (v * v - v2).sqrt()).sqrt()
}

/// Index of the first largest score (ties go to the lower class, as numpy's
/// argmax and ONNX Runtime do).
pub(crate) fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9)
    }

    #[test]
    fn softmax_sums_to_one_and_survives_large_scores() {
        let mut r = [1000.0, 1000.0 + 2f64.ln()];
        PostTransform::Softmax.apply(&mut r);
        assert!(close(&r, &[1.0 / 3.0, 2.0 / 3.0]), "{r:?}");
    }

    #[test]
    fn softmax_zero_keeps_zeros_at_zero_weight() {
        let mut r = [0.0, 1.0, 1.0];
        PostTransform::SoftmaxZero.apply(&mut r);
        assert!(close(&r, &[0.0, 0.5, 0.5]), "{r:?}");
        let mut all_zero = [0.0, 0.0];
        PostTransform::SoftmaxZero.apply(&mut all_zero);
        assert!(close(&all_zero, &[0.5, 0.5]), "{all_zero:?}");
    }

    #[test]
    fn logistic_is_symmetric_and_stable() {
        assert!((logistic(0.0) - 0.5).abs() < 1e-12);
        assert!((logistic(2.0) + logistic(-2.0) - 1.0).abs() < 1e-12);
        assert_eq!(logistic(-1000.0), 0.0);
        assert_eq!(logistic(1000.0), 1.0);
    }

    #[test]
    fn probit_matches_the_normal_quantile_closely() {
        // Φ⁻¹(0.975) = 1.959964; the approximation is good to ~1e-3.
        assert!((probit(0.975) - 1.959964).abs() < 2e-3, "{}", probit(0.975));
        assert_eq!(probit(0.5), 0.0);
        assert!((probit(0.1) + probit(0.9)).abs() < 1e-12);
        assert_eq!(probit(0.0), f64::NEG_INFINITY, "as ONNX Runtime");
        assert_eq!(probit(1.0), f64::INFINITY);
        assert!(probit(1.5).is_nan() && probit(-0.5).is_nan(), "outside [0, 1]");
    }

    #[test]
    fn argmax_prefers_the_first_of_equals() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax(&[0.0]), 0);
    }
}
