//! What a `.metadata` file says, as plain data: every entry of the state dict, where it goes
//! in the nested state dict, and where its bytes are. [`parse`](super::parse) makes it from
//! the pickle; [`ranks`](super::ranks) merges the metadata of every rank of a save without
//! collectives.

use crate::model::Dtype;

/// What `.metadata` says, as plain data.
#[derive(Debug)]
pub(crate) struct Metadata {
    pub(super) entries: Vec<Entry>,
    /// The `.distcp` files, in order of first mention.
    pub(super) files: Vec<String>,
    pub(super) records: Vec<(String, String)>,
    pub(super) globals: Vec<String>,
    pub(super) protocol: Option<u8>,
}

impl Metadata {
    /// The `.distcp` files the metadata names.
    pub(crate) fn files(&self) -> Vec<String> {
        self.files.clone()
    }
}

/// One entry of the state dict.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) fqn: String,
    /// Where the entry goes in the nested state dict (`planner_data`).
    pub(super) path: Vec<Key>,
    pub(super) item: Item,
}

/// A part of an entry's path: a dict key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Key {
    Str(String),
    Int(usize),
}

/// What an entry holds: a tensor stored as chunks, or a value saved as bytes.
#[derive(Debug)]
pub(super) enum Item {
    Tensor {
        dtype: Dtype,
        size: Vec<usize>,
        chunks: Vec<Chunk>,
    },
    Bytes(Place),
}

/// One piece of a tensor: where it starts in the whole tensor, its sizes, and its bytes.
#[derive(Debug)]
pub(super) struct Chunk {
    pub(super) offsets: Vec<usize>,
    pub(super) sizes: Vec<usize>,
    pub(super) place: Place,
}

/// Where an item's bytes are: a `.distcp` file (an index into `files`), offset and length.
#[derive(Debug, Clone)]
pub(super) struct Place {
    pub(super) file: usize,
    pub(super) offset: u64,
    pub(super) length: u64,
}
