"""`ckpt convert` of PyTorch files to safetensors, checked against live torch.load."""

from __future__ import annotations

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from support import FIXTURES, assert_clean_error, assert_success, raw_bytes, run_ckpt, sha256_of
from support_torch import OK_CASES, REJECTED_TORCH, SAFETENSORS_DTYPES, convertible, live_tensors, venv_cases

CONVERTIBLE = [c for c in OK_CASES if convertible(c.expected)]
NOT_CONVERTIBLE = [c for c in OK_CASES if not convertible(c.expected)]


def check_converted(case, out, stderr: str) -> None:
    expected = case.expected
    converted = load_file(str(out))
    names = [t["name"] for t in expected["tensors"]]
    assert sorted(converted) == sorted(names)
    live = live_tensors(case.path)
    differs = set(expected.get("torch_load_differs", []))
    for want in expected["tensors"]:
        name = want["name"]
        t = converted[name]
        assert str(t.dtype).removeprefix("torch.") == want["dtype"], name
        assert list(t.shape) == want["shape"], name
        assert t.is_contiguous(), name
        assert sha256_of(t) == want["sha256"], f"{name}: bytes differ from expected.json"
        if name not in differs:
            ref = live[name]
            assert str(ref.dtype) == str(t.dtype) and ref.shape == t.shape, name
            assert raw_bytes(ref) == raw_bytes(t), f"{name}: bytes differ from torch.load"
    if expected["values"]:
        # Run with -v: every value is named (without it, the first few and a count).
        assert "warning" in stderr.lower(), stderr
        assert f"{len(expected['values'])} plain value" in stderr, stderr
        for value in expected["values"]:
            assert value["name"] in stderr, f"plain value {value['name']!r} not listed on stderr"


@pytest.mark.parametrize("case", CONVERTIBLE, ids=lambda c: c.id)
def test_convert_matches_torch_load(case, tmp_path):
    out = tmp_path / "out.safetensors"
    proc = run_ckpt("convert", "-v", case.path, out, timeout=300)
    assert_success(proc)
    check_converted(case, out, proc.stderr.decode("utf-8", "replace"))


def test_convert_real_files_from_the_venv(tmp_path):
    for case in venv_cases():
        assert convertible(case.expected)
        out = tmp_path / (case.path.name + ".safetensors")
        proc = run_ckpt("convert", "-v", case.path, out, timeout=300)
        assert_success(proc)
        check_converted(case, out, proc.stderr.decode("utf-8", "replace"))


@pytest.mark.parametrize("case", NOT_CONVERTIBLE, ids=lambda c: c.id)
def test_convert_refuses_dtypes_safetensors_cannot_hold(case, tmp_path):
    out = tmp_path / "out.safetensors"
    proc = run_ckpt("convert", case.path, out)
    assert_clean_error(proc)
    assert not out.exists(), "a failed convert must leave no output"
    stderr = proc.stderr.decode("utf-8", "replace")
    for t in case.expected["tensors"]:
        if t["dtype"] not in SAFETENSORS_DTYPES:
            assert t["name"] in stderr, f"{t['name']!r} ({t['dtype']}) not named in the error"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("rel", sorted(REJECTED_TORCH))
def test_convert_rejects_cleanly(rel, tmp_path):
    out = tmp_path / "out.safetensors"
    proc = run_ckpt("convert", FIXTURES / rel, out, timeout=30, cwd=tmp_path)
    assert_clean_error(proc)
    assert list(tmp_path.iterdir()) == [], "no output, no temporary file, no payload marker"


@pytest.mark.parametrize("case", CONVERTIBLE, ids=lambda c: c.id)
def test_convert_is_byte_identical_to_save_file(case, tmp_path):
    """A torch source written as safetensors is, byte for byte, what `save_file` writes for
    the tensors torch.load returns (with the `format = pt` metadata transformers expects)."""
    if case.expected.get("torch_load_differs"):
        pytest.skip("torch.load returns other values than the file holds for some tensors")
    out = tmp_path / "out.safetensors"
    assert_success(run_ckpt("convert", case.path, out, timeout=300))
    reference = tmp_path / "reference.safetensors"
    tensors = {name: t.contiguous().clone() for name, t in live_tensors(case.path).items()}
    save_file(tensors, str(reference), metadata={"format": "pt"})
    assert out.read_bytes() == reference.read_bytes()


@pytest.mark.parametrize("path", sorted((FIXTURES / "ok").glob("*.safetensors")), ids=lambda p: p.name)
def test_safetensors_rewritten_is_save_file_of_it(path, tmp_path):
    """safetensors to safetensors: the file `save_file` wrote (every ok fixture was), byte for
    byte, with its metadata or none; and what a fresh `save_file` writes of the same tensors
    when the metadata has at most one key (safetensors keeps metadata in a hash map, so the
    order of several keys is its choice, not a rule)."""
    out = tmp_path / "out.safetensors"
    assert_success(run_ckpt("convert", path, out))
    assert out.read_bytes() == path.read_bytes()
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
    if metadata is not None and len(metadata) > 1:
        return
    reference = tmp_path / "reference.safetensors"
    try:
        save_file(load_file(str(path)), str(reference), metadata=metadata)
    except Exception as error:  # dtypes torch cannot hold (F4, F6): nothing to compare with
        pytest.skip(f"save_file cannot write it: {error}")
    assert out.read_bytes() == reference.read_bytes()
