"""Metrics, statistics and JSON logs after a known set of requests on a fresh
server, so that every count can be checked exactly.

The module's fixture sends the whole workload once, in a fixed order, before
any test looks; the tests then only read. Nothing else talks to this server.
"""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

from warden_support import MODEL_NAMES

INFER_ROUTE = "/v2/models/{model}/infer"
VERSIONED_INFER_ROUTE = "/v2/models/{model}/versions/{version}/infer"
JUNK_SEGMENT = "zzz-raw-path"
RUN_ID = uuid.uuid4().hex[:12]
OK_REQUEST_ID = f"pytest-ok-{RUN_ID}"
FAIL_REQUEST_ID = f"pytest-fail-{RUN_ID}"

# The workload. iris: successes with batch sizes 1, 2, 5 (one through the
# versioned route), failures that the server must reject. digits: one
# success of batch 4. mnist_cnn: one success of batch 2 and one rejected
# batch of 9 (max_batch_size 8).
IRIS_OK_BATCHES = [1, 2, 5]
IRIS_REJECTED = 3
DIGITS_OK_BATCHES = [4]
MNIST_OK_BATCHES = [2]
MNIST_REJECTED = 1


def iris_input(rows: int, datatype: str = "FP32", cols: int = 4) -> httpclient.InferInput:
    dtype = {"FP32": np.float32, "FP64": np.float64}[datatype]
    inp = httpclient.InferInput("float_input", [rows, cols], datatype)
    inp.set_data_from_numpy(np.full((rows, cols), 0.5, dtype=dtype))
    return inp


def batch_input(name: str, shape: list[int]) -> httpclient.InferInput:
    inp = httpclient.InferInput(name, shape, "FP32")
    inp.set_data_from_numpy(np.full(shape, 0.25, dtype=np.float32))
    return inp


@pytest.fixture(scope="module")
def fresh(start_server):
    srv = start_server(["--log-verbose", "1"])
    client = httpclient.InferenceServerClient(srv.http_address, network_timeout=30.0)
    counts = {"infer_200": 0, "infer_400": 0, "versioned_infer_200": 0}

    # iris successes; the first carries the client's x-request-id.
    for i, rows in enumerate(IRIS_OK_BATCHES):
        if i == len(IRIS_OK_BATCHES) - 1:
            client.infer("iris", [iris_input(rows)], model_version="1")
            counts["versioned_infer_200"] += 1
        else:
            headers = {"x-request-id": OK_REQUEST_ID} if i == 0 else None
            client.infer("iris", [iris_input(rows)], headers=headers)
            counts["infer_200"] += 1
    # iris rejections: wrong shape (twice, once with our id), wrong datatype.
    rejected = [
        (iris_input(1, cols=5), {"x-request-id": FAIL_REQUEST_ID}),
        (iris_input(2, cols=3), None),
        (iris_input(1, datatype="FP64"), None),
    ]
    assert len(rejected) == IRIS_REJECTED
    for inp, headers in rejected:
        with pytest.raises(InferenceServerException):
            client.infer("iris", [inp], headers=headers)
        counts["infer_400"] += 1
    for rows in DIGITS_OK_BATCHES:
        client.infer("digits", [batch_input("float_input", [rows, 64])])
        counts["infer_200"] += 1
    for rows in MNIST_OK_BATCHES:
        client.infer("mnist_cnn", [batch_input("input", [rows, 1, 28, 28])])
        counts["infer_200"] += 1
    for _ in range(MNIST_REJECTED):
        with pytest.raises(InferenceServerException):
            client.infer("mnist_cnn", [batch_input("input", [9, 1, 28, 28])])
        counts["infer_400"] += 1
    # A client path that must never become a label value.
    junk = requests.get(f"{srv.http_url}/v2/models/iris/{JUNK_SEGMENT}", timeout=30)
    assert junk.status_code == 404

    metrics_text = requests.get(srv.metrics_url, timeout=30).text
    stats = {m: client.get_inference_statistics(model_name=m)["model_stats"] for m in MODEL_NAMES}
    client.close()
    return {"server": srv, "counts": counts, "metrics_text": metrics_text, "stats": stats}


def parse_samples(text: str) -> list[tuple[str, dict, float]]:
    """(name, labels, value) for every sample. Triton's counters have no
    `_total` suffix on the wire; the parser adds one to counter samples, so
    it is taken off again to look them up by the names Triton documents."""
    out = []
    # list() drives the parser over the whole text: a malformed line anywhere raises.
    for fam in list(text_string_to_metric_families(text)):
        for s in fam.samples:
            name = s.name
            if fam.type == "counter" and name == fam.name + "_total" and not text_has_sample(text, name):
                name = fam.name
            out.append((name, s.labels, s.value))
    return out


def text_has_sample(text: str, name: str) -> bool:
    return any(line.startswith((name + "{", name + " ")) for line in text.splitlines())


def value(samples, name: str, **labels) -> float:
    matches = [v for n, l, v in samples if n == name and all(l.get(k) == want for k, want in labels.items())]
    assert len(matches) == 1, f"{name}{labels}: {len(matches)} samples"
    return matches[0]


@pytest.fixture(scope="module")
def samples(fresh):
    return parse_samples(fresh["metrics_text"])


def test_metrics_parse(samples, fresh):
    assert samples, "no samples in /metrics"
    families = {fam.name for fam in text_string_to_metric_families(fresh["metrics_text"])}
    for required in (
        "nv_inference_request_success",
        "nv_inference_request_failure",
        "nv_inference_count",
        "nv_inference_exec_count",
        "nv_inference_request_duration_us",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_input_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_inference_compute_output_duration_us",
        "nv_inference_pending_request_count",
        "warden_inference_request_duration_seconds",
        "warden_sandbox_layer_active",
    ):
        assert required in families, f"{required} missing; have {sorted(families)}"


@pytest.mark.parametrize(
    "model,ok_batches,rejected",
    [
        ("iris", IRIS_OK_BATCHES, IRIS_REJECTED),
        ("digits", DIGITS_OK_BATCHES, 0),
        ("mnist_cnn", MNIST_OK_BATCHES, MNIST_REJECTED),
    ],
)
def test_triton_counters(samples, model, ok_batches, rejected):
    mv = {"model": model, "version": "1"}
    assert value(samples, "nv_inference_request_success", **mv) == len(ok_batches)
    assert value(samples, "nv_inference_request_failure", reason="REJECTED", **mv) == rejected
    for reason in ("BACKEND", "OTHER"):
        failures = [v for n, l, v in samples if n == "nv_inference_request_failure" and l.get("model") == model and l.get("reason") == reason]
        assert sum(failures) == 0, f"{model} {reason}"
    # Weighted by batch size: one request of 5 rows is 5 inferences, 1 execution.
    assert value(samples, "nv_inference_count", **mv) == sum(ok_batches)
    assert value(samples, "nv_inference_exec_count", **mv) == len(ok_batches)
    assert value(samples, "nv_inference_pending_request_count", **mv) == 0
    if ok_batches:
        assert value(samples, "nv_inference_request_duration_us", **mv) > 0
        # The phases are each part of the request; their sum cannot exceed it
        # (a little slack: each is rounded down to whole microseconds separately).
        phases = sum(
            value(samples, f"nv_inference_{p}_duration_us", **mv) for p in ("queue", "compute_input", "compute_infer", "compute_output")
        )
        assert phases <= value(samples, "nv_inference_request_duration_us", **mv) + 4


@pytest.mark.parametrize("model,successes", [("iris", 3), ("digits", 1), ("mnist_cnn", 1)])
def test_duration_histogram(samples, model, successes):
    name = "warden_inference_request_duration_seconds"
    mv = {"model": model, "version": "1"}
    assert value(samples, f"{name}_count", **mv) == successes
    assert value(samples, f"{name}_sum", **mv) > 0
    buckets = [(l["le"], v) for n, l, v in samples if n == f"{name}_bucket" and l.get("model") == model]
    assert len(buckets) >= 2
    bounds = [float(le) for le, _ in buckets]
    assert bounds == sorted(bounds) and bounds[-1] == float("inf")
    counts = [v for _, v in buckets]
    assert all(a <= b for a, b in zip(counts, counts[1:])), f"buckets not monotonic: {buckets}"
    assert counts[-1] == successes


def test_http_requests_by_route(samples, fresh):
    c = fresh["counts"]
    total = "warden_http_requests_total"
    assert value(samples, total, method="POST", route=INFER_ROUTE, status="200") == c["infer_200"]
    assert value(samples, total, method="POST", route=INFER_ROUTE, status="400") == c["infer_400"]
    assert value(samples, total, method="POST", route=VERSIONED_INFER_ROUTE, status="200") == c["versioned_infer_200"]
    junk = [v for n, l, v in samples if n == total and l.get("status") == "404" and l.get("method") == "GET"]
    assert sum(junk) == 1, "the junk path is counted once, under some route template"


def test_no_raw_client_path_in_metrics(samples, fresh):
    assert JUNK_SEGMENT not in fresh["metrics_text"]
    routes = {l["route"] for n, l, _ in samples if "route" in l}
    for route in routes:
        # Model names come from the path: a route label carrying one is a raw path.
        assert not any(m in route for m in MODEL_NAMES), f"raw path in route label: {route}"


def test_sandbox_layers(samples):
    assert value(samples, "warden_sandbox_layer_active", layer="seccomp") == 1
    assert value(samples, "warden_sandbox_layer_active", layer="memory_wx") == 1
    assert value(samples, "warden_sandbox_layer_active", layer="no_new_privs") == 1


@pytest.mark.parametrize(
    "model,ok_batches,rejected",
    [
        ("iris", IRIS_OK_BATCHES, IRIS_REJECTED),
        ("digits", DIGITS_OK_BATCHES, 0),
        ("mnist_cnn", MNIST_OK_BATCHES, MNIST_REJECTED),
    ],
)
def test_statistics_match(fresh, samples, model, ok_batches, rejected):
    (st,) = fresh["stats"][model]
    assert st["name"] == model and st["version"] == "1"
    assert st["inference_count"] == sum(ok_batches)
    assert st["execution_count"] == len(ok_batches)
    inf = st["inference_stats"]
    assert inf["success"]["count"] == len(ok_batches) and inf["success"]["ns"] > 0
    assert inf["fail"]["count"] == rejected
    for phase in ("queue", "compute_input", "compute_infer", "compute_output"):
        assert inf[phase]["count"] == len(ok_batches), phase
    # Executions per batch size.
    by_batch = {b["batch_size"]: b["compute_infer"]["count"] for b in st["batch_stats"]}
    want = {}
    for rows in ok_batches:
        want[rows] = want.get(rows, 0) + 1
    assert by_batch == want
    now_ms = time.time() * 1000
    assert now_ms - 600_000 < st["last_inference"] <= now_ms + 1000, "last_inference is milliseconds since the epoch"
    # The two views agree.
    mv = {"model": model, "version": "1"}
    assert value(samples, "nv_inference_request_success", **mv) == inf["success"]["count"]
    assert value(samples, "nv_inference_count", **mv) == st["inference_count"]


def test_logs_are_json(fresh):
    lines = fresh["server"].log_lines
    assert lines
    for line in lines:
        event = json.loads(line)  # raises on any non-JSON line
        assert {"timestamp", "level", "message"} <= set(event), event
    assert not fresh["server"].stderr_lines, fresh["server"].stderr_lines


def test_logs_carry_client_request_id(fresh):
    srv = fresh["server"]
    ok = srv.wait_for_log(lambda e: e.get("request_id") == OK_REQUEST_ID)
    assert ok is not None, f"no log event with request_id {OK_REQUEST_ID}:\n{srv.output_tail()}"
    assert ok["status"] == 200 and ok["route"] == INFER_ROUTE, ok
    failed = srv.wait_for_log(lambda e: e.get("request_id") == FAIL_REQUEST_ID)
    assert failed is not None, f"no log event with request_id {FAIL_REQUEST_ID}"
    assert failed["status"] == 400 and failed["level"] == "WARN" and "shape" in failed.get("error", ""), failed
    # One request each: the id names exactly the request that sent it.
    events = [json.loads(l) for l in srv.log_lines]
    for rid in (OK_REQUEST_ID, FAIL_REQUEST_ID):
        assert sum(e.get("request_id") == rid for e in events) == 1, rid


def test_response_echoes_request_id(fresh):
    srv = fresh["server"]
    rid = f"pytest-echo-{RUN_ID}"
    resp = requests.get(f"{srv.http_url}/v2/health/ready", headers={"x-request-id": rid}, timeout=30)
    assert resp.status_code == 200
    assert resp.headers.get("x-request-id") == rid
