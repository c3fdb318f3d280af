#!/usr/bin/env bash
# Runs fuzz targets one after another for a stretch each, from seeded corpora, and keeps
# each run's log under fuzz/logs/. Usage: fuzz/run.sh SECONDS [TARGET...]
# (all targets when none is named). Needs nightly and cargo-fuzz (see README.md).
#
# The targets are built once, before the first run, so that changing the sources while
# this runs does not restart anything.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:?usage: run.sh SECONDS [TARGET...]}
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(torch folder read pickle pickle_globals safetensors_roundtrip scan verify npy)
fi
python3 seed.py > /dev/null
mkdir -p logs
for target in "${targets[@]}"; do
    cargo +nightly fuzz build -O "$target" > "logs/$target.build.log" 2>&1
done
bin=target/x86_64-unknown-linux-gnu/release
export CKPT_FUZZ_TMP=${CKPT_FUZZ_TMP:-/dev/shm}
for target in "${targets[@]}"; do
    echo "$(date -u +%FT%TZ) $target: ${seconds}s"
    mkdir -p "artifacts/$target"
    "$bin/$target" "corpus/$target" -artifact_prefix="artifacts/$target/" \
        -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-10}" \
        -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1 \
        > "logs/$target.log" 2>&1 || {
        echo "$target: FAILED, see fuzz/logs/$target.log and fuzz/artifacts/$target/"
        continue
    }
    grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "logs/$target.log" | tr '\n' ' '
    echo
done
