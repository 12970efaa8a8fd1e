"""Shared helpers for the Python acceptance tests: start the real warden
binary, and the bundled models' expected interface and reference data."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_MESSAGE = "HTTP listening; ready"
METRICS_MESSAGE = "metrics listening on /metrics"
VIOLATION_MESSAGE = "lockdown blocked a system call"
START_TIMEOUT_S = 60.0

# The interface each bundled model must expose (models/README.md). Written out
# by hand rather than read from the server, so that a server that reports the
# wrong thing fails the tests.
MODELS = {
    "iris": {
        "max_batch_size": 64,  # derived: --default-max-batch-size, no config.pbtxt
        "inputs": [("float_input", "FP32", [-1, 4])],
        "outputs": [("label", "INT64", [-1]), ("probabilities", "FP32", [-1, 3])],
    },
    "digits": {
        "max_batch_size": 64,
        "inputs": [("float_input", "FP32", [-1, 64])],
        "outputs": [("label", "INT64", [-1]), ("probabilities", "FP32", [-1, 10])],
    },
    "mnist_cnn": {
        "max_batch_size": 8,  # from models/mnist_cnn/config.pbtxt
        "inputs": [("input", "FP32", [-1, 1, 28, 28])],
        "outputs": [("logits", "FP32", [-1, 10])],
    },
}
MODEL_NAMES = sorted(MODELS)

CONFIG_TYPES = {"FP32": "TYPE_FP32", "INT64": "TYPE_INT64"}


def load_reference(model: str) -> dict:
    with open(REPO_ROOT / "tests" / "reference" / f"{model}.json", encoding="utf-8") as f:
        return json.load(f)


def warden_binary() -> Path:
    """The binary under test: $WARDEN_BIN, else target/debug/warden, built when missing."""
    env = os.environ.get("WARDEN_BIN")
    path = Path(env) if env else REPO_ROOT / "target" / "debug" / "warden"
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.exists():
        if env:
            raise FileNotFoundError(f"WARDEN_BIN={env} does not exist")
        subprocess.run(["cargo", "build", "--bin", "warden"], cwd=REPO_ROOT, check=True)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing even after cargo build")
    return path


class WardenServer:
    """A running `warden serve` on free ports.

    stdout and stderr are drained by threads for the whole life of the
    process: a verbose server under perf_analyzer writes thousands of lines,
    and a full pipe would block its logging and stall the requests.
    """

    def __init__(self, binary: Path, extra_args: list[str] | None = None, model_repository: str | Path = "models"):
        self.args = [
            str(binary),
            "serve",
            "--model-repository",
            str(model_repository),
            "--http-address",
            "127.0.0.1",
            "--http-port",
            "0",
            "--metrics-port",
            "0",
            "--log-format",
            "json",
            *(extra_args or []),
        ]
        env = dict(os.environ)
        # RUST_LOG would override --log-verbose and change what is logged.
        env.pop("RUST_LOG", None)
        self._lock = threading.Lock()
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._events: queue.Queue = queue.Queue()
        self.proc = subprocess.Popen(
            self.args,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self._threads = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, self._stdout, True), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, self._stderr, False), daemon=True),
        ]
        for t in self._threads:
            t.start()
        self.http_address: str = ""
        self.metrics_address: str = ""
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _drain(self, stream, sink: list[str], is_stdout: bool) -> None:
        for line in stream:
            line = line.rstrip("\n")
            with self._lock:
                sink.append(line)
            if is_stdout:
                self._events.put(line)
        if is_stdout:
            self._events.put(None)  # end of output: the process is gone

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"warden was not ready within {START_TIMEOUT_S}s:\n{self.output_tail()}")
            try:
                line = self._events.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=10)
                raise RuntimeError(f"warden exited with {self.proc.returncode} before it was ready:\n{self.output_tail()}")
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # every line must be JSON, but that is checked by a test, not here
            message = event.get("message")
            if message == METRICS_MESSAGE:
                self.metrics_address = event["address"]
            elif message == READY_MESSAGE:
                self.http_address = event["address"]
                if not self.metrics_address:
                    raise RuntimeError(f"ready without a metrics listener:\n{self.output_tail()}")
                return

    @property
    def http_url(self) -> str:
        return f"http://{self.http_address}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.metrics_address}/metrics"

    @property
    def log_lines(self) -> list[str]:
        """Every stdout line so far (a copy)."""
        with self._lock:
            return list(self._stdout)

    @property
    def stderr_lines(self) -> list[str]:
        with self._lock:
            return list(self._stderr)

    def wait_for_log(self, predicate, timeout: float = 5.0) -> dict | None:
        """The first JSON log event that satisfies predicate, waiting up to timeout:
        the server logs after it has answered, so the line can trail the response."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log_lines:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if predicate(event):
                    return event
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def blocked_syscalls(self) -> list[dict]:
        """The lockdown's violation events so far. The server turns trapped
        system calls into these every 200 ms; wait a little longer than that
        after the requests before asking."""
        events = []
        for line in self.log_lines:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event.get("message") == VIOLATION_MESSAGE:
                events.append(event)
        return events

    def violation_report(self, context: int = 8) -> str:
        """Each violation event with the log lines before it (the requests
        that were being served when the call was trapped)."""
        lines = self.log_lines
        parts = []
        for i, line in enumerate(lines):
            if VIOLATION_MESSAGE in line:
                parts.append("\n".join(lines[max(0, i - context) : i + 1]))
        return "\n---\n".join(parts)

    def is_live(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http_url}/v2/health/live", timeout=30) as resp:
                return resp.status == 200
        except urllib.error.HTTPError:
            return False

    def output_tail(self, n: int = 40) -> str:
        with self._lock:
            lines = self._stdout[-n:] + [f"stderr: {l}" for l in self._stderr[-n:]]
        return "\n".join(lines)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        for t in self._threads:
            t.join(timeout=5)
