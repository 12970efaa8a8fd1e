#!/usr/bin/env python3
"""Generate warden's bundled model repository and the test reference files.

Run from the repository root:

    .venv/bin/python models/generate.py

Writes (Triton repository layout):

    models/iris/1/model.onnx          LogisticRegression on iris      (skl2onnx)
    models/digits/1/model.onnx        MLPClassifier on 8x8 digits     (skl2onnx)
    models/mnist_cnn/1/model.onnx     small CNN built with onnx.helper
    models/mnist_cnn/config.pbtxt
    tests/reference/<model>.json      inputs + outputs of the original library

Everything is deterministic (fixed seeds, fixed graph names), so running the
script twice gives byte-identical files. Every export is checked against
onnxruntime before anything is written; a bad export fails with an
AssertionError.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_digits, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
REFERENCE = ROOT / "tests" / "reference"

# tract 0.23 (warden's engine) handles ai.onnx <= 17 and ai.onnx.ml <= 3.
SKL_TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
CNN_OPSET = 13
CNN_IR_VERSION = 7  # the IR version that goes with opset 13

DTYPE_NAMES = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64"}


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def f32_list(a: np.ndarray) -> list[float]:
    """Flat list of float32 values, each as its shortest round-trip decimal."""
    return [float(str(v)) for v in np.asarray(a, dtype=np.float32).ravel()]


def tensor_json(name: str, a: np.ndarray) -> dict:
    a = np.asarray(a)
    dt = DTYPE_NAMES[a.dtype]
    data = f32_list(a) if dt == "FP32" else [int(v) for v in a.ravel()]
    return {"name": name, "datatype": dt, "shape": list(a.shape), "data": data}


def dump_json(obj: dict) -> str:
    """JSON with one tensor per block and each data list on a single line."""
    def tensors(key: str) -> str:
        items = []
        for t in obj[key]:
            fields = ", ".join(
                f"{json.dumps(k)}: {json.dumps(v)}" for k, v in t.items()
            )
            items.append("    {" + fields + "}")
        return "[\n" + ",\n".join(items) + "\n  ]"

    lines = [
        "{",
        f'  "model": {json.dumps(obj["model"])},',
        f'  "inputs": {tensors("inputs")},',
        f'  "outputs": {tensors("outputs")},',
        f'  "rtol": {json.dumps(obj["rtol"])},',
        f'  "atol": {json.dumps(obj["atol"])}',
        "}",
    ]
    return "\n".join(lines) + "\n"


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    print(f"  wrote {path.relative_to(ROOT)} ({len(data)} bytes)")


def run_ort(model: onnx.ModelProto, feeds: dict) -> dict:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(
        model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


def assert_close(name: str, got, want, rtol: float, atol: float) -> None:
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    worst = float(np.max(err - rtol * np.abs(want.astype(np.float64))))
    assert np.allclose(got, want, rtol=rtol, atol=atol), (
        f"{name}: onnxruntime disagrees with reference "
        f"(max abs err {err.max():.3g}, rtol={rtol}, atol={atol})"
    )
    print(f"  check {name}: max abs err {err.max():.3g} (margin vs atol {atol - worst:.3g})")


def check_opsets(model: onnx.ModelProto, name: str) -> None:
    ops = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    assert ops.get("ai.onnx", 0) <= 17, f"{name}: ai.onnx opset {ops} > 17"
    assert ops.get("ai.onnx.ml", 0) <= 3, f"{name}: ai.onnx.ml opset {ops} > 3"
    used = sorted({(n.domain or "ai.onnx", n.op_type) for n in model.graph.node})
    print(f"  {name}: ir_version={model.ir_version} opsets={ops}")
    print(f"  {name}: ops={[f'{d}:{o}' for d, o in used]}")


def export_sklearn(clf, name: str, n_features: int) -> onnx.ModelProto:
    model = convert_sklearn(
        clf,
        name=name,  # default is a random uuid4 -> would break reproducibility
        initial_types=[("float_input", FloatTensorType([None, n_features]))],
        options={id(clf): {"zipmap": False}},
        target_opset=SKL_TARGET_OPSET,
    )
    onnx.checker.check_model(model)
    check_opsets(model, name)
    return model


# --------------------------------------------------------------------------
# scikit-learn models
# --------------------------------------------------------------------------


def sklearn_entry(name, clf, X_all, rows, rtol, atol):
    """Export clf, verify it with onnxruntime, return (onnx bytes, reference)."""
    model = export_sklearn(clf, name, X_all.shape[1])
    out_names = [o.name for o in model.graph.output]
    assert out_names == ["label", "probabilities"], f"{name}: outputs {out_names}"

    # Reference: the original library on the float32 rows.
    X = X_all[rows]
    label = clf.predict(X).astype(np.int64)
    proba = clf.predict_proba(X)

    # onnxruntime must agree, on the reference rows and on the whole data set.
    for what, Xc in (("reference rows", X), ("full data set", X_all)):
        got = run_ort(model, {"float_input": Xc})
        want_label = clf.predict(Xc).astype(np.int64)
        assert got["label"].dtype == np.int64, got["label"].dtype
        assert got["probabilities"].dtype == np.float32
        np.testing.assert_array_equal(
            got["label"], want_label, err_msg=f"{name}: labels ({what})"
        )
        assert_close(
            f"{name} probabilities ({what})",
            got["probabilities"], clf.predict_proba(Xc), rtol, atol,
        )

    ref = {
        "model": name,
        "inputs": [tensor_json("float_input", X)],
        "outputs": [
            tensor_json("label", label),
            tensor_json("probabilities", proba.astype(np.float32)),
        ],
        "rtol": rtol,
        "atol": atol,
    }
    return model.SerializeToString(), ref


def build_iris():
    print("iris: LogisticRegression")
    data = load_iris()
    X = data.data.astype(np.float32)
    y = data.target.astype(np.int64)
    clf = LogisticRegression(max_iter=1000, random_state=0)
    clf.fit(X, y)
    assert clf.n_iter_.max() < 1000, "iris: LogisticRegression did not converge"
    print(f"  train accuracy {clf.score(X, y):.3f}")
    rows = [0, 50, 100, 70, 133]  # all three classes, two near the boundary
    return sklearn_entry("iris", clf, X, rows, rtol=1e-5, atol=1e-6)


def build_digits():
    print("digits: MLPClassifier")
    data = load_digits()
    X = data.data.astype(np.float32)
    y = data.target.astype(np.int64)
    clf = MLPClassifier(hidden_layer_sizes=(32,), random_state=0, max_iter=1000)
    clf.fit(X, y)
    assert clf.n_iter_ < 1000, "digits: MLPClassifier did not converge"
    print(f"  train accuracy {clf.score(X, y):.3f} after {clf.n_iter_} iterations")
    rows = [0, 1, 500, 1000]
    return sklearn_entry("digits", clf, X, rows, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------
# hand-built CNN
# --------------------------------------------------------------------------


def cnn_weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)

    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    def bias(n):
        return (rng.standard_normal(n) * 0.01).astype(np.float32)

    return {
        "conv1.weight": he((4, 1, 3, 3), 1 * 9),
        "conv1.bias": bias(4),
        "conv2.weight": he((8, 4, 3, 3), 4 * 9),
        "conv2.bias": bias(8),
        "fc.weight": he((10, 8 * 7 * 7), 8 * 7 * 7),  # [out, in], Gemm transB=1
        "fc.bias": bias(10),
    }


def build_cnn_graph(w: dict[str, np.ndarray]) -> onnx.ModelProto:
    conv = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
    pool = dict(kernel_shape=[2, 2], strides=[2, 2])
    nodes = [
        helper.make_node("Conv", ["input", "conv1.weight", "conv1.bias"], ["c1"], name="conv1", **conv),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", **pool),
        helper.make_node("Conv", ["p1", "conv2.weight", "conv2.bias"], ["c2"], name="conv2", **conv),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("MaxPool", ["r2"], ["p2"], name="pool2", **pool),
        helper.make_node("Flatten", ["p2"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc",
                         alpha=1.0, beta=1.0, transA=0, transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "mnist_cnn",
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])],
        outputs=[helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=[numpy_helper.from_array(v, name=k) for k, v in w.items()],
    )
    model = helper.make_model(
        graph,
        producer_name="warden-models-generate",
        opset_imports=[helper.make_opsetid("", CNN_OPSET)],
    )
    model.ir_version = CNN_IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    check_opsets(model, "mnist_cnn")
    return model


def cnn_numpy(w: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Independent float64 forward pass, to check the ONNX graph's semantics."""
    from numpy.lib.stride_tricks import sliding_window_view

    def conv(x, W, b):
        xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        win = sliding_window_view(xp, (3, 3), axis=(2, 3))  # N,C,H,W,3,3
        return np.einsum("nchwij,ocij->nohw", win, W) + b[None, :, None, None]

    def pool(x):
        n, c, h, w_ = x.shape
        return x.reshape(n, c, h // 2, 2, w_ // 2, 2).max(axis=(3, 5))

    w = {k: v.astype(np.float64) for k, v in w.items()}
    x = x.astype(np.float64)
    h = pool(np.maximum(conv(x, w["conv1.weight"], w["conv1.bias"]), 0))
    h = pool(np.maximum(conv(h, w["conv2.weight"], w["conv2.bias"]), 0))
    return h.reshape(h.shape[0], -1) @ w["fc.weight"].T + w["fc.bias"]


CNN_CONFIG = """\
name: "mnist_cnn"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "input" data_type: TYPE_FP32 dims: [ 1, 28, 28 ] } ]
output [ { name: "logits" data_type: TYPE_FP32 dims: [ 10 ] } ]
"""


def build_mnist_cnn():
    print("mnist_cnn: hand-built CNN, opset 13")
    w = cnn_weights()
    model = build_cnn_graph(w)
    rtol, atol = 1e-4, 1e-5  # float32 conv/gemm: summation order differs between engines

    x = np.random.default_rng(1).random((2, 1, 28, 28), dtype=np.float32)
    logits = run_ort(model, {"input": x})["logits"]
    assert logits.dtype == np.float32 and logits.shape == (2, 10)
    # onnxruntime is the reference; the float64 numpy pass checks the graph does
    # what it is meant to, within the tolerance recorded for other engines.
    assert_close("mnist_cnn logits vs float64 numpy", logits, cnn_numpy(w, x), rtol, atol)
    # A larger random batch, to make sure the tolerance has margin.
    xb = np.random.default_rng(2).random((8, 1, 28, 28), dtype=np.float32)
    assert_close(
        "mnist_cnn logits (batch 8) vs float64 numpy",
        run_ort(model, {"input": xb})["logits"], cnn_numpy(w, xb), rtol, atol,
    )

    ref = {
        "model": "mnist_cnn",
        "inputs": [tensor_json("input", x)],
        "outputs": [tensor_json("logits", logits)],
        "rtol": rtol,
        "atol": atol,
    }
    return model.SerializeToString(), ref


# --------------------------------------------------------------------------


def main() -> int:
    print(f"numpy {np.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}")
    entries = {
        "iris": build_iris(),
        "digits": build_digits(),
        "mnist_cnn": build_mnist_cnn(),
    }
    # All checks passed: now write the files.
    for name, (onnx_bytes, ref) in entries.items():
        write_bytes(MODELS / name / "1" / "model.onnx", onnx_bytes)
        write_bytes(REFERENCE / f"{name}.json", dump_json(ref).encode())
    write_bytes(MODELS / "mnist_cnn" / "config.pbtxt", CNN_CONFIG.encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
