//! `TreeEnsemble` (ai.onnx.ml opset 5): `[N, n_targets]` values, of the
//! input's type (float, double or float16).
//!
//! Opset 5 encodes the trees differently from `TreeEnsembleRegressor`:
//! interior nodes and leaves live in separate arrays, each branch says
//! whether its children are nodes or leaves (`nodes_trueleafs`), trees are
//! found from `tree_roots`, enums are integers and numbers are tensors. It
//! is translated here into the same attributes as the older operators and
//! compiled into the shared [`Forest`], so both run the same walk.
//!
//! Each reference to a leaf becomes its own leaf node, so a leaf shared by
//! two branches (as the spec's one-leaf tree does: both branches of a
//! single node name the same leaf) needs no special case. An interior node
//! reached twice within a tree, or from two trees, is refused, as the older
//! operators do.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::{NodeProto, TensorProto};
use tract_onnx::tract_hir::internal::*;

use super::post_transform::PostTransform;
use super::tree::{Aggregate, Forest, ForestAttrs};
use super::{Kernel, OutShape, OutType, ints};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TreeEnsemble {
    forest: Forest,
    n_targets: usize,
    post_transform: PostTransform,
}

pub(crate) fn build(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    super::op(TreeEnsemble::parse(ctx, node).with_context(|| format!("TreeEnsemble {}", node.name))?)
}

/// A tensor attribute as f64 values.
fn tensor_attr(ctx: &ParsingContext, node: &NodeProto, name: &str) -> TractResult<Option<Vec<f64>>> {
    let Some(proto) = node.get_attr_opt::<&TensorProto>(name)? else { return Ok(None) };
    let t = ctx.load_tensor(proto).with_context(|| format!("attribute {name}"))?;
    ensure!(t.datum_type().is_number(), "attribute {name} must be a numeric tensor, not {:?}", t.datum_type());
    let t = t.cast_to::<f64>()?.into_owned();
    Ok(Some(t.try_as_plain_ram()?.as_slice::<f64>()?.to_vec()))
}

const MODES: [&str; 7] = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ", "BRANCH_MEMBER"];
const MEMBER: usize = 6;

impl TreeEnsemble {
    pub(crate) fn parse(ctx: &ParsingContext, node: &NodeProto) -> TractResult<TreeEnsemble> {
        let need_ints = |name: &str| ints(node, name)?.with_context(|| format!("missing attribute {name}"));
        let need_tensor = |name: &str| tensor_attr(ctx, node, name)?.with_context(|| format!("missing attribute {name}"));
        let roots = need_ints("tree_roots")?;
        let features = need_ints("nodes_featureids")?;
        let true_ids = need_ints("nodes_truenodeids")?;
        let false_ids = need_ints("nodes_falsenodeids")?;
        let true_leafs = need_ints("nodes_trueleafs")?;
        let false_leafs = need_ints("nodes_falseleafs")?;
        let splits = need_tensor("nodes_splits")?;
        let modes = need_tensor("nodes_modes")?;
        let missing = ints(node, "nodes_missing_value_tracks_true")?.unwrap_or_default();
        let leaf_targets = need_ints("leaf_targetids")?;
        let leaf_weights = need_tensor("leaf_weights")?;
        let members = tensor_attr(ctx, node, "membership_values")?.unwrap_or_default();

        let n = features.len();
        for (name, len) in [
            ("nodes_truenodeids", true_ids.len()),
            ("nodes_falsenodeids", false_ids.len()),
            ("nodes_trueleafs", true_leafs.len()),
            ("nodes_falseleafs", false_leafs.len()),
            ("nodes_splits", splits.len()),
            ("nodes_modes", modes.len()),
        ] {
            ensure!(len == n, "{name} has {len} entries, nodes_featureids has {n}");
        }
        ensure!(missing.is_empty() || missing.len() == n, "nodes_missing_value_tracks_true has {} entries for {n} nodes", missing.len());
        ensure!(
            leaf_targets.len() == leaf_weights.len(),
            "leaf_targetids has {} entries, leaf_weights {}",
            leaf_targets.len(),
            leaf_weights.len()
        );
        ensure!(!roots.is_empty(), "tree_roots is empty");
        let modes: Vec<usize> = modes
            .iter()
            .map(|&m| MODES.get(m as usize).filter(|_| m >= 0.0 && m.fract() == 0.0).map(|_| m as usize))
            .collect::<Option<_>>()
            .context("nodes_modes holds a value outside 0..=6")?;

        // The sets of BRANCH_MEMBER nodes, in node order, NaN-delimited.
        let mut sets = vec![Vec::new(); n];
        let mut chunks = members.split(|v| v.is_nan());
        for i in (0..n).filter(|&i| modes[i] == MEMBER) {
            sets[i] = chunks.next().filter(|c| !c.is_empty()).map(<[f64]>::to_vec).with_context(|| {
                format!("membership_values has no set for BRANCH_MEMBER node {i} (one NaN-terminated set per such node)")
            })?;
        }
        ensure!(chunks.all(<[f64]>::is_empty), "membership_values has more sets than there are BRANCH_MEMBER nodes");

        let n_targets = match node.get_attr_opt::<i64>("n_targets")? {
            Some(t) => t,
            None => leaf_targets.iter().copied().max().map_or(1, |m| m.saturating_add(1)),
        };
        ensure!((1..=1 << 20).contains(&n_targets), "n_targets {n_targets} is out of range");
        let n_targets = n_targets as usize;
        let aggregate = match node.get_attr_opt::<i64>("aggregate_function")?.unwrap_or(1) {
            0 => Aggregate::Average,
            1 => Aggregate::Sum,
            2 => Aggregate::Min,
            3 => Aggregate::Max,
            other => bail!("unknown aggregate_function {other} (0 AVERAGE, 1 SUM, 2 MIN, 3 MAX)"),
        };
        let post_transform = match node.get_attr_opt::<i64>("post_transform")?.unwrap_or(0) {
            0 => PostTransform::None,
            1 => PostTransform::Softmax,
            2 => PostTransform::Logistic,
            3 => PostTransform::SoftmaxZero,
            4 => PostTransform::Probit,
            other => bail!("unknown post_transform {other} (0 NONE, 1 SOFTMAX, 2 LOGISTIC, 3 SOFTMAX_ZERO, 4 PROBIT)"),
        };

        // Translation into per-tree node ids: interior node i keeps id i,
        // each leaf reference gets a fresh id after them.
        let mut a = ForestAttrs::default();
        let mut next_leaf_id = n as i64 - 1;
        let mut seen = vec![usize::MAX; n];
        for (tree, &root) in roots.iter().enumerate() {
            let tree_id = tree as i64;
            ensure!(root >= 0 && (root as usize) < n, "tree_roots entry {root} is out of range 0..{n}");
            let mut stack = vec![root as usize];
            while let Some(i) = stack.pop() {
                // A node met again in this tree is emitted once; the forest
                // builder then finds the second link and refuses the graph.
                if seen[i] == tree {
                    continue;
                }
                // SECURITY: a node shared between trees would be copied into
                // each, so a small hostile file naming one deep tree under
                // many roots could expand without bound at load time.
                ensure!(seen[i] == usize::MAX, "node {i} belongs to both tree {} and tree {tree}", seen[i]);
                seen[i] = tree;
                let mut leaves = Vec::new();
                let mut child_id = |child: i64, is_leaf: i64| -> TractResult<i64> {
                    if is_leaf != 0 {
                        let k = usize::try_from(child)
                            .ok()
                            .filter(|&k| k < leaf_weights.len())
                            .with_context(|| format!("node {i} points to leaf {child}, out of range 0..{}", leaf_weights.len()))?;
                        next_leaf_id += 1;
                        leaves.push((next_leaf_id, k));
                        Ok(next_leaf_id)
                    } else {
                        let c = usize::try_from(child)
                            .ok()
                            .filter(|&c| c < n)
                            .with_context(|| format!("node {i} points to node {child}, out of range 0..{n}"))?;
                        stack.push(c);
                        Ok(child)
                    }
                };
                let on_true = child_id(true_ids[i], true_leafs[i])?;
                let on_false = child_id(false_ids[i], false_leafs[i])?;
                push_node(&mut a, tree_id, i as i64, features[i], MODES[modes[i]], splits[i], on_true, on_false);
                a.missing_tracks_true.push(missing.get(i).copied().unwrap_or(0));
                a.members.push(sets[i].clone());
                for (id, k) in leaves {
                    push_node(&mut a, tree_id, id, 0, "LEAF", 0.0, 0, 0);
                    a.missing_tracks_true.push(0);
                    a.members.push(Vec::new());
                    a.leaf_tree_ids.push(tree_id);
                    a.leaf_node_ids.push(id);
                    a.leaf_outputs.push(leaf_targets[k]);
                    a.leaf_weights.push(leaf_weights[k]);
                }
            }
        }
        let forest = Forest::build(&a, n_targets, aggregate)?;
        Ok(TreeEnsemble { forest, n_targets, post_transform })
    }
}

/// Appends one node to the older operators' parallel arrays.
#[allow(clippy::too_many_arguments)]
fn push_node(a: &mut ForestAttrs, tree: i64, id: i64, feature: i64, mode: &str, value: f64, on_true: i64, on_false: i64) {
    a.tree_ids.push(tree);
    a.node_ids.push(id);
    a.feature_ids.push(feature);
    a.modes.push(mode.into());
    a.values.push(value);
    a.true_ids.push(on_true);
    a.false_ids.push(on_false);
}

impl Kernel for TreeEnsemble {
    fn name(&self) -> &'static str {
        "TreeEnsemble"
    }

    fn outputs(&self) -> TVec<(OutType, OutShape)> {
        tvec![(OutType::Input, OutShape::RowsBy(self.n_targets))]
    }

    fn check_input(&self, dt: DatumType, features: Option<usize>) -> TractResult<()> {
        ensure!(
            matches!(dt, DatumType::F32 | DatumType::F64 | DatumType::F16),
            "TreeEnsemble takes float, double or float16 inputs, not {dt:?}"
        );
        if let Some(f) = features {
            ensure!(f >= self.forest.n_features(), "TreeEnsemble reads {} features but the input has {f}", self.forest.n_features());
        }
        Ok(())
    }

    fn eval(&self, input: &Tensor) -> TractResult<TVec<Tensor>> {
        self.check_input(input.datum_type(), None)?;
        let rows = input.shape().first().copied().unwrap_or(0);
        let mut values = Vec::with_capacity(rows * self.n_targets);
        self.forest.eval(input, self.name(), |_, row| {
            self.post_transform.apply(row);
            values.extend_from_slice(row);
        })?;
        let out = tensor1(&values).into_shape(&[rows, self.n_targets])?;
        Ok(tvec!(out.cast_to_dt(input.datum_type())?.into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use tract_onnx::pb::{AttributeProto, tensor_proto::DataType};

    use super::super::test_util::*;
    use super::*;

    /// The test graph of `tests/python/test_onnx_ml_ops.py`: three trees
    /// over three features, two targets.
    ///   tree 0: x0 <= 0.5 (NaN: true) ? (x1 in {1, 3} ? leaf1 : leaf2) : leaf0
    ///   tree 1: x2 > 0 (NaN: true) ? leaf3 : (x0 == 2 ? leaf4 : leaf5)
    ///   tree 2: one leaf (both branches of node 4 name leaf 6)
    fn attrs() -> Vec<AttributeProto> {
        vec![
            a_ints("tree_roots", &[0, 2, 4]),
            a_ints("nodes_featureids", &[0, 1, 2, 0, 0]),
            a_tensor("nodes_modes", DataType::Uint8, &[0.0, 6.0, 3.0, 4.0, 0.0]),
            a_tensor("nodes_splits", DataType::Float, &[0.5, 0.0, 0.0, 2.0, 0.0]),
            a_ints("nodes_truenodeids", &[1, 1, 3, 4, 6]),
            a_ints("nodes_trueleafs", &[0, 1, 1, 1, 1]),
            a_ints("nodes_falsenodeids", &[0, 2, 3, 5, 6]),
            a_ints("nodes_falseleafs", &[1, 1, 0, 1, 1]),
            a_ints("nodes_missing_value_tracks_true", &[1, 0, 1, 0, 0]),
            a_tensor("membership_values", DataType::Float, &[1.0, 3.0, f64::NAN]),
            a_ints("leaf_targetids", &[0, 1, 0, 1, 0, 1, 1]),
            a_tensor("leaf_weights", DataType::Float, &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 0.25]),
            a_int("n_targets", 2),
        ]
    }

    fn with(change: &[(&str, Option<AttributeProto>)]) -> NodeProto {
        let mut a = attrs();
        for (name, new) in change {
            a.retain(|x| x.name != *name);
            a.extend(new.clone());
        }
        node("TreeEnsemble", a)
    }

    fn parse(n: &NodeProto) -> TractResult<TreeEnsemble> {
        with_ctx(|ctx| TreeEnsemble::parse(ctx, n))
    }

    fn rows() -> Tensor {
        let nan = f32::NAN;
        tensor2(&[[0f32, 1.0, 1.0], [0.0, 2.0, -1.0], [1.0, 3.0, 0.0], [2.0, 3.0, -5.0], [nan, 1.0, nan], [0.5, nan, 0.0], [3.0, 0.0, 2.0]])
    }

    fn run(n: &NodeProto, x: &Tensor) -> Vec<f64> {
        let out = parse(n).unwrap().eval(x).unwrap().remove(0);
        assert_eq!(out.datum_type(), x.datum_type(), "output type follows the input");
        assert_eq!(out.shape(), &[x.shape()[0], 2]);
        out.cast_to::<f64>().unwrap().try_as_plain_ram().unwrap().as_slice::<f64>().unwrap().to_vec()
    }

    /// Worked by hand from the spec (and equal to onnxruntime's output).
    const SUMS: [f64; 14] = [0.0, 10.25, 4.0, 32.25, 1.0, 32.25, 17.0, 0.25, 0.0, 10.25, 4.0, 32.25, 1.0, 8.25];

    #[test]
    fn sums_follow_branches_membership_and_missing_values() {
        assert_eq!(run(&node("TreeEnsemble", attrs()), &rows()), SUMS);
        let doubles = rows().cast_to::<f64>().unwrap().into_owned();
        assert_eq!(run(&node("TreeEnsemble", attrs()), &doubles), SUMS);
    }

    #[test]
    fn aggregates_and_post_transform_use_the_spec_numbers() {
        let avg = run(&with(&[("aggregate_function", Some(a_int("aggregate_function", 0)))]), &rows());
        assert!(avg.iter().zip(SUMS).all(|(a, s)| (a - s / 3.0).abs() < 1e-6), "{avg:?}");
        // MIN and MAX: a target no tree reaches is 0, as in onnxruntime.
        let min = run(&with(&[("aggregate_function", Some(a_int("aggregate_function", 2)))]), &rows());
        assert_eq!(&min[..4], &[0.0, 0.25, 4.0, 0.25]);
        let max = run(&with(&[("aggregate_function", Some(a_int("aggregate_function", 3)))]), &rows());
        assert_eq!(&max[..4], &[0.0, 8.0, 4.0, 32.0]);
        // 1 is SOFTMAX and 2 LOGISTIC in the spec (onnxruntime swaps them).
        let soft = run(&with(&[("post_transform", Some(a_int("post_transform", 1)))]), &rows());
        assert!((soft[0] + soft[1] - 1.0).abs() < 1e-6 && soft[0] < 1e-4, "{soft:?}");
        let logistic = run(&with(&[("post_transform", Some(a_int("post_transform", 2)))]), &rows());
        assert!((logistic[0] - 0.5).abs() < 1e-6, "{logistic:?}");
    }

    #[test]
    fn n_targets_defaults_to_the_largest_target_id() {
        let n = with(&[("n_targets", None)]);
        assert_eq!(run(&n, &rows()), SUMS);
    }

    #[test]
    fn bad_attributes_are_clear_load_errors() {
        let err = |n: NodeProto| format!("{:#}", parse(&n).unwrap_err());
        assert!(err(with(&[("tree_roots", None)])).contains("missing attribute tree_roots"));
        assert!(err(with(&[("tree_roots", Some(a_ints("tree_roots", &[9])))])).contains("out of range"));
        assert!(err(with(&[("nodes_trueleafs", Some(a_ints("nodes_trueleafs", &[0, 1])))])).contains("nodes_trueleafs has 2 entries"));
        assert!(
            err(with(&[("nodes_modes", Some(a_tensor("nodes_modes", DataType::Uint8, &[0.0, 7.0, 3.0, 4.0, 0.0])))])).contains("0..=6")
        );
        assert!(err(with(&[("membership_values", None)])).contains("no set for BRANCH_MEMBER node 1"));
        let two_sets = a_tensor("membership_values", DataType::Float, &[1.0, f64::NAN, 2.0, f64::NAN]);
        assert!(err(with(&[("membership_values", Some(two_sets))])).contains("more sets"));
        assert!(err(with(&[("nodes_falsenodeids", Some(a_ints("nodes_falsenodeids", &[0, 2, 3, 5, 60])))])).contains("leaf 60"));
        assert!(err(with(&[("leaf_targetids", Some(a_ints("leaf_targetids", &[0, 1, 0, 1, 0, 1, 5])))])).contains("out of range"));
        assert!(err(with(&[("aggregate_function", Some(a_int("aggregate_function", 4)))])).contains("aggregate_function 4"));
        assert!(err(with(&[("post_transform", Some(a_int("post_transform", 5)))])).contains("post_transform 5"));
        assert!(
            err(with(&[("tree_roots", Some(a_ints("tree_roots", &[0, 2, 4, 1])))])).contains("node 1 belongs to both tree 0 and tree 3")
        );
        // Node 0's true branch back to itself: a cycle, not a tree.
        let cycle = with(&[("nodes_truenodeids", Some(a_ints("nodes_truenodeids", &[0, 1, 3, 4, 6])))]);
        assert!(parse(&cycle).is_err());
        // Integer input is not a T of the spec.
        assert!(parse(&node("TreeEnsemble", attrs())).unwrap().eval(&tensor2(&[[1i64, 2, 3]])).is_err());
    }
}
