//! `ckpt inspect`.

use insta::assert_snapshot;
use serde_json::Value;

use crate::{ckpt, fixtures, transcript};

#[test]
fn tiny_mlp_as_text() {
    let output = ckpt(&fixtures(), &["inspect", "ok/tiny-mlp.safetensors"]);
    assert_snapshot!(transcript(&output));
}

#[test]
fn tiny_mlp_as_json_with_hashes() {
    let output = ckpt(
        &fixtures(),
        &["inspect", "--json", "--hash", "ok/tiny-mlp.safetensors"],
    );
    assert!(output.status.success());
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_snapshot!(serde_json::to_string_pretty(&report).unwrap());
}

#[test]
fn hashes_in_text_output() {
    let output = ckpt(&fixtures(), &["inspect", "--hash", "ok/shapes.safetensors"]);
    assert_snapshot!(transcript(&output));
}

#[test]
fn every_dtype() {
    let output = ckpt(&fixtures(), &["inspect", "ok/dtypes.safetensors"]);
    assert_snapshot!(transcript(&output));
}

#[test]
fn untrusted_names_and_metadata_are_escaped_on_the_terminal() {
    let output = ckpt(&fixtures(), &["inspect", "ok/names.safetensors"]);
    assert!(output.status.success());
    assert!(
        !output.stdout.contains(&0x1b),
        "a raw ESC reached the terminal"
    );
    assert_snapshot!(transcript(&output));

    let output = ckpt(&fixtures(), &["inspect", "ok/metadata.safetensors"]);
    assert!(!output.stdout.contains(&b'\r'));
    assert_snapshot!(transcript(&output));
}

#[test]
fn json_keeps_untrusted_text_exact() {
    let output = ckpt(&fixtures(), &["inspect", "--json", "ok/names.safetensors"]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let names: Vec<&str> = report["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"\u{1b}[31mred"), "{names:?}");
    assert!(names.contains(&""), "{names:?}");
}

#[test]
fn an_empty_checkpoint() {
    let output = ckpt(&fixtures(), &["inspect", "ok/empty.safetensors"]);
    assert_snapshot!(transcript(&output));
    let output = ckpt(&fixtures(), &["inspect", "--json", "ok/empty.safetensors"]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["tensors"], Value::Array(vec![]));
    assert_eq!(report["totals"]["parameters"], 0);
}

/// Several paths: each report in turn (a JSON array with --json); an unreadable one is
/// reported on stderr and skipped, and the exit code is then 2.
#[test]
fn several_files_one_after_another() {
    let dir = fixtures();
    let run = ckpt(
        &dir,
        &[
            "inspect",
            "ok/tiny-mlp.safetensors",
            "missing.pt",
            "ok/empty.safetensors",
        ],
    );
    assert_eq!(run.status.code(), Some(2), "{}", transcript(&run));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.starts_with("ok/tiny-mlp.safetensors\n"), "{stdout}");
    assert!(stdout.contains("\n\nok/empty.safetensors\n"), "{stdout}");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.starts_with("error: missing.pt: cannot open"),
        "{stderr}"
    );

    let run = ckpt(
        &dir,
        &[
            "inspect",
            "--json",
            "ok/tiny-mlp.safetensors",
            "ok/empty.safetensors",
        ],
    );
    assert!(run.status.success(), "{}", transcript(&run));
    let reports: Value = serde_json::from_slice(&run.stdout).unwrap();
    let paths: Vec<&str> = reports
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["ok/tiny-mlp.safetensors", "ok/empty.safetensors"]);
}

/// A training checkpoint's configuration objects: listed as objects kept inert, their fields
/// as values, a path, a date or an enum as its natural JSON value with the class as type.
#[test]
fn configuration_objects_in_json() {
    let run = ckpt(
        &fixtures(),
        &[
            "inspect",
            "--json",
            "ok/frameworks/lightning/richdict/manual.ckpt",
        ],
    );
    assert!(run.status.success(), "{}", transcript(&run));
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    let value = |name: &str| {
        report["values"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no value {name}"))
            .clone()
    };
    for (name, class, json) in [
        (
            "hyper_parameters.data_dir",
            "pathlib.PosixPath",
            serde_json::json!("/data/tiny"),
        ),
        (
            "hyper_parameters.mode",
            "myproj.config.Mode",
            serde_json::json!("train"),
        ),
        (
            "hyper_parameters.precision",
            "myproj.config.Precision",
            serde_json::json!(32),
        ),
        (
            "hyper_parameters.started_utc",
            "datetime.datetime",
            serde_json::json!("2024-05-01T12:30:00+00:00"),
        ),
        (
            "hyper_parameters.train_cfg.optim.lr",
            "float",
            serde_json::json!(0.001),
        ),
    ] {
        let row = value(name);
        assert_eq!(row["type"], class, "{name}");
        assert_eq!(row["value"], json, "{name}");
    }
    let objects: Vec<(&str, &str)> = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["name"].as_str().unwrap(), o["class"].as_str().unwrap()))
        .collect();
    assert!(objects.contains(&("hyper_parameters.train_cfg", "myproj.config.TrainCfg")));
    assert!(objects.contains(&("hyper_parameters.data_dir", "pathlib.PosixPath")));
}
