#!/usr/bin/env bash
# Make (once) and print the path of a Python venv holding pinned interop tools.
#
# Without an argument the venv holds tests/interop/requirements.txt (torch, safetensors, numpy,
# pytest, a real sentence-transformers checkpoint). With an argument it holds that requirements
# file instead, e.g. tests/interop/requirements-torch-old.txt (an older torch for the fixtures).
#
# The venv lives under ~/.cache/ckpt/ and is keyed by the hash of the requirements file, so
# editing the pins builds a fresh one and an unchanged file reuses the cached one. The first
# run downloads a few GB.
#
# With --on-top FILE the venv holds FILE on top of the default one: it sees the default
# venv's packages (torch is not installed twice) and adds FILE's pins, e.g.
# tests/interop/requirements-frameworks.txt (Lightning, accelerate, omegaconf, hydra).
#
# Usage: python="$(scripts/interop-env.sh)"
#        old_python="$(scripts/interop-env.sh tests/interop/requirements-torch-old.txt)"
#        fw_python="$(scripts/interop-env.sh --on-top tests/interop/requirements-frameworks.txt)"
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "${1:-}" = "--on-top" ]; then
    top="${2:?usage: interop-env.sh --on-top REQUIREMENTS}"
    base_python="$("$0")"
    base_site="$("$base_python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    key="$(cat "$root/tests/interop/requirements.txt" "$top" | sha256sum | cut -c1-12)"
    venv="${XDG_CACHE_HOME:-$HOME/.cache}/ckpt/interop-on-top-$key"
    if [ ! -f "$venv/.complete" ]; then
        echo "interop-env: installing $(basename "$top") on top of the interop venv into $venv" >&2
        rm -rf "$venv"
        mkdir -p "$(dirname "$venv")"
        python3 -m venv "$venv"
        site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
        # Last on sys.path: what FILE pins wins over the default venv's copy.
        echo "$base_site" > "$site/zz_interop.pth"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$top" >&2
        touch "$venv/.complete"
    fi
    echo "$venv/bin/python"
    exit 0
fi
req="${1:-$root/tests/interop/requirements.txt}"
if [ ! -f "$req" ]; then
    echo "interop-env: no requirements file at '$req'" >&2
    exit 1
fi
key="$(sha256sum "$req" | cut -c1-12)"
if [ $# -eq 0 ]; then
    venv="${CKPT_INTEROP_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ckpt/interop-$key}"
else
    venv="${XDG_CACHE_HOME:-$HOME/.cache}/ckpt/interop-$key"
fi

if [ ! -f "$venv/.complete" ]; then
    echo "interop-env: installing $(basename "$req") into $venv (first run: a few minutes, a few GB)" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
    touch "$venv/.complete"
fi
echo "$venv/bin/python"
