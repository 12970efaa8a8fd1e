"""A request that panics inside a kernel is a 500, not an alarm (issue 19,
item 6).

With RUST_BACKTRACE=1 Rust's default panic hook resolves a backtrace, which
reads the binary and /proc: the lockdown refused those calls, counted them
as an attack and failed the liveness probe. warden's own hook prints the
message and location only.

The kernel that panics here is tract's OneHot on an index beyond `depth`
(an ndarray bounds check, in release builds too). If tract stops panicking
there, the test says so rather than passing on a request that did not
panic.
"""

from __future__ import annotations

import time

import numpy as np
import onnx
import tritonclient.http as httpclient
from onnx import TensorProto, helper, numpy_helper
from tritonclient.utils import InferenceServerException

from warden_support import WardenServer


def one_hot() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("OneHot", ["indices", "depth", "values"], ["y"], axis=-1, name="one_hot")],
        "one_hot",
        [helper.make_tensor_value_info("indices", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        initializer=[
            numpy_helper.from_array(np.array(3, dtype=np.int64), "depth"),
            numpy_helper.from_array(np.array([0, 1], dtype=np.float32), "values"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    return model


def test_a_panicking_request_trips_no_filter_with_rust_backtrace_set(warden_bin, tmp_path, monkeypatch) -> None:
    (tmp_path / "one_hot" / "1").mkdir(parents=True)
    onnx.save(one_hot(), tmp_path / "one_hot" / "1" / "model.onnx")
    monkeypatch.setenv("RUST_BACKTRACE", "1")
    server = WardenServer(warden_bin, ["--sandbox", "strict"], repository=tmp_path)
    try:
        client = httpclient.InferenceServerClient(server.http_address)
        x = httpclient.InferInput("indices", [2], "INT64")
        x.set_data_from_numpy(np.array([0, 2], dtype=np.int64))
        np.testing.assert_array_equal(client.infer("one_hot", [x]).as_numpy("y"), [[1, 0, 0], [0, 0, 1]])

        x.set_data_from_numpy(np.array([0, 7], dtype=np.int64))
        try:
            client.infer("one_hot", [x])
            raise AssertionError("an index beyond depth no longer panics in tract: choose another panicking kernel for this test")
        except InferenceServerException as e:
            assert e.status() == "500", e
        assert any("panicked" in line for line in server.stderr_lines), server.output_tail()
        # The watcher reports blocked calls every 200 ms.
        time.sleep(0.5)
        assert server.blocked_syscalls() == [], server.violation_report()
        assert server.is_live()
    finally:
        server.stop()
