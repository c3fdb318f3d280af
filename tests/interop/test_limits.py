"""Every limit counts what the file declares, computed here without ckpt: at that value ckpt
reads the file, one below it refuses it naming the limit and its flag.

The pickle limits are counted on the opcodes Python's own `pickletools` decodes, with
the stack effects it documents for each opcode; the others on what torch loads:

- pickle-memo: memo entries written (PUT, BINPUT, LONG_BINPUT, MEMOIZE);
- pickle-marks: the most MARKs open at once;
- pickle-objects: values the opcodes create (the memo, DUP, BUILD and the appends and
  setitems reuse a value; OBJ also makes its argument tuple, PERSID its id string);
- pickle-stack: the most values on the stack at once (a MARK is not a value);
- pickle-string-len: the longest counted string or text line (a GLOBAL's module and name
  are two lines), in the bytes stored;
- pickle-int-digits: the most decimal digits of an INT/LONG text integer;
- pickle-long-bytes: the longest LONG1/LONG4, of every pickle of a legacy stream;
- depth: the nesting of the containers `torch.load` returns;
- int-len: the bytes `pickle.encode_long` gives the largest integer beyond 64 bits;
- rank and tiles: the most dimensions and chunks of a tensor in a DCP `.metadata`.

The Rust limit test (crates/ckpt/tests/it/limits.rs) checks the other limits against the
zip directory, the safetensors header and the shard index.
"""

from __future__ import annotations

import io
import json
import pickle
import pickletools
import zipfile
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.metadata import TensorStorageMetadata

from support import FIXTURES, describe, run_ckpt

TORCH = FIXTURES / "ok" / "torch"
ZIP_FILES = [TORCH / name for name in
             ("checkpoint-2.15-zip.pt", "state_dict-2.15-zip-p4.pt", "state_dict-2.15-zip-p5.pt",
              "values-2.15-zip.pt")]
# Opcodes that reuse a value already made rather than create one.
REUSES = {"GET", "BINGET", "LONG_BINGET", "MEMOIZE", "DUP", "BUILD", "APPEND", "APPENDS",
          "SETITEM", "SETITEMS", "ADDITEMS", "MARK"}
MADE_BESIDE = {"OBJ": 1, "INST": 2, "PERSID": 1}
LINES = {"decimalnl_short": 1, "decimalnl_long": 1, "floatnl": 1, "stringnl": 1,
         "stringnl_noescape": 1, "stringnl_noescape_pair": 2, "unicodestringnl": 1}
COUNT_WIDTH = {"string1": 1, "bytes1": 1, "unicodestring1": 1, "string4": 4, "bytes4": 4,
               "unicodestring4": 4, "bytes8": 8, "unicodestring8": 8, "bytearray8": 8}


def pickles(data: bytes, count: int) -> list[list]:
    """The opcodes `(op, arg, offset)` of the first `count` pickles of `data`, back to back."""
    out, pos = [], 0
    for _ in range(count):
        ops = []
        for op, arg, at in pickletools.genops(io.BytesIO(data[pos:])):
            ops.append((op, arg, pos + at))
        out.append(ops)
        pos = ops[-1][2] + 1
    return out


def lines(data: bytes, op, at: int) -> list[bytes]:
    found, start = [], at + 1
    for _ in range(LINES[op.arg.name]):
        end = data.index(b"\n", start)
        found.append(data[start:end])
        start = end + 1
    return found


def counts(data: bytes, ops: list) -> dict[str, int]:
    memo = marks = most_marks = objects = stack = most_stack = 0
    strings = digits = longs = 0
    open_marks: list[int] = []
    for op, _, at in ops:
        if op.name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            memo += 1
        if op.stack_after and op.name not in REUSES:
            objects += 1 + MADE_BESIDE.get(op.name, 0)
        if pickletools.markobject in op.stack_before:
            stack = open_marks.pop() - op.stack_before.index(pickletools.markobject)
        else:
            stack -= len(op.stack_before)
        if op.name == "MARK":
            open_marks.append(stack)
        else:
            stack += len(op.stack_after)
        most_stack = max(most_stack, stack)
        most_marks = max(most_marks, len(open_marks))
        if op.arg is not None and op.arg.name in LINES:
            text = lines(data, op, at)
            strings = max([strings, *map(len, text)])
            if op.name in ("INT", "LONG"):
                number = text[0].decode().strip().lstrip("+-").rstrip("L").replace("_", "")
                if not number.lower().startswith(("0x", "0o", "0b")):
                    digits = max(digits, len(number))
        elif op.arg is not None and op.arg.name in COUNT_WIDTH:
            width = COUNT_WIDTH[op.arg.name]
            strings = max(strings, int.from_bytes(data[at + 1:at + 1 + width], "little"))
        if op.name == "LONG1":
            longs = max(longs, data[at + 1])
        elif op.name == "LONG4":
            longs = max(longs, int.from_bytes(data[at + 1:at + 5], "little"))
    return {"pickle-memo": memo, "pickle-marks": most_marks, "pickle-objects": objects,
            "pickle-stack": most_stack, "pickle-string-len": strings,
            "pickle-int-digits": digits, "pickle-long-bytes": longs}


def data_pkl(path: Path) -> bytes:
    with zipfile.ZipFile(path) as z:
        return z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))


def assert_edge(path: Path, name: str, value: int) -> None:
    assert value > 0, f"{path.name} does not exercise {name}"
    at = run_ckpt("--limit", f"{name}={value}", "inspect", path)
    assert at.returncode == 0, f"{name}={value}: {describe(at)}"
    below = run_ckpt("--limit", f"{name}={value - 1}", "inspect", path)
    assert below.returncode == 2, f"{name}={value - 1}: {describe(below)}"
    stderr = below.stderr.decode()
    assert f"`{name}` limit of {value - 1}" in stderr, describe(below)
    assert f"--limit {name}=N" in stderr, describe(below)


@pytest.mark.parametrize("path", ZIP_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("name", ["pickle-memo", "pickle-marks", "pickle-objects",
                                  "pickle-stack", "pickle-string-len"])
def test_pickle_limits_count_what_pickletools_sees(path: Path, name: str) -> None:
    data = data_pkl(path)
    assert_edge(path, name, counts(data, pickles(data, 1)[0])[name])


def test_int_digits_count_the_decimal_digits() -> None:
    path = FIXTURES / "pickle" / "ok" / "bigints_p0.pkl"
    data = path.read_bytes()
    assert_edge(path, "pickle-int-digits", counts(data, pickles(data, 1)[0])["pickle-int-digits"])


def test_long_bytes_count_every_pickle_of_a_legacy_stream() -> None:
    # magic number, protocol, system info, the object, the storage keys
    path = TORCH / "checkpoint-2.15-legacy.pt"
    data = path.read_bytes()
    longest = max(counts(data, ops)["pickle-long-bytes"] for ops in pickles(data, 5))
    assert_edge(path, "pickle-long-bytes", longest)


def nesting(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(nesting, value.values()), default=0)
    if isinstance(value, (list, tuple, set, frozenset)):
        return 1 + max(map(nesting, value), default=0)
    return 0


def integers(value):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from integers(key)
            yield from integers(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from integers(item)
    elif isinstance(value, int) and not isinstance(value, bool):
        yield value


def test_depth_is_the_nesting_torch_loads() -> None:
    path = TORCH / "checkpoint-2.15-zip.pt"
    assert_edge(path, "depth", nesting(torch.load(path, weights_only=True)))


def test_int_len_is_the_pickled_size_of_the_largest_integer() -> None:
    # The fixture is ours (tests/fixtures/generate.py); it holds a frozenset, which
    # weights_only refuses.
    path = TORCH / "values-2.15-zip.pt"
    values = torch.load(path, weights_only=False)
    big = [len(pickle.encode_long(i)) for i in integers(values) if not -2**63 <= i < 2**63]
    assert_edge(path, "int-len", max(big))


def test_rank_and_tiles_are_what_the_dcp_metadata_declares() -> None:
    path = FIXTURES / "ok" / "dcp" / "sharded-2.15"
    metadata = dcp.FileSystemReader(str(path)).read_metadata()
    tensors = [m for m in metadata.state_dict_metadata.values()
               if isinstance(m, TensorStorageMetadata)]
    assert_edge(path, "rank", max(len(m.size) for m in tensors))
    assert_edge(path, "tiles", max(len(m.chunks) for m in tensors))


# The limits whose edges the Rust limit test computes from the files themselves.
CHECKED_IN_RUST = {"header-len", "name-len", "tensors", "files", "index-len", "code-len",
                   "inflated-len"}
CHECKED_HERE = {"pickle-memo", "pickle-marks", "pickle-objects", "pickle-stack",
                "pickle-string-len", "pickle-int-digits", "pickle-long-bytes", "depth", "int-len",
                "rank", "tiles"}


def test_every_limit_is_checked_against_an_independent_count() -> None:
    run = run_ckpt("limits", "--json")
    assert run.returncode == 0, describe(run)
    names = {row["name"] for row in json.loads(run.stdout)}
    assert names == CHECKED_IN_RUST | CHECKED_HERE
