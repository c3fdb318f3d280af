//! Checkpoints of several files: Hugging Face sharded folders and torch.distributed.checkpoint
//! folders, inspected and converted to one file.

use insta::assert_snapshot;
use serde_json::Value;

use crate::{ckpt, fixtures, leftovers, transcript};

#[test]
fn inspect_a_dcp_folder() {
    let dir = fixtures().join("ok/dcp");
    let run = ckpt(&dir, &["inspect", "sharded-2.15"]);
    assert_snapshot!(transcript(&run));
}

/// A save without collectives, inspected through one rank's metadata file.
#[test]
fn inspect_a_dcp_folder_saved_without_collectives() {
    let dir = fixtures().join("ok/dcp");
    let run = ckpt(&dir, &["inspect", "ranks-2.15/__1.metadata"]);
    assert_snapshot!(transcript(&run));
}

/// A folder of `HuggingFaceStorageWriter` files, one per rank, without an index.
#[test]
fn inspect_a_dcp_folder_of_safetensors_files() {
    let dir = fixtures().join("ok/dcp");
    let run = ckpt(&dir, &["inspect", "hf-2.15"]);
    assert_snapshot!(transcript(&run));
}

/// One of those files alone says that it may hold parts, and how to read them whole.
#[test]
fn one_rank_file_says_it_holds_parts() {
    let dir = fixtures().join("ok/dcp/hf-2.15");
    let run = ckpt(
        &dir,
        &["inspect", "shard-00002-model-00001-of-00001.safetensors"],
    );
    assert!(run.status.success(), "{}", transcript(&run));
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(out.contains("one rank's file"), "{out}");
    assert!(out.contains("ckpt convert FOLDER"), "{out}");
}

#[test]
fn inspect_a_sharded_folder_as_json() {
    let dir = fixtures().join("ok/shards");
    let run = ckpt(&dir, &["inspect", "--json", "--hash", "safetensors"]);
    assert!(run.status.success(), "{}", transcript(&run));
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["format"], "safetensors");
    assert_eq!(report["records"]["shards"], "4");
    let expected: Value =
        serde_json::from_slice(&std::fs::read(dir.join("safetensors.expected.json")).unwrap())
            .unwrap();
    let tensors = report["tensors"].as_array().unwrap();
    for want in expected["tensors"].as_array().unwrap() {
        let row = tensors
            .iter()
            .find(|t| t["name"] == want["name"])
            .unwrap_or_else(|| panic!("{} missing", want["name"]));
        assert_eq!(row["sha256"], want["sha256"]);
        assert_eq!(row["files"], want["files"]);
    }
}

/// Each folder converts to one safetensors file holding exactly the tensors torch loads.
#[test]
fn folders_convert_to_one_file() {
    let dir = tempfile::tempdir().unwrap();
    for (folder, expected) in [
        ("ok/dcp/single-2.15", "ok/dcp/single-2.15.expected.json"),
        ("ok/dcp/sharded-2.15", "ok/dcp/sharded-2.15.expected.json"),
        ("ok/dcp/ranks-2.15", "ok/dcp/ranks-2.15.expected.json"),
        ("ok/dcp/hf-2.15", "ok/dcp/hf-2.15.expected.json"),
        (
            "ok/shards/safetensors",
            "ok/shards/safetensors.expected.json",
        ),
        (
            "ok/shards/bin/pytorch_model.bin.index.json",
            "ok/shards/bin.expected.json",
        ),
    ] {
        let input = fixtures().join(folder);
        let run = ckpt(
            dir.path(),
            &[
                "convert",
                "--force",
                input.to_str().unwrap(),
                "one.safetensors",
            ],
        );
        assert!(run.status.success(), "{folder}: {}", transcript(&run));
        let run = ckpt(
            dir.path(),
            &["inspect", "--json", "--hash", "one.safetensors"],
        );
        let report: Value = serde_json::from_slice(&run.stdout).unwrap();
        let expected: Value =
            serde_json::from_slice(&std::fs::read(fixtures().join(expected)).unwrap()).unwrap();
        let got = report["tensors"].as_array().unwrap();
        let want = expected["tensors"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{folder}");
        for want in want {
            let row = got.iter().find(|t| t["name"] == want["name"]).unwrap();
            assert_eq!(row["dtype"], want["dtype"], "{folder}");
            assert_eq!(row["shape"], want["shape"], "{folder}");
            assert_eq!(row["sha256"], want["sha256"], "{folder} {}", want["name"]);
        }
    }
    assert!(leftovers(dir.path()).is_empty());
}

/// A shard of the input is never the output, even with --force.
#[test]
fn a_shard_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let shards = dir.path().join("shards");
    std::fs::create_dir(&shards).unwrap();
    for entry in std::fs::read_dir(fixtures().join("ok/shards/safetensors")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, shards.join(path.file_name().unwrap())).unwrap();
    }
    let run = ckpt(
        dir.path(),
        &[
            "convert",
            "--force",
            "shards",
            "shards/model-00001-of-00004.safetensors",
        ],
    );
    assert_eq!(run.status.code(), Some(2), "{}", transcript(&run));
    assert!(String::from_utf8_lossy(&run.stderr).contains("the output is the input"));
}

#[test]
fn bad_folders_fail_with_one_error_line() {
    let dir = fixtures();
    for folder in ["bad/dcp/chunk_gap", "bad/shards/path_escape"] {
        let run = ckpt(&dir, &["inspect", folder]);
        assert_eq!(run.status.code(), Some(2), "{}", transcript(&run));
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(
            stderr.lines().filter(|l| l.starts_with("error:")).count(),
            1
        );
    }
}

/// A model folder without an index reads as its weights file, transformers' choice first,
/// and says which file it read when it holds two; convert's own single-shard output is one.
#[test]
fn model_folders_without_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixtures().join("ok/frameworks/hf_trainer/checkpoint-2/model.safetensors");
    let path = source.to_str().unwrap();
    let run = ckpt(
        dir.path(),
        &["convert", "--max-shard-size", "1GB", path, "one-shard"],
    );
    assert!(run.status.success(), "{}", transcript(&run));
    assert!(dir.path().join("one-shard/model.safetensors").is_file());
    let run = ckpt(dir.path(), &["diff", "one-shard", path]);
    assert!(run.status.success(), "{}", transcript(&run));

    let run = ckpt(
        dir.path(),
        &[
            "convert",
            "one-shard/model.safetensors",
            "one-shard/pytorch_model.bin",
        ],
    );
    assert!(run.status.success(), "{}", transcript(&run));
    let run = ckpt(dir.path(), &["inspect", "--json", "one-shard"]);
    assert!(run.status.success(), "{}", transcript(&run));
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["format"], "safetensors");
    assert_eq!(report["path"], "one-shard/model.safetensors");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("note: one-shard: the folder holds `model.safetensors` and `pytorch_model.bin`: `model.safetensors` was read"),
        "{stderr}"
    );
    assert!(leftovers(dir.path()).is_empty());
}
