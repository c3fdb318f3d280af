#!/usr/bin/env bash
# The `ckpt` Python package against safetensors and torch, in a running interpreter:
#
#   scripts/bench/python.sh [WORKDIR] [RUNS]
#
# A 1 GiB safetensors file (100 float32 tensors, scripts/bench/make_safetensors.py) and the
# same weights saved by torch.save as a .bin; ckpt.load against safetensors.torch.load_file,
# torch.load (with and without mmap), warm and cold page cache; listing the names of the .bin;
# peak RSS. Builds the package with --release into the interop venv. Prints a markdown table
# (WORKDIR/python.md).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "${1:-}"
runs="${2:-5}"
"$root/scripts/python-package.sh" "$python" --release
st="$work/big-1GB.safetensors"
bin="$work/big-1GB.bin"
[ -f "$st" ] || "$python" "$root/scripts/bench/make_safetensors.py" "$st" $((1 << 30))
[ -f "$bin" ] || "$python" -c "import sys, torch; from safetensors.torch import load_file; torch.save(load_file(sys.argv[1]), sys.argv[2])" "$st" "$bin"
cd "$root/scripts/bench"
"$python" python_load.py "$st" "$bin" "$runs" | tee "$work/python.md"
