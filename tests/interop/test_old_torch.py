"""Files ckpt writes load in torch 2.0 as well as in the pinned torch.

Every ok fixture (torch files of 2.0 and 2.15, safetensors files) is converted to `.pth` by
ckpt, then read by torch 2.0.1 (old_torch_view.py in the old venv) and by the pinned torch.
Both must see the same thing (names, dtypes, shapes, strides, offsets, bytes, shared storages,
plain values), and 2.0.1's `torch.load(weights_only=True)` must accept the file, except where
the old torch cannot hold it at all (a dtype it does not have) or refuses the source the same
way (its smaller weights_only allowlist).

The old venv is 4.4 GB (torch 2.0.1 pulls CUDA wheels from PyPI), so `.ci/run` does not
install it: these tests run when it is already present (scripts/interop-env.sh
tests/interop/requirements-torch-old.txt, as tests/fixtures/generate_torch.py uses it) or
when CKPT_INTEROP_OLD_TORCH=1 asks to install it, and are skipped otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from support import OK_FILES, REPO, assert_success, run_ckpt
from support_torch import OK_CASES
import torch_view

OLD_REQUIREMENTS = REPO / "tests" / "interop" / "requirements-torch-old.txt"


def old_python() -> str:
    key = hashlib.sha256(OLD_REQUIREMENTS.read_bytes()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    present = (cache / "ckpt" / f"interop-{key}" / ".complete").exists()
    if not present and os.environ.get("CKPT_INTEROP_OLD_TORCH") != "1":
        pytest.skip("the torch 2.0.1 venv is not installed (CKPT_INTEROP_OLD_TORCH=1 installs it)")
    script = REPO / "scripts" / "interop-env.sh"
    return subprocess.run([str(script), str(OLD_REQUIREMENTS)], check=True, capture_output=True,
                          text=True).stdout.strip()


# The values-* fixtures hold what no weights_only load can give back (test_torch_write.py).
SOURCES = [c.path for c in OK_CASES if not c.id.startswith("values-")] + list(OK_FILES)


def case_id(path: Path) -> str:
    return str(path.relative_to(REPO / "tests" / "fixtures"))


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    """(source -> output .pth, what torch 2.0.1 saw in every output and torch source)."""
    python = old_python()
    folder = tmp_path_factory.mktemp("old-torch")
    outputs = {}
    for i, source in enumerate(SOURCES):
        out = folder / f"{i}-{source.stem}.pth"
        proc = run_ckpt("convert", source, out, timeout=300)
        assert_success(proc)
        outputs[source] = out
    torch_sources = [s for s in SOURCES if s.suffix != ".safetensors"]
    names = [str(p) for p in list(outputs.values()) + torch_sources]
    proc = subprocess.run([python, str(REPO / "tests" / "interop" / "old_torch_view.py"), *names],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return outputs, json.loads(proc.stdout)


def test_the_old_torch_is_old(seen):
    _, report = seen
    assert report["torch"].startswith("2.0."), report["torch"]


@pytest.mark.parametrize("source", SOURCES, ids=case_id)
def test_pth_outputs_read_the_same_in_torch_2_0(source, seen):
    outputs, report = seen
    out = outputs[source]
    old = report["files"][str(out)]
    new = torch_view.view(out)
    missing = sorted({t["dtype"] for t in new["tensors"]} - set(report["dtypes"]))
    if missing:
        # torch 2.0 has no such dtype: it cannot load the file (nor the source) at all.
        assert old["view"] is None and not old["weights_only"], f"loaded {missing}?"
        return
    assert old["view_error"] is None, old["view_error"]
    assert old["view"]["tensors"] == new["tensors"]
    assert old["view"]["shared"] == new["shared"]
    assert old["view"]["values"] == new["values"]
    if not old["weights_only"]:
        # Only where 2.0's allowlist refuses the source too.
        assert source.suffix != ".safetensors", old["refusal"]
        assert not report["files"][str(source)]["weights_only"], old["refusal"]
