//! `ckpt verify`: the text report, the JSON shape, exit codes, and manifests written by
//! one format and checked against another (through `ckpt convert`).

use serde_json::Value;

use crate::{ckpt, fixtures, transcript};

#[test]
fn text_report_lists_every_problem() {
    let run = ckpt(
        &fixtures(),
        &[
            "verify",
            "ok/tiny-mlp.safetensors",
            "ok/torch/checkpoint-2.15-legacy.pt",
            "bad/offsets_reversed.safetensors",
            "bad/torch/stride_past_end.pt",
            "bad/torch/deflate_data_record.pt",
            "bad/shards/wrong_shard",
        ],
    );
    assert_eq!(run.status.code(), Some(1), "{}", transcript(&run));
    insta::assert_snapshot!(transcript(&run));
}

#[test]
fn json_shape() {
    let run = ckpt(
        &fixtures(),
        &[
            "verify",
            "--json",
            "ok/shards/safetensors",
            "bad/truncated_data.safetensors",
            "bad/too_short.safetensors",
        ],
    );
    // Problems found win over a file that cannot be read at all, as in scan and stats.
    assert_eq!(run.status.code(), Some(1), "{}", transcript(&run));
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    insta::assert_snapshot!(serde_json::to_string_pretty(&report).unwrap());
}

#[test]
fn exit_codes() {
    let code = |args: &[&str]| ckpt(&fixtures(), args).status.code();
    assert_eq!(
        code(&["verify", "ok/dcp/sharded-2.15", "ok/torch/tar-0.3.pt"]),
        Some(0)
    );
    assert_eq!(code(&["verify", "bad/dcp/chunk_gap"]), Some(1));
    assert_eq!(code(&["verify", "no-such-file.pt"]), Some(2));
    // --hash takes one file; a manifest that is not one is an error.
    assert_eq!(
        code(&["verify", "--hash", "/nonexistent/m.json", "a", "b"]),
        Some(2)
    );
    assert_eq!(
        code(&[
            "verify",
            "--manifest",
            "ok/tiny-mlp.safetensors",
            "ok/tiny-mlp.safetensors"
        ]),
        Some(2)
    );
}

#[test]
fn a_manifest_survives_conversion_and_catches_one_changed_element() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixtures().join("ok/torch/state_dict-2.15-zip-p2.pt");
    let input = input.to_str().unwrap();
    let run = ckpt(dir.path(), &["verify", "--hash", "m.json", input]);
    assert_eq!(run.status.code(), Some(0), "{}", transcript(&run));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("m.json")).unwrap()).unwrap();
    assert_eq!(manifest["ckpt_manifest"], 1);
    assert_eq!(manifest["tensors"][0]["name"], "0.weight");
    // The manifest is not replaced without --force.
    let again = ckpt(dir.path(), &["verify", "--hash", "m.json", input]);
    assert_eq!(again.status.code(), Some(2), "{}", transcript(&again));
    let forced = ckpt(
        dir.path(),
        &["verify", "--force", "--hash", "m.json", input],
    );
    assert_eq!(forced.status.code(), Some(0), "{}", transcript(&forced));

    let run = ckpt(dir.path(), &["convert", input, "out.safetensors"]);
    assert_eq!(run.status.code(), Some(0), "{}", transcript(&run));
    let run = ckpt(
        dir.path(),
        &["verify", "--manifest", "m.json", "out.safetensors"],
    );
    assert_eq!(run.status.code(), Some(0), "{}", transcript(&run));

    // One element of `0.weight` changed (its bytes found through `inspect --json`).
    let inspect = ckpt(dir.path(), &["inspect", "--json", "out.safetensors"]);
    let inspect: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let row = inspect["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "0.weight")
        .unwrap();
    let start = usize::try_from(row["offsets"][0].as_u64().unwrap()).unwrap();
    let path = dir.path().join("out.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[start + 5] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let run = ckpt(
        dir.path(),
        &["verify", "--manifest", "m.json", "out.safetensors"],
    );
    assert_eq!(run.status.code(), Some(1), "{}", transcript(&run));
    insta::assert_snapshot!(transcript(&run));

    // `ckpt inspect --json --hash` output is a manifest too.
    let hashed = ckpt(dir.path(), &["inspect", "--json", "--hash", input]);
    std::fs::write(dir.path().join("inspect.json"), &hashed.stdout).unwrap();
    let run = ckpt(dir.path(), &["verify", "--manifest", "inspect.json", input]);
    assert_eq!(run.status.code(), Some(0), "{}", transcript(&run));
}

/// A folder that is not one checkpoint is walked for those it holds, as scan walks it (a
/// Trainer's `checkpoint-N/` gives its model, optimizer, scheduler, RNG states and
/// arguments); a folder with none is an error for both commands, never a silent pass.
#[test]
fn folders_are_walked_and_an_empty_one_is_an_error() {
    let run = ckpt(
        &fixtures(),
        &["verify", "--json", "ok/frameworks/hf_trainer"],
    );
    assert!(run.status.success(), "{}", transcript(&run));
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    let paths: Vec<&str> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "ok/frameworks/hf_trainer/checkpoint-2/model.safetensors",
            "ok/frameworks/hf_trainer/checkpoint-2/optimizer.pt",
            "ok/frameworks/hf_trainer/checkpoint-2/rng_state.pth",
            "ok/frameworks/hf_trainer/checkpoint-2/scheduler.pt",
            "ok/frameworks/hf_trainer/checkpoint-2/training_args.bin",
            "ok/frameworks/hf_trainer/seq2seq_training_args.bin",
        ]
    );
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir(empty.path().join("sub")).unwrap();
    std::fs::write(empty.path().join("sub/notes.txt"), "not a checkpoint").unwrap();
    for command in ["verify", "scan"] {
        let run = ckpt(empty.path(), &[command, "."]);
        assert_eq!(
            run.status.code(),
            Some(2),
            "{command}: {}",
            transcript(&run)
        );
        let text = String::from_utf8_lossy(&run.stdout).into_owned()
            + &String::from_utf8_lossy(&run.stderr);
        assert!(text.contains("this folder holds no"), "{command}: {text}");
    }
}

/// A manifest taken of a training checkpoint checks the model converted out of it, named
/// as the conversion named it (--key, --strip-prefix); `diff --key-a` compares the same.
#[test]
fn a_manifest_checks_a_converted_subtree() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixtures().join("ok/frameworks/lightning/richdict/manual.ckpt");
    let source = source.to_str().unwrap();
    let run = ckpt(dir.path(), &["verify", "--hash", "m.json", source]);
    assert!(run.status.success(), "{}", transcript(&run));
    let run = ckpt(
        dir.path(),
        &[
            "convert",
            "--key",
            "state_dict",
            "--strip-prefix",
            "net.",
            source,
            "model.safetensors",
        ],
    );
    assert!(run.status.success(), "{}", transcript(&run));
    let mapped = [
        "verify",
        "--manifest",
        "m.json",
        "--key",
        "state_dict",
        "--strip-prefix",
        "net.",
        "model.safetensors",
    ];
    let run = ckpt(dir.path(), &mapped);
    assert_eq!(run.status.code(), Some(0), "{}", transcript(&run));
    assert!(String::from_utf8_lossy(&run.stdout).contains("9 tensors hashed"));
    // Without the mapping, every name differs.
    let run = ckpt(
        dir.path(),
        &["verify", "--manifest", "m.json", "model.safetensors"],
    );
    assert_eq!(run.status.code(), Some(1), "{}", transcript(&run));
    let run = ckpt(
        dir.path(),
        &[
            "verify",
            "--manifest",
            "m.json",
            "--key",
            "nope",
            "model.safetensors",
        ],
    );
    assert_eq!(run.status.code(), Some(2), "{}", transcript(&run));
    assert!(String::from_utf8_lossy(&run.stderr).contains("no tensor under the key `nope`"));

    let run = ckpt(
        dir.path(),
        &[
            "diff",
            "--key-a",
            "state_dict",
            "--strip-prefix-a",
            "net.",
            source,
            "model.safetensors",
        ],
    );
    assert_eq!(run.status.code(), Some(0), "{}", transcript(&run));
    let run = ckpt(
        dir.path(),
        &["diff", "--key", "nope", source, "model.safetensors"],
    );
    assert_eq!(run.status.code(), Some(2), "{}", transcript(&run));
    assert!(String::from_utf8_lossy(&run.stderr).contains("has no key `nope`"));
}
