"""The loader corpus (tests/fixtures/attack/loader) is live, and `ckpt scan` catches it.

* Every twin (loader/twins/<name>: the file with its payload replaced by builtins.print of the
  marker) is loaded the victim's way in a throwaway subprocess with a temporary HOME and cwd,
  and must print its marker: the path to the payload is live. The fixtures themselves (real
  payloads) are never loaded here.
* Every twin differs from its fixture only in the payload: the same containers (compression
  wrappers, zip members with their methods and flags, hidden local headers, tar members, .npy
  headers) with one small differing window per leaf.
* `ckpt scan --json` says `dangerous` for every fixture and at least `unsafe` for every twin
  (expected to fail until the scanner catches the corpus; nothing here is marked xfail), and
  creates no marker.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import struct
import subprocess
import sys
import tarfile
import textwrap
import zipfile
import zlib
from pathlib import Path

import pytest

from support import REPO, describe, run_ckpt

CORPUS = REPO / "tests" / "fixtures" / "attack" / "loader"
TWINS = CORPUS / "twins"
MANIFEST = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
NAMES = sorted(MANIFEST)

# Runs in the throwaway subprocess: load the twin the way a victim would. Errors after the
# payload ran (a broken stream after it, a wrong magic, an archive torch then rejects) are
# expected and reported, not raised: the marker on stdout is what counts.
VICTIM = textwrap.dedent(r"""
    import io, os, pickle, sys, warnings
    warnings.simplefilter("ignore")
    loader, path, member = sys.argv[1], sys.argv[2], sys.argv[3]

    def chunks(p):
        with open(p, "rb") as f:
            while True:
                block = f.read(65536)
                if not block:
                    return
                yield block

    def streamed(p):
        # stream-unzip reads local headers in file order (no central directory); a victim
        # keeps the members by name, the last of a name winning as in any dict.
        from stream_unzip import stream_unzip
        members = {}
        for name, _size, data in stream_unzip(chunks(p)):
            members[name.decode()] = b"".join(data)
        return members

    try:
        if loader == "pickle":
            with open(path, "rb") as f:
                pickle.load(f)
        elif loader == "torch":
            import torch
            torch.load(path, weights_only=False)
        elif loader == "torch.jit":
            import torch
            torch.jit.load(path)
        elif loader == "torch.export":
            import torch
            torch.export.load(path)
        elif loader == "dcp":
            import torch.distributed.checkpoint as dcp
            from torch.distributed.checkpoint.format_utils import dcp_to_torch_save
            dcp_to_torch_save(path, "converted.pt")
        elif loader == "numpy":
            import numpy
            loaded = numpy.load(path, allow_pickle=True)
            if isinstance(loaded, numpy.lib.npyio.NpzFile):
                for key in loaded.files:
                    loaded[key]
        elif loader == "joblib":
            import joblib
            joblib.load(path)
        elif loader == "stream-unzip+pickle":
            pickle.loads(streamed(path)[member])
        elif loader == "stream-unzip+numpy":
            import numpy
            for name, data in streamed(path).items():
                if name.endswith(".npy"):
                    numpy.lib.format.read_array(io.BytesIO(data), allow_pickle=True)
        else:
            raise SystemExit("unknown loader " + loader)
    except Exception as e:
        print("load raised:", repr(e)[:400])
""")


def victim_env(tmp_path: Path) -> dict:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env.update(HOME=str(home), PYTHONDONTWRITEBYTECODE="1", BROWSER="true", PAGER="cat")
    return env


def load_twin(name: str, tmp_path: Path) -> subprocess.CompletedProcess:
    e = MANIFEST[name]
    return subprocess.run(
        [sys.executable, "-c", VICTIM, e["loader"], str(TWINS / name), e.get("member", "")],
        cwd=tmp_path, env=victim_env(tmp_path), stdin=subprocess.DEVNULL, capture_output=True,
        timeout=300, check=False)


def markers() -> list[Path]:
    return [Path(e["marker"]) for e in MANIFEST.values()]


def test_manifest_lists_every_file_and_twin():
    def listed(root: Path) -> list[str]:
        return sorted(p.name for p in root.iterdir()
                      if p.name not in ("expected.json", "README.md", "twins"))

    assert listed(CORPUS) == NAMES
    assert listed(TWINS) == NAMES
    for name, e in MANIFEST.items():
        assert e["verdict"] == "dangerous", name
        for key in ("class", "technique", "source", "loader", "marker", "payload_global"):
            assert e.get(key), f"{name}: no {key}"
        assert e["marker"] == "/tmp/ckpt-loader-marker-" + name.split(".")[0], name


@pytest.mark.parametrize("name", NAMES)
def test_twin_payload_is_live(name, tmp_path):
    """Loading the twin the victim's way prints its marker (so the fixture's payload runs)."""
    e = MANIFEST[name]
    proc = load_twin(name, tmp_path)
    out = proc.stdout.decode("utf-8", "replace")
    if e.get("live") is False:
        # Not live in this torch: the loader refuses the payload's global before calling it.
        assert e["marker"] not in out, f"{name}: the payload ran{describe(proc)}"
        assert e.get("refused_with"), f"{name}: the manifest gives no refusal to expect"
        assert e["refused_with"] in out, f"{name}: not refused as recorded{describe(proc)}"
        return
    assert e["marker"] in out, f"{name}: payload did not run{describe(proc)}"
    assert not any(m.exists() for m in markers()), "a twin touched a marker file"


# --------------------------------------------------------------------------------------------
# Twins differ from their fixtures only in the payload
# --------------------------------------------------------------------------------------------

# Largest differing window allowed in one leaf (a pickle, a header, raw bytes): the largest
# payload swap in the corpus is 168 bytes (a joblib object array's nested pickle).
WINDOW = 192


def unwrap(data: bytes) -> tuple[str, bytes] | None:
    """A compression wrapper the loaders accept (joblib's, gzip, bz2, xz, lzma, zlib, the
    pre-0.10 joblib ZF file): its name and the bytes inside."""
    if data.startswith(b"\x1f\x8b"):
        return "gzip", gzip.decompress(data)
    if data.startswith(b"BZh"):
        return "bz2", bz2.decompress(data)
    if data.startswith(b"\xfd7zXZ"):
        return "xz", lzma.decompress(data, format=lzma.FORMAT_XZ)
    if data.startswith(b"\x5d\x00"):
        return "lzma", lzma.decompress(data, format=lzma.FORMAT_ALONE)
    if data.startswith(b"ZF"):
        return "zf", zlib.decompress(data[2 + len(hex(2**64)):])  # joblib's _MAX_LEN
    if data.startswith(b"\x78"):
        try:
            return "zlib", zlib.decompress(data)
        except zlib.error:
            return None
    return None


def local_headers(data: bytes) -> list[tuple]:
    """Every local file header in the archive, listed or not: (name, method, flags)."""
    out, pos = [], data.find(b"PK\x03\x04")
    while pos >= 0:
        flags, method = struct.unpack_from("<HH", data, pos + 6)
        n = struct.unpack_from("<H", data, pos + 26)[0]
        out.append((data[pos + 30:pos + 30 + n], method, flags))
        pos = data.find(b"PK\x03\x04", pos + 4)
    return out


def zip_members(data: bytes) -> list[tuple[str, bytes]] | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return [(i.filename, z.read(i)) for i in z.infolist()]
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError):
        return None


def hidden_members(data: bytes) -> list[tuple[str, bytes]]:
    """Members a streaming reader sees (stream-unzip), for archives with unlisted headers."""
    from stream_unzip import stream_unzip

    try:
        return [(n.decode(), b"".join(c)) for n, _, c in stream_unzip([data])]
    except Exception:  # noqa: BLE001 - not every archive streams; the listed members still count
        return []


def tar_members(data: bytes) -> list[tuple[str, bytes]] | None:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            return [(m.name, tar.extractfile(m).read() if m.isfile() else b"")
                    for m in tar.getmembers()]
    except tarfile.TarError:
        return None


def common_prefix(a: bytes, b: bytes) -> int:
    """Length of the common prefix (by blocks first: the inflation fixtures are 256 MiB)."""
    n, block = 0, 1 << 16
    limit = min(len(a), len(b))
    while n + block <= limit and a[n:n + block] == b[n:n + block]:
        n += block
    while n < limit and a[n] == b[n]:
        n += 1
    return n


def differences(a: bytes, b: bytes, where: str) -> list[str]:
    """Why `b` (a twin) is not `a` (its fixture) with only the payload changed."""
    if a == b:
        return []
    wa, wb = unwrap(a), unwrap(b)
    if wa or wb:
        if not (wa and wb) or wa[0] != wb[0]:
            return [f"{where}: different compression wrappers"]
        return differences(wa[1], wb[1], f"{where} ({wa[0]})")
    if a.startswith(b"PK\x03\x04") or b.startswith(b"PK\x03\x04"):
        if local_headers(a) != local_headers(b):
            return [f"{where}: different zip local headers"]
        za, zb = zip_members(a), zip_members(b)
        if za is not None or zb is not None:
            if za is None or zb is None or [n for n, _ in za] != [n for n, _ in zb]:
                return [f"{where}: different zip members"]
            ha, hb = hidden_members(a), hidden_members(b)
            if [n for n, _ in ha] != [n for n, _ in hb]:
                return [f"{where}: different streamed members"]
            out = []
            for (n, x), (_, y) in list(zip(za, zb)) + list(zip(ha, hb)):
                out += differences(x, y, f"{where}/{n}")
            return out
    ta, tb = tar_members(a), tar_members(b)
    if ta is not None and tb is not None and [n for n, _ in ta][1:] == [n for n, _ in tb][1:]:
        # (the first name may be the payload itself: a tar/pickle polyglot)
        out = []
        for (n, x), (_, y) in zip(ta, tb):
            out += differences(x, y, f"{where}/{n}")
        return out + window(a[:512], b[:512], f"{where} (first header)")
    return window(a, b, where)


def window(a: bytes, b: bytes, where: str) -> list[str]:
    """Raw bytes: they may differ only in one window of at most WINDOW bytes."""
    prefix = common_prefix(a, b)
    suffix = common_prefix(a[prefix:][::-1], b[prefix:][::-1])
    da, db = len(a) - prefix - suffix, len(b) - prefix - suffix
    if max(da, db) > WINDOW:
        return [f"{where}: {da} and {db} bytes differ from byte {prefix} (more than a payload)"]
    return []


def read_tree(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
                if p.is_file()}
    return {"": path.read_bytes()}


@pytest.mark.parametrize("name", NAMES)
def test_twin_differs_from_fixture_only_in_payload(name):
    fixture, twin = read_tree(CORPUS / name), read_tree(TWINS / name)
    assert sorted(fixture) == sorted(twin), name
    changed = [rel for rel in fixture if fixture[rel] != twin[rel]]
    assert changed, f"{name}: the twin is the fixture"
    problems = []
    for rel in fixture:
        problems += differences(fixture[rel], twin[rel], f"{name}/{rel}".rstrip("/"))
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------------
# ckpt scan
# --------------------------------------------------------------------------------------------

RANK = {"safe": 0, "unsafe": 1, "dangerous": 2}


def scan_verdict(path: Path, tmp_path: Path) -> tuple[str, subprocess.CompletedProcess]:
    """The worst verdict `ckpt scan --json` gives the file (or the files of a folder); `error`
    when a file got no verdict."""
    proc = run_ckpt("scan", "--json", path, cwd=tmp_path, timeout=300)
    assert "panicked at" not in proc.stderr.decode("utf-8", "replace"), describe(proc)
    try:
        files = json.loads(proc.stdout.decode("utf-8"))["files"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError):
        return "error", proc
    verdicts = [f.get("verdict") for f in files]
    if not verdicts or any(v not in RANK for v in verdicts):
        return "error", proc
    return max(verdicts, key=RANK.get), proc


def test_ckpt_scan_catches_the_corpus(tmp_path):
    """Every fixture `dangerous`, every harmless copy (twins/) at least `unsafe`, no marker."""
    for m in markers():
        m.unlink(missing_ok=True)
    wrong = []
    for name in NAMES:
        verdict, proc = scan_verdict(CORPUS / name, tmp_path)
        if verdict != "dangerous":
            wrong.append(f"{name}: {verdict}, want dangerous"
                         f" ({MANIFEST[name]['payload_global']})" + describe(proc)[:1500])
        verdict, proc = scan_verdict(TWINS / name, tmp_path)
        if verdict not in ("unsafe", "dangerous"):
            wrong.append(f"twins/{name}: {verdict}, want at least unsafe (builtins.print)"
                         + describe(proc)[:1500])
    created = [str(m) for m in markers() if m.exists()]
    assert not created, f"ckpt scan created markers: {created}"
    assert not wrong, f"{len(wrong)} wrong verdicts:\n" + "\n".join(wrong)
