"""Driver of scripts/scan-compare.sh: run each scanner on each corpus item, score, print Markdown.

An item is one key of a corpus's expected.json: a file, or a folder scanned as a whole (the
loader corpus's `dcp_bytes_item`). Outcome of one tool on one item: `flagged` (it reports a
problem), `clean` (it reports nothing, exit 0) or `error` (it could not scan the item). Scored
against expected.json:

* dangerous / unsafe items: caught when flagged; missed when clean or error (a scan error is
  counted as a miss, and listed);
* error items (not checkpoints at all): caught when flagged or error, missed when clean;
* safe items: a false alarm when flagged or error.

How each tool is asked (its ordinary use, exit codes as a CI pipeline sees them):
picklescan --path F (exit 1 = dangerous globals found; "suspicious" globals alone exit 0),
modelscan -p F -r json (exit 1 = issues of any severity; 2 error; 3 nothing it can scan),
fickling's scan_zip_archive for zip files and scan_file otherwise, graceful (its `--check-safety`
CLI finds no pickle in a torch zip): flagged unless every result is LIKELY_SAFE or better,
error when it reports parse errors and nothing worse; modelaudit scan --format json --no-cache F
(exit 1 = a WARNING or CRITICAL finding, 2 = an error or an incomplete scan, even beside
findings; INFO findings alone exit 0), with telemetry off and a throwaway HOME; ckpt scan --json F
(exit 0 safe, 1 unsafe or dangerous, 2 error).

A folder item goes to picklescan, modelscan, modelaudit and ckpt as the folder (each walks it
itself); fickling takes one file at a time, so it is run on every file of the folder and the
item's outcome is the worst of them (flagged, then error, then clean); its time is their sum.

Where expected.json names the payload (`payload_global`, the loader corpus), a caught item also
records whether the tool's report names that global (`module.name`, `module name`,
`module:name` or `from module import name`; os, posix and nt count as one module): a flag
raised for something else (a torch global an allowlist does not know, a parse error) still
counts as caught, but not as named.

Times: each run is timed by wall clock (process start to exit, interpreter start included); a
tool's total over a corpus is the wall time of all its runs, one after another unless --jobs > 1
(then two tools never run at once either: the tools take turns, each over a whole corpus).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIMEOUT = 300

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
messages = [f"{a.message} {a.trigger or ''}" for r in results for rs in r.results
            for a in rs.results if a.message]
print(json.dumps({"outcome": out, "severity": [r.severity.name for r in results],
                  "errors": errors[:2], "messages": messages}))
"""

TOOLS = ["picklescan", "modelscan", "fickling", "modelaudit", "ckpt"]
RANK = {"clean": 0, "error": 1, "flagged": 2}


class Run:
    """One tool on one item: outcome, a short note, the text that names what it found, time."""

    def __init__(self, outcome, note="", text="", seconds=0.0):
        self.outcome, self.note, self.text, self.seconds = outcome, note, text, seconds


def run(cmd, cwd, env=None):
    """Returns (CompletedProcess or None on timeout, seconds)."""
    start = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=TIMEOUT, check=False, env=env)
    except subprocess.TimeoutExpired:
        p = None
    return p, time.perf_counter() - start


def timeout_run(seconds):
    return Run("error", f"timeout after {TIMEOUT} s", "", seconds)


def picklescan(venv, path, tmp):
    p, t = run([f"{venv}/bin/picklescan", "--path", str(path)], tmp)
    if p is None:
        return timeout_run(t)
    text = p.stdout.decode("utf-8", "replace")
    found = "\n".join(line for line in text.splitlines() if " import '" in line)
    scanned = re.search(r"Scanned files: (\d+)", text)
    if p.returncode == 1:
        return Run("flagged", "dangerous globals", found, t)
    if p.returncode == 0:
        notes = []
        if scanned and scanned.group(1) == "0":
            notes.append("scanned 0 files")
        if "Suspicious globals: 0" not in text:
            notes.append("suspicious globals only")
        return Run("clean", ", ".join(notes), found, t)
    return Run("error", f"exit {p.returncode}", found, t)


def modelscan(venv, path, tmp):
    out = Path(tmp) / "modelscan.json"
    p, t = run([f"{venv}/bin/modelscan", "-p", str(path), "-r", "json", "-o", str(out)], tmp)
    if p is None:
        return timeout_run(t)
    try:
        report = json.loads(out.read_text())
    except Exception:  # noqa: BLE001 - no report: the exit code decides
        report = {}
    found = "\n".join(f"{i.get('module')}.{i.get('operator')}" for i in report.get("issues", []))
    if p.returncode == 1:
        sev = report.get("summary", {}).get("total_issues_by_severity", {})
        return Run("flagged", ",".join(f"{k}:{v}" for k, v in sev.items() if v), found, t)
    if p.returncode == 0:
        scanned = report.get("summary", {}).get("scanned", {}).get("total_scanned")
        return Run("clean", "scanned 0 files" if scanned == 0 else "", found, t)
    return Run("error", {2: "scan error", 3: "no supported files"}.get(p.returncode,
                                                                       f"exit {p.returncode}"),
               found, t)


def fickling(venv, path, tmp):
    p, t = run([f"{venv}/bin/python", "-c", FICKLING, str(path)], tmp)
    if p is None:
        return timeout_run(t)
    try:
        res = json.loads(p.stdout.decode().strip().splitlines()[-1])
    except Exception:  # noqa: BLE001
        return Run("error", f"exit {p.returncode}", "", t)
    return Run(res["outcome"], "/".join(res["severity"]), "\n".join(res["messages"]), t)


def modelaudit(venv, path, tmp):
    out = Path(tmp) / "modelaudit.json"
    # A throwaway HOME: modelaudit keeps a user id, a config and caches under ~; telemetry off.
    env = dict(os.environ, HOME=tmp, PROMPTFOO_DISABLE_TELEMETRY="1", NO_ANALYTICS="1")
    p, t = run([f"{venv}/bin/modelaudit", "scan", "--format", "json", "--no-cache",
                "--output", str(out), str(path)], tmp, env)
    if p is None:
        return timeout_run(t)
    try:
        report = json.loads(out.read_text())
    except Exception:  # noqa: BLE001 - no report: the exit code decides
        report = {}
    issues = report.get("issues") or []
    found = "\n".join(str(i.get("message", "")) for i in issues
                      if i.get("severity") in ("warning", "critical"))
    sev = collections.Counter(str(i.get("severity")) for i in issues)
    note = ",".join(f"{k}:{sev[k]}" for k in ("critical", "warning", "info") if sev[k])
    if p.returncode == 1:
        return Run("flagged", note, found, t)
    if p.returncode == 0:
        return Run("clean", note, found, t)
    if p.returncode == 2:
        why = "error" if report.get("has_errors") else "incomplete scan"
        return Run("error", f"exit 2 ({why}){', ' + note if note else ''}", found, t)
    return Run("error", f"exit {p.returncode}", found, t)


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
    p, t = run([str(binary), "scan", "--json", str(path)], tmp)
    if p is None:
        return timeout_run(t)
    try:
        report = json.loads(p.stdout.decode())
    except Exception:  # noqa: BLE001
        report = {}
    found = ckpt_verdicts(report, [])
    names = "\n".join(f.get("global") or "" for file in report.get("files", [])
                      for f in file.get("findings", []))
    rank = {"safe": 0, "unsafe": 1, "dangerous": 2}
    verdict = max(found, key=lambda v: rank.get(v, -1)) if found else ""
    if p.returncode == 1:
        return Run("flagged", verdict, names, t)
    if p.returncode == 0:
        return Run("clean", verdict, names, t)
    kinds = sorted({e.get("kind", "?") for file in report.get("files", [])
                    for e in file.get("errors", [])})
    return Run("error", ", ".join(kinds) or verdict or f"exit {p.returncode}", names, t)


def names_payload(text, payload):
    """Whether a tool's report names the payload global `module.name` (os/posix/nt as one)."""
    if not payload or not text:
        return False
    module, _, name = payload.rpartition(".")
    modules = ["os", "posix", "nt"] if module in ("os", "posix", "nt") else [module]
    alt = "|".join(re.escape(m) for m in modules)
    sep = r"(?:\s+import\s+|[.\s:]+)"  # module.name, `module name`, `from module import name`
    return re.search(rf"(?<![\w])(?:{alt}){sep}{re.escape(name)}(?![\w])", text) is not None


def score(expected, outcome):
    if expected == "safe":
        return "false_alarm" if outcome != "clean" else "ok"
    if expected == "error":
        return "caught" if outcome != "clean" else "missed"
    return "caught" if outcome == "flagged" else "missed"


def version(venv, dist):
    p, _ = run([f"{venv}/bin/python", "-c",
                f"import importlib.metadata as m; print(m.version({dist!r}))"], None)
    return p.stdout.decode().strip() if p and p.returncode == 0 else "?"


def seconds(s):
    if s >= 100:
        return f"{s:.0f} s"
    if s >= 10:
        return f"{s:.1f} s"
    if s >= 0.1:
        return f"{s:.2f} s"
    return f"{s * 1000:.0f} ms" if s >= 0.01 else f"{s * 1000:.1f} ms"


def counts_text(verdicts):
    return ", ".join(f"{v} {k}" for k, v in sorted(collections.Counter(verdicts).items()))


class Corpus:
    def __init__(self, label, path):
        self.label, self.path = label, Path(path).resolve()
        self.manifest = json.loads((self.path / "expected.json").read_text())
        self.items = sorted(self.manifest)
        self.results = {}  # (tool, item) -> Run
        self.wall = {}  # tool -> seconds

    def rel(self):
        try:
            return self.path.resolve().relative_to(Path.cwd().resolve()).as_posix()
        except ValueError:
            return self.path.as_posix()

    def verdict(self, item):
        return self.manifest[item]["verdict"]

    def score(self, tool, item):
        return score(self.verdict(item), self.results[(tool, item)].outcome)

    def named(self, tool, item):
        payload = self.manifest[item].get("payload_global")
        r = self.results[(tool, item)]
        return self.score(tool, item) == "caught" and names_payload(r.text, payload)

    def has_payloads(self):
        return any(e.get("payload_global") for e in self.manifest.values())

    def describe(self):
        folders = [i for i in self.items if (self.path / i).is_dir()]
        text = (f"`{self.rel()}`: {len(self.items)} items ("
                + counts_text(self.verdict(i) for i in self.items) + ")")
        if folders:
            text += ", " + ", ".join(f"`{f}`" for f in folders) + " a folder scanned as one"
        return text


def run_item(tools, tool, path, tmp):
    """One tool on one item; a folder goes file by file to a tool that takes no folder."""
    fn, takes_folder = tools[tool]
    if path.is_dir() and not takes_folder:
        files = sorted(p for p in path.rglob("*") if p.is_file())
        runs = [fn(f, tmp) for f in files]
        worst = max(runs, key=lambda r: RANK[r.outcome])
        note = "; ".join(f"{f.relative_to(path)}: {r.outcome}{' ' + r.note if r.note else ''}"
                         for f, r in zip(files, runs))
        return Run(worst.outcome, f"per file: {note}", "\n".join(r.text for r in runs),
                   sum(r.seconds for r in runs))
    return fn(path, tmp)


def class_table(c, tools):
    lines = ["Each cell: caught/expected-to-catch (dangerous, unsafe and not-a-checkpoint "
             "items), then false alarms/safe items where the class has safe items.", "",
             "| class | items | " + " | ".join(tools) + " |",
             "|---|---|" + "---|" * len(tools)]
    classes = sorted({e["class"] for e in c.manifest.values()})
    for cls in classes + ["**total**"]:
        names = [n for n in c.items if cls == "**total**" or c.manifest[n]["class"] == cls]
        bad = [n for n in names if c.verdict(n) != "safe"]
        safe = [n for n in names if c.verdict(n) == "safe"]
        cells = []
        for t in tools:
            s = collections.Counter(c.score(t, n) for n in names)
            errors = sum(c.results[(t, n)].outcome == "error" for n in names)
            parts = []
            if bad:
                parts.append(f"{s['caught']}/{len(bad)}")
            if safe:
                parts.append(f"{s['false_alarm']}/{len(safe)} FA")
            if errors:
                parts.append(f"{errors} err")
            cells.append(", ".join(parts))
        lines.append(f"| {cls} | {counts_text(c.verdict(n) for n in names)} | "
                     + " | ".join(cells) + " |")
    return lines


def tool_totals(c, t):
    s = collections.Counter(c.score(t, n) for n in c.items)
    times = [c.results[(t, n)].seconds for n in c.items]
    return {"caught": s["caught"], "missed": s["missed"], "false_alarm": s["false_alarm"],
            "errors": sum(c.results[(t, n)].outcome == "error" for n in c.items),
            "named": sum(c.named(t, n) for n in c.items), "wall": c.wall[t],
            "median": statistics.median(times) if times else 0.0,
            "fastest": min(times) if times else 0.0}


def totals_table(c, tools):
    named = c.has_payloads()
    head = "| tool | caught | missed (err) | false alarms |" + (" payload named |" if named
                                                               else "")
    head += " time, whole corpus | median per item | fastest item |"
    lines = [head, "|---|---|---|---|" + ("---|" if named else "") + "---|---|---|"]
    bad = sum(c.verdict(n) != "safe" for n in c.items)
    safe = len(c.items) - bad
    for t in tools:
        x = tool_totals(c, t)
        row = (f"| {t} | {x['caught']}/{bad} | {x['missed']} ({x['errors']} err) | "
               + (f"{x['false_alarm']}/{safe} |" if safe else "– |"))
        if named:
            row += f" {x['named']}/{x['caught']} |"
        row += f" {seconds(x['wall'])} | {seconds(x['median'])} | {seconds(x['fastest'])} |"
        lines.append(row)
    return lines


def overall_table(corpora, tools):
    bad = sum(c.verdict(n) != "safe" for c in corpora for n in c.items)
    safe = sum(c.verdict(n) == "safe" for c in corpora for n in c.items)
    items = sum(len(c.items) for c in corpora)
    lines = [f"Both corpora: {items} items ({bad} to catch, {safe} safe).", "",
             "| tool | caught | missed (err) | false alarms | time, both corpora |",
             "|---|---|---|---|---|"]
    for t in tools:
        xs = [tool_totals(c, t) for c in corpora]
        lines.append(f"| {t} | {sum(x['caught'] for x in xs)}/{bad} | "
                     f"{sum(x['missed'] for x in xs)} ({sum(x['errors'] for x in xs)} err) | "
                     f"{sum(x['false_alarm'] for x in xs)}/{safe} | "
                     f"{seconds(sum(x['wall'] for x in xs))} |")
    return lines


def outcome_text(r):
    return r.outcome + (f": {r.note}" if r.note and r.note != r.outcome else "")


def ckpt_lines(c):
    same = sum(c.results[("ckpt", n)].note == c.verdict(n)
               or (c.verdict(n) == "error" and c.results[("ckpt", n)].outcome == "error")
               for n in c.items)
    lines = [f"ckpt verdicts equal to expected.json (dangerous/unsafe/safe/error): "
             f"{same}/{len(c.items)}."]
    wrong = [n for n in c.items if c.score("ckpt", n) in ("missed", "false_alarm")]
    if wrong:
        lines += ["", "ckpt misses and false alarms:", ""]
        by_class = collections.defaultdict(list)
        for n in wrong:
            by_class[c.manifest[n]["class"]].append(n)
        for cls in sorted(by_class):
            lines.append(f"- {cls}: " + ", ".join(
                f"`{n}` ({outcome_text(c.results[('ckpt', n)])})" for n in by_class[cls]))
    return lines


def per_file_table(c, tools):
    lines = [f"### Per item: `{c.rel()}`", "",
             "| item | expected | " + " | ".join(tools) + " |",
             "|---|---|" + "---|" * len(tools)]
    for n in c.items:
        cells = []
        for t in tools:
            r = c.results[(t, n)]
            mark = {"caught": "✔", "missed": "✘ missed", "false_alarm": "✘ false alarm",
                    "ok": "✔"}[c.score(t, n)]
            if c.named(t, n):
                mark += " named"
            text = outcome_text(r).replace("|", "\\|").replace("\n", " ")
            cells.append(f"{mark} ({text}; {seconds(r.seconds)})")
        lines.append(f"| `{n}` | {c.verdict(n)} | " + " | ".join(cells) + " |")
    return lines


def replace_doc(doc, summary):
    begin = "<!-- scan-compare:begin -->"
    end = "<!-- scan-compare:end -->"
    text = doc.read_text()
    a, b = text.find(begin), text.find(end)
    if a < 0 or b < a:
        sys.exit(f"scan-compare: {doc} has no {begin} ... {end} markers; not rewritten")
    doc.write_text(text[:a + len(begin)] + "\n\n" + summary + "\n" + text[b:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--venv", required=True)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--corpus", action="append", required=True, metavar="LABEL=FOLDER")
    ap.add_argument("--out", required=True)
    ap.add_argument("--doc", help="rewrite the results part of this Markdown file")
    ap.add_argument("--no-doc", action="store_true")
    ap.add_argument("--jobs", type=int, default=1,
                    help="runs at once (default 1: the times are then each tool's alone)")
    ap.add_argument("--tools", help="comma-separated subset of " + ",".join(TOOLS))
    ap.add_argument("--offline", action="store_true", help="(set by scan-compare.sh under "
                    "unshare -n: the scans ran without network)")
    args = ap.parse_args()
    corpora = [Corpus(*spec.split("=", 1)) for spec in args.corpus]
    venv = args.venv

    tools = {"picklescan": (lambda p, t: picklescan(venv, p, t), True),
             "modelscan": (lambda p, t: modelscan(venv, p, t), True),
             "fickling": (lambda p, t: fickling(venv, p, t), False),
             "modelaudit": (lambda p, t: modelaudit(venv, p, t), True)}
    versions = {name: version(venv, name) for name in tools}
    binary = Path(args.ckpt)
    notes = []
    help_run, _ = run([str(binary), "scan", "--help"], None) if binary.is_file() else (None, 0)
    if help_run is not None and help_run.returncode == 0:
        resolved = binary.resolve()
        tools["ckpt"] = (lambda p, t: ckpt(resolved, p, t), True)
        v, _ = run([str(binary), "--version"], None)
        versions["ckpt"] = v.stdout.decode().strip().split()[-1] if v else "?"
    else:
        notes.append(f"ckpt skipped: `{binary} scan --help` fails (no `scan` subcommand yet).")
    if args.tools:
        keep = args.tools.split(",")
        tools = {k: v for k, v in tools.items() if k in keep}
    names = [t for t in TOOLS if t in tools]
    if not args.offline:
        notes.append("The scans ran with network access (`unshare -n` was not available).")

    load_before = os.getloadavg()[0]
    markers = sorted({e["marker"] for c in corpora for e in c.manifest.values()
                      if e.get("marker")})
    before = {m for m in markers if Path(m).exists()}

    def one(job):
        c, tool, item = job
        with tempfile.TemporaryDirectory() as tmp:
            return job, run_item(tools, tool, c.path / item, tmp)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for c in corpora:
            for tool in names:
                print(f"scan-compare: {tool} on {c.rel()} ({len(c.items)} items)",
                      file=sys.stderr, flush=True)
                start = time.perf_counter()
                for (_, t, item), res in pool.map(one, [(c, tool, i) for i in c.items]):
                    c.results[(t, item)] = res
                c.wall[tool] = time.perf_counter() - start

    created = [m for m in markers if Path(m).exists() and m not in before]
    if created:
        notes.append(f"WARNING: markers appeared while scanning: {created}")

    out = ["Tools: " + ", ".join(f"{t} {versions[t]}" for t in names)
           + f". Date: {datetime.date.today().isoformat()}. Runs: {args.jobs} at a time"
           + (", without network" if args.offline else "")
           + f"; load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
           + f" on {os.cpu_count()} cores.", ""]
    for c in corpora:
        out += [f"### Corpus `{c.label}`", "", c.describe() + ".", ""]
        out += class_table(c, names) + [""]
        out += totals_table(c, names) + [""]
        if "ckpt" in tools:
            out += ckpt_lines(c) + [""]
    if len(corpora) > 1:
        out += ["### Both corpora", ""] + overall_table(corpora, names) + [""]
    for note in notes:
        out += [note, ""]
    summary = "\n".join(out).rstrip("\n") + "\n"

    detail = []
    for c in corpora:
        detail += [""] + per_file_table(c, names)
    text = "## Scan comparison\n\n" + summary + "\n".join(detail) + "\n"
    Path(args.out).write_text(text)
    sys.stdout.write(text)
    if args.doc and not args.no_doc and not args.tools:
        replace_doc(Path(args.doc), summary)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)


if __name__ == "__main__":
    main()
