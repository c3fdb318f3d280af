//! `ckpt::verify`: every good fixture is sound, and every planted defect fires exactly
//! the rule it breaks.

use std::path::{Path, PathBuf};

use ckpt::verify::{self, Manifest, Severity};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Every file (and shard or DCP folder) under `ok/`.
fn good_inputs() -> Vec<PathBuf> {
    let mut inputs = Vec::new();
    let ok = fixtures().join("ok");
    for folder in [ok.clone(), ok.join("torch"), ok.join("torch/pypi")] {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_file() && !name.ends_with(".json") && !name.ends_with(".md") {
                inputs.push(path);
            }
        }
    }
    for folder in ["shards", "dcp"] {
        for entry in std::fs::read_dir(ok.join(folder)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                inputs.push(path);
            }
        }
    }
    inputs.sort();
    inputs
}

#[test]
fn every_good_fixture_is_sound() {
    let inputs = good_inputs();
    assert!(inputs.len() > 80, "{}", inputs.len());
    let mut unsound = Vec::new();
    for path in &inputs {
        let report = verify::verify_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for problem in report.problems() {
            unsound.push(format!("{}: {problem}", path.display()));
        }
    }
    assert!(unsound.is_empty(), "{}", unsound.join("\n"));
}
