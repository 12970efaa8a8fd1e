#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) from the seed corpus.
# The mutation seed is fixed (FUZZ_SEED, default 1) so a CI run is
# repeatable; set another seed, or run longer (README.md), to explore.
# Exit status is non-zero on the first crash; the crashing input is kept in
# fuzz/artifacts/<target>/. Needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz --locked`).
set -euo pipefail
SECONDS_PER_TARGET="${1:-60}"
cd "$(dirname "$0")"
python3 make_corpus.py
cargo +nightly fuzz build -O
for target in decode_request pbtxt model_load; do
    echo "== fuzz $target for ${SECONDS_PER_TARGET}s"
    # Inputs are capped: the decoder's limits are tested by the hostile
    # suite; bigger inputs only slow libFuzzer down. The RSS limit catches
    # allocations beyond what an input of that size may justify.
    cargo +nightly fuzz run -O "$target" "corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -seed="${FUZZ_SEED:-1}" -max_len=65536 -rss_limit_mb=2048 -timeout=20 -print_final_stats=1
done
