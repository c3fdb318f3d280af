#!/usr/bin/env bash
# Compare ckpt scan with picklescan, modelscan and fickling on the scan corpus
# (tests/fixtures/attack/scan, verdicts in its expected.json).
#
#   scripts/scan-compare.sh
#
# The three Python scanners live in their own venv under ~/.cache/ckpt/, pinned by
# scripts/scan-compare-requirements.txt and keyed by its hash (made on first use, from PyPI).
# ckpt is $CKPT_BIN, else target/release/ckpt, else target/debug/ckpt; it is skipped (with a
# note) while it has no `scan` subcommand. The tools only read the files: nothing is loaded.
# Writes a Markdown table (per class: caught / missed / false alarms, and totals) to stdout and
# to target/scan-compare.md, followed by the per-file outcomes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
req="$root/scripts/scan-compare-requirements.txt"
key="$(sha256sum "$req" | cut -c1-12)"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/ckpt/scan-compare-$key"
if [ ! -f "$venv/.complete" ]; then
    echo "scan-compare: installing picklescan, modelscan, fickling into $venv" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
    touch "$venv/.complete"
fi

if [ -n "${CKPT_BIN:-}" ]; then
    bin="$CKPT_BIN"
elif [ -x target/release/ckpt ]; then
    bin=target/release/ckpt
else
    bin=target/debug/ckpt
fi
mkdir -p target
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" "$root/scripts/scan_compare.py" --venv "$venv" --ckpt "$bin" \
    --corpus "$root/tests/fixtures/attack/scan" --out "$root/target/scan-compare.md"
