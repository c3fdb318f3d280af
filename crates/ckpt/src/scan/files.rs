//! Which files a scan reads, and the scan of one file: opened read-only and mapped, walked
//! once (see [`crate::walk`]), judged.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::judge::scan_input;
use super::{Collector, Report, ScanOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::input::Input;
use crate::limits::Limits;
use crate::source::tree::{Folder, Paths};
use crate::source::{Source, read_small};
use crate::walk::NPY_MAGIC;

/// Scans the file at `path`: opens it read-only (memory-mapped) and judges every part of
/// it that a loader would unpickle. Never fails: problems are [`Report::errors`].
pub fn scan_file(path: &Path, options: &ScanOptions) -> Report {
    let mut report = Report::new(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.ends_with(".distcp") {
        scan_distcp(path, options, &mut report);
        return report;
    }
    match Source::open_file(path) {
        Ok(source) => {
            source.advise(crate::Access::Sparse);
            let mut c = Collector::new(options);
            report.format = scan_input(&mut c, source.input(), &name, "", 0).map(str::to_owned);
            c.into_report(&mut report);
            for error in report.errors.iter_mut() {
                let taken = std::mem::replace(error, Error::invalid(""));
                *error = taken.with_path(path);
            }
            report
        }
        Err(error) => {
            report.errors.push(error);
            report
        }
    }
}

/// A `.distcp` file is items back to back at the places its folder's `.metadata` gives:
/// each is a `torch.save` archive that the DCP reader `torch.load`s (bytes items with the
/// full unpickler), walked here as an archive of its own. The `.metadata` is its own file's
/// scan.
fn scan_distcp(path: &Path, options: &ScanOptions, report: &mut Report) {
    report.format = Some("torch-dcp data".to_owned());
    let folder = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut c = Collector::new(options);
    let source = match Source::open(folder) {
        Ok(source) => source,
        // The metadata is refused (its own scan says why): the file is read as what DCP
        // writes, archives back to back.
        Err(e) if e.kind() == ErrorKind::Refused => {
            scan_archives_back_to_back(&mut c, path, &name);
            c.into_report(report);
            return;
        }
        Err(e) => {
            report.errors.push(e.with_path(path));
            return;
        }
    };
    let Some(audit) = source.dcp_audit() else {
        report.errors.push(
            Error::invalid("the folder of this .distcp file is not a DCP checkpoint")
                .with_path(path),
        );
        return;
    };
    for (label, file, offset, bytes) in &audit.archives {
        if *file == name {
            scan_input(&mut c, Input::inflated(bytes, *offset), "", label, 1);
        }
    }
    for error in audit.errors {
        // A metadata refused for its globals is the `.metadata` file's finding.
        if error.kind() != ErrorKind::Refused {
            c.errors.push(error);
        }
    }
    c.into_report(report);
    for error in report.errors.iter_mut() {
        let taken = std::mem::replace(error, Error::invalid(""));
        *error = taken.with_path(path);
    }
}

/// A `.distcp` file without the places of its items: each zip archive from the start, up to
/// its end record, is walked as an archive; what follows the last is not accounted for.
fn scan_archives_back_to_back(c: &mut Collector<'_>, path: &Path, name: &str) {
    let source = match Source::open_file(path) {
        Ok(source) => source,
        Err(e) => {
            c.errors.push(e);
            return;
        }
    };
    let bytes = source.bytes();
    let mut at = 0usize;
    while bytes
        .get(at..)
        .is_some_and(|rest| rest.starts_with(b"PK\x03\x04"))
    {
        let rest = bytes.get(at..).unwrap_or_default();
        let Some(end) = memchr::memmem::find(rest, b"PK\x05\x06")
            .and_then(|eocd| {
                let comment = rest.get(eocd + 20..eocd + 22)?;
                Some(eocd + 22 + usize::from(u16::from_le_bytes(comment.try_into().ok()?)))
            })
            .filter(|&end| end <= rest.len())
        else {
            break;
        };
        let label = format!("{name} at byte {at}");
        let archive = rest.get(..end).unwrap_or_default();
        scan_input(c, Input::inflated(archive, at as u64), "", &label, 1);
        at += end;
    }
    if at < bytes.len() {
        c.container(
            super::Verdict::Unsafe,
            Some(name),
            Some(at as u64),
            format!(
                "{} bytes are not archives, and the folder's metadata, which would say what \
                 they are, cannot be read",
                bytes.len() - at
            ),
        );
    }
}

/// Scans the bytes of one file named `name` (the name only tells `.metadata` and index
/// files apart; formats are detected from the content).
pub fn scan_bytes(bytes: &[u8], name: &str, options: &ScanOptions) -> Report {
    let mut report = Report::new(Path::new(name));
    let mut c = Collector::new(options);
    report.format = scan_input(&mut c, Input::new(bytes), name, "", 0).map(str::to_owned);
    c.into_report(&mut report);
    report
}

// --- folders ---

/// The files to scan under `paths`: files as given, folders walked recursively (symbolic
/// links followed, loops skipped), and the shards a given shard index names. Each file
/// once, in a deterministic order; paths that cannot be read are errors.
pub fn collect_files(paths: &[PathBuf]) -> Vec<Result<PathBuf>> {
    let mut out = Paths::default();
    for path in paths {
        let metadata = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                out.error(Error::io("cannot open", path, e));
                continue;
            }
        };
        if metadata.is_dir() {
            let before = out.len();
            out.walk(path, &|_| Folder::Enter, &worth_scanning);
            if out.len() == before {
                // Nothing to scan is not "safe": say so.
                out.error(
                    Error::unsupported(
                        "this folder holds no file that may hold a checkpoint or a pickle (by \
                         extension: .pt, .pth, .bin, .ckpt, .pkl, .safetensors, .npy...), at \
                         any depth",
                    )
                    .with_path(path)
                    .with_hint("pass the files themselves to scan them whatever their names"),
                );
            }
        } else {
            out.push(path);
            // An index brings its shards.
            let is_index = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(".index.json"));
            if is_index
                && let Ok(bytes) = read_small(path, Limits::default().index_len)
                && let Ok(shards) = crate::hf::index_shards(&bytes)
            {
                let folder = path.parent().unwrap_or(Path::new("."));
                for shard in shards {
                    if !shard.contains(['/', '\\']) && shard != ".." {
                        out.push(&folder.join(shard));
                    }
                }
            }
        }
    }
    out.into_vec()
}

/// Extensions of files that hold (or may hold) pickles or weights.
const EXTENSIONS: &[&str] = &[
    "pt",
    "pth",
    "bin",
    "ckpt",
    "pkl",
    "pickle",
    "joblib",
    "dill",
    "safetensors",
    "npy",
    "npz",
    "distcp",
    "mar",
    "pt2",
    "model",
    "data",
    "h5",
    "pb",
    "onnx",
    "gguf",
    "zip",
    "tar",
    "7z",
    "gz",
    "z",
    "bz2",
    "xz",
    "lzma",
    "lz4",
];

/// Whether a file met in a folder walk is scanned: checkpoint extensions, shard indexes,
/// DCP metadata, and any file that starts like a zip or a protocol 2+ pickle.
fn worth_scanning(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name == ".metadata" || name.ends_with(".index.json") {
        return true;
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if ["onnx", "gguf", "h5", "pb", "7z"].contains(&ext.as_str()) {
        return false; // formats without pickles, which ckpt does not read
    }
    if EXTENSIONS.contains(&ext.as_str()) {
        return true;
    }
    let mut head = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && (head.starts_with(b"PK\x03\x04")
            || matches!(head, [0x80, 2..=5, ..])
            || head.starts_with(NPY_MAGIC.get(..4).unwrap_or_default())
            || head.starts_with(b"\x1f\x8b")
            || head.starts_with(b"BZh")
            || head.starts_with(b"\xfd7zX")
            || head.starts_with(b"\x04\x22\x4d\x18"))
}
