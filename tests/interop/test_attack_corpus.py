"""The scan corpus (tests/fixtures/attack/scan) is real, and `ckpt scan` judges it right.

* Every `dangerous` file with a loader is loaded the way a victim would (pickle.loads,
  torch.load(weights_only=False), numpy.load(allow_pickle=True), ...) in a throwaway subprocess
  with a temporary HOME and cwd, and its marker file must appear: the payload is live.
  Payloads only ever touch /tmp/ckpt-scan-marker-<name>; nothing is loaded in this process.
* Every `safe` torch file loads with torch.load(weights_only=True) (numpy arrays with torch's
  safe_globals for numpy reconstruction); `unsafe` and `error` files do not.
* `ckpt scan` (skipped while the binary has no `scan` subcommand) gives each file its verdict,
  through the exit codes of the spec (0 safe, 1 unsafe/dangerous, 2 error; with
  `--fail-on dangerous` an unsafe file exits 0), and never creates a marker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from support import REPO, describe, run_ckpt

CORPUS = REPO / "tests" / "fixtures" / "attack" / "scan"
MANIFEST = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
MARKERS = sorted({e["marker"] for e in MANIFEST.values() if e["marker"]})

LIVE = sorted(n for n, e in MANIFEST.items() if e["verdict"] == "dangerous" and e["loader"])
SAFE = sorted(n for n, e in MANIFEST.items() if e["verdict"] == "safe")
NOT_SAFE_TORCH = sorted(n for n, e in MANIFEST.items()
                        if e["verdict"] in ("unsafe", "error") and n.endswith(".pt"))

# Runs in the throwaway subprocess: load the file the way a victim would. Errors after the
# payload ran (a truncated stream, a wrong legacy magic) are expected and ignored.
VICTIM = textwrap.dedent("""
    import io, pickle, sys, warnings, zipfile
    warnings.simplefilter("ignore")
    loader, path, member = sys.argv[1], sys.argv[2], sys.argv[3]
    try:
        if loader == "pickle":
            pickle.loads(open(path, "rb").read())
        elif loader == "pickle-all":
            with open(path, "rb") as f:
                while f.peek(1) if hasattr(f, "peek") else True:
                    pickle.load(f)
        elif loader == "zip-member":
            pickle.loads(zipfile.ZipFile(path).read(member))
        elif loader == "zip-raw":
            import struct
            info = zipfile.ZipFile(path).getinfo(member)
            data = open(path, "rb").read()
            n, m = struct.unpack_from("<HH", data, info.header_offset + 26)
            start = info.header_offset + 30 + n + m
            pickle.loads(data[start:start + info.compress_size])
        elif loader == "torch":
            import torch
            torch.load(path, weights_only=False)
        elif loader == "numpy":
            import numpy
            numpy.load(path, allow_pickle=True)
        else:
            raise SystemExit("unknown loader " + loader)
    except Exception as e:
        print("load raised (after the payload ran, if live):", repr(e)[:300])
""")


def clear_markers() -> None:
    for m in MARKERS:
        p = Path(m)
        if p.exists() or p.is_symlink():
            p.unlink()


def victim_env(tmp_path: Path) -> dict:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env.update(HOME=str(home), PYTHONDONTWRITEBYTECODE="1", BROWSER="true", PAGER="cat")
    return env


def test_manifest_lists_every_file():
    on_disk = sorted(str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*")
                     if p.is_file() and p.name not in ("expected.json", "README.md"))
    assert on_disk == sorted(MANIFEST)
    for name, e in MANIFEST.items():
        assert e["verdict"] in ("dangerous", "unsafe", "safe", "error"), name
        assert e["class"] and e["technique"] and e["source"], name
        if e["marker"]:
            assert e["marker"].startswith("/tmp/ckpt-scan-marker-"), name


@pytest.mark.parametrize("name", LIVE)
def test_dangerous_payload_is_live(name, tmp_path):
    """Loading the file the victim's way creates its marker (so 'dangerous' is true)."""
    e = MANIFEST[name]
    marker = Path(e["marker"])
    clear_markers()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", VICTIM, e["loader"], str(CORPUS / name), e.get("member", "")],
            cwd=tmp_path, env=victim_env(tmp_path), stdin=subprocess.DEVNULL,
            capture_output=True, timeout=120, check=False)
        assert marker.exists(), f"{name}: payload did not run{describe(proc)}"
        others = [m for m in MARKERS if m != str(marker) and Path(m).exists()]
        assert not others, f"{name} touched other markers: {others}"
    finally:
        clear_markers()


@pytest.mark.parametrize("name", [n for n in SAFE if n.endswith(".pt")])
def test_safe_files_load_weights_only(name):
    import numpy
    import torch

    allowed = [numpy.core.multiarray._reconstruct, numpy.ndarray, numpy.dtype,
               type(numpy.dtype(numpy.float32)), type(numpy.dtype(numpy.int64))]
    with torch.serialization.safe_globals(allowed if "numpy" in name else []):
        torch.load(CORPUS / name, weights_only=True)


@pytest.mark.parametrize("name", NOT_SAFE_TORCH)
def test_unsafe_and_error_files_do_not_load_weights_only(name):
    import torch

    with pytest.raises(Exception):
        torch.load(CORPUS / name, weights_only=True)


def scan_supported() -> bool:
    try:
        return run_ckpt("scan", "--help", timeout=30).returncode == 0
    except Exception:  # noqa: BLE001 - no binary, no subcommand: skip with the reason below
        return False


def test_ckpt_scan_verdicts_and_no_marker(tmp_path):
    # A failing `ckpt scan --help` fails the corpus: it never skips it.
    assert scan_supported(), "`ckpt scan --help` fails"
    clear_markers()
    wrong = []
    for name, e in sorted(MANIFEST.items()):
        path = CORPUS / name
        plain = run_ckpt("scan", path, cwd=tmp_path)
        only_dangerous = run_ckpt("scan", "--fail-on", "dangerous", path, cwd=tmp_path)
        for proc in (plain, only_dangerous):
            assert "panicked at" not in proc.stderr.decode("utf-8", "replace"), describe(proc)
        want = {"safe": (0, 0), "unsafe": (1, 0), "dangerous": (1, 1), "error": (2, 2)}
        got = (plain.returncode, only_dangerous.returncode)
        if got != want[e["verdict"]]:
            wrong.append(f"{name}: want {e['verdict']} {want[e['verdict']]}, got {got}"
                         + describe(plain))
    created = [m for m in MARKERS if Path(m).exists()]
    clear_markers()
    assert not created, f"ckpt scan created markers: {created}"
    assert not wrong, "\n".join(wrong)
