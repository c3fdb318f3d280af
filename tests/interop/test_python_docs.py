"""The Python examples of README.md and docs/*.md (```pycon blocks) run as doctests against
the installed `ckpt` package, from the repository's root: their outputs stay true."""

from __future__ import annotations

import doctest
import os
import re

import pytest

from support import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```pycon\n(.*?)^```", re.S | re.M)


def blocks():
    for path in DOCS:
        for i, match in enumerate(BLOCK.finditer(path.read_text(encoding="utf-8"))):
            yield pytest.param(path, match.group(1), id=f"{path.relative_to(REPO)}#{i}")


BLOCKS = list(blocks())


def test_there_are_python_examples():
    assert BLOCKS


@pytest.mark.parametrize("path,text", BLOCKS)
def test_python_example(path, text, monkeypatch):
    monkeypatch.chdir(REPO)
    test = doctest.DocTestParser().get_doctest(text, {}, str(path), str(path), 0)
    assert test.examples, f"{path}: a pycon block without examples"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out: list[str] = []
    runner.run(test, out=out.append)
    assert runner.failures == 0, "".join(out)
