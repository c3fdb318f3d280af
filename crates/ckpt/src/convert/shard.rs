//! Splitting a checkpoint into shards the way Hugging Face does, and naming them.
//!
//! The split is `huggingface_hub`'s `split_state_dict_into_shards_factory`: tensors are
//! taken in order and added to the current shard until the next one would take it over the
//! limit; a tensor larger than the limit gets a shard of its own; tensors that share a
//! storage go to the shard of the first of them. Files are named
//! `model-00001-of-00003.safetensors` / `pytorch_model-00001-of-00003.bin`, with an index
//! (`model.safetensors.index.json`) as `transformers` writes it; a checkpoint that fits in
//! one shard is one file without an index.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use serde::Serialize;

use crate::error::{Error, Result};

/// `huggingface_hub`'s default `max_shard_size`.
pub const DEFAULT_MAX_SHARD_SIZE: u64 = 5_000_000_000;

/// Splits items of `(size, storage)` into shards of at most `max` bytes (but an item larger
/// than `max` gets a shard of its own), in order; items with the same storage (`Some`)
/// join the shard of the first of them, after the items it already has. Returns the
/// indexes of the items in each shard.
pub(super) fn split<K: Hash + Eq>(items: &[(u64, Option<K>)], max: u64) -> Vec<Vec<usize>> {
    let mut shards: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut current_size = 0u64;
    // Storage -> (first item, later items).
    let mut shared: HashMap<&K, (usize, Vec<usize>)> = HashMap::new();
    for (index, (size, storage)) in items.iter().enumerate() {
        if let Some(storage) = storage {
            if let Some((_, later)) = shared.get_mut(storage) {
                later.push(index);
                continue;
            }
            shared.insert(storage, (index, Vec::new()));
        }
        if *size > max {
            shards.push(vec![index]);
            continue;
        }
        if current_size.saturating_add(*size) > max && !current.is_empty() {
            shards.push(std::mem::take(&mut current));
            current_size = 0;
        }
        current.push(index);
        current_size = current_size.saturating_add(*size);
    }
    if !current.is_empty() {
        shards.push(current);
    }
    // Later tensors of a storage go after the others of their first tensor's shard, in
    // the order huggingface_hub's dict insertion gives.
    let mut groups: Vec<(usize, Vec<usize>)> = shared
        .into_values()
        .filter(|(_, later)| !later.is_empty())
        .collect();
    groups.sort_unstable();
    for (first, later) in groups {
        if let Some(shard) = shards.iter_mut().find(|shard| shard.contains(&first)) {
            shard.extend(later);
        }
    }
    shards
}

/// The file layout of a sharded checkpoint in one format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Naming {
    /// The name without shards: `model.safetensors`, `pytorch_model.bin`.
    pub stem: &'static str,
    /// The extension with its dot: `.safetensors`, `.bin`.
    pub extension: &'static str,
}

impl Naming {
    /// `model.safetensors`.
    pub const SAFETENSORS: Naming = Naming {
        stem: "model",
        extension: ".safetensors",
    };
    /// `pytorch_model.bin`.
    pub const TORCH: Naming = Naming {
        stem: "pytorch_model",
        extension: ".bin",
    };

    /// The name of shard `index` (from 0) of `count`: the unsharded name when there is one.
    pub fn shard(self, index: usize, count: usize) -> String {
        if count == 1 {
            format!("{}{}", self.stem, self.extension)
        } else {
            format!(
                "{}-{:05}-of-{:05}{}",
                self.stem,
                index + 1,
                count,
                self.extension
            )
        }
    }

    /// The index file's name: `model.safetensors.index.json`.
    pub fn index(self) -> String {
        format!("{}{}.index.json", self.stem, self.extension)
    }

    /// Whether `name` is a file this layout writes (any shard count, or the index): the
    /// files an earlier conversion left in a folder being replaced.
    pub fn owns(self, name: &str) -> bool {
        let Some(rest) = name.strip_prefix(self.stem) else {
            return false;
        };
        let rest = rest.strip_suffix(".index.json").unwrap_or(rest);
        let Some(middle) = rest.strip_suffix(self.extension) else {
            return false;
        };
        middle.is_empty() || is_shard_suffix(middle)
    }
}

/// `-00001-of-00003`.
fn is_shard_suffix(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 15
        && bytes.first() == Some(&b'-')
        && text.get(6..10) == Some("-of-")
        && text
            .get(1..6)
            .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()))
        && text
            .get(10..15)
            .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()))
}

/// The index of a sharded checkpoint, as `transformers`' `save_pretrained` writes it:
/// sorted keys, two-space indentation, a final newline.
pub(super) fn index_json(
    total_size: u64,
    total_parameters: u64,
    metadata: &BTreeMap<String, String>,
    weight_map: &[(&str, &str)],
) -> Result<Vec<u8>> {
    #[derive(Serialize)]
    struct Index<'a> {
        metadata: BTreeMap<&'a str, serde_json::Value>,
        weight_map: BTreeMap<&'a str, &'a str>,
    }
    let mut meta: BTreeMap<&str, serde_json::Value> = metadata
        .iter()
        .map(|(k, v)| (k.as_str(), serde_json::Value::from(v.as_str())))
        .collect();
    meta.insert("total_size", total_size.into());
    meta.insert("total_parameters", total_parameters.into());
    let index = Index {
        metadata: meta,
        weight_map: weight_map.iter().copied().collect(),
    };
    let mut out = serde_json::to_vec_pretty(&index)
        .map_err(|e| Error::invalid(format!("cannot write the index: {e}")))?;
    out.push(b'\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::size::parse_size;

    #[test]
    fn sizes_parse_like_hugging_face() {
        assert_eq!(parse_size("5GB").unwrap(), 5_000_000_000);
        assert_eq!(parse_size("500MB").unwrap(), 500_000_000);
        assert_eq!(parse_size("4KB").unwrap(), 4_000);
        assert_eq!(parse_size(" 1.5gb ").unwrap(), 1_500_000_000);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("1000B").unwrap(), 1000);
        for bad in [
            "",
            "GB",
            "5XB",
            "-1GB",
            "0",
            "1e3",
            "99999999999999999999TB",
            "1.2.3MB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    fn sizes(list: &[u64]) -> Vec<(u64, Option<u32>)> {
        list.iter().map(|&s| (s, None)).collect()
    }

    #[test]
    fn the_split_is_huggingface_hubs() {
        // The example of split_state_dict_into_shards_factory's docstring, in GB.
        let split = split(&sizes(&[6, 6, 2, 6, 2, 2]), 10);
        assert_eq!(split, [vec![0], vec![1, 2], vec![3, 4, 5]]);
    }

    #[test]
    fn a_tensor_over_the_limit_gets_its_own_shard() {
        assert_eq!(split(&sizes(&[3, 20, 3, 3]), 10), [vec![1], vec![0, 2, 3]]);
        assert_eq!(split(&sizes(&[]), 10), Vec::<Vec<usize>>::new());
    }

    #[test]
    fn tied_tensors_join_the_first_ones_shard() {
        let items = [
            (6, Some(1)),
            (6, None),
            (6, Some(1)),
            (6, Some(2)),
            (1, Some(2)),
        ];
        assert_eq!(split(&items, 10), [vec![0, 2], vec![1], vec![3, 4]]);
    }

    #[test]
    fn names_are_hugging_faces() {
        let naming = Naming::SAFETENSORS;
        assert_eq!(naming.shard(0, 1), "model.safetensors");
        assert_eq!(naming.shard(1, 3), "model-00002-of-00003.safetensors");
        assert_eq!(naming.index(), "model.safetensors.index.json");
        assert_eq!(
            Naming::TORCH.shard(0, 2),
            "pytorch_model-00001-of-00002.bin"
        );
        assert_eq!(Naming::TORCH.index(), "pytorch_model.bin.index.json");
        for owned in [
            "model.safetensors",
            "model-00001-of-00002.safetensors",
            "model.safetensors.index.json",
        ] {
            assert!(naming.owns(owned), "{owned}");
        }
        for other in [
            "config.json",
            "model.bin",
            "model-1-of-2.safetensors",
            "modelx.safetensors",
            "pytorch_model.bin",
        ] {
            assert!(!naming.owns(other), "{other}");
        }
    }

    #[test]
    fn the_index_is_transformers_style() {
        let meta = BTreeMap::from([("format".to_owned(), "pt".to_owned())]);
        let json = index_json(
            24,
            6,
            &meta,
            &[
                ("b", "model-00002-of-00002.safetensors"),
                ("a", "model-00001-of-00002.safetensors"),
            ],
        )
        .unwrap();
        let text = String::from_utf8(json).unwrap();
        assert_eq!(
            text,
            "{\n  \"metadata\": {\n    \"format\": \"pt\",\n    \"total_parameters\": 6,\n    \
             \"total_size\": 24\n  },\n  \"weight_map\": {\n    \"a\": \
             \"model-00001-of-00002.safetensors\",\n    \"b\": \
             \"model-00002-of-00002.safetensors\"\n  }\n}\n"
        );
    }
}
