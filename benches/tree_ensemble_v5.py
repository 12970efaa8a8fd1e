"""Writes a TreeEnsemble (ai.onnx.ml opset 5) twin of the zoo's
random_forest_reg_diabetes, for benches/trees.rs: skl2onnx 1.20 emits only
the older TreeEnsembleRegressor, so the same trees are re-encoded here and
checked to give the same values in onnxruntime.

Usage: tree_ensemble_v5.py [ZOO_DIR]   (default target/sklearn-zoo)
"""

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

MODES = {"BRANCH_LEQ": 0, "BRANCH_LT": 1, "BRANCH_GTE": 2, "BRANCH_GT": 3, "BRANCH_EQ": 4, "BRANCH_NEQ": 5}
AGGREGATES = {"AVERAGE": 0, "SUM": 1, "MIN": 2, "MAX": 3}


def to_v5(node):
    a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
    assert a.get("n_targets", 1) == 1 and a.get("post_transform", b"NONE") == b"NONE", "one untransformed target only"
    assert not any(a.get("base_values", [])), "no base values"
    nodes = {}
    for i, (t, n) in enumerate(zip(a["nodes_treeids"], a["nodes_nodeids"])):
        nodes[(t, n)] = i
    weight = defaultdict(float)
    for t, n, w in zip(a["target_treeids"], a["target_nodeids"], a["target_weights"]):
        weight[(t, n)] += w
    interior, leaves = {}, {}
    for (t, n), i in nodes.items():
        (leaves if a["nodes_modes"][i] == b"LEAF" else interior)[(t, n)] = None
    interior = {k: j for j, k in enumerate(interior)}
    leaves = {k: j for j, k in enumerate(leaves)}
    out = defaultdict(list)
    for (t, n), j in interior.items():
        i = nodes[(t, n)]
        out["nodes_featureids"].append(a["nodes_featureids"][i])
        out["modes"].append(MODES[a["nodes_modes"][i].decode()])
        out["splits"].append(a["nodes_values"][i])
        for side in ("true", "false"):
            child = (t, a[f"nodes_{side}nodeids"][i])
            is_leaf = child in leaves
            out[f"nodes_{side}leafs"].append(int(is_leaf))
            out[f"nodes_{side}nodeids"].append(leaves[child] if is_leaf else interior[child])
    roots = sorted({t for t, _ in nodes})
    assert all((t, 0) in interior for t in roots), "every tree has an interior root 0"
    return helper.make_node(
        "TreeEnsemble",
        node.input,
        node.output,
        domain="ai.onnx.ml",
        name="tree_ensemble_v5",
        tree_roots=[interior[(t, 0)] for t in roots],
        nodes_featureids=out["nodes_featureids"],
        nodes_modes=numpy_helper.from_array(np.array(out["modes"], dtype=np.uint8), "nodes_modes"),
        nodes_splits=numpy_helper.from_array(np.array(out["splits"], dtype=np.float32), "nodes_splits"),
        nodes_truenodeids=out["nodes_truenodeids"],
        nodes_trueleafs=out["nodes_trueleafs"],
        nodes_falsenodeids=out["nodes_falsenodeids"],
        nodes_falseleafs=out["nodes_falseleafs"],
        leaf_targetids=[0] * len(leaves),
        leaf_weights=numpy_helper.from_array(np.array([weight[k] for k in leaves], dtype=np.float32), "leaf_weights"),
        n_targets=1,
        aggregate_function=AGGREGATES[a.get("aggregate_function", b"SUM").decode()],
    )


def main():
    zoo = Path(sys.argv[1] if len(sys.argv) > 1 else "target/sklearn-zoo")
    src = onnx.load(zoo / "random_forest_reg_diabetes" / "1" / "model.onnx")
    (tree,) = [n for n in src.graph.node if n.op_type == "TreeEnsembleRegressor"]
    nodes = [to_v5(n) if n is tree else n for n in src.graph.node]
    graph = helper.make_graph(nodes, "forest_v5", src.graph.input, src.graph.output, src.graph.initializer)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    x = np.random.default_rng(0).uniform(-0.2, 0.2, (64, 10)).astype(np.float32)
    feed = {src.graph.input[0].name: x}
    (old,) = ort.InferenceSession(src.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)
    (new,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)
    np.testing.assert_allclose(new, old, rtol=1e-5, atol=1e-5)
    out = zoo / "random_forest_reg_diabetes_v5" / "1"
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(model, out / "model.onnx")
    print(f"wrote {out / 'model.onnx'}: {len(tree_roots(model))} trees, same values as the v3 model in onnxruntime")


def tree_roots(model):
    (n,) = [n for n in model.graph.node if n.op_type == "TreeEnsemble"]
    return next(helper.get_attribute_value(a) for a in n.attribute if a.name == "tree_roots")


if __name__ == "__main__":
    main()
