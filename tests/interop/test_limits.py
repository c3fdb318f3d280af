"""The pickle limits count what Python's own pickletools sees in the file: at the value
computed here ckpt reads the file, one below it refuses it naming the limit.

- pickle-memo: memo entries written (PUT, BINPUT, LONG_BINPUT, MEMOIZE);
- pickle-marks: the most MARKs open at once.
"""

from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path

import pytest

from support import FIXTURES, describe, run_ckpt

FILES = [FIXTURES / "ok" / "torch" / name for name in
         ("checkpoint-2.15-zip.pt", "state_dict-2.15-zip-p4.pt", "state_dict-2.15-zip-p5.pt",
          "values-2.15-zip.pt")]
MARK_CONSUMERS = {"TUPLE", "LIST", "DICT", "APPENDS", "SETITEMS", "ADDITEMS", "FROZENSET",
                  "OBJ", "INST", "POP_MARK"}


def counts(path: Path) -> dict[str, int]:
    with zipfile.ZipFile(path) as z:
        pkl = next(n for n in z.namelist() if n.endswith("/data.pkl"))
        data = z.read(pkl)
    memo = open_marks = most_marks = 0
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            memo += 1
        elif op.name == "MARK":
            open_marks += 1
            most_marks = max(most_marks, open_marks)
        elif op.name in MARK_CONSUMERS:
            open_marks -= 1
    # Not compared: pickle-string-len, which also counts text lines (a GLOBAL's module and
    # name) as ckpt reads them, not as pickletools reports them.
    return {"pickle-memo": memo, "pickle-marks": most_marks}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_pickle_limits_count_what_pickletools_sees(path: Path) -> None:
    for name, value in counts(path).items():
        assert value > 0, (path.name, name)
        at = run_ckpt("--limit", f"{name}={value}", "inspect", path)
        assert at.returncode == 0, f"{name}={value}: {describe(at)}"
        below = run_ckpt("--limit", f"{name}={value - 1}", "inspect", path)
        assert below.returncode == 2, f"{name}={value - 1}: {describe(below)}"
        assert f"`{name}` limit of {value - 1}" in below.stderr.decode(), describe(below)
