"""The .npy header corpus (tests/fixtures/npy/corpus.json) still says what the installed numpy says.

`cargo test` checks ckpt's header reader (ckpt::npy::parse_header) against the committed
corpus (crates/ckpt/tests/it/npy.rs), without Python. Here the corpus is made again, live: the
hand-written cases and the seeded random ones and their mutations, through the generator's own
numpy worker (numpy.load's header steps, and numpy.load itself for every object verdict). A
numpy or CPython that reads headers differently shows up as a difference from the committed
verdicts: regenerate the corpus (tests/fixtures/npy/generate.py), and `cargo test` tells whether
ckpt still agrees.
"""

from __future__ import annotations

import json
import platform
import sys

import numpy

from support import FIXTURES

NPY = FIXTURES / "npy"
sys.path.insert(0, str(NPY))
import generate  # noqa: E402 - the corpus generator, from its folder

COMMITTED = json.loads((NPY / "corpus.json").read_text(encoding="utf-8"))


def test_the_corpus_is_what_live_numpy_says():
    named = generate.cases()
    committed = COMMITTED["cases"]
    # The generator still makes the committed cases (same names, same bytes)...
    assert [(n, d.hex()) for n, d in named] == [(c["name"], c["file"]) for c in committed], (
        "tests/fixtures/npy/generate.py no longer makes the committed cases: regenerate corpus.json"
    )
    # ...and numpy still gives each its committed verdict.
    live = generate.evaluate(named)
    drift = [
        f"{c['name']}: committed {json.dumps({k: v for k, v in c.items() if k not in ('name', 'file')})}, "
        f"live {json.dumps({k: v for k, v in l.items() if k not in ('name', 'file')})}"
        for c, l in zip(committed, live)
        if c != l
    ]
    assert not drift, (
        f"numpy {numpy.__version__} on CPython {platform.python_version()} reads "
        f"{len(drift)} headers differently from {COMMITTED['source']}:\n" + "\n".join(drift[:40])
    )


def test_every_object_verdict_is_a_real_unpickling():
    # The generator asserts that numpy.load(allow_pickle=True) returns the marker pickled after
    # the header exactly when the verdict is "object"; check that it did so for every case.
    objects = [c for c in COMMITTED["cases"] if c["numpy"] == "object"]
    assert len(objects) > 100
    live = generate.evaluate([(c["name"], bytes.fromhex(c["file"])) for c in objects[:40]])
    assert all(l["numpy"] == "object" for l in live)
