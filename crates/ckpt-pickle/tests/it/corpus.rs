//! The differential corpus of `tests/fixtures/pickle/` (written by its `generate.py` with
//! CPython 3.11): loading the files, and the list of known disagreements.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

/// `tests/fixtures/pickle/` at the workspace root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pickle")
}

/// One `.pkl` file and its `.json` description.
pub(crate) struct Case {
    pub(crate) name: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) json: Value,
}

fn load_folder(folder: &str) -> Vec<Case> {
    let dir = root().join(folder);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "pkl"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(&path).unwrap();
            let text = std::fs::read_to_string(path.with_extension("json")).unwrap();
            let json =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{folder}/{name}.json: {e}"));
            Case { name, bytes, json }
        })
        .collect()
}

/// `ok/`: pickles CPython loads, with `ops` and `value`.
pub(crate) fn ok() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        let cases = load_folder("ok");
        assert!(cases.len() > 100, "the corpus is missing: run generate.py");
        cases
    })
}

/// `bad/`: pickles CPython refuses, with its exception and the sensible `ErrorKind`s.
pub(crate) fn bad() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        let cases = load_folder("bad");
        assert!(cases.len() > 40, "the corpus is missing: run generate.py");
        cases
    })
}

/// `stress/`: very deep nestings CPython loads.
pub(crate) fn stress() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| load_folder("stress"))
}

pub(crate) fn ok_case(name: &str) -> &'static Case {
    ok().iter()
        .find(|case| case.name == name)
        .unwrap_or_else(|| panic!("no ok/{name}.pkl"))
}

pub(crate) fn bad_case(name: &str) -> &'static Case {
    bad()
        .iter()
        .find(|case| case.name == name)
        .unwrap_or_else(|| panic!("no bad/{name}.pkl"))
}

/// Which comparison a known disagreement breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// `Decoder` against `pickletools.genops` (`ok/`).
    Ops,
    /// `parse` rendered against CPython's symbolic unpickling (`ok/`).
    Value,
    /// `parse` must fail with a sensible `ErrorKind` (`bad/`).
    Rejects,
}

/// Runs `f` on every case, skipping the known disagreements of `check`, and fails once with
/// the list of every case that failed (so one run shows them all).
pub(crate) fn for_each(cases: &[Case], check: Check, f: impl Fn(&Case) -> Result<(), String>) {
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in cases {
        if crate::known_bugs::is_known(check, &case.name) {
            continue;
        }
        ran += 1;
        if let Err(message) = f(case) {
            failures.push(format!("--- {}: {message}", case.name));
        }
    }
    assert!(ran > 0);
    assert!(
        failures.is_empty(),
        "{} of {ran} files disagree with CPython:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
