"""The `ckpt` Python package (crates/ckpt-python), built into this venv by run.sh, against
what torch.load and safetensors give for the same files.

- `ckpt.load` of every ok torch fixture (and the real files from PyPI packages): the names
  torch's flattening gives, in order, with equal dtypes, shapes and bytes; tensors mapped
  from the file keep torch's strides; tied tensors share memory as torch.load's do.
- `ckpt.load(framework="np")`: the same bytes as numpy arrays.
- `ckpt.safe_open` on every ok safetensors fixture equals `safetensors.safe_open`.
- bad and attack fixtures raise `ckpt.Error` subclasses, and run nothing.
- a tensor outlives its handle; writing to it never reaches the file.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import struct
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open as reference_open
from safetensors.torch import save_file

import ckpt
from ckpt import _ckpt
from support import FIXTURES, OK_FILES, REJECTED, assert_bitwise_equal
from support_torch import REJECTED_TORCH, SAFETENSORS_DTYPES, all_cases, live_tensors, torch_view
from test_dcp_shards import DCP_FIXTURES, dcp_load, hf_load

CASES = all_cases()


def digest(tensor) -> str:
    return torch_view.sha256_of(tensor)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_load_equals_torch_load(case):
    expected = case.expected
    got = ckpt.load(case.path)
    assert list(got) == [t["name"] for t in expected["tensors"]]
    handle = _ckpt.Handle(str(case.path))
    for want in expected["tensors"]:
        name = want["name"]
        tensor = got[name]
        assert torch_view.dtype_name(tensor.dtype) == want["dtype"], name
        assert list(tensor.shape) == want["shape"], name
        assert digest(tensor) == want["sha256"], f"{name}: bytes differ from torch's"
        if handle.plan(name)[2] is not None:
            # A view of the file keeps torch's layout; a produced tensor is dense.
            assert list(tensor.stride()) == want["stride"], name
        else:
            assert tensor.is_contiguous(), name


@pytest.mark.parametrize("name", ["checkpoint-2.15-zip.pt", "checkpoint-2.0-zip.pt",
                                  "dtypes-2.15-zip.pt", "module_tied-2.15-zip.pt"])
def test_tensors_stored_as_they_are_are_views_of_the_file(name):
    """Nothing is copied: every tensor is a view of the one copy-on-write map of the file."""
    path = FIXTURES / "ok" / "torch" / name
    got = ckpt.load(path)
    assert got
    storages = {t.untyped_storage().data_ptr() for t in got.values() if t.numel()}
    assert len(storages) == 1, storages
    assert all(t.untyped_storage().nbytes() == path.stat().st_size for t in got.values() if t.numel())


@pytest.mark.parametrize("case", [c for c in CASES if c.expected["shared"]], ids=lambda c: c.id)
def test_tied_tensors_share_memory_as_in_torch_load(case):
    got = ckpt.load(case.path)
    live = live_tensors(case.path)
    reference = dict(torch_view.flatten(torch_view.load_full(case.path))[0]) if not _is_module(case) else None
    for group in case.expected["shared"]:
        pointers = {got[name].untyped_storage().data_ptr() for name in group}
        assert len(pointers) == 1, f"{group}: not one mapping"
        if reference is not None:
            # Tensors at the same address in torch.load's result are at one address here.
            by_address: dict[int, set[int]] = {}
            for name in group:
                by_address.setdefault(reference[name].data_ptr(), set()).add(got[name].data_ptr())
            assert all(len(ours) == 1 for ours in by_address.values()), group
    assert set(live) == set(got)


def _is_module(case) -> bool:
    return case.expected["kind"] in ("module", "torchscript")


def numpy_ready(expected: dict) -> bool:
    names = {"bool", "uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
             "float16", "float32", "float64", "complex64", "complex128", "bfloat16",
             "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz"}
    return all(t["dtype"] in names and "q_scale" not in t for t in expected["tensors"])


@pytest.mark.parametrize("case", [c for c in CASES if numpy_ready(c.expected)], ids=lambda c: c.id)
def test_load_as_numpy_gives_the_same_bytes(case):
    got = ckpt.load(case.path, framework="np")
    for want in case.expected["tensors"]:
        array = got[want["name"]]
        assert isinstance(array, np.ndarray)
        assert list(array.shape) == want["shape"]
        raw = np.ascontiguousarray(array).tobytes()
        assert hashlib.sha256(raw).hexdigest() == want["sha256"], want["name"]


@pytest.mark.parametrize("path", OK_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("framework", ["pt", "np"])
def test_safe_open_equals_safetensors(path, framework):
    with reference_open(str(path), framework=framework) as ref, ckpt.safe_open(path, framework=framework) as f:
        # The file's order, where safetensors sorts them.
        assert sorted(f.keys()) == sorted(ref.keys())
        assert (f.metadata() or None) == ref.metadata()
        for name in ref.keys():
            try:
                want = ref.get_tensor(name)
            except (TypeError, AttributeError):
                # safetensors' numpy reader has no bfloat16 or float4; ckpt's gives
                # ml_dtypes' bfloat16, and names what numpy cannot hold.
                assert framework == "np", name
                if f.dtype(name) == "float4_e2m1fn":
                    with pytest.raises(ckpt.UnsupportedError, match="float4_e2m1fn"):
                        f.get_tensor(name)
                    continue
                got = f.get_tensor(name)
                pt = ckpt.safe_open(path).get_tensor(name)
                assert np.ascontiguousarray(got).tobytes() == torch_view.raw_bytes(pt), name
                continue
            got = f.get_tensor(name)
            assert list(got.shape) == list(want.shape), name
            # The shape of the elements (two float4 to a byte in the tensor).
            assert list(f.shape(name)) == ref.get_slice(name).get_shape()
            assert f.get_slice(name).get_shape() == ref.get_slice(name).get_shape()
            if framework == "pt":
                assert got.dtype == want.dtype, name
                assert digest(got) == digest(want), name
            else:
                assert got.dtype == want.dtype, name
                assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes(), name


def test_a_key_selects_a_subtree_and_patterns_select_names():
    path = FIXTURES / "ok" / "torch" / "checkpoint-2.15-zip.pt"
    model = ckpt.load(path, key="model")
    full = ckpt.load(path)
    assert model and all(f"model.{n}" in full for n in model)
    assert all(torch.equal(t, full[f"model.{n}"]) for n, t in model.items())
    only = ckpt.load(path, key="model", include="*.weight", exclude="1.*")
    assert sorted(only) == sorted(n for n in model if n.endswith(".weight") and not n.startswith("1."))
    # Floating point tensors are cast; the integer counter keeps its dtype (as convert).
    half = ckpt.load(path, key="model", dtype=torch.float16)
    assert half["1.num_batches_tracked"].dtype == torch.int64
    for n, t in half.items():
        want = model[n].to(torch.float16) if model[n].is_floating_point() else model[n]
        assert t.dtype == want.dtype and torch.equal(t, want), n
    named = ckpt.load(path, key="model", dtype="bfloat16", framework="pt")
    assert {t.dtype for t in named.values()} == {torch.bfloat16, torch.int64}
    as_np = ckpt.load(path, key="model", dtype="float64", framework="np")
    assert {a.dtype for a in as_np.values()} == {np.dtype(np.float64), np.dtype(np.int64)}
    with pytest.raises(ValueError, match="framework='pt'"):
        ckpt.load(path, framework="np", device="cuda")


def test_a_tensor_outlives_its_handle_and_never_writes_the_file(tmp_path):
    source = FIXTURES / "ok" / "torch" / "checkpoint-2.15-zip.pt"
    path = tmp_path / "copy.pt"
    path.write_bytes(source.read_bytes())
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    f = ckpt.safe_open(path)
    tensor = f.get_tensor("model.0.weight")
    array = ckpt.load(path, framework="np")["model.0.weight"]
    del f
    gc.collect()
    expected = tensor.clone()
    assert torch.equal(tensor, expected)
    tensor.add_(1.0)
    array += 1.0
    assert torch.equal(tensor, expected + 1.0)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    again = ckpt.load(path)["model.0.weight"]
    assert torch.equal(again, expected)


@pytest.mark.parametrize("framework", ["pt", "np"])
def test_tensors_are_of_the_file_read_even_when_its_path_is_replaced(tmp_path, framework):
    """The tensors are views of the bytes ckpt read and judged: a file put at the path
    after opening (an attacker's or a new download's) is not what they show."""
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.arange(6, dtype=torch.float32)}, path)
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.full((6,), 7.0)}, other)
    with ckpt.safe_open(path, framework=framework) as f:
        os.replace(other, path)
        got = f.get_tensor("w")
    assert list(got.tolist()) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert ckpt.load(path, framework=framework)["w"].tolist() == [7.0] * 6


def test_metadata_and_formats_are_given():
    with ckpt.safe_open(FIXTURES / "ok" / "torch" / "checkpoint-2.15-zip.pt") as f:
        assert f.format() == "torch-zip"
        assert f.dtype("model.0.weight") == "float32"
        assert f.shape("model.0.weight") == (3, 4)
        with pytest.raises(KeyError):
            f.get_tensor("no.such.tensor")
        sliced = f.get_slice("model.0.weight")[1:3]
        assert torch.equal(sliced, f.get_tensor("model.0.weight")[1:3])


BAD_TORCH = sorted(FIXTURES / rel for rel in REJECTED_TORCH)
BAD_SAFETENSORS = sorted(FIXTURES / f"{name}.safetensors" for name in REJECTED)


@pytest.mark.parametrize("path", BAD_TORCH + BAD_SAFETENSORS, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_bad_files_raise_a_ckpt_error(path):
    with pytest.raises(ckpt.Error) as raised:
        ckpt.load(path)
    error = raised.value
    assert type(error) is not ckpt.Error, "a subclass names the kind"
    assert error.kind and error.path
    assert str(path) in str(error)


ATTACK_FILES = sorted(p for p in (FIXTURES / "attack").rglob("*")
                      if p.is_file() and not p.name.endswith((".json", ".md", ".py", ".txt")))


def test_the_attack_corpus_is_there():
    assert len(ATTACK_FILES) > 100


@pytest.mark.parametrize("path", ATTACK_FILES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_attack_files_run_nothing(path, capfd):
    try:
        ckpt.load(path)
    except ckpt.Error:
        pass
    out, err = capfd.readouterr()
    assert "ckpt-loader-marker" not in out + err
    assert not list(Path("/tmp").glob("ckpt-loader-marker-*")), "a payload touched a marker"


LOADER = FIXTURES / "attack" / "loader"
LOADER_CASES = json.loads((LOADER / "expected.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(LOADER_CASES))
def test_loader_bypasses_raise_dangerous_error_and_their_twins_run_nothing(name, capfd):
    """The payload of each bypass fixture is refused by name; its harmless twin (whose
    payload prints a marker when a victim loader runs it) prints nothing here."""
    case = LOADER_CASES[name]
    assert case["verdict"] == "dangerous", name
    with pytest.raises(ckpt.DangerousError) as raised:
        ckpt.load(LOADER / name)
    assert raised.value.kind == "dangerous"
    twin = LOADER / "twins" / name
    assert twin.exists(), twin
    try:
        ckpt.load(twin)
    except ckpt.Error:
        pass
    out, err = capfd.readouterr()
    assert case["marker"] not in out + err


def test_numpy_names_ml_dtypes_when_it_is_missing(monkeypatch):
    import sys

    path = FIXTURES / "ok" / "torch" / "dtypes-2.15-zip.pt"
    names = [t["name"] for t in json.loads((path.parent / (path.name + ".expected.json")).read_text())["tensors"]
             if t["dtype"] == "bfloat16"]
    assert names
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)
    with pytest.raises(ckpt.UnsupportedError, match="ml_dtypes"):
        ckpt.safe_open(path, framework="np").get_tensor(names[0])


def test_limits_are_named_and_raised():
    assert "depth" in ckpt.limits()
    path = FIXTURES / "ok" / "torch" / "checkpoint-2.15-zip.pt"
    with pytest.raises(ckpt.LimitExceededError) as raised:
        ckpt.load(path, limits={"depth": 2})
    assert "depth" in str(raised.value)
    assert ckpt.load(path, limits={"depth": 300})


def same_value(ours, theirs, where: str, tensors: list, known: dict) -> None:
    """`ours` is what `theirs` (torch.load's) is: the same types, in the same order,
    floats bit for bit, tensors with equal dtype, shape and bytes. `known`: the bytes of
    the tensors torch.load reads wrong (expected.json's `torch_load_differs`), by name."""
    if isinstance(theirs, torch.Tensor) or isinstance(theirs, np.ndarray):
        assert isinstance(ours, torch.Tensor), where
        if isinstance(theirs, torch.Tensor):
            assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, where
            tensors.append((ours, theirs))
        name = where.lstrip(".")
        assert digest(ours) == known.get(name, digest(theirs)), where
        return
    assert type(ours) is type(theirs), f"{where}: {type(ours).__name__} is not {type(theirs).__name__}"
    if isinstance(theirs, dict):
        assert list(ours) == list(theirs), where
        for key in theirs:
            same_value(ours[key], theirs[key], f"{where}.{key}", tensors, known)
    elif isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs)):
            same_value(a, b, f"{where}.{i}", tensors, known)
    elif isinstance(theirs, float):
        assert struct.pack("<d", ours) == struct.pack("<d", theirs), where
    else:
        assert ours == theirs, where


WEIGHTS_ONLY = [c for c in CASES if torch_view.weights_only_loads(c.path)]


def test_weights_only_cases_are_many():
    assert len(WEIGHTS_ONLY) > 30


@pytest.mark.parametrize("case", WEIGHTS_ONLY, ids=lambda c: c.id)
def test_load_checkpoint_equals_torch_load_weights_only(case):
    theirs = torch.load(case.path, weights_only=True, map_location="cpu")
    ours = ckpt.load_checkpoint(case.path)
    tensors: list = []
    if _is_module(case):
        theirs = theirs.state_dict()
    differs = set(case.expected.get("torch_load_differs", []))
    known = {t["name"]: t["sha256"] for t in case.expected["tensors"] if t["name"] in differs}
    same_value(ours, theirs, "", tensors, known)
    # Tensors of one storage in torch.load's result share memory here too.
    storage_of = {}
    for a, b in tensors:
        if b.untyped_storage().nbytes():
            storage_of.setdefault(b.untyped_storage().data_ptr(), set()).add(a.untyped_storage().data_ptr())
    assert all(len(ours) == 1 for ours in storage_of.values())


def test_load_checkpoint_reads_what_weights_only_refuses():
    frameworks = FIXTURES / "ok" / "frameworks"
    path = next((frameworks / "lightning").rglob("*.ckpt"))
    ours = ckpt.load_checkpoint(path)
    with pytest.raises(Exception):
        torch.load(path, weights_only=True)
    theirs = torch.load(path, weights_only=False)
    assert list(ours) == list(theirs)
    for name, tensor in theirs["state_dict"].items():
        assert torch.equal(ours["state_dict"][name], tensor), name
    module = ckpt.load_checkpoint(FIXTURES / "ok" / "torch" / "module-2.15-zip.pt")
    assert isinstance(module, OrderedDict) and module
    hyper = ours["hyper_parameters"]
    assert isinstance(hyper, (dict, ckpt.Object)), hyper


@pytest.mark.parametrize("folder", DCP_FIXTURES, ids=lambda p: p.name)
def test_load_of_a_dcp_folder_equals_what_dcp_loads(folder):
    assert_bitwise_equal(ckpt.load(folder), dcp_load(folder))


@pytest.mark.parametrize("kind", ["safetensors", "bin"])
def test_load_of_shards_equals_the_shards_merged(kind):
    folder = FIXTURES / "ok" / "shards" / kind
    want = hf_load(folder)
    assert_bitwise_equal(ckpt.load(folder), want)
    index = next(folder.glob("*.index.json"))
    assert_bitwise_equal(ckpt.load(index), want)
    with ckpt.safe_open(folder, framework="np") as f:
        assert sorted(f.keys()) == sorted(want)
        for name, tensor in want.items():
            if tensor.dtype != torch.bfloat16:
                assert np.array_equal(f.get_tensor(name), tensor.numpy()), name


def test_convert_writes_what_save_file_writes(tmp_path):
    from safetensors.torch import save_file

    source = FIXTURES / "ok" / "torch" / "checkpoint-2.15-zip.pt"
    out = tmp_path / "model.safetensors"
    report = ckpt.convert(source, out, key="model")
    assert report["files"] == [(out, out.stat().st_size)]
    reference = tmp_path / "reference.safetensors"
    model = torch.load(source, weights_only=True)["model"]
    save_file({k: v.contiguous() for k, v in model.items()}, str(reference), metadata={"format": "pt"})
    assert out.read_bytes() == reference.read_bytes()
    pth = tmp_path / "model.pth"
    ckpt.convert(source, pth, include="model.*", strip_prefix="model.")
    loaded = torch.load(pth, weights_only=True)
    assert list(loaded) == list(model)
    assert all(torch.equal(loaded[k], v) for k, v in model.items())
    with pytest.raises(ckpt.OutputExistsError):
        ckpt.convert(source, pth, include="model.*")
    with pytest.raises(ckpt.InvalidError):
        ckpt.convert(source, tmp_path / "model.unknown")
    shards = tmp_path / "shards"
    report = ckpt.convert(source, shards, to="safetensors", key="model", max_shard_size="100B")
    assert len(report["files"]) > 2
    assert_bitwise_equal(ckpt.load(shards), {k: v for k, v in model.items()})


SAVE_CASES = [c for c in CASES if c.expected["kind"] == "state-dict"
              and all("q_scale" not in t for t in c.expected["tensors"])]


@pytest.mark.parametrize("case", SAVE_CASES, ids=lambda c: c.id)
def test_save_is_byte_identical_to_save_file_and_loads_in_torch(case, tmp_path):
    from safetensors.torch import save_file

    tensors = dict(torch_view.flatten(torch_view.load_full(case.path))[0])
    tensors = {k: v for k, v in tensors.items() if isinstance(v, torch.Tensor)}
    writable = {k: v for k, v in tensors.items() if torch_view.dtype_name(v.dtype) in SAFETENSORS_DTYPES}
    if writable and not shares_memory(writable):
        ours, theirs = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors"
        contiguous = {k: v.contiguous() for k, v in writable.items()}
        ckpt.save(contiguous, ours, metadata={"format": "pt"})
        save_file(contiguous, str(theirs), metadata={"format": "pt"})
        assert ours.read_bytes() == theirs.read_bytes()
    pth = tmp_path / "ours.pth"
    ckpt.save(tensors, pth)
    loaded = torch.load(pth, weights_only=True)
    assert list(loaded) == list(tensors)
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype and loaded[name].shape == tensor.shape, name
        assert digest(loaded[name]) == digest(tensor), name
    # Tensors of one storage in the source share one in the output.
    groups = torch_view.shared_groups(list(tensors.items()))
    assert torch_view.shared_groups(list(loaded.items())) == groups


def shares_memory(tensors: dict) -> bool:
    return bool(torch_view.shared_groups(list(tensors.items())))


def test_save_numpy_arrays_and_shards(tmp_path):
    arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.arange(5, dtype=np.int64),
              "t": np.arange(6, dtype=np.float64).reshape(2, 3).T}
    out = tmp_path / "arrays.safetensors"
    ckpt.save(arrays, out)
    with reference_open(str(out), framework="np") as f:
        for name, array in arrays.items():
            assert np.array_equal(f.get_tensor(name), array), name
    shards = tmp_path / "shards"
    report = ckpt.save({f"w{i}": torch.full((64,), float(i)) for i in range(8)}, shards,
                       max_shard_size="600B")
    assert len(report["files"]) > 2
    loaded = ckpt.load(shards)
    assert sorted(loaded) == [f"w{i}" for i in range(8)]
    assert all(torch.equal(loaded[f"w{i}"], torch.full((64,), float(i))) for i in range(8))
    with pytest.raises(ckpt.InvalidError):
        ckpt.save(arrays, tmp_path / "arrays.unknown")
    before = out.read_bytes()
    ckpt.save({"x": torch.zeros(2)}, out)
    assert out.read_bytes() != before, "an existing output is replaced, as save_file does"


@pytest.mark.parametrize("name", ["ok/torch/checkpoint-2.15-zip.pt", "ok/tiny-mlp.safetensors",
                                  "ok/shards/bin", "ok/torch/module_tied-2.15-zip.pt"])
def test_inspect_is_what_the_cli_prints(name):
    from support import run_ckpt

    path = FIXTURES / name
    cli = run_ckpt("inspect", "--json", "--hash", path)
    assert cli.returncode == 0, cli.stderr
    assert ckpt.inspect(path, hashes=True) == json.loads(cli.stdout)
    assert "sha256" not in ckpt.inspect(path)["tensors"][0]


def test_scan_is_what_the_cli_prints():
    from support import run_ckpt

    paths = [FIXTURES / "attack" / "torch", FIXTURES / "ok" / "torch" / "checkpoint-2.15-zip.pt"]
    cli = run_ckpt("scan", "--json", *paths)
    assert cli.returncode == 1, cli.stderr
    report = ckpt.scan(paths)
    assert report == json.loads(cli.stdout)
    assert report["summary"]["dangerous"] >= 5
    assert ckpt.scan(paths[1])["files"][0]["verdict"] == "safe"


def _without_seconds(report: dict) -> dict:
    return {k: v for k, v in report.items() if k != "seconds"}


def test_diff_is_what_the_cli_prints(tmp_path):
    from support import run_ckpt

    a = FIXTURES / "ok" / "torch" / "checkpoint-2.15-zip.pt"
    tensors = {name: t.clone() for name, t in ckpt.load(a).items()}
    tensors["model.0.weight"][0, 0] += 0.5
    dropped = sorted(tensors)[-1]
    del tensors[dropped]
    b = tmp_path / "b.safetensors"
    ckpt.save(tensors, b)
    cli = run_ckpt("diff", "--json", "--atol", "1e-3", a, b)
    assert cli.returncode == 1, cli.stderr
    report = ckpt.diff(a, b, atol=1e-3)
    assert _without_seconds(report) == _without_seconds(json.loads(cli.stdout))
    assert report["equal"] is False
    assert report["only_in_a"] == [dropped]
    row = next(t for t in report["tensors"] if t["name"] == "model.0.weight")
    assert row["status"] == "differ"
    assert row["differences"]["count"] == 1 and row["differences"]["first_index"] == [0, 0]
    assert row["differences"]["max_abs"] == pytest.approx(0.5)
    # Names matched through a prefix stripped on one side only: equal.
    prefixed = tmp_path / "prefixed.safetensors"
    ckpt.save({f"module.{k}": v for k, v in ckpt.load(a).items()}, prefixed)
    same = ckpt.diff(a, prefixed, strip_prefix_b="module.")
    assert same["equal"] is True and same["summary"]["compared"] == len(ckpt.load(a))
    with pytest.raises(ckpt.InvalidError):
        ckpt.diff(a, b, atol=-1.0)
    with pytest.raises(ckpt.FileError):
        ckpt.diff(a, tmp_path / "missing.pt")


def test_verify_is_what_the_cli_prints(tmp_path):
    from support import run_ckpt

    good = FIXTURES / "ok" / "torch" / "checkpoint-2.15-zip.pt"
    holed = FIXTURES / "bad" / "hole_between_tensors.safetensors"
    cli = run_ckpt("verify", "--json", good, holed, tmp_path / "missing.pt")
    report = ckpt.verify([good, holed, tmp_path / "missing.pt"])
    assert report == json.loads(cli.stdout)
    assert [f["status"] for f in report["files"]] == ["sound", "problems", "error"]
    assert report["files"][1]["problems"][0]["rule"].startswith("st.")
    # A manifest written by the CLI, checked here: sound for the file, problems for another.
    manifest = tmp_path / "m.json"
    written = run_ckpt("verify", "--hash", manifest, good)
    assert written.returncode == 0, written.stderr
    checked = ckpt.verify(good, manifest=manifest)
    assert checked["manifest"]["action"] == "checked"
    assert checked["files"][0]["status"] == "sound"
    assert checked["files"][0]["tensors_hashed"] == checked["manifest"]["tensors"] > 0
    changed = {name: t.clone() for name, t in ckpt.load(good).items()}
    changed["model.0.weight"][0, 0] += 1.0
    other = tmp_path / "other.safetensors"
    ckpt.save(changed, other)
    cli = run_ckpt("verify", "--json", "--manifest", manifest, other)
    report = ckpt.verify(other, manifest=manifest)
    assert report == json.loads(cli.stdout)
    assert [p["rule"] for p in report["files"][0]["problems"]] == ["manifest.sha256"]


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_save_without_sync_writes_the_same_bytes(tmp_path, suffix):
    tensors = {"a": torch.arange(12, dtype=torch.float32).reshape(3, 4), "b": torch.ones(5, dtype=torch.int64)}
    # One name in two folders: a .pt names its records after the file.
    (tmp_path / "synced").mkdir()
    (tmp_path / "unsynced").mkdir()
    synced, unsynced = tmp_path / "synced" / f"model{suffix}", tmp_path / "unsynced" / f"model{suffix}"
    ckpt.save(tensors, synced)
    ckpt.save(tensors, unsynced, sync=False)
    assert synced.read_bytes() == unsynced.read_bytes()
    for folder in ("synced", "unsynced"):
        assert [p.name for p in (tmp_path / folder).iterdir()] == [f"model{suffix}"], "a temporary file was left"


SLICES = [1, -1, 0, slice(1, 3), slice(None, None, 2), slice(-2, None), (slice(0, 2), 0),
          (1, Ellipsis), slice(None, None, -1), Ellipsis, slice(5, 1)]


@pytest.mark.parametrize("framework", ["pt", "np"])
@pytest.mark.parametrize("path", [FIXTURES / "ok" / "torch" / "big_endian_dtypes-2.15-zip.pt",
                                  FIXTURES / "ok" / "dcp" / "sharded-2.15"], ids=lambda p: p.name)
def test_get_slice_of_produced_tensors_reads_the_rows_asked_for(path, framework):
    """Tensors that cannot be mapped (byte-swapped, assembled from DCP chunks) are produced
    for the rows selected only, and equal the whole tensor indexed."""
    with ckpt.safe_open(path, framework=framework) as f:
        produced = [name for name in f.keys()
                    if f._handle.plan(name)[2] is None or f._handle.plan(name)[2][0] is None]
        produced = [name for name in produced if len(f.shape(name)) >= 1 and f.shape(name)[0] >= 3
                    and f.dtype(name) not in ("float4_e2m1fn",) and (framework == "pt" or f.dtype(name) in (
                        "float32", "float64", "int64", "int32", "int16", "float16", "uint8", "int8", "bool",
                        "complex64", "complex128"))]
        assert produced, "no produced tensor to slice"

        class Counting:
            """The handle, counting the rows it is asked to produce."""

            def __init__(self, handle):
                self.handle, self.rows = handle, 0

            def __getattr__(self, attr):
                return getattr(self.handle, attr)

            def read_rows(self, name, start, count):
                self.rows += count
                return self.handle.read_rows(name, start, count)

        f._handle = counting = Counting(f._handle)
        for name in produced:
            whole = f.get_tensor(name)
            for index in SLICES:
                if isinstance(index, slice) and index.step == -1 and framework == "pt":
                    continue  # torch has no negative steps
                try:
                    want = whole[index]
                except IndexError:
                    with pytest.raises(IndexError):
                        f.get_slice(name)[index]
                    continue
                got = f.get_slice(name)[index]
                assert got.shape == want.shape, (name, index)
                if framework == "pt":
                    assert torch.equal(got.contiguous().view(torch.uint8) if got.dim() else got.reshape(1).view(torch.uint8),
                                       want.contiguous().view(torch.uint8) if want.dim() else want.reshape(1).view(torch.uint8)), (name, index)
                else:
                    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes(), (name, index)
        # Rows were produced for the slices, not whole tensors: one row for an int, two for 1:3...
        assert 0 < counting.rows < sum(f.shape(n)[0] for n in produced) * len(SLICES)


def test_a_device_receives_each_tensor():
    """device= moves tensor by tensor (CUDA where torch has it; "meta" runs everywhere)."""
    path = FIXTURES / "ok" / "torch" / "checkpoint-2.15-zip.pt"
    cpu = ckpt.load(path)
    meta = ckpt.load(path, device="meta")
    assert list(meta) == list(cpu)
    for name, tensor in meta.items():
        assert tensor.device.type == "meta", name
        assert (tensor.shape, tensor.dtype) == (cpu[name].shape, cpu[name].dtype), name
    tree = ckpt.load_checkpoint(path, device="meta")
    assert tree["model"]["0.weight"].device.type == "meta"
    with ckpt.safe_open(path, device="meta") as f:
        assert f.get_tensor("model.0.weight").device.type == "meta"
        assert f.get_slice("model.0.weight")[0].device.type == "meta"


def test_stats_is_what_the_cli_prints(tmp_path):
    from support import run_ckpt

    path = FIXTURES / "ok" / "torch" / "checkpoint-2.15-zip.pt"
    cli = run_ckpt("stats", "--json", "--bins", "8", "--exclude", "*.bias", path)
    assert cli.returncode in (0, 1), cli.stderr
    report = ckpt.stats(path, bins=8, exclude="*.bias")
    assert report == json.loads(cli.stdout)
    assert all(not t["name"].endswith(".bias") for t in report["tensors"])
    assert len(report["tensors"][0]["histogram"]["counts"]) == 8
    # A NaN and an all-zero weight are flagged; an all-zero integer counter only noted.
    broken = tmp_path / "broken.safetensors"
    ckpt.save({"w": torch.tensor([1.0, float("nan")]), "z": torch.zeros(3), "n": torch.zeros(1, dtype=torch.int64)}, broken)
    flags = {t["name"]: t["flags"] for t in ckpt.stats(broken)["tensors"]}
    assert flags == {"w": ["nan"], "z": ["all-zero"], "n": ["all-zero"]}
    assert ckpt.stats(broken)["summary"]["flagged"] == 2
    assert ckpt.stats(broken, flag_zero="none")["summary"]["flagged"] == 1
    with pytest.raises(ckpt.InvalidError, match="flag_zero"):
        ckpt.stats(broken, flag_zero="some")


def test_save_tells_the_format_from_the_name_as_convert_does(tmp_path):
    tensors = {"w": torch.ones(2)}
    with pytest.raises(ckpt.InvalidError, match="cannot tell the format"):
        ckpt.save(tensors, tmp_path / "model.npz")
    ckpt.save(tensors, tmp_path / "MODEL.PTH")
    assert torch.load(tmp_path / "MODEL.PTH", weights_only=True)["w"].tolist() == [1.0, 1.0]
    ckpt.save(tensors, tmp_path / "model.npz", format="safetensors")
    assert ckpt.safe_open(tmp_path / "model.npz").format() == "safetensors"
    # A folder of shards is safetensors unless a format is given.
    ckpt.save(tensors, tmp_path / "sharded", max_shard_size="1KB")
    assert ckpt.load(tmp_path / "sharded")["w"].tolist() == [1.0, 1.0]
