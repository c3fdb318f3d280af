"""Loading a checkpoint in a running interpreter: ckpt.load against safetensors and torch.

    python_load.py SAFETENSORS BIN RUNS

SAFETENSORS and BIN hold the same weights. Each case is timed RUNS times after one warm-up,
with the files in the page cache (warm: evicted, then read whole, so that each run starts
from the same page cache state) and evicted before each run with
posix_fadvise(DONTNEED) (cold), as:
- `load`: the call alone (ckpt and torch's mmap give views whose pages are read on use);
- `load+touch`: the call, then one byte of every 4 KiB page of every tensor read, so that
  every byte is in memory whatever the tool did lazily.
Peak RSS is measured in a fresh process per case (load+touch, warm); for saving, how far
peak RSS grows while the tensors (held in anonymous memory) are written. Prints markdown
tables.
"""

from __future__ import annotations

import gc
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

import ckpt
from safetensors.torch import load_file


def evict(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def warm(path: str) -> None:
    # Evicted, then read whole: the page cache then holds the file as reading it leaves it
    # (in large folios), whatever mapped it before, so every case starts from one state.
    evict(path)
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def touch(tensors: dict) -> None:
    total = 0
    for t in tensors.values():
        flat = t.reshape(-1).view(torch.uint8)
        total += int(flat[::4096].sum())
    return total


CASES = {
    "ckpt.load(safetensors)": lambda st, bn: ckpt.load(st),
    "safetensors.torch.load_file": lambda st, bn: load_file(st),
    "ckpt.load(bin)": lambda st, bn: ckpt.load(bn),
    "torch.load(bin, weights_only=True)": lambda st, bn: torch.load(bn, weights_only=True),
    "torch.load(bin, mmap=True, weights_only=True)": lambda st, bn: torch.load(bn, mmap=True, weights_only=True),
}
KEYS = {
    "ckpt.safe_open(bin).keys()": lambda st, bn: ckpt.safe_open(bn).keys(),
    "list(torch.load(bin, mmap=True, weights_only=True))": lambda st, bn: list(torch.load(bn, mmap=True, weights_only=True)),
    "list(torch.load(bin, weights_only=True))": lambda st, bn: list(torch.load(bn, weights_only=True)),
}


def timed(fn, st, bn, runs, cold, then_touch):
    times = []
    for i in range(runs + 1):
        for path in (st, bn):
            evict(path) if cold else warm(path)
        start = time.perf_counter()
        out = fn(st, bn)
        if then_touch:
            touch(out)
        elapsed = time.perf_counter() - start
        del out
        gc.collect()
        if i:
            times.append(elapsed)
    return statistics.mean(times), min(times)


def peak_rss(name: str, st: str, bn: str) -> float:
    code = (
        "import sys, resource; sys.argv = ['x', %r, %r];"
        "import python_load as p; out = p.CASES[%r](%r, %r); p.touch(out);"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)" % (st, bn, name, st, bn)
    )
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


SAVES = {
    "ckpt.save(safetensors)": "ckpt.save(t, out + '.safetensors')",
    "ckpt.save(safetensors, sync=False)": "ckpt.save(t, out + '.safetensors', sync=False)",
    "safetensors.torch.save_file": "save_file(t, out + '.safetensors')",
    "ckpt.save(pth)": "ckpt.save(t, out + '.pt')",
    "ckpt.save(pth, sync=False)": "ckpt.save(t, out + '.pt', sync=False)",
    "torch.save": "torch.save(t, out + '.pt')",
}


def save_growth(name: str, st: str) -> tuple:
    """How far peak RSS grows while saving tensors of the shapes of `st`'s (1 GiB of random
    float32 made in anonymous memory, so the peak before saving is theirs), and how long
    the save takes, in a fresh process."""
    out = os.path.join(os.path.dirname(os.path.abspath(st)), "saved")
    code = (
        "import resource, time, torch, ckpt; from safetensors.torch import load_file, save_file;"
        "f = ckpt.safe_open(%r); shapes = {k: f.shape(k) for k in f.keys()}; del f;"
        "t = {k: torch.rand(s, generator=torch.Generator().manual_seed(i)) for i, (k, s) in enumerate(shapes.items())};"
        "import gc; gc.collect();"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; out = %r; start = time.perf_counter();"
        "%s; took = time.perf_counter() - start;"
        "print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, took)" % (st, out, SAVES[name])
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after, took = result.stdout.split()
    for suffix in (".safetensors", ".pt"):
        if os.path.exists(out + suffix):
            os.remove(out + suffix)
    return (int(after) - int(before)) / 1024, float(took)


def main() -> None:
    st, bn, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    size = os.path.getsize(st) / 2**20
    print(f"{os.path.basename(st)}: {size:.0f} MiB; {os.path.basename(bn)}: {os.path.getsize(bn) / 2**20:.0f} MiB; {runs} runs\n")
    print("| case | warm load | warm load+touch | cold load+touch | peak RSS (MiB) |")
    print("|:---|---:|---:|---:|---:|")
    for name, fn in CASES.items():
        wl = timed(fn, st, bn, runs, cold=False, then_touch=False)
        wt = timed(fn, st, bn, runs, cold=False, then_touch=True)
        ct = timed(fn, st, bn, runs, cold=True, then_touch=True)
        rss = peak_rss(name, st, bn)
        print(f"| `{name}` | {wl[0]*1e3:.0f} ms | {wt[0]*1e3:.0f} ms | {ct[0]*1e3:.0f} ms | {rss:.0f} |", flush=True)
    print("\n| listing names | warm | cold |")
    print("|:---|---:|---:|")
    for name, fn in KEYS.items():
        w = timed(fn, st, bn, runs, cold=False, then_touch=False)
        c = timed(fn, st, bn, runs, cold=True, then_touch=False)
        print(f"| `{name}` | {w[0]*1e3:.1f} ms | {c[0]*1e3:.1f} ms |", flush=True)
    print("\n| saving the tensors (held in memory) | time | peak RSS growth (MiB) |")
    print("|:---|---:|---:|")
    for name in SAVES:
        growth, took = save_growth(name, st)
        print(f"| `{name}` | {took*1e3:.0f} ms | {growth:.0f} |", flush=True)


if __name__ == "__main__":
    main()
