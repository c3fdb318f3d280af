#!/usr/bin/env bash
# Benchmarks of ckpt on PyTorch files, side by side with torch and the pytorch-reader crate.
#
#   scripts/bench/torch.sh [WORKDIR]
#
# `ckpt inspect` of a GPT-2-small-sized pytorch_model.bin (124M float32 parameters, ~500 MB,
# made by torch.save) reads only the pickle: compare listing its tensors with
#   - ckpt inspect (and --json)
#   - torch.load(mmap=True) + listing names and shapes (the fastest torch route)
#   - torch.load() (what most scripts do)
#   - the pytorch-reader crate (tracel-ai/burn), a Rust reader, built from crates.io
# Needs hyperfine and the interop venv (scripts/interop-env.sh). Results go to WORKDIR/*.md.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@"

cargo build --release --quiet --manifest-path "$root/scripts/bench/pytorch-reader/Cargo.toml"
reader="$root/scripts/bench/pytorch-reader/target/release/pytorch-reader-list"

bin="$(gpt2_bin)"
legacy="$work/gpt2-legacy.bin"
[ -f "$legacy" ] || "$python" "$root/scripts/bench/make_gpt2.py" "$legacy" --legacy
ls -l "$bin" "$legacy"

cat > "$work/torch_list.py" <<'PY'
import sys, torch
mmap = sys.argv[2] == "mmap"
sd = torch.load(sys.argv[1], map_location="cpu", weights_only=True, mmap=mmap)
for name, t in sd.items():
    print(name, t.dtype, tuple(t.shape))
PY

echo "== list the tensors of a 500 MB torch zip checkpoint"
hyperfine --warmup 2 --runs 10 \
    --export-markdown "$work/torch-inspect.md" \
    "$ckpt inspect $bin" \
    "$ckpt inspect --json $bin" \
    "$reader $bin" \
    "$python $work/torch_list.py $bin mmap" \
    "$python $work/torch_list.py $bin load"

echo "== the same, legacy (non-zip) format"
hyperfine --warmup 2 --runs 10 \
    --export-markdown "$work/torch-inspect-legacy.md" \
    "$ckpt inspect $legacy" \
    "$reader $legacy" \
    "$python $work/torch_list.py $legacy load"

# Cold cache: evict the file from the page cache (posix_fadvise DONTNEED), run once, and
# count the pages the run brought in (fincore). Listing should read the pickle, not the data.
cold() {
    local label="$1"; shift
    local file="${*: -1}" times=()
    for _ in 1 2 3 4 5; do
        "$python" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' "$file"
        local start end
        start=$(date +%s%N)
        "$@" >/dev/null
        end=$(date +%s%N)
        times+=($(( (end - start) / 1000 )))
    done
    local read
    read=$(fincore --bytes --noheadings --output RES "$file" 2>/dev/null || echo "?")
    printf '| `%s` | %s | %s |\n' "$label" \
        "$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p | awk '{printf "%.1f ms", $1 / 1000}')" \
        "$(numfmt --to=iec --suffix=B "$read" 2>/dev/null || echo "$read")"
}
echo "== cold cache: median of 5 runs, and the bytes of the file read from disk"
{
    echo "| command | median | file bytes read |"
    echo "|:---|---:|---:|"
    cold "ckpt inspect --json (zip)" "$ckpt" inspect --json "$bin"
    cold "pytorch-reader (zip)" "$reader" "$bin"
    cold "ckpt inspect --json (legacy)" "$ckpt" inspect --json "$legacy"
    cold "pytorch-reader (legacy)" "$reader" "$legacy"
} | tee "$work/torch-inspect-cold.md"
echo "results in $work"
