//! `ckpt::diff`: the same weights in every container compare equal; a changed element is
//! found, counted and sized.

use std::path::{Path, PathBuf};

use ckpt::diff::{DiffOptions, Tolerance, Values};
use ckpt::{ConvertOptions, KeyMap, Source, Target};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn diff(a: &Path, b: &Path, options: &DiffOptions) -> ckpt::diff::Diff {
    let (sa, sb) = (Source::open(a).unwrap(), Source::open(b).unwrap());
    let (ca, cb) = (sa.checkpoint().unwrap(), sb.checkpoint().unwrap());
    ckpt::diff::compare(&ca, &cb, options, &()).unwrap()
}

fn convert(input: &Path, output: &Path, target: Target, shard: Option<u64>) {
    let options = ConvertOptions::new(target)
        .overwrite(true)
        .max_shard_size(shard);
    ckpt::convert(input, output, &options, &())
        .unwrap_or_else(|e| panic!("{} -> {}: {e}", input.display(), output.display()));
}

fn assert_equal(a: &Path, b: &Path, options: &DiffOptions) {
    let result = diff(a, b, options);
    assert!(
        result.is_equal(),
        "{} vs {}: {:?}",
        a.display(),
        b.display(),
        result.summary()
    );
    assert!(!result.tensors.is_empty());
}

/// Each source, written by real torch, in every container ckpt reads and writes: a torch
/// zip, a legacy file, safetensors, a shard folder of each format, read back. All diff as
/// equal, with each other and with the source.
#[test]
fn the_same_weights_in_every_container_diff_as_equal() {
    let torch = fixtures().join("ok/torch");
    let dir = tempfile::tempdir().unwrap();
    let exact = DiffOptions::default();
    let sources = [
        // A state dict, a whole-module pickle (read as its state_dict()), tied weights,
        // strided views, big-endian storages, every dtype, a DCP folder of chunked tensors.
        torch.join("state_dict-2.15-zip-p2.pt"),
        torch.join("module-2.15-zip.pt"),
        torch.join("tied-2.15-zip.pt"),
        torch.join("views-2.15-zip.pt"),
        torch.join("big_endian_views-2.15-zip.pt"),
        torch.join("dtypes-2.15-zip.pt"),
        fixtures().join("ok/dcp/sharded-2.15"),
    ];
    for (n, source) in sources.iter().enumerate() {
        let made = [
            (format!("{n}.safetensors"), Target::Safetensors, None),
            (format!("{n}.pth"), Target::Torch, None),
            (format!("{n}-st"), Target::Safetensors, Some(64)),
            (format!("{n}-bin"), Target::Torch, Some(64)),
        ];
        for (name, target, shard) in made {
            let out = dir.path().join(name);
            convert(source, &out, target, shard);
            if shard.is_some() && target == Target::Torch {
                // Torch shards hold a flat state dict: the plain values of the source (DCP's
                // `step`) are left out, and reported as only in the source.
                for (a, b, side) in [(source, &out, 0), (&out, source, 1)] {
                    let result = diff(a, b, &exact);
                    let summary = result.summary();
                    assert_eq!(summary.equal, summary.compared, "{}", out.display());
                    assert_eq!((summary.only_in_a, summary.only_in_b), (0, 0));
                    let values = result.values.unwrap();
                    assert!(values.differ.is_empty());
                    let only = [&values.only_in_b, &values.only_in_a][side];
                    assert!(only.is_empty(), "{only:?}");
                }
            } else {
                assert_equal(source, &out, &exact);
                assert_equal(&out, source, &exact);
            }
        }
    }
    // Files torch wrote in two versions and two containers.
    // (Not the training checkpoint, whose optimizer state differs between torch 2.0 and
    // 2.15, see below; nor every dtype, which legacy files cannot all hold.)
    // Every pair named here must exist: a missing fixture fails, it is not skipped.
    let pairs: &[(&str, &[&str])] = &[
        (
            "state_dict-2.15-zip-p2.pt",
            &["state_dict-2.15-legacy-p2.pt"],
        ),
        (
            "module-2.15-zip.pt",
            &[
                "module-2.15-legacy.pt",
                "module-2.0-legacy.pt",
                "module-2.0-zip.pt",
            ],
        ),
        (
            "tied-2.15-zip.pt",
            &[
                "tied-2.15-legacy.pt",
                "tied-2.0-legacy.pt",
                "tied-2.0-zip.pt",
            ],
        ),
        (
            "views-2.15-zip.pt",
            &[
                "views-2.15-legacy.pt",
                "views-2.0-legacy.pt",
                "views-2.0-zip.pt",
            ],
        ),
        ("checkpoint-2.15-zip.pt", &["zip64_checkpoint-2.15-zip.pt"]),
    ];
    for (zip, others) in pairs {
        let zip = torch.join(zip);
        assert!(zip.is_file(), "{}", zip.display());
        for other in *others {
            let other = torch.join(other);
            assert!(other.is_file(), "{}", other.display());
            assert_equal(&zip, &other, &exact);
        }
    }
    assert_equal(
        &torch.join("dtypes-2.15-zip.pt"),
        &torch.join("big_endian_dtypes-2.15-zip.pt"),
        &exact,
    );
    // The shard folders huggingface_hub wrote, the two formats, folder or index file.
    let shards = fixtures().join("ok/shards");
    assert_equal(&shards.join("bin"), &shards.join("safetensors"), &exact);
    assert_equal(
        &shards.join("bin/pytorch_model.bin.index.json"),
        &shards.join("safetensors"),
        &exact,
    );
}

/// One element changed in a copy: found, counted, placed and sized; with a tolerance
/// larger than the change, equal.
#[test]
fn one_changed_element_is_found_and_sized() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixtures().join("ok/torch/state_dict-2.15-zip-p2.pt");
    let copy = dir.path().join("copy.safetensors");
    convert(&source, &copy, Target::Safetensors, None);
    // Pick the largest float32 tensor and add 0.25 to its element 5.
    let (name, start, shape) = {
        let s = Source::open(&copy).unwrap();
        let c = s.checkpoint().unwrap();
        let (name, view) = c
            .tensors()
            .into_iter()
            .filter(|(_, v)| v.dtype() == ckpt::Dtype::Float32)
            .max_by_key(|(_, v)| v.numel())
            .unwrap();
        assert!(view.numel() > 5);
        (name, view.file_range().unwrap().0, view.shape().to_vec())
    };
    let mut bytes = std::fs::read(&copy).unwrap();
    let at = start as usize + 5 * 4;
    let old = f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    bytes[at..at + 4].copy_from_slice(&(old + 0.25).to_le_bytes());
    std::fs::write(&copy, &bytes).unwrap();

    let result = diff(&source, &copy, &DiffOptions::default());
    assert!(!result.is_equal());
    let summary = result.summary();
    assert_eq!((summary.differ, summary.equal + 1), (1, summary.compared));
    let tensor = result.tensors.iter().find(|t| t.name == name).unwrap();
    let Values::Differ(d) = &tensor.values else {
        panic!("{tensor:?}")
    };
    assert_eq!(d.count, 1);
    assert_eq!(d.first, 5);
    assert_eq!(d.elements, shape.iter().product::<usize>() as u64);
    let expected = f64::from((old + 0.25) - old);
    assert_eq!(d.max_abs, Some((expected, 5)));
    assert_eq!(
        d.max_rel,
        Some(expected / f64::from(old + 0.25).abs()),
        "B is the reference"
    );
    let loose = DiffOptions {
        tolerance: Tolerance::allclose(Some(0.5), Some(0.0)).unwrap(),
        ..DiffOptions::default()
    };
    assert!(diff(&source, &copy, &loose).is_equal());
    let tight = DiffOptions {
        tolerance: Tolerance::allclose(Some(0.1), Some(0.0)).unwrap(),
        ..DiffOptions::default()
    };
    assert!(!diff(&source, &copy, &tight).is_equal());
}

/// Names matched after a prefix on one side; plain values of torch files compared.
#[test]
fn names_are_matched_through_key_maps_and_values_compared() {
    let torch = fixtures().join("ok/torch");
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = torch.join("checkpoint-2.15-zip.pt");
    // The model of the training checkpoint, alone, in safetensors.
    let model = dir.path().join("model.safetensors");
    let options = ConvertOptions::new(Target::Safetensors)
        .key(Some("model".to_owned()))
        .overwrite(true);
    ckpt::convert(&checkpoint, &model, &options, &()).unwrap();
    let plain = diff(&checkpoint, &model, &DiffOptions::default());
    assert!(!plain.is_equal());
    assert!(
        plain.tensors.is_empty(),
        "no name in common without a prefix"
    );
    let mapped = DiffOptions {
        keys_a: KeyMap::new()
            .include("model.*")
            .unwrap()
            .strip_prefix("model.")
            .unwrap(),
        ..DiffOptions::default()
    };
    let result = diff(&checkpoint, &model, &mapped);
    assert!(result.is_equal(), "{:?}", result.summary());
    assert!(result.values.is_none(), "safetensors holds no plain values");
    assert!(
        result
            .tensors
            .iter()
            .all(|t| t.name_a == format!("model.{}", t.name))
    );

    // The same training checkpoint from torch 2.0 and 2.15: tensors and values equal.
    let legacy = torch.join("checkpoint-2.15-legacy.pt");
    let both = diff(&checkpoint, &legacy, &DiffOptions::default());
    assert!(both.is_equal(), "{:?}", both.summary());
    assert!(both.values.as_ref().unwrap().compared > 0);
    // torch 2.0 and 2.15 ran the same training steps to slightly different optimizer
    // states, and name scheduler and optimizer settings differently.
    let old = diff(
        &checkpoint,
        &torch.join("checkpoint-2.0-legacy.pt"),
        &DiffOptions::default(),
    );
    let summary = old.summary();
    assert!(
        summary.differ > 0 && summary.values_differ > 0,
        "{summary:?}"
    );
    assert!(
        old.values
            .as_ref()
            .unwrap()
            .only_in_a
            .contains(&"scheduler._is_initial".to_owned())
    );
}
