//! The committed fixtures of `tests/fixtures/`: files written by real torch and
//! safetensors (`ok/`), and malformed or hostile files (`bad/`, `attack/`).

use std::path::{Path, PathBuf};

use ckpt::{ErrorKind, Format, Source};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn files(folder: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures().join(folder))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {folder}/");
    files
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every `ok/` file reads as what `safetensors.torch` saw in it: the same names in the same
/// order, dtypes, shapes, element hashes and metadata.
#[test]
fn ok_files_match_what_torch_saw() {
    for path in files("ok") {
        let expected: Value =
            serde_json::from_slice(&std::fs::read(path.with_extension("expected.json")).unwrap())
                .unwrap();
        let source = Source::open(&path).unwrap();
        let checkpoint = source.checkpoint().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(checkpoint.format(), Format::Safetensors);
        let metadata: Value = serde_json::to_value(checkpoint.metadata()).unwrap();
        assert_eq!(metadata, expected["metadata"], "{}", path.display());

        let tensors = checkpoint.tensors();
        let want = expected["tensors"].as_array().unwrap();
        assert_eq!(tensors.len(), want.len(), "{}", path.display());
        for ((name, view), want) in tensors.iter().zip(want) {
            let context = format!("{} `{name}`", path.display());
            assert_eq!(name, want["name"].as_str().unwrap(), "{context}");
            // ckpt reports what the file holds: safetensors F4 is a float4 per element
            // (torch shows float4_e2m1fn_x2, two per byte, with half the last dimension).
            let (dtype, shape) = match want["header_dtype"].as_str().unwrap() {
                "F4" => ("float4_e2m1fn", &want["header_shape"]),
                _ => (want["dtype"].as_str().unwrap(), &want["shape"]),
            };
            assert_eq!(view.dtype().name(), dtype, "{context}");
            assert_eq!(
                serde_json::to_value(view.shape()).unwrap(),
                *shape,
                "{context}"
            );
            assert_eq!(
                hex(&view.sha256().unwrap()),
                want["sha256"].as_str().unwrap(),
                "{context}"
            );
            assert!(
                view.data().is_some(),
                "{context}: safetensors data is zero-copy"
            );
        }
    }
}

/// What ckpt must say about each `bad/` and `attack/` file: the kind of error and a piece
/// of its message. Every file of those folders must be listed here.
const REJECTED: &[(&str, ErrorKind, &str)] = &[
    (
        "bad/too_short",
        ErrorKind::NotACheckpoint,
        "only 3 bytes long",
    ),
    (
        "bad/header_length_past_eof",
        ErrorKind::Malformed,
        "only 128 bytes follow",
    ),
    (
        "bad/truncated_data",
        ErrorKind::Malformed,
        "3 bytes missing",
    ),
    (
        "bad/trailing_bytes",
        ErrorKind::Malformed,
        "4 unexpected bytes follow the last tensor",
    ),
    (
        "bad/header_not_utf8",
        ErrorKind::Malformed,
        "not valid UTF-8",
    ),
    (
        "bad/header_not_json",
        ErrorKind::Malformed,
        "not valid JSON: EOF while parsing",
    ),
    (
        "bad/header_not_object",
        ErrorKind::Malformed,
        "expected a JSON object",
    ),
    (
        "bad/unknown_dtype",
        ErrorKind::Malformed,
        "unknown dtype `Q4_0`",
    ),
    (
        "bad/shape_negative",
        ErrorKind::Malformed,
        "invalid value: integer `-2`",
    ),
    (
        "bad/shape_float",
        ErrorKind::Malformed,
        "floating point `2.0`",
    ),
    (
        "bad/offsets_three_values",
        ErrorKind::Malformed,
        "[begin, end], not 3 values",
    ),
    (
        "bad/hole_between_tensors",
        ErrorKind::Malformed,
        "leaves a hole of 4 bytes",
    ),
    (
        "bad/overlapping_tensors",
        ErrorKind::Malformed,
        "overlaps tensor `a`",
    ),
    (
        "bad/size_mismatch",
        ErrorKind::Malformed,
        "takes 16 bytes but data_offsets [0, 8] span 8",
    ),
    (
        "bad/offsets_reversed",
        ErrorKind::Malformed,
        "end before they begin",
    ),
    (
        "bad/metadata_value_not_string",
        ErrorKind::Malformed,
        "expected a string",
    ),
    (
        "bad/duplicate_tensor_name",
        ErrorKind::Malformed,
        "the key `a` twice",
    ),
    (
        "bad/duplicate_metadata_key",
        ErrorKind::Malformed,
        "duplicate metadata key `format`",
    ),
    (
        "bad/f4_odd_element_count",
        ErrorKind::Malformed,
        "12 bits, not a whole number of bytes",
    ),
    (
        "bad/nul_padded_header",
        ErrorKind::Malformed,
        "trailing characters",
    ),
    (
        "bad/missing_dtype_field",
        ErrorKind::Malformed,
        "missing field `dtype`",
    ),
    (
        "attack/json_attack",
        ErrorKind::Malformed,
        "overlaps tensor",
    ),
    (
        "attack/header_too_large",
        ErrorKind::LimitExceeded,
        "over the `header-len` limit of 100000000",
    ),
    (
        "attack/header_length_u64_max",
        ErrorKind::LimitExceeded,
        "limit of 100000000",
    ),
    (
        "attack/polyglot",
        ErrorKind::Malformed,
        "unexpected bytes follow the last tensor",
    ),
    (
        "attack/huge_shape",
        ErrorKind::Malformed,
        "too large to be real",
    ),
    (
        "attack/shape_overflow",
        ErrorKind::Malformed,
        "too large to be real",
    ),
];

#[test]
fn bad_and_attack_files_fail_with_a_clear_error() {
    let mut listed: Vec<PathBuf> = REJECTED
        .iter()
        .map(|(name, ..)| fixtures().join(format!("{name}.safetensors")))
        .collect();
    listed.sort();
    let mut present = files("bad");
    present.extend(files("attack"));
    present.sort();
    assert_eq!(
        listed, present,
        "REJECTED must list every bad/ and attack/ file"
    );

    for (name, kind, fragment) in REJECTED {
        let path = fixtures().join(format!("{name}.safetensors"));
        let error = Source::open(&path).unwrap().checkpoint().unwrap_err();
        assert_eq!(error.kind(), *kind, "{name}: {error}");
        assert!(error.message().contains(fragment), "{name}: {error}");
        assert_eq!(
            error.location().path.as_deref(),
            Some(path.as_path()),
            "{name}"
        );
        if *kind == ErrorKind::Malformed {
            assert!(
                error.location().offset.is_some(),
                "{name}: no byte offset in {error}"
            );
        }
    }
}

/// Flipping any single bit of a small file never panics; whatever still reads is hashable.
#[test]
fn bit_flipped_fixtures_never_panic() {
    let bytes = std::fs::read(fixtures().join("ok/tiny-mlp.safetensors")).unwrap();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut flipped = bytes.clone();
            flipped[i] ^= 1 << bit;
            if let Ok(checkpoint) = ckpt::read(&flipped) {
                for (_, view) in checkpoint.tensors() {
                    view.sha256().unwrap();
                }
            }
        }
    }
}

/// `Checkpoint::get` finds each tensor `tensors` lists under its name (the first of a name
/// two paths give), and `iter_tensors` lists the same, on every ok torch and framework
/// fixture.
#[test]
fn get_finds_every_listed_tensor_by_name() {
    let mut paths = Vec::new();
    for folder in ["ok/torch", "ok/frameworks"] {
        let mut stack = vec![fixtures().join(folder)];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if !path.to_string_lossy().ends_with(".json") && !path.ends_with("README.md")
                {
                    paths.push(path);
                }
            }
        }
    }
    assert!(paths.len() > 50, "{}", paths.len());
    let mut checked = 0;
    for path in paths {
        let Ok(source) = Source::open(&path) else {
            continue;
        };
        let Ok(checkpoint) = source.checkpoint() else {
            continue;
        };
        let listed = checkpoint.tensors();
        let iterated: Vec<_> = checkpoint.iter_tensors().collect();
        assert_eq!(listed.len(), iterated.len(), "{}", path.display());
        for ((a, x), (b, y)) in listed.iter().zip(&iterated) {
            assert_eq!(a, b, "{}", path.display());
            assert!(std::ptr::eq(*x, *y), "{}: {a}", path.display());
        }
        for (name, _) in &listed {
            let first = listed.iter().find(|(n, _)| n == name).unwrap().1;
            let got = checkpoint
                .get(name)
                .unwrap_or_else(|| panic!("{}: {name}", path.display()));
            assert!(std::ptr::eq(got, first), "{}: {name}", path.display());
            checked += 1;
        }
        assert!(checkpoint.get("no.such.tensor.anywhere").is_none());
    }
    assert!(checked > 500, "{checked}");
}
