//! Checkpoint formats and their detection by content.
//!
//! File names lie (`pytorch_model.bin` may be a zip, a legacy pickle stream or an HTML
//! error page), so ckpt decides what a file is from its bytes, in the order torch does:
//! zip first, then tar, then a pickle that starts with torch's magic number, and adds the
//! files people mistake for checkpoints, each with a word on what to do.

use std::fmt;

use crate::error::{Error, ErrorKind, Result};

/// A checkpoint container format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// A safetensors file.
    Safetensors,
    /// A `torch.save` zip archive (torch >= 1.6).
    TorchZip,
    /// A `torch.save` legacy pickle stream (torch 0.4 to 1.5, or
    /// `_use_new_zipfile_serialization=False`).
    TorchLegacy,
    /// A `torch.save` tar archive (torch <= 0.3).
    TorchTar,
    /// A TorchScript archive (`torch.jit.save`).
    TorchScript,
    /// A plain Python pickle.
    Pickle,
    /// A `torch.distributed.checkpoint` folder (`.metadata` and `*.distcp` files).
    DistributedCheckpoint,
}

impl Format {
    /// A short stable name (`"safetensors"`, `"torch-zip"`...), as used in JSON reports.
    pub fn name(self) -> &'static str {
        match self {
            Format::Safetensors => "safetensors",
            Format::TorchZip => "torch-zip",
            Format::TorchLegacy => "torch-legacy",
            Format::TorchTar => "torch-tar",
            Format::TorchScript => "torchscript",
            Format::Pickle => "pickle",
            Format::DistributedCheckpoint => "torch-dcp",
        }
    }

    /// A description for people.
    pub fn description(self) -> &'static str {
        match self {
            Format::Safetensors => "safetensors file",
            Format::TorchZip => "PyTorch zip checkpoint (torch.save, torch >= 1.6)",
            Format::TorchLegacy => {
                "legacy PyTorch checkpoint (torch.save, torch 0.4 to 1.5 or \
                 _use_new_zipfile_serialization=False)"
            }
            Format::TorchTar => "PyTorch tar checkpoint (torch.save, torch <= 0.3)",
            Format::TorchScript => "TorchScript archive (torch.jit.save)",
            Format::Pickle => "Python pickle",
            Format::DistributedCheckpoint => {
                "torch.distributed.checkpoint folder (.metadata and .distcp files)"
            }
        }
    }
}

/// A format serializes as its [`Format::name`].
impl serde::Serialize for Format {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// torch's legacy magic number, `0x1950a86a20f9469cfc6c`, as the 10 bytes of a `LONG1`.
const TORCH_MAGIC_LONG1: &[u8] = b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";
/// The same number pickled with protocol 0 or 1.
const TORCH_MAGIC_TEXT: &[u8] = b"L119547037146038801333356L\n";

/// Decides what kind of file `bytes` hold.
///
/// Returns the [`Format`] of a checkpoint, or an [`ErrorKind::NotACheckpoint`] error that
/// says what the file is instead and what to do (an empty file, a Git LFS pointer, an HTML
/// page, a GGUF, ONNX or NumPy file...).
pub fn detect(bytes: &[u8]) -> Result<Format> {
    if bytes.is_empty() {
        return Err(not_a_checkpoint("the file is empty (0 bytes)")
            .with_hint("the download or copy was probably interrupted; fetch the file again"));
    }
    if bytes.len() < 8 && ckpt_pickle::sniff(bytes).is_none() {
        return Err(not_a_checkpoint(format!(
            "the file is only {} bytes long, too short to be a checkpoint",
            bytes.len()
        ))
        .with_hint("the download or copy was probably interrupted; fetch the file again"));
    }
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return detect_zip(bytes);
    }
    if looks_like_safetensors(bytes) {
        return Ok(Format::Safetensors);
    }
    // torch.load tries a tar before a pickle: `tarfile` takes any first block whose header
    // checksum is right (with or without the `ustar` magic).
    if crate::walk::tar::is_tar(bytes) {
        return Ok(Format::TorchTar);
    }
    if is_torch_legacy(bytes) {
        return Ok(Format::TorchLegacy);
    }
    if let Some(error) = known_non_checkpoint(bytes) {
        return Err(error);
    }
    if ckpt_pickle::sniff(bytes).is_some() {
        return Ok(Format::Pickle);
    }
    Err(not_a_checkpoint(format!(
        "not a checkpoint format ckpt knows (it starts with {})",
        preview(bytes)
    ))
    .with_hint("ckpt reads safetensors, PyTorch (.pt/.pth/.bin), TorchScript and pickle files"))
}

fn not_a_checkpoint(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::NotACheckpoint, message)
}

/// The first bytes, escaped, for messages about unknown content.
fn preview(bytes: &[u8]) -> String {
    let head = bytes.get(..16).unwrap_or(bytes);
    format!("\"{}\"", head.escape_ascii())
}

/// A safetensors file starts with a little-endian u64 header length, then a JSON object
/// (the reference reader accepts JSON whitespace before the `{`). A header that opens a
/// JSON array is let through too, so that the reader can say what is wrong with it.
pub(crate) fn looks_like_safetensors(bytes: &[u8]) -> bool {
    let Some((length, rest)) = bytes.split_first_chunk::<8>() else {
        return false;
    };
    let length = u64::from_le_bytes(*length);
    length >= 2
        && rest
            .iter()
            .take(usize::try_from(length).unwrap_or(usize::MAX))
            .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            .is_some_and(|b| matches!(b, b'{' | b'['))
}

/// A legacy stream starts with a pickle of torch's magic number, under any protocol.
fn is_torch_legacy(bytes: &[u8]) -> bool {
    let after_proto = match bytes {
        [0x80, 2..=5, rest @ ..] => rest,
        _ => return bytes.starts_with(TORCH_MAGIC_TEXT),
    };
    // Protocol 4+ may open a FRAME (opcode + u64 length) before the first value.
    let first_value = match after_proto {
        [0x95, rest @ ..] => rest.get(8..).unwrap_or_default(),
        rest => rest,
    };
    first_value.starts_with(TORCH_MAGIC_LONG1)
}

fn detect_zip(bytes: &[u8]) -> Result<Format> {
    let names = crate::walk::zip::directory_names(bytes)?;
    let record = |name: &str| {
        names
            .iter()
            .any(|n| *n == name || n.ends_with(&format!("/{name}")))
    };
    // torch's `_is_torchscript_zip`: a `constants.pkl` record means TorchScript.
    if record("constants.pkl") {
        return Ok(Format::TorchScript);
    }
    if record("data.pkl") {
        return Ok(Format::TorchZip);
    }
    if !names.is_empty() && names.iter().all(|n| n.ends_with(".npy")) {
        return Err(
            not_a_checkpoint("this is a NumPy .npz archive, not a PyTorch checkpoint")
                .with_hint("load it with numpy.load; ckpt does not read NumPy archives"),
        );
    }
    Err(not_a_checkpoint(format!(
        "this zip archive is not a PyTorch checkpoint: it has no data.pkl record ({} entries)",
        names.len()
    ))
    .with_hint("torch.save archives hold <name>/data.pkl, <name>/data/0... and <name>/version"))
}

/// Files that are often mistaken for checkpoints.
fn known_non_checkpoint(bytes: &[u8]) -> Option<Error> {
    if bytes.starts_with(b"version https://git-lfs.github.com/spec/") {
        let text = String::from_utf8_lossy(bytes.get(..1024).unwrap_or(bytes)).into_owned();
        let field = |key: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(key))
                .map(str::trim)
                .map(str::to_owned)
        };
        let size = field("size ").map_or_else(String::new, |s| format!(" of {s} bytes"));
        return Some(
            not_a_checkpoint(format!(
                "this is a Git LFS pointer, not the checkpoint itself: the real file{size} was never downloaded"
            ))
            .with_hint("run `git lfs pull` in the repository (or download the file directly)"),
        );
    }
    let text_start = bytes
        .strip_prefix(b"\xef\xbb\xbf")
        .unwrap_or(bytes)
        .trim_ascii_start();
    let head = text_start
        .get(..15)
        .unwrap_or(text_start)
        .to_ascii_lowercase();
    if head.starts_with(b"<!doctype html")
        || head.starts_with(b"<html")
        || head.starts_with(b"<head")
    {
        return Some(
            not_a_checkpoint("this is an HTML page, not a checkpoint").with_hint(
                "the download saved an error or login page; on the Hugging Face Hub, \
                     download from a /resolve/ URL (not /blob/) and pass a token for gated models",
            ),
        );
    }
    if bytes.starts_with(b"GGUF") {
        return Some(
            not_a_checkpoint("this is a GGUF file (llama.cpp), which ckpt does not read")
                .with_hint("use llama.cpp's gguf tools for GGUF files"),
        );
    }
    if bytes.starts_with(b"\x93NUMPY") {
        return Some(
            not_a_checkpoint("this is a NumPy .npy array, not a checkpoint")
                .with_hint("load it with numpy.load; ckpt does not read NumPy files"),
        );
    }
    if looks_like_onnx(bytes) {
        return Some(
            not_a_checkpoint("this looks like an ONNX model, which ckpt does not read")
                .with_hint("use the onnx package or Netron to look inside ONNX models"),
        );
    }
    None
}

/// An ONNX `ModelProto` starts with field 1 (`ir_version`, a small varint) followed by one
/// of the model's other fields (producer name, graph, opset imports...).
fn looks_like_onnx(bytes: &[u8]) -> bool {
    match bytes {
        [0x08, 1..=30, next, ..] => {
            matches!(next, 0x12 | 0x1a | 0x22 | 0x28 | 0x32 | 0x3a | 0x42 | 0x72)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn kind(bytes: &[u8]) -> ErrorKind {
        detect(bytes).unwrap_err().kind()
    }

    #[test]
    fn safetensors_is_recognised_even_when_truncated() {
        assert_eq!(
            detect(b"\x02\0\0\0\0\0\0\0{}").unwrap(),
            Format::Safetensors
        );
        assert_eq!(
            detect(b"\x10\0\0\0\0\0\0\0  \t{\"a\"").unwrap(),
            Format::Safetensors
        );
        assert_eq!(
            detect(b"\xff\xff\0\0\0\0\0\0{").unwrap(),
            Format::Safetensors
        );
        let mut padded = 202u64.to_le_bytes().to_vec();
        padded.extend_from_slice(&[b' '; 200]);
        padded.extend_from_slice(b"{}");
        assert_eq!(detect(&padded).unwrap(), Format::Safetensors);
        assert!(
            crate::read(&padded).is_ok(),
            "the reference accepts leading whitespace"
        );
    }

    #[test]
    fn legacy_streams_under_every_protocol() {
        let mut v2 = b"\x80\x02".to_vec();
        v2.extend_from_slice(TORCH_MAGIC_LONG1);
        assert_eq!(detect(&v2).unwrap(), Format::TorchLegacy);
        let mut v4 = b"\x80\x04\x95\x0d\0\0\0\0\0\0\0".to_vec();
        v4.extend_from_slice(TORCH_MAGIC_LONG1);
        v4.push(b'.');
        assert_eq!(detect(&v4).unwrap(), Format::TorchLegacy);
        assert_eq!(
            detect(b"L119547037146038801333356L\n.").unwrap(),
            Format::TorchLegacy
        );
        assert_eq!(detect(b"\x80\x02}q\x00.").unwrap(), Format::Pickle);
    }

    #[test]
    fn tar_and_zip_kinds() {
        let mut tar = vec![0u8; 512];
        tar[..8].copy_from_slice(b"sys_info");
        tar[257..262].copy_from_slice(b"ustar");
        tar[148..156].copy_from_slice(b"        ");
        let sum: u32 = tar.iter().map(|&b| u32::from(b)).sum();
        tar[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        assert_eq!(detect(&tar).unwrap(), Format::TorchTar);
        // tarfile checks the checksum, not the magic.
        tar[0] = b'S';
        assert_ne!(detect(&tar).ok(), Some(Format::TorchTar));

        let zip_with = |names: &[&str]| {
            let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            for name in names {
                writer
                    .start_file(*name, zip::write::SimpleFileOptions::default())
                    .unwrap();
                writer.write_all(b"x").unwrap();
            }
            writer.finish().unwrap().into_inner()
        };
        assert_eq!(
            detect(&zip_with(&["m/data.pkl", "m/version"])).unwrap(),
            Format::TorchZip
        );
        assert_eq!(
            detect(&zip_with(&["m/data.pkl", "m/constants.pkl", "m/code/x.py"])).unwrap(),
            Format::TorchScript
        );
        assert_eq!(
            kind(&zip_with(&["a.npy", "b.npy"])),
            ErrorKind::NotACheckpoint
        );
        assert_eq!(kind(&zip_with(&["readme.txt"])), ErrorKind::NotACheckpoint);
        assert_eq!(kind(b"PK\x03\x04truncated"), ErrorKind::Malformed);
    }

    #[test]
    fn common_mistakes_get_a_helpful_word() {
        let lfs = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 438\n";
        let error = detect(lfs).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::NotACheckpoint);
        assert!(error.message().contains("of 438 bytes"), "{error}");
        assert!(error.hint().unwrap().contains("git lfs pull"));
        assert!(
            detect(b"\n  <!DOCTYPE html><html>")
                .unwrap_err()
                .message()
                .contains("HTML")
        );
        assert!(
            detect(b"GGUF\x03\0\0\0")
                .unwrap_err()
                .message()
                .contains("GGUF")
        );
        assert!(
            detect(b"\x93NUMPY\x01\0")
                .unwrap_err()
                .message()
                .contains("NumPy")
        );
        assert!(
            detect(b"\x08\x07\x12\x07pytorch")
                .unwrap_err()
                .message()
                .contains("ONNX")
        );
        assert!(detect(b"").unwrap_err().message().contains("empty"));
        assert!(
            detect(b"\x08\0\0")
                .unwrap_err()
                .message()
                .contains("only 3 bytes")
        );
        let unknown = detect(b"hello world").unwrap_err();
        assert!(unknown.message().contains("hello world"), "{unknown}");
    }
}
