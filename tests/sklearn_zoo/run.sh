#!/usr/bin/env bash
# The scikit-learn zoo: trains and converts the estimators in zoo.py, serves
# them with the real warden ($WARDEN_BIN, default target/debug/warden, built
# when missing) and compares its answers with scikit-learn's. Extra
# arguments go to zoo.py (e.g. -k forest, --keep /tmp/zoo).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
BIN="${WARDEN_BIN:-target/debug/warden}"
if [ ! -x "$BIN" ]; then
    cargo build --bin warden
fi
exec .venv/bin/python tests/sklearn_zoo/zoo.py --warden "$BIN" "$@"
