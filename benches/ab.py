#!/usr/bin/env python3
"""Paired A/B run of two warden configurations: the same binary started
twice with different flags, driven in turn by the same wrk load (iris, one
row, JSON) at each concurrency, in rounds that alternate which goes first.
Prints, per concurrency, req/s, wrk's p50 and p99 and the server's CPU time
per request (user + system from /proc/PID/stat, which accrues only while
the server runs), each as the median over the rounds with the spread, and
the paired B/A ratios.

Usage: benches/ab.py --a "--inline-max-us 0" --b "" [--concurrency 1,4]
                     [--duration 5] [--rounds 5] [--a-bin PATH] [--b-bin PATH]
(--a-bin/--b-bin: a binary per side, e.g. main's build against a branch's;
both default to target/release/warden or $WARDEN_BIN.)
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import ROOT, WARDEN, cpu_seconds, warden_server, wrk, wrk_script  # noqa: E402


def spread(values: list[float], fmt: str = "{:.0f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", default="", help="flags of configuration A")
    ap.add_argument("--b", default="", help="flags of configuration B")
    ap.add_argument("--a-bin", type=Path, default=WARDEN, help="binary of configuration A")
    ap.add_argument("--b-bin", type=Path, default=WARDEN, help="binary of configuration B")
    ap.add_argument("--concurrency", default="1,4")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    for b in (args.a_bin, args.b_bin):
        if not b.exists():
            sys.exit(f"{b} is missing: cargo build --release --locked")
    (ROOT / "target" / "compare").mkdir(parents=True, exist_ok=True)
    script = wrk_script(Path(tempfile.mkdtemp(prefix="warden-ab-")))
    servers = {"A": warden_server("ab-a", args.a_bin, ["--allow-metrics=false", *shlex.split(args.a)]),
               "B": warden_server("ab-b", args.b_bin, ["--allow-metrics=false", *shlex.split(args.b)])}
    try:
        for s in servers.values():
            s.start()
        print(f"A: {args.a_bin} serve {args.a or '(defaults)'}\nB: {args.b_bin} serve {args.b or '(defaults)'}")
        print(f"wrk, iris JSON, {args.duration:g} s per run, {args.rounds} rounds alternating A/B order\n")
        print("| c | config | req/s | p50 µs | p99 µs | CPU µs/request |\n|---|---|---|---|---|---|")
        ratios = []
        for conc in (int(c) for c in args.concurrency.split(",")):
            got: dict[str, dict[str, list[float]]] = {k: {"rps": [], "p50": [], "p99": [], "cpu": []} for k in servers}
            for r in range(args.rounds):
                for key in ("AB" if r % 2 == 0 else "BA"):
                    s = servers[key]
                    before = cpu_seconds(s.proc.pid)
                    w = wrk(s, conc, args.duration, script)
                    used = cpu_seconds(s.proc.pid) - before
                    for k in ("rps", "p50", "p99"):
                        got[key][k].append(w[k])
                    got[key]["cpu"].append(used / (w["rps"] * args.duration) * 1e6)
            for key in servers:
                g = got[key]
                print(f"| {conc} | {key} | {spread(g['rps'])} | {spread(g['p50'])} | {spread(g['p99'])} | {spread(g['cpu'], '{:.1f}')} |")
            pair = {k: [b / a for a, b in zip(got["A"][k], got["B"][k])] for k in ("rps", "p50", "cpu")}
            ratios.append((conc, pair))
        print("\nPaired B/A ratios per round (median):")
        for conc, pair in ratios:
            for k, label in (("rps", "req/s"), ("p50", "p50"), ("cpu", "CPU/request")):
                vals = ", ".join(f"{v:.2f}" for v in pair[k])
                print(f"- c={conc} {label}: {vals} (median {statistics.median(pair[k]):.2f})")
    finally:
        for s in servers.values():
            s.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
