#!/usr/bin/env bash
# Compare ckpt scan with picklescan, modelscan, fickling and modelaudit on the two attack corpora
# (tests/fixtures/attack/scan and tests/fixtures/attack/loader, verdicts in their expected.json).
#
#   scripts/scan-compare.sh              # all of it, then rewrite the results in the doc
#   CKPT_BIN=path/to/ckpt scripts/scan-compare.sh
#   scripts/scan-compare.sh --no-doc     # leave docs/scan-comparison.md alone
#   scripts/scan-compare.sh --jobs 2     # faster, but the times are then taken two at a time
#
# The Python scanners live in their own venv under ~/.cache/ckpt/, pinned (with every package
# they pull in) by scripts/scan-compare-requirements.txt and keyed by its hash (made on first
# use, from PyPI). ckpt is $CKPT_BIN, else target/release/ckpt, else target/debug/ckpt; it is
# skipped (with a note) while it has no `scan` subcommand. The tools only read the files:
# nothing is loaded. Once the venv exists the scans run without network (`unshare -n`, where
# this user may make a network namespace; a note in the output says when it could not).
#
# Writes target/scan-compare.md (per corpus: per class caught / missed / false alarms, totals,
# times, then the per-file outcomes) and replaces the part of docs/scan-comparison.md between
# its `scan-compare:begin` and `scan-compare:end` markers with the same summary (no per-file
# table). Everything but the date and the times is deterministic.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
req="$root/scripts/scan-compare-requirements.txt"
key="$(sha256sum "$req" | cut -c1-12)"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/ckpt/scan-compare-$key"
if [ ! -f "$venv/.complete" ]; then
    echo "scan-compare: installing picklescan, modelscan, fickling, modelaudit into $venv" >&2
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
cmd=("$venv/bin/python" "$root/scripts/scan_compare.py" --venv "$venv" --ckpt "$bin"
    --corpus "scan=$root/tests/fixtures/attack/scan"
    --corpus "loader=$root/tests/fixtures/attack/loader"
    --out "$root/target/scan-compare.md" --doc "$root/docs/scan-comparison.md" "$@")
if unshare -n true 2>/dev/null; then
    exec unshare -n "${cmd[@]}" --offline
fi
exec "${cmd[@]}"
