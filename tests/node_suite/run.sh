#!/usr/bin/env bash
# The ONNX node suite: regenerates the ONNX backend node test cases from the
# pinned onnx wheel, serves each through the real warden ($WARDEN_BIN,
# default target/debug/warden, built when missing) and compares its answers
# with the expected outputs and with ONNX Runtime's. Extra arguments go to
# suite.py (e.g. -k lstm, --servers 1, --regenerate).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
BIN="${WARDEN_BIN:-target/debug/warden}"
if [ ! -x "$BIN" ]; then
    cargo build --bin warden
fi
exec .venv/bin/python tests/node_suite/suite.py --warden "$BIN" "$@"
