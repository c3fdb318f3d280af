//! Multi-file checkpoints: Hugging Face shard indexes (every shard also verified as a
//! file) and `torch.distributed.checkpoint` folders.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use super::{
    DCP_READ, HF_INDEX, HF_SHARD, HF_TENSOR_DUPLICATE, HF_TENSOR_MISSING, HF_TENSOR_UNLISTED,
    HF_TOTAL_SIZE, Problem, Report, is_unreadable, verify_bytes_with, verify_path_with,
};
use crate::error::{ErrorKind, Result};
use crate::format::Format;
use crate::hf::RawIndex;
use crate::limits::Limits;
use crate::source::{FolderKind, Source, check_name, folder_kind, read_small};

/// Verifies `path` when it is a multi-file checkpoint; `Ok(None)` for an ordinary file.
pub(super) fn check(path: &Path, limits: &Limits) -> Result<Option<Report>> {
    match folder_kind(path)? {
        None => Ok(None),
        Some(FolderKind::Hf(index)) => check_hf(path, &index, limits).map(Some),
        Some(FolderKind::Dcp(_) | FolderKind::DcpRanks { .. } | FolderKind::HfStorage { .. }) => {
            check_dcp(path, limits).map(Some)
        }
        // A model folder without an index: its one weights file.
        Some(FolderKind::Model { weights, .. }) => verify_path_with(&weights, limits).map(Some),
    }
}

/// What a shard that could be read holds.
struct Shard {
    tensors: Vec<ShardTensor>,
}

/// A tensor of a shard: its name, byte count and storage (to count shared ones once).
type ShardTensor = (String, u64, Option<(usize, usize)>);

fn check_hf(path: &Path, index: &Path, limits: &Limits) -> Result<Report> {
    let bytes = read_small(index, limits.index_len)?;
    let index_name = index
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = match index.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut out = Vec::new();
    let mut report = Report {
        path: path.to_path_buf(),
        format: Format::Safetensors,
        files: 1,
        problems: Vec::new(),
    };
    let raw = match RawIndex::parse(&bytes) {
        Ok(raw) => raw,
        Err(e) => {
            out.push(Problem::from_error(&HF_INDEX, &e).member(index_name));
            report.problems = out;
            return Ok(report);
        }
    };
    let mut wanted: BTreeMap<&str, &str> = BTreeMap::new();
    for (tensor, shard) in &raw.weight_map.0 {
        if wanted.insert(tensor, shard).is_some() {
            out.push(
                Problem::new(
                    &HF_INDEX,
                    "the weight_map lists the tensor twice; JSON readers disagree on which shard wins",
                )
                .member(index_name.clone())
                .tensor(tensor.clone()),
            );
        }
    }
    let mut shard_names: Vec<&str> = raw.weight_map.0.iter().map(|(_, s)| s.as_str()).collect();
    shard_names.sort_unstable();
    shard_names.dedup();
    if shard_names.len() > limits.files {
        return Err(crate::limits::exceeded(
            "files",
            limits.files as u64,
            format_args!("the index names {} files", shard_names.len()),
        )
        .with_path(index));
    }
    let real_dir = std::fs::canonicalize(dir).ok();
    let mut shards: HashMap<&str, Shard> = HashMap::new();
    let mut unread = false;
    for name in shard_names {
        let problem = |message: String| Problem::new(&HF_SHARD, message).member(name.to_owned());
        if let Err(e) = check_name(name, index) {
            out.push(Problem::from_error(&HF_SHARD, &e).member(name.to_owned()));
            unread = true;
            continue;
        }
        let shard_path = dir.join(name);
        let Ok(real) = std::fs::canonicalize(&shard_path) else {
            let count = wanted.values().filter(|s| **s == name).count();
            out.push(
                problem(format!(
                    "the index puts {count} tensors in this shard, which does not exist"
                ))
                .hint("a file of the checkpoint is missing; fetch all of its files"),
            );
            unread = true;
            continue;
        };
        if real.parent() != real_dir.as_deref() {
            out.push(problem(format!(
                "the shard is a link to `{}`, outside the checkpoint's folder",
                real.display()
            )));
            unread = true;
            continue;
        }
        report.files += 1;
        let source = match Source::open_file(&shard_path) {
            Ok(source) => source,
            Err(e) => {
                out.push(Problem::from_error(&HF_SHARD, &e).member(name.to_owned()));
                unread = true;
                continue;
            }
        };
        match verify_bytes_with(source.bytes(), limits) {
            Ok(shard_report) => {
                if report.files == 2 {
                    report.format = shard_report.format;
                }
                out.extend(shard_report.problems.into_iter().map(|p| p.inside(name)));
            }
            Err(e) => {
                out.push(Problem::from_error(&HF_SHARD, &e).member(name.to_owned()));
                unread = true;
                continue;
            }
        }
        match crate::read_with(source.bytes(), limits) {
            Ok(checkpoint) => {
                let tensors = checkpoint
                    .tensors()
                    .into_iter()
                    .map(|(n, v)| (n, v.nbytes() as u64, v.storage_identity()))
                    .collect();
                shards.insert(name, Shard { tensors });
            }
            Err(_) => unread = true,
        }
    }
    // Where each tensor really is.
    let mut holders: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (shard, content) in &shards {
        for (tensor, _, _) in &content.tensors {
            holders.entry(tensor.as_str()).or_default().push(shard);
        }
    }
    for (tensor, shard) in &wanted {
        if !shards.contains_key(shard) {
            continue;
        }
        let found = holders.get(tensor).cloned().unwrap_or_default();
        if !found.contains(shard) {
            let also = match found.first() {
                Some(other) => format!(" (it is in `{other}`)"),
                None => String::new(),
            };
            out.push(
                Problem::new(
                    &HF_TENSOR_MISSING,
                    format!(
                        "the index puts the tensor in this shard, which does not hold it{also}"
                    ),
                )
                .member((*shard).to_owned())
                .tensor((*tensor).to_owned())
                .hint(
                    "a shard is missing tensors or the index is stale; fetch the checkpoint again",
                ),
            );
        }
    }
    for (tensor, found) in &holders {
        let mut found = found.clone();
        found.sort_unstable();
        if found.len() > 1 {
            out.push(
                Problem::new(
                    &HF_TENSOR_DUPLICATE,
                    format!(
                        "the tensor is in {} shards: {}",
                        found.len(),
                        found.join(", ")
                    ),
                )
                .member(found.first().map(|s| (*s).to_owned()).unwrap_or_default())
                .tensor((*tensor).to_owned()),
            );
        }
        if !wanted.contains_key(tensor) {
            out.push(
                Problem::new(
                    &HF_TENSOR_UNLISTED,
                    "the shard holds a tensor the index's weight_map does not list",
                )
                .member(found.first().map(|s| (*s).to_owned()).unwrap_or_default())
                .tensor((*tensor).to_owned()),
            );
        }
    }
    let mismatched = out.iter().any(|p| {
        [
            &HF_INDEX,
            &HF_TENSOR_MISSING,
            &HF_TENSOR_DUPLICATE,
            &HF_TENSOR_UNLISTED,
        ]
        .iter()
        .any(|r| p.rule().id == r.id)
    });
    let total = raw
        .metadata
        .as_ref()
        .and_then(|m| m.get("total_size"))
        .cloned();
    if let Some(total) = total {
        match total.as_u64() {
            None => out.push(
                Problem::new(
                    &HF_TOTAL_SIZE,
                    format!("`metadata.total_size` is {total}, not a byte count"),
                )
                .member(index_name.clone()),
            ),
            // The total means something only once the map and the shards agree.
            Some(declared) if !unread && !mismatched => {
                let actual = tensor_bytes(&shards);
                if declared != actual {
                    out.push(
                        Problem::new(
                            &HF_TOTAL_SIZE,
                            format!(
                                "`metadata.total_size` is {declared} but the shards' tensors \
                                 take {actual} bytes"
                            ),
                        )
                        .member(index_name.clone()),
                    );
                }
            }
            Some(_) => {}
        }
    }
    report.problems = out;
    Ok(report)
}

/// The bytes of the shards' tensors, counting the tensors that share a storage once.
fn tensor_bytes(shards: &HashMap<&str, Shard>) -> u64 {
    let mut storages = HashSet::new();
    let mut total = 0u64;
    for shard in shards.values() {
        for (_, bytes, storage) in &shard.tensors {
            if storage.is_none_or(|s| storages.insert(s)) {
                total = total.saturating_add(*bytes);
            }
        }
    }
    total
}

/// A DCP folder is checked item by item, as its reader reads it (the metadata by
/// allowlist, every chunk's file and slice, each chunk's dtype and size, and that the
/// chunks tile their tensor exactly), going on after each error; every chunk's
/// `torch.save` archive is also verified as a file of its own.
fn check_dcp(path: &Path, limits: &Limits) -> Result<Report> {
    let mut report = Report {
        path: path.to_path_buf(),
        format: Format::DistributedCheckpoint,
        files: 1,
        problems: Vec::new(),
    };
    let source = match Source::open_with(path, limits) {
        Ok(source) => source,
        // The folder itself cannot be read: not a problem of the checkpoint.
        Err(e) if is_unreadable(&e) && e.location().member.is_none() => return Err(e),
        Err(e) => {
            report.problems.push(Problem::from_error(&DCP_READ, &e));
            return Ok(report);
        }
    };
    report.files = source.files().len();
    let Some(audit) = source.dcp_audit() else {
        // A folder of HuggingFaceStorageWriter files: each file, then the tensors their
        // parts make.
        for file in source.files() {
            let label = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match verify_path_with(file, limits) {
                Ok(inner) => report
                    .problems
                    .extend(inner.problems.into_iter().map(|p| p.inside(&label))),
                Err(e) => report.problems.push(Problem::from_error(&DCP_READ, &e)),
            }
        }
        if let Err(e) = source.checkpoint() {
            report.problems.push(Problem::from_error(&DCP_READ, &e));
        }
        return Ok(report);
    };
    for (label, _, _, bytes) in &audit.archives {
        match verify_bytes_with(bytes, limits) {
            Ok(inner) => report
                .problems
                .extend(inner.problems.into_iter().map(|p| p.inside(label))),
            Err(e) => report
                .problems
                .push(Problem::from_error(&DCP_READ, &e).inside(label)),
        }
    }
    // An item whose archive has problems of its own fails to read for the same reason.
    let archive_problems = !report.problems.is_empty();
    for error in &audit.errors {
        let problem = Problem::from_error(&DCP_READ, error);
        let repeated = archive_problems
            && error
                .location()
                .member
                .as_deref()
                .is_some_and(|m| m.contains(" at byte "));
        if repeated {
            continue;
        }
        report.problems.push(match error.kind() {
            ErrorKind::Refused | ErrorKind::Unsupported => problem.warning(),
            _ => problem,
        });
    }
    Ok(report)
}
