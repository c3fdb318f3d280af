"""`ckpt convert` to safetensors: exact save_file bytes, and refusal to clobber files."""

from __future__ import annotations

import pytest
from safetensors.torch import load_file, save_file

from support import (
    FIXTURES,
    OK_FILES,
    REJECTED,
    assert_bitwise_equal,
    assert_clean_error,
    assert_success,
    header_len,
    header_pairs,
    metadata_of,
    run_ckpt,
    write_safetensors,
)

TINY = FIXTURES / "ok" / "tiny-mlp.safetensors"


def resave(src, dst):
    """What the reference writes for the same tensors and metadata."""
    save_file(load_file(str(src)), str(dst), metadata=metadata_of(src))


def check_convert(src, tmp_path):
    out = tmp_path / "out.safetensors"
    assert_success(run_ckpt("convert", src, out))
    assert_bitwise_equal(load_file(str(out)), load_file(str(src)))
    assert (metadata_of(out) or {}) == (metadata_of(src) or {})
    ref = tmp_path / "ref.safetensors"
    resave(src, ref)
    metadata = metadata_of(src) or {}
    if len(metadata) <= 1:
        assert out.read_bytes() == ref.read_bytes(), "not byte-identical to save_file"
    else:
        # save_file orders metadata keys randomly; ckpt sorts them. Everything else is equal.
        got, want = header_pairs(out), header_pairs(ref)
        got_meta = dict(got)["__metadata__"]
        assert [k for k, _ in got_meta] == sorted(metadata), "metadata keys are not sorted"
        assert dict(got_meta) == metadata
        assert [k for k, _ in got] == [k for k, _ in want]
        assert {k: v for k, v in got if k != "__metadata__"} == {k: v for k, v in want if k != "__metadata__"}
        assert header_len(out) == header_len(ref)
        assert out.read_bytes()[8 + header_len(out):] == ref.read_bytes()[8 + header_len(ref):]
    return out


@pytest.mark.parametrize("path", OK_FILES, ids=lambda p: p.name)
def test_convert_ok_fixture(path, tmp_path):
    check_convert(path, tmp_path)


def _reordered(tmp_path, *, lead: int = 0):
    """tiny-mlp with its header entries in reverse order (valid: readers sort by offsets)."""
    src = tmp_path / "reordered.safetensors"
    pairs = header_pairs(TINY)
    n = header_len(TINY)
    data = TINY.read_bytes()[8 + n :]
    write_safetensors(src, [(k, dict(v) if k != "__metadata__" else v) for k, v in reversed(pairs)], data, lead=lead)
    load_file(str(src))  # the reference accepts it
    return src


def test_convert_canonicalizes_header_order(tmp_path):
    src = _reordered(tmp_path)
    (tmp_path / "c").mkdir()
    out = check_convert(src, tmp_path / "c")
    assert out.read_bytes() == TINY.read_bytes() != src.read_bytes()


def test_convert_accepts_leading_whitespace_like_the_reference(tmp_path):
    # The reference reader accepts JSON whitespace before the header object (formats.md 7.2).
    src = _reordered(tmp_path, lead=3)
    (tmp_path / "c").mkdir()
    out = check_convert(src, tmp_path / "c")
    assert out.read_bytes() == TINY.read_bytes()


@pytest.mark.parametrize("rel", sorted(REJECTED))
def test_convert_rejects_cleanly(rel, tmp_path):
    out = tmp_path / "out.safetensors"
    assert_clean_error(run_ckpt("convert", FIXTURES / rel, out, timeout=30))
    assert not out.exists(), "a failed convert must not leave an output file"


# --------------------------------------------------------------------------------------------
# Overwrite and same-file refusal
# --------------------------------------------------------------------------------------------


def fingerprint(path):
    st = path.stat()
    return path.read_bytes(), st.st_ino, st.st_mtime_ns, st.st_size


def test_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "out.safetensors"
    out.write_bytes(b"keep me")
    before = fingerprint(out)
    assert_clean_error(run_ckpt("convert", TINY, out))
    assert fingerprint(out) == before


def test_overwrites_with_force(tmp_path):
    out = tmp_path / "out.safetensors"
    out.write_bytes(b"replace me")
    assert_success(run_ckpt("convert", TINY, out, "--force"))
    assert out.read_bytes() == TINY.read_bytes()  # save_file output converts to itself


@pytest.fixture
def noncanonical_input(tmp_path):
    """A valid input whose conversion differs from it, so any write to it would show.

    Two metadata keys in reverse-sorted order: exactly what save_file writes about half the
    time; ckpt sorts them, so its output differs from this input.
    """
    src = tmp_path / "in.safetensors"
    tensors = {k: v for k, v in header_pairs(TINY) if k != "__metadata__"}
    n = header_len(TINY)
    pairs = [("__metadata__", [("format", "pt"), ("comment", "reverse-sorted keys")])]
    pairs += [(k, dict(v)) for k, v in tensors.items()]
    write_safetensors(src, pairs, TINY.read_bytes()[8 + n :])
    assert_bitwise_equal(load_file(str(src)), load_file(str(TINY)))
    return src


@pytest.mark.parametrize("force", [(), ("--force",)], ids=["plain", "force"])
def test_refuses_same_file(noncanonical_input, force):
    before = fingerprint(noncanonical_input)
    assert_clean_error(run_ckpt("convert", noncanonical_input, noncanonical_input, *force))
    assert fingerprint(noncanonical_input) == before


def test_refuses_same_file_spelled_differently(noncanonical_input, tmp_path):
    (tmp_path / "sub").mkdir()
    alias = tmp_path / "sub" / ".." / noncanonical_input.name
    before = fingerprint(noncanonical_input)
    assert_clean_error(run_ckpt("convert", noncanonical_input, alias, "--force"))
    assert fingerprint(noncanonical_input) == before


def test_refuses_same_file_relative_path(noncanonical_input, tmp_path):
    before = fingerprint(noncanonical_input)
    name = noncanonical_input.name
    assert_clean_error(run_ckpt("convert", name, f"./{name}", "--force", cwd=tmp_path))
    assert fingerprint(noncanonical_input) == before


def test_symlink_to_input_never_damages_input(noncanonical_input, tmp_path):
    link = tmp_path / "link.safetensors"
    link.symlink_to(noncanonical_input)
    before = noncanonical_input.read_bytes()
    proc = run_ckpt("convert", noncanonical_input, link, "--force")
    # Refusing (2) or replacing the link itself (0) are both acceptable; corrupting IN is not.
    assert proc.returncode in (0, 2)
    assert b"panicked at" not in proc.stderr
    assert noncanonical_input.read_bytes() == before
