#!/usr/bin/env bash
# Supply-chain gate for Cargo.lock, offline:
#   1. cargo audit against the offline RustSec copy (../shared/advisory-db):
#      any known advisory on a locked dependency fails the build. This is the
#      Rust analogue of blocking vulnerable images with Trivy. An exception
#      is an `ignore` entry in .cargo/audit.toml with a written reason.
#   2. cargo deny check licenses bans sources (deny.toml).
# Installs cargo-audit / cargo-deny with `cargo install --locked` when
# missing (crates.io only; ~6 minutes each on a small machine).
# Usage: tests/container/supply-chain.sh   ADVISORY_DB=... overrides the db.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
db=${ADVISORY_DB:-$root/../shared/advisory-db}

need() {
    if ! cargo "$1" --version >/dev/null 2>&1; then
        echo "== installing cargo-$1"
        cargo install "cargo-$1" --locked
    fi
}

echo "== cargo audit (offline database $db)"
[[ -d $db/crates ]] || { echo "no advisory database at $db (see ../shared/advisory-db.md)" >&2; exit 2; }
need audit
# --stale: the offline copy is older than cargo-audit's 90-day freshness limit.
# -D warnings: unmaintained and unsound crates fail too, not only CVEs.
cargo audit --db "$db" --no-fetch --stale -D warnings --file Cargo.lock

echo "== cargo deny check licenses bans sources"
need deny
# cargo-deny reads `cargo metadata`, which wants the sources of every
# platform's dependencies (Windows crates too), not just those the build
# downloaded: fetch them from crates.io (the locked versions, nothing else),
# then check with no further network access.
cargo fetch --locked --quiet
cargo deny --offline check licenses bans sources
