//! `TreeEnsembleRegressor` (ai.onnx.ml, opsets 1 and 3): `[N, n_targets]`
//! values. `base_values` are added after the aggregate function, as the
//! spec's reference implementation does; a target no leaf contributes to is
//! 0 before the base value (for MIN and MAX too).

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::post_transform::PostTransform;
use super::tree::{Aggregate, Forest, ForestAttrs};
use super::{Kernel, OutShape, OutType, check_numeric, floats};

#[derive(Debug, Clone, PartialEq)]
pub struct TreeEnsembleRegressor {
    forest: Forest,
    n_targets: usize,
    base_values: Vec<f64>,
    post_transform: PostTransform,
}

pub(crate) fn build(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    super::op(TreeEnsembleRegressor::parse(Some(ctx), node)?)
}

impl TreeEnsembleRegressor {
    pub(crate) fn parse(ctx: Option<&ParsingContext>, node: &NodeProto) -> TractResult<TreeEnsembleRegressor> {
        let n_targets: i64 = node.get_attr_opt("n_targets")?.unwrap_or(1);
        ensure!((1..=1 << 20).contains(&n_targets), "TreeEnsembleRegressor {}: n_targets {n_targets} is out of range", node.name);
        let n_targets = n_targets as usize;
        let aggregate = Aggregate::parse(node.get_attr_opt::<&str>("aggregate_function")?.unwrap_or("SUM"))?;
        let forest = Forest::build(&ForestAttrs::read(ctx, node, "target")?, n_targets, aggregate)
            .with_context(|| format!("TreeEnsembleRegressor {}", node.name))?;
        let base_values = floats(ctx, node, "base_values")?.unwrap_or_default();
        ensure!(
            base_values.is_empty() || base_values.len() == n_targets,
            "TreeEnsembleRegressor {}: {} base_values for {n_targets} targets",
            node.name,
            base_values.len()
        );
        Ok(TreeEnsembleRegressor { forest, n_targets, base_values, post_transform: PostTransform::parse(node)? })
    }

    /// Test and bench entry point: the parsed operator from a node.
    pub fn from_node(node: &NodeProto) -> TractResult<TreeEnsembleRegressor> {
        Self::parse(None, node)
    }

    /// `[N, n_targets]` values of an `[N, F]` input.
    pub fn run(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        self.eval(input)
    }
}

impl Kernel for TreeEnsembleRegressor {
    fn name(&self) -> &'static str {
        "TreeEnsembleRegressor"
    }

    fn outputs(&self) -> TVec<(OutType, OutShape)> {
        tvec![(OutType::Fixed(DatumType::F32), OutShape::RowsBy(self.n_targets))]
    }

    fn check_input(&self, dt: DatumType, features: Option<usize>) -> TractResult<()> {
        check_numeric(self.name(), dt, features, self.forest.n_features())
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        let rows = input.shape().first().copied().unwrap_or(0);
        let mut values = Vec::with_capacity(rows * self.n_targets);
        self.forest.eval(input, self.name(), |_, row| {
            row.iter_mut().zip(&self.base_values).for_each(|(v, b)| *v += b);
            self.post_transform.apply(row);
            values.extend(row.iter().map(|&v| v as f32));
        })?;
        Ok(tvec!(tensor1(&values).into_shape(&[rows, self.n_targets])?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    /// Two trees on features 0 and 1; two targets.
    fn node_with(extra: Vec<tract_onnx::pb::AttributeProto>) -> NodeProto {
        let mut attrs = vec![
            a_ints("nodes_treeids", &[0, 0, 0, 1, 1, 1]),
            a_ints("nodes_nodeids", &[0, 1, 2, 0, 1, 2]),
            a_ints("nodes_featureids", &[0, 0, 0, 1, 0, 0]),
            a_strs("nodes_modes", &["BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_LT", "LEAF", "LEAF"]),
            a_floats("nodes_values", &[0.5, 0.0, 0.0, 10.0, 0.0, 0.0]),
            a_ints("nodes_truenodeids", &[1, 0, 0, 1, 0, 0]),
            a_ints("nodes_falsenodeids", &[2, 0, 0, 2, 0, 0]),
            a_ints("target_treeids", &[0, 0, 1, 1]),
            a_ints("target_nodeids", &[1, 2, 1, 2]),
            a_ints("target_ids", &[0, 1, 0, 0]),
            a_floats("target_weights", &[1.0, 2.0, 10.0, 20.0]),
            a_int("n_targets", 2),
        ];
        // An extra attribute replaces the default of the same name.
        attrs.retain(|a| extra.iter().all(|e| e.name != a.name));
        attrs.extend(extra);
        node("TreeEnsembleRegressor", attrs)
    }

    fn run(n: &NodeProto, rows: &[[f32; 2]]) -> Vec<f32> {
        let op = TreeEnsembleRegressor::from_node(n).unwrap();
        let input = tensor2(rows);
        let out = op.run(&input).unwrap();
        assert_eq!(out[0].shape(), &[rows.len(), 2]);
        out[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec()
    }

    #[test]
    fn sums_per_target_then_adds_base_values() {
        let n = node_with(vec![a_floats("base_values", &[100.0, 200.0])]);
        // Row 1: tree 0 true (t0 += 1), tree 1 true (t0 += 10).
        // Row 2: tree 0 false (t1 += 2), tree 1 false (t0 += 20).
        assert_eq!(run(&n, &[[0.0, 0.0], [1.0, 10.0]]), vec![111.0, 200.0, 120.0, 202.0]);
    }

    #[test]
    fn average_min_max() {
        let avg = node_with(vec![a_string("aggregate_function", "AVERAGE")]);
        assert_eq!(run(&avg, &[[0.0, 0.0]]), vec![5.5, 0.0]);
        let min = node_with(vec![a_string("aggregate_function", "MIN")]);
        assert_eq!(run(&min, &[[0.0, 0.0]]), vec![1.0, 0.0]);
        let max = node_with(vec![a_string("aggregate_function", "MAX")]);
        assert_eq!(run(&max, &[[1.0, 10.0]]), vec![20.0, 2.0]);
    }

    #[test]
    fn nan_goes_false_by_default() {
        assert_eq!(run(&node_with(vec![]), &[[f32::NAN, f32::NAN]]), vec![20.0, 2.0]);
    }

    #[test]
    fn an_output_too_large_for_the_request_is_refused_before_it_is_allocated() {
        let wide = node_with(vec![a_int("n_targets", 1 << 20)]);
        let op = super::super::MlOp(TreeEnsembleRegressor::from_node(&wide).unwrap());
        assert_eq!(op.checked_eval(&tensor2(&[[0.0f32, 0.0]; 2])).unwrap()[0].shape(), &[2, 1 << 20]);
        // 65 rows of 2^20 targets: one row more than the 2^26 elements allowed.
        let err = op.checked_eval(&tensor2(&[[0.0f32, 0.0]; 65])).unwrap_err().to_string();
        assert!(err.contains("more than 67108864 elements"), "{err}");
    }

    #[test]
    fn bad_attributes_are_refused() {
        assert!(TreeEnsembleRegressor::from_node(&node_with(vec![a_floats("base_values", &[1.0])])).is_err());
        assert!(TreeEnsembleRegressor::from_node(&node_with(vec![a_string("aggregate_function", "MEDIAN")])).is_err());
    }
}
