//! The torch writer against ckpt's own readers: every ok fixture (torch and safetensors),
//! written as a PyTorch zip file and read back, gives the same tree.

use std::path::{Path, PathBuf};

use ckpt::torch::write::Plan;
use ckpt::{Dtype, ErrorKind, Format, Source, Value};

/// Every checkpoint file under `tests/fixtures/ok` (expectations and licences aside).
fn ok_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ok");
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                stack.push(path);
            } else if !name.ends_with(".json")
                && !name.ends_with(".txt")
                // A `.distcp` file is part of its DCP folder (torch.load refuses it alone).
                && !name.ends_with(".distcp")
                // joblib files are for the scanner (ckpt does not read them as checkpoints).
                && !name.contains(".joblib")
                && !name.ends_with(".md")
                && path.extension().is_some()
            {
                out.push(path);
            }
        }
    }
    out.sort();
    assert!(out.len() > 60, "found only {} fixtures", out.len());
    out
}

/// Structural equality: containers and their kinds, plain values (floats by their bits),
/// tensors by their elements and everything torch sees of them.
fn same(a: &Value<'_>, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        (Value::Complex(a, b), Value::Complex(c, d)) => {
            a.to_bits() == c.to_bits() && b.to_bits() == d.to_bits()
        }
        (Value::List(x), Value::List(y))
        | (Value::Tuple(x), Value::Tuple(y))
        | (Value::Set(x), Value::Set(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Dict(x), Value::Dict(y)) => {
            x.ordered == y.ordered
                && x.entries.len() == y.entries.len()
                && x.entries
                    .iter()
                    .zip(&y.entries)
                    .all(|((k1, v1), (k2, v2))| same(k1, k2) && same(v1, v2))
                && x.attributes.len() == y.attributes.len()
                && x.attributes
                    .iter()
                    .zip(&y.attributes)
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && same(v1, v2))
        }
        // safetensors' single float4 values are torch's pairs: half the last dimension.
        (Value::Tensor(x), Value::Tensor(y)) if y.dtype() == Dtype::Float4E2M1Fn => {
            let mut pairs = y.shape().to_vec();
            if let Some(last) = pairs.last_mut() {
                *last /= 2;
            }
            x.dtype() == Dtype::Float4E2M1FnX2
                && x.shape() == pairs
                && x.sha256().unwrap() == y.sha256().unwrap()
        }
        (Value::Tensor(x), Value::Tensor(y)) => {
            x.dtype() == y.dtype()
                && x.shape() == y.shape()
                && x.strides() == y.strides()
                && x.storage_offset() == y.storage_offset()
                && x.is_conj() == y.is_conj()
                && x.is_neg() == y.is_neg()
                && x.requires_grad() == y.requires_grad()
                && x.is_parameter() == y.is_parameter()
                && x.quantization() == y.quantization()
                && x.sha256().ok() == y.sha256().ok()
                && x.attributes().len() == y.attributes().len()
                && x.attributes()
                    .iter()
                    .zip(y.attributes())
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && same(v1, v2))
        }
        _ => a.type_name() == b.type_name() && a.to_string() == b.to_string(),
    }
}

#[test]
fn every_ok_fixture_round_trips_through_the_torch_writer() {
    let mut written = 0;
    for path in ok_files() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let source = Source::open(&path).unwrap();
        let checkpoint = source.checkpoint().unwrap();
        let plan = match Plan::new(checkpoint.root(), "archive") {
            Ok(plan) => plan,
            Err(error) if path.components().any(|c| c.as_os_str() == "frameworks") => {
                // Training checkpoints hold objects ckpt reads inert and does not write.
                assert!(!checkpoint.objects().is_empty(), "{name}: {error}");
                assert!(
                    error.to_string().contains("object, which ckpt reads"),
                    "{error}"
                );
                continue;
            }
            Err(error) => {
                // Only frozensets, slices and huge integers cannot be written.
                assert!(name.starts_with("values-"), "{name}: {error}");
                assert_eq!(error.kind(), ErrorKind::Invalid);
                assert!(error.to_string().contains("`frozenset`"), "{error}");
                continue;
            }
        };
        let mut file = Vec::new();
        plan.write_to(&mut file, &()).unwrap();
        assert_eq!(file.len() as u64, plan.file_len(), "{name}");
        let back = ckpt::read(&file).unwrap();
        assert_eq!(back.format(), Format::TorchZip, "{name}");
        assert_eq!(back.details().weights_only, Some(true), "{name}");
        assert!(back.details().needs.is_empty(), "{name}");
        assert!(
            same(back.root(), checkpoint.root()),
            "{name}: the tree changed\n{}\n{}",
            back.root(),
            checkpoint.root()
        );
        assert_eq!(
            back.shared_storages(),
            checkpoint.shared_storages(),
            "{name}"
        );
        // One record per storage: views that shared a storage still share it.
        let tensors = checkpoint.tensors();
        let distinct: std::collections::HashSet<(usize, usize)> = tensors
            .iter()
            .map(|(_, t)| t.storage().bytes())
            .filter(|b| !b.is_empty())
            .map(|b| (b.as_ptr() as usize, b.len()))
            .collect();
        let empty = tensors
            .iter()
            .filter(|(_, t)| t.storage().bytes().is_empty())
            .count();
        assert!(plan.storages() >= distinct.len(), "{name}");
        assert!(
            plan.storages() <= distinct.len() + empty + 2 * tensors.len(),
            "{name}"
        );
        written += 1;
    }
    assert!(written > 60, "only {written} fixtures were written");
}

/// Writing a file twice gives the same bytes (nothing depends on time or addresses).
#[test]
fn the_output_is_deterministic() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/ok/torch/checkpoint-2.15-zip.pt");
    let source = Source::open(&path).unwrap();
    let checkpoint = source.checkpoint().unwrap();
    let write = || {
        let mut file = Vec::new();
        Plan::new(checkpoint.root(), "checkpoint")
            .unwrap()
            .write_to(&mut file, &())
            .unwrap();
        file
    };
    assert_eq!(write(), write());
}
