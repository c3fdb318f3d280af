"""`ckpt verify` against live torch: what torch.save and safetensors write is sound, the
defects verify calls errors are ones torch.load fails on (or, for CRCs, silently loads
wrong), and manifest hashes are those of the tensors torch loads."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from support import FIXTURES, describe, run_ckpt, sha256_of


def verify(*args) -> tuple[int, dict]:
    proc = run_ckpt("verify", "--json", *args)
    assert "panicked at" not in proc.stderr.decode("utf-8", "replace"), describe(proc)
    return proc.returncode, json.loads(proc.stdout)


def rules(report: dict) -> list[str]:
    return [p["rule"] for f in report["files"] for p in f["problems"]]


def state_dict() -> dict:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    sd = model.state_dict()
    sd["view"] = sd["0.weight"][:, 1]  # a strided view sharing the storage
    sd["half"] = torch.arange(6, dtype=torch.float16).reshape(2, 3)
    return sd


@pytest.mark.parametrize("how", ["zip", "legacy", "no-crc"])
def test_what_torch_save_writes_is_sound(tmp_path, how):
    path = tmp_path / "m.pt"
    if how == "no-crc":
        torch.serialization.set_crc32_options(False)
        try:
            torch.save(state_dict(), path)
        finally:
            torch.serialization.set_crc32_options(True)
    else:
        torch.save(state_dict(), path, _use_new_zipfile_serialization=how == "zip")
    code, report = verify(path)
    assert code == 0, report
    assert report["files"][0]["status"] == "sound"


def test_what_safetensors_writes_is_sound(tmp_path):
    path = tmp_path / "m.safetensors"
    sd = {k: v.contiguous().clone() for k, v in state_dict().items()}
    save_file(sd, path, metadata={"format": "pt"})
    code, report = verify(path)
    assert code == 0, report


def test_a_flipped_bit_loads_in_torch_but_fails_the_crc(tmp_path):
    path = tmp_path / "m.pt"
    torch.save({"w": torch.zeros(16)}, path)
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.endswith("/data/0"))
    data = bytearray(path.read_bytes())
    local = info.header_offset
    start = local + 30 + int.from_bytes(data[local + 26 : local + 28], "little") + int.from_bytes(
        data[local + 28 : local + 30], "little"
    )
    data[start + 3] ^= 0x40
    path.write_bytes(bytes(data))
    # torch does not check CRCs: it loads the damaged value without a word.
    loaded = torch.load(path, weights_only=True)
    assert loaded["w"][0].item() != 0.0
    code, report = verify(path)
    assert code == 1
    assert rules(report) == ["zip.crc"]


def rewrite(src: Path, dst: Path, edit) -> None:
    """Copies a zip record by record through `edit(name, data) -> data or None`."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = edit(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info.filename, data)


@pytest.mark.parametrize(
    "name, edit, rule",
    [
        ("byteorder", lambda n, d: b"middle" if n.endswith("/byteorder") else d, "torch.byteorder"),
        ("no-version", lambda n, d: None if n.endswith("/version") else d, "torch.version"),
        ("short-record", lambda n, d: d[:-4] if n.endswith("/data/0") else d, "torch.storage-size"),
        ("no-record", lambda n, d: None if n.endswith("/data/1") else d, "torch.storage-missing"),
    ],
)
def test_planted_errors_are_ones_torch_load_fails_on(tmp_path, name, edit, rule):
    good = tmp_path / "good.pt"
    torch.save(state_dict(), good)
    bad = tmp_path / f"{name}.pt"
    rewrite(good, bad, edit)
    with pytest.raises(Exception):
        torch.load(bad, weights_only=True)
    code, report = verify(bad)
    assert code == 1
    assert rules(report) == [rule]
    assert report["files"][0]["problems"][0]["severity"] == "error"


@pytest.mark.parametrize(
    "rel, rule",
    [
        ("bad/torch/record_size_mismatch.pt", "torch.storage-size"),
        ("bad/torch/missing_data_record.pt", "torch.storage-missing"),
        ("bad/torch/missing_version_record.pt", "torch.version"),
        ("bad/torch/version_11.pt", "torch.version"),
        ("bad/torch/storage_offset_past_end.pt", "torch.view-bounds"),
        ("bad/torch/stride_past_end.pt", "torch.view-bounds"),
        ("bad/torch/stray_top_level_file.pt", "zip.layout"),
        ("bad/torch/truncated_legacy.pt", "legacy.storage-missing"),
        ("bad/torch/legacy_numel_mismatch.pt", "legacy.storage-size"),
    ],
)
def test_committed_defects_fail_torch_load_too(rel, rule):
    with pytest.raises(Exception):
        torch.load(FIXTURES / rel, weights_only=False)
    code, report = verify(FIXTURES / rel)
    assert code == 1
    assert rules(report) == [rule]


def test_manifest_hashes_are_those_of_the_tensors_torch_loads(tmp_path):
    path = tmp_path / "m.pt"
    sd = state_dict()
    torch.save(sd, path)
    proc = run_ckpt("verify", "--hash", tmp_path / "manifest.json", path)
    assert proc.returncode == 0, describe(proc)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["ckpt_manifest"] == 1
    loaded = torch.load(path, weights_only=True)
    got = {t["name"]: t for t in manifest["tensors"]}
    assert list(got) == list(loaded)
    for name, tensor in loaded.items():
        assert got[name]["sha256"] == sha256_of(tensor), name
        assert got[name]["shape"] == list(tensor.shape)
        assert got[name]["dtype"] == str(tensor.dtype).removeprefix("torch.")
    # The same tensors written by safetensors match; one changed element does not.
    st = tmp_path / "m.safetensors"
    save_file({k: v.contiguous().clone() for k, v in loaded.items()}, st)
    code, _ = verify("--manifest", tmp_path / "manifest.json", st)
    assert code == 0
    changed = {k: v.contiguous().clone() for k, v in loaded.items()}
    changed["half"][1, 2] += 1
    save_file(changed, st)
    code, report = verify("--manifest", tmp_path / "manifest.json", st)
    assert code == 1
    assert [(p["rule"], p["tensor"]) for p in report["files"][0]["problems"]] == [("manifest.sha256", "half")]
