#!/usr/bin/env bash
# Every test CI runs, in order; the README's test command (via .ci/run, which
# installs what these need first). Run from anywhere; needs root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "format and lints"
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings

step "cargo test: unit, router, end-to-end, hostile clients, bench, lockdown (one process per case)"
cargo test --locked

step "criterion benches compile (test profile, so the dev build's dependencies are reused)"
cargo test --locked --benches --no-run

step "Python: real tritonclient, perf_analyzer, Prometheus parser"
WARDEN_BIN="$PWD/target/debug/warden" tests/python/run.sh

step "scikit-learn zoo through warden and tritonclient"
WARDEN_BIN="$PWD/target/debug/warden" tests/sklearn_zoo/run.sh

step "real published models from PyPI wheels, as shipped, with a config and under --sandbox=strict, against ONNX Runtime"
WARDEN_BIN="$PWD/target/debug/warden" tests/model_zoo/run.sh --no-timing

step "ONNX node suite through the HTTP API (cases from the pinned onnx wheel's generators; zero silent wrong answers)"
WARDEN_BIN="$PWD/target/debug/warden" tests/node_suite/run.sh

step "container: lint, supply chain, real run under the container profile"
tests/container/lint.sh
tests/container/supply-chain.sh
tests/container/run.sh

step "fuzz smoke run"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
fuzz/run.sh "${FUZZ_SECONDS:-60}"

echo
echo "all tests passed"
