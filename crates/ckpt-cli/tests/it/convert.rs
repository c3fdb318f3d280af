//! `ckpt convert`.

use insta::assert_snapshot;
use serde_json::Value;

use crate::{ckpt, fixtures, leftovers, transcript};

/// Every fixture was written by HF's `save_file`; rewriting it gives the same bytes.
#[test]
fn safetensors_files_convert_to_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["dtypes", "shapes", "metadata", "empty", "names", "tiny-mlp"] {
        let input = fixtures().join(format!("ok/{name}.safetensors"));
        let output = dir.path().join(format!("{name}.safetensors"));
        let run = ckpt(
            dir.path(),
            &["convert", input.to_str().unwrap(), output.to_str().unwrap()],
        );
        assert!(run.status.success(), "{name}: {}", transcript(&run));
        assert_eq!(
            std::fs::read(&output).unwrap(),
            std::fs::read(&input).unwrap(),
            "{name}: ckpt and safetensors.torch.save_file wrote different bytes"
        );
    }
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn summary_as_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixtures().join("ok/tiny-mlp.safetensors");
    let run = ckpt(
        dir.path(),
        &["convert", input.to_str().unwrap(), "out.safetensors"],
    );
    let text = transcript(&run);
    let text = regex_lite_seconds(&text);
    assert_snapshot!(text);

    let run = ckpt(
        dir.path(),
        &[
            "convert",
            "--json",
            "--force",
            input.to_str().unwrap(),
            "out.safetensors",
        ],
    );
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["format"], "safetensors");
    assert_eq!(report["tensors"], 4);
    assert_eq!(report["parameters"], 58);
    assert_eq!(report["bytes"], std::fs::metadata(&input).unwrap().len());
    assert!(report["seconds"].as_f64().unwrap() >= 0.0);
}

/// Replaces the run time, which changes from run to run.
fn regex_lite_seconds(text: &str) -> String {
    let Some(at) = text.find(" in ") else {
        return text.to_owned();
    };
    let end = text[at..].find(" s\n").map_or(text.len(), |e| at + e);
    format!("{} in [TIME]{}", &text[..at], &text[end..])
}

#[test]
fn an_existing_output_is_kept_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixtures().join("ok/tiny-mlp.safetensors");
    let output = dir.path().join("out.safetensors");
    std::fs::write(&output, b"precious").unwrap();

    let run = ckpt(
        dir.path(),
        &["convert", input.to_str().unwrap(), "out.safetensors"],
    );
    assert_snapshot!(transcript(&run));
    assert_eq!(std::fs::read(&output).unwrap(), b"precious");

    let run = ckpt(
        dir.path(),
        &["convert", "-f", input.to_str().unwrap(), "out.safetensors"],
    );
    assert!(run.status.success(), "{}", transcript(&run));
    assert_eq!(
        std::fs::read(&output).unwrap(),
        std::fs::read(&input).unwrap()
    );
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn the_input_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("model.safetensors");
    std::fs::copy(fixtures().join("ok/tiny-mlp.safetensors"), &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    let run = ckpt(
        dir.path(),
        &[
            "convert",
            "--force",
            "model.safetensors",
            "./model.safetensors",
        ],
    );
    assert_snapshot!(transcript(&run));
    assert_eq!(std::fs::read(&input).unwrap(), before);
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn the_output_format_must_be_known() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixtures().join("ok/tiny-mlp.safetensors");
    let run = ckpt(
        dir.path(),
        &["convert", input.to_str().unwrap(), "model.weights"],
    );
    assert_snapshot!(transcript(&run));

    let run = ckpt(
        dir.path(),
        &[
            "convert",
            "--to",
            "safetensors",
            input.to_str().unwrap(),
            "model.weights",
        ],
    );
    assert!(run.status.success(), "{}", transcript(&run));
    assert_eq!(
        std::fs::read(dir.path().join("model.weights")).unwrap(),
        std::fs::read(&input).unwrap()
    );

    // `.pth` asks for PyTorch.
    let run = ckpt(
        dir.path(),
        &["convert", input.to_str().unwrap(), "model.pth"],
    );
    assert!(run.status.success(), "{}", transcript(&run));
    let written = std::fs::read(dir.path().join("model.pth")).unwrap();
    assert_eq!(&written[..2], b"PK");
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn a_bad_input_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixtures().join("bad/truncated_data.safetensors");
    let run = ckpt(
        dir.path(),
        &["convert", input.to_str().unwrap(), "out.safetensors"],
    );
    assert_eq!(run.status.code(), Some(2));
    assert!(!dir.path().join("out.safetensors").exists());
    assert!(leftovers(dir.path()).is_empty());
}

/// `sha256` of every tensor by name, from `inspect --json --hash`.
fn hashes(dir: &std::path::Path, file: &str) -> std::collections::BTreeMap<String, String> {
    let run = ckpt(dir, &["inspect", "--json", "--hash", file]);
    assert!(run.status.success(), "{}", transcript(&run));
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    report["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Adding a `module.` prefix and stripping it again gives back the same tensors; the
/// prefixed file gets a note suggesting --strip-prefix.
#[test]
fn key_surgery_renames_filters_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixtures().join("ok/tiny-mlp.safetensors");
    let input = input.to_str().unwrap();
    let run = ckpt(
        dir.path(),
        &[
            "convert",
            "--rename",
            "^=module.",
            input,
            "wrapped.safetensors",
        ],
    );
    assert_snapshot!("convert_rename", regex_lite_seconds(&transcript(&run)));

    let run = ckpt(
        dir.path(),
        &[
            "convert",
            "wrapped.safetensors",
            "still-wrapped.safetensors",
        ],
    );
    assert!(run.status.success(), "{}", transcript(&run));
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("--strip-prefix module."),
        "{}",
        transcript(&run)
    );

    let run = ckpt(
        dir.path(),
        &[
            "convert",
            "--strip-prefix",
            "module.",
            "wrapped.safetensors",
            "unwrapped.safetensors",
        ],
    );
    assert!(run.status.success(), "{}", transcript(&run));
    assert!(run.stderr.is_empty(), "{}", transcript(&run));
    assert_eq!(
        hashes(dir.path(), "unwrapped.safetensors"),
        hashes(dir.path(), input)
    );

    let run = ckpt(
        dir.path(),
        &[
            "convert",
            "--json",
            "--include",
            "*.weight",
            "--exclude",
            "2.*",
            input,
            "filtered.safetensors",
        ],
    );
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["tensors"], 1);
    assert_eq!(
        report["excluded"],
        serde_json::json!(["0.bias", "2.bias", "2.weight"])
    );
    let kept: Vec<String> = hashes(dir.path(), "filtered.safetensors")
        .into_keys()
        .collect();
    assert_eq!(kept, ["0.weight"]);
}

#[test]
fn key_surgery_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixtures().join("ok/tiny-mlp.safetensors");
    let input = input.to_str().unwrap();
    // The library's words, with the flags they come from (in the message or the hint).
    for (args, needle) in [
        (
            &["--rename", "[=x"][..],
            "--rename: rename rule `[=x`: not a regular expression",
        ),
        (
            &["--rename", "noequals"][..],
            "--rename: `noequals` is not a rename rule REGEX=REPLACEMENT",
        ),
        (
            &["--include", "a["][..],
            "--include: `a[` is not a valid include pattern",
        ),
        (
            &["--strip-prefix", ""][..],
            "--strip-prefix: a prefix to strip cannot be empty",
        ),
        (&["--rename", r"^\d\.=x."][..], "would both be written as"),
        (
            &["--rename", r"^\d\.=x."][..],
            "the rename rules (--rename)",
        ),
        (&["--exclude", "*"][..], "leave no tensor"),
        (&["--exclude", "*"][..], "the exclude patterns (--exclude)"),
    ] {
        let mut all = vec!["convert"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[input, "out.safetensors"]);
        let run = ckpt(dir.path(), &all);
        assert_eq!(run.status.code(), Some(2), "{}", transcript(&run));
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(leftovers(dir.path()).is_empty());
        assert!(!dir.path().join("out.safetensors").exists());
    }
}

/// `--max-shard-size` writes Hugging Face shards and an index into a folder, which then
/// replaces an earlier conversion only with --force.
#[test]
fn shards_go_to_a_folder_with_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixtures().join("ok/tiny-mlp.safetensors");
    let input = input.to_str().unwrap();
    let run = ckpt(
        dir.path(),
        &["convert", "--max-shard-size", "100B", input, "sharded"],
    );
    assert_snapshot!("convert_shards", regex_lite_seconds(&transcript(&run)));
    let index: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("sharded/model.safetensors.index.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(index["metadata"]["total_size"], 232);
    assert_eq!(
        index["weight_map"]["0.weight"],
        "model-00001-of-00003.safetensors"
    );
    // Each shard is a valid safetensors file holding the tensors the index says.
    let mut from_shards = std::collections::BTreeMap::new();
    for shard in ["00001", "00002", "00003"] {
        let name = format!("sharded/model-{shard}-of-00003.safetensors");
        from_shards.extend(hashes(dir.path(), &name));
    }
    assert_eq!(from_shards, hashes(dir.path(), input));

    // The folder is not empty now: refused, then replaced with --force (stale shards go,
    // other files stay).
    std::fs::write(dir.path().join("sharded/config.json"), b"{}").unwrap();
    let run = ckpt(
        dir.path(),
        &["convert", "--max-shard-size", "1KB", input, "sharded"],
    );
    assert_eq!(run.status.code(), Some(2), "{}", transcript(&run));
    assert!(String::from_utf8_lossy(&run.stderr).contains("not empty"));
    let run = ckpt(
        dir.path(),
        &[
            "convert",
            "--force",
            "--max-shard-size",
            "1KB",
            input,
            "sharded",
        ],
    );
    assert!(run.status.success(), "{}", transcript(&run));
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("sharded"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["config.json", "model.safetensors"]);
    assert_eq!(
        hashes(dir.path(), "sharded/model.safetensors"),
        hashes(dir.path(), input)
    );
    let mut top: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["sharded"], "no temporary folder is left behind");

    let run = ckpt(
        dir.path(),
        &["convert", "--max-shard-size", "5XB", input, "other"],
    );
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("--max-shard-size"));
    assert!(String::from_utf8_lossy(&run.stderr).contains("not a size"));
    assert!(!dir.path().join("other").exists());
}

/// `inspect --json --hash` of a file.
fn report(dir: &std::path::Path, file: &str) -> Value {
    let run = ckpt(dir, &["inspect", "--json", "--hash", file]);
    assert!(run.status.success(), "{}", transcript(&run));
    serde_json::from_slice(&run.stdout).unwrap()
}

/// A torch source converted to `.pth` keeps its whole tree: plain values, tied storages.
/// Key surgery writes a flat state dict of the surviving tensors and lists the values it
/// left out.
#[test]
fn torch_output_keeps_the_tree_unless_reshaped() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixtures().join("ok/torch/checkpoint-2.15-legacy.pt");
    let source = source.to_str().unwrap();
    let run = ckpt(dir.path(), &["convert", source, "modern.pth"]);
    assert!(run.status.success(), "{}", transcript(&run));
    assert!(run.stderr.is_empty(), "{}", transcript(&run));
    let (before, after) = (report(dir.path(), source), report(dir.path(), "modern.pth"));
    assert_eq!(after["format"], "torch-zip");
    assert_eq!(after["weights_only"], true);
    assert_eq!(after["records"]["archive_folder"], "modern");
    for key in ["kind", "keys", "shared", "values"] {
        assert_eq!(after[key], before[key], "{key}");
    }
    let without_offsets = |report: &Value| -> Vec<Value> {
        let mut tensors = report["tensors"].as_array().unwrap().clone();
        for t in &mut tensors {
            t.as_object_mut().unwrap().remove("offsets");
        }
        tensors
    };
    assert_eq!(without_offsets(&after), without_offsets(&before));

    let tied = fixtures().join("ok/torch/tied-2.15-zip.pt");
    let run = ckpt(dir.path(), &["convert", tied.to_str().unwrap(), "tied.bin"]);
    assert!(run.status.success(), "{}", transcript(&run));
    assert_eq!(
        report(dir.path(), "tied.bin")["shared"],
        serde_json::json!([["embed.weight", "lm_head.weight"]])
    );

    let run = ckpt(
        dir.path(),
        &[
            "convert",
            "--json",
            "--include",
            "model.*",
            "--strip-prefix",
            "model.",
            source,
            "weights.pt",
        ],
    );
    assert!(run.status.success(), "{}", transcript(&run));
    let summary: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(summary["format"], "pth");
    assert_eq!(summary["tensors"], 9);
    assert_eq!(summary["skipped_values"][0], "epoch");
    assert!(String::from_utf8_lossy(&run.stderr).contains("epoch"));
    let flat = report(dir.path(), "weights.pt");
    assert_eq!(flat["kind"], "state-dict");
    assert_eq!(flat["values"], serde_json::json!([]));
    let names: Vec<&str> = flat["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[..2], ["0.weight", "0.bias"]);
    assert_eq!(
        flat["tensors"][0]["sha256"], before["tensors"][0]["sha256"],
        "model.0.weight"
    );
}

/// Values that `torch.load(weights_only=True)` cannot give back are refused by name, and
/// nothing is written.
#[test]
fn torch_output_refuses_what_torch_cannot_load() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixtures().join("ok/torch/values-2.15-zip.pt");
    let run = ckpt(dir.path(), &["convert", source.to_str().unwrap(), "v.pth"]);
    assert_eq!(run.status.code(), Some(2), "{}", transcript(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    for name in [
        "`frozenset`",
        "`slice`",
        "`slice_none`",
        "`huge`",
        "one key of the checkpoint (--key)",
        "an include pattern (--include) such as `*`",
    ] {
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
    assert!(!dir.path().join("v.pth").exists());
    assert!(leftovers(dir.path()).is_empty());
}

/// `--to pth --max-shard-size` writes `pytorch_model-*.bin` shards and their index; tied
/// tensors share a shard and a storage, counted once in `total_size`.
#[test]
fn torch_shards_keep_tied_tensors_together() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixtures().join("ok/torch/tied-2.15-zip.pt");
    let source = source.to_str().unwrap();
    let run = ckpt(
        dir.path(),
        &[
            "convert",
            "--to",
            "pth",
            "--max-shard-size",
            "40B",
            source,
            "sharded",
        ],
    );
    assert!(run.status.success(), "{}", transcript(&run));
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("sharded"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "pytorch_model-00001-of-00002.bin",
            "pytorch_model-00002-of-00002.bin",
            "pytorch_model.bin.index.json"
        ]
    );
    let index: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("sharded/pytorch_model.bin.index.json")).unwrap(),
    )
    .unwrap();
    // embed.weight (60 bytes, shared with lm_head.weight) once, the two norms (12 each).
    assert_eq!(index["metadata"]["total_size"], 84);
    let first = "pytorch_model-00001-of-00002.bin";
    assert_eq!(index["weight_map"]["embed.weight"], first);
    assert_eq!(index["weight_map"]["lm_head.weight"], first);
    let shard = report(dir.path(), &format!("sharded/{first}"));
    assert_eq!(
        shard["shared"],
        serde_json::json!([["embed.weight", "lm_head.weight"]])
    );
    assert_eq!(
        shard["records"]["archive_folder"],
        "pytorch_model-00001-of-00002"
    );
    let mut from_shards = hashes(dir.path(), &format!("sharded/{first}"));
    from_shards.extend(hashes(
        dir.path(),
        "sharded/pytorch_model-00002-of-00002.bin",
    ));
    assert_eq!(from_shards, hashes(dir.path(), source));
}

/// `--dtype`: floating tensors are cast, the others kept and named; the values out of range
/// are counted per tensor (text: only the tensors that have some; JSON: every cast tensor).
#[test]
fn dtype_casts_floating_tensors_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixtures().join("ok/dtypes.safetensors");
    let run = ckpt(
        dir.path(),
        &[
            "convert",
            "--dtype",
            "float8_e4m3fn",
            input.to_str().unwrap(),
            "e4m3.safetensors",
        ],
    );
    assert_snapshot!("convert_dtype", regex_lite_seconds(&transcript(&run)));

    let run = ckpt(
        dir.path(),
        &[
            "convert",
            "--json",
            "--dtype",
            "bf16",
            input.to_str().unwrap(),
            "bf16.safetensors",
        ],
    );
    assert!(run.status.success(), "{}", transcript(&run));
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    let cast = &report["cast"];
    assert_eq!(cast["dtype"], "bfloat16");
    assert_eq!(cast["already"], 1);
    let tensors = cast["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 8, "{cast}");
    let float32 = tensors.iter().find(|t| t["name"] == "float32").unwrap();
    assert_eq!(float32["from"], "float32");
    assert_eq!(float32["to"], "bfloat16");
    assert_eq!(float32["overflowed_to_inf"], 1, "{float32}"); // max float32
    assert_eq!(float32["nan"], 3);
    let kept: Vec<&str> = cast["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k[0].as_str().unwrap())
        .collect();
    assert!(
        kept.contains(&"complex64") && kept.contains(&"int64"),
        "{kept:?}"
    );
    assert_eq!(
        cast["totals"]["elements"],
        tensors
            .iter()
            .map(|t| t["elements"].as_u64().unwrap())
            .sum::<u64>()
    );

    // Without overflow: one line.
    let run = ckpt(
        dir.path(),
        &[
            "convert",
            "--dtype",
            "float16",
            fixtures().join("ok/tiny-mlp.safetensors").to_str().unwrap(),
            "half.safetensors",
        ],
    );
    assert_snapshot!("convert_dtype_clean", regex_lite_seconds(&transcript(&run)));

    let run = ckpt(
        dir.path(),
        &[
            "convert",
            "--dtype",
            "int8",
            input.to_str().unwrap(),
            "x.safetensors",
        ],
    );
    assert_eq!(run.status.code(), Some(2), "{}", transcript(&run));
    assert!(!dir.path().join("x.safetensors").exists());
}

/// `--no-sync` writes the same bytes (only the wait for the disk is skipped), to a file and
/// to a folder of shards, and leaves no temporary file behind.
#[test]
fn no_sync_writes_the_same_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixtures().join("ok/tiny-mlp.safetensors");
    let input = input.to_str().unwrap();
    for (extra, out) in [
        (&[][..], "a.safetensors"),
        (&["--to", "pth", "--max-shard-size", "100B"][..], "shards"),
    ] {
        let mut synced = vec!["convert"];
        synced.extend_from_slice(extra);
        let mut unsynced = synced.clone();
        unsynced.push("--no-sync");
        let unsynced_out = format!("unsynced-{out}");
        synced.extend([input, out]);
        unsynced.extend([input, unsynced_out.as_str()]);
        for args in [&synced, &unsynced] {
            let run = ckpt(dir.path(), args);
            assert!(run.status.success(), "{}", transcript(&run));
        }
        let (a, b) = (dir.path().join(out), dir.path().join(&unsynced_out));
        if a.is_dir() {
            let names = |p: &std::path::Path| {
                let mut n: Vec<_> = std::fs::read_dir(p)
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                n.sort();
                n
            };
            assert_eq!(names(&a), names(&b));
            assert!(names(&a).len() > 2);
            for name in names(&a) {
                assert_eq!(
                    std::fs::read(a.join(&name)).unwrap(),
                    std::fs::read(b.join(&name)).unwrap()
                );
            }
        } else {
            assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        }
    }
    assert!(leftovers(dir.path()).is_empty());
}
