//! `TreeEnsembleClassifier` (ai.onnx.ml, opsets 1 and 3): labels and scores.
//!
//! Scores are the summed leaf weights plus `base_values`, then
//! `post_transform`. The binary case follows the reference implementation:
//! when there are two classes and every leaf weight goes to one class id,
//! that score `s` becomes the pair `[1 - s, s]` (NONE, PROBIT) or `[-s, s]`
//! (the others) before the transform. The label is the class of the first
//! largest transformed score.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::post_transform::{PostTransform, argmax};
use super::tree::{Aggregate, Forest, ForestAttrs};
use super::{Kernel, Labels, OutShape, OutType, check_numeric, floats};

#[derive(Debug, Clone, PartialEq)]
pub struct TreeEnsembleClassifier {
    forest: Forest,
    labels: Labels,
    base_values: Vec<f64>,
    post_transform: PostTransform,
    /// The one class id that receives weights, in the two-class case.
    binary: Option<usize>,
}

pub(crate) fn build(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    super::op(TreeEnsembleClassifier::parse(Some(ctx), node)?)
}

impl TreeEnsembleClassifier {
    pub(crate) fn parse(ctx: Option<&ParsingContext>, node: &NodeProto) -> TractResult<TreeEnsembleClassifier> {
        let labels = Labels::parse(node, "classlabels_int64s", "classlabels_strings")?;
        let n = labels.len();
        let forest = Forest::build(&ForestAttrs::read(ctx, node, "class")?, n, Aggregate::Sum)
            .with_context(|| format!("TreeEnsembleClassifier {}", node.name))?;
        let base_values = floats(ctx, node, "base_values")?.unwrap_or_default();
        ensure!(
            base_values.is_empty() || base_values.len() == 1 || base_values.len() == n,
            "TreeEnsembleClassifier {}: {} base_values for {n} classes",
            node.name,
            base_values.len()
        );
        let used = forest.used_outputs();
        let binary = (n == 2 && used.len() == 1).then(|| used[0] as usize);
        Ok(TreeEnsembleClassifier { forest, labels, base_values, post_transform: PostTransform::parse(node)?, binary })
    }

    /// Test and bench entry point: the parsed operator from a node.
    pub fn from_node(node: &NodeProto) -> TractResult<TreeEnsembleClassifier> {
        Self::parse(None, node)
    }

    /// Labels and `[N, classes]` scores of an `[N, F]` input.
    pub fn run(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        self.eval(input)
    }
}

impl Kernel for TreeEnsembleClassifier {
    fn name(&self) -> &'static str {
        "TreeEnsembleClassifier"
    }

    fn outputs(&self) -> TVec<(OutType, OutShape)> {
        tvec![
            (OutType::Fixed(self.labels.datum_type()), OutShape::Rows),
            (OutType::Fixed(DatumType::F32), OutShape::RowsBy(self.labels.len())),
        ]
    }

    fn check_input(&self, dt: DatumType, features: Option<usize>) -> TractResult<()> {
        check_numeric(self.name(), dt, features, self.forest.n_features())
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        let n = self.labels.len();
        let rows = input.shape().first().copied().unwrap_or(0);
        let mut scores = Vec::with_capacity(rows * n);
        let mut winners = Vec::with_capacity(rows);
        let mut row = vec![0.0; n];
        self.forest.eval(input, self.name(), |_, acc| {
            row.copy_from_slice(acc);
            match self.base_values.len() {
                0 => {}
                1 => row.iter_mut().for_each(|v| *v += self.base_values[0]),
                _ => row.iter_mut().zip(&self.base_values).for_each(|(v, b)| *v += b),
            }
            if let Some(id) = self.binary {
                let s = row[id];
                row[1] = s;
                row[0] = if matches!(self.post_transform, PostTransform::None | PostTransform::Probit) { 1.0 - s } else { -s };
            }
            self.post_transform.apply(&mut row);
            winners.push(argmax(&row));
            scores.extend(row.iter().map(|&v| v as f32));
        })?;
        Ok(tvec!(self.labels.pick(&winners)?, tensor1(&scores).into_shape(&[rows, n])?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    /// A stump on feature 0 at 0.5, leaves weighted per class as given.
    fn stump(true_leaf: &[f32], false_leaf: &[f32], extra: Vec<tract_onnx::pb::AttributeProto>) -> NodeProto {
        let classes: Vec<i64> = (0..true_leaf.len() as i64).collect();
        let mut ids = vec![];
        let mut nodeids = vec![];
        let mut weights = vec![];
        for (leaf, ws) in [(1, true_leaf), (2, false_leaf)] {
            for (c, &w) in ws.iter().enumerate() {
                if w != 0.0 {
                    ids.push(c as i64);
                    nodeids.push(leaf);
                    weights.push(w);
                }
            }
        }
        let mut attrs = vec![
            a_ints("nodes_treeids", &[0, 0, 0]),
            a_ints("nodes_nodeids", &[0, 1, 2]),
            a_ints("nodes_featureids", &[0, 0, 0]),
            a_strs("nodes_modes", &["BRANCH_LEQ", "LEAF", "LEAF"]),
            a_floats("nodes_values", &[0.5, 0.0, 0.0]),
            a_ints("nodes_truenodeids", &[1, 0, 0]),
            a_ints("nodes_falsenodeids", &[2, 0, 0]),
            a_ints("class_treeids", &vec![0; ids.len()]),
            a_ints("class_nodeids", &nodeids),
            a_ints("class_ids", &ids),
            a_floats("class_weights", &weights),
            a_ints("classlabels_int64s", &classes),
        ];
        attrs.extend(extra);
        node("TreeEnsembleClassifier", attrs)
    }

    fn run(n: &NodeProto, xs: &[f32]) -> (Tensor, Vec<f32>) {
        let op = TreeEnsembleClassifier::from_node(n).unwrap();
        let input = tensor1(xs).into_shape(&[xs.len(), 1]).unwrap();
        let mut out = op.run(&input).unwrap();
        let scores = out.pop().unwrap();
        (out.pop().unwrap(), scores.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec())
    }

    #[test]
    fn multiclass_sums_weights_and_picks_the_largest() {
        let n = stump(&[0.2, 0.7, 0.1], &[0.5, 0.0, 0.5], vec![]);
        let (labels, scores) = run(&n, &[0.0, 1.0]);
        assert_eq!(labels, tensor1(&[1i64, 0]));
        assert_eq!(scores, vec![0.2, 0.7, 0.1, 0.5, 0.0, 0.5]);
    }

    #[test]
    fn base_values_and_softmax() {
        let n = stump(&[1.0, 0.0], &[0.0, 1.0], vec![a_floats("base_values", &[0.5, 0.0]), a_string("post_transform", "SOFTMAX")]);
        let (labels, scores) = run(&n, &[0.0]);
        assert_eq!(labels, tensor1(&[0i64]));
        let (e0, e1) = (1.5f64.exp(), 0f64.exp());
        assert!((scores[0] as f64 - e0 / (e0 + e1)).abs() < 1e-6, "{scores:?}");
    }

    #[test]
    fn binary_with_one_class_id_expands_to_two_scores() {
        // Gradient boosting's shape: one score, LOGISTIC, a base value.
        let n = stump(&[0.0, 0.0], &[0.0, 0.0], vec![]);
        let mut attrs = n.attribute.clone();
        for a in attrs.iter_mut() {
            match a.name.as_str() {
                "class_treeids" => *a = a_ints("class_treeids", &[0, 0]),
                "class_nodeids" => *a = a_ints("class_nodeids", &[1, 2]),
                "class_ids" => *a = a_ints("class_ids", &[0, 0]),
                "class_weights" => *a = a_floats("class_weights", &[-1.0, 2.0]),
                _ => {}
            }
        }
        attrs.push(a_floats("base_values", &[0.25]));
        attrs.push(a_string("post_transform", "LOGISTIC"));
        let n = node("TreeEnsembleClassifier", attrs);
        let (labels, scores) = run(&n, &[0.0, 1.0]);
        assert_eq!(labels, tensor1(&[0i64, 1]));
        let s = |v: f64| 1.0 / (1.0 + (-v).exp());
        let want = [s(0.75), s(-0.75), s(-2.25), s(2.25)];
        for (g, w) in scores.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-6, "{scores:?} vs {want:?}");
        }

        // Without a transform the pair is [1 - s, s].
        let mut attrs = n.attribute.clone();
        attrs.retain(|a| a.name != "post_transform" && a.name != "base_values");
        let (labels, scores) = run(&node("TreeEnsembleClassifier", attrs), &[0.0]);
        assert_eq!(labels, tensor1(&[0i64]));
        assert_eq!(scores, vec![2.0, -1.0]);
    }

    #[test]
    fn string_labels() {
        let mut n = stump(&[0.9, 0.1], &[0.1, 0.9], vec![a_strs("classlabels_strings", &["cat", "dog"])]);
        n.attribute.retain(|a| a.name != "classlabels_int64s");
        let (labels, _) = run(&n, &[0.0, 1.0]);
        assert_eq!(labels, tensor1(&["cat".to_string(), "dog".to_string()]));
    }

    #[test]
    fn missing_labels_and_bad_base_values_are_refused() {
        let mut n = stump(&[1.0, 0.0], &[0.0, 1.0], vec![]);
        n.attribute.retain(|a| a.name != "classlabels_int64s");
        assert!(TreeEnsembleClassifier::from_node(&n).is_err());
        let n = stump(&[1.0, 0.0, 0.0], &[0.0, 1.0, 0.0], vec![a_floats("base_values", &[0.0, 1.0])]);
        assert!(TreeEnsembleClassifier::from_node(&n).is_err());
    }
}
