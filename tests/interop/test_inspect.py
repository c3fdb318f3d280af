"""`ckpt inspect` against the live reference, and its errors on malformed files."""

from __future__ import annotations

import pytest

from support import (
    FIXTURES,
    OK_FILES,
    REJECTED,
    assert_clean_error,
    assert_success,
    check_inspect,
    inspect_json,
    run_ckpt,
)


@pytest.mark.parametrize("path", OK_FILES, ids=lambda p: p.name)
def test_inspect_hash_matches_reference(path):
    check_inspect(path, inspect_json(path, "--hash"))


@pytest.mark.parametrize("path", OK_FILES, ids=lambda p: p.name)
def test_inspect_without_hash(path):
    report = inspect_json(path)
    check_inspect(path, report, hashed=False)
    assert all("sha256" not in t for t in report["tensors"]), "sha256 is only reported with --hash"


@pytest.mark.parametrize("args", [(), ("--json",)], ids=["human", "json"])
def test_control_characters_never_reach_the_terminal(args):
    # names.safetensors has a tensor named "\x1b[31mred"; JSON escapes it as \u001b.
    proc = run_ckpt("inspect", FIXTURES / "ok" / "names.safetensors", *args)
    assert_success(proc)
    assert b"\x1b" not in proc.stdout and b"\x1b" not in proc.stderr


@pytest.mark.parametrize("extra", [(), ("--json", "--hash")], ids=["human", "json-hash"])
@pytest.mark.parametrize("rel", sorted(REJECTED))
def test_inspect_rejects_cleanly(rel, extra):
    # Crafted files must fail fast: no multi-GB allocation or scan of the claimed sizes.
    assert_clean_error(run_ckpt("inspect", FIXTURES / rel, *extra, timeout=30))
