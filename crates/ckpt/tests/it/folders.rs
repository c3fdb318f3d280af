//! Checkpoints of several files: Hugging Face sharded folders and torch.distributed.checkpoint
//! folders written by real huggingface_hub and torch (`tests/fixtures/ok/{shards,dcp}`), and
//! the broken ones of `bad/{shards,dcp}` (`rejected-folders.json`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ckpt::model::{ByteOrder, Storage, Tile};
use ckpt::{Dtype, ErrorKind, Format, Source, TensorView, Value};
use serde_json::Value as Json;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn ok_folders() -> Vec<(PathBuf, Format)> {
    let mut folders = Vec::new();
    for (parent, format) in [
        ("ok/dcp", None),
        ("ok/shards/safetensors", Some(Format::Safetensors)),
        ("ok/shards/bin", Some(Format::TorchZip)),
    ] {
        let parent = fixtures().join(parent);
        if let Some(format) = format {
            folders.push((parent, format));
            continue;
        }
        for entry in std::fs::read_dir(&parent).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push((path, Format::DistributedCheckpoint));
            }
        }
    }
    folders.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(folders.len() >= 4);
    folders
}

/// Every tensor reads as what torch loaded (DCP: `dcp_to_torch_save`; shards: each shard
/// loaded and merged), with the files that hold it, and every plain value as torch saw it.
#[test]
fn ok_folders_read_as_torch_loads_them() {
    for (folder, format) in ok_folders() {
        let expected_path = PathBuf::from(format!("{}.expected.json", folder.display()));
        let expected: Json =
            serde_json::from_slice(&std::fs::read(&expected_path).unwrap()).unwrap();
        let source = Source::open(&folder).unwrap_or_else(|e| panic!("{e}"));
        assert!(source.is_multi_file());
        assert_eq!(source.format().unwrap(), format);
        let checkpoint = source.checkpoint().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(checkpoint.format(), format);
        let got: BTreeMap<String, &TensorView<'_>> = checkpoint.tensors().into_iter().collect();
        let want = expected["tensors"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{}", folder.display());
        for want in want {
            let name = want["name"].as_str().unwrap();
            let context = format!("{} `{name}`", folder.display());
            let view = got
                .get(name)
                .unwrap_or_else(|| panic!("{context}: missing"));
            assert_eq!(view.dtype().name(), want["dtype"], "{context}");
            assert_eq!(serde_json::to_value(view.shape()).unwrap(), want["shape"]);
            assert_eq!(hex(&view.sha256().unwrap()), want["sha256"], "{context}");
            assert_eq!(
                serde_json::to_value(view.files()).unwrap(),
                want["files"],
                "{context}"
            );
        }
        let values: BTreeMap<String, String> = checkpoint
            .values()
            .into_iter()
            .map(|(name, value)| (name, value.type_name().to_owned()))
            .collect();
        let want_values: BTreeMap<String, String> = expected["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["name"].as_str().unwrap().to_owned(),
                    v["type"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(values, want_values, "{}", folder.display());
    }
}

/// The index file and the `.metadata` file open the same checkpoint as their folder.
#[test]
fn index_and_metadata_files_open_their_folder() {
    let shards = fixtures().join("ok/shards/safetensors");
    let by_index = Source::open(shards.join("model.safetensors.index.json")).unwrap();
    let by_folder = Source::open(&shards).unwrap();
    let names = |s: &Source| -> Vec<String> {
        s.checkpoint()
            .unwrap()
            .tensors()
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    };
    assert_eq!(names(&by_index), names(&by_folder));
    assert_eq!(by_folder.files().len(), 5);

    let dcp = fixtures().join("ok/dcp/sharded-2.15");
    let by_metadata = Source::open(dcp.join(".metadata")).unwrap();
    assert_eq!(names(&by_metadata), names(&Source::open(&dcp).unwrap()));
    // The 2x2 grid of chunks: one tiled view over the four rank files.
    let checkpoint = by_metadata.checkpoint().unwrap();
    let grid = checkpoint
        .tensors()
        .into_iter()
        .find(|(n, _)| n == "grid")
        .unwrap()
        .1
        .clone();
    assert_eq!(grid.tiles().unwrap().len(), 4);
    assert_eq!(grid.data(), None);
}

/// A DCP save without collectives (`use_collectives=False`): every rank's metadata file
/// opens the whole folder, which reads as the same checkpoint as the save with collectives
/// of the same DTensors; without one rank's metadata it is refused, naming the file.
#[test]
fn dcp_ranks_without_collectives_read_as_one() {
    let ranks = fixtures().join("ok/dcp/ranks-2.15");
    let hashes = |s: &Source| -> Vec<(String, String)> {
        s.checkpoint()
            .unwrap_or_else(|e| panic!("{e}"))
            .tensors()
            .into_iter()
            .map(|(n, v)| (n, hex(&v.sha256().unwrap())))
            .collect()
    };
    let whole = hashes(&Source::open(&ranks).unwrap());
    let by_rank = Source::open(ranks.join("__2.metadata")).unwrap();
    assert_eq!(hashes(&by_rank), whole);
    // Four metadata files and four data files.
    assert_eq!(by_rank.files().len(), 8);
    let mut with_collectives =
        hashes(&Source::open(fixtures().join("ok/dcp/sharded-2.15")).unwrap());
    let mut sorted = whole.clone();
    with_collectives.sort();
    sorted.sort();
    assert_eq!(sorted, with_collectives);

    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&ranks).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != "__1.metadata" {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let error = Source::open(dir.path()).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Malformed, "{error}");
    assert!(
        error.message().contains("`__1.metadata` is missing"),
        "{error}"
    );
}

/// A folder of DCP's `HuggingFaceStorageWriter` files (one safetensors file per rank, no
/// index): each tensor is assembled from its parts, the same as the save with `.metadata`
/// of the same DTensors; a rank's file missing between others is refused by name.
#[test]
fn dcp_safetensors_files_per_rank_read_as_one() {
    let hashes = |path: &Path| -> BTreeMap<String, String> {
        Source::open(path)
            .unwrap()
            .checkpoint()
            .unwrap_or_else(|e| panic!("{e}"))
            .tensors()
            .into_iter()
            .map(|(n, v)| (n, hex(&v.sha256().unwrap())))
            .collect()
    };
    let hf = fixtures().join("ok/dcp/hf-2.15");
    let from_files = hashes(&hf);
    let from_metadata = hashes(&fixtures().join("ok/dcp/sharded-2.15"));
    assert_eq!(from_files.len(), 6);
    for (name, hash) in &from_files {
        assert_eq!(Some(hash), from_metadata.get(name), "{name}");
    }

    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&hf).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().contains("shard-00003-") {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let error = Source::open(dir.path()).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Malformed, "{error}");
    assert!(error.message().contains("rank 2"), "{error}");
}

/// A DCP plain value reads as the value torch saved.
#[test]
fn dcp_plain_values() {
    let source = Source::open(fixtures().join("ok/dcp/single-2.15")).unwrap();
    let checkpoint = source.checkpoint().unwrap();
    let values: BTreeMap<String, String> = checkpoint
        .values()
        .into_iter()
        .map(|(name, value)| (name, value.to_string()))
        .collect();
    assert_eq!(values["step"], "7");
    assert_eq!(values["name"], "\"run-\u{3b1}\"");
    assert_eq!(values["optim.param_groups.0.lr"], "0.01");
    assert!(matches!(checkpoint.subtree("ema"), Some(Value::List(items)) if items.len() == 2));
}

/// Every `bad/` folder fails cleanly, with the message `rejected-folders.json` names.
#[test]
fn bad_folders_are_refused_with_their_reason() {
    let rejected: Json =
        serde_json::from_slice(&std::fs::read(fixtures().join("rejected-folders.json")).unwrap())
            .unwrap();
    let rejected = rejected.as_object().unwrap();
    assert!(rejected.len() >= 10);
    for (folder, why) in rejected {
        let path = fixtures().join(folder);
        let error = Source::open(&path)
            .and_then(|source| source.checkpoint().map(|_| ()))
            .expect_err(folder);
        let text = error.to_string();
        let want = why["error"].as_str().unwrap();
        assert!(text.contains(want), "{folder}: `{text}` lacks `{want}`");
        assert!(
            error.location().path.is_some(),
            "{folder}: the error names no file"
        );
    }
}

/// Tiles placed in a larger tensor come out row-major, whatever the split.
#[test]
fn tiles_assemble_row_major() {
    let whole: Vec<u8> = (0u8..24).collect(); // a [4, 6] uint8 tensor
    let piece = |r0: usize, r1: usize, c0: usize, c1: usize| -> Vec<u8> {
        let mut out = Vec::new();
        for r in r0..r1 {
            out.extend_from_slice(&whole[r * 6 + c0..r * 6 + c1]);
        }
        out
    };
    let parts = [
        (0, 3, 0, 2),
        (0, 3, 2, 6),
        (3, 4, 0, 5),
        (3, 4, 5, 6),
        (4, 4, 0, 6), // empty
    ];
    let buffers: Vec<Vec<u8>> = parts
        .iter()
        .map(|&(r0, r1, c0, c1)| piece(r0, r1, c0, c1))
        .collect();
    let tiles: Vec<Tile<'_>> = parts
        .iter()
        .zip(&buffers)
        .map(|(&(r0, r1, c0, c1), bytes)| {
            let view = TensorView::contiguous(
                Dtype::UInt8,
                vec![r1 - r0, c1 - c0],
                Storage::new(bytes, ByteOrder::Little),
            )
            .unwrap();
            Tile::new(vec![r0, c0], view)
        })
        .collect();
    let view = TensorView::tiled(Dtype::UInt8, vec![4, 6], tiles.clone()).unwrap();
    assert_eq!(view.to_le_bytes().unwrap(), whole);
    // Narrowed across tile boundaries, and cut in pieces of any size, it reads the same.
    let middle = view.narrow(1, 1, 4).unwrap();
    assert_eq!(middle.to_le_bytes().unwrap(), piece(0, 4, 1, 5));
    assert_eq!(
        view.narrow(0, 2, 2).unwrap().to_le_bytes().unwrap(),
        piece(2, 4, 0, 6)
    );
    assert!(view.narrow(1, 3, 4).is_err());
    for max in [1, 2, 5, 6, 7, 13, 24, 100] {
        let (mut bytes, mut next) = (Vec::new(), 0);
        for (first, part) in view.pieces(max).unwrap() {
            assert_eq!(first, next, "max {max}");
            assert!(part.numel() <= max, "max {max}");
            next += part.numel();
            bytes.extend(part.to_le_bytes().unwrap());
        }
        assert_eq!(bytes, whole, "max {max}");
    }

    // Without the bottom-right tile: a gap, named.
    let gap = TensorView::tiled(Dtype::UInt8, vec![4, 6], tiles[..3].to_vec()).unwrap_err();
    assert!(gap.to_string().contains("gap"), "{gap}");
    assert!(gap.to_string().contains("[3, 5]"), "{gap}");
    // A tile twice: an overlap.
    let mut twice = tiles.clone();
    twice.push(tiles[0].clone());
    let overlap = TensorView::tiled(Dtype::UInt8, vec![4, 6], twice).unwrap_err();
    assert!(overlap.to_string().contains("overlap"), "{overlap}");
    // A tile past the edge.
    let mut past = tiles[..4].to_vec();
    past[3] = Tile::new(vec![3, 6], tiles[3].view().clone());
    let error = TensorView::tiled(Dtype::UInt8, vec![4, 6], past).unwrap_err();
    assert!(error.to_string().contains("reaches past"), "{error}");
}

/// Every folder converts to one `.pth` and to one `.safetensors` (with `--dedupe`: tensors
/// assembled from chunks share no storage, so none is taken for a tied duplicate) whose
/// tensors hash as torch loaded them.
#[test]
fn ok_folders_convert_to_one_file_of_either_format() {
    let dir = tempfile::tempdir().unwrap();
    for (folder, _) in ok_folders() {
        let expected_path = PathBuf::from(format!("{}.expected.json", folder.display()));
        let expected: Json =
            serde_json::from_slice(&std::fs::read(&expected_path).unwrap()).unwrap();
        let want: BTreeMap<String, String> = expected["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["name"].as_str().unwrap().to_owned(),
                    t["sha256"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        for (name, target) in [
            ("one.pth", ckpt::Target::Torch),
            ("one.safetensors", ckpt::Target::Safetensors),
        ] {
            let out = dir.path().join(name);
            let mut options = ckpt::ConvertOptions::new(target).overwrite(true);
            options.dedupe = true;
            ckpt::convert(&folder, &out, &options, &()).unwrap_or_else(|e| panic!("{e}"));
            let source = Source::open(&out).unwrap();
            let checkpoint = source.checkpoint().unwrap();
            let got: BTreeMap<String, String> = checkpoint
                .tensors()
                .into_iter()
                .map(|(n, t)| (n, hex(&t.sha256().unwrap())))
                .collect();
            assert_eq!(got, want, "{} -> {name}", folder.display());
        }
    }
}

/// A Hugging Face model folder without an index (the Hub's most common layout, a Trainer's
/// `checkpoint-N/`, and what `convert --max-shard-size` writes when everything fits in one
/// shard) reads as its weights file, chosen as transformers chooses; `config.json` says
/// what the model is.
#[test]
fn model_folders_without_an_index_read_as_their_weights_file() {
    let trainer = fixtures().join("ok/frameworks/hf_trainer/checkpoint-2");
    let source = Source::open(&trainer).unwrap();
    assert_eq!(source.path(), trainer.join("model.safetensors"));
    assert!(source.notes().is_empty(), "{:?}", source.notes());
    let checkpoint = source.checkpoint().unwrap();
    assert_eq!(checkpoint.format(), Format::Safetensors);
    assert_eq!(checkpoint.tensors().len(), 16);
    let records = &checkpoint.details().records;
    assert_eq!(records["config.json architectures"], "GPT2LMHeadModel");
    assert_eq!(records["config.json tie_word_embeddings"], "true");
    assert_eq!(records["config.json dtype"], "float32");
    assert_eq!(
        records["folder also holds"],
        "generation_config.json, optimizer.pt, rng_state.pth, scheduler.pt, \
         trainer_state.json, training_args.bin"
    );

    // Both files: safetensors first, and a note names the other one.
    let dir = tempfile::tempdir().unwrap();
    let safetensors = trainer.join("model.safetensors");
    std::fs::copy(&safetensors, dir.path().join("model.safetensors")).unwrap();
    let bin = fixtures().join("ok/torch/state_dict-2.15-zip-p2.pt");
    std::fs::copy(&bin, dir.path().join("pytorch_model.bin")).unwrap();
    let source = Source::open(dir.path()).unwrap();
    assert_eq!(source.path(), dir.path().join("model.safetensors"));
    assert_eq!(source.notes().len(), 1);
    assert!(
        source.notes()[0].contains("`pytorch_model.bin`"),
        "{:?}",
        source.notes()
    );
    assert!(source.checkpoint().unwrap().details().records.is_empty());

    // Only the PyTorch file.
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let source = Source::open(dir.path()).unwrap();
    assert_eq!(source.checkpoint().unwrap().format(), Format::TorchZip);
    assert!(source.notes().is_empty());

    // Nothing a model folder holds: an error that says what was looked for.
    std::fs::remove_file(dir.path().join("pytorch_model.bin")).unwrap();
    let error = Source::open(dir.path()).unwrap_err();
    assert!(error.to_string().contains("model.safetensors"), "{error}");
}

/// `Source::locate` names the file (opened: the one read) and offset where each storage's
/// bytes lie as they are: reading the file there gives the storage's bytes, in a single
/// file and in every shard of a folder.
#[cfg(unix)]
#[test]
fn storages_are_located_in_the_files_read() {
    use std::os::unix::fs::FileExt;

    let mut located = 0;
    let single = fixtures().join("ok/torch/checkpoint-2.15-zip.pt");
    let mut paths: Vec<PathBuf> = ok_folders().into_iter().map(|(path, _)| path).collect();
    paths.push(single);
    for path in paths {
        let source = Source::open(&path).unwrap();
        let checkpoint = source.checkpoint().unwrap();
        for (name, view) in checkpoint.tensors() {
            let storage = view.storage();
            let Some(stored) = source.locate(storage) else {
                continue;
            };
            assert!(source.files().contains(&stored.path), "{name}");
            let mut bytes = vec![0; storage.bytes().len()];
            stored
                .file
                .read_exact_at(&mut bytes, stored.offset)
                .unwrap();
            assert_eq!(bytes, storage.bytes(), "{}: {name}", path.display());
            located += 1;
        }
    }
    assert!(located > 20, "{located}");
}
