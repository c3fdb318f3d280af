//! PyTorch files made by real torch (tests/fixtures/ok/torch, with what torch saw in each
//! `.expected.json`), and broken or hostile ones (bad/torch, attack/torch).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{ckpt, fixtures, transcript};

fn files_with_expectations() -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    let mut stack = vec![fixtures().join("ok/torch")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(name) = path.to_str().and_then(|p| p.strip_suffix(".expected.json"))
            {
                let expected: Value =
                    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                let file = PathBuf::from(name);
                if !file.exists() {
                    // Real files too large to commit live in the interop venv (see the README).
                    assert!(
                        expected["source"]
                            .as_str()
                            .unwrap_or_default()
                            .contains("venv"),
                        "{}: the fixture is missing",
                        file.display()
                    );
                    continue;
                }
                out.push((file, expected));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() > 50,
        "expected the torch fixtures, found {}",
        out.len()
    );
    out
}

fn inspect_json(path: &Path) -> Value {
    let run = ckpt(
        &fixtures(),
        &["inspect", "--json", "--hash", path.to_str().unwrap()],
    );
    assert!(run.status.success(), "{}", transcript(&run));
    serde_json::from_slice(&run.stdout).unwrap()
}

/// JSON with every non-integer number spelled one way (`1e-08` and `1e-8` are the same
/// float); integers keep their exact text.
fn same_floats(value: &Value) -> Value {
    match value {
        Value::Number(n) if n.to_string().contains(['.', 'e', 'E']) => {
            Value::String(format!("{:?}", n.to_string().parse::<f64>().unwrap()))
        }
        Value::Array(items) => Value::Array(items.iter().map(same_floats).collect()),
        other => other.clone(),
    }
}

/// Every file reads exactly as torch saw it: tensors (names, order, dtypes, shapes,
/// hashes), what the file is, whether weights_only accepts it, the classes it needs, shared
/// storages and plain values.
#[test]
fn every_torch_fixture_reads_as_torch_saw_it() {
    for (path, expected) in files_with_expectations() {
        let got = inspect_json(&path);
        let context = path.display().to_string();
        assert_eq!(got["format"], expected["format"], "{context}");
        for key in ["kind", "weights_only", "needs", "shared"] {
            assert_eq!(got[key], expected[key], "{context}: {key}");
        }
        let tensors = |report: &Value| -> Vec<Value> {
            report["tensors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| serde_json::json!([t["name"], t["dtype"], t["shape"], t["sha256"]]))
                .collect()
        };
        assert_eq!(tensors(&got), tensors(&expected), "{context}: tensors");
        let strides = |report: &Value| -> Vec<Value> {
            report["tensors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| serde_json::json!([t["stride"], t["storage_offset"]]))
                .collect()
        };
        if expected["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.get("stride").is_some())
            && expected["kind"] != "module"
        {
            assert_eq!(strides(&got), strides(&expected), "{context}: strides");
        }
        let values = |report: &Value| -> Vec<Value> {
            report["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| serde_json::json!([v["name"], v["type"], same_floats(&v["value"])]))
                .collect()
        };
        assert_eq!(values(&got), values(&expected), "{context}: values");
    }
}

/// Converted to safetensors, every fixture whose dtypes safetensors can hold gives the
/// same tensors (names and element hashes); the others are refused naming the tensors.
#[test]
fn every_torch_fixture_converts_to_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (path, expected)) in files_with_expectations().into_iter().enumerate() {
        let out = dir.path().join(format!("{i}.safetensors"));
        let run = ckpt(
            dir.path(),
            &["convert", path.to_str().unwrap(), out.to_str().unwrap()],
        );
        let unstorable = expected["tensors"].as_array().unwrap().iter().any(|t| {
            matches!(
                t["dtype"].as_str().unwrap(),
                "complex128"
                    | "complex32"
                    | "qint8"
                    | "quint8"
                    | "qint32"
                    | "quint4x2"
                    | "quint2x4"
            )
        });
        if unstorable {
            assert_eq!(
                run.status.code(),
                Some(2),
                "{}: {}",
                path.display(),
                transcript(&run)
            );
            assert!(
                String::from_utf8_lossy(&run.stderr).contains("cannot be stored in safetensors")
            );
            assert!(!out.exists());
            continue;
        }
        assert!(
            run.status.success(),
            "{}: {}",
            path.display(),
            transcript(&run)
        );
        let got = inspect_json(&out);
        let hashes = |report: &Value| -> Vec<Value> {
            let mut rows: Vec<Value> = report["tensors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| serde_json::json!([t["name"], t["sha256"]]))
                .collect();
            rows.sort_by_key(|r| r[0].as_str().unwrap_or_default().to_owned());
            rows
        };
        assert_eq!(hashes(&got), hashes(&expected), "{}", path.display());
        assert_eq!(got["metadata"]["format"], "pt");
    }
}

#[test]
fn bad_and_attack_torch_files_fail_cleanly() {
    let rejected: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("rejected-torch.json")).unwrap())
            .unwrap();
    let rejected = rejected.as_object().unwrap();
    assert!(rejected.len() > 20);
    for (name, _) in rejected {
        let run = ckpt(&fixtures(), &["inspect", name]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{name}: {}", transcript(&run));
        assert!(run.stdout.is_empty(), "{name}");
        assert!(
            stderr.starts_with(&format!("error: {name}")),
            "{name}: {stderr}"
        );
        assert!(stderr.lines().count() <= 2, "{name}: {stderr}");
        if name.starts_with("attack/") {
            assert!(stderr.contains("runs code"), "{name}: {stderr}");
        }
    }
}

#[test]
fn what_a_file_is_and_how_to_load_it() {
    for name in [
        "ok/torch/checkpoint-2.15-zip.pt",
        "ok/torch/module-2.15-zip.pt",
        "ok/torch/torchscript_scripted-2.15.pt",
        "ok/torch/numpy-2.15-zip.pt",
        "attack/torch/os_system_reduce.pt",
    ] {
        let run = ckpt(&fixtures(), &["inspect", name]);
        let text = transcript(&run);
        insta::assert_snapshot!(name.replace(['/', '.'], "_"), text);
    }
}

#[test]
fn pickle_listings() {
    let run = ckpt(
        &fixtures(),
        &["inspect", "--pickle", "ok/torch/tensor-2.15-legacy.pt"],
    );
    assert!(run.status.success(), "{}", transcript(&run));
    insta::assert_snapshot!(String::from_utf8_lossy(&run.stdout));
    let run = ckpt(
        &fixtures(),
        &["inspect", "--pickle", "bad/torch/unknown_opcode.pt"],
    );
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(text.contains("# stops here: unknown opcode 0xff"), "{text}");
    let run = ckpt(
        &fixtures(),
        &["inspect", "--pickle", "ok/tiny-mlp.safetensors"],
    );
    assert_eq!(run.status.code(), Some(2));
}

/// Every fixture converts to a `.pth` that reads back as the source did (tensors with
/// their hashes, strides and offsets; shared storages; plain values), except the values
/// torch's weights-only loader cannot give back, which are refused.
#[test]
fn every_torch_fixture_converts_to_pth() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (path, expected)) in files_with_expectations().into_iter().enumerate() {
        let out = dir.path().join(format!("{i}.pth"));
        let run = ckpt(
            dir.path(),
            &["convert", path.to_str().unwrap(), out.to_str().unwrap()],
        );
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("values-") {
            assert_eq!(run.status.code(), Some(2), "{name}: {}", transcript(&run));
            assert!(String::from_utf8_lossy(&run.stderr).contains("`frozenset`"));
            assert!(!out.exists());
            continue;
        }
        assert!(run.status.success(), "{name}: {}", transcript(&run));
        let got = inspect_json(&out);
        assert_eq!(got["format"], "torch-zip", "{name}");
        assert_eq!(got["weights_only"], true, "{name}");
        let rows = |report: &Value| -> Vec<Value> {
            report["tensors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    serde_json::json!([
                        t["name"],
                        t["dtype"],
                        t["shape"],
                        t["stride"],
                        t["storage_offset"],
                        t["sha256"]
                    ])
                })
                .collect()
        };
        assert_eq!(rows(&got), rows(&expected), "{name}");
        assert_eq!(got["shared"], expected["shared"], "{name}");
        let values = |report: &Value| -> Vec<Value> {
            report["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| serde_json::json!([v["name"], v["type"], same_floats(&v["value"])]))
                .collect()
        };
        assert_eq!(values(&got), values(&expected), "{name}");
    }
}
