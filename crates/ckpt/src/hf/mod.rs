//! Hugging Face sharded checkpoints: an index JSON (`model.safetensors.index.json`,
//! `pytorch_model.bin.index.json`) whose `weight_map` names the shard of every tensor, and
//! the shards, each an ordinary checkpoint file.
//!
//! [`index`] parses the index ([`Index`], or [`RawIndex`] as written, for a verifier);
//! [`shards`] reads the shards as one checkpoint, checked against it. The files are opened,
//! mapped and handed over by the edge ([`Source`](crate::Source)).

mod index;
mod shards;

pub(crate) use index::{Index, RawIndex, looks_like_index};
pub(crate) use shards::checkpoint;

use crate::error::Result;

/// The shard files a Hugging Face index names (checked as an index).
pub(crate) fn index_shards(bytes: &[u8]) -> Result<Vec<String>> {
    Ok(Index::parse(bytes)?.shards())
}
