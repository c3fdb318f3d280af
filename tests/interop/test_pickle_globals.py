"""The globals CPython's unpickler asks for, recorded in the pickle corpus, are still what it
asks for.

`tests/fixtures/pickle/generate.py` ran CPython's C unpickler with a recording `find_class`
(the symbolic unpickler of `tests/fixtures/pickle/symbolic.py`: it writes down each
`(module, name)` it receives and returns an inert stand-in; only `copyreg.add_extension`
does something, registering its code in a registry of the load's own) over

* every file of the differential corpus (`ok/`, `bad/`: the `globals` of each JSON, read as
  `pickle.loads` reads bytes, and as `pickle.load` reads an `io.BytesIO` where that differs),
* every file of `tests/fixtures/attack/` read from byte 0, pickle after pickle, and every
  `*.pkl` member of the zips there (`attack_globals.json`),
* 2000 random streams from a seeded generator (`streams.py`, `streams.json`),

and the Rust side (`crates/ckpt-pickle/tests/it/globals.rs`, plain `cargo test`) checks that
the machine's globals and `static_globals` hold every one of them, and that the machine reads
to its end every pickle CPython reads. Here each recording is made again, live, and must be
what was committed: together, the crate sees every global CPython asks for, without Python
on the Rust side.
"""

from __future__ import annotations

import json
import sys

import pytest

from support import REPO

CORPUS = REPO / "tests" / "fixtures" / "pickle"
sys.path.insert(0, str(CORPUS))

import record  # noqa: E402
import streams  # noqa: E402
from symbolic import run, unique  # noqa: E402

pytestmark = [
    pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the corpus records CPython 3.11"),
    # STRING escapes like \q are deprecated but still read (the corpus has some).
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


def corpus_files():
    for folder in ("ok", "bad"):
        for path in sorted((CORPUS / folder).glob("*.pkl")):
            yield pytest.param(path, id=f"{folder}/{path.stem}")


@pytest.mark.parametrize("path", list(corpus_files()))
def test_corpus_file_globals(path):
    doc = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    extensions = {int(code): tuple(pair.split(" ", 1)) for code, pair in doc.get("extensions", {}).items()}
    data = path.read_bytes()
    outcome = run(data, doc.get("encoding", "ASCII"), extensions)
    assert unique(outcome.found) == doc["globals"]
    assert (outcome.error is None) == (path.parent.name == "ok")
    # Read as torch.load reads (an io.BytesIO), where that differs.
    assert record.stream_reading(data, outcome, doc.get("encoding", "ASCII"), extensions) == doc.get("stream")


def test_attack_corpus_globals():
    committed = json.loads((CORPUS / "attack_globals.json").read_text(encoding="utf-8"))
    live = record.attack_globals()
    assert [f["path"] for f in live["files"]] == [f["path"] for f in committed["files"]], (
        "the attack corpus changed: run tests/fixtures/pickle/generate.py"
    )
    for now, then in zip(live["files"], committed["files"]):
        assert now == then, now["path"]
    seen = {tuple(g) for f in live["files"] for e in f["entries"] for p in e["pickles"] for g in p["globals"]}
    # The corpus is about dangerous globals: CPython must have been asked for some.
    assert ("posix", "system") in seen or ("os", "system") in seen
    assert len(seen) > 40


def test_random_stream_globals():
    committed = json.loads((CORPUS / "streams.json").read_text(encoding="utf-8"))
    assert (committed["seed"], committed["count"]) == (record.STREAMS_SEED, record.STREAMS_COUNT)
    data = streams.streams(record.STREAMS_SEED, record.STREAMS_COUNT)
    assert [d.hex() for d in data] == [s["hex"] for s in committed["streams"]], (
        "streams.py changed: run tests/fixtures/pickle/generate.py"
    )
    live = record.streams_json()
    for i, (now, then) in enumerate(zip(live["streams"], committed["streams"])):
        assert now == then, f"stream {i}"
    loads = sum(s["loads"] for s in committed["streams"])
    assert 0.5 < loads / committed["count"] < 0.9, "streams should mostly load, not all"


def test_the_recording_unpickler_runs_nothing(tmp_path):
    """A pickle that would call os.system when loaded for real only records the call."""
    marker = tmp_path / "ran"
    data = b"\x80\x02cposix\nsystem\nX" + len(f"touch {marker}").to_bytes(4, "little") + f"touch {marker}".encode() + b"\x85R."
    outcome = run(data)
    assert outcome.error is None
    assert unique(outcome.found) == [["posix", "system"]]
    assert not marker.exists()
