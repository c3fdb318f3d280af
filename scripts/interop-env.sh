#!/usr/bin/env bash
# Make (once) and print the path of a Python venv holding the pinned interop tools
# (torch, safetensors, numpy, pytest, a real sentence-transformers checkpoint).
#
# The venv lives under ~/.cache/ckpt/ and is keyed by the hash of
# tests/interop/requirements.txt, so editing the pins builds a fresh one and an
# unchanged file reuses the cached one. The first run downloads about 5 GB.
#
# Usage: python="$(scripts/interop-env.sh)"
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
req="$root/tests/interop/requirements.txt"
key="$(sha256sum "$req" | cut -c1-12)"
venv="${CKPT_INTEROP_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ckpt/interop-$key}"

if [ ! -f "$venv/.complete" ]; then
    echo "interop-env: installing pinned tools into $venv (first run: a few minutes, ~5 GB)" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
    touch "$venv/.complete"
fi
echo "$venv/bin/python"
