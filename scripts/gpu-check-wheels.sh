#!/usr/bin/env bash
# Fetch the wheels scripts/gpu-check.sh installs on a GPU machine that has no pydantic: the
# versions in uv.lock, for CPython 3.12 on x86-64 Linux, into .whl/ (ignored by git).
# Usage: scripts/gpu-check-wheels.sh [PYTHON_VERSION]   (default 3.12)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
version="${1:-3.12}"
locked() { awk -v n="$1" '$0=="name = \""n"\"" {getline; gsub(/version = |"/, ""); print; exit}' uv.lock; }
mkdir -p .whl
for name in pydantic pydantic-core annotated-types typing-inspection typing-extensions; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$version" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "$name==$(locked "$name")"
done
ls -1 .whl
