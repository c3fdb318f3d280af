//! `ckpt diff`.

use insta::assert_snapshot;
use serde_json::Value;

use crate::{ckpt, fixtures, transcript};

fn ok() -> std::path::PathBuf {
    fixtures().join("ok")
}

/// The same weights in shard folders of the two formats, and in a torch zip and a legacy
/// file: equal, exit 0.
#[test]
fn equal_across_containers() {
    let run = ckpt(&ok(), &["diff", "shards/bin", "shards/safetensors"]);
    assert_snapshot!(transcript(&run));
    let run = ckpt(
        &ok(),
        &[
            "diff",
            "torch/module-2.15-zip.pt",
            "torch/module-2.0-legacy.pt",
        ],
    );
    assert_eq!(run.status.code(), Some(0), "{}", transcript(&run));
}

/// torch 2.0 and 2.15 ran the same training steps: the optimizer states differ in the last
/// bits, a bias by more, and the two name some settings differently. Exit 1.
#[test]
fn differences_as_text_and_json() {
    let (a, b) = (
        "torch/checkpoint-2.15-zip.pt",
        "torch/checkpoint-2.0-legacy.pt",
    );
    let run = ckpt(&ok(), &["diff", a, b]);
    assert_snapshot!(transcript(&run));

    let run = ckpt(&ok(), &["diff", "--json", a, b]);
    assert_eq!(run.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["equal"], false);
    assert_eq!(report["tolerance"]["mode"], "exact");
    assert_eq!(report["a"]["format"], "torch-zip");
    assert_eq!(report["b"]["format"], "torch-legacy");
    assert_eq!(report["summary"]["compared"], 27);
    assert_eq!(report["summary"]["differ"], 5);
    let bias = report["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "model.0.bias")
        .unwrap();
    assert_eq!(bias["status"], "differ");
    let d = &bias["differences"];
    assert_eq!(
        (d["count"].as_u64(), d["elements"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(d["first_index"], serde_json::json!([1]));
    assert_eq!(d["max_abs_index"], serde_json::json!([2]));
    assert!(d["max_abs"].as_f64().unwrap() > 1e-3);
    assert_eq!(
        report["values"]["only_in_a"][0],
        "optimizer.param_groups.0.decoupled_weight_decay"
    );

    // Within 1e-2 the tensors are close, but the settings still differ: exit 1.
    let run = ckpt(&ok(), &["diff", "--json", "--atol", "1e-2", a, b]);
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["summary"]["equal"], 27);
    assert_eq!(
        report["tolerance"]["rtol"].as_f64(),
        Some(1e-5),
        "torch's default"
    );
    assert_eq!(run.status.code(), Some(1));
    // Only the model (--include filters plain values too), within tolerance: exit 0.
    let run = ckpt(
        &ok(),
        &["diff", "--atol", "1e-2", "--include", "model.*", a, b],
    );
    assert_eq!(run.status.code(), Some(0), "{}", transcript(&run));
}

/// A float32 model against its bfloat16 cast: a dtype mismatch with differing values;
/// within tolerances and --ignore-dtype, equal.
#[test]
fn dtype_mismatch_and_tolerances() {
    let dir = tempfile::tempdir().unwrap();
    let input = ok().join("tiny-mlp.safetensors");
    std::fs::copy(&input, dir.path().join("fp32.safetensors")).unwrap();
    let run = ckpt(
        dir.path(),
        &[
            "convert",
            "--dtype",
            "bfloat16",
            "fp32.safetensors",
            "bf16.safetensors",
        ],
    );
    assert!(run.status.success(), "{}", transcript(&run));
    let run = ckpt(
        dir.path(),
        &["diff", "fp32.safetensors", "bf16.safetensors"],
    );
    assert_snapshot!(transcript(&run));
    let close = [
        "diff",
        "--atol",
        "0",
        "--rtol",
        "1e-2",
        "fp32.safetensors",
        "bf16.safetensors",
    ];
    let run = ckpt(dir.path(), &close);
    assert_eq!(run.status.code(), Some(1), "dtypes still differ");
    let run = ckpt(dir.path(), &[&close[..], &["--ignore-dtype"]].concat());
    assert_snapshot!("dtype_mismatch_ignored", transcript(&run));
}

/// Names matched through a prefix on one side; untrusted names escaped.
#[test]
fn names_matched_and_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = ok().join("torch/checkpoint-2.15-zip.pt");
    let run = ckpt(
        dir.path(),
        &[
            "convert",
            "--key",
            "model",
            checkpoint.to_str().unwrap(),
            "model.safetensors",
        ],
    );
    assert!(run.status.success(), "{}", transcript(&run));
    let run = ckpt(
        dir.path(),
        &[
            "diff",
            "--strip-prefix-a",
            "model.",
            "--include",
            "[0-9]*",
            checkpoint.to_str().unwrap(),
            "model.safetensors",
        ],
    );
    assert_eq!(run.status.code(), Some(0), "{}", transcript(&run));
    let run = ckpt(
        dir.path(),
        &[
            "diff",
            "--json",
            "--rename-b",
            "^=model.",
            checkpoint.to_str().unwrap(),
            "model.safetensors",
        ],
    );
    // The optimizer state is only in A; every model tensor matched and equal.
    assert_eq!(run.status.code(), Some(1), "{}", transcript(&run));
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    let summary = &report["summary"];
    assert_eq!(summary["only_in_b"], 0);
    assert_eq!(summary["compared"], summary["equal"]);
    assert_eq!(summary["compared"], 9);
    assert_eq!(report["tensors"][0]["name_b"], "0.weight");

    let run = ckpt(&ok(), &["diff", "names.safetensors", "empty.safetensors"]);
    assert_snapshot!(transcript(&run));
}

#[test]
fn errors_exit_2() {
    let run = ckpt(
        &ok(),
        &["diff", "tiny-mlp.safetensors", "missing.safetensors"],
    );
    assert_eq!(run.status.code(), Some(2));
    let run = ckpt(
        &ok(),
        &[
            "diff",
            "--atol",
            "-1",
            "tiny-mlp.safetensors",
            "tiny-mlp.safetensors",
        ],
    );
    assert_snapshot!(transcript(&run));
    let run = ckpt(
        &ok(),
        &[
            "diff",
            "--rename-a",
            "(=x",
            "tiny-mlp.safetensors",
            "tiny-mlp.safetensors",
        ],
    );
    assert_eq!(run.status.code(), Some(2));
}

/// With --ignore-dtype, tensors of another dtype are compared by value and not listed as
/// mismatches.
#[test]
fn ignored_dtypes_are_not_mismatches() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixtures().join("ok/tiny-mlp.safetensors");
    let run = ckpt(
        dir.path(),
        &[
            "convert",
            "--dtype",
            "float64",
            source.to_str().unwrap(),
            "wide.safetensors",
        ],
    );
    assert!(run.status.success(), "{}", transcript(&run));
    let run = ckpt(
        dir.path(),
        &[
            "diff",
            "--ignore-dtype",
            "wide.safetensors",
            source.to_str().unwrap(),
        ],
    );
    assert!(run.status.success(), "{}", transcript(&run));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(!stdout.contains("mismatches"), "{stdout}");
    assert!(
        stdout
            .contains("4 tensors compared: 4 equal, 4 of another dtype, compared by value (equal)"),
        "{stdout}"
    );
    let run = ckpt(
        dir.path(),
        &["diff", "wide.safetensors", source.to_str().unwrap()],
    );
    assert_eq!(run.status.code(), Some(1), "{}", transcript(&run));
    assert!(String::from_utf8_lossy(&run.stdout).contains("mismatches (4)"));
}
