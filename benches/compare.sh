#!/bin/sh
# Side-by-side comparison of warden with MLServer and a Flask app under
# gunicorn, on this machine, with the same model and the same load
# generator; writes benches/RESULTS.md and benches/results/*.svg.
#
# One command from a clean checkout (needs network access to crates.io,
# PyPI and, for wrk and nginx, Debian apt; takes several minutes):
#
#     benches/compare.sh                 # 5 s per load run, 3 rounds
#     benches/compare.sh --duration 2 --rounds 2    # quicker, noisier
#
# Everything it installs lives under target/compare/ (never committed): a
# Python venv with MLServer, mlserver-sklearn, Flask, gunicorn, scikit-learn,
# onnxruntime and skl2onnx (for the random forest), and the PP-OCR models of
# the rapidocr-onnxruntime wheel.
# Not part of CI.
set -eu
cd "$(dirname "$0")/.."
WORK=target/compare
mkdir -p "$WORK"

echo "== building warden (release)" >&2
cargo build --release --locked --bin warden

if ! command -v wrk >/dev/null 2>&1; then
    echo "== installing wrk (apt)" >&2
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk >/dev/null; else sudo apt-get install -y -qq wrk >/dev/null; fi
fi

# nginx answering `return 200` is the c=1 floor: what the kernel, the
# loopback and wrk cost on this machine (the comparison runs without it).
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    echo "== installing nginx (apt), for the c=1 floor" >&2
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get install -y -qq nginx-light >/dev/null 2>&1 ||
        { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq nginx-light >/dev/null; } ||
        echo "   nginx not installed: the comparison runs without the c=1 floor" >&2
fi

# perf profiles the server for the lockdown's direct kernel cost; profiling
# warden (non-dumpable once locked down) needs root or CAP_PERFMON, and kernel
# symbols. Without it the lockdown row falls back to the A/B CPU ratio.
if ! command -v perf >/dev/null 2>&1; then
    echo "== installing perf (apt), for the lockdown's direct cost" >&2
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get install -y -qq linux-perf >/dev/null 2>&1 ||
        { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq linux-perf >/dev/null; } ||
        echo "   perf not installed: the lockdown row falls back to the A/B CPU ratio" >&2
fi

# The venv is (re)filled whenever one of the packages is missing, so that a
# venv from an older version of this script gains what was added since.
PY="$WORK/venv/bin/python"
if [ ! -x "$PY" ]; then
    echo "== creating $WORK/venv" >&2
    python3 -m venv "$WORK/venv"
    "$PY" -m pip install -q --upgrade pip
fi
if [ ! -x "$WORK/venv/bin/mlserver" ] || [ ! -x "$WORK/venv/bin/gunicorn" ] ||
    ! "$PY" -c 'import mlserver_sklearn, flask, sklearn, joblib, numpy, onnxruntime, skl2onnx' 2>/dev/null; then
    echo "== installing into $WORK/venv (MLServer, Flask, gunicorn, onnxruntime, skl2onnx)" >&2
    # MLServer 1.7 parallel workers crash with uvloop >= 0.21 ("There is no current
    # event loop" in mlserver/parallel/worker.py): pin uvloop so that MLServer runs
    # with its default settings.
    "$PY" -m pip install -q mlserver mlserver-sklearn flask gunicorn scikit-learn joblib numpy onnxruntime skl2onnx "uvloop<0.21"
fi

exec "$WORK/venv/bin/python" benches/compare.py --work "$WORK" "$@"
