#!/usr/bin/env bash
# Run the Python interop suite (tests/interop) against a ckpt binary that is already built.
#
#   tests/interop/run.sh [pytest args...]
#
# The binary is $CKPT_BIN if set, else target/release/ckpt, else target/debug/ckpt (relative to
# the repo root). This script does not build it; build first with e.g.
# `cargo build --release -p ckpt-cli`. It does build the `ckpt` Python package of this tree
# into the venv (scripts/python-package.sh), which the test_python_*.py tests import. The
# pinned Python venv comes from scripts/interop-env.sh (created on first use; nothing else is
# downloaded at test time).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

python="$(scripts/interop-env.sh)"

if [ -n "${CKPT_BIN:-}" ]; then
    bin="$CKPT_BIN"
elif [ -x target/release/ckpt ]; then
    bin=target/release/ckpt
else
    bin=target/debug/ckpt
fi
if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then
    echo "run.sh: no ckpt binary at '$bin'." >&2
    echo "run.sh: build it first (cargo build --release -p ckpt-cli) or set CKPT_BIN=/path/to/ckpt." >&2
    exit 1
fi
CKPT_BIN="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
export CKPT_BIN
echo "run.sh: testing $CKPT_BIN" >&2
scripts/python-package.sh "$python"

# Tests write only under pytest's tmp_path: no bytecode or cache files in the repo.
export PYTHONDONTWRITEBYTECODE=1
exec "$python" -m pytest tests/interop -q "$@"
