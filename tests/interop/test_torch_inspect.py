"""`ckpt inspect --json` on PyTorch files against expected.json and live torch.load."""

from __future__ import annotations

import pytest
from support import FIXTURES, assert_clean_error, inspect_json, run_ckpt
from support_torch import OK_CASES, REJECTED_TORCH, check_report, venv_cases


@pytest.mark.parametrize("case", OK_CASES, ids=lambda c: c.id)
def test_inspect_hash_matches_torch(case):
    check_report(case, inspect_json(case.path, "--hash"))


@pytest.mark.parametrize("case", OK_CASES, ids=lambda c: c.id)
def test_inspect_without_hash(case):
    check_report(case, inspect_json(case.path), hashed=False)


def test_inspect_real_files_from_the_venv():
    for case in venv_cases():
        check_report(case, inspect_json(case.path, "--hash"))


def test_inspect_reports_the_records_of_a_zip():
    report = inspect_json(FIXTURES / "ok" / "torch" / "state_dict-2.15-zip-p2.pt")
    records = report.get("records")
    assert isinstance(records, dict), report
    assert records.get("version") == "3"
    assert records.get("byteorder") == "little"
    assert "torch._utils._rebuild_tensor_v2" in report.get("globals", []), report.get("globals")


def test_inspect_reports_big_endian():
    report = inspect_json(FIXTURES / "ok" / "torch" / "big_endian_views-2.15-zip.pt")
    assert report["records"].get("byteorder") == "big"


@pytest.mark.parametrize("extra", [(), ("--json", "--hash")], ids=["human", "json-hash"])
@pytest.mark.parametrize("rel", sorted(REJECTED_TORCH))
def test_inspect_rejects_cleanly(rel, extra, tmp_path):
    # Run in an empty folder: an attack payload, if it ever ran, would leave its marker there.
    proc = run_ckpt("inspect", FIXTURES / rel, *extra, timeout=30, cwd=tmp_path)
    assert_clean_error(proc)
    assert list(tmp_path.iterdir()) == [], "the payload ran"
