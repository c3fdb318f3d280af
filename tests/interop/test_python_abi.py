"""The wheel is abi3 for CPython >= 3.9, and `framework="np"` needs numpy only.

The wheel run.sh built (target/wheels) is installed into venvs of the oldest and the newest
CPython this machine has (pyenv's 3.9 and 3.13), holding numpy and nothing else: no torch,
no safetensors. There a script loads fixtures as numpy arrays, inspects, scans, saves and
reloads; what it prints must equal what the package gives in the interop venv (torch
installed), and torch must never have been imported. The venvs are cached under
~/.cache/ckpt/ (keyed by the interpreter and the numpy pin); the wheel is reinstalled each
run.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import FIXTURES, REPO

# The interpreters, each with a numpy that has wheels for it.
PYTHONS = {"3.9": "numpy==2.0.2", "3.13": "numpy==2.3.5"}

FILES = [
    ("ok/tiny-mlp.safetensors", None),
    ("ok/dtypes.safetensors", None),
    ("ok/torch/checkpoint-2.15-zip.pt", "model"),
    ("ok/torch/checkpoint-2.0-legacy.pt", "model"),
    ("ok/torch/big_endian_dtypes-2.15-zip.pt", None),
    ("ok/dcp/sharded-2.15", None),
]

# What the script prints: every array's dtype, shape and bytes' sha256, the scan's verdicts,
# the inspected formats, and a save/reload round trip. It runs in both environments.
SCRIPT = r"""
import hashlib, json, os, sys, tempfile
import numpy as np
import ckpt

fixtures, files = sys.argv[1], json.loads(sys.argv[2])
out = {"arrays": {}, "verdicts": [], "formats": []}
plain = ("bool", "uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
         "float16", "float32", "float64", "complex64", "complex128")
for name, key in files:
    path = os.path.join(fixtures, name)
    with ckpt.safe_open(path, framework="np", key=key) as f:
        names = [n for n in f.keys() if f.dtype(n) in plain]
    arrays = ckpt.load(path, framework="np", key=key, include=names or None) if names else {}
    for tensor, array in arrays.items():
        data = np.ascontiguousarray(array).tobytes()
        out["arrays"][name + ":" + tensor] = [array.dtype.name, list(array.shape), hashlib.sha256(data).hexdigest()]
    out["verdicts"].append(ckpt.scan(path)["files"][0]["verdict"])
    out["formats"].append(ckpt.inspect(path)["format"])
saved = os.path.join(tempfile.mkdtemp(), "saved.safetensors")
arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, 2], dtype=np.int64)}
ckpt.save(arrays, saved)
back = ckpt.load(saved, framework="np")
out["round_trip"] = all(np.array_equal(arrays[k], back[k]) for k in arrays)
out["torch_imported"] = "torch" in sys.modules
out["python"] = "%d.%d" % sys.version_info[:2]
print(json.dumps(out, sort_keys=True))
"""


def _interpreter(version: str) -> Path | None:
    """pyenv's CPython `version`, if this machine has it."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = sorted(root.glob(f"{version}.*/bin/python{version}")) if root.is_dir() else []
    return found[-1] if found else None


def _venv(version: str, pin: str) -> Path:
    """A cached venv of CPython `version` with numpy `pin` (and nothing else)."""
    interpreter = _interpreter(version)
    if interpreter is None:
        pytest.skip(f"no CPython {version} under pyenv on this machine")
    key = hashlib.sha256(f"{interpreter}\n{pin}".encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ckpt" / f"abi-{version}-{key}"
    python = cache / "bin" / "python"
    if not (cache / ".complete").exists():
        subprocess.run(["rm", "-rf", str(cache)], check=True)
        subprocess.run([str(interpreter), "-m", "venv", str(cache)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", pin],
                       check=True)
        (cache / ".complete").touch()
    return python


def _wheel() -> Path:
    wheels = sorted((REPO / "target" / "wheels").glob("ckpt-*-abi3-*.whl"))
    assert wheels, "no abi3 wheel in target/wheels: run the suite through tests/interop/run.sh"
    return wheels[-1]


def _run(python: Path) -> dict:
    result = subprocess.run(
        [str(python), "-c", SCRIPT, str(FIXTURES), json.dumps(FILES)],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def here() -> dict:
    return _run(Path(sys.executable))


@pytest.mark.parametrize("version", sorted(PYTHONS))
def test_the_abi3_wheel_loads_as_numpy_without_torch(version, here):
    python = _venv(version, PYTHONS[version])
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--force-reinstall", "--no-deps", str(_wheel())], check=True)
    there = _run(python)
    assert there["python"] == version
    assert there["torch_imported"] is False
    assert there["round_trip"] is True
    assert len(there["arrays"]) > 20
    for field in ("arrays", "verdicts", "formats"):
        assert there[field] == here[field], field
    assert set(there["verdicts"]) == {"safe"}

