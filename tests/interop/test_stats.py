"""`ckpt stats --json` against torch's own reductions, on every fixture and on random tensors.

The torch expressions (docs/stats.md): with `x` the tensor as float64 (`t.double()`; complex
by `t.to(torch.complex128).abs()` with NaN where `t.isnan()`; quantized by
`(t.int_repr().double() - zero_point) * scale`) and `f = x[x.isfinite()]`:
count = x.numel(), nan = x.isnan().sum(), pos_inf = (x == inf).sum(), neg_inf = (x == -inf).sum(),
zeros = (x == 0).sum(), min = f.min(), max = f.max(), mean = f.mean(), std = f.std() (unbiased),
histogram = torch.histc(f, bins, min=f.min(), max=f.max()).

Tolerances. Counts, min, max and histogram counts must be equal. Mean and std are sums of
rounded float64 terms, computed by torch and ckpt in different orders (torch: cascade sums and
Welford; ckpt: blocks of two-pass sums merged in a tree): each is within a few ulps of the
exact value *relative to the values summed*, not to the result (a mean near 0 of values near
1 has no relative precision at all). So mean must agree within 32 ulps of the largest
magnitude, std within 32 ulps of itself plus 32 ulps of the largest magnitude; both are far
tighter than any float32 input can tell apart, and both fail for a wrong formula (biased std,
NaN or inf included, float32 accumulation).
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from support import FIXTURES, OK_FILES, assert_success, describe, run_ckpt
from support_torch import OK_CASES, live_tensors
from test_dcp_shards import dcp_load, hf_load

EPS = 2.0**-52
ULPS = 16 * EPS  # against a precise reference, relative
TORCH = 1e-12  # against torch's float64 reductions, relative
E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def as_float64(t: torch.Tensor) -> torch.Tensor | None:
    """The tensor's values as ckpt defines them, flattened, in float64 (None: no numbers)."""
    if t.is_quantized:
        q = t.int_repr().double()
        if t.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
            x = (q - t.q_zero_point()) * t.q_scale()
        else:
            shape = [1] * t.dim()
            shape[t.q_per_channel_axis()] = -1
            scales = t.q_per_channel_scales().double().reshape(shape)
            zeros = t.q_per_channel_zero_points().double().reshape(shape)
            x = (q - zeros) * scales
        return x.flatten()
    if t.is_complex():
        c = t.to(torch.complex128)
        x = c.abs()
        x[torch.isnan(c)] = math.nan
        return x.flatten()
    if t.dtype == torch.float4_e2m1fn_x2:
        b = t.contiguous().view(torch.uint8).flatten().tolist()
        values = []
        for byte in b:
            for n in (byte & 0xF, byte >> 4):
                m = E2M1[n & 7]
                values.append(-m if n & 8 else m)
        return torch.tensor(values, dtype=torch.float64)
    try:
        return t.double().flatten()
    except (RuntimeError, TypeError):  # dtypes without numbers (bits8...)
        return None


def torch_stats(t: torch.Tensor, bins: int | None = None) -> dict | None:
    x = as_float64(t)
    if x is None:
        return None
    f = x[torch.isfinite(x)]
    out = {
        "count": x.numel(),
        "nan": int(x.isnan().sum()),
        "pos_inf": int((x == math.inf).sum()),
        "neg_inf": int((x == -math.inf).sum()),
        "zeros": int((x == 0).sum()),
        "min": f.min().item() if f.numel() else None,
        "max": f.max().item() if f.numel() else None,
        "mean": f.mean().item() if f.numel() else None,
        "std": f.std().item() if f.numel() > 1 else None,
    }
    out["exact_mean"], out["exact_std"] = precise(f)
    if bins and f.numel():
        lo, hi = f.min().item(), f.max().item()
        out["histogram"] = torch.histc(f, bins=bins, min=lo, max=hi).long().tolist()
    return out


def precise(f: torch.Tensor) -> tuple[float | None, float | None]:
    """Mean and std of `f` to within an ulp or two: correctly rounded sums (math.fsum) in the
    corrected two-pass formula."""
    n = f.numel()
    if n == 0:
        return None, None
    x = f.numpy()
    try:
        total = math.fsum(x)
    except OverflowError:  # values near float64's max: leave it to torch
        total = math.inf
    if not math.isfinite(total):
        return f.mean().item(), (f.std().item() if n > 1 else None)
    mean = total / n
    if n == 1:
        return mean, None
    with np.errstate(over="ignore"):
        d = x - mean
        squares = d * d
    try:
        m2 = math.fsum(squares) - math.fsum(d) ** 2 / n
    except OverflowError:
        m2 = math.inf
    return mean, math.sqrt(max(m2, 0.0) / (n - 1))


def number(value):
    """A JSON statistic as a float ("inf" strings included)."""
    if value is None or isinstance(value, (int, float)):
        return value
    return float(value)


def close(ours, theirs, tolerance) -> bool:
    if ours is None or theirs is None:
        return ours is theirs
    if math.isinf(theirs) or math.isinf(ours) or math.isnan(theirs):
        return ours == theirs or (math.isnan(theirs) and math.isinf(ours))
    return abs(ours - theirs) <= tolerance


def check(name: str, row: dict, t: torch.Tensor, bins: int | None = None) -> None:
    ref = torch_stats(t, bins)
    where = f"{name!r} ({t.dtype}, {tuple(t.shape)}): ckpt {row} vs torch {ref}"
    if ref is None:
        assert not row["computed"], where
        return
    assert row["computed"], where
    for key in ("count", "nan", "pos_inf", "neg_inf", "zeros"):
        assert row[key] == ref[key], f"{key}: {where}"
    for key in ("min", "max"):
        assert number(row[key]) == ref[key], f"{key}: {where}"
    big = max(abs(ref["min"] or 0.0), abs(ref["max"] or 0.0))
    mean, std = number(row["mean"]), number(row["std"])
    finite_std = abs(std) if std is not None and math.isfinite(std) else 0.0
    # Against the precise reference: a few ulps.
    assert close(mean, ref["exact_mean"], ULPS * big), f"mean: {where}"
    assert close(std, ref["exact_std"], ULPS * finite_std), f"std (exact {ref['exact_std']}): {where}"
    # Against torch itself, whose float64 sums are less accurate (its std of 70,000 bools is
    # 740 ulps from the exact value): 1e-12 relative.
    assert close(mean, ref["mean"], TORCH * big), f"mean: {where}"
    assert close(std, ref["std"], TORCH * (finite_std + big)), f"std: {where}"
    flags = set(row["flags"])
    assert ("nan" in flags) == (ref["nan"] > 0), where
    assert ("inf" in flags) == (ref["pos_inf"] + ref["neg_inf"] > 0), where
    assert ("all-zero" in flags) == (ref["count"] > 0 and ref["zeros"] == ref["count"]), where
    if bins:
        hist = row.get("histogram")
        if "histogram" in ref and math.isinf((ref["max"] - ref["min"]) * bins):
            # histc's `(x - min) * bins` overflows there and it puts every value in bin 0
            # (even the max); ckpt puts the max in the last bin.
            assert hist is not None and sum(hist["counts"]) == sum(ref["histogram"]), where
        elif "histogram" in ref and ref["min"] == ref["max"] and ref["min"] - 1 == ref["min"]:
            # A constant beyond 2^53: histc's range min - 1..max + 1 is empty and it counts
            # the value nowhere; ckpt widens to the neighbouring floats (the middle bin).
            assert hist is not None and hist["counts"][bins // 2] == ref["count"] - ref["nan"], where
        elif "histogram" in ref:
            assert hist is not None and hist["counts"] == ref["histogram"], f"histogram: {where}"
            assert len(hist["edges"]) == bins + 1
        else:
            assert hist is None, where


def fails(row: dict) -> bool:
    """Whether a row's flags fail the run: NaN or inf, or all zeros in a floating tensor
    (floating, complex and quantized dtypes; integer counters of zeros are only noted)."""
    flags = set(row["flags"])
    floating = row["dtype"].startswith(("float", "bfloat", "complex", "q"))
    return bool(flags & {"nan", "inf"}) or ("all-zero" in flags and floating)


def stats_json(path: Path, *args) -> tuple[dict, int]:
    proc = run_ckpt("stats", "--json", *args, path)
    stderr = proc.stderr.decode("utf-8", "replace")
    assert "panicked at" not in stderr, describe(proc)
    assert proc.returncode in (0, 1), describe(proc)
    report = json.loads(proc.stdout)
    flagged = sum(1 for t in report["tensors"] if fails(t))
    assert report["summary"]["flagged"] == flagged
    assert proc.returncode == (1 if flagged else 0), describe(proc)
    return report, proc.returncode


def check_file(path: Path, tensors: dict[str, torch.Tensor], bins: int | None = None) -> None:
    report, _ = stats_json(path, *(["--bins", str(bins)] if bins else []))
    rows = {t["name"]: t for t in report["tensors"]}
    assert sorted(rows) == sorted(tensors), path
    for name, t in tensors.items():
        check(name, rows[name], t, bins)


@pytest.mark.parametrize("path", OK_FILES, ids=lambda p: p.name)
def test_safetensors_fixtures(path):
    check_file(path, load_file(str(path)), bins=16)


def true_tensors(case) -> dict[str, torch.Tensor]:
    """What torch.load gives, with the tensors it leaves unswapped in a big-endian file
    (expected.json's `torch_load_differs`: unsigned integers) byteswapped to their values."""
    tensors = live_tensors(case.path)
    for name in case.expected.get("torch_load_differs", []):
        t = tensors[name]
        size = t.element_size()
        raw = t.contiguous().view(torch.uint8).reshape(-1, size).flip(1).contiguous()
        tensors[name] = raw.view(t.dtype).reshape(t.shape)
    return tensors


@pytest.mark.parametrize("case", OK_CASES, ids=lambda c: c.id)
def test_torch_fixtures(case):
    check_file(case.path, true_tensors(case), bins=7)


@pytest.mark.parametrize("name", ["single-2.15", "sharded-2.15"])
def test_dcp_folders(name):
    check_file(FIXTURES / "ok" / "dcp" / name, dcp_load(FIXTURES / "ok" / "dcp" / name))


@pytest.mark.parametrize("name", ["safetensors", "bin"])
def test_shard_folders(name):
    check_file(FIXTURES / "ok" / "shards" / name, hf_load(FIXTURES / "ok" / "shards" / name))


# Every dtype safetensors.torch can save.
DTYPES = [
    torch.bool, torch.uint8, torch.int8, torch.int16, torch.uint16, torch.int32, torch.uint32,
    torch.int64, torch.uint64, torch.float16, torch.bfloat16, torch.float32, torch.float64,
    torch.complex64, torch.float8_e5m2, torch.float8_e4m3fn, torch.float8_e5m2fnuz,
    torch.float8_e4m3fnuz, torch.float8_e8m0fnu, torch.float4_e2m1fn_x2,
]


def random_tensor(rng: random.Random, gen: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    numel = rng.choice([0, 1, 2, 3, 17, 1000, 70_000])
    if dtype == torch.bool:
        return torch.randint(0, 2, (numel,), generator=gen).to(torch.bool)
    if dtype.is_floating_point and dtype.itemsize >= 2:
        # Values like weights, some planted NaN and infinities.
        t = (torch.randn(numel, generator=gen, dtype=torch.float64) * 0.02 + 0.001).to(dtype)
        if numel > 2 and rng.random() < 0.5:
            t[rng.randrange(numel)] = math.nan
            t[rng.randrange(numel)] = rng.choice([math.inf, -math.inf])
        return t
    if dtype == torch.complex64:
        t = torch.randn(numel, generator=gen, dtype=torch.complex64)
        if numel > 2:
            t[rng.randrange(numel)] = complex(math.inf, math.nan)
            t[rng.randrange(numel)] = complex(0.0, math.inf)
        return t
    # Integers and the 8-bit floats: any bit pattern (NaN, inf, subnormals, extremes).
    size = torch.empty(0, dtype=dtype).element_size()
    raw = torch.randint(0, 256, (numel * size,), dtype=torch.uint8, generator=gen)
    return raw.view(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).removeprefix("torch."))
def test_random_tensors_of_every_dtype(dtype, tmp_path):
    rng = random.Random(1000 + DTYPES.index(dtype))
    gen = torch.Generator().manual_seed(rng.randrange(1 << 30))
    tensors = {f"t{i}": random_tensor(rng, gen, dtype) for i in range(6)}
    tensors["zeros"] = torch.zeros(5, dtype=dtype)
    path = tmp_path / "random.safetensors"
    save_file(tensors, str(path))
    check_file(path, tensors, bins=32)


def test_a_big_float32_tensor_cut_into_pieces(tmp_path):
    # 20 MB: five pieces computed on different threads and merged.
    gen = torch.Generator().manual_seed(5)
    t = torch.randn(5_000_003, generator=gen) * 0.02 + 3.0
    t[123] = math.nan
    t[4_999_999] = -math.inf
    path = tmp_path / "big.safetensors"
    save_file({"w": t}, str(path))
    check_file(path, {"w": t}, bins=64)


def test_quantized_per_channel_and_per_tensor(tmp_path):
    w = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    tensors = {
        "per_tensor": torch.quantize_per_tensor(w, 0.05, 3, torch.quint8),
        "per_channel": torch.quantize_per_channel(
            w, torch.tensor([0.01, 0.02, 0.03, 0.04], dtype=torch.float64),
            torch.tensor([0, 1, -1, 2]), 0, torch.qint8),
        "axis1": torch.quantize_per_channel(
            w, torch.linspace(0.01, 0.06, 6, dtype=torch.float64), torch.zeros(6, dtype=torch.long),
            1, torch.qint8),
    }
    path = tmp_path / "q.pt"
    torch.save(tensors, path)
    check_file(path, tensors, bins=5)


def test_text_output_and_exit_codes(tmp_path):
    path = tmp_path / "flags.safetensors"
    save_file({"good": torch.randn(10), "dead": torch.zeros(3)}, str(path))
    proc = run_ckpt("stats", "--histogram", path)
    assert proc.returncode == 1, describe(proc)
    text = proc.stdout.decode()
    assert "flagged     1 (1 all zero)" in text, text
    assert "all-zero" in text and "HISTOGRAM" in text
    proc = run_ckpt("stats", "--exclude", "dead", path)
    assert_success(proc)
