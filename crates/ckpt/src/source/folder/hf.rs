//! Hugging Face sharded checkpoints: `model.safetensors.index.json` or
//! `pytorch_model.bin.index.json`, whose `weight_map` names the shard of every tensor.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};

use super::Member;
use crate::error::{Error, Result};
use crate::limits::{self, Limits};
use crate::model::{Checkpoint, Details, Dict, Value};

/// A parsed index: the tensors and their shards, in the order of the file.
#[derive(Debug)]
pub(super) struct Index {
    weight_map: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct Raw {
    weight_map: WeightMap,
}

/// `weight_map` in file order, refusing a name given twice (JSON parsers disagree on which
/// one wins).
struct WeightMap(Vec<(String, String)>);

impl<'de> Deserialize<'de> for WeightMap {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = WeightMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object mapping tensor names to shard file names")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WeightMap, A::Error> {
                let mut pairs = Vec::new();
                let mut seen = std::collections::HashSet::new();
                while let Some((tensor, shard)) = map.next_entry::<String, String>()? {
                    if !seen.insert(tensor.clone()) {
                        return Err(serde::de::Error::custom(format!(
                            "tensor `{tensor}` is listed twice"
                        )));
                    }
                    pairs.push((tensor, shard));
                }
                Ok(WeightMap(pairs))
            }
        }
        deserializer.deserialize_map(Pairs)
    }
}

/// Whether the JSON file at `path` looks like a shard index (it mentions `weight_map`).
pub(super) fn looks_like_index(path: &Path, max_len: u64) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() <= max_len)
        && std::fs::read(path).is_ok_and(|bytes| bytes.windows(12).any(|w| w == b"\"weight_map\""))
}

impl Index {
    pub(super) fn parse(bytes: &[u8]) -> Result<Index> {
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| {
            Error::malformed(format!("not a valid shard index: {e}"))
                .with_hint("an index is {\"metadata\": {...}, \"weight_map\": {tensor: shard}}")
        })?;
        Ok(Index {
            weight_map: raw.weight_map.0,
        })
    }

    /// The shard files, each once, sorted by name (`model-00001-of-00003...` first).
    pub(super) fn shards(&self) -> Vec<String> {
        let mut shards: Vec<String> = self.weight_map.iter().map(|(_, s)| s.clone()).collect();
        shards.sort();
        shards.dedup();
        shards
    }
}

/// The union of the shards: every tensor of every shard, shard by shard, each in the
/// order of its file. Checks that each tensor of the index is in the shard it names and
/// that no tensor is in two shards.
pub(super) fn checkpoint<'a>(
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
        let shard = member.source.checkpoint()?;
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
            if let Some(other) = holder.insert(name.clone(), member.name) {
                return Err(Error::malformed(format!(
                    "tensor `{name}` is in two shards, `{other}` and `{}`",
                    member.name
                ))
                .with_path(index_path)
                .with_member(member.name.to_string())
                .with_tensor(name)
                .with_hint("the shards do not belong together; fetch the checkpoint again"));
            }
            let view = view.clone().in_file(member.name.clone(), 0);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_lists_its_shards_once_and_refuses_a_tensor_twice() {
        let index = Index::parse(
            br#"{"metadata": {"total_size": 8, "extra": [1]},
                 "weight_map": {"b": "m-2.safetensors", "a": "m-1.safetensors", "c": "m-2.safetensors"}}"#,
        )
        .unwrap();
        assert_eq!(index.shards(), ["m-1.safetensors", "m-2.safetensors"]);
        let twice = Index::parse(br#"{"weight_map": {"a": "x", "a": "y"}}"#).unwrap_err();
        assert!(twice.to_string().contains("listed twice"), "{twice}");
        let no_map = Index::parse(br#"{"metadata": {}}"#).unwrap_err();
        assert!(no_map.to_string().contains("weight_map"), "{no_map}");
    }

    #[test]
    fn shard_names_are_plain_file_names() {
        let main = Path::new("model.safetensors.index.json");
        for bad in ["", ".", "..", "../x", "/etc/passwd", "a/b", "a\\b", "x\0"] {
            assert!(super::super::check_name(bad, main).is_err(), "{bad:?}");
        }
        super::super::check_name("model-00001-of-00002.safetensors", main).unwrap();
    }
}
