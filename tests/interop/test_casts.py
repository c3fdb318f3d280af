"""`ckpt convert --dtype X`: what safetensors loads into torch equals torch's own `.to(X)` of
the source, bit for bit (NaN bits included), for every floating source and target.

torch's NaN bits depend on its kernel (see tests/fixtures/cast/README.md): its vectorized
loops write one pattern, the scalar tail another for some pairs. torch runs here on one
thread, on contiguous 1-D tensors whose length is a multiple of 256, so that every element
goes through the vectorized loop, as in the committed fixtures; the other cases compare NaNs
by NaN-ness only.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from support import FIXTURES, assert_success, describe, run_ckpt

CASES = sorted((FIXTURES / "cast").glob("*.safetensors"))
TARGETS = {
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float32": torch.float32,
    "float64": torch.float64,
    "float8_e4m3fn": torch.float8_e4m3fn,
    "float8_e5m2": torch.float8_e5m2,
}
UNSIGNED = {1: torch.uint8, 2: torch.uint16, 4: torch.uint32, 8: torch.uint64}
VECTOR_BLOCK = 256


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def bits(t: torch.Tensor) -> np.ndarray:
    return t.contiguous().view(UNSIGNED[t.element_size()]).reshape(-1).numpy()


def assert_same(got: torch.Tensor, want: torch.Tensor, source: torch.Tensor, *, exact_nans: bool, what: str):
    """Bit for bit; with `exact_nans` False a NaN equals any NaN. Lists every mismatch."""
    assert got.dtype == want.dtype, what
    assert got.shape == want.shape, what
    g, w = bits(got), bits(want)
    wrong = g != w
    if not exact_nans:
        both_nan = (torch.isnan(got.to(torch.float64)) & torch.isnan(want.to(torch.float64))).reshape(-1).numpy()
        wrong &= ~both_nan
    if wrong.any():
        s = bits(source)
        shown = "\n".join(
            f"  #{i}: {source.dtype} {s[i]:#x} -> ckpt {g[i]:#x}, torch {w[i]:#x}" for i in np.flatnonzero(wrong)[:20]
        )
        pytest.fail(f"{what}: {int(wrong.sum())} of {len(g)} elements differ:\n{shown}")


def convert(src, out, dtype: str, *extra) -> dict:
    proc = run_ckpt("convert", "--json", "--dtype", dtype, *extra, src, out)
    assert_success(proc)
    return json.loads(proc.stdout)


@pytest.mark.parametrize("target", TARGETS, ids=str)
@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_committed_cases(case, target, tmp_path):
    """Each fixture's `input`, converted by ckpt, against torch's cast computed now."""
    with safe_open(str(case), "pt") as f:
        meta = json.loads(f.metadata()["cast"])
    x = load_file(str(case))["input"]
    assert x.numel() % VECTOR_BLOCK == 0
    out = tmp_path / "out.safetensors"
    report = convert(case, out, target, "--include", "input")
    got = load_file(str(out))["input"]
    want = x.to(TARGETS[target])
    assert_same(got, want, x, exact_nans=meta["nan_bits"] == "exact", what=f"{x.dtype} -> {target}")
    cast = report["cast"]
    if x.dtype == TARGETS[target]:
        assert cast["tensors"] == [] and cast["already"] == 1
    else:
        (entry,) = cast["tensors"]
        stats = {k: entry[k] for k in meta["stats"][target]}
        assert stats == meta["stats"][target]


RANDOM_SOURCES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


def random_bits(dtype: torch.dtype, count: int, seed: int) -> torch.Tensor:
    """Uniform bit patterns (every class of value: NaNs, infinities, subnormals...)."""
    rng = np.random.default_rng(seed)
    size = torch.empty(0, dtype=dtype).element_size()
    raw = np.frombuffer(rng.bytes(size * count), dtype=f"<u{size}").copy()
    return torch.from_numpy(raw).view(dtype)


@pytest.mark.parametrize("source", RANDOM_SOURCES, ids=lambda d: str(d).removeprefix("torch."))
def test_random_patterns_every_target(source, tmp_path):
    """3 MiB of random bit patterns (several chunks, each cast on all cores), plus an odd-length
    tensor (NaN bits of torch's scalar tail: NaN-ness only) and an integer tensor (kept)."""
    size = torch.empty(0, dtype=source).element_size()
    n = (3 << 20) // size
    x = random_bits(source, n, seed=size).reshape(-1, VECTOR_BLOCK)
    odd = random_bits(source, 1001, seed=size + 100)
    steps = torch.arange(7, dtype=torch.int64)
    src = tmp_path / "src.safetensors"
    save_file({"x": x, "odd": odd, "steps": steps}, str(src))
    for name, dtype in TARGETS.items():
        out = tmp_path / f"{name}.safetensors"
        report = convert(src, out, name)
        loaded = load_file(str(out))
        flat = x.reshape(-1)
        assert_same(loaded["x"].reshape(-1), flat.to(dtype), flat, exact_nans=True, what=f"{source} -> {name}")
        assert loaded["x"].shape == x.shape
        assert_same(loaded["odd"], odd.to(dtype), odd, exact_nans=False, what=f"odd {source} -> {name}")
        assert torch.equal(loaded["steps"], steps)
        assert report["cast"]["kept"] == [["steps", "int64"]]


def test_torch_checkpoint_with_views(tmp_path):
    """A torch.save file: a transposed view and a slice are cast as their elements, int64 kept."""
    torch.manual_seed(0)
    base = torch.randn(300, 500) * 1e3
    state = {
        "w": base,
        "wt": base.t(),
        "slice": base[10:20, ::3],
        "half": torch.randn(64, 33).half(),
        "step": torch.tensor(12345, dtype=torch.int64),
    }
    src = tmp_path / "src.pt"
    torch.save(state, src)
    for name, dtype in TARGETS.items():
        out = tmp_path / f"{name}.safetensors"
        convert(src, out, name)
        loaded = load_file(str(out))
        for key, value in state.items():
            want = value.contiguous().to(dtype) if value.is_floating_point() else value
            assert_same(loaded[key], want, value.contiguous(), exact_nans=True, what=f"{key} -> {name}")


def test_sharded_output(tmp_path):
    x = random_bits(torch.float32, 1 << 16, seed=7).reshape(256, 256)
    src = tmp_path / "src.safetensors"
    save_file({f"layer{i}": x.clone() for i in range(4)}, str(src))
    out = tmp_path / "sharded"
    report = convert(src, out, "bfloat16", "--max-shard-size", "300KB")
    assert len(report["files"]) == 3, report["files"]  # 2 shards of 2 x 128 KiB, an index
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == 4 * x.numel() * 2
    want = x.reshape(-1).to(torch.bfloat16)
    for name, shard in index["weight_map"].items():
        got = load_file(str(out / shard))[name]
        assert_same(got.reshape(-1), want, x.reshape(-1), exact_nans=True, what=name)


def test_unknown_dtype_is_a_usage_error(tmp_path):
    proc = run_ckpt("convert", "--dtype", "int8", FIXTURES / "ok" / "tiny-mlp.safetensors", tmp_path / "o.safetensors")
    assert proc.returncode == 2, describe(proc)
    assert b"invalid value 'int8' for '--dtype" in proc.stderr, describe(proc)
    assert not (tmp_path / "o.safetensors").exists()


@pytest.mark.parametrize("mmap", [False, True], ids=["load", "mmap"])
def test_torch_output_is_cast_and_keeps_its_tree(mmap, tmp_path):
    """`.pth` output with --dtype: torch.load(weights_only=True) gives the same tree with the
    floating tensors cast (views as their elements), tied weights still one storage,
    parameters still parameters, plain values and integers as they were."""
    torch.manual_seed(0)
    base = torch.randn(300, 500) * 1e3
    embed = torch.randn(100, 16)
    state = {
        "model": {
            "w": base,
            "wt": base.t(),
            "slice": base[10:20, ::3],
            "embed.weight": embed,
            "lm_head.weight": embed,
            "p": torch.nn.Parameter(torch.randn(8, 8).double(), requires_grad=False),
            "half": torch.randn(64, 33).half(),
            "step": torch.tensor(12345, dtype=torch.int64),
        },
        "epoch": 7,
    }
    src = tmp_path / "src.pt"
    torch.save(state, src)
    for name, dtype in TARGETS.items():
        out = tmp_path / f"{name}.pth"
        report = convert(src, out, name)
        loaded = torch.load(out, weights_only=True, mmap=mmap)
        assert loaded["epoch"] == 7
        for key, value in state["model"].items():
            got = loaded["model"][key]
            want = value.detach().contiguous().to(dtype) if value.is_floating_point() else value
            assert_same(got, want, value.detach().contiguous(), exact_nans=True, what=f"{key} -> {name}")
        assert isinstance(loaded["model"]["p"], torch.nn.Parameter)
        m = loaded["model"]
        assert m["embed.weight"].untyped_storage().data_ptr() == m["lm_head.weight"].untyped_storage().data_ptr()
        assert report["cast"]["kept"] == [["model.step", "int64"]]


def test_torch_shards_are_cast(tmp_path):
    x = random_bits(torch.float32, 1 << 16, seed=9).reshape(256, 256)
    src = tmp_path / "src.safetensors"
    save_file({f"layer{i}": x.clone() for i in range(4)}, str(src))
    out = tmp_path / "sharded"
    convert(src, out, "float16", "--to", "pth", "--max-shard-size", "300KB")
    index = json.loads((out / "pytorch_model.bin.index.json").read_text())
    assert index["metadata"]["total_size"] == 4 * x.numel() * 2
    want = x.reshape(-1).to(torch.float16)
    shards = {f: torch.load(out / f, weights_only=True) for f in set(index["weight_map"].values())}
    assert len(shards) == 2
    for name, shard in index["weight_map"].items():
        got = shards[shard][name]
        assert_same(got.reshape(-1), want, x.reshape(-1), exact_nans=True, what=name)
