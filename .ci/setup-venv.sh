#!/usr/bin/env bash
# Create the Python test venv (.venv in the repo root) and install the pinned
# test tooling from requirements-test.txt. Safe to run repeatedly: the venv is
# created only if missing, and pip skips what is already installed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQ="$ROOT/requirements-test.txt"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup-venv: creating $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
else
    echo "setup-venv: reusing $VENV"
fi

echo "setup-venv: installing $(basename "$REQ")"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
echo "setup-venv: ready ($("$VENV/bin/python" --version 2>&1), $(grep -c '==' "$REQ") pinned packages)"
