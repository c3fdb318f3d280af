//! The index of a sharded checkpoint (`model.safetensors.index.json`,
//! `pytorch_model.bin.index.json`): a `weight_map` that names the shard of every tensor, and
//! any `metadata`.

use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};

use crate::error::{Error, Result};

/// A parsed index: the tensors and their shards, in the order of the file, each tensor
/// once.
#[derive(Debug)]
pub(crate) struct Index {
    pub(super) weight_map: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct Raw {
    weight_map: WeightMap<true>,
}

/// An index as written: `weight_map` in file order, a tensor listed twice kept (for a
/// verifier to report it); `metadata` as any JSON.
#[derive(Deserialize)]
pub(crate) struct RawIndex {
    #[serde(default)]
    pub(crate) metadata: Option<serde_json::Value>,
    pub(crate) weight_map: WeightMap<false>,
}

/// `weight_map`: (tensor, shard) pairs in file order. With `UNIQUE`, a tensor listed twice
/// is an error (JSON parsers disagree on which one wins).
pub(crate) struct WeightMap<const UNIQUE: bool>(pub(crate) Vec<(String, String)>);

impl<'de, const UNIQUE: bool> Deserialize<'de> for WeightMap<UNIQUE> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs<const UNIQUE: bool>;
        impl<'de, const UNIQUE: bool> Visitor<'de> for Pairs<UNIQUE> {
            type Value = WeightMap<UNIQUE>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object mapping tensor names to shard file names")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::new();
                let mut seen = HashSet::new();
                while let Some((tensor, shard)) = map.next_entry::<String, String>()? {
                    if UNIQUE && !seen.insert(tensor.clone()) {
                        return Err(serde::de::Error::custom(format!(
                            "tensor `{tensor}` is listed twice"
                        )));
                    }
                    pairs.push((tensor, shard));
                }
                Ok(WeightMap(pairs))
            }
        }
        deserializer.deserialize_map(Pairs::<UNIQUE>)
    }
}

/// Whether the bytes of a JSON file look like a shard index (they mention `weight_map`).
pub(crate) fn looks_like_index(bytes: &[u8]) -> bool {
    bytes.windows(12).any(|w| w == b"\"weight_map\"")
}

/// The error of an index that does not parse.
fn invalid(error: &serde_json::Error) -> Error {
    Error::malformed(format!("not a valid shard index: {error}"))
        .with_hint("an index is {\"metadata\": {...}, \"weight_map\": {tensor: shard}}")
}

impl Index {
    /// Parses an index, refusing a tensor listed twice.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Index> {
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| invalid(&e))?;
        Ok(Index {
            weight_map: raw.weight_map.0,
        })
    }

    /// The shard files, each once, sorted by name (`model-00001-of-00003...` first).
    pub(crate) fn shards(&self) -> Vec<String> {
        let mut shards: Vec<String> = self.weight_map.iter().map(|(_, s)| s.clone()).collect();
        shards.sort();
        shards.dedup();
        shards
    }
}

impl RawIndex {
    /// Parses an index as written, keeping a tensor listed twice.
    pub(crate) fn parse(bytes: &[u8]) -> Result<RawIndex> {
        serde_json::from_slice(bytes).map_err(|e| invalid(&e))
    }
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
    fn an_index_as_written_keeps_a_tensor_twice() {
        let raw = RawIndex::parse(br#"{"weight_map": {"a": "x", "a": "y"}}"#).unwrap();
        assert_eq!(raw.weight_map.0.len(), 2);
        assert!(raw.metadata.is_none());
    }
}
