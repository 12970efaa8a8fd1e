//! `LinearClassifier`: one score per class, `x · coefficients[c] +
//! intercepts[c]`, computed in f64, then the `post_transform`. Matches
//! ONNX Runtime, which differs from the ONNX reference implementation in
//! these places:
//!
//! - the label is the argmax of the raw scores, not of the transformed ones
//!   (the same except under SOFTMAX_ZERO and PROBIT, which are not
//!   monotonic in every case);
//! - with one coefficient row and two labels (a binary model), the scores
//!   are `[1 - p, p]` where `p` is `s` transformed under LOGISTIC and left
//!   raw under NONE, SOFTMAX and SOFTMAX_ZERO (the reference gives
//!   `[-s, s]`, transformed), and the label is the second one when `s > 0`;
//! - under PROBIT, ONNX Runtime's binary output is half uninitialised
//!   memory, so warden takes the reference's layout,
//!   `[probit(-s), probit(s)]`;
//! - the probit of exactly 0 or 1 is -inf or +inf (the reference gives 0).
//!
//! `intercepts` give the number of score rows and are required, as in ONNX
//! Runtime; `multi_class` does not change the arithmetic (both ignore it).

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::post_transform::{PostTransform, argmax, logistic, probit};
use super::{Kernel, Labels, OutShape, OutType, floats};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LinearClassifier {
    labels: Labels,
    /// `[targets, features]`, row-major.
    coefficients: Vec<f64>,
    intercepts: Vec<f64>,
    features: usize,
    post_transform: PostTransform,
}

pub(crate) fn build(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    super::op(LinearClassifier::parse(Some(ctx), node)?)
}

impl LinearClassifier {
    fn parse(ctx: Option<&ParsingContext>, node: &NodeProto) -> TractResult<LinearClassifier> {
        let name = &node.name;
        let labels = Labels::parse(node, "classlabels_ints", "classlabels_strings")?;
        let coefficients = floats(ctx, node, "coefficients")?.unwrap_or_default();
        let intercepts = floats(ctx, node, "intercepts")?.unwrap_or_default();
        let targets = intercepts.len();
        ensure!(targets > 0, "LinearClassifier {name}: intercepts must be set (one per class)");
        ensure!(
            !coefficients.is_empty() && coefficients.len().is_multiple_of(targets),
            "LinearClassifier {name}: {} coefficients for {targets} intercepts",
            coefficients.len()
        );
        if targets == 1 {
            ensure!(labels.len() == 2, "LinearClassifier {name}: one coefficient row (binary) needs exactly 2 class labels");
        } else {
            ensure!(labels.len() == targets, "LinearClassifier {name}: {} class labels for {targets} coefficient rows", labels.len());
        }
        Ok(LinearClassifier {
            labels,
            features: coefficients.len() / targets,
            coefficients,
            intercepts,
            post_transform: PostTransform::parse(node)?,
        })
    }

    fn binary(&self) -> bool {
        self.intercepts.len() == 1
    }
}

impl Kernel for LinearClassifier {
    fn name(&self) -> &'static str {
        "LinearClassifier"
    }

    fn outputs(&self) -> TVec<(OutType, OutShape)> {
        let width = if self.binary() { 2 } else { self.intercepts.len() };
        tvec![(OutType::Fixed(self.labels.datum_type()), OutShape::Rows), (OutType::Fixed(DatumType::F32), OutShape::RowsBy(width))]
    }

    fn check_input(&self, dt: DatumType, features: Option<usize>) -> TractResult<()> {
        super::check_numeric(self.name(), dt, None, 0)?;
        if let Some(f) = features {
            ensure!(f == self.features, "LinearClassifier expects {} features, the input has {f}", self.features);
        }
        Ok(())
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        let (x, n) = super::svm::rows(input, self.name(), self.features)?;
        let width = if self.binary() { 2 } else { self.intercepts.len() };
        let mut winners = Vec::with_capacity(n);
        let mut scores = Vec::with_capacity(self.intercepts.len());
        let probabilities = super::filled::<f32>(&[n, width], |out| {
            for (row, dst) in x.chunks_exact(self.features).zip(out.chunks_exact_mut(width)) {
                super::linear_scores(&self.coefficients, &self.intercepts, row, &mut scores);
                if self.binary() {
                    let s = scores[0];
                    winners.push(usize::from(s > 0.0));
                    let p = match self.post_transform {
                        PostTransform::Logistic => logistic(s),
                        PostTransform::Probit => probit(s),
                        _ => s,
                    };
                    let q = if self.post_transform == PostTransform::Probit { probit(-s) } else { 1.0 - p };
                    scores.clear();
                    scores.extend([q, p]);
                } else {
                    winners.push(argmax(&scores));
                    self.post_transform.apply(&mut scores);
                }
                for (d, &v) in dst.iter_mut().zip(&scores) {
                    *d = v as f32;
                }
            }
            Ok(())
        })?;
        Ok(tvec!(self.labels.pick(&winners)?, probabilities))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn classifier(coef: &[f32], inter: &[f32], labels: tract_onnx::pb::AttributeProto, pt: &str) -> TractResult<LinearClassifier> {
        let attrs = vec![
            a_floats("coefficients", coef),
            a_floats("intercepts", inter),
            labels,
            a_string("post_transform", pt),
            a_int("multi_class", 0),
        ];
        LinearClassifier::parse(None, &node("LinearClassifier", attrs))
    }

    fn scores(t: &Tensor) -> Vec<f32> {
        t.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec()
    }

    /// Within f32 rounding; NaN matches NaN and infinities themselves.
    fn close(a: &[f32], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(&x, &y)| (x.is_nan() && y.is_nan()) || x as f64 == y || (x as f64 - y).abs() <= 1e-6 * (1.0 + y.abs()))
    }

    const X: [[f32; 2]; 3] = [[1.0, -2.0], [0.5, 0.25], [0.0, 0.0]];

    #[test]
    fn multiclass_scores_and_labels() {
        // Rows: s = (2.6, -1.2, -0.4), (0.1, 0.55, 0.05), (0.1, -0.2, 0).
        let c = classifier(&[0.5, -1.0, 1.0, 1.0, 0.0, 0.2], &[0.1, -0.2, 0.0], a_ints("classlabels_ints", &[1, 2, 3]), "NONE").unwrap();
        let out = c.eval(&tensor2(&X)).unwrap();
        assert_eq!(out[0], tensor1(&[1i64, 2, 1]));
        assert!(close(&scores(&out[1]), &[2.6, -1.2, -0.4, 0.1, 0.55, 0.05, 0.1, -0.2, 0.0]), "{:?}", out[1]);
        assert_eq!(out[1].shape(), &[3, 3]);
    }

    #[test]
    fn multiclass_post_transforms() {
        let raw = [[2.6f64, -1.2, -0.4], [0.1, 0.55, 0.05], [0.1, -0.2, 0.0]];
        for pt in [PostTransform::Logistic, PostTransform::Softmax, PostTransform::SoftmaxZero, PostTransform::Probit] {
            let name = format!("{pt:?}").to_uppercase().replace("SOFTMAXZERO", "SOFTMAX_ZERO");
            let c = classifier(&[0.5, -1.0, 1.0, 1.0, 0.0, 0.2], &[0.1, -0.2, 0.0], a_strs("classlabels_strings", &["a", "b", "c"]), &name)
                .unwrap();
            let out = c.eval(&tensor2(&X)).unwrap();
            let mut want = vec![];
            for r in raw {
                let mut r = r.to_vec();
                pt.apply(&mut r);
                want.extend(r);
            }
            assert!(close(&scores(&out[1]), &want), "{name}: {:?} vs {want:?}", out[1]);
            // Labels come from the raw scores, whatever the transform.
            assert_eq!(out[0], tensor1(&["a".to_string(), "b".to_string(), "a".to_string()]), "{name}");
        }
    }

    #[test]
    fn softmax_zero_keeps_a_zero_score_at_zero() {
        let c = classifier(&[0.5, -1.0, 1.0, 1.0, 0.0, 0.2], &[0.1, -0.2, 0.0], a_ints("classlabels_ints", &[1, 2, 3]), "SOFTMAX_ZERO")
            .unwrap();
        let out = c.eval(&tensor2(&[[0f32, 0.0]])).unwrap();
        let e = [0.0f64.exp(), (-0.3f64).exp()];
        assert!(close(&scores(&out[1]), &[e[0] / (e[0] + e[1]), e[1] / (e[0] + e[1]), 0.0]), "{:?}", out[1]);
    }

    #[test]
    fn binary_model_gives_two_columns_as_onnx_runtime() {
        // s = 0.5 x0 - x1 + 0.1: 2.6, 0.1, 0.1; and exactly 0 for the last row.
        let x = tensor2(&[[1.0f32, -2.0], [0.5, 0.25], [0.0, 0.0], [0.2, 0.2]]);
        let s = [2.6f64, 0.1, 0.1, 0.0];
        let labels = tensor1(&[7i64, 7, 7, 3]);
        let complement = |f: &dyn Fn(f64) -> f64| s.iter().flat_map(|&v| [1.0 - f(v), f(v)]).collect::<Vec<_>>();
        for (pt, want) in [
            ("NONE", complement(&|v| v)),
            ("SOFTMAX", complement(&|v| v)),
            ("SOFTMAX_ZERO", complement(&|v| v)),
            ("LOGISTIC", complement(&logistic)),
            ("PROBIT", s.iter().flat_map(|&v| [probit(-v), probit(v)]).collect()),
        ] {
            let c = classifier(&[0.5, -1.0], &[0.1], a_ints("classlabels_ints", &[3, 7]), pt).unwrap();
            let out = c.eval(&x).unwrap();
            assert_eq!(out[0], labels, "{pt}: the second label only when s > 0");
            assert!(close(&scores(&out[1]), &want), "{pt}: {:?} vs {want:?}", out[1]);
        }
    }

    #[test]
    fn inconsistent_models_are_refused() {
        let labels = || a_ints("classlabels_ints", &[1, 2, 3]);
        assert!(classifier(&[1.0, 2.0, 3.0], &[], labels(), "NONE").is_err(), "no intercepts");
        assert!(classifier(&[1.0, 2.0, 3.0, 4.0], &[0.0, 0.0, 0.0], labels(), "NONE").is_err(), "4 coefficients, 3 rows");
        assert!(classifier(&[1.0, 2.0], &[0.0, 0.0], labels(), "NONE").is_err(), "3 labels, 2 rows");
        assert!(classifier(&[1.0, 2.0], &[0.0], labels(), "NONE").is_err(), "binary with 3 labels");
        assert!(classifier(&[1.0, 2.0], &[0.0], a_ints("classlabels_ints", &[0, 1]), "NOPE").is_err(), "unknown transform");
        let c = classifier(&[1.0, 2.0], &[0.0], a_ints("classlabels_ints", &[0, 1]), "NONE").unwrap();
        assert!(c.check_input(DatumType::F32, Some(3)).is_err());
        assert!(c.eval(&tensor2(&[[1f32, 2.0, 3.0]])).is_err());
        assert!(c.check_input(DatumType::String, Some(2)).is_err());
    }

    #[test]
    fn integer_and_double_inputs() {
        let c = classifier(&[1.0, 2.0], &[0.5], a_strs("classlabels_strings", &["no", "yes"]), "NONE").unwrap();
        for x in [tensor2(&[[1i64, -1]]), tensor2(&[[1i32, -1]]), tensor2(&[[1f64, -1.0]])] {
            let out = c.eval(&x).unwrap();
            assert_eq!(out[0], tensor1(&["no".to_string()]));
            assert_eq!(out[1], tensor2(&[[1.5f32, -0.5]]));
        }
    }
}
