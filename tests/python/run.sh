#!/usr/bin/env bash
# The Python acceptance tests: the real tritonclient, perf_analyzer and a
# Prometheus parser against the real warden binary ($WARDEN_BIN, default
# target/debug/warden, built with cargo when missing). Extra arguments go to
# pytest, e.g. tests/python/run.sh -k metrics.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
bash .ci/setup-venv.sh
exec .venv/bin/python -m pytest -q tests/python "$@"
