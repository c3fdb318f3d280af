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

/// A safetensors file of `(name, dtype, shape, bytes)` tensors.
fn safetensors(tensors: &[(&str, &str, &[usize], Vec<u8>)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in tensors {
        let start = data.len();
        data.extend_from_slice(bytes);
        header.insert(
            (*name).to_owned(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let header = serde_json::to_vec(&header).unwrap();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(&data);
    out
}

/// An integer counter that is legitimately zero (BatchNorm's `num_batches_tracked` before
/// training) is noted, not flagged; a floating tensor of zeros is; --flag-zero chooses.
#[test]
fn zero_counters_are_noted_and_zeroed_weights_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let ones: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
    let counter = safetensors(&[
        ("bn.weight", "F32", &[2], ones.clone()),
        (
            "bn.num_batches_tracked",
            "I64",
            &[],
            0i64.to_le_bytes().to_vec(),
        ),
    ]);
    std::fs::write(dir.path().join("counter.safetensors"), counter).unwrap();
    let run = ckpt(dir.path(), &["stats", "counter.safetensors"]);
    assert_eq!(run.status.code(), Some(0), "{}", transcript(&run));
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(text.contains("flagged     none"), "{text}");
    assert!(text.contains("all zero    1 (noted, not flagged"), "{text}");
    let run = ckpt(
        dir.path(),
        &["stats", "--flag-zero", "any", "counter.safetensors"],
    );
    assert_eq!(run.status.code(), Some(1), "{}", transcript(&run));

    let zeroed = safetensors(&[("w", "F32", &[2], ones), ("b", "BF16", &[2], vec![0; 4])]);
    std::fs::write(dir.path().join("zeroed.safetensors"), zeroed).unwrap();
    let run = ckpt(dir.path(), &["stats", "--json", "zeroed.safetensors"]);
    assert_eq!(run.status.code(), Some(1), "{}", transcript(&run));
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["summary"]["all_zero"], 1);
    assert_eq!(report["summary"]["flagged"], 1);
    let run = ckpt(
        dir.path(),
        &["stats", "--flag-zero", "none", "zeroed.safetensors"],
    );
    assert_eq!(run.status.code(), Some(0), "{}", transcript(&run));
}

/// Several files: a flagged tensor (exit 1) outranks a file that could not be read (2),
/// as in `scan` and `verify`.
#[test]
fn several_files_and_the_exit_code_when_findings_and_errors_mix() {
    let dir = fixtures();
    let run = ckpt(&dir, &["stats", "ok/tiny-mlp.safetensors", "missing.pt"]);
    assert_eq!(run.status.code(), Some(2), "{}", transcript(&run));
    let run = ckpt(
        &dir,
        &[
            "stats",
            "--json",
            "ok/tiny-mlp.safetensors",
            "ok/dtypes.safetensors",
            "missing.pt",
        ],
    );
    assert_eq!(run.status.code(), Some(1), "{}", transcript(&run));
    let reports: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(reports.as_array().unwrap().len(), 2);
}
