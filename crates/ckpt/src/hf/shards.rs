//! The shards of a sharded checkpoint read as one checkpoint: every tensor of every shard,
//! checked against the index.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::Index;
use crate::error::{Error, Result};
use crate::limits::{self, Limits};
use crate::model::{Checkpoint, Details, Dict, Value};
use crate::source::Member;

/// The union of the shards: every tensor of every shard, shard by shard, each in the
/// order of its file. Checks that each tensor of the index is in the shard it names and
/// that no tensor is in two shards.
pub(crate) fn checkpoint<'a>(
    index: &Index,
    index_path: &Path,
    files: &[Member<'a>],
    limits: &Limits,
) -> Result<Checkpoint<'a>> {
    let mut entries: Vec<(Value<'a>, Value<'a>)> = Vec::new();
    // Tensor name -> shard that holds it.
    let mut holder: HashMap<String, &str> = HashMap::new();
    let mut metadata = BTreeMap::new();
    let mut details = Details::default();
    let mut format = None;
    let mut weights_only = Some(true);
    for member in files {
        let shard = member.checkpoint()?;
        format.get_or_insert(shard.format());
        for (key, value) in shard.metadata() {
            metadata.entry(key.clone()).or_insert_with(|| value.clone());
        }
        let shard_details = shard.details();
        details
            .globals
            .extend(shard_details.globals.iter().cloned());
        details.needs.extend(shard_details.needs.iter().cloned());
        weights_only = match (weights_only, shard_details.weights_only) {
            (Some(a), Some(b)) => Some(a && b),
            _ => None,
        };
        details.pickle_protocol = details.pickle_protocol.or(shard_details.pickle_protocol);
        for (name, view) in shard.tensors() {
            if let Some(other) = holder.insert(name.clone(), member.name()) {
                return Err(Error::malformed(format!(
                    "tensor `{name}` is in two shards, `{other}` and `{}`",
                    member.name()
                ))
                .with_path(index_path)
                .with_member(member.name().to_string())
                .with_tensor(name)
                .with_hint("the shards do not belong together; fetch the checkpoint again"));
            }
            let view = view.clone().in_file(member.name().clone(), 0);
            entries.push((Value::Str(name), Value::Tensor(view)));
        }
        if entries.len() > limits.tensors {
            return Err(limits::exceeded(
                "tensors",
                limits.tensors as u64,
                format_args!("the shards hold more than {} tensors", limits.tensors),
            )
            .with_path(index_path));
        }
    }
    for (tensor, shard) in &index.weight_map {
        if holder.get(tensor.as_str()) != Some(&shard.as_str()) {
            let also = match holder.get(tensor.as_str()) {
                Some(other) => format!(" (it is in `{other}`)"),
                None => String::new(),
            };
            return Err(Error::malformed(format!(
                "the index puts tensor `{tensor}` in shard `{shard}`, which does not hold \
                 it{also}"
            ))
            .with_path(index_path)
            .with_member(shard.clone())
            .with_tensor(tensor.clone())
            .with_hint(
                "a shard is missing tensors or the index is stale; fetch the checkpoint again",
            ));
        }
    }
    details.globals.sort();
    details.globals.dedup();
    details.needs.sort();
    details.needs.dedup();
    details.weights_only = weights_only;
    let file_name = index_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    details.records.insert("index".to_owned(), file_name);
    details
        .records
        .insert("shards".to_owned(), files.len().to_string());
    let format = format.unwrap_or(crate::Format::Safetensors);
    Ok(
        Checkpoint::new(format, metadata, Value::Dict(Dict::ordered(entries)))
            .with_details(details),
    )
}
