#!/usr/bin/env bash
# Converting a PyTorch checkpoint to safetensors: ckpt, the Python route, and cp.
#
#   scripts/bench/convert.sh [WORKDIR]
#
# A GPT-2-small-sized pytorch_model.bin (124M float32 parameters, lm_head tied to the
# token embedding, ~500 MB, made by torch.save; scripts/bench/make_gpt2.py) converted to
# model.safetensors by
#   - `ckpt convert --dedupe` (tied tensors written once, as the Python route must: it is
#     the same file HF's converter writes),
#   - `ckpt convert` (every name written, lm_head as its own copy: 1.3x the bytes),
#   - `ckpt convert --dedupe --no-sync` (no fsync: what cp and save_file give),
#   - the Python route: torch.load + safetensors' duplicate removal + save_file, as
#     people run it and followed by `sync` (the durability ckpt gives),
# against `cp` and `cp && sync` of the same file (ckpt fsyncs its output before renaming
# it into place; cp and save_file do not). Then peak memory (max RSS, GNU time) of each,
# and of ckpt on a model four times as large, and of the legacy (pre-zip) format.
#
# Needs hyperfine and GNU time (Debian: apt-get install hyperfine time) and the interop
# venv (scripts/interop-env.sh, made on first use). Results go to WORKDIR (default
# target/bench); copy the tables into docs/performance.md with the machine.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@"
need_gnu_time

bin="$(gpt2_bin)"
legacy="$work/gpt2-legacy.bin"
big="$work/gpt2x4-pytorch_model.bin"
wide="$work/gpt2wide4x-pytorch_model.bin"
[ -f "$legacy" ] || "$python" "$root/scripts/bench/make_gpt2.py" "$legacy" --legacy
[ -f "$big" ] || "$python" "$root/scripts/bench/make_gpt2.py" "$big" --layers 65
[ -f "$wide" ] || "$python" "$root/scripts/bench/make_gpt2.py" "$wide" --width 2
ls -l "$bin" "$legacy" "$big" "$wide"

cat > "$work/py_bin_to_safetensors.py" <<'PY'
# What people run: load with torch, drop tied duplicates (save_file refuses shared
# tensors), save with safetensors; as HF's convert.py does.
import sys
import torch
from safetensors.torch import _remove_duplicate_names, save_file
sd = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
metadata = {"format": "pt"}
for kept, removed in _remove_duplicate_names(sd).items():
    for name in removed:
        metadata[name] = kept
        del sd[name]
save_file({k: v.contiguous() for k, v in sd.items()}, sys.argv[2], metadata=metadata)
PY

out="$work/out.safetensors"
echo "== convert a 500 MB pytorch_model.bin to safetensors"
hyperfine -N --warmup 1 --runs 10 \
    --export-markdown "$work/convert-bin.md" \
    --prepare "rm -f $out" \
    "cp $bin $out" \
    "sh -c 'cp $bin $out && sync $out'" \
    "$ckpt convert --dedupe $bin $out" \
    "$ckpt convert $bin $out" \
    "$ckpt convert --dedupe $legacy $out" \
    "$ckpt convert --dedupe --no-sync $bin $out" \
    "$python $work/py_bin_to_safetensors.py $bin $out" \
    "sh -c '$python $work/py_bin_to_safetensors.py $bin $out && sync $out'"

echo "== the same tensors either way"
rm -f "$out" "$work/py.safetensors"
"$ckpt" convert --dedupe "$bin" "$out" >/dev/null
"$python" "$work/py_bin_to_safetensors.py" "$bin" "$work/py.safetensors"
"$python" - "$out" "$work/py.safetensors" <<'PY'
import sys
import torch
from safetensors.torch import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
assert a.keys() == b.keys(), (a.keys() ^ b.keys())
assert all(torch.equal(a[k], b[k]) for k in a)
print(f"ckpt and the Python route wrote the same {len(a)} tensors")
PY
rm -f "$work/py.safetensors"

echo "== peak memory (max RSS)"
rss() {
    local label=$1
    shift
    rm -f "$out"
    /usr/bin/time -o "$work/rss.txt" -f %M "$@" >/dev/null 2>&1
    echo "| $label | $(awk '{printf "%.1f", $1/1024}' "$work/rss.txt") MiB |"
}
{
    echo "| command | max RSS |"
    echo "|---|---:|"
    rss "ckpt convert --dedupe (475 MiB)" "$ckpt" convert --dedupe "$bin" "$out"
    rss "ckpt convert (475 MiB)" "$ckpt" convert "$bin" "$out"
    rss "ckpt convert --dtype bfloat16 (475 MiB, read through the map)" "$ckpt" convert --dtype bfloat16 "$bin" "$out"
    rss "ckpt convert --dedupe, legacy (475 MiB)" "$ckpt" convert --dedupe "$legacy" "$out"
    rss "ckpt convert --dedupe (1.9 GiB: 4x the layers, 785 tensors)" "$ckpt" convert --dedupe "$big" "$out"
    rss "ckpt convert --dedupe (1.9 GiB: 4x the width, 149 tensors)" "$ckpt" convert --dedupe "$wide" "$out"
    rss "torch.load + save_file (475 MiB)" "$python" "$work/py_bin_to_safetensors.py" "$bin" "$out"
    rss "torch.load + save_file (1.9 GiB, 4x the layers)" "$python" "$work/py_bin_to_safetensors.py" "$big" "$out"
} | tee "$work/convert-memory.md"

echo "== the 4x model against cp && sync"
hyperfine -N --warmup 1 --runs 5 \
    --export-markdown "$work/convert-bin-4x.md" \
    --prepare "rm -f $out" \
    "sh -c 'cp $big $out && sync $out'" \
    "$ckpt convert --dedupe $big $out"
rm -f "$out"
echo "results in $work"
