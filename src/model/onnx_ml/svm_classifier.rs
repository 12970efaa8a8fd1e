//! `SVMClassifier`, as the ONNX-ML reference implementation computes it:
//! with support vectors, one-vs-one decision values and votes (the label is
//! the most voted class); with `prob_a`/`prob_b`, Platt-scaled pairwise
//! probabilities coupled into class probabilities (libsvm's method); with
//! no support vectors, a linear model per class.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::post_transform::{PostTransform, argmax, logistic};
use super::svm::{SvmKernel, rows};
use super::{Kernel, Labels, OutShape, OutType, floats, ints};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SvmClassifier {
    labels: Labels,
    kernel: SvmKernel,
    /// `[classes - 1, vectors]` with support vectors, `[classes, features]`
    /// without.
    coefficients: Vec<f64>,
    support_vectors: Vec<f64>,
    /// First support vector of each class, and how many it has.
    per_class: Vec<(usize, usize)>,
    vectors: usize,
    features: usize,
    rho: Vec<f64>,
    prob_a: Vec<f64>,
    prob_b: Vec<f64>,
    weights_all_positive: bool,
    post_transform: PostTransform,
    width: usize,
}

pub(crate) fn build(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    super::op(SvmClassifier::parse(Some(ctx), node)?)
}

impl SvmClassifier {
    fn parse(ctx: Option<&ParsingContext>, node: &NodeProto) -> TractResult<SvmClassifier> {
        let name = &node.name;
        let labels = Labels::parse(node, "classlabels_ints", "classlabels_strings")?;
        let classes = labels.len();
        let coefficients = floats(ctx, node, "coefficients")?.unwrap_or_default();
        ensure!(!coefficients.is_empty(), "SVMClassifier {name}: no coefficients");
        let support_vectors = floats(ctx, node, "support_vectors")?.unwrap_or_default();
        let mut per_class = vec![];
        let mut vectors = 0usize;
        for c in ints(node, "vectors_per_class")?.unwrap_or_default() {
            ensure!(c >= 0, "SVMClassifier {name}: negative vectors_per_class");
            per_class.push((vectors, c as usize));
            vectors += c as usize;
        }
        let rho = floats(ctx, node, "rho")?.unwrap_or_default();
        let prob_a = floats(ctx, node, "prob_a")?.unwrap_or_default();
        let prob_b = floats(ctx, node, "prob_b")?.unwrap_or_default();
        let pairs = classes * (classes - 1) / 2;
        let (kernel, features) = if vectors > 0 {
            ensure!(
                per_class.len() == classes,
                "SVMClassifier {name}: vectors_per_class has {} entries for {classes} classes",
                per_class.len()
            );
            ensure!(
                !support_vectors.is_empty() && support_vectors.len().is_multiple_of(vectors),
                "SVMClassifier {name}: {} support vector values for {vectors} vectors",
                support_vectors.len()
            );
            ensure!(
                coefficients.len() == (classes - 1) * vectors,
                "SVMClassifier {name}: {} coefficients, expected {} for {classes} classes and {vectors} vectors",
                coefficients.len(),
                (classes - 1) * vectors
            );
            ensure!(rho.len() >= pairs, "SVMClassifier {name}: {} rho values for {pairs} class pairs", rho.len());
            if !prob_a.is_empty() {
                ensure!(prob_a.len() >= pairs && prob_b.len() >= pairs, "SVMClassifier {name}: prob_a and prob_b need {pairs} values");
            }
            (SvmKernel::parse(ctx, node)?, support_vectors.len() / vectors)
        } else {
            ensure!(
                coefficients.len().is_multiple_of(classes),
                "SVMClassifier {name}: {} coefficients for {classes} classes",
                coefficients.len()
            );
            ensure!(!rho.is_empty(), "SVMClassifier {name}: no rho");
            (SvmKernel::Linear, coefficients.len() / classes)
        };
        let post_transform = PostTransform::parse(node)?;
        let has_proba = vectors > 0 && !prob_a.is_empty();
        let raw = if has_proba || vectors == 0 { classes } else { pairs };
        let width = if raw == 1 && post_transform != PostTransform::Probit && rho.len() == 1 && classes == 2 { 2 } else { raw };
        Ok(SvmClassifier {
            labels,
            kernel,
            weights_all_positive: coefficients.iter().all(|&c| c >= 0.0),
            coefficients,
            support_vectors,
            per_class,
            vectors,
            features,
            rho,
            prob_a: if has_proba { prob_a } else { vec![] },
            prob_b,
            post_transform,
            width,
        })
    }

    /// Scores (before the final transform), votes, and whether the scores
    /// are probabilities, for one row.
    fn raw(&self, x: &[f64], kernels: &mut Vec<f64>) -> (Vec<f64>, Vec<f64>, bool) {
        let classes = self.labels.len();
        if self.vectors == 0 {
            let scores = self.coefficients.chunks_exact(self.features).map(|c| self.kernel.apply(x, c) + self.rho[0]).collect();
            return (scores, vec![], false);
        }
        kernels.clear();
        kernels.extend(self.support_vectors.chunks_exact(self.features).map(|sv| self.kernel.apply(x, sv)));
        let coef = |row: usize, from: usize, len: usize| &self.coefficients[row * self.vectors + from..row * self.vectors + from + len];
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let mut votes = vec![0.0; classes];
        let mut scores = vec![];
        for i in 0..classes {
            let (si, ci) = self.per_class[i];
            for j in i + 1..classes {
                let (sj, cj) = self.per_class[j];
                let s =
                    self.rho[scores.len()] + dot(coef(j - 1, si, ci), &kernels[si..si + ci]) + dot(coef(i, sj, cj), &kernels[sj..sj + cj]);
                if s > 0.0 {
                    votes[i] += 1.0;
                } else {
                    votes[j] += 1.0;
                }
                scores.push(s);
            }
        }
        if self.prob_a.is_empty() {
            return (scores, votes, false);
        }
        let mut pairwise = vec![0.0; classes * classes];
        let mut k = 0;
        for i in 0..classes {
            for j in i + 1..classes {
                let p = (1.0 - logistic(scores[k] * self.prob_a[k] + self.prob_b[k])).clamp(1e-7, 1.0 - 1e-7);
                pairwise[i * classes + j] = p;
                pairwise[j * classes + i] = 1.0 - p;
                k += 1;
            }
        }
        (multiclass_probability(classes, &pairwise), votes, true)
    }
}

/// libsvm's pairwise coupling (Wu, Lin and Weng 2004, method 2), as ported
/// by the reference implementation.
fn multiclass_probability(k: usize, r: &[f64]) -> Vec<f64> {
    let max_iter = 100.max(k);
    let mut q = vec![0.0; k * k];
    let mut qp = vec![0.0; k];
    let mut p = vec![1.0 / k as f64; k];
    let eps = 0.005 / k as f64;
    for t in 0..k {
        q[t * k + t] = (0..t).map(|j| r[j * k + t] * r[j * k + t]).sum::<f64>();
        for j in 0..t {
            q[t * k + j] = q[j * k + t];
        }
        q[t * k + t] += (t + 1..k).map(|j| r[j * k + t] * r[j * k + t]).sum::<f64>();
        for j in t + 1..k {
            q[t * k + j] = -r[j * k + t] * r[t * k + j];
        }
    }
    for _ in 0..max_iter {
        for t in 0..k {
            qp[t] = (0..k).map(|j| q[t * k + j] * p[j]).sum();
        }
        let mut pqp: f64 = (0..k).map(|t| p[t] * qp[t]).sum();
        if qp.iter().map(|&v| (v - pqp).abs()).fold(0.0, f64::max) < eps {
            break;
        }
        for t in 0..k {
            let diff = (-qp[t] + pqp) / q[t * k + t];
            p[t] += diff;
            pqp = (pqp + diff * (diff * q[t * k + t] + 2.0 * qp[t])) / ((1.0 + diff) * (1.0 + diff));
            for j in 0..k {
                qp[j] = (qp[j] + diff * q[t * k + j]) / (1.0 + diff);
                p[j] /= 1.0 + diff;
            }
        }
    }
    p
}

impl Kernel for SvmClassifier {
    fn name(&self) -> &'static str {
        "SVMClassifier"
    }

    fn outputs(&self) -> TVec<(OutType, OutShape)> {
        tvec![(OutType::Fixed(self.labels.datum_type()), OutShape::Rows), (OutType::Fixed(DatumType::F32), OutShape::RowsBy(self.width))]
    }

    fn check_input(&self, dt: DatumType, features: Option<usize>) -> TractResult<()> {
        super::check_numeric(self.name(), dt, None, 0)?;
        if let Some(f) = features {
            ensure!(f == self.features, "SVMClassifier expects {} features, the input has {f}", self.features);
        }
        Ok(())
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        let (x, n) = rows(input, self.name(), self.features)?;
        let classes = self.labels.len();
        let mut winners = Vec::with_capacity(n);
        let mut out = Vec::with_capacity(n * self.width);
        let mut kernels = Vec::with_capacity(self.vectors);
        for row in x.chunks_exact(self.features) {
            let (mut scores, votes, has_proba) = self.raw(row, &mut kernels);
            let (max_class, max_weight) = if votes.is_empty() {
                let m = argmax(&scores);
                (m, scores[m])
            } else {
                let m = argmax(&votes);
                (m, votes[m])
            };
            let winner = if self.rho.len() == 1 {
                if classes == 2 {
                    if !has_proba && self.weights_all_positive && max_weight >= 0.5 { 1 } else { max_class }
                } else {
                    usize::from(max_weight > 0.0).min(classes - 1)
                }
            } else {
                max_class
            };
            winners.push(winner);
            if scores.len() == 1 && self.width == 2 {
                let s = scores[0];
                scores = vec![-s, s];
                if matches!(self.post_transform, PostTransform::Logistic | PostTransform::Softmax | PostTransform::SoftmaxZero) {
                    self.post_transform.apply(&mut scores);
                }
            } else if scores.len() == 1 {
                if self.post_transform == PostTransform::Probit {
                    self.post_transform.apply(&mut scores);
                }
            } else {
                self.post_transform.apply(&mut scores);
            }
            out.extend(scores.iter().map(|&v| v as f32));
        }
        Ok(tvec!(self.labels.pick(&winners)?, tensor1(&out).into_shape(&[n, self.width])?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    /// Three classes, one support vector each, linear kernel.
    fn three(extra: Vec<tract_onnx::pb::AttributeProto>) -> SvmClassifier {
        let mut attrs = vec![
            a_ints("classlabels_ints", &[10, 20, 30]),
            a_ints("vectors_per_class", &[1, 1, 1]),
            a_floats("support_vectors", &[1.0, 0.0, 0.0, 1.0, -1.0, -1.0]),
            a_floats("coefficients", &[1.0, 1.0, -1.0, -1.0, 1.0, -1.0]),
            a_floats("rho", &[0.0, 0.0, 0.0]),
            a_string("kernel_type", "LINEAR"),
        ];
        attrs.extend(extra);
        SvmClassifier::parse(None, &node("SVMClassifier", attrs)).unwrap()
    }

    #[test]
    fn one_vs_one_votes_pick_the_label() {
        let c = three(vec![]);
        // x = (2, 0): kernels (2, 0, -2).
        // (0,1): rho + coef[0][0]*k0 + coef[0][1]*k1 = 2 + 0 -> class 0 votes.
        // (0,2): coef[1][0]*k0 + coef[0][2]*k2 = -2 + 2 = 0 -> class 2.
        // (1,2): coef[1][1]*k1 + coef[1][2]*k2 = 0 + 2 = 2 -> class 1.
        let out = c.eval(&tensor2(&[[2.0f32, 0.0]])).unwrap();
        assert_eq!(out[1], tensor2(&[[2.0f32, 0.0, 2.0]]));
        assert_eq!(out[0], tensor1(&[10i64]), "ties go to the first class");
    }

    #[test]
    fn probabilities_sum_to_one() {
        let c = three(vec![a_floats("prob_a", &[-1.0, -1.0, -1.0]), a_floats("prob_b", &[0.0, 0.0, 0.0])]);
        let out = c.eval(&tensor2(&[[2.0f32, 0.0]])).unwrap();
        let p = out[1].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
        assert_eq!(p.len(), 3);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{p:?}");
    }

    #[test]
    fn binary_gives_two_scores() {
        let c = SvmClassifier::parse(
            None,
            &node(
                "SVMClassifier",
                vec![
                    a_ints("classlabels_ints", &[0, 1]),
                    a_ints("vectors_per_class", &[1, 1]),
                    a_floats("support_vectors", &[1.0, -1.0]),
                    a_floats("coefficients", &[1.0, -1.0]),
                    a_floats("rho", &[0.5]),
                ],
            ),
        )
        .unwrap();
        // s = 0.5 + 1*(x*1) - 1*(x*-1) = 0.5 + 2x.
        let out = c.eval(&tensor2(&[[1.0f32], [-1.0]])).unwrap();
        assert_eq!(out[1], tensor2(&[[-2.5f32, 2.5], [1.5, -1.5]]));
        assert_eq!(out[0], tensor1(&[0i64, 1]), "a positive decision votes for the first class");
    }

    #[test]
    fn inconsistent_attributes_are_refused() {
        let bad = node(
            "SVMClassifier",
            vec![
                a_ints("classlabels_ints", &[0, 1]),
                a_ints("vectors_per_class", &[1, 1]),
                a_floats("support_vectors", &[1.0, -1.0]),
                a_floats("coefficients", &[1.0]),
            ],
        );
        assert!(SvmClassifier::parse(None, &bad).is_err());
    }
}
