"""`convert --dedupe` against the real rule: safetensors' `save_model` (and huggingface_hub's
`save_torch_state_dict`, which copies it) on tied weights.

For each tied fixture, torch.load gives the state dict; safetensors' `_remove_duplicate_names`
says which name of each group of tensors sharing a storage is kept (the first complete one,
sorted) and which are dropped; `save_model` records `dropped -> kept` in the metadata. ckpt's
output must keep the same names, with the same elements, and record the same metadata.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub.serialization._torch import _remove_duplicate_names as hub_rule
from safetensors import safe_open
from safetensors.torch import _remove_duplicate_names as safetensors_rule
from safetensors.torch import load_file

from support import FIXTURES, assert_success, run_ckpt

TIED = sorted((FIXTURES / "ok" / "torch").glob("*tied-2.15-*.pt"))
# Whole-module fixtures unpickle their classes from tests/fixtures/fixture_models.py.
sys.path.insert(0, str(FIXTURES))


def state_dict(path: Path) -> dict[str, torch.Tensor]:
    loaded = torch.load(path, weights_only=False)
    return loaded.state_dict() if isinstance(loaded, torch.nn.Module) else dict(loaded)


@pytest.mark.parametrize("path", TIED, ids=lambda p: p.name)
def test_dedupe_keeps_the_names_save_model_keeps(path: Path, tmp_path: Path) -> None:
    sd = state_dict(path)
    removed = safetensors_rule(sd)
    assert removed, f"{path.name} has no tied weights"
    assert {k: sorted(v) for k, v in removed.items()} == {k: sorted(v) for k, v in hub_rule(sd).items()}
    dropped = {name: kept for kept, names in removed.items() for name in names}

    out = tmp_path / "deduped.safetensors"
    assert_success(run_ckpt("convert", "--dedupe", path, out))
    got = load_file(out)
    assert sorted(got) == sorted(name for name in sd if name not in dropped)
    for name, tensor in got.items():
        assert torch.equal(tensor, sd[name]), name
    with safe_open(out, "pt") as f:
        metadata = f.metadata()
    assert {k: v for k, v in metadata.items() if k != "format"} == dropped


def test_there_are_tied_fixtures() -> None:
    assert len(TIED) >= 4, TIED
