#!/usr/bin/env bash
# Runs fuzz targets one after another for a stretch each, from seeded corpora, and keeps
# each run's log under fuzz/logs/. Usage: fuzz/run.sh SECONDS [TARGET...]
# (all targets when none is named). Needs nightly and cargo-fuzz (see README.md).
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:?usage: run.sh SECONDS [TARGET...]}
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(torch folder read pickle safetensors_roundtrip scan)
fi
python3 seed.py > /dev/null
mkdir -p logs
export CKPT_FUZZ_TMP=${CKPT_FUZZ_TMP:-/dev/shm}
for target in "${targets[@]}"; do
    echo "$(date -u +%FT%TZ) $target: ${seconds}s"
    cargo +nightly fuzz run -O "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
        -print_final_stats=1 > "logs/$target.log" 2>&1 || {
        echo "$target: FAILED, see fuzz/logs/$target.log and fuzz/artifacts/$target/"
        continue
    }
    tail -n 20 "logs/$target.log" | grep -E 'stat::number_of_executed_units|cov:' | tail -n 2
done
