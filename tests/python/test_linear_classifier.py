"""warden's LinearClassifier against ONNX Runtime on hand-built graphs: every
post_transform, int64 and string labels, a multi-class model and a binary
model with one coefficient row, served by the real warden and queried with
the real tritonclient.

One case cannot follow ONNX Runtime: a binary model under PROBIT, where
ONNX Runtime writes N values into its [N, 2] output and leaves the rest
uninitialised (its output changes from run to run). There warden gives
[probit(-s), probit(s)], the layout of the ONNX reference implementation,
with ONNX Runtime's probit; the test checks that.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as httpclient
from onnx import TensorProto, helper

from warden_support import WardenServer

TRANSFORMS = ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"]
# (coefficients, intercepts, class count) over 2 features.
SHAPES = {
    "multi": ([0.5, -1.0, 1.0, 1.0, 0.0, 0.2], [0.1, -0.2, 0.0], 3),
    "binary": ([0.5, -1.0], [0.1], 2),
}
LABELS = {"int": [3, 7, 11], "str": ["setosa", "versicolor", "virginica"]}
# Rows that give positive, negative and exactly zero scores (the last row:
# 0.5 * 0 - 0.1 + 0.1 in any precision); probits of scores outside [0, 1]
# are NaN in every implementation, and of exactly 0 -inf in ONNX Runtime.
X = np.array([[1.0, -2.0], [0.5, 0.25], [-3.0, 1.0], [0.0, 0.0], [0.3, 0.7], [0.0, 0.1]], dtype=np.float32)


def build(shape: str, labels: str, transform: str):
    coef, inter, k = SHAPES[shape]
    classes = LABELS[labels][:k]
    strings = labels == "str"
    attrs = {"classlabels_strings" if strings else "classlabels_ints": classes}
    node = helper.make_node(
        "LinearClassifier", ["X"], ["label", "scores"], domain="ai.onnx.ml",
        coefficients=coef, intercepts=inter, post_transform=transform, multi_class=0, **attrs,
    )
    graph = helper.make_graph(
        [node], "lc", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
        [
            helper.make_tensor_value_info("label", TensorProto.STRING if strings else TensorProto.INT64, [None]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, k]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 1)])
    model.ir_version = 8
    return model


CASES = [(s, lab, t) for s in SHAPES for lab in LABELS for t in TRANSFORMS]


def name(case) -> str:
    return "lc_" + "_".join(case).lower()


@pytest.fixture(scope="module")
def served(warden_bin, tmp_path_factory):
    repo = tmp_path_factory.mktemp("linear_classifier")
    for case in CASES:
        (repo / name(case) / "1").mkdir(parents=True)
        (repo / name(case) / "1" / "model.onnx").write_bytes(build(*case).SerializeToString())
    srv = WardenServer(warden_bin, repository=repo)
    yield httpclient.InferenceServerClient(srv.http_address)
    srv.stop()


def ort_run(model):
    return ort.InferenceSession(model.SerializeToString()).run(None, {"X": X})


def expected(case):
    model = build(*case)
    if case == ("binary", case[1], "PROBIT"):
        # ONNX Runtime's labels are unaffected by its PROBIT defect; the
        # scores are those of the two-row model (-w, w) under ONNX
        # Runtime's PROBIT, [probit(-s), probit(s)], the reference
        # implementation's layout.
        label = ort_run(model)[0]
        coef, inter, _ = SHAPES["binary"]
        twin = build("binary", case[1], "PROBIT")
        attrs = {a.name: a for a in twin.graph.node[0].attribute}
        attrs["coefficients"].CopyFrom(helper.make_attribute("coefficients", [-c for c in coef] + coef))
        attrs["intercepts"].CopyFrom(helper.make_attribute("intercepts", [-b for b in inter] + inter))
        return label, ort_run(twin)[1]
    return ort_run(model)


@pytest.mark.parametrize("case", CASES, ids=name)
def test_linear_classifier_matches_onnxruntime(served, case):
    inp = httpclient.InferInput("X", list(X.shape), "FP32")
    inp.set_data_from_numpy(X, binary_data=True)
    outs = [httpclient.InferRequestedOutput(o, binary_data=True) for o in ("label", "scores")]
    res = served.infer(name(case), [inp], outputs=outs)
    want_label, want_scores = expected(case)
    got_label = res.as_numpy("label")
    if got_label.dtype == object:
        got_label = np.array([v.decode() for v in got_label], dtype=object)
        want_label = np.asarray(want_label, dtype=object)
    assert got_label.tolist() == np.asarray(want_label).tolist()
    got_scores = res.as_numpy("scores")
    assert got_scores.shape == want_scores.shape
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-6, atol=1e-6, equal_nan=True)
