//! Damaged files of every format: truncated at every length, bits flipped, bytes
//! overwritten. Reading them (and hashing whatever reads, and scanning them) must give a
//! result or an error, never a panic, a hang or a huge allocation.
//!
//! The fixtures are the committed `ok/` files of every reader: safetensors, PyTorch zip,
//! legacy and tar files from torch 2.0 and 2.15, TorchScript, and the shard and DCP folders.

use std::path::{Path, PathBuf};

use ckpt::scan::{ScanOptions, scan_bytes};
use ckpt::stats::{self, StatsOptions};
use ckpt::{Source, read};
use rayon::prelude::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Every single-file fixture that reads.
fn files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for folder in ["ok", "ok/torch"] {
        for entry in std::fs::read_dir(fixtures().join(folder)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() && !path.to_string_lossy().ends_with(".json") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() > 60, "fixtures are missing: {files:?}");
    files
}

/// Reads `bytes` as ckpt reads a file (detection, then the reader), hashes every tensor
/// and computes its statistics; whether it read.
fn read_all(bytes: &[u8], name: &str) -> bool {
    match read(bytes) {
        Ok(checkpoint) => {
            for (_, view) in checkpoint.tensors() {
                let _ = view.sha256();
            }
            let _ = stats::compute(&checkpoint.tensors(), &histograms(), &());
            true
        }
        Err(error) => {
            // Errors are for people: never empty.
            assert!(!error.message().is_empty(), "{name}: an empty error");
            false
        }
    }
}

/// Statistics with a histogram: both passes over the data.
fn histograms() -> StatsOptions {
    StatsOptions {
        histogram_bins: Some(16),
    }
}

/// [`read_all`], then the scanner, then verify (which must not call a file sound that
/// does not read).
fn exercise(bytes: &[u8], name: &str) -> bool {
    let read = read_all(bytes, name);
    let _ = scan_bytes(bytes, name, &ScanOptions::default());
    if let Ok(report) = ckpt::verify::verify_bytes(bytes) {
        assert!(read || !report.is_sound(), "{name}: sound but unreadable");
    }
    read
}

/// The lengths a truncation test cuts a file of `len` bytes at: every length for files of
/// up to 16 KiB, and for larger ones every length within 4 KiB of either end (headers,
/// pickles, zip directories) plus every 7th in between, so that a debug build stays quick.
fn cuts(len: usize) -> Vec<usize> {
    if len <= 16 << 10 {
        return (0..len).collect();
    }
    let edge = 4 << 10;
    (0..len)
        .filter(|&n| n < edge || n + edge >= len || n % 7 == 0)
        .collect()
}

/// Every prefix of every fixture reads as an error, or (for formats whose end is not
/// marked, such as a bare pickle followed by nothing) as a checkpoint; never a panic. A
/// prefix of a safetensors or zip file is always an error.
#[test]
fn every_truncation_fails_cleanly() {
    files().par_iter().for_each(|path| {
        let bytes = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        let strict = name.ends_with(".safetensors") || name.contains("-zip.");
        for len in cuts(bytes.len()) {
            let read = read_all(&bytes[..len], &name);
            assert!(
                !(strict && read),
                "{name}: a {len}-byte prefix was accepted"
            );
        }
        assert!(read_all(&bytes, &name), "{name} does not read whole");
    });
}

/// verify never calls a prefix of a safetensors or zip file sound (nor the whole file
/// unsound): every length of the files of up to 64 KiB.
#[test]
fn verify_never_calls_a_truncated_file_sound() {
    files().par_iter().for_each(|path| {
        let bytes = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        let strict = name.ends_with(".safetensors") || name.contains("-zip.");
        if !strict || bytes.len() > 64 << 10 {
            return;
        }
        for len in cuts(bytes.len()) {
            if let Ok(report) = ckpt::verify::verify_bytes(&bytes[..len]) {
                assert!(!report.is_sound(), "{name}: a {len}-byte prefix is sound");
            }
        }
        let whole = ckpt::verify::verify_bytes(&bytes).unwrap();
        assert!(whole.is_sound(), "{name}: {:?}", whole.problems());
    });
}

/// The scanner judges what a truncated file holds so far: every prefix of the smaller
/// fixtures gives a report or an error, never a panic.
#[test]
fn every_truncation_scans_cleanly() {
    files().par_iter().for_each(|path| {
        let bytes = std::fs::read(path).unwrap();
        if bytes.len() > 4 << 10 {
            return;
        }
        let name = path.file_name().unwrap().to_string_lossy();
        for len in 0..bytes.len() {
            let _ = scan_bytes(&bytes[..len], &name, &ScanOptions::default());
        }
    });
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Thousands of random bit flips and byte overwrites in every fixture, one to four at a
/// time: never a panic; whatever still reads is hashable.
#[test]
fn bit_flips_and_overwrites_never_panic() {
    files().par_iter().enumerate().for_each(|(i, path)| {
        let bytes = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
        for _ in 0..200 {
            let mut damaged = bytes.clone();
            for _ in 0..=rng.below(4) {
                let at = rng.below(damaged.len());
                if rng.below(2) == 0 {
                    damaged[at] ^= 1 << rng.below(8);
                } else {
                    // Bytes that steer parsers: lengths near limits, opcodes, zero.
                    damaged[at] = [0x00, 0xFF, 0x7F, 0x80, b'X', b'(', b'}'][rng.below(7)];
                }
            }
            exercise(&damaged, &name);
        }
    });
}

/// What a read gave, to compare two reads of the same bytes: each tensor's name, dtype,
/// shape and hash, or the error's kind and message.
fn outcome(read: ckpt::Result<ckpt::Checkpoint<'_>>) -> Result<Vec<String>, String> {
    match read {
        Ok(checkpoint) => Ok(checkpoint
            .tensors()
            .iter()
            .map(|(name, view)| {
                let hash = view.sha256().map(|h| h.to_vec()).map_err(|e| e.to_string());
                format!("{name} {} {:?} {hash:?}", view.dtype(), view.shape())
            })
            .collect()),
        Err(error) => Err(format!("{:?}: {}", error.kind(), error.message())),
    }
}

/// A file opened as a `Source` (whose zip directory and local headers, or legacy storage
/// counts, are read from the file at their offsets, not through the map) reads exactly as
/// its bytes do: every zip and legacy fixture whole, cut anywhere in its last 300 bytes
/// (the zip directory) and at 100 places before, and with 50 random bit flips.
#[test]
fn torch_files_read_the_same_from_the_file_and_from_the_bytes() {
    let torch_files: Vec<PathBuf> = files()
        .into_iter()
        .filter(|path| {
            let bytes = std::fs::read(path).unwrap();
            matches!(
                ckpt::detect(&bytes),
                Ok(ckpt::Format::TorchZip | ckpt::Format::TorchScript | ckpt::Format::TorchLegacy)
            )
        })
        .collect();
    assert!(torch_files.len() > 30, "{torch_files:?}");
    torch_files.par_iter().enumerate().for_each(|(i, path)| {
        let bytes = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("copy.pt");
        let mut variants = vec![bytes.clone()];
        let tail = bytes.len().saturating_sub(600);
        let cuts = (0..tail)
            .step_by((tail / 300).max(97))
            .chain(tail..bytes.len());
        variants.extend(cuts.map(|n| bytes[..n].to_vec()));
        let mut rng = Rng(0x5851_F42D_4C95_7F2D ^ (i as u64 + 1));
        for _ in 0..50 {
            let mut damaged = bytes.clone();
            let at = rng.below(damaged.len());
            damaged[at] ^= 1 << rng.below(8);
            variants.push(damaged);
        }
        for variant in &variants {
            std::fs::write(&copy, variant).unwrap();
            let source = Source::open_file(&copy).unwrap();
            let from_file = outcome(source.checkpoint());
            let from_bytes = outcome(read(variant));
            // The Source's errors also name the file.
            let from_file = from_file.map_err(|e| e.replace(&format!("{}: ", copy.display()), ""));
            assert_eq!(from_file, from_bytes, "{name}, {} bytes", variant.len());
        }
    });
}

/// Copies a fixture folder into `dir`.
fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

/// Opens the folder, hashes every tensor and computes its statistics; whether it read.
fn open_folder(path: &Path) -> bool {
    match Source::open(path).and_then(|s| {
        let checkpoint = s.checkpoint()?;
        for (_, view) in checkpoint.tensors() {
            let _ = view.sha256();
        }
        let _ = stats::compute(&checkpoint.tensors(), &histograms(), &());
        Ok(())
    }) {
        Ok(()) => true,
        Err(error) => {
            assert!(!error.message().is_empty());
            false
        }
    }
}

/// Each file of each shard and DCP folder truncated (at lengths across the file) or
/// damaged, the others intact: an error or a checkpoint, never a panic.
#[test]
fn damaged_folders_fail_cleanly() {
    let folders: Vec<PathBuf> = [
        "ok/shards/safetensors",
        "ok/shards/bin",
        "ok/dcp/single-2.15",
        "ok/dcp/sharded-2.15",
    ]
    .iter()
    .map(|f| fixtures().join(f))
    .collect();
    for folder in folders {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("f");
        copy_folder(&folder, &work);
        assert!(open_folder(&work), "{} does not read", folder.display());
        let mut names: Vec<PathBuf> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        let mut rng = Rng(7);
        for original in names {
            let name = original.file_name().unwrap().to_owned();
            let bytes = std::fs::read(&original).unwrap();
            let target = work.join(&name);
            let step = (bytes.len() / 200).max(1);
            for len in (0..bytes.len()).step_by(step) {
                std::fs::write(&target, &bytes[..len]).unwrap();
                open_folder(&work);
                // A truncated file of the folder is a problem (or the folder is unreadable).
                if let Ok(report) = ckpt::verify::verify_path(&work) {
                    assert!(
                        !report.is_sound(),
                        "{}: {name:?} cut at {len}",
                        folder.display()
                    );
                }
            }
            for _ in 0..100 {
                let mut damaged = bytes.clone();
                let at = rng.below(damaged.len());
                damaged[at] ^= 1 << rng.below(8);
                std::fs::write(&target, &damaged).unwrap();
                let read = open_folder(&work);
                if let Ok(report) = ckpt::verify::verify_path(&work) {
                    assert!(
                        read || !report.is_sound(),
                        "{}: sound but unreadable",
                        folder.display()
                    );
                }
            }
            std::fs::write(&target, &bytes).unwrap();
        }
        assert!(open_folder(&work));
    }
}

/// Reading does not depend on a large stack: every hostile and broken fixture reads (or
/// fails) on a thread with a 256 KiB stack, where deep nesting that recursed on the stack
/// would overflow and abort the process (rayon's workers and many programs' threads have
/// small stacks).
#[test]
fn small_stacks_survive_deep_nesting() {
    let mut files = Vec::new();
    for folder in ["bad/torch", "attack/torch", "fuzz", "ok/torch"] {
        for entry in std::fs::read_dir(fixtures().join(folder)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() && !path.to_string_lossy().ends_with(".json") {
                files.push(path);
            }
        }
    }
    assert!(files.iter().any(|p| p.ends_with("deep_nesting.pt")));
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || {
            for path in files {
                let bytes = std::fs::read(&path).unwrap();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                exercise(&bytes, &name);
                // And the walks over the tree: values, and the PyTorch writer's pickler.
                if let Ok(checkpoint) = read(&bytes) {
                    let _ = checkpoint.values();
                    if let Ok(plan) = ckpt::torch::write::Plan::new(checkpoint.root(), "a") {
                        let _ = plan.write_to(&mut Vec::new(), &());
                    }
                }
            }
        })
        .unwrap()
        .join()
        .unwrap();
}
