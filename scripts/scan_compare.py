"""Driver of scripts/scan-compare.sh: run each scanner on each corpus file, score, print Markdown.

Outcome of one tool on one file: `flagged` (it reports a problem), `clean` (it reports nothing,
exit 0) or `error` (it could not scan the file). Scored against expected.json:

* dangerous / unsafe files: caught when flagged; missed when clean or error (a scan error is
  counted as a miss, and listed);
* error files (not checkpoints at all): caught when flagged or error, missed when clean;
* safe files: a false alarm when flagged or error.

How each tool is asked (its ordinary use, exit codes as a CI pipeline sees them):
picklescan --path F (exit 1 = dangerous globals found; "suspicious" globals alone exit 0),
modelscan -p F -r json (exit 1 = issues of any severity; 2 error; 3 nothing it can scan),
fickling's scan_zip_archive for zip files and scan_file otherwise, graceful (its `--check-safety`
CLI finds no pickle in a torch zip): flagged unless every result is LIKELY_SAFE or better,
error when it reports parse errors and nothing worse, ckpt scan --json F (exit 0 safe, 1 unsafe
or dangerous, 2 error).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

FICKLING = r"""
import json, sys, zipfile, warnings
warnings.simplefilter("ignore")
from fickling.loader import scan_file, scan_zip_archive
path = sys.argv[1]
if zipfile.is_zipfile(path):
    results = list(scan_zip_archive(path, graceful=True).values())
else:
    results = [scan_file(path, graceful=True)]
unsafe = [r for r in results if not r.is_safe]
errors = [e for r in results for e in r.errors]
if any(not r.errors and not r.is_safe for r in results) or (unsafe and not errors):
    out = "flagged"
elif errors:
    out = "error"
elif not results:
    out = "error"
else:
    out = "clean"
print(json.dumps({"outcome": out, "severity": [r.severity.name for r in results],
                  "errors": errors[:2]}))
"""


def run(cmd, cwd, timeout=180):
    try:
        return subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None


def picklescan(venv, path, tmp):
    p = run([f"{venv}/bin/picklescan", "--path", str(path)], tmp)
    if p is None:
        return "error", "timeout"
    text = p.stdout.decode("utf-8", "replace")
    if p.returncode == 1:
        return "flagged", "dangerous globals"
    if p.returncode == 0:
        note = "suspicious globals only" if "Suspicious globals: 0" not in text else ""
        return "clean", note
    return "error", f"exit {p.returncode}"


def modelscan(venv, path, tmp):
    out = Path(tmp) / "modelscan.json"
    p = run([f"{venv}/bin/modelscan", "-p", str(path), "-r", "json", "-o", str(out)], tmp)
    if p is None:
        return "error", "timeout"
    if p.returncode == 1:
        try:
            sev = json.loads(out.read_text())["summary"]["total_issues_by_severity"]
            note = ",".join(f"{k}:{v}" for k, v in sev.items() if v)
        except Exception:  # noqa: BLE001 - the note is cosmetic
            note = ""
        return "flagged", note
    if p.returncode == 0:
        return "clean", ""
    return "error", {2: "scan error", 3: "no supported files"}.get(p.returncode,
                                                                    f"exit {p.returncode}")


def fickling(venv, path, tmp):
    p = run([f"{venv}/bin/python", "-c", FICKLING, str(path)], tmp)
    if p is None:
        return "error", "timeout"
    try:
        res = json.loads(p.stdout.decode().strip().splitlines()[-1])
    except Exception:  # noqa: BLE001
        return "error", f"exit {p.returncode}"
    return res["outcome"], "/".join(res["severity"])


def ckpt_verdicts(obj, found):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "verdict" and isinstance(v, str):
                found.append(v)
            else:
                ckpt_verdicts(v, found)
    elif isinstance(obj, list):
        for v in obj:
            ckpt_verdicts(v, found)
    return found


def ckpt(binary, path, tmp):
    p = run([str(binary), "scan", "--json", str(path)], tmp)
    if p is None:
        return "error", "timeout"
    try:
        found = ckpt_verdicts(json.loads(p.stdout.decode()), [])
    except Exception:  # noqa: BLE001
        found = []
    rank = {"safe": 0, "unsafe": 1, "dangerous": 2}
    verdict = max(found, key=lambda v: rank.get(v, -1)) if found else ""
    if p.returncode == 1:
        return "flagged", verdict
    if p.returncode == 0:
        return "clean", verdict
    return "error", verdict or f"exit {p.returncode}"


def score(expected, outcome):
    if expected == "safe":
        return "false_alarm" if outcome != "clean" else "ok"
    if expected == "error":
        return "caught" if outcome != "clean" else "missed"
    return "caught" if outcome == "flagged" else "missed"


def version(venv, dist):
    p = run([f"{venv}/bin/python", "-c",
             f"import importlib.metadata as m; print(m.version({dist!r}))"], None)
    return p.stdout.decode().strip() if p and p.returncode == 0 else "?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--venv", required=True)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    corpus = Path(args.corpus)
    manifest = json.loads((corpus / "expected.json").read_text())
    markers = sorted({e["marker"] for e in manifest.values() if e["marker"]})
    before = {m for m in markers if Path(m).exists()}

    tools = {"picklescan": lambda p, t: picklescan(args.venv, p, t),
             "modelscan": lambda p, t: modelscan(args.venv, p, t),
             "fickling": lambda p, t: fickling(args.venv, p, t)}
    versions = {name: version(args.venv, name) for name in tools}
    binary = Path(args.ckpt)
    notes = []
    help_run = run([str(binary), "scan", "--help"], None) if binary.is_file() else None
    if help_run is not None and help_run.returncode == 0:
        tools["ckpt"] = lambda p, t: ckpt(binary.resolve(), p, t)
        v = run([str(binary), "--version"], None)
        versions["ckpt"] = v.stdout.decode().strip().split()[-1] if v else "?"
    else:
        notes.append(f"ckpt skipped: `{binary} scan --help` fails (no `scan` subcommand yet).")
        print(f"note: {notes[-1]}", file=sys.stderr)

    jobs = [(tool, name) for name in sorted(manifest) for tool in tools]
    results = {}

    def one(job):
        tool, name = job
        with tempfile.TemporaryDirectory() as tmp:
            return job, tools[tool](corpus / name, tmp)

    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for job, res in pool.map(one, jobs):
            results[job] = res

    created = [m for m in markers if Path(m).exists() and m not in before]
    if created:
        notes.append(f"WARNING: markers appeared while scanning: {created}")

    classes = sorted({e["class"] for e in manifest.values()})
    lines = [f"Corpus: `tests/fixtures/attack/scan` ({len(manifest)} files: "
             + ", ".join(f"{v} {k}" for k, v in sorted(collections.Counter(
                 e["verdict"] for e in manifest.values()).items()))
             + f"). Tools: " + ", ".join(f"{t} {versions[t]}" for t in tools)
             + f". Date: {datetime.date.today().isoformat()}.", ""]
    lines.append("Each cell: caught/expected-to-catch (dangerous, unsafe and not-a-checkpoint "
                 "files), then false alarms/safe files where the class has safe files.")
    lines.append("")
    lines.append("| class | files | " + " | ".join(tools) + " |")
    lines.append("|---|---|" + "---|" * len(tools))
    totals = {t: collections.Counter() for t in tools}
    for cls in classes + ["**total**"]:
        names = [n for n, e in manifest.items() if cls == "**total**" or e["class"] == cls]
        bad = [n for n in names if manifest[n]["verdict"] != "safe"]
        safe = [n for n in names if manifest[n]["verdict"] == "safe"]
        cells = []
        for t in tools:
            s = collections.Counter(score(manifest[n]["verdict"], results[(t, n)][0])
                                    for n in names)
            errors = sum(results[(t, n)][0] == "error" for n in names)
            parts = []
            if bad:
                parts.append(f"{s['caught']}/{len(bad)}")
            if safe:
                parts.append(f"{s['false_alarm']}/{len(safe)} FA")
            if errors:
                parts.append(f"{errors} err")
            cells.append(", ".join(parts))
        counts = ", ".join(f"{k} {v}" for k, v in sorted(collections.Counter(
            manifest[n]["verdict"] for n in names).items()))
        lines.append(f"| {cls} | {counts} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Totals: " + "; ".join(
        f"{t}: caught {sum(score(manifest[n]['verdict'], results[(t, n)][0]) == 'caught' for n in manifest)}"
        f", missed {sum(score(manifest[n]['verdict'], results[(t, n)][0]) == 'missed' for n in manifest)}"
        f", false alarms {sum(score(manifest[n]['verdict'], results[(t, n)][0]) == 'false_alarm' for n in manifest)}"
        for t in tools) + ".")
    if "ckpt" in tools:
        same = sum(results[("ckpt", n)][1] == manifest[n]["verdict"]
                   or (manifest[n]["verdict"] == "error" and results[("ckpt", n)][0] == "error")
                   for n in manifest)
        lines += ["", f"ckpt verdicts equal to expected.json (dangerous/unsafe/safe/error): "
                      f"{same}/{len(manifest)}."]
    for note in notes:
        lines += ["", note]
    summary = "\n".join(lines) + "\n"

    detail = ["", "### Per file", "",
              "| file | expected | " + " | ".join(tools) + " |",
              "|---|---|" + "---|" * len(tools)]
    for n in sorted(manifest):
        cells = []
        for t in tools:
            out, note = results[(t, n)]
            mark = {"caught": "✔", "missed": "✘ missed", "false_alarm": "✘ false alarm",
                    "ok": "✔"}[score(manifest[n]["verdict"], out)]
            cells.append(f"{mark} ({out}{': ' + note if note else ''})")
        detail.append(f"| `{n}` | {manifest[n]['verdict']} | " + " | ".join(cells) + " |")
    text = summary + "\n".join(detail) + "\n"
    Path(args.out).write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
