"""Every request starts from a clean state (issue 18).

tract's recurrent operators (LSTM, GRU, RNN and Scan with a carried state)
keep their hidden state between runs of one plan state unless reset. warden
reuses plan state per worker to save allocations, so a model with such an
operator answered the first request right and every later one wrong, and one
client's input changed the next client's answer. These tests send the same
inputs several times and different inputs in varying order, on one worker
and on two, and compare every answer with ONNX Runtime on the same file.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tritonclient.http as httpclient
from onnx import TensorProto, helper, numpy_helper

from warden_support import WardenServer

SEQ, BATCH, INPUT, HIDDEN = 5, 1, 3, 4
RNG = np.random.default_rng(18)


def _weights(name: str, gates: int, cols: int, directions: int = 1) -> onnx.TensorProto:
    return numpy_helper.from_array(RNG.uniform(-0.8, 0.8, (directions, gates * HIDDEN, cols)).astype(np.float32), name)


def recurrent(op: str, direction: str = "forward") -> onnx.ModelProto:
    """One LSTM, GRU or RNN layer over X [seq, batch, input] with an initial
    hidden state given by the graph (so the carried state is visible)."""
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    dirs = 2 if direction == "bidirectional" else 1
    node = helper.make_node(op, ["X", "W", "R", "", "", "H0"], ["Y", "Y_h"], hidden_size=HIDDEN, direction=direction, name=op.lower())
    init_h = numpy_helper.from_array(RNG.uniform(-0.5, 0.5, (dirs, BATCH, HIDDEN)).astype(np.float32), "H0")
    graph = helper.make_graph(
        [node],
        f"{op}_{direction}",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [SEQ, BATCH, INPUT])],
        [
            helper.make_tensor_value_info("Y", TensorProto.FLOAT, [SEQ, dirs, BATCH, HIDDEN]),
            helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [dirs, BATCH, HIDDEN]),
        ],
        initializer=[_weights("W", gates, INPUT, dirs), _weights("R", gates, HIDDEN, dirs), init_h],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def scan_sum() -> onnx.ModelProto:
    """A Scan that carries a running sum over the rows of X [seq, 3]."""
    body = helper.make_graph(
        [
            helper.make_node("Add", ["sum_in", "row"], ["sum_out"]),
            helper.make_node("Identity", ["sum_out"], ["scan_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("sum_in", TensorProto.FLOAT, [3]),
            helper.make_tensor_value_info("row", TensorProto.FLOAT, [3]),
        ],
        [
            helper.make_tensor_value_info("sum_out", TensorProto.FLOAT, [3]),
            helper.make_tensor_value_info("scan_out", TensorProto.FLOAT, [3]),
        ],
    )
    node = helper.make_node("Scan", ["init", "X"], ["total", "partial"], num_scan_inputs=1, body=body, name="scan")
    graph = helper.make_graph(
        [node],
        "scan_sum",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [SEQ, 3])],
        [
            helper.make_tensor_value_info("total", TensorProto.FLOAT, [3]),
            helper.make_tensor_value_info("partial", TensorProto.FLOAT, [SEQ, 3]),
        ],
        initializer=[numpy_helper.from_array(np.array([0.5, -1.0, 2.0], dtype=np.float32), "init")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


MODELS = {
    "lstm": recurrent("LSTM"),
    "gru": recurrent("GRU"),
    "rnn": recurrent("RNN"),
    "lstm_bidirectional": recurrent("LSTM", "bidirectional"),
    "scan_sum": scan_sum(),
}


def _input_shape(model: onnx.ModelProto) -> list[int]:
    return [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("recurrent")
    for name, model in MODELS.items():
        (root / name / "1").mkdir(parents=True)
        onnx.save(model, root / name / "1" / "model.onnx")
    return root


@pytest.mark.parametrize("workers", [1, 2])
def test_every_request_starts_from_a_clean_state(warden_bin, repository: Path, workers: int) -> None:
    # Inline runs use the connection thread's own state: turn them off so
    # that every request goes to the (one or two) worker threads.
    server = WardenServer(warden_bin, ["--infer-threads", str(workers), "--inline-max-us", "0"], repository=repository)
    try:
        client = httpclient.InferenceServerClient(server.http_address)
        for name, model in MODELS.items():
            session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            outputs = [o.name for o in model.graph.output]
            inputs = [RNG.uniform(-2, 2, _input_shape(model)).astype(np.float32) for _ in range(3)]
            expected = [session.run(outputs, {"X": x}) for x in inputs]
            # Each input twice in a row, then every order of the three.
            order = [0, 0, 1, 1, 2, 2] + [i for p in itertools.permutations(range(3)) for i in p]
            for i in order:
                x = httpclient.InferInput("X", list(inputs[i].shape), "FP32")
                x.set_data_from_numpy(inputs[i])
                got = client.infer(name, [x])
                for out, want in zip(outputs, expected[i]):
                    np.testing.assert_allclose(
                        got.as_numpy(out), want, rtol=1e-4, atol=1e-5, err_msg=f"{name} output {out}, input {i}, {workers} worker(s)"
                    )
        assert server.blocked_syscalls() == []
    finally:
        server.stop()
