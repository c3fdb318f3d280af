//! `-` for standard input (read to its end into a temporary file, reported as `-`) and,
//! for `convert`, standard output.

use serde_json::Value;

use crate::{ckpt, ckpt_stdin, fixtures, transcript};

fn example() -> Vec<u8> {
    std::fs::read(fixtures().join("../../examples/checkpoint.pt")).unwrap()
}

#[test]
fn every_reading_command_takes_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let input = example();
    let run = ckpt_stdin(dir.path(), &["inspect", "--json", "-"], &input);
    assert!(run.status.success(), "{}", transcript(&run));
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["path"], "-");
    assert_eq!(report["format"], "torch-zip");
    assert_eq!(report["totals"]["tensors"], 27);
    for args in [
        &["stats", "-"][..],
        &["verify", "-"],
        &["scan", "-"],
        &["diff", "-", "../../examples/checkpoint.pt"],
    ] {
        let run = ckpt_stdin(&fixtures(), args, &input);
        assert!(run.status.success(), "{args:?}: {}", transcript(&run));
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(!stdout.contains(".ckpt-stdin"), "{args:?}: {stdout}");
    }
    let run = ckpt_stdin(dir.path(), &["verify", "-"], &input);
    assert!(String::from_utf8_lossy(&run.stdout).starts_with("-: sound"));
    // Not a checkpoint: the error names `-`, not a temporary file, nor a download.
    let run = ckpt_stdin(dir.path(), &["inspect", "-"], b"garbage\n");
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.starts_with("error: -: not a checkpoint format"),
        "{stderr}"
    );
    assert!(!stderr.contains("download"), "{stderr}");
}

#[test]
fn convert_reads_and_writes_standard_streams() {
    let dir = tempfile::tempdir().unwrap();
    let run = ckpt_stdin(
        dir.path(),
        &["convert", "--to", "safetensors", "-", "-"],
        &example(),
    );
    assert!(run.status.success(), "{}", transcript(&run));
    std::fs::write(dir.path().join("out.safetensors"), &run.stdout).unwrap();
    let examples = fixtures().join("../../examples/checkpoint.pt");
    let run = ckpt(
        dir.path(),
        &["diff", "out.safetensors", examples.to_str().unwrap()],
    );
    assert!(run.status.success(), "{}", transcript(&run));
    // Standard output needs --to, and holds nothing else.
    let run = ckpt(dir.path(), &["convert", examples.to_str().unwrap(), "-"]);
    assert_eq!(run.status.code(), Some(2), "{}", transcript(&run));
    assert!(run.stdout.is_empty());
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".ckpt-stdout-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
