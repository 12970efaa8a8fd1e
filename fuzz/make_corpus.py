#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/.

Seeds come from the bundled models (model files, config.pbtxt) and from the
requests in tests/reference, so nothing large is committed. Run from any
directory; it is idempotent.
"""
import json
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def ctl(mode, header_len=0, raw_kind=0, small_limits=0):
    """The 5 control bytes of the decode_request target (see its doc)."""
    return bytes([mode]) + struct.pack("<H", header_len) + bytes([raw_kind, small_limits])


def request_seeds():
    for ref in sorted((ROOT / "tests" / "reference").glob("*.json")):
        r = json.loads(ref.read_text())
        inputs = r["inputs"]
        body = json.dumps({"inputs": inputs, "outputs": [{"name": o["name"]} for o in r["outputs"]]}).encode()
        write("decode_request", f"{ref.stem}_json", ctl(0) + body)
        write("decode_request", f"{ref.stem}_json_small", ctl(0, small_limits=1) + body)
        # The same tensors as binary data.
        header = {"inputs": [], "parameters": {"binary_data_output": True}}
        tail = b""
        for i in inputs:
            flat = i["data"]
            while flat and isinstance(flat[0], list):
                flat = [x for row in flat for x in row]
            fmt = {"FP32": "f", "FP64": "d", "INT64": "q", "INT32": "i", "UINT8": "B"}.get(i["datatype"], "f")
            raw = struct.pack(f"<{len(flat)}{fmt}", *flat)
            header["inputs"].append({"name": i["name"], "shape": i["shape"], "datatype": i["datatype"], "parameters": {"binary_data_size": len(raw)}})
            tail += raw
        h = json.dumps(header).encode()
        if len(h) < 65536:
            write("decode_request", f"{ref.stem}_binary", ctl(1, len(h)) + h + tail)
    # Raw mode, BYTES, FP16 and a few edge shapes.
    write("decode_request", "raw_f32", ctl(2, raw_kind=0) + struct.pack("<8f", *range(8)))
    s = [b"hello", b"", b"\xff\xfe"]
    tail = b"".join(struct.pack("<I", len(x)) + x for x in s)
    h = json.dumps({"inputs": [{"name": "s", "shape": [3], "datatype": "BYTES", "parameters": {"binary_data_size": len(tail)}}]}).encode()
    write("decode_request", "bytes_binary", ctl(1, len(h)) + h + tail)
    write("decode_request", "bytes_json", ctl(0) + b'{"inputs":[{"name":"s","shape":[2],"datatype":"BYTES","data":["a","\\u00e9"]}]}')
    h = json.dumps({"inputs": [{"name": "h", "shape": [2], "datatype": "FP16", "parameters": {"binary_data_size": 4}}]}).encode()
    write("decode_request", "fp16_binary", ctl(1, len(h)) + h + b"\x00\x3c\x00\x40")
    for dt in ["BOOL", "UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "UINT64", "INT64", "FP64"]:
        write("decode_request", f"json_{dt}", ctl(0) + json.dumps({"id": "x", "inputs": [{"name": "x", "shape": [2, 1], "datatype": dt, "data": [[1], [0]] if dt != "BOOL" else [[True], [False]]}]}).encode())
    write("decode_request", "huge_shape", ctl(0) + b'{"inputs":[{"name":"x","shape":[4294967296,4294967296],"datatype":"FP32","data":[1]}]}')
    write("decode_request", "deep", ctl(0, small_limits=1) + b'{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[[[[[[[[[[1]]]]]]]]]]}]}')


def pbtxt_seeds():
    for cfg in sorted(ROOT.glob("models/*/config.pbtxt")):
        write("pbtxt", cfg.parent.name, cfg.read_bytes())
    write("pbtxt", "full", b'''name: "m"
platform: "onnxruntime_onnx"
max_batch_size: 8
version_policy: { specific: { versions: [1, 3] } }
input [ { name: "a" data_type: TYPE_FP32 dims: [ -1, 4 ] }, { name: "b" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "y" data_type: TYPE_INT64 dims: [ 1 ] reshape: { shape: [ ] } } ]
instance_group [ { count: 2 kind: KIND_CPU } ]
# comment
parameters { key: "k" value: { string_value: "v\\n\\"q\\"" } }
''')
    write("pbtxt", "latest", b"version_policy: { latest: { num_versions: 2 } }\nmax_batch_size: 0\n")


def model_seeds():
    for m in sorted(ROOT.glob("models/*/*/model.onnx")):
        write("model_load", m.parent.parent.name, m.read_bytes())


if __name__ == "__main__":
    request_seeds()
    pbtxt_seeds()
    model_seeds()
    for d in sorted(CORPUS.iterdir()):
        print(f"{d.name}: {len(list(d.iterdir()))} seeds")
