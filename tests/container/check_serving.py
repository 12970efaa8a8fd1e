#!/usr/bin/env python3
"""Asks a running warden, through the real Triton client, for every bundled
model's reference outputs (tests/reference/*.json) and compares them within
the tolerances the reference files carry. Exit 0 only if every model answers
correctly, over both the JSON and the binary tensor encodings.

Usage: check_serving.py HOST:PORT [--metrics HOST:PORT]
"""

import argparse
import json
import pathlib
import sys
import urllib.request

import numpy as np
import tritonclient.http as httpclient

REFERENCE = pathlib.Path(__file__).resolve().parents[1] / "reference"

NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}


def check_model(client, ref, binary):
    name = ref["model"]
    if not client.is_model_ready(name):
        return [f"{name}: not ready"]
    inputs = []
    for spec in ref["inputs"]:
        data = np.asarray(spec["data"], dtype=NUMPY[spec["datatype"]]).reshape(spec["shape"])
        inp = httpclient.InferInput(spec["name"], list(data.shape), spec["datatype"])
        inp.set_data_from_numpy(data, binary_data=binary)
        inputs.append(inp)
    outputs = [httpclient.InferRequestedOutput(o["name"], binary_data=binary) for o in ref["outputs"]]
    result = client.infer(name, inputs, outputs=outputs)
    errors = []
    for spec in ref["outputs"]:
        got = result.as_numpy(spec["name"])
        want = np.asarray(spec["data"], dtype=NUMPY[spec["datatype"]]).reshape(spec["shape"])
        if got is None:
            errors.append(f"{name}/{spec['name']}: missing from the response")
        elif list(got.shape) != list(want.shape):
            errors.append(f"{name}/{spec['name']}: shape {list(got.shape)}, expected {list(want.shape)}")
        elif not np.allclose(got, want, rtol=ref["rtol"], atol=ref["atol"]):
            worst = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
            errors.append(f"{name}/{spec['name']}: differs from the reference (max abs diff {worst})")
    return errors


# Layers that must be in force inside the container (Landlock included: the
# container profile has to let warden install it).
REQUIRED_LAYERS = ("no_new_privs", "not_dumpable", "capabilities", "landlock_fs", "seccomp", "memory_wx")


def check_metrics(text):
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            values[series] = float(value)
    errors = []
    for layer in REQUIRED_LAYERS:
        v = values.get(f'warden_sandbox_layer_active{{layer="{layer}"}}')
        if v != 1:
            errors.append(f"metrics: lockdown layer {layer} is {v}, expected 1")
    # A blocked call means the container profile or the in-process filter
    # refused something warden needed: a defect, even if serving worked.
    for series, v in values.items():
        if series.startswith("warden_sandbox_violations_total") and v > 0:
            errors.append(f"metrics: {series} = {v}")
    return errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url", help="HOST:PORT of the inference listener")
    ap.add_argument("--metrics", help="HOST:PORT of the metrics listener (checked when given)")
    args = ap.parse_args()

    client = httpclient.InferenceServerClient(url=args.url, network_timeout=30.0)
    errors = []
    if not client.is_server_live():
        errors.append("server not live")
    if not client.is_server_ready():
        errors.append("server not ready")
    refs = sorted(REFERENCE.glob("*.json"))
    if not refs:
        errors.append(f"no reference files in {REFERENCE}")
    for path in refs:
        ref = json.loads(path.read_text())
        for binary in (False, True):
            errs = check_model(client, ref, binary)
            errors.extend(errs)
            print(f"{'FAIL' if errs else 'ok  '} {ref['model']} ({'binary' if binary else 'JSON'} tensors)")
    if args.metrics:
        with urllib.request.urlopen(f"http://{args.metrics}/metrics", timeout=10) as r:
            text = r.read().decode()
        errors.extend(check_metrics(text))
        print(f"{'FAIL' if errors else 'ok  '} metrics: lockdown layers in force, no blocked system call")
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
