"""The committed fixtures still match what the pinned reference says (no ckpt needed)."""

from __future__ import annotations

import json

import pytest
from safetensors import safe_open
from safetensors.torch import load_file

from support import FIXTURES, OK_FILES, REJECTED, header_pairs, reference_view


@pytest.mark.parametrize("path", OK_FILES, ids=lambda p: p.name)
def test_expected_json_matches_reference(path):
    expected = json.loads(path.with_name(path.name.replace(".safetensors", ".expected.json")).read_text("utf-8"))
    live = reference_view(path)
    assert expected["metadata"] == live["metadata"]
    header = {name: dict(info) for name, info in header_pairs(path) if name != "__metadata__"}
    assert [t["name"] for t in expected["tensors"]] == [t["name"] for t in live["tensors"]]
    for e, w in zip(expected["tensors"], live["tensors"]):
        assert e["sha256"] == w["sha256"], e["name"]
        assert e["header_dtype"] == header[e["name"]]["dtype"]
        assert e["header_shape"] == header[e["name"]]["shape"] == w["shape"]
    loaded = load_file(str(path))
    for e in expected["tensors"]:
        t = loaded[e["name"]]
        assert e["dtype"] == str(t.dtype).removeprefix("torch.")
        assert e["shape"] == list(t.shape)


def test_rejected_json_lists_every_bad_and_attack_file():
    on_disk = sorted(
        str(p.relative_to(FIXTURES))
        for folder in ("bad", "attack")
        for p in (FIXTURES / folder).glob("*.safetensors")
    )
    assert on_disk == sorted(REJECTED)


def _reference_rejects(path) -> bool:
    try:
        load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            f.metadata()
            for name in f.keys():
                f.get_tensor(name)
    except Exception:  # noqa: BLE001 - any refusal counts
        return True
    return False


@pytest.mark.parametrize("rel", sorted(REJECTED))
def test_reference_verdict_matches_rejected_json(rel):
    assert _reference_rejects(FIXTURES / rel) == REJECTED[rel]["reference_rejects"]
