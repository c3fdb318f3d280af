"""Checkpoints written live by training frameworks through their own save APIs.

tests/fixtures/frameworks/generate.py runs in a venv with the pinned frameworks
(scripts/interop-env.sh --on-top tests/interop/requirements-frameworks.txt, installed on first
use): PyTorch Lightning, Lightning Fabric, the Hugging Face Trainer, accelerate, fairseq-style
dicts with omegaconf/hydra configs, RNG states. Every tensor torch.load(weights_only=False)
gives must be listed by `ckpt inspect --hash` with equal hashes, and `ckpt convert --key`
must extract the model so that safetensors and torch.load(weights_only=True) load it.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from support import REPO, describe, run_ckpt

REQUIREMENTS = REPO / "tests" / "interop" / "requirements-frameworks.txt"
COMMITTED = REPO / "tests" / "fixtures" / "ok" / "frameworks"


GENERATORS = REPO / "tests" / "fixtures" / "frameworks"


@functools.cache
def framework_python() -> str:
    return subprocess.run([str(REPO / "scripts" / "interop-env.sh"), "--on-top", str(REQUIREMENTS)],
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("frameworks")
    subprocess.run([framework_python(), str(GENERATORS / "generate.py"), str(out)], check=True)
    return out


def ckpt(*args) -> str:
    proc = run_ckpt(*args)
    assert proc.returncode == 0, describe(proc)
    return proc.stdout.decode()


def expected(folder: Path) -> dict:
    """Per file, the tensors torch.load gives, names relative to the folder written to."""
    data = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    for want in data["files"].values():
        for tensor in want["tensors"]:
            tensor["name"] = tensor["name"].replace(data["out"], "<out>")
    return data["files"]


def rows(tensors: list[dict], folder: Path | None = None) -> dict:
    name = (lambda n: n.replace(str(folder), "<out>")) if folder else (lambda n: n)
    return {name(t["name"]): (t["dtype"], list(t["shape"]), t["sha256"]) for t in tensors}


def reference_of(path: Path, key: str, out: Path) -> dict[str, torch.Tensor]:
    """torch.load(weights_only=False)[key] of a framework file, loaded where its classes
    import (the frameworks venv), saved as a plain dict of tensors."""
    subprocess.run([framework_python(), "-c",
                    "import sys, torch; sd = torch.load(sys.argv[1], weights_only=False)[sys.argv[2]]; "
                    "torch.save({k: v for k, v in sd.items()}, sys.argv[3])",
                    str(path), key, str(out)],
                   check=True, env=dict(os.environ, PYTHONPATH=str(GENERATORS)))
    return torch.load(out, weights_only=True)


def test_every_tensor_torch_sees_is_listed_with_equal_hashes(written: Path) -> None:
    files = expected(written)
    assert len(files) >= 15
    for rel, want in files.items():
        report = json.loads(ckpt("inspect", "--json", "--hash", str(written / rel)))
        assert rows(report["tensors"], written) == rows(want["tensors"]), rel


def test_the_committed_fixtures_are_what_the_frameworks_write(written: Path) -> None:
    live, committed = expected(written), expected(COMMITTED)
    assert sorted(live) == sorted(committed)
    for rel in live:
        assert rows(live[rel]["tensors"]) == rows(committed[rel]["tensors"]), rel


@pytest.mark.parametrize("variant", ["namespace_flat", "namespace_nested", "dictconfig", "richdict"])
def test_convert_key_extracts_a_lightning_model(written: Path, tmp_path: Path, variant: str) -> None:
    source = written / "lightning" / variant / "manual.ckpt"
    reference = reference_of(source, "state_dict", tmp_path / "reference.pt")
    out = tmp_path / "model.safetensors"
    ckpt("convert", "--key", "state_dict", str(source), str(out))
    got = load_file(out)
    assert sorted(got) == sorted(reference)  # safetensors keeps no order
    for name, tensor in reference.items():
        assert torch.equal(got[name], tensor), name
    pth = tmp_path / "model.pth"
    ckpt("convert", "--key", "state_dict", str(source), str(pth))
    loaded = torch.load(pth, weights_only=True)
    assert list(loaded) == list(reference)
    for name, tensor in reference.items():
        assert torch.equal(loaded[name], tensor), name


def test_convert_key_extracts_fabric_and_fairseq_models(written: Path, tmp_path: Path) -> None:
    for rel in ["fabric/fabric_state.ckpt", "fairseq/checkpoint_cfg_hydra.pt",
                "fairseq/checkpoint_args_namespace.pt"]:
        reference = reference_of(written / rel, "model", tmp_path / "reference.pt")
        out = tmp_path / (rel.replace("/", "_") + ".pth")
        ckpt("convert", "--key", "model", str(written / rel), str(out))
        loaded = torch.load(out, weights_only=True)
        assert list(loaded) == list(reference), rel
        for name, tensor in reference.items():
            assert torch.equal(loaded[name], tensor), f"{rel}: {name}"


@pytest.mark.parametrize("key", ["state_dict", "state_dict_ema"])
def test_convert_key_extracts_a_timm_model(written: Path, tmp_path: Path, key: str) -> None:
    source = written / "timm" / "last.pth.tar"
    reference = reference_of(source, key, tmp_path / "reference.pt")
    out = tmp_path / "model.safetensors"
    ckpt("convert", "--key", key, str(source), str(out))
    got = load_file(out)
    assert sorted(got) == sorted(reference)
    for name, tensor in reference.items():
        assert torch.equal(got[name], tensor), name
