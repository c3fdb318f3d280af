//! `ckpt stats`.

use insta::assert_snapshot;
use serde_json::Value;

use crate::{ckpt, fixtures, transcript};

#[test]
fn tiny_mlp_with_histograms() {
    let output = ckpt(
        &fixtures(),
        &["stats", "--histogram", "ok/tiny-mlp.safetensors"],
    );
    assert_eq!(output.status.code(), Some(0));
    assert_snapshot!(transcript(&output));
}

#[test]
fn every_dtype_flags_nan_and_inf_and_exits_1() {
    let output = ckpt(&fixtures(), &["stats", "ok/dtypes.safetensors"]);
    assert_eq!(output.status.code(), Some(1));
    assert_snapshot!(transcript(&output));
}

#[test]
fn torch_file_with_values_zeros_and_a_filter() {
    let output = ckpt(
        &fixtures(),
        &[
            "stats",
            "--include",
            "*weight*",
            "--exclude",
            "*.2.*",
            "ok/torch/checkpoint-2.15-zip.pt",
        ],
    );
    assert_snapshot!(transcript(&output));
}

#[test]
fn json_has_every_number_and_the_histogram() {
    let output = ckpt(
        &fixtures(),
        &["stats", "--json", "--bins", "4", "ok/dtypes.safetensors"],
    );
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let f64s = report["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "float64")
        .unwrap();
    // The sum of squares overflows: std is "inf" (a string), as torch's is inf.
    assert_eq!(f64s["std"], "inf");
    assert_eq!(f64s["histogram"]["edges"].as_array().unwrap().len(), 5);
    assert_eq!(report["summary"]["flagged"], 10);
    assert_snapshot!(serde_json::to_string_pretty(&report["tensors"][0]).unwrap());
    assert_snapshot!(serde_json::to_string_pretty(&report["summary"]).unwrap());
}

#[test]
fn untrusted_names_are_escaped() {
    let output = ckpt(&fixtures(), &["stats", "ok/names.safetensors"]);
    assert!(
        !output.stdout.contains(&0x1b),
        "a raw ESC reached the terminal"
    );
    assert_snapshot!(transcript(&output));
}

#[test]
fn bins_are_bounded_and_errors_exit_2() {
    let output = ckpt(
        &fixtures(),
        &["stats", "--bins", "5000", "ok/tiny-mlp.safetensors"],
    );
    assert_eq!(output.status.code(), Some(2));
    let output = ckpt(&fixtures(), &["stats", "bad/does-not-exist.safetensors"]);
    assert_eq!(output.status.code(), Some(2));
    assert_snapshot!(transcript(&output));
}
