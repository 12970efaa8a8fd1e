//! The tree ensemble shared by `TreeEnsembleClassifier` and
//! `TreeEnsembleRegressor`: the attributes' parallel arrays checked once and
//! laid out as one flat node array, each tree in depth-first order so a walk
//! down the tree mostly stays within a few cache lines.
//!
//! Why not tract's: it builds an error value at every leaf and scans the
//! leaves linearly; here a leaf carries the range of its contributions and a
//! branch picks its child with a select, not a jump per mode.

use std::collections::{HashMap, HashSet};

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use super::{floats, ints, strings};

/// How the trees' contributions to one output combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

impl Aggregate {
    pub(crate) fn parse(s: &str) -> TractResult<Aggregate> {
        Ok(match s {
            "SUM" => Aggregate::Sum,
            "AVERAGE" => Aggregate::Average,
            "MIN" => Aggregate::Min,
            "MAX" => Aggregate::Max,
            other => bail!("unknown aggregate_function {other:?}"),
        })
    }
}

const LEAF: u8 = 0;
const LEQ: u8 = 1;
const LT: u8 = 2;
const GTE: u8 = 3;
const GT: u8 = 4;
const EQ: u8 = 5;
const NEQ: u8 = 6;
/// Set membership (`TreeEnsemble` v5 only).
const MEMBER: u8 = 7;

fn parse_mode(s: &str) -> TractResult<u8> {
    Ok(match s {
        "LEAF" => LEAF,
        "BRANCH_LEQ" => LEQ,
        "BRANCH_LT" => LT,
        "BRANCH_GTE" => GTE,
        "BRANCH_GT" => GT,
        "BRANCH_EQ" => EQ,
        "BRANCH_NEQ" => NEQ,
        "BRANCH_MEMBER" => MEMBER,
        other => bail!("unknown node mode {other:?}"),
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    /// Thresholds are kept in f64: converters store doubles in
    /// `nodes_values_as_tensor`, and an f32 input compares exactly in f64.
    /// INVARIANT: for a BRANCH_MEMBER node, the index of its set in
    /// `Forest::sets` (a small integer, exact in f64), so that the node
    /// stays 24 bytes. For a leaf, the range of its contributions in
    /// `Forest::targets`, start in the high 32 bits and end in the low ones
    /// (read with [`leaf_range`]; a leaf's threshold is never compared).
    threshold: f64,
    feature: u32,
    /// Branch: the child taken when the test holds. Leaf: itself.
    on_true: u32,
    /// Branch: the child taken otherwise. Leaf: itself.
    on_false: u32,
    mode: u8,
    /// A missing value (NaN) takes the true branch (else the false one).
    nan_true: bool,
}

/// A parsed, validated tree ensemble.
#[derive(Debug, Clone, PartialEq)]
pub struct Forest {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    /// Contributions of the leaves: output index and weight.
    targets: Vec<u32>,
    weights: Vec<f64>,
    /// The value sets of BRANCH_MEMBER nodes.
    sets: Vec<Vec<f64>>,
    n_outputs: usize,
    n_features: usize,
    aggregate: Aggregate,
    /// Every branch is BRANCH_LEQ (what scikit-learn converters emit).
    all_leq: bool,
}

/// The attributes a forest is built from, named as in the ONNX-ML spec;
/// `prefix` is `class` for classifiers and `target` for regressors.
#[derive(Debug, Clone, Default)]
pub(crate) struct ForestAttrs {
    pub tree_ids: Vec<i64>,
    pub node_ids: Vec<i64>,
    pub feature_ids: Vec<i64>,
    pub modes: Vec<String>,
    pub values: Vec<f64>,
    pub true_ids: Vec<i64>,
    pub false_ids: Vec<i64>,
    pub missing_tracks_true: Vec<i64>,
    pub leaf_tree_ids: Vec<i64>,
    pub leaf_node_ids: Vec<i64>,
    pub leaf_outputs: Vec<i64>,
    pub leaf_weights: Vec<f64>,
    /// Per node, the values a BRANCH_MEMBER node tests against (empty for
    /// other modes, or entirely empty when no node tests membership).
    pub members: Vec<Vec<f64>>,
}

impl ForestAttrs {
    pub(crate) fn read(ctx: Option<&ParsingContext>, node: &NodeProto, prefix: &str) -> TractResult<ForestAttrs> {
        let need_ints = |name: &str| ints(node, name)?.with_context(|| format!("missing attribute {name}"));
        let need_floats = |name: &str| floats(ctx, node, name)?.with_context(|| format!("missing attribute {name}"));
        Ok(ForestAttrs {
            tree_ids: need_ints("nodes_treeids")?,
            node_ids: need_ints("nodes_nodeids")?,
            feature_ids: need_ints("nodes_featureids")?,
            modes: strings(node, "nodes_modes")?.context("missing attribute nodes_modes")?,
            values: need_floats("nodes_values")?,
            true_ids: need_ints("nodes_truenodeids")?,
            false_ids: need_ints("nodes_falsenodeids")?,
            missing_tracks_true: ints(node, "nodes_missing_value_tracks_true")?.unwrap_or_default(),
            leaf_tree_ids: need_ints(&format!("{prefix}_treeids"))?,
            leaf_node_ids: need_ints(&format!("{prefix}_nodeids"))?,
            leaf_outputs: need_ints(&format!("{prefix}_ids"))?,
            leaf_weights: need_floats(&format!("{prefix}_weights"))?,
            members: vec![],
        })
    }
}

fn index(what: &str, v: i64, bound: usize) -> TractResult<u32> {
    ensure!(v >= 0 && (v as u64) < bound.min(u32::MAX as usize) as u64, "{what} {v} is out of range 0..{bound}");
    Ok(v as u32)
}

impl Forest {
    pub(crate) fn build(a: &ForestAttrs, n_outputs: usize, aggregate: Aggregate) -> TractResult<Forest> {
        let n = a.node_ids.len();
        ensure!(n > 0, "the ensemble has no nodes");
        for (name, len) in [
            ("nodes_treeids", a.tree_ids.len()),
            ("nodes_featureids", a.feature_ids.len()),
            ("nodes_modes", a.modes.len()),
            ("nodes_values", a.values.len()),
            ("nodes_truenodeids", a.true_ids.len()),
            ("nodes_falsenodeids", a.false_ids.len()),
        ] {
            ensure!(len == n, "{name} has {len} entries, nodes_nodeids has {n}");
        }
        ensure!(
            a.missing_tracks_true.is_empty() || a.missing_tracks_true.len() == n,
            "nodes_missing_value_tracks_true has {} entries, nodes_nodeids has {n}",
            a.missing_tracks_true.len()
        );
        let m = a.leaf_weights.len();
        for (name, len) in
            [("leaf tree ids", a.leaf_tree_ids.len()), ("leaf node ids", a.leaf_node_ids.len()), ("leaf ids", a.leaf_outputs.len())]
        {
            ensure!(len == m, "{name} have {len} entries, the weights {m}");
        }

        let mut by_id: HashMap<(i64, i64), usize> = HashMap::with_capacity(n);
        for i in 0..n {
            ensure!(
                by_id.insert((a.tree_ids[i], a.node_ids[i]), i).is_none(),
                "node {} of tree {} is defined twice",
                a.node_ids[i],
                a.tree_ids[i]
            );
        }
        let modes = a.modes.iter().map(|s| parse_mode(s)).collect::<TractResult<Vec<u8>>>()?;
        let child = |i: usize, id: i64| -> TractResult<usize> {
            by_id
                .get(&(a.tree_ids[i], id))
                .copied()
                .with_context(|| format!("node {} of tree {} points to missing node {id}", a.node_ids[i], a.tree_ids[i]))
        };

        // A root is a node no other node of its tree points to.
        let mut is_child = vec![false; n];
        for i in (0..n).filter(|&i| modes[i] != LEAF) {
            is_child[child(i, a.true_ids[i])?] = true;
            is_child[child(i, a.false_ids[i])?] = true;
        }
        let mut tree_roots: Vec<(i64, usize)> = Vec::new();
        let mut rooted: HashSet<i64> = HashSet::new();
        for i in (0..n).filter(|&i| !is_child[i]) {
            ensure!(rooted.insert(a.tree_ids[i]), "tree {} has more than one root", a.tree_ids[i]);
            tree_roots.push((a.tree_ids[i], i));
        }
        let mut tree_ids: Vec<i64> = a.tree_ids.clone();
        tree_ids.sort_unstable();
        tree_ids.dedup();
        ensure!(tree_roots.len() == tree_ids.len(), "some tree has no root (its nodes form a cycle)");

        let mut leaf_contribs: HashMap<usize, Vec<usize>> = HashMap::new();
        for k in 0..m {
            let i = by_id
                .get(&(a.leaf_tree_ids[k], a.leaf_node_ids[k]))
                .copied()
                .with_context(|| format!("a weight is given for missing node {} of tree {}", a.leaf_node_ids[k], a.leaf_tree_ids[k]))?;
            ensure!(modes[i] == LEAF, "a weight is given for node {} of tree {}, which is not a leaf", a.node_ids[i], a.tree_ids[i]);
            leaf_contribs.entry(i).or_default().push(k);
        }

        // Depth-first layout; visiting a node twice means the graph is not
        // a tree, which would otherwise make evaluation loop forever.
        let mut nodes = Vec::with_capacity(n);
        let mut roots = Vec::with_capacity(tree_roots.len());
        let mut targets = Vec::with_capacity(m);
        let mut weights = Vec::with_capacity(m);
        let mut sets: Vec<Vec<f64>> = Vec::new();
        let mut placed = vec![u32::MAX; n];
        let mut n_features = 0usize;
        for &(_, root) in &tree_roots {
            roots.push(nodes.len() as u32);
            // (original index, slot of the parent's link to fill, is true link)
            let mut stack: Vec<(usize, Option<(usize, bool)>)> = vec![(root, None)];
            while let Some((i, parent)) = stack.pop() {
                ensure!(placed[i] == u32::MAX, "node {} of tree {} is reached twice: not a tree", a.node_ids[i], a.tree_ids[i]);
                let at = nodes.len();
                placed[i] = at as u32;
                if let Some((p, on_true)) = parent {
                    let link: &mut Node = &mut nodes[p];
                    if on_true {
                        link.on_true = at as u32;
                    } else {
                        link.on_false = at as u32;
                    }
                }
                let nan_true = a.missing_tracks_true.get(i).is_some_and(|&v| v != 0);
                if modes[i] == LEAF {
                    let start = targets.len() as u32;
                    for &k in leaf_contribs.get(&i).map(Vec::as_slice).unwrap_or(&[]) {
                        targets.push(index("leaf output id", a.leaf_outputs[k], n_outputs)?);
                        weights.push(a.leaf_weights[k]);
                    }
                    let range = (u64::from(start) << 32) | targets.len() as u64;
                    let link = at as u32;
                    nodes.push(Node { threshold: f64::from_bits(range), feature: 0, on_true: link, on_false: link, mode: LEAF, nan_true });
                } else {
                    let feature = index("feature id", a.feature_ids[i], u32::MAX as usize)?;
                    n_features = n_features.max(feature as usize + 1);
                    let threshold = if modes[i] == MEMBER {
                        let set = a.members.get(i).filter(|s| !s.is_empty()).with_context(|| {
                            format!("node {} of tree {} tests set membership but has no set", a.node_ids[i], a.tree_ids[i])
                        })?;
                        sets.push(set.clone());
                        (sets.len() - 1) as f64
                    } else {
                        a.values[i]
                    };
                    nodes.push(Node { threshold, feature, on_true: 0, on_false: 0, mode: modes[i], nan_true });
                    // The false child is pushed first so the true child is
                    // laid out right after its parent.
                    stack.push((child(i, a.false_ids[i])?, Some((at, false))));
                    stack.push((child(i, a.true_ids[i])?, Some((at, true))));
                }
            }
        }
        let all_leq = nodes.iter().all(|n| n.mode == LEAF || n.mode == LEQ);
        Ok(Forest { nodes, roots, targets, weights, sets, n_outputs, n_features, aggregate, all_leq })
    }

    pub(crate) fn n_features(&self) -> usize {
        self.n_features
    }

    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.roots.len()
    }

    /// Distinct output ids that receive a contribution.
    pub(crate) fn used_outputs(&self) -> Vec<u32> {
        let mut v = self.targets.clone();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The child a branch sends `x` to.
    #[inline(always)]
    fn next<const ALL_LEQ: bool>(&self, n: &Node, x: &[f64]) -> u32 {
        let v = x[n.feature as usize];
        let t = n.threshold;
        let nan = v.is_nan();
        let holds = if ALL_LEQ {
            // NaN fails `<=`, so only the missing-value flag can send it true.
            v <= t
        } else {
            match n.mode {
                LEQ => v <= t,
                LT => v < t,
                GTE => v >= t,
                GT => v > t,
                EQ => v == t,
                NEQ => v != t,
                MEMBER => self.sets[t as usize].contains(&v),
                _ => false,
            }
        };
        if (holds & !nan) | (nan & n.nan_true) { n.on_true } else { n.on_false }
    }

    /// The leaves `L` rows reach in the tree at `root`, walked side by side
    /// so that the loads of one walk overlap those of the others instead of
    /// each step waiting for the previous one.
    #[inline(always)]
    fn walk<const L: usize, const ALL_LEQ: bool>(&self, root: u32, rows: [&[f64]; L]) -> [u32; L] {
        let mut at = [root; L];
        loop {
            let mut live = false;
            for l in 0..L {
                let n = &self.nodes[at[l] as usize];
                if n.mode != LEAF {
                    live = true;
                    at[l] = self.next::<ALL_LEQ>(n, rows[l]);
                }
            }
            if !live {
                return at;
            }
        }
    }

    /// Adds the contributions of `leaf` to one row's scores.
    #[inline(always)]
    fn add_leaf(&self, leaf: u32, out: &mut [f64], seen: &mut [bool]) {
        let range = leaf_range(&self.nodes[leaf as usize]);
        for (&t, &w) in self.targets[range.clone()].iter().zip(&self.weights[range]) {
            let t = t as usize;
            match self.aggregate {
                Aggregate::Sum | Aggregate::Average => out[t] += w,
                Aggregate::Min => out[t] = if seen[t] { out[t].min(w) } else { w },
                Aggregate::Max => out[t] = if seen[t] { out[t].max(w) } else { w },
            }
            seen[t] = true;
        }
    }

    /// Aggregated scores of one row into `out` (length `n_outputs`).
    /// Outputs no leaf contributes to are 0.
    #[cfg(test)]
    pub(crate) fn eval_row(&self, x: &[f64], out: &mut [f64], seen: &mut [bool]) {
        self.eval_block(&[x], out, seen);
    }

    /// Aggregated scores of `rows` into `out` (`rows.len() * n_outputs`,
    /// row by row), the trees taken in turn so that each stays in cache
    /// while every row walks it. Each row's contributions still add up in
    /// tree order, so the result is the same as one row at a time, bit for
    /// bit.
    fn eval_block(&self, rows: &[&[f64]], out: &mut [f64], seen: &mut [bool]) {
        if self.all_leq { self.eval_block_with::<true>(rows, out, seen) } else { self.eval_block_with::<false>(rows, out, seen) }
    }

    fn eval_block_with<const ALL_LEQ: bool>(&self, rows: &[&[f64]], out: &mut [f64], seen: &mut [bool]) {
        let k = self.n_outputs;
        out.iter_mut().for_each(|v| *v = 0.0);
        seen.iter_mut().for_each(|v| *v = false);
        for &root in &self.roots {
            let mut groups = rows.chunks_exact(LANES);
            let mut r = 0;
            for group in &mut groups {
                let lanes: [&[f64]; LANES] = std::array::from_fn(|l| group[l]);
                for leaf in self.walk::<LANES, ALL_LEQ>(root, lanes) {
                    self.add_leaf(leaf, &mut out[r * k..][..k], &mut seen[r * k..][..k]);
                    r += 1;
                }
            }
            for row in groups.remainder() {
                let [leaf] = self.walk::<1, ALL_LEQ>(root, [row]);
                self.add_leaf(leaf, &mut out[r * k..][..k], &mut seen[r * k..][..k]);
                r += 1;
            }
        }
        if self.aggregate == Aggregate::Average {
            let n = self.roots.len() as f64;
            out.iter_mut().for_each(|v| *v /= n);
        }
    }

    /// Scores for every row of an `[N, F]` input, `N * n_outputs` values,
    /// each row handed to `finish` to add base values and transform.
    pub(crate) fn eval(&self, input: &Tensor, name: &str, mut finish: impl FnMut(usize, &mut [f64])) -> TractResult<()> {
        ensure!(input.rank() == 2, "{name} expects a [N, features] input, got shape {:?}", input.shape());
        let (n_rows, cols) = (input.shape()[0], input.shape()[1]);
        ensure!(cols >= self.n_features, "{name} reads {} features but the input has {cols}", self.n_features);
        let x = input.cast_to::<f64>()?;
        let x = x.try_as_plain_ram()?.as_slice::<f64>()?;
        let row = |r: usize| &x[r * cols..][..cols];
        let block = n_rows.min(BLOCK);
        let k = self.n_outputs;
        let mut out = vec![0.0; block * k];
        let mut seen = vec![false; block * k];
        let mut rows: Vec<&[f64]> = Vec::with_capacity(block);
        for start in (0..n_rows).step_by(BLOCK) {
            let end = n_rows.min(start + BLOCK);
            rows.clear();
            rows.extend((start..end).map(row));
            let (out, seen) = (&mut out[..rows.len() * k], &mut seen[..rows.len() * k]);
            self.eval_block(&rows, out, seen);
            for i in 0..end - start {
                finish(start + i, &mut out[i * k..][..k]);
            }
        }
        Ok(())
    }
}

/// Rows walked side by side through a tree.
const LANES: usize = 8;
/// Rows evaluated together, tree by tree.
const BLOCK: usize = 64;

/// A leaf's contributions, from its threshold's bits (see [`Node`]).
#[inline(always)]
fn leaf_range(n: &Node) -> std::ops::Range<usize> {
    let bits = n.threshold.to_bits();
    (bits >> 32) as usize..(bits & u64::from(u32::MAX)) as usize
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One tree: node 0 tests feature 0 against 0.5 with `mode`; node 1
    /// (true) is a leaf giving 1.0 to output 0, node 2 (false) 2.0.
    pub(crate) fn stump(mode: &str, nan_true: bool) -> ForestAttrs {
        ForestAttrs {
            tree_ids: vec![0, 0, 0],
            node_ids: vec![0, 1, 2],
            feature_ids: vec![0, 0, 0],
            modes: vec![mode.into(), "LEAF".into(), "LEAF".into()],
            values: vec![0.5, 0.0, 0.0],
            true_ids: vec![1, 0, 0],
            false_ids: vec![2, 0, 0],
            missing_tracks_true: vec![i64::from(nan_true), 0, 0],
            leaf_tree_ids: vec![0, 0],
            leaf_node_ids: vec![1, 2],
            leaf_outputs: vec![0, 0],
            leaf_weights: vec![1.0, 2.0],
            members: vec![],
        }
    }

    fn one(f: &Forest, x: f64) -> f64 {
        let mut out = vec![0.0; f.n_outputs];
        let mut seen = vec![false; f.n_outputs];
        f.eval_row(&[x], &mut out, &mut seen);
        out[0]
    }

    #[test]
    fn every_mode_compares_as_the_spec_says() {
        // (mode, x, expected leaf weight): 1.0 when the test holds.
        let cases = [
            ("BRANCH_LEQ", 0.5, 1.0),
            ("BRANCH_LEQ", 0.6, 2.0),
            ("BRANCH_LT", 0.5, 2.0),
            ("BRANCH_LT", 0.4, 1.0),
            ("BRANCH_GTE", 0.5, 1.0),
            ("BRANCH_GTE", 0.4, 2.0),
            ("BRANCH_GT", 0.5, 2.0),
            ("BRANCH_GT", 0.6, 1.0),
            ("BRANCH_EQ", 0.5, 1.0),
            ("BRANCH_EQ", 0.6, 2.0),
            ("BRANCH_NEQ", 0.5, 2.0),
            ("BRANCH_NEQ", 0.6, 1.0),
        ];
        for (mode, x, want) in cases {
            let f = Forest::build(&stump(mode, false), 1, Aggregate::Sum).unwrap();
            assert_eq!(one(&f, x), want, "{mode} at {x}");
        }
    }

    #[test]
    fn membership_tests_the_node_set() {
        let mut a = stump("BRANCH_MEMBER", true);
        a.members = vec![vec![1.0, 3.0], vec![], vec![]];
        let f = Forest::build(&a, 1, Aggregate::Sum).unwrap();
        assert_eq!((one(&f, 1.0), one(&f, 3.0), one(&f, 2.0), one(&f, 0.5)), (1.0, 1.0, 2.0, 2.0));
        assert_eq!(one(&f, f64::NAN), 1.0, "missing value tracks true");
        a.members.clear();
        let e = Forest::build(&a, 1, Aggregate::Sum).unwrap_err();
        assert!(format!("{e}").contains("has no set"), "{e}");
    }

    #[test]
    fn missing_values_follow_the_flag_in_every_mode() {
        for mode in ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"] {
            let tracks = Forest::build(&stump(mode, true), 1, Aggregate::Sum).unwrap();
            assert_eq!(one(&tracks, f64::NAN), 1.0, "{mode} with missing_value_tracks_true");
            let not = Forest::build(&stump(mode, false), 1, Aggregate::Sum).unwrap();
            assert_eq!(one(&not, f64::NAN), 2.0, "{mode} without");
        }
    }

    /// Two stumps on feature 0, the second shifted to give 10 and 20.
    fn two_trees(aggregate: Aggregate) -> Forest {
        let mut a = stump("BRANCH_LEQ", false);
        let b = stump("BRANCH_LEQ", false);
        a.tree_ids.extend(b.tree_ids.iter().map(|_| 7));
        a.node_ids.extend(&b.node_ids);
        a.feature_ids.extend(&b.feature_ids);
        a.modes.extend(b.modes.clone());
        a.values.extend(&b.values);
        a.true_ids.extend(&b.true_ids);
        a.false_ids.extend(&b.false_ids);
        a.missing_tracks_true.extend(&b.missing_tracks_true);
        a.leaf_tree_ids.extend([7, 7]);
        a.leaf_node_ids.extend(&b.leaf_node_ids);
        a.leaf_outputs.extend(&b.leaf_outputs);
        a.leaf_weights.extend([10.0, 20.0]);
        Forest::build(&a, 1, aggregate).unwrap()
    }

    #[test]
    fn aggregates_combine_trees() {
        assert_eq!(one(&two_trees(Aggregate::Sum), 0.0), 11.0);
        assert_eq!(one(&two_trees(Aggregate::Average), 1.0), 11.0);
        assert_eq!(one(&two_trees(Aggregate::Min), 0.0), 1.0);
        assert_eq!(one(&two_trees(Aggregate::Max), 1.0), 20.0);
        assert_eq!(two_trees(Aggregate::Sum).n_trees(), 2);
    }

    /// `trees` full trees of depth 3 over 3 features and 2 outputs, modes,
    /// thresholds, missing-value flags and weights drawn from `seed`.
    fn random_forest(trees: i64, modes: &[&str], seed: u32, aggregate: Aggregate) -> Forest {
        let mut state = seed;
        let mut draw = move |n: u32| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state % n
        };
        let mut a = ForestAttrs::default();
        for t in 0..trees {
            // Nodes 0..7 branch (heap order), 7..15 are leaves.
            for id in 0..15i64 {
                let leaf = id >= 7;
                a.tree_ids.push(t);
                a.node_ids.push(id);
                a.feature_ids.push(i64::from(draw(3)));
                a.modes.push(if leaf { "LEAF".into() } else { modes[draw(modes.len() as u32) as usize].into() });
                a.values.push(f64::from(draw(5)) / 4.0);
                a.true_ids.push(if leaf { 0 } else { 2 * id + 1 });
                a.false_ids.push(if leaf { 0 } else { 2 * id + 2 });
                a.missing_tracks_true.push(i64::from(draw(2)));
                a.members.push(if leaf { vec![] } else { vec![0.25, f64::from(draw(5)) / 4.0] });
                if leaf {
                    for output in 0..=i64::from(draw(2)) {
                        a.leaf_tree_ids.push(t);
                        a.leaf_node_ids.push(id);
                        a.leaf_outputs.push(output);
                        a.leaf_weights.push(f64::from(draw(1000)) / 7.0 - 50.0);
                    }
                }
            }
        }
        Forest::build(&a, 2, aggregate).unwrap()
    }

    #[test]
    fn a_batch_gives_what_rows_one_at_a_time_give() {
        let all = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ", "BRANCH_MEMBER"];
        // 150 rows: two full blocks and a part, 8-row groups and a rest.
        let n = 150;
        let mut x = Vec::with_capacity(n * 3);
        for i in 0..n * 3 {
            x.push(if i % 11 == 0 { f64::NAN } else { (i * 7 % 5) as f64 / 4.0 });
        }
        let input = tract_ndarray::Array2::from_shape_vec((n, 3), x.clone()).unwrap().into_tensor();
        for modes in [&all[..1], &all[..]] {
            for aggregate in [Aggregate::Sum, Aggregate::Average, Aggregate::Min, Aggregate::Max] {
                let f = random_forest(9, modes, 0x9e37_79b9, aggregate);
                assert_eq!(f.all_leq, modes.len() == 1);
                let mut batch = vec![];
                f.eval(&input, "T", |r, scores| batch.push((r, scores.to_vec()))).unwrap();
                assert_eq!(batch.len(), n);
                for (r, scores) in batch {
                    let (mut one, mut seen) = (vec![0.0; 2], vec![false; 2]);
                    f.eval_row(&x[r * 3..][..3], &mut one, &mut seen);
                    // Bit for bit: the same additions in the same order.
                    assert_eq!(
                        scores.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        one.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        "row {r}, {aggregate:?}, {} modes",
                        modes.len()
                    );
                }
            }
        }
    }

    #[test]
    fn malformed_trees_are_refused() {
        let mut cycle = stump("BRANCH_LEQ", false);
        cycle.modes[1] = "BRANCH_LEQ".into();
        cycle.true_ids[1] = 0;
        cycle.false_ids[1] = 2;
        assert!(Forest::build(&cycle, 1, Aggregate::Sum).is_err(), "a cycle through the root");

        let mut dangling = stump("BRANCH_LEQ", false);
        dangling.false_ids[0] = 9;
        let e = Forest::build(&dangling, 1, Aggregate::Sum).unwrap_err();
        assert!(format!("{e:#}").contains("missing node 9"), "{e:#}");

        let mut bad_target = stump("BRANCH_LEQ", false);
        bad_target.leaf_outputs[0] = 3;
        assert!(Forest::build(&bad_target, 1, Aggregate::Sum).is_err());

        let mut short = stump("BRANCH_LEQ", false);
        short.values.pop();
        assert!(Forest::build(&short, 1, Aggregate::Sum).is_err());

        let mut weight_on_branch = stump("BRANCH_LEQ", false);
        weight_on_branch.leaf_node_ids[0] = 0;
        assert!(Forest::build(&weight_on_branch, 1, Aggregate::Sum).is_err());

        assert!(Forest::build(&stump("BRANCH_XX", false), 1, Aggregate::Sum).is_err());
    }

    #[test]
    fn too_few_features_is_an_error_not_a_panic() {
        let mut a = stump("BRANCH_LEQ", false);
        a.feature_ids[0] = 3;
        let f = Forest::build(&a, 1, Aggregate::Sum).unwrap();
        assert_eq!(f.n_features(), 4);
        let input = tensor2(&[[1f32, 2.0]]);
        let e = f.eval(&input, "T", |_, _| {}).unwrap_err();
        assert!(format!("{e}").contains("reads 4 features"), "{e}");
    }
}
