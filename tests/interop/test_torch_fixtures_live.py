"""The committed PyTorch fixtures still match what the pinned torch says (no ckpt needed)."""

from __future__ import annotations

import hashlib

import pytest
from support import FIXTURES
from support_torch import (
    OK_CASES,
    PYPI,
    REJECTED_TORCH,
    all_cases,
    check_expected_against_live,
    torch_view,
)


@pytest.mark.parametrize("case", OK_CASES, ids=lambda c: c.id)
def test_expected_json_matches_live_torch(case):
    check_expected_against_live(case)


def test_real_file_from_the_venv_matches_expected():
    for case in all_cases()[len(OK_CASES):]:
        digest = hashlib.sha256(case.path.read_bytes()).hexdigest()
        assert digest in case.expected["source"], f"{case.path} changed: regenerate the fixtures"
        check_expected_against_live(case)


def test_pypi_files_are_the_shipped_ones():
    for path in sorted(PYPI.iterdir()):
        if path.is_dir() or path.name.endswith(".expected.json"):
            continue
        expected = (path.parent / (path.name + ".expected.json")).read_text(encoding="utf-8")
        assert hashlib.sha256(path.read_bytes()).hexdigest() in expected, path


def test_every_ok_file_has_expected_json():
    for folder in (FIXTURES / "ok" / "torch", PYPI):
        files = {p.name for p in folder.iterdir() if p.is_file() and not p.name.endswith(".expected.json")}
        expected = {p.name[: -len(".expected.json")] for p in folder.glob("*.expected.json")}
        assert files <= expected, files - expected


def test_rejected_torch_json_lists_every_bad_and_attack_file():
    on_disk = sorted(
        str(p.relative_to(FIXTURES))
        for folder in ("bad/torch", "attack/torch")
        for p in (FIXTURES / folder).iterdir()
    )
    assert on_disk == sorted(REJECTED_TORCH)


@pytest.mark.parametrize("rel", sorted(REJECTED_TORCH))
def test_weights_only_verdict_matches_rejected_json(rel):
    # weights_only=True never runs code, even on attack files.
    loads = torch_view.weights_only_loads(FIXTURES / rel)
    assert loads == (REJECTED_TORCH[rel]["torch_weights_only"] == "loads")
    if rel.startswith("attack/"):
        assert not loads
        assert REJECTED_TORCH[rel]["torch_full"] == "not loaded: would execute code"
