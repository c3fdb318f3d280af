"""`ckpt diff`: verdicts and counts against torch.isclose / torch.allclose (equal_nan=True),
and exact mode against bitwise equality, on random tensors near the tolerance boundary and
on hard values (NaN, infinities, signed zeros, subnormals, the largest values), per dtype."""

from __future__ import annotations

import json
import zlib

import pytest
import torch

from support import describe, run_ckpt

FLOATS = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
COMPLEX = [torch.complex64, torch.complex128]
TOLERANCES = [
    (None, None),  # torch's defaults
    (0.0, 0.0),
    (1e-3, 0.0),
    (0.0, 1e-2),
    (1e-5, 1e-3),
    (4e-8, 0.0),  # rounds to float16's smallest subnormal in float16 arithmetic
    (0.5, 0.5),
    (1e-30, 1e-7),
]


def edge_values(dtype: torch.dtype) -> torch.Tensor:
    info = torch.finfo(dtype)
    values = [
        float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 1.0, -1.0,
        info.tiny, info.tiny * info.eps,  # smallest normal, smallest subnormal
        info.max, -info.max, info.eps, 1.0 + info.eps, 1e-8, 1e-5, 3.0, 3.0 + 3e-5,
    ]
    return torch.tensor(values, dtype=torch.float64).to(dtype)


def cases(dtype: torch.dtype, atol: float, rtol: float, seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Named pairs (a, b) of one dtype: every pair of hard values, and random values with
    differences around atol + rtol * |b|."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    if dtype.is_complex:
        real = torch.float32 if dtype == torch.complex64 else torch.float64
        edges = edge_values(real)
        n = len(edges)
        re_a, im_b = edges.repeat_interleave(n), edges.repeat(n)
        out["edges"] = (torch.complex(re_a, edges.repeat(n)), torch.complex(edges.repeat(n), im_b))
        for scale in [1e-6, 1.0, 1e6]:
            b = torch.randn(4000, generator=g, dtype=torch.complex128) * scale
            bound = atol + rtol * b.abs()
            angle = torch.rand(4000, generator=g, dtype=torch.float64) * 6.283
            factor = 0.5 + torch.rand(4000, generator=g, dtype=torch.float64)
            delta = torch.polar(bound * factor, angle)
            out[f"random_{scale:g}"] = ((b + delta).to(dtype), b.to(dtype))
        return out
    edges = edge_values(dtype)
    n = len(edges)
    out["edges"] = (edges.repeat_interleave(n), edges.repeat(n))
    for scale in [1e-6, 1.0, 1e6]:
        b = (torch.randn(4000, generator=g, dtype=torch.float64) * scale).to(dtype)
        bound = atol + rtol * b.double().abs()
        factor = (torch.rand(4000, generator=g, dtype=torch.float64) - 0.5) * 3.0
        a = (b.double() + bound * factor).to(dtype)
        out[f"random_{scale:g}"] = (a, b)
    # Neighbours: b and the next few representable values.
    b = (torch.randn(2000, generator=g, dtype=torch.float64)).to(dtype)
    a = b.clone()
    bits = a.view(torch.int16 if dtype in (torch.float16, torch.bfloat16) else torch.int32 if dtype == torch.float32 else torch.int64)
    bits += torch.randint(-3, 4, bits.shape, generator=g, dtype=bits.dtype)
    out["neighbours"] = (a, b)
    return out


def diff_json(a_path, b_path, *args) -> dict:
    proc = run_ckpt("diff", "--json", *args, a_path, b_path)
    assert proc.returncode in (0, 1), describe(proc)
    report = json.loads(proc.stdout)
    assert (proc.returncode == 0) == report["equal"], describe(proc)
    return report


def bitwise_differs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if a.is_complex():
        a, b = torch.view_as_real(a), torch.view_as_real(b)
        return bitwise_differs(a[..., 0], b[..., 0]) | bitwise_differs(a[..., 1], b[..., 1])
    ints = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
    same = (a.view(ints) == b.view(ints)) | (a.isnan() & b.isnan())
    return ~same


def check(report: dict, expected: dict[str, torch.Tensor]) -> None:
    """`expected` maps names to the boolean mask of differing elements."""
    rows = {t["name"]: t for t in report["tensors"]}
    assert set(rows) == set(expected)
    for name, differs in expected.items():
        row = rows[name]
        count = int(differs.sum())
        if count == 0:
            assert row["status"] == "equal", (name, row)
            continue
        assert row["status"] == "differ", (name, count, row)
        d = row["differences"]
        assert d["count"] == count, (name, count, d)
        assert d["first_flat"] == int(differs.nonzero()[0, 0]), (name, d)
    assert report["equal"] == all(not m.any() for m in expected.values())


@pytest.mark.parametrize("dtype", FLOATS + COMPLEX, ids=str)
@pytest.mark.parametrize("tolerance", TOLERANCES, ids=lambda t: f"atol={t[0]}-rtol={t[1]}")
def test_tolerances_match_torch_isclose(dtype, tolerance, tmp_path):
    atol, rtol = tolerance
    atol_value = 1e-8 if atol is None else atol
    rtol_value = 1e-5 if rtol is None else rtol
    pairs = cases(dtype, atol_value, rtol_value, seed=zlib.crc32(f"{dtype}{tolerance}".encode()))
    torch.save({k: a for k, (a, _) in pairs.items()}, tmp_path / "a.pt")
    torch.save({k: b for k, (_, b) in pairs.items()}, tmp_path / "b.pt")
    args = []
    if atol is not None:
        args += ["--atol", repr(atol)]
    if rtol is not None:
        args += ["--rtol", repr(rtol)]
    if not args:
        args = ["--atol", "1e-8"]  # rtol left to torch's default
    report = diff_json(tmp_path / "a.pt", tmp_path / "b.pt", *args)
    expected = {
        name: ~torch.isclose(a, b, rtol=rtol_value, atol=atol_value, equal_nan=True)
        for name, (a, b) in pairs.items()
    }
    check(report, expected)
    for name, (a, b) in pairs.items():
        assert (report["tensors"][list(pairs).index(name)]["status"] == "equal") == torch.allclose(
            a, b, rtol=rtol_value, atol=atol_value, equal_nan=True
        )
    # Exact mode on the same files: bitwise, NaN equal to NaN.
    exact = diff_json(tmp_path / "a.pt", tmp_path / "b.pt")
    check(exact, {name: bitwise_differs(a, b) for name, (a, b) in pairs.items()})


def test_largest_difference_and_where(tmp_path):
    g = torch.Generator().manual_seed(7)
    b = torch.randn(300, 500, generator=g)
    a = b.clone()
    a[17, 250] += 0.75
    a[200, 3] -= 0.5
    a[299, 499] = float("nan")
    torch.save({"w": a}, tmp_path / "a.pt")
    torch.save({"w": b}, tmp_path / "b.pt")
    report = diff_json(tmp_path / "a.pt", tmp_path / "b.pt")
    d = report["tensors"][0]["differences"]
    assert d["count"] == 3
    assert d["first_index"] == [17, 250]
    assert d["max_abs"] == "inf"  # NaN against a number
    assert d["max_abs_index"] == [299, 499]
    a[299, 499] = b[299, 499]
    torch.save({"w": a}, tmp_path / "a.pt")
    report = diff_json(tmp_path / "a.pt", tmp_path / "b.pt")
    d = report["tensors"][0]["differences"]
    delta = (a.double() - b.double()).abs()
    assert d["max_abs"] == pytest.approx(float(delta.max()), rel=0, abs=0)
    assert d["max_abs_index"] == [17, 250]
    rel = delta / b.double().abs()
    assert d["max_rel"] == float(rel[delta > 0].max())
