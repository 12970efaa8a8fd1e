"""The ONNX node suite: serve every ONNX backend node test case through the
real warden and compare its answers with the expected outputs.

The cases are regenerated from the test-case generators of the pinned onnx
wheel (onnx.backend.test.case.node, the code behind onnx's own
backend/test/data/node) into target/node_suite/data/node/, in the layout
onnx ships: <case>/model.onnx and <case>/test_data_set_0/{input,output}_N.pb.
They are regenerated when the onnx version changes (or with --regenerate);
if the generators cannot run, the wheel's shipped data directory is used
when it has one, and the report says so.

Each case whose graph inputs and outputs are all tensors is

- served by warden (one model per case, several models per server; a model
  warden refuses at start-up is recorded with warden's message and the
  server restarted without it), and queried once through the real
  tritonclient.http with binary tensors;
- run by ONNX Runtime on the same file and inputs, to know which cases a
  mature runtime passes.

Outputs are compared like onnx's backend test: shapes and element types
exactly, floating point within RTOL relative + ATOL absolute (NaN equals
NaN), integers, booleans and strings exactly.

Categories of a case (warden's side):
  pass      warden answered and every output matches;
  refused   warden refused the model at start-up (its message is kept);
  error     warden loaded the model but the inference request failed;
  MISMATCH  warden answered, but wrong: a silent wrong answer.
Whether ONNX Runtime passes is recorded beside it; the pass rate counts
only cases ONNX Runtime passes. Cases with sequence, optional or map inputs
or outputs are skipped (counted), and so are the training-only operators
below (counted).

The run fails (exit status 1) when a MISMATCH is not in KNOWN_MISMATCHES,
when a KNOWN_MISMATCHES entry no longer mismatches (stale), or when the
pass rate is below PASS_RATE_FLOOR. Results go to stdout and to
target/node_suite/results.json.

Usage: suite.py [--warden PATH] [-k SUBSTRING] [--servers N] [--regenerate]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "python"))
import warden_support  # noqa: E402

OUT_DIR = REPO / "target" / "node_suite"
RTOL = 1e-3
ATOL = 1e-4
# float16 carries 11 significant bits: 1e-3 is one unit in the last place
# near 1, and engines that round intermediate values differently (ONNX
# Runtime computes some half-precision operators in f32, tract in f16)
# differ by a few. Four units, relative, and 1e-3 absolute near zero.
RTOL_F16 = 4e-3
ATOL_F16 = 1e-3

# The run fails below this share of the cases ONNX Runtime passes (training
# operators excluded). Set just below the measured rate; raise it as warden
# improves.
PASS_RATE_FLOOR = 0.705

# Models loaded by one server at a time, and how long a start may take.
MODELS_PER_SERVER = 150
START_TIMEOUT_S = 180.0
# One inference request.
REQUEST_TIMEOUT_S = 60.0

# Operators that only make sense while training, excluded from the suite
# (their cases, and the cases of their function expansions, are counted).
TRAINING_ONLY_OPS = {
    "SoftmaxCrossEntropyLoss": "loss function",
    "NegativeLogLikelihoodLoss": "loss function",
    "ai.onnx.preview.training.Gradient": "gradient computation",
    "ai.onnx.preview.training.Adagrad": "optimiser update",
    "ai.onnx.preview.training.Adam": "optimiser update",
    "ai.onnx.preview.training.Momentum": "optimiser update",
}
# Cases of other operators that exercise training mode only.
TRAINING_ONLY_CASE_PREFIXES = {
    "test_training_dropout": "Dropout with training_mode=true (random mask)",
}

# The name of a refused case retried with its inputs 2.. as initializers
# (see constant_variant).
CONSTANT_SUFFIX = "__const"

# Silent wrong answers warden is known to give, each with a short reason.
# A MISMATCH not listed here fails the run; so does an entry that no longer
# mismatches (take it off).
KNOWN_MISMATCHES: dict[str, str] = {}


# ---------------------------------------------------------------------------
# The cases


def serialise(value, info: onnx.ValueInfoProto):
    """A test value as the .pb file onnx's generate-data writes for it."""
    t = info.type
    if t.HasField("map_type"):
        return numpy_helper.from_dict(value, info.name)
    if t.HasField("sequence_type"):
        return numpy_helper.from_list(value, info.name)
    if t.HasField("optional_type"):
        return numpy_helper.from_optional(value, info.name)
    if isinstance(value, onnx.TensorProto):
        return value
    return numpy_helper.from_array(value, info.name)


def write_case(case, case_dir: Path) -> None:
    case_dir.mkdir(parents=True)
    (case_dir / "model.onnx").write_bytes(case.model.SerializeToString())
    graph = case.model.graph
    for i, (inputs, outputs) in enumerate(case.data_sets):
        ds = case_dir / f"test_data_set_{i}"
        ds.mkdir()
        for j, value in enumerate(inputs):
            (ds / f"input_{j}.pb").write_bytes(serialise(value, graph.input[j]).SerializeToString())
        for j, value in enumerate(outputs):
            (ds / f"output_{j}.pb").write_bytes(serialise(value, graph.output[j]).SerializeToString())


def generate(data_dir: Path, force: bool) -> tuple[Path, str]:
    """The node cases' directory and a sentence saying where they come from."""
    stamp = data_dir.parent / "generated.json"
    if not force and data_dir.is_dir() and stamp.is_file():
        if json.loads(stamp.read_text()).get("onnx") == onnx.__version__:
            return data_dir, f"regenerated from the onnx {onnx.__version__} wheel's generators (cached in {rel(data_dir)})"
    try:
        from onnx.backend.test.case import node

        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            cases = node.collect_testcases()
    except Exception as e:  # noqa: BLE001
        shipped = Path(onnx.__file__).parent / "backend" / "test" / "data" / "node"
        if shipped.is_dir():
            return shipped, f"the onnx {onnx.__version__} wheel's shipped data (the generators failed: {type(e).__name__}: {e})"
        raise
    tmp = data_dir.with_name(data_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    for case in cases:
        write_case(case, tmp / case.name)
    shutil.rmtree(data_dir, ignore_errors=True)
    tmp.rename(data_dir)
    stamp.write_text(json.dumps({"onnx": onnx.__version__, "cases": len(cases)}))
    return data_dir, f"regenerated from the onnx {onnx.__version__} wheel's generators into {rel(data_dir)}"


def rel(p: Path) -> str:
    try:
        return str(p.relative_to(REPO))
    except ValueError:
        return str(p)


def op_name(node: onnx.NodeProto) -> str:
    return f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type


def is_tensor(info: onnx.ValueInfoProto) -> bool:
    return info.type.HasField("tensor_type")


class Case:
    def __init__(self, name: str, case_dir: Path):
        self.name = name
        self.dir = case_dir
        self.model = onnx.load(str(case_dir / "model.onnx"), load_external_data=False)
        graph = self.model.graph
        self.input_names = [i.name for i in graph.input]
        self.output_names = [o.name for o in graph.output]
        self.tensors_only = all(is_tensor(v) for v in [*graph.input, *graph.output])
        self.ops = [op_name(n) for n in graph.node]
        self.opset = next((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")), None)
        self.operator = ""  # the operator under test, set by load_cases
        self.attributes = ""  # its attributes, set by load_cases
        self.variant_of = ""  # for a constant variant, the case it comes from
        self.training = ""  # why the case is training-only, else ""

    def data_sets(self):
        """[(inputs, outputs)] as numpy arrays, for tensor cases."""
        sets = []
        for ds in sorted(self.dir.glob("test_data_set_*")):
            inputs = [read_tensor(ds / f"input_{j}.pb") for j in range(len(list(ds.glob("input_*.pb"))))]
            outputs = [read_tensor(ds / f"output_{j}.pb") for j in range(len(list(ds.glob("output_*.pb"))))]
            sets.append((inputs, outputs))
        return sets


def read_tensor(path: Path) -> np.ndarray:
    t = onnx.TensorProto()
    t.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(t)


def describe_attributes(node: onnx.NodeProto) -> str:
    """The node's attributes, short: name=value, subgraphs and tensors elided."""
    parts = []
    for a in node.attribute:
        if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
            value = "<graph>"
        elif a.type in (onnx.AttributeProto.TENSOR, onnx.AttributeProto.SPARSE_TENSOR):
            value = "<tensor>"
        else:
            value = onnx.helper.get_attribute_value(a)
            value = value.decode() if isinstance(value, bytes) else value
        parts.append(f"{a.name}={value}")
    return " ".join(parts)


def base_name(name: str) -> str:
    """A function expansion's case (test_x_expanded, test_x_expanded_ver18)
    tests the same operator as test_x."""
    return name.split("_expanded")[0]


def load_cases(data_dir: Path) -> list[Case]:
    cases = {p.name: Case(p.name, p) for p in sorted(data_dir.iterdir()) if (p / "model.onnx").is_file()}
    for case in cases.values():
        base = cases.get(base_name(case.name), case)
        case.operator = base.ops[0] if len(base.ops) == 1 else "+".join(sorted(set(base.ops)))
        if len(base.ops) == 1:
            case.attributes = describe_attributes(base.model.graph.node[0])
        if case.operator in TRAINING_ONLY_OPS:
            case.training = f"{case.operator}: {TRAINING_ONLY_OPS[case.operator]}"
        for prefix, why in TRAINING_ONLY_CASE_PREFIXES.items():
            if case.name.startswith(prefix):
                case.training = why
    return list(cases.values())


# ---------------------------------------------------------------------------
# Comparing outputs


def as_bytes(a: np.ndarray) -> np.ndarray:
    return np.array([x.encode() if isinstance(x, str) else bytes(x) for x in a.ravel()], dtype=object).reshape(a.shape)


def is_float(dt: np.dtype) -> bool:
    return dt.kind in "fc" or dt.name in ("bfloat16",) or dt.name.startswith("float8") or dt.name.startswith("float4")


def compare(want: list[np.ndarray], got: list[np.ndarray]) -> tuple[bool, str, float | None]:
    """(all match, what differs, largest absolute error among the differing
    finite values; None when no finite value differs)."""
    if len(got) != len(want):
        return False, f"{len(got)} outputs, expected {len(want)}", None
    problems = []
    max_err = None
    for i, (w, g) in enumerate(zip(want, got)):
        w, g = np.asarray(w), np.asarray(g)
        if g.shape != w.shape:
            problems.append(f"output {i}: shape {list(g.shape)}, expected {list(w.shape)}")
            continue
        if w.dtype == object or g.dtype == object:
            if w.dtype != g.dtype:
                problems.append(f"output {i}: element type {g.dtype}, expected {w.dtype}")
                continue
            bad = as_bytes(g) != as_bytes(w)
            if bad.any():
                k = int(np.flatnonzero(bad.ravel())[0])
                problems.append(f"output {i}: {int(bad.sum())}/{w.size} strings differ (first at {k}: {g.ravel()[k]!r}, expected {w.ravel()[k]!r})")
            continue
        if g.dtype != w.dtype:
            problems.append(f"output {i}: element type {g.dtype}, expected {w.dtype}")
            continue
        if is_float(w.dtype):
            wf = w.astype(np.complex128 if w.dtype.kind == "c" else np.float64)
            gf = g.astype(wf.dtype)
            half = w.dtype == np.float16
            ok = np.isclose(gf, wf, rtol=RTOL_F16 if half else RTOL, atol=ATOL_F16 if half else ATOL, equal_nan=True)
        else:
            wf, gf = w.astype(np.float64), g.astype(np.float64)
            ok = g == w
        if ok.all():
            continue
        bad = ~ok
        err = np.abs(gf - wf)
        finite = bad & np.isfinite(wf) & np.isfinite(gf)
        nonfinite = int((bad & ~finite).sum())
        if finite.any():
            max_err = max(max_err or 0.0, float(err[finite].max()))
        k = int(np.flatnonzero(bad.ravel())[0])
        problems.append(
            f"output {i} ({w.dtype}): {int(bad.sum())}/{w.size} values differ"
            + (f", max abs err {float(err[finite].max()):.3g}" if finite.any() else "")
            + (f", {nonfinite} where one side is NaN or infinite" if nonfinite else "")
            + f" (first at flat index {k}: got {g.ravel()[k].item()!r}, expected {w.ravel()[k].item()!r})"
        )
    return not problems, "; ".join(problems), max_err


# ---------------------------------------------------------------------------
# ONNX Runtime


def run_onnxruntime(case: Case) -> tuple[str, str]:
    """("pass" | "fail", detail) for ONNX Runtime on the case."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 4
    try:
        sess = ort.InferenceSession(str(case.dir / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001
        return "fail", f"load: {one_line(e)}"
    for inputs, outputs in case.data_sets():
        try:
            got = sess.run(None, dict(zip(case.input_names, inputs)))
        except Exception as e:  # noqa: BLE001
            return "fail", f"run: {one_line(e)}"
        ok, detail, _ = compare(outputs, got)
        if not ok:
            return "fail", f"mismatch: {detail}"
    return "pass", ""


def one_line(e: BaseException, limit: int = 600) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------
# warden


class Server(warden_support.WardenServer):
    """warden_support's server, kept when start-up fails so that its log
    can be read (`failure` holds the reason; None once ready)."""

    def _wait_ready(self) -> None:
        self.failure = None
        try:
            super()._wait_ready()
        except RuntimeError as e:
            self.failure = str(e)

    def loaded_models(self) -> set[str]:
        loaded = set()
        for line in self.log_lines:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event.get("message") == "model loaded":
                loaded.add(event.get("model"))
        return loaded

    def refusal(self) -> tuple[str, str] | None:
        """(model, reason) from warden's start-up failure message."""
        for line in self.stderr_lines:
            m = re.match(r"warden: model '(.+?)' version \d+: (.*)", line)
            if m:
                return m.group(1), m.group(2)
        return None


class WardenRunner:
    """Serves a list of cases, MODELS_PER_SERVER at a time.

    A start that fails names the refused model (warden loads models in
    name order and stops at the first it cannot load): it is recorded and
    taken out. The models that loaded before it are known good; they are
    served later, without being probed again.
    """

    def __init__(self, binary: Path, work_dir: Path, results: dict, progress):
        self.binary = binary
        # Every case is written once to models/ in warden's layout, and a
        # start moves its batch into repository/ and back out: renames are
        # cheap where removing directories is not (some file systems take
        # milliseconds per rmdir).
        self.models = work_dir / "models"
        self.repository = work_dir / "repository"
        self.results = results
        self.progress = progress
        self.starts = 0
        self.violations: list[dict] = []

    def run(self, cases: list[Case]) -> None:
        by_name = {c.name: c for c in cases}
        self.repository.mkdir(parents=True)
        for case in cases:
            (self.models / case.name / "1").mkdir(parents=True)
            shutil.copyfile(case.dir / "model.onnx", self.models / case.name / "1" / "model.onnx")
            # No batching: each case's shapes go to the model as they are.
            (self.models / case.name / "config.pbtxt").write_text("max_batch_size: 0\n")
        unprobed = sorted(by_name)
        good: list[str] = []
        while unprobed or good:
            source = unprobed if unprobed else good
            batch = source[:MODELS_PER_SERVER]
            server = self.start(batch)
            if server.failure is None:
                try:
                    done = self.query_all(server, [by_name[n] for n in batch])
                finally:
                    self.violations += server.blocked_syscalls()
                    server.stop()
                del source[: len(batch)]
                # What was not answered (the server died) goes back to the good list.
                good[:0] = [n for n in batch if n not in done and n not in self.results]
                continue
            culprit, reason = self.why_not_started(server, batch)
            reason = reason.replace(f"{self.repository}/", "")  # <case>/1/model.onnx
            self.results[culprit] = {"warden": "refused", "warden_detail": reason}
            self.progress(culprit)
            k = batch.index(culprit)
            if source is unprobed:
                good += batch[:k]
                del unprobed[: k + 1]
            else:
                del good[k]

    def start(self, batch: list[str]) -> Server:
        """warden on the batch's models; warden reads the files only while
        it starts, so they go back to models/ as soon as it is up (or down)."""
        self.starts += 1
        for name in batch:
            (self.models / name).rename(self.repository / name)
        try:
            server = Server(self.binary, repository=self.repository, extra_args=["--infer-threads", "1"])
            if server.failure is not None:
                server.stop()
        finally:
            for name in batch:
                (self.repository / name).rename(self.models / name)
        return server

    def why_not_started(self, server: Server, batch: list[str]) -> tuple[str, str]:
        refusal = server.refusal()
        if refusal and refusal[0] in batch:
            return refusal[0], refusal[1]
        loaded = server.loaded_models()
        pending = [n for n in batch if n not in loaded]
        if not pending:
            raise RuntimeError(f"warden did not start although every model loaded:\n{server.output_tail()}")
        code = server.proc.returncode
        if "was not ready within" in (server.failure or ""):
            why = f"start-up did not finish within {START_TIMEOUT_S:.0f} s (killed while loading this model)"
        elif code is not None and code < 0:
            why = f"warden died of signal {-code} while loading this model: {tail(server)}"
        else:
            why = f"warden exited with {code} while loading this model, naming no model: {tail(server)}"
        return pending[0], why

    def query_all(self, server: Server, cases: list[Case]) -> set[str]:
        import tritonclient.http as httpclient

        client = httpclient.InferenceServerClient(server.http_address, network_timeout=REQUEST_TIMEOUT_S)
        done = set()
        try:
            for case in cases:
                logged, printed = len(server.log_lines), len(server.stderr_lines)
                r = self.results[case.name] = self.query(client, case)
                done.add(case.name)
                self.progress(case.name)
                if r["warden"] == "error":
                    # The client sees "internal error"; the cause is in the log.
                    time.sleep(0.05)
                    cause = server_side_cause(server.log_lines[logged:], server.stderr_lines[printed:])
                    if cause:
                        r["warden_detail"] += f" (server: {cause})"
                if not server.alive():
                    r["warden"] = "error"
                    r["warden_detail"] = f"warden died (exit {server.proc.poll()}) answering this case: {r['warden_detail']}"
                    break
                if r["warden"] == "error" and "timed out" in r["warden_detail"]:
                    break  # a stuck worker: start afresh for the rest
        finally:
            client.close()
        return done

    def query(self, client, case: Case) -> dict:
        import tritonclient.http as httpclient
        from tritonclient.utils import np_to_triton_dtype

        for inputs, outputs in case.data_sets():
            try:
                request = []
                for name, value in zip(case.input_names, inputs):
                    if value.dtype.kind in "OUS":
                        value = as_bytes(value)
                    datatype = np_to_triton_dtype(value.dtype)
                    if datatype is None:
                        return {"warden": "error", "warden_detail": f"the client cannot send element type {value.dtype} (input '{name}')"}
                    tensor = httpclient.InferInput(name, list(value.shape), datatype)
                    tensor.set_data_from_numpy(value, binary_data=True)
                    request.append(tensor)
                wanted = [httpclient.InferRequestedOutput(o, binary_data=True) for o in case.output_names]
                response = client.infer(case.name, request, outputs=wanted)
                got = [response.as_numpy(o) for o in case.output_names]
            except Exception as e:  # noqa: BLE001
                return {"warden": "error", "warden_detail": one_line(e)}
            if any(g is None for g in got):
                missing = [o for o, g in zip(case.output_names, got) if g is None]
                return {"warden": "error", "warden_detail": f"the response lacks outputs {missing}"}
            ok, detail, max_err = compare(outputs, got)
            if not ok:
                return {"warden": "MISMATCH", "warden_detail": detail, "max_abs_err": max_err}
        return {"warden": "pass"}


def server_side_cause(log_lines: list[str], stderr_lines: list[str]) -> str:
    """What warden logged about a failed request: its internal error
    details and any panic message."""
    causes = []
    for line in log_lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("message") == "internal error" and event.get("detail"):
            causes.append(str(event["detail"]))
    for i, line in enumerate(stderr_lines):
        m = re.search(r"panicked at (?:.*/registry/src/[^/]+/)?(.*?):?$", line)
        if m:
            message = stderr_lines[i + 1].strip() if i + 1 < len(stderr_lines) else ""
            causes.append(f"panic at {m.group(1)}: {message}")
    return one_line("; ".join(causes))


def tail(server: Server) -> str:
    lines = [line for line in server.stderr_lines if line.strip()]
    return one_line(lines[-1] if lines else "no output")


# ---------------------------------------------------------------------------
# The report


def refusal_key(reason: str) -> str:
    """A refusal reason without the case-specific parts, to count alike ones."""
    r = re.sub(r"\S*model\.onnx", "<model>", reason)
    m = re.search(r"uses operators warden cannot run: (.*?)\. What to do", r)
    if m:
        ops = re.findall(r"(?:^|; )([\w.]+) \(domain ([\w.]+)", m.group(1))
        return "unsupported operator " + ", ".join(op if dom == "ai.onnx" else f"{dom}.{op}" for op, dom in ops)
    r = re.sub(r"Tensor \{ elem_type: (\w+), .*\}(: )", r"Tensor { elem_type: \1, … }\2", r)
    r = re.sub(r"'[^']*'", "'…'", r)
    r = re.sub(r'"[^"]*"', '"…"', r)
    r = re.sub(r"\b\d+(\.\d+)?\b", "N", r)
    return r[:240]


def constant_variant(case: Case, root: Path) -> Case:
    """The case with every input but the first stored in the model as an
    initializer, the way exported models carry their weights, axes, shapes
    and pads (the node tests feed them all as inputs, which tract often
    cannot plan for). Same expected outputs."""
    inputs, _ = case.data_sets()[0]
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    model.ir_version = max(model.ir_version, 4)  # initializers that are not inputs
    graph = model.graph
    for info, value in zip(graph.input[1:], inputs[1:]):
        graph.initializer.append(numpy_helper.from_array(value, info.name))
    del graph.input[1:]
    variant_dir = root / (case.name + CONSTANT_SUFFIX)
    (variant_dir / "test_data_set_0").mkdir(parents=True)
    (variant_dir / "model.onnx").write_bytes(model.SerializeToString())
    for pb in [case.dir / "test_data_set_0" / "input_0.pb", *sorted((case.dir / "test_data_set_0").glob("output_*.pb"))]:
        shutil.copyfile(pb, variant_dir / "test_data_set_0" / pb.name)
    variant = Case(variant_dir.name, variant_dir)
    variant.operator, variant.attributes, variant.variant_of = case.operator, case.attributes, case.name
    return variant


def serve(binary: Path, cases: list[Case], work: Path, servers: int, results: dict, progress, alongside=None) -> list:
    """Runs the cases through `servers` warden servers side by side (cases
    dealt round-robin), calling `alongside` meanwhile; the runners."""
    runners = [WardenRunner(binary, work / f"server{i}", results, progress) for i in range(servers)]
    with ThreadPoolExecutor(servers) as pool:
        futures = [pool.submit(r.run, cases[i::servers]) for i, r in enumerate(runners)]
        if alongside:
            alongside()
        for f in futures:
            f.result()
    return runners


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--warden", default=str(REPO / "target" / "debug" / "warden"))
    ap.add_argument("-k", default="", help="only cases whose name contains this (no pass-rate floor)")
    ap.add_argument("--servers", type=int, default=2, help="warden servers run side by side")
    ap.add_argument("--regenerate", action="store_true", help="regenerate the cases even if cached")
    args = ap.parse_args()
    started = time.monotonic()
    warden_support.START_TIMEOUT_S = START_TIMEOUT_S
    binary = Path(args.warden).resolve()
    if not binary.exists():
        sys.exit(f"{binary} does not exist")

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    data_dir, source = generate(OUT_DIR / "data" / "node", args.regenerate)
    print(f"node cases: {source}", flush=True)
    cases = [c for c in load_cases(data_dir) if args.k in c.name]
    tensor = [c for c in cases if c.tensors_only]
    training = [c for c in tensor if c.training]
    suite = [c for c in tensor if not c.training]
    print(f"{len(cases)} cases, {len(tensor)} with tensor inputs and outputs, {len(training)} of them training-only; "
          f"running {len(suite)}", flush=True)

    results: dict[str, dict] = {}
    lock = threading.Lock()
    count = [0]

    def progress(_name):
        with lock:
            count[0] += 1
            if count[0] % 250 == 0:
                print(f"  warden: {count[0]} cases ({time.monotonic() - started:.0f} s)", flush=True)

    ort: dict[str, tuple[str, str]] = {}

    def onnxruntime_on_suite():
        for c in suite:
            ort[c.name] = run_onnxruntime(c)

    work = Path(tempfile.mkdtemp(prefix="warden-node-suite-"))
    try:
        runners = serve(binary, suite, work / "cases", args.servers, results, progress, alongside=onnxruntime_on_suite)
        for name, (status, detail) in ort.items():
            results[name]["ort"] = status
            if detail:
                results[name]["ort_detail"] = detail
        # The refused cases with parameters, again with them as initializers.
        retry = [c for c in suite if results[c.name]["warden"] == "refused" and results[c.name]["ort"] == "pass" and len(c.input_names) > 1]
        variants = [constant_variant(c, work / "variants") for c in retry]
        runners += serve(binary, variants, work / "retry", args.servers, results, progress)
        for v in variants:
            results[v.name]["ort"] = results[v.variant_of]["ort"]
            results[v.name]["variant_of"] = v.variant_of
    finally:
        shutil.rmtree(work, ignore_errors=True)

    report(cases, tensor, training, suite, variants, results, runners, source, args, started)


def report(cases, tensor, training, suite, variants, results, runners, source, args, started) -> None:
    by_name = {c.name: c for c in [*suite, *variants]}
    ort_pass = [c.name for c in suite if results[c.name]["ort"] == "pass"]
    counts = collections.Counter(results[n]["warden"] for n in ort_pass)
    ort_fail_counts = collections.Counter(results[c.name]["warden"] for c in suite if results[c.name]["ort"] != "pass")
    variant_counts = collections.Counter(results[v.name]["warden"] for v in variants)
    rate = counts["pass"] / len(ort_pass) if ort_pass else 0.0
    rate_with_variants = (counts["pass"] + variant_counts["pass"]) / len(ort_pass) if ort_pass else 0.0

    print()
    print(f"warden vs the ONNX node suite (onnx {onnx.__version__}; rtol {RTOL}, atol {ATOL})")
    print(f"  cases                            {len(cases)}")
    print(f"  skipped: non-tensor inputs/outputs {len(cases) - len(tensor)}")
    print(f"  skipped: training-only           {len(training)}")
    print(f"  run                              {len(suite)}")
    print(f"  ONNX Runtime passes              {len(ort_pass)}")
    print("  of those, warden:")
    for status in ("pass", "refused", "error", "MISMATCH"):
        print(f"    {status:<30} {counts[status]}")
    print(f"  ONNX Runtime fails               {len(suite) - len(ort_pass)} "
          f"(warden: {', '.join(f'{k} {v}' for k, v in sorted(ort_fail_counts.items()))})")
    print(f"  warden pass rate                 {rate:.1%} of the cases ONNX Runtime passes (floor {PASS_RATE_FLOOR:.1%})")
    print(f"  refused cases retried with inputs 2.. as initializers: {len(variants)} "
          f"({', '.join(f'{k} {v}' for k, v in sorted(variant_counts.items()))}); "
          f"counting those passes: {rate_with_variants:.1%}")

    mismatches = sorted((n for n in by_name if results[n]["warden"] == "MISMATCH"), key=lambda n: (by_name[n].operator, n))
    print(f"\nMISMATCH: warden answered wrong ({len(mismatches)}), by operator "
          f"({CONSTANT_SUFFIX}: the case with inputs 2.. as initializers):")
    last_op = None
    for n in mismatches:
        r = results[n]
        if by_name[n].operator != last_op:
            last_op = by_name[n].operator
            print(f"  {last_op}")
        ort = "" if r["ort"] == "pass" else "  [ONNX Runtime fails too]"
        known = f"  [known: {KNOWN_MISMATCHES[n]}]" if n in KNOWN_MISMATCHES else ""
        case = by_name[n]
        where = f"opset {case.opset}" + (f", {case.attributes}" if case.attributes else "")
        print(f"    {n} ({where}): {r['warden_detail']}{ort}{known}")

    refused = [c.name for c in suite if results[c.name]["warden"] == "refused"]
    reasons = collections.Counter(refusal_key(results[n]["warden_detail"]) for n in refused)
    reasons_ort = collections.Counter(refusal_key(results[n]["warden_detail"]) for n in refused if results[n]["ort"] == "pass")
    print(f"\nrefused at load: {len(refused)} cases ({counts['refused']} of them ONNX Runtime passes), "
          f"{len(reasons)} distinct reasons. The 15 most common among the cases ONNX Runtime passes "
          f"(count there, count over all cases):")
    for key, n in reasons_ort.most_common(15):
        print(f"  {n:4d} {reasons[key]:4d}  {key}")

    errors = [n for n in by_name if results[n]["warden"] == "error" and results[n]["ort"] == "pass"]
    print(f"\nruntime errors (ONNX Runtime passes): {len(errors)}")
    for n in errors:
        print(f"  {n}: {results[n]['warden_detail']}")

    violations = [v for r in runners for v in r.violations]
    if violations:
        calls = collections.Counter(f"{v.get('syscall')} (nr {v.get('nr')})" for v in violations)
        print(f"\nlockdown violations reported by the servers: {', '.join(f'{k} x{n}' for k, n in calls.items())}")

    failures = []
    for n in mismatches:
        if n not in KNOWN_MISMATCHES:
            failures.append(f"{n}: MISMATCH not in KNOWN_MISMATCHES")
    for n, why in KNOWN_MISMATCHES.items():
        if n in results and results[n]["warden"] != "MISMATCH":
            failures.append(f"{n}: listed in KNOWN_MISMATCHES ({why}) but now {results[n]['warden']}: take it off")
    if not args.k and rate < PASS_RATE_FLOOR:
        failures.append(f"pass rate {rate:.1%} is below the floor {PASS_RATE_FLOOR:.1%}")
    elapsed = time.monotonic() - started

    summary = {
        "onnx": onnx.__version__,
        "source": source,
        "rtol": RTOL,
        "atol": ATOL,
        "filter": args.k,
        "seconds": round(elapsed, 1),
        "cases": len(cases),
        "non_tensor": sorted(c.name for c in cases if not c.tensors_only),
        "training_only": sorted(c.name for c in training),
        "run": len(suite),
        "ort_pass": len(ort_pass),
        "warden_on_ort_pass": dict(counts),
        "warden_on_ort_fail": dict(ort_fail_counts),
        "pass_rate": rate,
        "pass_rate_floor": PASS_RATE_FLOOR,
        "constant_variants": dict(variant_counts),
        "pass_rate_counting_constant_variants": rate_with_variants,
        "mismatches": [
            {"case": n, "operator": by_name[n].operator, "opset": by_name[n].opset, "attributes": by_name[n].attributes,
             "max_abs_err": results[n].get("max_abs_err"),
             "detail": results[n]["warden_detail"], "ort": results[n]["ort"], "known": KNOWN_MISMATCHES.get(n)}
            for n in mismatches
        ],
        "refusal_reasons": [{"reason": k, "cases": n, "cases_ort_passes": reasons_ort[k]} for k, n in reasons.most_common()],
        "lockdown_violations": violations,
        "failures": failures,
        "results": {n: {"operator": by_name[n].operator, "opset": by_name[n].opset, **results[n]} for n in sorted(results)},
    }
    (OUT_DIR / "results.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"\nresults: {rel(OUT_DIR / 'results.json')}; {elapsed:.0f} s")
    if failures:
        print("\nFAILED:")
        for f in failures:
            print(f"  {f}")
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
