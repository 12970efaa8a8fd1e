"""The real perf_analyzer (Triton's load generator) against warden.

perf_analyzer reads the model metadata and config, sends binary or JSON
inferences, and, because warden advertises the `statistics` extension, reads
/v2/models/{m}/stats before and after each measurement to print the server
side breakdown. Any gap in those answers makes it exit non-zero or drop the
"Server:" section, which is what these tests look for.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

# ../shared beside the repository holds the tool, on developer machines and in CI.
PERF_ANALYZER = Path(os.environ.get("PERF_ANALYZER", Path(__file__).resolve().parents[2].parent / "shared/tools/perf_analyzer"))
PA_ROOT = Path(os.environ.get("PA_ROOT", "/var/tmp/perf-analyzer-root"))
PA_BINARY = PA_ROOT / "opt/pa/perf_analyzer/bin/perf_analyzer"
RUN_TIMEOUT_S = 600

ERROR_LINE = re.compile(r"\berror\b|\bfailed\b|failed to|thread \[\d+\] had", re.IGNORECASE)
SERVER_BREAKDOWN = re.compile(
    r"Avg request latency: (\d+) usec \(overhead (\d+) usec \+ queue (\d+) usec \+ compute input (\d+) usec"
    r" \+ compute infer (\d+) usec \+ compute output (\d+) usec\)"
)


@pytest.fixture(scope="session")
def perf_analyzer():
    """The tool, ready to run. It needs root (chroot into a Debian root that it
    builds with debootstrap the first time); skip only when that is truly
    impossible here, never when the tool itself misbehaves."""
    if not PERF_ANALYZER.exists():
        pytest.skip(f"perf_analyzer wrapper not found at {PERF_ANALYZER}")
    if os.geteuid() != 0:
        pytest.skip("perf_analyzer runs in a chroot and needs root")
    built_before = PA_BINARY.exists()
    proc = subprocess.run([str(PERF_ANALYZER), "--version"], capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    if proc.returncode != 0 and not built_before:
        log = Path("/tmp/perf-analyzer-debootstrap.log")
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        pytest.skip(f"could not build perf_analyzer's Debian root (rc {proc.returncode}): {proc.stderr[-2000:]}\n{tail}")
    assert proc.returncode == 0, f"perf_analyzer --version failed: {proc.stdout}{proc.stderr}"
    return PERF_ANALYZER


@pytest.fixture(scope="module")
def server(start_server):
    # Its own instance: a load run that trips the lockdown marks the process
    # compromised (not live, not ready), and that must not fail the unrelated
    # tritonclient tests on the shared server.
    return start_server()


def run_perf_analyzer(tool: Path, server, model: str, *extra: str) -> str:
    violations_before = len(server.blocked_syscalls())
    cmd = [
        str(tool),
        "-m",
        model,
        "-u",
        server.http_address,
        "--measurement-interval",
        "2000",
        # The machine is shared with parallel builds: latency wanders, and the
        # default 10% stability bound can make perf_analyzer give up, which
        # says nothing about the protocol. Only the protocol is under test.
        "--stability-percentage",
        "100",
        "--max-trials",
        "20",
        *extra,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{output}"
    errors = [line for line in output.splitlines() if ERROR_LINE.search(line)]
    assert not errors, "error lines from perf_analyzer:\n" + "\n".join(errors) + f"\n\nfull output:\n{output}"
    assert server.alive(), server.output_tail()
    time.sleep(0.5)  # violations are reported every 200 ms
    blocked = server.blocked_syscalls()[violations_before:]
    assert not blocked, f"the lockdown blocked a system call of warden's own under {' '.join(extra)}:\n{server.violation_report()}"
    if violations_before == 0:
        assert server.is_live()
    return output


def concurrency_blocks(output: str) -> dict[int, str]:
    parts = re.split(r"^Request concurrency: (\d+)\s*$", output, flags=re.MULTILINE)
    # parts: [preamble, c1, block1, c2, block2, ...]; the last block runs on
    # into the summary table, which the checks below do not mind.
    return {int(parts[i]): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def check_blocks(output: str, concurrencies: list[int], batch: int) -> None:
    blocks = concurrency_blocks(output)
    assert sorted(blocks) == concurrencies, f"measured concurrencies {sorted(blocks)}:\n{output}"
    for c, block in blocks.items():
        assert "Client:" in block and "Server:" in block, f"concurrency {c}: no Server: section\n{block}"
        server_part = block.split("Server:", 1)[1]
        client_part = block.split("Server:", 1)[0]
        requests_sent = int(re.search(r"Request count: (\d+)", client_part).group(1))
        assert requests_sent > 0
        assert float(re.search(r"Throughput: ([\d.]+) infer/sec", client_part).group(1)) > 0
        inferences = int(re.search(r"Inference count: (\d+)", server_part).group(1))
        executions = int(re.search(r"Execution count: (\d+)", server_part).group(1))
        successes = int(re.search(r"Successful request count: (\d+)", server_part).group(1))
        assert executions > 0 and successes > 0, server_part
        # warden does not batch requests together: one execution per request,
        # each counting its batch size in inferences.
        assert inferences == batch * executions, server_part
        breakdown = SERVER_BREAKDOWN.search(server_part)
        assert breakdown, f"concurrency {c}: no queue/compute breakdown\n{server_part}"
        total, c_infer = int(breakdown.group(1)), int(breakdown.group(5))
        assert total > 0 and c_infer > 0, breakdown.group(0)


@pytest.mark.parametrize("model", ["iris", "digits"])
@pytest.mark.parametrize("tensor_format", ["binary", "json"])
def test_perf_analyzer(perf_analyzer, server, model, tensor_format):
    extra = ["--concurrency-range", "1:4"]
    if tensor_format == "json":
        extra.append("--input-tensor-format=json")
    output = run_perf_analyzer(perf_analyzer, server, model, *extra)
    check_blocks(output, [1, 2, 3, 4], batch=1)


def test_perf_analyzer_mnist_batch(perf_analyzer, server):
    output = run_perf_analyzer(perf_analyzer, server, "mnist_cnn", "-b", "2", "--concurrency-range", "1:2")
    assert re.search(r"Batch size: 2\b", output), output
    check_blocks(output, [1, 2], batch=2)


def test_perf_analyzer_mnist_json(perf_analyzer, server):
    # 1568 random FP32 bit patterns per row: some are NaN, which perf_analyzer
    # (like Triton) writes as the literal NaN; Triton accepts it.
    output = run_perf_analyzer(perf_analyzer, server, "mnist_cnn", "-b", "2", "--concurrency-range", "1:1", "--input-tensor-format=json")
    check_blocks(output, [1], batch=2)
