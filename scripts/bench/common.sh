# Sourced by every benchmark script, with the script's arguments:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/common.sh" "$@"
#
# Sets `root` (the repository), `work` (WORKDIR, the first argument, default target/bench,
# created), `python` (the interop venv's, made on first use by scripts/interop-env.sh) and
# `ckpt` (a release build, made now); checks that hyperfine is installed. `gpt2_bin` gives
# the GPT-2-small-sized pytorch_model.bin most benchmarks use, made by torch.save on first
# use (or $CKPT_BENCH_GPT2 when set); `need_gnu_time` checks for GNU time.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="${1:-$root/target/bench}"
mkdir -p "$work"
command -v hyperfine >/dev/null || { echo "bench: hyperfine is missing (apt-get install hyperfine)" >&2; exit 2; }
python="$("$root/scripts/interop-env.sh")"
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p ckpt-cli
ckpt="$root/target/release/ckpt"

need_gnu_time() {
    [ -x /usr/bin/time ] || { echo "bench: GNU time is missing (apt-get install time)" >&2; exit 2; }
}

# 124M float32 parameters, lm_head tied to the token embedding, ~500 MB.
gpt2_bin() {
    local bin="${CKPT_BENCH_GPT2:-$work/gpt2-pytorch_model.bin}"
    [ -f "$bin" ] || "$python" "$root/scripts/bench/make_gpt2.py" "$bin" >&2
    echo "$bin"
}
