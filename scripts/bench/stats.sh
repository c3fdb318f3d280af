#!/usr/bin/env bash
# `ckpt stats` of a 500 MB checkpoint: one thread against two (or more), against reading
# the file, and against torch computing the same numbers.
#
#   scripts/bench/stats.sh [WORKDIR]
#
# The GPT-2-small-sized pytorch_model.bin (124M float32 parameters, ~500 MB, made by
# torch.save; scripts/bench/make_gpt2.py) and the same tensors as model.safetensors (ckpt
# convert), both in the page cache (a warmup run reads them), measured with
#   - `cat FILE > /dev/null`: one core copying the bytes once, the floor of any reader;
#   - `ckpt stats --json` with RAYON_NUM_THREADS=1, 2 and all cores (per tensor: min, max,
#     mean, std, NaN, ±inf and zero counts, every float32 widened to float64);
#   - `ckpt stats --histogram` (a second pass over the data);
#   - torch: torch.load(mmap=True) or safetensors' load_file, then per tensor the same
#     numbers in float64 (`x = t.double(); f = x[x.isfinite()]`, f.min() ... f.std(),
#     isnan().sum() ...), with torch's default threads.
# Then peak memory (max RSS) of each. Throughput bounded by memory bandwidth means: ckpt
# with N threads takes about 1/N of its one-thread time until it meets the machine's
# bandwidth, and one thread is within a small factor of `cat`.
#
# Needs hyperfine and GNU time (apt-get install hyperfine time) and the interop venv
# (scripts/interop-env.sh). Results go to WORKDIR (default target/bench); copy the tables
# into docs/performance.md with the machine and how busy it was.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@"
need_gnu_time

cores="$(nproc)"

bin="$(gpt2_bin)"
st="$work/gpt2-model.safetensors"
[ -f "$st" ] || "$ckpt" convert --dedupe "$bin" "$st" >/dev/null
ls -lL "$bin" "$st"

cat > "$work/py_stats.py" <<'PY'
# What ckpt stats computes, with torch, in float64 (the same numbers).
import sys
import torch
path = sys.argv[1]
if path.endswith(".safetensors"):
    from safetensors.torch import load_file
    sd = load_file(path)
else:
    sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
rows = []
for name, t in sd.items():
    x = t.double()
    f = x[x.isfinite()]
    rows.append((name, f.min().item(), f.max().item(), f.mean().item(), f.std().item(),
                 int(x.isnan().sum()), int(x.isinf().sum()), int((x == 0).sum())))
print(len(rows))
PY

echo "== stats of a 500 MB float32 checkpoint (page cache warm; $cores cores)"
for file in "$st" "$bin"; do
    name="$(basename "$file")"
    all=()
    [ "$cores" -gt 2 ] && all=("env RAYON_NUM_THREADS=$cores $ckpt stats --json $file")
    hyperfine -N --warmup 1 --runs 5 -i \
        --export-markdown "$work/stats-$name.md" \
        "cat $file" \
        "env RAYON_NUM_THREADS=1 $ckpt stats --json $file" \
        "env RAYON_NUM_THREADS=2 $ckpt stats --json $file" \
        "${all[@]}" \
        "env RAYON_NUM_THREADS=$cores $ckpt stats --json --histogram $file" \
        "$python $work/py_stats.py $file"
done
# (hyperfine -N runs `cat FILE` without a shell; its output goes to /dev/null. -i: ckpt
# stats exits 1 when it flags a tensor, which a benchmark file may well have.)

echo "== peak memory (max RSS)"
rss() {
    local label=$1
    shift
    /usr/bin/time -o "$work/rss.txt" -f %M "$@" >/dev/null 2>&1 || true
    # (the last line: GNU time writes a line about the exit status first when it is not 0)
    echo "| $label | $(awk 'END {printf "%.1f", $1/1024}' "$work/rss.txt") MiB |"
}
{
    echo "| command | max RSS |"
    echo "|---|---:|"
    rss "ckpt stats, safetensors" "$ckpt" stats --json "$st"
    rss "ckpt stats, pytorch_model.bin" "$ckpt" stats --json "$bin"
    rss "torch (load_file + float64 reductions)" "$python" "$work/py_stats.py" "$st"
    rss "torch (torch.load mmap + float64 reductions)" "$python" "$work/py_stats.py" "$bin"
} | tee "$work/stats-memory.md"
echo "results in $work"
