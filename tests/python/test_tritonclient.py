"""warden against the real Python Triton client (tritonclient.http), and the
malformed requests that the client cannot produce, sent as raw HTTP."""

from __future__ import annotations

import json
import struct
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from warden_support import CONFIG_TYPES, MODEL_NAMES, MODELS, WardenServer, load_reference

# What tritonclient puts in the message when the error body is not JSON with
# an "error" key: seeing it means the server broke the protocol.
CLIENT_DECODE_FAILURE = "an exception occurred in the client while decoding the response"
# Unknown model: Triton answers 400, KServe 404; PROTOCOL.md accepts both.
UNKNOWN_MODEL_STATUSES = {"400", "404"}


@pytest.fixture(scope="module")
def client(server):
    c = httpclient.InferenceServerClient(server.http_address, network_timeout=30.0)
    yield c
    c.close()


def reference_inputs(model: str, binary: bool) -> list[httpclient.InferInput]:
    inputs = []
    for t in load_reference(model)["inputs"]:
        arr = np.array(t["data"], dtype=np.float32).reshape(t["shape"])
        inp = httpclient.InferInput(t["name"], list(arr.shape), t["datatype"])
        inp.set_data_from_numpy(arr, binary_data=binary)
        inputs.append(inp)
    return inputs


def check_outputs(model: str, result, names: list[str]) -> None:
    ref = load_reference(model)
    by_name = {o["name"]: o for o in ref["outputs"]}
    for name in names:
        want = by_name[name]
        got = result.as_numpy(name)
        assert got is not None, f"{model}: output {name} missing from the response"
        meta = result.get_output(name)
        assert meta["datatype"] == want["datatype"], f"{model}/{name}: datatype {meta['datatype']}"
        assert list(meta["shape"]) == want["shape"], f"{model}/{name}: shape {meta['shape']}"
        assert list(got.shape) == want["shape"]
        want_arr = np.array(want["data"]).reshape(want["shape"])
        if want["datatype"] == "INT64":
            assert got.dtype == np.int64
            np.testing.assert_array_equal(got, want_arr, err_msg=f"{model}/{name}")
        else:
            assert got.dtype == np.float32
            # |got - want| <= atol + rtol * |want|, the check models/README.md defines
            np.testing.assert_allclose(got, want_arr, rtol=ref["rtol"], atol=ref["atol"], err_msg=f"{model}/{name}")


def expect_error(call, statuses: set[str], *fragments: str) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        call()
    err = info.value
    msg = err.message() or ""
    assert CLIENT_DECODE_FAILURE not in msg, f"error body is not JSON with an 'error' key: {msg}"
    assert err.status() in statuses, f"status {err.status()} not in {statuses}: {msg}"
    for fragment in fragments:
        assert fragment.lower() in msg.lower(), f"{fragment!r} not in error message {msg!r}"
    return err


def assert_json_error(resp: requests.Response, status: int) -> str:
    assert resp.status_code == status, f"{resp.status_code} {resp.text!r}"
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    return body["error"]


# ---------------------------------------------------------------- health and metadata


def test_server_live_and_ready(client, server):
    assert client.is_server_live(), server.output_tail()
    assert client.is_server_ready(), server.output_tail()


def test_server_metadata(client):
    meta = client.get_server_metadata()
    assert meta["name"] == "warden"
    assert isinstance(meta["version"], str) and meta["version"]
    assert {"binary_tensor_data", "statistics"} <= set(meta["extensions"]), meta


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_model_ready(client, model):
    assert client.is_model_ready(model)
    assert client.is_model_ready(model, model_version="1")


def test_model_not_ready_when_unknown(client):
    assert not client.is_model_ready("no_such_model")
    assert not client.is_model_ready("iris", model_version="2")


@pytest.mark.parametrize("model", MODEL_NAMES)
@pytest.mark.parametrize("version", ["", "1"])
def test_model_metadata(client, model, version):
    meta = client.get_model_metadata(model, model_version=version)
    spec = MODELS[model]
    assert meta["name"] == model
    assert meta["versions"] == ["1"]
    assert meta["platform"] == "onnxruntime_onnx"
    assert [(t["name"], t["datatype"], list(t["shape"])) for t in meta["inputs"]] == spec["inputs"]
    assert [(t["name"], t["datatype"], list(t["shape"])) for t in meta["outputs"]] == spec["outputs"]


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_model_config(client, model):
    cfg = client.get_model_config(model)
    spec = MODELS[model]
    assert cfg["name"] == model
    assert cfg["platform"] == "onnxruntime_onnx"
    assert cfg["max_batch_size"] == spec["max_batch_size"]
    # With max_batch_size > 0 the config's dims leave out the batch dimension
    # that the metadata shows as -1. One value per batch item is written the
    # way Triton writes it: dims [1] reshaped to [].
    for section, key in (("input", "inputs"), ("output", "outputs")):
        got = [(t["name"], t["data_type"], list(t["dims"]), t.get("reshape")) for t in cfg[section]]
        want = [
            (n, CONFIG_TYPES[dt], shape[1:] or [1], {"shape": []} if not shape[1:] else None)
            for n, dt, shape in spec[key]
        ]
        assert got == want, f"{model} {section}"
    # perf_analyzer changes behaviour when these appear, so they must not
    # unless implemented (PROTOCOL.md).
    for absent in ("dynamic_batching", "sequence_batching", "model_transaction_policy"):
        assert absent not in cfg


def test_model_config_through_version(client):
    assert client.get_model_config("mnist_cnn", model_version="1")["max_batch_size"] == 8


# ---------------------------------------------------------------- inference


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_infer_json(client, model):
    names = [o[0] for o in MODELS[model]["outputs"]]
    outputs = [httpclient.InferRequestedOutput(n, binary_data=False) for n in names]
    result = client.infer(model, reference_inputs(model, binary=False), outputs=outputs)
    response = result.get_response()
    assert response["model_name"] == model
    assert response["model_version"] == "1"
    assert "id" not in response, "an id is echoed only when the request gave one"
    for out in response["outputs"]:
        # JSON mode: the values travel as "data", not as a binary section.
        assert "data" in out and "binary_data_size" not in out.get("parameters", {}), out
    check_outputs(model, result, names)


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_infer_binary(client, model):
    names = [o[0] for o in MODELS[model]["outputs"]]
    # No outputs listed: the client asks for all of them, as binary.
    result = client.infer(model, reference_inputs(model, binary=True))
    response = result.get_response()
    assert sorted(o["name"] for o in response["outputs"]) == sorted(names)
    for out in response["outputs"]:
        assert "data" not in out and out["parameters"]["binary_data_size"] > 0, out
    check_outputs(model, result, names)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_output_subset(client, binary):
    result = client.infer(
        "iris",
        reference_inputs("iris", binary=binary),
        outputs=[httpclient.InferRequestedOutput("probabilities", binary_data=binary)],
    )
    assert [o["name"] for o in result.get_response()["outputs"]] == ["probabilities"]
    assert result.as_numpy("label") is None
    check_outputs("iris", result, ["probabilities"])


def test_infer_mixed_output_modes(client):
    result = client.infer(
        "digits",
        reference_inputs("digits", binary=True),
        outputs=[
            httpclient.InferRequestedOutput("label", binary_data=False),
            httpclient.InferRequestedOutput("probabilities", binary_data=True),
        ],
    )
    outs = {o["name"]: o for o in result.get_response()["outputs"]}
    assert "data" in outs["label"]
    assert "data" not in outs["probabilities"] and outs["probabilities"]["parameters"]["binary_data_size"] == 4 * 4 * 10
    check_outputs("digits", result, ["label", "probabilities"])


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_request_id_echo(client, binary):
    result = client.infer("iris", reference_inputs("iris", binary=binary), request_id="pytest-id-7")
    assert result.get_response()["id"] == "pytest-id-7"


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_infer_through_version(client, model):
    names = [o[0] for o in MODELS[model]["outputs"]]
    result = client.infer(model, reference_inputs(model, binary=True), model_version="1", request_id="v1")
    response = result.get_response()
    assert response["model_version"] == "1"
    assert response["id"] == "v1"
    check_outputs(model, result, names)


def test_infer_max_batch(client):
    # mnist_cnn allows batch 8 (config.pbtxt); one row repeated must give the
    # reference row 8 times.
    ref = load_reference("mnist_cnn")
    row = np.array(ref["inputs"][0]["data"], dtype=np.float32).reshape(ref["inputs"][0]["shape"])[:1]
    batch = np.repeat(row, 8, axis=0)
    inp = httpclient.InferInput("input", list(batch.shape), "FP32")
    inp.set_data_from_numpy(batch)
    got = client.infer("mnist_cnn", [inp]).as_numpy("logits")
    want = np.array(ref["outputs"][0]["data"], dtype=np.float32).reshape(ref["outputs"][0]["shape"])[0]
    assert got.shape == (8, 10)
    np.testing.assert_allclose(got, np.broadcast_to(want, (8, 10)), rtol=ref["rtol"], atol=ref["atol"])


# ---------------------------------------------------------------- errors through the client


def iris_input(shape=(1, 4), datatype="FP32", dtype=np.float32, binary=True, name="float_input"):
    inp = httpclient.InferInput(name, list(shape), datatype)
    inp.set_data_from_numpy(np.full(shape, 0.5, dtype=dtype), binary_data=binary)
    return inp


def test_error_unknown_model(client):
    expect_error(lambda: client.infer("no_such_model", [iris_input()]), UNKNOWN_MODEL_STATUSES, "no_such_model")
    expect_error(lambda: client.get_model_metadata("no_such_model"), UNKNOWN_MODEL_STATUSES, "no_such_model")
    expect_error(lambda: client.get_model_config("no_such_model"), UNKNOWN_MODEL_STATUSES, "no_such_model")


def test_error_unknown_version(client):
    expect_error(lambda: client.infer("iris", [iris_input()], model_version="2"), UNKNOWN_MODEL_STATUSES, "version")
    expect_error(lambda: client.get_model_metadata("iris", model_version="2"), UNKNOWN_MODEL_STATUSES, "version")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_error_wrong_shape(client, binary):
    expect_error(lambda: client.infer("iris", [iris_input(shape=(1, 5), binary=binary)]), {"400"}, "float_input", "shape")


def test_error_batch_above_max(client):
    inp = httpclient.InferInput("input", [9, 1, 28, 28], "FP32")
    inp.set_data_from_numpy(np.zeros((9, 1, 28, 28), np.float32))
    expect_error(lambda: client.infer("mnist_cnn", [inp]), {"400"}, "batch")


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_error_wrong_datatype(client, binary):
    inp = iris_input(datatype="FP64", dtype=np.float64, binary=binary)
    expect_error(lambda: client.infer("iris", [inp]), {"400"}, "FP64", "FP32")


def test_error_missing_input(client):
    expect_error(lambda: client.infer("iris", []), {"400"}, "float_input")


def test_error_unexpected_input(client):
    expect_error(lambda: client.infer("iris", [iris_input(), iris_input(name="extra")]), {"400"}, "extra")


def test_error_fp16_as_json(client):
    inp = iris_input(datatype="FP16", dtype=np.float16, binary=False)
    expect_error(lambda: client.infer("iris", [inp]), {"400"}, "FP16", "binary")


def test_error_unknown_output(client):
    outputs = [httpclient.InferRequestedOutput("no_such_output")]
    expect_error(lambda: client.infer("iris", [iris_input()], outputs=outputs), {"400"}, "no_such_output")


# ---------------------------------------------------------------- errors only raw HTTP can make


def binary_iris_body(rows: int = 1) -> tuple[bytes, int]:
    header = json.dumps(
        {"inputs": [{"name": "float_input", "shape": [rows, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16 * rows}}]}
    ).encode()
    return header + struct.pack(f"<{4 * rows}f", *([0.5] * 4 * rows)), len(header)


def post_infer(server, body: bytes, header_len: int | None = None, model: str = "iris") -> requests.Response:
    headers = {} if header_len is None else {"Inference-Header-Content-Length": str(header_len)}
    return requests.post(f"{server.http_url}/v2/models/{model}/infer", data=body, headers=headers, timeout=30)


def test_raw_binary_request_is_accepted(server):
    # The control for the malformed variants below: the same body, intact.
    body, header_len = binary_iris_body()
    resp = post_infer(server, body, header_len)
    assert resp.status_code == 200, resp.text
    assert [o["name"] for o in resp.json()["outputs"]] == ["label", "probabilities"]


def test_error_truncated_binary_body(server):
    body, header_len = binary_iris_body()
    msg = assert_json_error(post_infer(server, body[:-3], header_len), 400)
    assert "binary" in msg.lower() or "bytes" in msg.lower(), msg


def test_error_binary_body_too_long(server):
    body, header_len = binary_iris_body()
    assert_json_error(post_infer(server, body + b"\0\0\0\0", header_len), 400)


@pytest.mark.parametrize("extra", [1, 10_000])
def test_error_header_length_beyond_body(server, extra):
    body, _ = binary_iris_body()
    msg = assert_json_error(post_infer(server, body, len(body) + extra), 400)
    assert "Inference-Header-Content-Length" in msg, msg


@pytest.mark.parametrize("value", ["-1", "abc", "18446744073709551616"])
def test_error_header_length_not_a_size(server, value):
    body, _ = binary_iris_body()
    resp = requests.post(
        f"{server.http_url}/v2/models/iris/infer", data=body, headers={"Inference-Header-Content-Length": value}, timeout=30
    )
    assert_json_error(resp, 400)


@pytest.mark.parametrize(
    "shape",
    [
        [2**32, 2**32, 2**32],  # each fits an i64, the product is 2**96
        [2**62, 2**62, 4],
        [2**21, 2**21, 2**21, 2**21],
    ],
)
def test_error_shape_product_overflows(server, shape):
    req = {"inputs": [{"name": "float_input", "shape": shape, "datatype": "FP32", "data": [0.5, 0.5, 0.5, 0.5]}]}
    msg = assert_json_error(post_infer(server, json.dumps(req).encode()), 400)
    assert "shape" in msg.lower() or "element" in msg.lower(), msg
    assert server.alive()


def test_error_binary_shape_overflows(server):
    # Same overflow through the binary path, where the byte size is derived
    # from the shape before the tensor is read.
    header = json.dumps(
        {"inputs": [{"name": "float_input", "shape": [2**32, 2**32, 2**32], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]}
    ).encode()
    assert_json_error(post_infer(server, header + b"\0" * 16, len(header)), 400)
    assert server.alive()


def test_error_malformed_json(server):
    assert_json_error(post_infer(server, b'{"inputs": [{"name": '), 400)


@pytest.mark.parametrize(
    "method,path,status",
    [
        ("GET", "/v2/models/no_such_model", None),
        ("GET", "/v2/models/no_such_model/config", None),
        ("GET", "/v2/models/no_such_model/ready", None),
        ("GET", "/v2/models/no_such_model/stats", None),
        ("GET", "/v2/models/iris/versions/2", None),
        ("POST", "/v2/models/no_such_model/infer", None),
        ("GET", "/v2/models/iris/zzz-junk", 404),
        ("GET", "/nothing/here", 404),
        ("GET", "/v2/models/iris/infer", 405),
        ("DELETE", "/v2", 405),
    ],
)
def test_every_error_body_is_json(server, method, path, status):
    resp = requests.request(method, server.http_url + path, data=b"{}" if method == "POST" else None, timeout=30)
    if status is None:
        assert str(resp.status_code) in UNKNOWN_MODEL_STATUSES, f"{method} {path}: {resp.status_code}"
        status = resp.status_code
    assert_json_error(resp, status)


# ---------------------------------------------------------------- non-finite floats in JSON
#
# Triton parses request JSON with rapidjson's kParseNanAndInfFlag and writes
# responses with kWriteNanAndInfFlag, so NaN, Infinity and -Infinity travel as
# bare literals (Python's json module reads and writes the same). perf_analyzer
# relies on it: --input-tensor-format=json fills FP32 inputs with random bit
# patterns and writes the NaNs among them as NaN.


def test_json_input_accepts_nan_and_infinity(server, client):
    body = '{"inputs":[{"name":"float_input","shape":[3,4],"datatype":"FP32","data":[NaN,1,2,3,Infinity,1,2,3,-Infinity,1,2,3]}]}'
    resp = post_infer(server, body.encode())
    assert resp.status_code == 200, f"POST /v2/models/iris/infer {body} -> {resp.status_code} {resp.text}"
    got = np.array(json.loads(resp.text)["outputs"][1]["data"], dtype=np.float32)
    # The same values through the binary path are the reference.
    x = np.array([[np.nan, 1, 2, 3], [np.inf, 1, 2, 3], [-np.inf, 1, 2, 3]], dtype=np.float32)
    inp = httpclient.InferInput("float_input", [3, 4], "FP32")
    inp.set_data_from_numpy(x)
    want = client.infer("iris", [inp]).as_numpy("probabilities").reshape(-1)
    np.testing.assert_array_equal(got, want)


def test_json_output_keeps_infinity(warden_bin, tmp_path):
    # A model whose answer holds infinities by definition (1/x at 0 and
    # -0, -log at 0): the JSON answer must carry them as they are, and NaN
    # too (the binary answer is exact). (An earlier version overflowed
    # mnist_cnn's logits with inputs near the FP32 maximum; how NaN from
    # inf - inf then passes a fused ReLU is the engine's business, not the
    # encoder's.)
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Reciprocal", ["x"], ["y"])],
        "reciprocal",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    (tmp_path / "reciprocal" / "1").mkdir(parents=True)
    onnx.save(model, tmp_path / "reciprocal" / "1" / "model.onnx")
    srv = WardenServer(warden_bin, repository=tmp_path)
    try:
        c = httpclient.InferenceServerClient(srv.http_address)
        x = np.array([0.0, -0.0, 2.0, np.nan], dtype=np.float32)
        inp = httpclient.InferInput("x", [4], "FP32")
        inp.set_data_from_numpy(x)
        binary = c.infer("reciprocal", [inp]).as_numpy("y")
        np.testing.assert_array_equal(binary, [np.inf, -np.inf, 0.5, np.nan])
        as_json = c.infer("reciprocal", [inp], outputs=[httpclient.InferRequestedOutput("y", binary_data=False)])
        np.testing.assert_array_equal(as_json.as_numpy("y"), binary)
    finally:
        srv.stop()


# ---------------------------------------------------------------- the lockdown under load


def test_concurrent_batches_trip_no_lockdown(start_server):
    # Its own server: a trapped system call marks the process compromised for
    # good, which would fail every later test on the shared one. Concurrent
    # batch-8 CNN requests make glibc's allocator trim a worker thread's heap,
    # which on first use reads /proc/sys/vm/overcommit_memory.
    srv = start_server()

    def work(seed: int) -> None:
        c = httpclient.InferenceServerClient(srv.http_address, network_timeout=30.0)
        rng = np.random.default_rng(seed)
        for _ in range(30):
            x = rng.random((8, 1, 28, 28), dtype=np.float32)
            inp = httpclient.InferInput("input", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            assert c.infer("mnist_cnn", [inp]).as_numpy("logits").shape == (8, 10)
        c.close()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))
    time.sleep(0.5)  # violations are reported every 200 ms
    assert not srv.blocked_syscalls(), f"the lockdown blocked a system call of warden's own:\n{srv.violation_report()}"
    assert srv.is_live()
