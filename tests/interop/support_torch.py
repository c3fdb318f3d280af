"""Helpers for the PyTorch interop tests: the fixture lists and what live torch sees.

What torch sees is computed by tests/fixtures/torch_view.py, the same code the generator used
to write each `<file>.expected.json`; the tests recompute it live with the pinned torch.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from support import FIXTURES

sys.path.insert(0, str(FIXTURES))  # torch_view, and fixture_models for whole-module pickles

import torch_view  # noqa: E402

TORCH_OK = FIXTURES / "ok" / "torch"
PYPI = TORCH_OK / "pypi"
REJECTED_TORCH = json.loads((FIXTURES / "rejected-torch.json").read_text(encoding="utf-8"))

# Real files read from the interop venv: expected.json name -> (importable package, file in it).
VENV_FILES = {"silero_vad.jit": ("silero_vad", "data/silero_vad.jit")}

# Dtypes a safetensors file can hold (torch names); anything else makes `ckpt convert` fail.
SAFETENSORS_DTYPES = {
    "bool", "uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
    "float16", "bfloat16", "float32", "float64", "complex64", "float8_e5m2", "float8_e4m3fn",
    "float8_e5m2fnuz", "float8_e4m3fnuz", "float8_e8m0fnu", "float4_e2m1fn_x2",
}


@dataclass(frozen=True)
class Case:
    """An ok torch fixture: the file, and the expected.json written next to it."""

    id: str
    path: Path
    expected_path: Path

    @property
    def expected(self) -> dict:
        return json.loads(self.expected_path.read_text(encoding="utf-8"))


def _venv_path(name: str) -> Path:
    import importlib

    package, rel = VENV_FILES[name]
    return Path(importlib.import_module(package).__file__).parent / rel


def ok_cases() -> list[Case]:
    cases = []
    for folder in (TORCH_OK, PYPI):
        for exp in sorted(folder.glob("*.expected.json")):
            name = exp.name[: -len(".expected.json")]
            if folder == PYPI and name in VENV_FILES:
                continue
            path = folder / name
            rel = path.relative_to(TORCH_OK)
            cases.append(Case(str(rel), path, exp))
    return cases


def venv_cases() -> list[Case]:
    return [Case(f"venv/{name}", _venv_path(name), PYPI / f"{name}.expected.json")
            for name in sorted(VENV_FILES)]


OK_CASES = ok_cases()
ALL_OK_IDS = [c.id for c in OK_CASES]


def all_cases() -> list[Case]:
    """ok fixtures plus the real files read from the venv (imported lazily: needs the venv)."""
    return OK_CASES + venv_cases()


def convertible(expected: dict) -> bool:
    return all(t["dtype"] in SAFETENSORS_DTYPES for t in expected["tensors"])


# --------------------------------------------------------------------------------------------
# Live torch
# --------------------------------------------------------------------------------------------


def live_view(path: Path) -> dict:
    return torch_view.view(path)


def live_tensors(path: Path) -> dict[str, torch.Tensor]:
    """name -> contiguous, conj/neg-resolved torch tensor, as torch.load sees the file."""
    root = torch_view.load_full(path)
    fmt = torch_view.detect_format(path)
    if torch_view.kind_of(fmt, root) in ("module", "torchscript"):
        named = list(root.state_dict().items())
    else:
        named, _ = torch_view.flatten(root)
    out = {}
    for name, t in named:
        if isinstance(t, (np.ndarray, np.generic)):
            t = torch.from_numpy(np.array(np.asarray(t), order="C"))  # keeps 0-d scalars 0-d
        t = t.detach()
        if t.is_conj():
            t = t.resolve_conj()
        if t.is_neg():
            t = t.resolve_neg()
        out[name] = t.contiguous()
    return out


def element_size(dtype_name: str) -> int:
    dtype = getattr(torch, dtype_name, None)
    if isinstance(dtype, torch.dtype):
        try:
            return torch.empty(0, dtype=dtype).element_size()
        except RuntimeError:  # quantized dtypes have no plain empty()
            return torch._utils._element_size(dtype)
    return np.dtype(dtype_name).itemsize


# --------------------------------------------------------------------------------------------
# Comparing JSON exactly (1 != 1.0 != True, -0.0 != 0.0)
# --------------------------------------------------------------------------------------------


def strict_equal(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    return a == b


TENSOR_KEYS = ("name", "dtype", "shape", "stride", "storage_offset", "sha256")
QUANT_KEYS = ("q_scale", "q_zero_point", "q_axis")


def check_expected_against_live(case: Case) -> None:
    """expected.json still says what the pinned torch sees (no ckpt involved)."""
    expected, live = case.expected, live_view(case.path)
    differs = set(expected.get("torch_load_differs", []))
    for key in ("format", "kind", "shared", "values"):
        assert strict_equal(expected[key], live[key]), f"{key}: expected {expected[key]!r}, live {live[key]!r}"
    assert [t["name"] for t in expected["tensors"]] == [t["name"] for t in live["tensors"]]
    for e, w in zip(expected["tensors"], live["tensors"]):
        if e["name"] in differs:
            # torch.load does not byteswap these (UntypedStorage) storages of a big-endian file:
            # if this starts failing, torch fixed it and expected.json needs a look.
            assert e["sha256"] != w["sha256"], f"{e['name']}: torch.load now byteswaps it"
            e = {**e, "sha256": w["sha256"]}
        assert strict_equal(e, w), f"tensor {e['name']!r}: expected {e}, live {w}"
    assert expected["weights_only"] == torch_view.weights_only_loads(case.path)
    if expected["format"] != "torchscript":
        assert expected["needs"] == torch_view.unsafe_globals(case.path)


def check_report(case: Case, report: dict, *, hashed: bool = True) -> None:
    """ckpt's `inspect --json [--hash]` report against expected.json and live torch."""
    expected = case.expected
    assert isinstance(report, dict), report
    assert isinstance(report.get("path"), str), report
    for key in ("format", "kind", "weights_only", "needs"):
        assert strict_equal(report.get(key), expected[key]), f"{key}: got {report.get(key)!r}, want {expected[key]!r}"
    shared = report.get("shared")
    assert isinstance(shared, list), report
    assert sorted(sorted(g) for g in shared) == expected["shared"], f"shared: got {shared!r}"
    got_values = report.get("values")
    assert isinstance(got_values, list), report
    got_values = [{k: v.get(k) for k in ("name", "type", "value")} for v in got_values]
    assert [v["name"] for v in got_values] == [v["name"] for v in expected["values"]], "value names or order differ"
    for g, w in zip(got_values, expected["values"]):
        assert strict_equal(g, w), f"value {w['name']!r}: got {g!r}, want {w!r}"

    got = report.get("tensors")
    assert isinstance(got, list), report
    assert [t.get("name") for t in got] == [t["name"] for t in expected["tensors"]], "tensor names or order differ"
    live = {t["name"]: t for t in live_view(case.path)["tensors"]}
    differs = set(expected.get("torch_load_differs", []))
    keys = TENSOR_KEYS if hashed else TENSOR_KEYS[:-1]
    for g, w in zip(got, expected["tensors"]):
        name = w["name"]
        for key in keys + tuple(k for k in QUANT_KEYS if k in w):
            assert strict_equal(g.get(key), w[key]), f"tensor {name!r}: {key} is {g.get(key)!r}, want {w[key]!r}"
            if key != "sha256" or name not in differs:
                assert strict_equal(g.get(key), live[name][key]), f"tensor {name!r}: {key} differs from live torch"
        numel = math.prod(w["shape"])
        # float4_e2m1fn_x2 packs two values per element (as safetensors' F4 counts them).
        values = numel * (2 if w["dtype"] == "float4_e2m1fn_x2" else 1)
        assert g.get("parameters") == values, f"tensor {name!r}: parameters"
        assert g.get("bytes") == numel * element_size(w["dtype"]), f"tensor {name!r}: bytes"
        if not hashed:
            assert "sha256" not in g, "sha256 is only reported with --hash"
