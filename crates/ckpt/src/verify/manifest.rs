//! Manifests: every tensor's name, dtype, shape and SHA-256, written once and checked
//! later against the same tensors, whatever format holds them by then.
//!
//! The hash is [`TensorView::sha256`](crate::TensorView::sha256): the elements, packed,
//! row-major, little-endian, so it does not depend on the container, the byte order or the
//! strides. The file is JSON:
//!
//! ```json
//! {"ckpt_manifest": 1, "tensors": [
//!   {"name": "fc.weight", "dtype": "float32", "shape": [2, 3], "sha256": "9f86d0..."}
//! ]}
//! ```
//!
//! The output of `ckpt inspect --json --hash` is accepted as a manifest too (its
//! `tensors` rows carry the same four fields, among others).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use std::path::Path;

use super::{
    MANIFEST_DTYPE, MANIFEST_EXTRA, MANIFEST_MISSING, MANIFEST_READ, MANIFEST_SHA256,
    MANIFEST_SHAPE, Problem,
};
use crate::digest::{hex, sha256_all};
use crate::error::ErrorKind;
use crate::error::{Error, Result};
use crate::model::{Checkpoint, TensorView};
use crate::progress::Progress;
use crate::source::{Access, Source};

/// The version of the manifest format written in `ckpt_manifest`.
pub const MANIFEST_VERSION: u32 = 1;

/// One tensor of a [`Manifest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The tensor's full name, as `ckpt inspect` shows it.
    pub name: String,
    /// torch's name for its dtype (`float32`).
    pub dtype: String,
    /// Its shape.
    pub shape: Vec<u64>,
    /// The SHA-256 of its packed row-major little-endian elements, in lowercase hex.
    pub sha256: String,
}

/// Every tensor of a checkpoint with its content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest format's version ([`MANIFEST_VERSION`]); absent in `ckpt inspect`
    /// reports, which are read the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ckpt_manifest: Option<u32>,
    /// The tensors, in the checkpoint's order.
    pub tensors: Vec<ManifestEntry>,
}

/// A tensor row as read: `sha256` may be missing (a `ckpt inspect --json` report made
/// without `--hash`), which is an error then.
#[derive(Deserialize)]
struct Row {
    name: String,
    dtype: String,
    shape: Vec<u64>,
    #[serde(default)]
    sha256: Option<String>,
}

#[derive(Deserialize)]
struct Rows {
    #[serde(default)]
    ckpt_manifest: Option<u32>,
    tensors: Vec<Row>,
}

impl Manifest {
    /// The manifest as a conversion would name its tensors: only those under `key` (a
    /// dotted key of the checkpoint, as [`crate::ConvertOptions::key`] takes one), named
    /// from there, then filtered and renamed by `map`. A manifest taken before `convert
    /// --key model --strip-prefix module.` then checks the converted file.
    pub fn mapped(&self, key: Option<&str>, map: &crate::KeyMap) -> Result<Manifest> {
        let under_key = self.tensors.iter().filter_map(|entry| {
            let name = match key {
                None => entry.name.clone(),
                Some(key) if entry.name == key => String::new(),
                Some(key) => entry
                    .name
                    .strip_prefix(key)
                    .and_then(|rest| rest.strip_prefix('.'))?
                    .to_owned(),
            };
            Some((name, entry.clone()))
        });
        let items: Vec<(String, ManifestEntry)> = under_key.collect();
        if let (Some(key), true) = (key, items.is_empty()) {
            return Err(Error::invalid(format!(
                "the manifest has no tensor under the key `{key}`"
            ))
            .with_hint("a key of the checkpoint the manifest was taken of"));
        }
        let mapped = map.apply(items)?;
        Ok(Manifest {
            ckpt_manifest: self.ckpt_manifest,
            tensors: mapped
                .kept
                .into_iter()
                .map(|(name, entry)| ManifestEntry { name, ..entry })
                .collect(),
        })
    }

    /// The manifest of every tensor of `checkpoint`, hashed on all cores; `progress`
    /// hears about every chunk and can cancel the work.
    pub fn of(checkpoint: &Checkpoint<'_>, progress: &dyn Progress) -> Result<Manifest> {
        let tensors = checkpoint.tensors();
        let hashes = sha256_all(&tensors, progress)?;
        Ok(Manifest {
            ckpt_manifest: Some(MANIFEST_VERSION),
            tensors: tensors
                .iter()
                .zip(&hashes)
                .map(|((name, view), hash)| entry(name, view, hex(hash)))
                .collect(),
        })
    }

    /// The manifest as pretty JSON, one tensor a line, with a final newline.
    pub fn to_json(&self) -> String {
        let rows: Vec<String> = self
            .tensors
            .iter()
            .map(|t| serde_json::to_string(t).unwrap_or_default())
            .collect();
        format!(
            "{{\"ckpt_manifest\": {}, \"tensors\": [\n{}\n]}}\n",
            self.ckpt_manifest.unwrap_or(MANIFEST_VERSION),
            rows.iter()
                .map(|r| format!("  {r}"))
                .collect::<Vec<_>>()
                .join(",\n")
        )
        .replace("[\n\n]", "[]")
    }

    /// Reads a manifest (or a `ckpt inspect --json --hash` report).
    pub fn parse(bytes: &[u8]) -> Result<Manifest> {
        let rows: Rows = serde_json::from_slice(bytes).map_err(|e| {
            Error::invalid(format!("not a manifest: {e}")).with_hint(
                "a manifest is the JSON of `Manifest::to_json` (or an inspection report with \
                 every tensor's sha256)",
            )
        })?;
        if let Some(version) = rows.ckpt_manifest
            && version > MANIFEST_VERSION
        {
            return Err(Error::unsupported(format!(
                "manifest version {version}; this ckpt reads version {MANIFEST_VERSION}"
            )));
        }
        let mut seen = HashSet::new();
        let mut tensors = Vec::with_capacity(rows.tensors.len());
        for row in rows.tensors {
            if !seen.insert(row.name.clone()) {
                return Err(
                    Error::invalid("the manifest lists a tensor twice").with_tensor(row.name)
                );
            }
            let Some(sha256) = row.sha256 else {
                return Err(
                    Error::invalid("the manifest gives no sha256 for this tensor")
                        .with_tensor(row.name)
                        .with_hint("make it from the checkpoint with `Manifest::of`, which hashes every tensor"),
                );
            };
            let valid = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
            if !valid {
                return Err(
                    Error::invalid(format!("`{sha256}` is not a SHA-256 in hex"))
                        .with_tensor(row.name),
                );
            }
            tensors.push(ManifestEntry {
                name: row.name,
                dtype: row.dtype,
                shape: row.shape,
                sha256: sha256.to_ascii_lowercase(),
            });
        }
        Ok(Manifest {
            ckpt_manifest: rows.ckpt_manifest,
            tensors,
        })
    }

    /// Checks `checkpoint` against the manifest: every tensor of one is in the other, with
    /// the same dtype, shape and hash. Tensors whose dtype or shape already differ are not
    /// hashed. Fails only when reading tensor data fails (or is cancelled).
    pub fn check(
        &self,
        checkpoint: &Checkpoint<'_>,
        progress: &dyn Progress,
    ) -> Result<Vec<Problem>> {
        let mut out = Vec::new();
        let tensors = checkpoint.tensors();
        let present: HashMap<&str, &TensorView<'_>> =
            tensors.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        let expected: HashSet<&str> = self.tensors.iter().map(|t| t.name.as_str()).collect();
        let mut to_hash = Vec::new();
        let mut wanted = Vec::new();
        for entry in &self.tensors {
            let Some(view) = present.get(entry.name.as_str()) else {
                out.push(
                    Problem::new(
                        &MANIFEST_MISSING,
                        "the manifest lists this tensor; the file does not hold it",
                    )
                    .tensor(entry.name.clone()),
                );
                continue;
            };
            let dtype = view.dtype().name();
            if dtype != entry.dtype {
                out.push(
                    Problem::new(
                        &MANIFEST_DTYPE,
                        format!("the tensor is {dtype}; the manifest says {}", entry.dtype),
                    )
                    .tensor(entry.name.clone()),
                );
                continue;
            }
            let shape: Vec<u64> = view.shape().iter().map(|&d| d as u64).collect();
            if shape != entry.shape {
                out.push(
                    Problem::new(
                        &MANIFEST_SHAPE,
                        format!(
                            "the tensor's shape is {shape:?}; the manifest says {:?}",
                            entry.shape
                        ),
                    )
                    .tensor(entry.name.clone()),
                );
                continue;
            }
            to_hash.push((entry.name.clone(), *view));
            wanted.push(&entry.sha256);
        }
        for (name, _) in &tensors {
            if !expected.contains(name.as_str()) {
                out.push(
                    Problem::new(
                        &MANIFEST_EXTRA,
                        "the file holds this tensor; the manifest does not list it",
                    )
                    .tensor(name.clone()),
                );
            }
        }
        let hashes = sha256_all(&to_hash, progress)?;
        for (((name, _), hash), wanted) in to_hash.iter().zip(&hashes).zip(wanted) {
            let actual = hex(hash);
            if &actual != wanted {
                out.push(
                    Problem::new(
                        &MANIFEST_SHA256,
                        format!(
                            "the tensor's elements hash to {actual}; the manifest says {wanted}"
                        ),
                    )
                    .tensor(name.clone())
                    .hint("the values changed since the manifest was made"),
                );
            }
        }
        Ok(out)
    }
}

/// Checks the checkpoint at `path` (a file or a multi-file folder) against `manifest`.
///
/// A checkpoint whose tensors cannot be read (or hashed) is a `manifest.read` problem;
/// only I/O failures to open it and cancellation are errors.
pub fn check_manifest(
    path: &Path,
    manifest: &Manifest,
    progress: &dyn Progress,
) -> Result<Vec<Problem>> {
    let source = Source::open(path)?;
    source.advise(Access::Sequential);
    let unreadable = |e: &Error| Problem::from_error(&MANIFEST_READ, e);
    let checkpoint = match source.checkpoint() {
        Ok(checkpoint) => checkpoint,
        Err(e) if e.kind() == ErrorKind::Io => return Err(e),
        Err(e) => return Ok(vec![unreadable(&e)]),
    };
    match manifest.check(&checkpoint, progress) {
        Ok(problems) => Ok(problems),
        Err(e) if matches!(e.kind(), ErrorKind::Io | ErrorKind::Interrupted) => Err(e),
        Err(e) => Ok(vec![unreadable(&e)]),
    }
}

fn entry(name: &str, view: &TensorView<'_>, sha256: String) -> ManifestEntry {
    ManifestEntry {
        name: name.to_owned(),
        dtype: view.dtype().name().to_owned(),
        shape: view.shape().iter().map(|&d| d as u64).collect(),
        sha256,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Format;
    use crate::model::{ByteOrder, Dict, Dtype, Storage, Value};
    use std::collections::BTreeMap;

    fn checkpoint(values: &[(&str, &[u8])]) -> Checkpoint<'static> {
        let entries = values
            .iter()
            .map(|(name, bytes)| {
                let storage = Storage::owned(bytes.to_vec(), ByteOrder::Little);
                let view =
                    TensorView::contiguous(Dtype::UInt8, vec![bytes.len()], storage).unwrap();
                (Value::Str((*name).to_owned()), Value::Tensor(view))
            })
            .collect();
        Checkpoint::new(
            Format::Safetensors,
            BTreeMap::new(),
            Value::Dict(Dict::new(entries)),
        )
    }

    #[test]
    fn round_trip_and_every_mismatch_listed() {
        let original = checkpoint(&[("a", b"\x01\x02"), ("b", b"\x03"), ("c", b"\x04")]);
        let manifest = Manifest::of(&original, &()).unwrap();
        let text = manifest.to_json();
        assert!(
            text.starts_with("{\"ckpt_manifest\": 1, \"tensors\": [\n  {\"name\":\"a\""),
            "{text}"
        );
        let parsed = Manifest::parse(text.as_bytes()).unwrap();
        assert_eq!(parsed, manifest);
        assert!(parsed.check(&original, &()).unwrap().is_empty());

        let changed = checkpoint(&[("a", b"\x01\x09"), ("b", b"\x03\x03"), ("d", b"\x00")]);
        let problems = parsed.check(&changed, &()).unwrap();
        let found: Vec<(&str, Option<&str>)> = problems
            .iter()
            .map(|p| (p.rule().id, p.location().tensor.as_deref()))
            .collect();
        assert_eq!(
            found,
            [
                ("manifest.shape", Some("b")),
                ("manifest.missing", Some("c")),
                ("manifest.extra", Some("d")),
                ("manifest.sha256", Some("a")),
            ]
        );
    }

    #[test]
    fn inspect_reports_are_manifests_and_bad_ones_are_refused() {
        let inspect = br#"{"path":"x","tensors":[{"name":"a","dtype":"uint8","shape":[2],"stride":[1],"sha256":"ABababababababababababababababababababababababababababababababab"}]}"#;
        let manifest = Manifest::parse(inspect).unwrap();
        assert_eq!(
            manifest.tensors[0].sha256,
            "abababababababababababababababababababababababababababababababab"
        );
        let unhashed = br#"{"tensors":[{"name":"a","dtype":"uint8","shape":[2]}]}"#;
        assert!(
            Manifest::parse(unhashed)
                .unwrap_err()
                .to_string()
                .contains("no sha256")
        );
        let row = format!(
            r#"{{"name":"a","dtype":"u8","shape":[],"sha256":"{}"}}"#,
            "0".repeat(64)
        );
        let twice = format!(r#"{{"tensors":[{row},{row}]}}"#);
        assert!(
            Manifest::parse(twice.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        assert!(
            Manifest::parse(br#"{"tensors":[{"name":"a","dtype":"u8","shape":[],"sha256":"00"}]}"#)
                .is_err()
        );
        assert!(Manifest::parse(br#"{"ckpt_manifest": 2, "tensors": []}"#).is_err());
        assert!(Manifest::parse(b"[]").is_err());
        let empty = Manifest {
            ckpt_manifest: Some(1),
            tensors: vec![],
        };
        assert_eq!(empty.to_json(), "{\"ckpt_manifest\": 1, \"tensors\": []}\n");
        assert_eq!(Manifest::parse(empty.to_json().as_bytes()).unwrap(), empty);
    }
}
