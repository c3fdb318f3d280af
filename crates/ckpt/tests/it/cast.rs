//! `ckpt::cast` against torch: the committed cases of `tests/fixtures/cast/` (see its
//! README), cast directly and through `ckpt::convert` with a dtype. (The interop suite,
//! `tests/interop/test_casts.py`, checks `ckpt convert --dtype` against torch live.)

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use ckpt::cast::{self, Cast, CastStats};
use ckpt::model::{ByteOrder, Storage};
use ckpt::safetensors::Plan;
use ckpt::{ConvertOptions, Dtype, Target, TensorView};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/cast")
}

fn case_files(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no cases in {}", folder.display());
    files
}

/// Casts `input` in pieces (as `for_each_chunk` hands them out), merging the stats.
fn cast_in_pieces(cast: &Cast, input: &[u8], pieces: usize) -> (Vec<u8>, CastStats) {
    let size = cast.from().byte_size().unwrap();
    let elements = input.len() / size;
    let step = elements.div_ceil(pieces).max(1) * size;
    let mut out = Vec::new();
    let mut total = CastStats::default();
    for piece in input.chunks(step) {
        let mut stats = CastStats::default();
        cast.apply(piece, &mut out, &mut stats).unwrap();
        total.merge(&stats);
    }
    (out, total)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().rev().map(|b| format!("{b:02x}")).collect()
}

/// Whether the `to` element `bytes` is a NaN.
fn is_nan(to: Dtype, bytes: &[u8]) -> bool {
    let mut raw = [0u8; 8];
    raw[..bytes.len()].copy_from_slice(bytes);
    let v = u64::from_le_bytes(raw);
    match to {
        Dtype::BFloat16 => v & 0x7FFF > 0x7F80,
        Dtype::Float16 => v & 0x7FFF > 0x7C00,
        Dtype::Float32 => v & 0x7FFF_FFFF > 0x7F80_0000,
        Dtype::Float64 => v & 0x7FFF_FFFF_FFFF_FFFF > 0x7FF0_0000_0000_0000,
        Dtype::Float8E4M3Fn => v & 0x7F == 0x7F,
        Dtype::Float8E5M2 => v & 0x7F > 0x7C,
        _ => panic!("not a target: {to}"),
    }
}

/// The elements where `got` differs from torch's `want` (NaNs of any bits being equal unless
/// `exact_nans`), described for a failure message; `None` when there are none.
fn differences(
    (from, to): (Dtype, Dtype),
    input: &[u8],
    got: &[u8],
    want: &[u8],
    exact_nans: bool,
) -> Option<String> {
    if got == want {
        return None;
    }
    let (i, o) = (from.byte_size().unwrap(), to.byte_size().unwrap());
    let same = |a: &[u8], b: &[u8]| a == b || (!exact_nans && is_nan(to, a) && is_nan(to, b));
    let wrong: Vec<usize> = (0..input.len() / i)
        .filter(|k| !same(&got[k * o..(k + 1) * o], &want[k * o..(k + 1) * o]))
        .collect();
    if wrong.is_empty() {
        return None;
    }
    let mut text = format!("{} of {} elements differ:", wrong.len(), input.len() / i);
    for &k in wrong.iter().take(12) {
        text += &format!(
            "\n  #{k}: {from} 0x{} -> {to} ckpt 0x{}, torch 0x{}",
            hex(&input[k * i..(k + 1) * i]),
            hex(&got[k * o..(k + 1) * o]),
            hex(&want[k * o..(k + 1) * o]),
        );
    }
    Some(text)
}

/// Checks every target of one case file: the bytes and the counts torch's outputs imply.
/// Returns how many (source, target) pairs were checked, and what was wrong.
fn check_case(path: &Path) -> (usize, Vec<String>) {
    let bytes = std::fs::read(path).unwrap();
    let checkpoint = ckpt::read(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let meta: Value = serde_json::from_str(&checkpoint.metadata()["cast"]).unwrap();
    let exact_nans = match meta["nan_bits"].as_str() {
        Some("exact") => true,
        Some("any") => false,
        other => panic!("{}: nan_bits {other:?}", path.display()),
    };
    let tensors = checkpoint.tensors();
    let find = |name: &str| tensors.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let input = find("input").expect("an `input` tensor");
    let from = input.dtype();
    let input = input.data().unwrap();
    let (mut pairs, mut failures) = (0, Vec::new());
    for &to in cast::TARGETS {
        let context = format!("{}: {from} -> {to}", path.display());
        let cast = Cast::new(from, to).unwrap();
        let want = match find(to.name()) {
            Some(view) => {
                assert_eq!(view.dtype(), to, "{context}");
                view.data().unwrap()
            }
            // torch returns the tensor itself: the file does not store it twice.
            None if from == to => input,
            None => panic!("{context}: no `{to}` tensor"),
        };
        let (got, stats) = cast_in_pieces(&cast, input, 3);
        assert_eq!(got.len(), want.len(), "{context}");
        if let Some(text) = differences((from, to), input, &got, want, exact_nans) {
            failures.push(format!("{context}: {text}"));
        }
        let stats = serde_json::to_value(stats).unwrap();
        if stats != meta["stats"][to.name()] {
            let want = &meta["stats"][to.name()];
            failures.push(format!("{context}: stats {stats}, torch {want}"));
        }
        pairs += 1;
    }
    if let Some(exhaustive) = meta.get("exhaustive") {
        failures.extend(check_exhaustive(path, from, exhaustive));
    }
    (pairs, failures)
}

/// A 16-bit source over all its 65536 bit patterns, in order: the SHA-256 of torch's output
/// and its counts (the patterns that fail are among the case's listed hard values, or shown
/// by the live interop test).
fn check_exhaustive(path: &Path, from: Dtype, exhaustive: &Value) -> Vec<String> {
    let input: Vec<u8> = (0..=u16::MAX).flat_map(u16::to_le_bytes).collect();
    let mut failures = Vec::new();
    for &to in cast::TARGETS {
        let context = format!("{}: every {from} -> {to}", path.display());
        let (got, stats) = cast_in_pieces(&Cast::new(from, to).unwrap(), &input, 1);
        let want = &exhaustive[to.name()];
        let digest: String = Sha256::digest(&got)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if digest != want["sha256"].as_str().unwrap() {
            failures.push(format!("{context}: the output differs from torch's"));
        }
        let stats = serde_json::to_value(stats).unwrap();
        if stats != want["stats"] {
            failures.push(format!("{context}: stats {stats}, torch {}", want["stats"]));
        }
    }
    failures
}

/// Checks every case file of `folder`; returns the number of pairs checked.
fn check_folder(folder: &Path) -> usize {
    let (mut pairs, mut failures) = (0, Vec::new());
    for path in case_files(folder) {
        let (n, wrong) = check_case(&path);
        pairs += n;
        failures.extend(wrong);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    pairs
}

/// Every committed case: all 9 sources x 6 targets, bit for bit, with torch's counts.
#[test]
fn committed_cases_match_torch() {
    assert_eq!(check_folder(&fixtures()), 9 * cast::TARGETS.len());
}

/// The size `big` repeats a case's input to: several 1 MiB chunks, each cast in parallel
/// pieces.
const BIG_LEN: usize = 3 << 19;

/// `ckpt::convert` with a dtype, for every case and target: the written bytes are torch's,
/// for a small tensor and for a large one streamed in many chunks; the report has torch's
/// counts; non-floating tensors keep their dtype and bytes. Both writers, safetensors and
/// PyTorch.
#[test]
fn convert_with_a_dtype_matches_torch() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for path in case_files(&fixtures()) {
        let bytes = std::fs::read(&path).unwrap();
        let checkpoint = ckpt::read(&bytes).unwrap();
        let meta: Value = serde_json::from_str(&checkpoint.metadata()["cast"]).unwrap();
        let exact_nans = meta["nan_bits"] == "exact";
        let tensors = checkpoint.tensors();
        let find = |name: &str| tensors.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        let input = find("input").unwrap();
        let from = input.dtype();
        let data = input.data().unwrap();
        // The input, the input repeated, and an integer tensor.
        let repeat = BIG_LEN.div_ceil(data.len());
        let big: Vec<u8> = data.repeat(repeat);
        let steps: Vec<u8> = (0..10i64).flat_map(i64::to_le_bytes).collect();
        let views = [
            (
                "big",
                TensorView::contiguous(
                    from,
                    vec![repeat, input.numel()],
                    Storage::owned(big.clone(), ByteOrder::Little),
                )
                .unwrap(),
            ),
            (
                "input",
                TensorView::contiguous(
                    from,
                    vec![input.numel()],
                    Storage::new(data, ByteOrder::Little),
                )
                .unwrap(),
            ),
            (
                "step",
                TensorView::contiguous(
                    Dtype::Int64,
                    vec![10],
                    Storage::new(&steps, ByteOrder::Little),
                )
                .unwrap(),
            ),
        ];
        let named: Vec<(String, &TensorView<'_>)> =
            views.iter().map(|(n, v)| ((*n).to_owned(), v)).collect();
        let source = dir.path().join(format!("{from}.safetensors"));
        let mut file = std::fs::File::create(&source).unwrap();
        Plan::new(&named, &BTreeMap::new())
            .unwrap()
            .write_to(&mut file, &())
            .unwrap();
        drop(file);
        for ((target, ext), &to) in [(Target::Safetensors, "safetensors"), (Target::Torch, "pth")]
            .into_iter()
            .flat_map(|t| cast::TARGETS.iter().map(move |to| (t, to)))
        {
            let context = format!("{}: convert {from} -> {to} ({ext})", path.display());
            let output = dir.path().join(format!("{from}-{to}.{ext}"));
            let mut options = ConvertOptions::new(target).dtype(Some(to));
            if target == Target::Torch {
                // The many-chunk case once is enough for the slow debug build: the
                // safetensors writer streams it; the PyTorch writer gets the rest.
                options = options.keys(ckpt::KeyMap::new().exclude("big").unwrap());
            }
            let converted = ckpt::convert(&source, &output, &options, &()).unwrap();
            assert_eq!(
                converted.kept,
                [("step".to_owned(), Dtype::Int64)],
                "{context}"
            );
            let written = std::fs::read(&output).unwrap();
            let result = ckpt::read(&written).unwrap();
            let out = result.tensors();
            let get = |name: &str| out.iter().find(|(n, _)| n == name).map(|(_, v)| v).unwrap();
            assert_eq!(get("step").data().unwrap(), steps, "{context}");
            let want = match find(to.name()) {
                Some(view) => view.data().unwrap(),
                None => data,
            };
            for (name, want, times) in [
                ("input", want.to_vec(), 1u64),
                ("big", want.repeat(repeat), repeat as u64),
            ] {
                if target == Target::Torch && name == "big" {
                    continue;
                }
                let got = get(name);
                assert_eq!(
                    (got.dtype(), got.shape()),
                    (
                        to,
                        views.iter().find(|(n, _)| *n == name).unwrap().1.shape()
                    ),
                    "{context}"
                );
                let source = if name == "big" { &big[..] } else { data };
                if let Some(text) =
                    differences((from, to), source, got.data().unwrap(), &want, exact_nans)
                {
                    failures.push(format!("{context}, `{name}`: {text}"));
                }
                let reported = converted.casts.iter().find(|c| c.name == name);
                if from == to {
                    assert!(reported.is_none(), "{context}: an identity cast is no cast");
                    continue;
                }
                let reported = reported.unwrap();
                assert_eq!((reported.from, reported.to), (from, to), "{context}");
                let counts = &meta["stats"][to.name()];
                let scaled = scale(counts, times);
                let stats = serde_json::to_value(reported.stats).unwrap();
                if stats != scaled {
                    failures.push(format!(
                        "{context}, `{name}`: stats {stats}, torch {scaled}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// torch's counts for one case, for `times` copies of its input.
fn scale(counts: &Value, times: u64) -> Value {
    let object = counts.as_object().unwrap();
    Value::Object(
        object
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_u64().unwrap() * times)))
            .collect(),
    )
}

/// Shards are planned with the cast sizes: the index's total is the cast data's size.
#[test]
fn shards_hold_the_cast_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..4096u32)
        .flat_map(|i| (i as f32).to_le_bytes())
        .collect();
    let views: Vec<TensorView<'_>> = (0..4)
        .map(|_| {
            TensorView::contiguous(
                Dtype::Float32,
                vec![64, 64],
                Storage::new(&data, ByteOrder::Little),
            )
            .unwrap()
        })
        .collect();
    let named: Vec<(String, &TensorView<'_>)> = views
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("w{i}"), v))
        .collect();
    let source = dir.path().join("in.safetensors");
    let mut file = std::fs::File::create(&source).unwrap();
    Plan::new(&named, &BTreeMap::new())
        .unwrap()
        .write_to(&mut file, &())
        .unwrap();
    drop(file);
    let output = dir.path().join("sharded");
    // 2 float32 tensors (32 KiB) per 40 KB shard, or 4 bfloat16 ones (8 KiB each).
    let options = ConvertOptions::new(Target::Safetensors)
        .max_shard_size(Some(40_000))
        .dtype(Some(Dtype::BFloat16));
    let converted = ckpt::convert(&source, &output, &options, &()).unwrap();
    assert_eq!(converted.files.len(), 1, "{:?}", converted.files);
    assert_eq!(converted.casts.len(), 4);
    let written = std::fs::read(output.join("model.safetensors")).unwrap();
    let result = ckpt::read(&written).unwrap();
    for (_, view) in result.tensors() {
        assert_eq!((view.dtype(), view.nbytes()), (Dtype::BFloat16, 8192));
    }
    let options = ConvertOptions::new(Target::Safetensors)
        .max_shard_size(Some(10_000))
        .dtype(Some(Dtype::BFloat16))
        .overwrite(true);
    let converted = ckpt::convert(&source, &output, &options, &()).unwrap();
    assert_eq!(converted.files.len(), 5, "4 shards and an index");
    let index: Value = serde_json::from_slice(
        &std::fs::read(output.join("model.safetensors.index.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(index["metadata"]["total_size"], 4 * 8192);
}

/// Targets other than the six are refused, whatever the tensors.
#[test]
fn only_the_six_targets() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixtures().join("../ok/tiny-mlp.safetensors");
    let output = dir.path().join("out.safetensors");
    for to in [Dtype::Int8, Dtype::Float8E4M3Fnuz, Dtype::Complex64] {
        let options = ConvertOptions::new(Target::Safetensors).dtype(Some(to));
        let error = ckpt::convert(&source, &output, &options, &()).unwrap_err();
        assert_eq!(error.kind(), ckpt::ErrorKind::Unsupported, "{to}: {error}");
    }
    assert!(!output.exists());
}
