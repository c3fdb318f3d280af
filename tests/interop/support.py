"""Shared helpers for the interop suite: running ckpt, and what the reference safetensors sees."""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
OK_FILES = sorted((FIXTURES / "ok").glob("*.safetensors"))
REJECTED = json.loads((FIXTURES / "rejected.json").read_text(encoding="utf-8"))

# ckpt's name for header dtypes that torch represents differently (or not at all).
CKPT_DTYPE_FOR_HEADER = {"F4": "float4_e2m1fn", "F6_E2M3": "float6_e2m3fn", "F6_E3M2": "float6_e3m2fn"}


def ckpt_bin() -> Path:
    """The ckpt binary: $CKPT_BIN, else target/release/ckpt, else target/debug/ckpt."""
    env = os.environ.get("CKPT_BIN")
    if env:
        path = Path(env)
        if not path.is_absolute():
            path = REPO / path
        candidates = [path]
    else:
        candidates = [REPO / "target" / "release" / "ckpt", REPO / "target" / "debug" / "ckpt"]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    pytest.fail(
        "ckpt binary not found (looked at "
        + ", ".join(str(c) for c in candidates)
        + "): build it with `cargo build --release -p ckpt-cli` or set CKPT_BIN",
        pytrace=False,
    )


def run_ckpt(*args, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ckpt with bytes output; a hang fails the test instead of blocking the suite."""
    env = dict(os.environ, RUST_BACKTRACE="0", NO_COLOR="1")
    return subprocess.run(
        [str(ckpt_bin()), *map(str, args)],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def describe(proc: subprocess.CompletedProcess) -> str:
    return (
        f"\n$ {' '.join(map(str, proc.args))}\nexit {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout.decode('utf-8', 'replace')[:4000]}\n"
        f"--- stderr ---\n{proc.stderr.decode('utf-8', 'replace')[:4000]}"
    )


def assert_success(proc: subprocess.CompletedProcess) -> None:
    stderr = proc.stderr.decode("utf-8", "replace")
    assert "panicked at" not in stderr, describe(proc)
    assert proc.returncode == 0, describe(proc)


def assert_clean_error(proc: subprocess.CompletedProcess) -> None:
    """Exit 2, nothing on stdout, one `error:` line (+ an optional hint line), no panic."""
    stderr = proc.stderr.decode("utf-8", "replace")
    assert "panicked at" not in stderr, describe(proc)
    assert proc.returncode == 2, describe(proc)
    assert proc.stdout == b"", describe(proc)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2, "expected one error line and at most one hint line" + describe(proc)
    assert lines[0].startswith("error:"), describe(proc)
    assert sum(line.startswith("error:") for line in lines) == 1, describe(proc)


def inspect_json(path: Path, *extra: str) -> dict:
    proc = run_ckpt("inspect", path, "--json", *extra)
    assert_success(proc)
    try:
        return json.loads(proc.stdout.decode("utf-8"))  # exactly one JSON document
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AssertionError(f"stdout is not one JSON object: {e}" + describe(proc)) from None


# --------------------------------------------------------------------------------------------
# What the reference sees
# --------------------------------------------------------------------------------------------


def header_pairs(path: Path) -> list:
    """The JSON header as (key, value) pairs in file order (duplicates kept)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        raw = f.read(n)
    return json.loads(raw.decode("utf-8"), object_pairs_hook=lambda kv: kv)


def header_len(path: Path) -> int:
    with open(path, "rb") as f:
        return struct.unpack("<Q", f.read(8))[0]


def raw_bytes(t: torch.Tensor) -> bytes:
    """The elements, row-major, little-endian, packed (handles 0-d, empty, float8, F4x2)."""
    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def sha256_of(t: torch.Tensor) -> str:
    return hashlib.sha256(raw_bytes(t)).hexdigest()


def torch_dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def reference_view(path: Path) -> dict:
    """Everything ckpt inspect should report, computed live with safetensors + torch."""
    pairs = header_pairs(path)
    order = [name for name, _ in pairs if name != "__metadata__"]
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
        slices = {name: (f.get_slice(name).get_dtype(), list(f.get_slice(name).get_shape())) for name in f.keys()}
    tensors = load_file(str(path))
    assert sorted(order) == sorted(tensors), "header names differ from load_file's"
    entries = []
    for name in order:
        t = tensors[name]
        header_dtype, header_shape = slices[name]
        dtype = CKPT_DTYPE_FOR_HEADER.get(header_dtype, torch_dtype_name(t.dtype))
        entries.append(
            {
                "name": name,
                "dtype": dtype,
                "shape": header_shape,
                "parameters": math.prod(header_shape),
                "bytes": t.numel() * t.element_size(),
                "sha256": sha256_of(t),
            }
        )
    return {"metadata": metadata, "tensors": entries}


def check_inspect(path: Path, report: dict, *, hashed: bool = True) -> None:
    """Compare ckpt's `inspect --json [--hash]` output with the live reference view."""
    want = reference_view(path)
    assert isinstance(report, dict)
    assert isinstance(report.get("path"), str), report
    assert report.get("format") == "safetensors", report
    assert report.get("metadata") == want["metadata"]
    got = report.get("tensors")
    assert isinstance(got, list)
    assert [t.get("name") for t in got] == [t["name"] for t in want["tensors"]], "names or order differ"
    for g, w in zip(got, want["tensors"]):
        for key in ("dtype", "shape", "parameters", "bytes") + (("sha256",) if hashed else ()):
            assert g.get(key) == w[key], f"tensor {w['name']!r}: {key} is {g.get(key)!r}, want {w[key]!r}"


def assert_bitwise_equal(a: dict, b: dict) -> None:
    """Same names, dtypes, shapes and bytes (NaN-safe: compares raw bits)."""
    assert sorted(a) == sorted(b)
    for name in a:
        x, y = a[name], b[name]
        assert x.dtype == y.dtype, name
        assert x.shape == y.shape, name
        assert raw_bytes(x) == raw_bytes(y), name


def write_safetensors(path: Path, header: dict | list, data: bytes, *, lead: int = 0) -> None:
    """Write a file by hand: compact JSON header (dict, or (key, value) pairs to keep an exact
    order), `lead` spaces before it, space padding after it to a multiple of 8, then data."""
    pairs = header if isinstance(header, list) else list(header.items())

    def dump(value) -> str:
        if isinstance(value, list) and value and all(isinstance(v, tuple) for v in value):
            return "{" + ",".join(f"{dump(k)}:{dump(v)}" for k, v in value) + "}"
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    raw = b" " * lead + dump(pairs).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def metadata_of(path: Path):
    """__metadata__ as safe_open reports it: None when absent."""
    with safe_open(str(path), framework="pt") as f:
        return f.metadata()
