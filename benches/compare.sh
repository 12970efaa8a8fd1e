#!/bin/sh
# Side-by-side comparison of warden with MLServer and a Flask app under
# gunicorn, on this machine, with the same model and the same load
# generator; writes benches/RESULTS.md and benches/results/*.svg.
#
# One command from a clean checkout (needs network access to crates.io,
# PyPI and, for wrk, Debian apt; takes several minutes):
#
#     benches/compare.sh                 # 5 s per load run, 3 rounds
#     benches/compare.sh --duration 2 --rounds 2    # quicker, noisier
#
# Everything it installs lives under target/compare/ (never committed): a
# Python venv with MLServer, mlserver-sklearn, Flask, gunicorn, scikit-learn
# and onnxruntime, and the PP-OCR models of the rapidocr-onnxruntime wheel.
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

if [ ! -x "$WORK/venv/bin/mlserver" ] || [ ! -x "$WORK/venv/bin/gunicorn" ]; then
    echo "== creating $WORK/venv (MLServer, Flask, gunicorn, onnxruntime)" >&2
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install -q --upgrade pip
    # MLServer 1.7 parallel workers crash with uvloop >= 0.21 ("There is no current
    # event loop" in mlserver/parallel/worker.py): pin uvloop so that MLServer runs
    # with its default settings.
    "$WORK/venv/bin/pip" install -q mlserver mlserver-sklearn flask gunicorn scikit-learn joblib numpy onnxruntime "uvloop<0.21"
fi

exec "$WORK/venv/bin/python" benches/compare.py --work "$WORK" "$@"
