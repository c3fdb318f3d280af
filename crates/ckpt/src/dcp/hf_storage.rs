//! Folders written by `torch.distributed.checkpoint`'s `HuggingFaceStorageWriter` with
//! `save_distributed=True` and no consolidation: every rank wrote
//! `shard-<rank + 1>-model-<k>-of-<n>.safetensors` holding its parts of the tensors, and
//! where each part starts in the whole tensor in the header's `DCP_SHARDING_INFO` metadata
//! (`{"name": {"saved_offsets": [...]}}`). There is no index and no whole shape: as torch's
//! `HuggingFaceStorageReader` does, a tensor's shape is the extent of its parts, and the
//! parts must tile it exactly (no gap, no overlap).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::error::{Error, Result};
use crate::format::Format;
use crate::limits::{self, Limits};
use crate::model::{Checkpoint, Details, Dict, Dtype, TensorView, Tile, Value};
use crate::source::Member;

/// The header metadata key that holds where each part starts.
const SHARDING_INFO: &str = "DCP_SHARDING_INFO";

/// Whether `first`, the first safetensors file of a folder, is a part of such a save: its
/// header says where its parts start.
pub(crate) fn is_part(first: &Checkpoint<'_>) -> bool {
    first.metadata().contains_key(SHARDING_INFO)
}

/// The rank number of a `shard-<rank + 1>-model-...` file name.
fn rank_of(name: &str) -> Option<usize> {
    let (digits, _) = name.strip_prefix("shard-")?.split_once('-')?;
    digits.parse().ok()
}

/// Refuses a folder where a rank's file is missing between others: nothing records how many
/// ranks saved, so a missing part of a tensor is only found when it leaves a gap (the last
/// rank's file missing can make tensors silently smaller, in torch's reader too).
pub(crate) fn check_ranks(dir: &Path, names: &[String]) -> Result<()> {
    let mut ranks: Vec<usize> = names.iter().filter_map(|n| rank_of(n)).collect();
    ranks.sort_unstable();
    ranks.dedup();
    for (expected, &rank) in (1..).zip(&ranks) {
        if rank != expected {
            return Err(Error::malformed(format!(
                "the file of rank {} (`shard-{expected:05}-model-...`) is missing: every rank \
                 saves its parts of the tensors in a file of its own",
                expected - 1
            ))
            .with_path(dir)
            .with_hint("copy every file of the checkpoint"));
        }
    }
    Ok(())
}

/// Where each tensor of one file starts in its whole tensor.
fn offsets_of(
    member: &Member<'_>,
    metadata: &BTreeMap<String, String>,
) -> Result<HashMap<String, Vec<usize>>> {
    let malformed = |why: String| {
        Error::malformed(format!("its `{SHARDING_INFO}` metadata {why}"))
            .with_member(member.name().to_string())
    };
    let text = metadata
        .get(SHARDING_INFO)
        .ok_or_else(|| malformed("is missing: the file is not part of the same save".to_owned()))?;
    let info: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| malformed(format!("is not a JSON object: {e}")))?;
    let mut offsets = HashMap::with_capacity(info.len());
    for (name, entry) in info {
        let list = entry
            .get("saved_offsets")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| malformed(format!("gives `{name}` no `saved_offsets` list")))?;
        let list = list
            .iter()
            .map(|o| o.as_u64().and_then(|o| usize::try_from(o).ok()))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| malformed(format!("gives `{name}` an offset that is not a count")))?;
        offsets.insert(name, list);
    }
    Ok(offsets)
}

/// One tensor being gathered: its dtype and parts.
struct Gathered<'a> {
    name: String,
    dtype: Dtype,
    tiles: Vec<Tile<'a>>,
}

/// The tensors of every file, each assembled from its parts.
pub(crate) fn checkpoint<'a>(
    dir: &Path,
    files: &[Member<'a>],
    limits: &Limits,
) -> Result<Checkpoint<'a>> {
    let mut gathered: Vec<Gathered<'a>> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut metadata = BTreeMap::new();
    for member in files {
        let shard = member.checkpoint()?;
        let offsets = offsets_of(member, shard.metadata()).map_err(|e| e.with_path(dir))?;
        for (key, value) in shard.metadata() {
            if key != SHARDING_INFO {
                metadata.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        for (name, view) in shard.tensors() {
            let at = |why: String| {
                Error::malformed(why)
                    .with_path(dir)
                    .with_member(member.name().to_string())
                    .with_tensor(name.clone())
            };
            let start = offsets
                .get(&name)
                .ok_or_else(|| at(format!("`{SHARDING_INFO}` does not say where it starts")))?;
            if start.len() != view.shape().len() {
                return Err(at(format!(
                    "`{SHARDING_INFO}` gives {} offsets for a tensor of {} dimensions",
                    start.len(),
                    view.shape().len()
                )));
            }
            let view = view.clone().in_file(member.name().clone(), 0);
            let index = *by_name.entry(name.clone()).or_insert(gathered.len());
            if index == gathered.len() {
                gathered.push(Gathered {
                    name: name.clone(),
                    dtype: view.dtype(),
                    tiles: Vec::new(),
                });
                if gathered.len() > limits.tensors {
                    return Err(limits::exceeded(
                        "tensors",
                        limits.tensors as u64,
                        format_args!("the files hold more than {} tensors", limits.tensors),
                    )
                    .with_path(dir));
                }
            }
            let Some(entry) = gathered.get_mut(index) else {
                continue;
            };
            if entry.dtype != view.dtype() {
                return Err(at(format!(
                    "its parts disagree on the dtype ({} here, {} before)",
                    view.dtype(),
                    entry.dtype
                )));
            }
            entry.tiles.push(Tile::new(start.clone(), view));
        }
    }
    let mut entries = Vec::with_capacity(gathered.len());
    for Gathered { name, dtype, tiles } in gathered {
        let mut shape: Vec<usize> = Vec::new();
        for tile in &tiles {
            for (dim, (&offset, &size)) in
                tile.offsets().iter().zip(tile.view().shape()).enumerate()
            {
                let end = offset.checked_add(size).ok_or_else(|| {
                    Error::malformed("a part's offset and size overflow")
                        .with_path(dir)
                        .with_tensor(name.clone())
                })?;
                match shape.get_mut(dim) {
                    Some(extent) => *extent = (*extent).max(end),
                    None => shape.push(end),
                }
            }
        }
        let view = TensorView::tiled_with(dtype, shape, tiles, limits)
            .map_err(|e| e.with_path(dir).with_tensor(name.clone()))?;
        entries.push((Value::Str(name), Value::Tensor(view)));
    }
    let mut details = Details::default();
    details.records.insert(
        "writer".to_owned(),
        "HuggingFaceStorageWriter (one file per rank)".to_owned(),
    );
    details
        .records
        .insert("files".to_owned(), files.len().to_string());
    Ok(Checkpoint::new(
        Format::DistributedCheckpoint,
        metadata,
        Value::Dict(Dict::ordered(entries)),
    )
    .with_details(details))
}
