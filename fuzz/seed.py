#!/usr/bin/env python3
"""Seeds each fuzz target's corpus (fuzz/corpus/TARGET/) from the committed fixtures.

Deterministic: the same fixtures give the same seed files (named by their SHA-1, as
libFuzzer names its own). Run from anywhere: `python3 fuzz/seed.py`. Existing corpus files
are kept, so this can be rerun after fixtures are added.
"""

import hashlib
import json
import struct
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
FIXTURES = FUZZ.parent / "tests" / "fixtures"


def files_under(*globs):
    seen = []
    for pattern in globs:
        seen.extend(p for p in sorted(FIXTURES.glob(pattern)) if p.is_file() and not p.name.endswith(".json"))
    return seen


def add(target, data):
    folder = FUZZ / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


def folder_input(path):
    """A folder as the `folder` target reads it: [u8 name len][name][u32 LE len][data]..."""
    out = bytearray()
    for file in sorted(path.iterdir()):
        if file.is_file():
            name = file.name.encode()
            data = file.read_bytes()
            out += bytes([len(name)]) + name + struct.pack("<I", len(data)) + data
    return bytes(out)


def main():
    counts = {}
    torch = files_under("ok/torch/*", "bad/torch/*", "attack/torch/*", "fuzz/*")
    pickles = files_under("pickle/**/*.pkl", "attack/scan/*.pkl")
    streams = [bytes.fromhex(s["hex"]) for s in json.loads((FIXTURES / "pickle" / "streams.json").read_text())["streams"]]
    safetensors = files_under("**/*.safetensors")
    for target, paths in {
        "torch": torch,
        "read": torch + safetensors,
        "safetensors_roundtrip": safetensors,
        "pickle": pickles,
        "pickle_globals": pickles,
        "scan": files_under("attack/scan/*", "attack/loader/*", "attack/loader/twins/*"),
        "npy": files_under("**/*.npy"),
        "verify": torch + safetensors,
    }.items():
        for path in paths:
            add(target, path.read_bytes())
        counts[target] = len(paths)
    # The random streams of the pickle corpus (globals by every route, registrations).
    for data in streams:
        add("pickle_globals", data)
    counts["pickle_globals"] += len(streams)
    folders = [p for p in sorted(FIXTURES.glob("*/dcp/*")) + sorted(FIXTURES.glob("*/shards/*")) if p.is_dir()]
    for path in folders:
        add("folder", folder_input(path))
    counts["folder"] = len(folders)
    for target, count in counts.items():
        print(f"{target}: {count} seeds")


if __name__ == "__main__":
    main()
