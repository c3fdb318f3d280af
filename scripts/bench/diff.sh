#!/usr/bin/env bash
# Comparing two ~500 MB checkpoints: ckpt diff, the Python route, and cat.
#
#   scripts/bench/diff.sh [WORKDIR]
#
# A GPT-2-small-sized pytorch_model.bin (124M float32 parameters, lm_head tied to the
# token embedding, ~500 MB, made by torch.save; scripts/bench/make_gpt2.py; taken from
# $CKPT_BENCH_GPT2 when set) against
#   - its safetensors conversion (`ckpt convert`, every name kept): the same weights in
#     another container, equal; the common case, where ckpt compares mapped bytes;
#   - the same checkpoint with every float32 value rounded to bfloat16 and back (every
#     element differs in its low bits): the worst case, where every element is read as a
#     number, exactly and with --atol 1e-2;
# each timed against `cat a b > /dev/null` (reading both files, warm page cache) and the
# Python route (torch.load / safetensors load_file of both, torch.equal or torch.allclose
# per tensor). The issue's target: diff within 2x of cat. Then peak memory (max RSS).
#
# Needs hyperfine and GNU time (Debian: apt-get install hyperfine time) and the interop
# venv (scripts/interop-env.sh, made on first use). Results go to WORKDIR (default
# target/bench); copy the tables into docs/performance.md with the machine.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@"
need_gnu_time

bin="$(gpt2_bin)"
st="$work/diff-gpt2.safetensors"
rounded="$work/diff-gpt2-rounded.safetensors"
[ -f "$st" ] || "$ckpt" convert --no-sync "$bin" "$st" >/dev/null
if [ ! -f "$rounded" ]; then
    "$ckpt" convert --no-sync --dtype bfloat16 "$bin" "$work/diff-gpt2-bf16.safetensors" >/dev/null
    "$ckpt" convert --no-sync --dtype float32 "$work/diff-gpt2-bf16.safetensors" "$rounded" >/dev/null
    rm -f "$work/diff-gpt2-bf16.safetensors"
fi
ls -l "$bin" "$st" "$rounded"

cat > "$work/py_diff.py" <<'PY'
# What people run: load both, compare tensor by tensor (torch.equal, or torch.allclose
# with --atol).
import sys
import torch
from safetensors.torch import load_file

def load(path):
    if path.endswith(".safetensors"):
        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)

a, b = load(sys.argv[1]), load(sys.argv[2])
atol = float(sys.argv[3]) if len(sys.argv) > 3 else None
differ = [k for k in a if k not in b] + [k for k in b if k not in a]
for k in a.keys() & b.keys():
    x, y = a[k], b[k]
    same = x.shape == y.shape and x.dtype == y.dtype and (
        torch.equal(x, y) if atol is None else torch.allclose(x, y, atol=atol, equal_nan=True))
    if not same:
        differ.append(k)
print(len(differ), "differ")
sys.exit(1 if differ else 0)
PY

echo "== the same weights in a .bin and a .safetensors (equal)"
hyperfine -N --warmup 2 --runs 10 -i \
    --export-markdown "$work/diff-equal.md" \
    "sh -c 'cat $bin $st > /dev/null'" \
    "$ckpt diff $bin $st" \
    "$ckpt diff --atol 1e-2 $bin $st" \
    "$python $work/py_diff.py $bin $st"

echo "== every element differs in its low bits (worst case)"
hyperfine -N --warmup 1 --runs 5 -i \
    --export-markdown "$work/diff-rounded.md" \
    "sh -c 'cat $st $rounded > /dev/null'" \
    "$ckpt diff $st $rounded" \
    "$ckpt diff --atol 1e-2 $st $rounded" \
    "$python $work/py_diff.py $st $rounded" \
    "$python $work/py_diff.py $st $rounded 1e-2"

# Max RSS counts the pages of both mapped files that were read (page cache, shared and
# reclaimable); the memory ckpt allocates is RssAnon, sampled every 20 ms.
peak_anon() {
    "$@" >/dev/null &
    local pid=$! peak=0 now
    while kill -0 "$pid" 2>/dev/null; do
        now=$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        [ "${now:-0}" -gt "$peak" ] && peak=$now
        sleep 0.02
    done
    wait "$pid" || true
    echo "$peak"
}
echo "== peak memory (KiB: max RSS including mapped file pages; peak anonymous RSS)"
{
    for args in "$bin $st" "$st $rounded" "--atol 1e-2 $st $rounded"; do
        # shellcheck disable=SC2086 # word splitting intended
        rss=$( { /usr/bin/time -f "%M" "$ckpt" diff $args >/dev/null; } 2>&1 | tail -1 || true)
        # shellcheck disable=SC2086
        echo "$rss KiB max RSS, $(peak_anon "$ckpt" diff $args) KiB anonymous  ckpt diff $args"
    done
    rss=$( { /usr/bin/time -f "%M" "$python" "$work/py_diff.py" "$bin" "$st" >/dev/null; } 2>&1 | tail -1 || true)
    echo "$rss KiB max RSS, $(peak_anon "$python" "$work/py_diff.py" "$bin" "$st") KiB anonymous  python py_diff.py bin st"
} 2>&1 | tee "$work/diff-memory.txt"

echo "== exit codes: 0 equal, 1 different"
"$ckpt" diff "$bin" "$st" >/dev/null && echo "bin vs safetensors: equal (0)"
set +e
"$ckpt" diff "$st" "$rounded" | tail -1
echo "rounded: exit ${PIPESTATUS[0]}"
