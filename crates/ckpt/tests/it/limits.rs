//! Every limit of [`ckpt::Limits`], on a real file that needs it: at the smallest value the
//! file needs, it reads; one below, it fails with a `LimitExceeded` error that names the
//! limit and says how to raise it.

use std::io::Write;
use std::path::{Path, PathBuf};

use ckpt::limits::NAMES;
use ckpt::{ErrorKind, Limits, Source};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(path)
}

/// Reads the checkpoint at `path` within `limits`, hashing every tensor.
fn read(path: &Path, limits: &Limits) -> ckpt::Result<()> {
    let source = Source::open_with(path, limits)?;
    let checkpoint = source.checkpoint()?;
    for (_, view) in checkpoint.tensors() {
        view.sha256()?;
    }
    Ok(())
}

/// `limits` with `name` set to `value`.
fn with(name: &str, value: u64) -> Limits {
    let mut limits = Limits::default();
    limits.set(name, &value.to_string()).unwrap();
    limits
}

/// The smallest value of the limit `name` at which `path` reads (by bisection: reading
/// needs no more when the limit is higher).
fn needed(name: &str, path: &Path) -> u64 {
    let default = Limits::default().get(name).unwrap();
    read(path, &with(name, default)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (mut low, mut high) = (0u64, default); // fails at low - 1 (or low is 0), reads at high
    while low < high {
        let middle = low + (high - low) / 2;
        if read(path, &with(name, middle)).is_ok() {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    high
}

/// A copy of a torch zip fixture whose pickle and text records are compressed (torch
/// writes them stored; other zip writers may not; tensor data must stay stored).
fn deflated_copy(dir: &Path) -> PathBuf {
    let bytes = std::fs::read(fixture("ok/torch/checkpoint-2.15-zip.pt")).unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
    let path = dir.join("deflated.pt");
    let mut out = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let name = file.name().unwrap().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut data).unwrap();
        let options = if name.contains("/data/") {
            stored
        } else {
            deflated
        };
        out.start_file(name, options).unwrap();
        out.write_all(&data).unwrap();
    }
    out.finish().unwrap();
    path
}

#[test]
fn every_limit_holds_at_the_edge_and_names_itself() {
    let dir = tempfile::tempdir().unwrap();
    let deflated = deflated_copy(dir.path());
    let cases: Vec<(&str, PathBuf)> = vec![
        ("pickle-objects", fixture("ok/torch/checkpoint-2.15-zip.pt")),
        ("pickle-stack", fixture("ok/torch/checkpoint-2.15-zip.pt")),
        ("pickle-marks", fixture("ok/torch/checkpoint-2.15-zip.pt")),
        ("pickle-memo", fixture("ok/torch/checkpoint-2.15-zip.pt")),
        (
            "pickle-string-len",
            fixture("ok/torch/checkpoint-2.15-zip.pt"),
        ),
        ("pickle-int-digits", fixture("pickle/ok/bigints_p0.pkl")),
        (
            "pickle-long-bytes",
            fixture("ok/torch/checkpoint-2.15-legacy.pt"),
        ),
        ("header-len", fixture("ok/tiny-mlp.safetensors")),
        ("depth", fixture("ok/torch/checkpoint-2.15-zip.pt")),
        ("name-len", fixture("ok/torch/checkpoint-2.15-zip.pt")),
        ("int-len", fixture("ok/torch/values-2.15-zip.pt")),
        ("inflated-len", deflated),
        ("code-len", fixture("ok/torch/torchscript_scripted-2.15.pt")),
        ("tensors", fixture("ok/torch/checkpoint-2.15-zip.pt")),
        ("rank", fixture("ok/dcp/sharded-2.15")),
        ("tiles", fixture("ok/dcp/sharded-2.15")),
        ("files", fixture("ok/shards/safetensors")),
        ("index-len", fixture("ok/shards/bin")),
    ];
    // Every limit is covered.
    let mut covered: Vec<&str> = cases.iter().map(|(n, _)| *n).collect();
    covered.sort_unstable();
    let mut all: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
    all.sort_unstable();
    assert_eq!(covered, all);

    // Where the edge can be computed without ckpt, it must be what the file declares: the
    // limit counts the right thing, not merely something.
    let expected = independent_edges();
    for (name, path) in &cases {
        let need = needed(name, path);
        if let Some(&want) = expected.get(name) {
            assert_eq!(
                need,
                want,
                "{name}: the edge is not what {} declares",
                path.display()
            );
        }
        assert!(
            need > 0,
            "{name}: {} does not exercise the limit",
            path.display()
        );
        // At the edge it reads; one below, it fails naming the limit and the flag.
        read(path, &with(name, need)).unwrap();
        let error = read(path, &with(name, need - 1)).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::LimitExceeded, "{name}: {error}");
        assert!(
            error
                .message()
                .contains(&format!("`{name}` limit of {}", need - 1)),
            "{name}: {error}"
        );
        let hint = error.hint().unwrap_or_default();
        // The library names the limit; the CLI adds its flag.
        assert!(hint.contains(&format!("`{name}` limit")), "{name}: {hint}");
        // Errors still say where.
        assert!(error.location().path.is_some(), "{name}: {error}");
    }
}

/// The edges of the limits that can be computed from the files without ckpt or Python (the
/// pickle limits, depth, int-len, rank and tiles are counted with pickletools and torch in
/// tests/interop/test_limits.py, which also checks that every limit is covered): the
/// safetensors header's declared length; the longest dotted name and the tensor count that
/// torch saw (expected.json); the shard count and the index's size of a sharded folder; the
/// bytes of a TorchScript archive's source and of the largest compressed member (from the
/// zip directory, read by the `zip` crate).
fn independent_edges() -> std::collections::HashMap<&'static str, u64> {
    let header = std::fs::read(fixture("ok/tiny-mlp.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(header[..8].try_into().unwrap());
    let expected: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixture("ok/torch/checkpoint-2.15-zip.pt.expected.json")).unwrap(),
    )
    .unwrap();
    let names = expected["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .chain(expected["values"].as_array().unwrap())
        .map(|row| row["name"].as_str().unwrap().len() as u64);
    let shards = std::fs::read_dir(fixture("ok/shards/safetensors"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".safetensors")
        })
        .count() as u64;
    let index = std::fs::metadata(fixture("ok/shards/bin/pytorch_model.bin.index.json"))
        .unwrap()
        .len();
    // The TorchScript source is every `code/**.py` member; the deflated copy's largest
    // compressed member is its pickle (tensor data stays stored).
    let zip_sizes = |path: &str| {
        let bytes = std::fs::read(fixture(path)).unwrap();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        (0..archive.len())
            .map(|i| {
                let file = archive.by_index(i).unwrap();
                (file.name().unwrap().to_string(), file.size())
            })
            .collect::<Vec<_>>()
    };
    let code: u64 = zip_sizes("ok/torch/torchscript_scripted-2.15.pt")
        .iter()
        .filter(|(name, _)| name.contains("/code/") && name.ends_with(".py"))
        .map(|(_, size)| size)
        .sum();
    let inflated = zip_sizes("ok/torch/checkpoint-2.15-zip.pt")
        .iter()
        .filter(|(name, _)| !name.contains("/data/"))
        .map(|(_, size)| *size)
        .max()
        .unwrap();
    [
        ("code-len", code),
        ("inflated-len", inflated),
        ("header-len", header_len),
        ("name-len", names.max().unwrap()),
        (
            "tensors",
            expected["tensors"].as_array().unwrap().len() as u64,
        ),
        ("files", shards),
        ("index-len", index),
    ]
    .into_iter()
    .collect()
}
