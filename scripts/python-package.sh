#!/usr/bin/env bash
# Build the `ckpt` Python package (crates/ckpt-python, PyO3 + maturin) from this tree and
# install it into the environment of the given Python, replacing any earlier build.
#
# Usage: scripts/python-package.sh PYTHON [--release]
#
# The interop suite (tests/interop/run.sh) runs this before its tests, so that they test
# the package of the tree they run in. Builds share cargo's target/ folder with the rest of
# the workspace; the wheel is left in target/wheels/. PYTHON's environment needs maturin
# (tests/interop/requirements.txt pins it); a user installs with `pip install
# ./crates/ckpt-python` instead, which fetches maturin itself.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${1:?usage: python-package.sh PYTHON [--release]}"
shift
out="$root/target/wheels"
rm -rf "$out"
"$python" -m maturin build --quiet --manifest-path "$root/crates/ckpt-python/Cargo.toml" \
    --interpreter "$python" --out "$out" "$@" >&2
wheels=("$out"/ckpt-*.whl)
"$python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps \
    "${wheels[0]}" >&2
