//! `torch.distributed.checkpoint` folders: a `.metadata` pickle that describes every entry
//! of the state dict, and `.distcp` files that hold the entries' bytes.
//!
//! The metadata is a pickle of dataclasses (`Metadata`, `TensorStorageMetadata`,
//! `ChunkStorageMetadata`, `MetadataIndex`, `_StorageInfo`...). It is read by the safe VM of
//! [`ckpt_pickle`], which builds a graph of symbolic objects and runs nothing; this module
//! reads that graph as data, by the field names of those classes. Every global of the
//! pickle must be one the table of globals marks as DCP's (its dataclasses, paths,
//! `torch.Size`, layouts and dtypes: [`globals::in_dcp_metadata`]): anything else is refused
//! before any field is read.
//!
//! Each tensor is stored as chunks (one per rank that held a distinct piece of it), each a
//! `torch.save` archive of that piece at an offset and length in a `.distcp` file; a plain
//! value is a `torch.save` archive too. The chunks of a tensor become the tiles of one tiled
//! [`TensorView`] (checked to cover it exactly), whose bytes are read from the maps chunk by
//! chunk when it is written: a conversion never holds a whole tensor in memory.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use ckpt_pickle::{Object, ObjectId, Pickle};

use super::Member;
use crate::error::{Error, ErrorKind, Result};
use crate::format::Format;
use crate::limits::{self, Limits};
use crate::model::{Checkpoint, Details, Dict, Dtype, TensorView, Tile, Value};
use crate::torch::globals;

const METADATA_MODULE: &str = "torch.distributed.checkpoint.metadata";
const FILESYSTEM_MODULE: &str = "torch.distributed.checkpoint.filesystem";

/// What `.metadata` says, as plain data.
#[derive(Debug)]
pub(super) struct Metadata {
    entries: Vec<Entry>,
    /// The `.distcp` files, in order of first mention.
    files: Vec<String>,
    records: Vec<(String, String)>,
    globals: Vec<String>,
    protocol: Option<u8>,
}

#[derive(Debug)]
struct Entry {
    fqn: String,
    /// Where the entry goes in the nested state dict (`planner_data`).
    path: Vec<Key>,
    item: Item,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Str(String),
    Int(usize),
}

#[derive(Debug)]
enum Item {
    Tensor {
        dtype: Dtype,
        size: Vec<usize>,
        chunks: Vec<Chunk>,
    },
    Bytes(Place),
}

#[derive(Debug)]
struct Chunk {
    offsets: Vec<usize>,
    sizes: Vec<usize>,
    place: Place,
}

/// Where an item's bytes are: a `.distcp` file (an index into `files`), offset and length.
#[derive(Debug, Clone)]
struct Place {
    file: usize,
    offset: u64,
    length: u64,
}

/// The `storage_data` key of an item: its fqn and, for tensor chunks, the chunk's offsets.
type IndexKey = (String, Option<Vec<usize>>);

impl Metadata {
    /// Reads a `.metadata` pickle.
    pub(super) fn parse(bytes: &[u8], limits: &Limits) -> Result<Metadata> {
        let pickle = ckpt_pickle::parse(bytes, 0, &limits.pickle)
            .map_err(|e| crate::torch::pickle_error(&e, ".metadata"))?;
        let globals = check_globals(&pickle)?;
        let reader = Reader {
            pickle: &pickle,
            max_path: limits.depth,
        };
        let root = pickle
            .root()
            .ok_or_else(|| Error::malformed("the metadata pickle returns nothing"))?;
        let fields = reader.record(root, "Metadata")?;
        let sd_meta = reader.required(&fields, "state_dict_metadata", "Metadata")?;
        let storage_data = reader.required(&fields, "storage_data", "Metadata")?;
        let mut files: Vec<String> = Vec::new();
        let places = reader.storage_data(storage_data, &mut files)?;
        let paths = match fields.get("planner_data") {
            Some(&id) => reader.planner_data(id)?,
            None => HashMap::new(),
        };
        let mut records = Vec::new();
        if let Some(version) = fields.get("version").and_then(|&id| pickle.as_str(id)) {
            records.push(("dcp_version".to_owned(), version.to_owned()));
        }
        if let Some(&meta) = fields.get("storage_meta")
            && !matches!(pickle.get(meta), Object::None)
        {
            let meta = reader.record(meta, "StorageMeta")?;
            if let Some(id) = meta.get("save_id").and_then(|&id| pickle.as_str(id)) {
                records.push(("save_id".to_owned(), id.to_owned()));
            }
        }
        let mut entries = Vec::new();
        for &(key, value) in reader.dict(sd_meta, "state_dict_metadata")? {
            let fqn = pickle
                .as_str(key)
                .ok_or_else(|| Error::malformed("a state_dict_metadata key is not a string"))?
                .to_owned();
            let item = reader
                .item(&fqn, value, &places)
                .map_err(|e| e.with_tensor(fqn.clone()))?;
            let path = paths
                .get(&fqn)
                .cloned()
                .unwrap_or_else(|| vec![Key::Str(fqn.clone())]);
            entries.push(Entry { fqn, path, item });
        }
        Ok(Metadata {
            entries,
            files,
            records,
            globals,
            protocol: pickle.protocol(),
        })
    }

    /// The `.distcp` files the metadata names.
    pub(super) fn files(&self) -> Vec<String> {
        self.files.clone()
    }

    /// The metadata of a checkpoint saved without collectives (`use_collectives=False`):
    /// each rank wrote `__<rank>.metadata`, naming only the items it saved and its own
    /// files; together, in rank order, they describe the checkpoint. A tensor's chunks are
    /// gathered from every rank (a chunk several ranks saved, as a replicated tensor's, is
    /// taken from the first); any other item is the first rank's. Ranks that disagree on a
    /// tensor's dtype or size, or on what an item is, make the checkpoint malformed.
    pub(super) fn merge(parts: Vec<(String, Metadata)>) -> Result<Metadata> {
        let count = parts.len();
        let mut parts = parts.into_iter();
        let Some((_, mut merged)) = parts.next() else {
            return Err(Error::malformed("no rank's metadata to read"));
        };
        let mut by_fqn: HashMap<String, usize> = merged
            .entries
            .iter()
            .enumerate()
            .map(|(i, entry)| (entry.fqn.clone(), i))
            .collect();
        let mut file_index: HashMap<String, usize> = merged
            .files
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), i))
            .collect();
        // Every chunk known so far, by the entry it belongs to, its offsets and sizes.
        let mut known: HashSet<(usize, Vec<usize>, Vec<usize>)> = HashSet::new();
        for (at, entry) in merged.entries.iter().enumerate() {
            if let Item::Tensor { chunks, .. } = &entry.item {
                for c in chunks {
                    known.insert((at, c.offsets.clone(), c.sizes.clone()));
                }
            }
        }
        for (name, part) in parts {
            // Where each of this rank's files is in the merged list.
            let mut remap = Vec::with_capacity(part.files.len());
            for file in part.files {
                let next = merged.files.len();
                let index = *file_index.entry(file.clone()).or_insert(next);
                if index == next {
                    merged.files.push(file);
                }
                remap.push(index);
            }
            let moved = |place: &mut Place| -> Result<()> {
                place.file = *remap
                    .get(place.file)
                    .ok_or_else(|| Error::malformed("an item names a file its rank does not"))?;
                Ok(())
            };
            for mut entry in part.entries {
                match &mut entry.item {
                    Item::Tensor { chunks, .. } => {
                        for chunk in chunks.iter_mut() {
                            moved(&mut chunk.place)?;
                        }
                    }
                    Item::Bytes(place) => moved(place)?,
                }
                let Some(&at) = by_fqn.get(&entry.fqn) else {
                    let at = merged.entries.len();
                    if let Item::Tensor { chunks, .. } = &entry.item {
                        for c in chunks {
                            known.insert((at, c.offsets.clone(), c.sizes.clone()));
                        }
                    }
                    by_fqn.insert(entry.fqn.clone(), at);
                    merged.entries.push(entry);
                    continue;
                };
                let Some(first) = merged.entries.get_mut(at) else {
                    continue;
                };
                let disagree = |what: &str| {
                    Error::malformed(format!(
                        "`{name}` and the first rank's metadata disagree on {what} of `{}`",
                        entry.fqn
                    ))
                    .with_hint("the ranks' metadata files come from different saves")
                };
                match (&mut first.item, entry.item) {
                    (
                        Item::Tensor {
                            dtype,
                            size,
                            chunks,
                        },
                        Item::Tensor {
                            dtype: other_dtype,
                            size: other_size,
                            chunks: others,
                        },
                    ) => {
                        if *dtype != other_dtype || *size != other_size {
                            return Err(disagree("the dtype and size"));
                        }
                        for chunk in others {
                            if known.insert((at, chunk.offsets.clone(), chunk.sizes.clone())) {
                                chunks.push(chunk);
                            }
                        }
                    }
                    (Item::Bytes(_), Item::Bytes(_)) => {}
                    _ => return Err(disagree("the kind")),
                }
            }
            merged.globals.extend(part.globals);
        }
        merged.globals.sort();
        merged.globals.dedup();
        merged.records.push(("ranks".to_owned(), count.to_string()));
        Ok(merged)
    }
}

/// Refuses a pickle that names any global outside DCP's (`globals::in_dcp_metadata`); returns
/// the globals, `module.name`, sorted.
fn check_globals(pickle: &Pickle<'_>) -> Result<Vec<String>> {
    let mut globals = Vec::new();
    for (id, object) in pickle.objects() {
        let Object::Global { module, name } = object else {
            continue;
        };
        if !globals::in_dcp_metadata(module, name) {
            return Err(Error::new(
                ErrorKind::Refused,
                format!(
                    "the metadata names the global `{module}.{name}`, which is not part of \
                     torch.distributed.checkpoint's metadata; ckpt never runs it"
                ),
            )
            .with_member(".metadata")
            .at_offset(pickle.offset(id))
            .with_hint("only DCP's own dataclasses, torch.Size and torch dtypes are read"));
        }
        globals.push(format!("{module}.{name}"));
    }
    globals.sort();
    globals.dedup();
    Ok(globals)
}

/// Reads the symbolic objects of the metadata pickle as DCP's dataclasses.
struct Reader<'p, 'a> {
    pickle: &'p Pickle<'a>,
    /// The most parts of an entry's path (the `depth` limit).
    max_path: usize,
}

impl Reader<'_, '_> {
    fn malformed(&self, id: ObjectId, message: String) -> Error {
        Error::malformed(message)
            .with_member(".metadata")
            .at_offset(self.pickle.offset(id))
    }

    /// The class name of an instance of one of DCP's classes, or `None`.
    fn class(&self, id: ObjectId) -> Option<&str> {
        match self.pickle.get(id) {
            Object::Instance { class, .. } => match self.pickle.as_global(*class) {
                Some((METADATA_MODULE | FILESYSTEM_MODULE, name)) => Some(name),
                _ => None,
            },
            _ => None,
        }
    }

    /// The fields of a dataclass instance of `class`, from the dict given to `BUILD`.
    fn record(&self, id: ObjectId, class: &str) -> Result<HashMap<&str, ObjectId>> {
        if self.class(id) != Some(class) {
            return Err(self.malformed(
                id,
                format!("expected a {class} in the metadata, found something else"),
            ));
        }
        let mut fields = HashMap::new();
        for &state in &self.pickle.extras(id).states {
            let entries: &[(ObjectId, ObjectId)] = match self.pickle.get(state) {
                Object::Dict(entries) => entries,
                // `(state, slotstate)`: dataclasses with slots.
                Object::Tuple(parts) => match parts.as_slice() {
                    [a, b] => {
                        for part in [a, b] {
                            if let Object::Dict(entries) = self.pickle.get(*part) {
                                self.fields_into(entries, &mut fields)?;
                            }
                        }
                        continue;
                    }
                    _ => {
                        return Err(
                            self.malformed(state, format!("the state of a {class} is not a dict"))
                        );
                    }
                },
                Object::None => continue,
                _ => {
                    return Err(
                        self.malformed(state, format!("the state of a {class} is not a dict"))
                    );
                }
            };
            self.fields_into(entries, &mut fields)?;
        }
        Ok(fields)
    }

    fn fields_into<'s>(
        &'s self,
        entries: &[(ObjectId, ObjectId)],
        fields: &mut HashMap<&'s str, ObjectId>,
    ) -> Result<()> {
        for &(key, value) in entries {
            let name = self
                .pickle
                .as_str(key)
                .ok_or_else(|| self.malformed(key, "a field name is not a string".to_owned()))?;
            fields.insert(name, value);
        }
        Ok(())
    }

    fn required(
        &self,
        fields: &HashMap<&str, ObjectId>,
        name: &str,
        class: &str,
    ) -> Result<ObjectId> {
        fields
            .get(name)
            .copied()
            .ok_or_else(|| Error::malformed(format!("a {class} has no `{name}`")))
    }

    fn dict(&self, id: ObjectId, what: &str) -> Result<&[(ObjectId, ObjectId)]> {
        match self.pickle.get(id) {
            Object::Dict(entries) => Ok(entries),
            _ => Err(self.malformed(id, format!("`{what}` is not a dict"))),
        }
    }

    /// A non-negative integer that fits a `usize`.
    fn count(&self, id: ObjectId, what: &str) -> Result<usize> {
        self.pickle
            .as_int(id)
            .and_then(|i| usize::try_from(i).ok())
            .ok_or_else(|| self.malformed(id, format!("{what} is not a non-negative integer")))
    }

    /// A `torch.Size` (or a plain tuple or list) of non-negative integers.
    fn size(&self, id: ObjectId, what: &str) -> Result<Vec<usize>> {
        let items = match self.pickle.get(id) {
            Object::Call { callable, args }
                if self.pickle.as_global(*callable) == Some(("torch", "Size")) =>
            {
                match self.pickle.as_seq(*args) {
                    Some([inner]) => self.pickle.as_seq(*inner),
                    _ => None,
                }
            }
            Object::Tuple(items) | Object::List(items) => Some(items.as_slice()),
            _ => None,
        }
        .ok_or_else(|| self.malformed(id, format!("{what} is not a torch.Size")))?;
        items.iter().map(|&item| self.count(item, what)).collect()
    }

    /// `storage_data`: where each item's bytes are, by `MetadataIndex`.
    fn storage_data(
        &self,
        id: ObjectId,
        files: &mut Vec<String>,
    ) -> Result<HashMap<IndexKey, Place>> {
        let mut places = HashMap::new();
        let mut file_ids: HashMap<String, usize> = HashMap::new();
        for &(key, value) in self.dict(id, "storage_data")? {
            let index = self.record(key, "MetadataIndex")?;
            let fqn = index
                .get("fqn")
                .and_then(|&f| self.pickle.as_str(f))
                .ok_or_else(|| self.malformed(key, "a MetadataIndex has no fqn".to_owned()))?
                .to_owned();
            let offsets = match index.get("offset") {
                Some(&o) if !matches!(self.pickle.get(o), Object::None) => {
                    Some(self.size(o, "a chunk offset")?)
                }
                _ => None,
            };
            let info = self.record(value, "_StorageInfo")?;
            let path = info
                .get("relative_path")
                .and_then(|&p| self.pickle.as_str(p))
                .ok_or_else(|| {
                    self.malformed(value, "a _StorageInfo has no relative_path".to_owned())
                })?;
            let offset =
                self.count(self.required(&info, "offset", "_StorageInfo")?, "an offset")?;
            let length = self.count(self.required(&info, "length", "_StorageInfo")?, "a length")?;
            if let Some(&t) = info.get("transform_descriptors")
                && self.pickle.as_seq(t).is_some_and(|d| !d.is_empty())
            {
                return Err(Error::unsupported(format!(
                    "the bytes of `{fqn}` are transformed (compressed or encoded) by a DCP \
                     extension, which ckpt does not read"
                ))
                .with_member(".metadata")
                .with_tensor(fqn));
            }
            let next = file_ids.len();
            let file = *file_ids.entry(path.to_owned()).or_insert_with(|| {
                files.push(path.to_owned());
                next
            });
            places.insert(
                (fqn, offsets),
                Place {
                    file,
                    offset: offset as u64,
                    length: length as u64,
                },
            );
        }
        Ok(places)
    }

    /// `planner_data`: the path of each fqn in the nested state dict.
    fn planner_data(&self, id: ObjectId) -> Result<HashMap<String, Vec<Key>>> {
        let mut paths = HashMap::new();
        if matches!(self.pickle.get(id), Object::None) {
            return Ok(paths);
        }
        for &(key, value) in self.dict(id, "planner_data")? {
            let Some(fqn) = self.pickle.as_str(key) else {
                return Err(self.malformed(key, "a planner_data key is not a string".to_owned()));
            };
            let parts = self.pickle.as_seq(value).ok_or_else(|| {
                self.malformed(value, format!("the path of `{fqn}` is not a tuple"))
            })?;
            if parts.is_empty() {
                return Err(self.malformed(value, format!("the path of `{fqn}` is empty")));
            }
            if parts.len() > self.max_path {
                return Err(limits::exceeded(
                    "depth",
                    self.max_path as u64,
                    format_args!("the path of `{fqn}` has {} parts", parts.len()),
                )
                .at_offset(self.pickle.offset(value)));
            }
            let mut path = Vec::with_capacity(parts.len());
            for &part in parts {
                path.push(match self.pickle.get(part) {
                    Object::Str(s) => Key::Str(s.to_string()),
                    Object::Int(_) => Key::Int(self.count(part, "a list index")?),
                    _ => {
                        return Err(self.malformed(
                            part,
                            format!("the path of `{fqn}` holds a part that is not a str or int"),
                        ));
                    }
                });
            }
            paths.insert(fqn.to_owned(), path);
        }
        Ok(paths)
    }

    /// One entry of `state_dict_metadata`.
    fn item(&self, fqn: &str, id: ObjectId, places: &HashMap<IndexKey, Place>) -> Result<Item> {
        let place = |offsets: Option<Vec<usize>>| {
            let what = match &offsets {
                Some(o) => format!("the chunk at offsets {o:?}"),
                None => "its bytes".to_owned(),
            };
            places
                .get(&(fqn.to_owned(), offsets))
                .cloned()
                .ok_or_else(|| {
                    Error::malformed(format!("storage_data does not say where {what} are"))
                        .with_member(".metadata")
                })
        };
        match self.class(id) {
            Some("BytesStorageMetadata") => Ok(Item::Bytes(place(None)?)),
            Some("TensorStorageMetadata") => {
                let fields = self.record(id, "TensorStorageMetadata")?;
                let size = self.size(
                    self.required(&fields, "size", "TensorStorageMetadata")?,
                    "the size",
                )?;
                let dtype =
                    self.dtype(self.required(&fields, "properties", "TensorStorageMetadata")?)?;
                let list = self.required(&fields, "chunks", "TensorStorageMetadata")?;
                let chunk_ids = self
                    .pickle
                    .as_seq(list)
                    .ok_or_else(|| self.malformed(list, "`chunks` is not a list".to_owned()))?;
                let mut chunks = Vec::with_capacity(chunk_ids.len());
                for &chunk in chunk_ids {
                    let fields = self.record(chunk, "ChunkStorageMetadata")?;
                    let offsets = self.size(
                        self.required(&fields, "offsets", "ChunkStorageMetadata")?,
                        "a chunk offset",
                    )?;
                    let sizes = self.size(
                        self.required(&fields, "sizes", "ChunkStorageMetadata")?,
                        "a chunk size",
                    )?;
                    let place = place(Some(offsets.clone()))?;
                    chunks.push(Chunk {
                        offsets,
                        sizes,
                        place,
                    });
                }
                Ok(Item::Tensor {
                    dtype,
                    size,
                    chunks,
                })
            }
            _ => Err(self.malformed(
                id,
                "an entry is neither a TensorStorageMetadata nor a BytesStorageMetadata".to_owned(),
            )),
        }
    }

    /// The dtype of a `TensorProperties`: the first item of its state tuple (or its
    /// `dtype` field).
    fn dtype(&self, id: ObjectId) -> Result<Dtype> {
        if self.class(id) != Some("TensorProperties") {
            return Err(self.malformed(
                id,
                "a tensor's properties are not a TensorProperties".to_owned(),
            ));
        }
        let mut dtype_id = None;
        for &state in &self.pickle.extras(id).states {
            match self.pickle.get(state) {
                Object::Tuple(items) => dtype_id = items.first().copied(),
                Object::Dict(entries) => {
                    for &(k, v) in entries {
                        if self.pickle.as_str(k) == Some("dtype") {
                            dtype_id = Some(v);
                        }
                    }
                }
                _ => {}
            }
        }
        let dtype_id = dtype_id
            .ok_or_else(|| self.malformed(id, "a TensorProperties has no dtype".to_owned()))?;
        match self.pickle.as_global(dtype_id) {
            Some(("torch", name)) => Dtype::from_name(name),
            _ => None,
        }
        .ok_or_else(|| self.malformed(dtype_id, "a tensor's dtype is not a torch dtype".to_owned()))
    }
}

/// The tensors and values of a DCP folder, nested as `planner_data` says (as
/// `torch.distributed.checkpoint` loads them: an int path part makes a list).
/// The opened file that holds a place: `files` holds `metadata.files` (each once), each
/// looked up by name.
fn file_of<'m, 'a: 'm>(
    metadata: &'m Metadata,
    files: &[Member<'a>],
) -> impl Fn(&Place) -> Result<Member<'a>> + 'm {
    let by_name: HashMap<&'a str, Member<'a>> = files.iter().map(|m| (&**m.name, *m)).collect();
    move |place: &Place| {
        metadata
            .files
            .get(place.file)
            .and_then(|name| by_name.get(name.as_str()).copied())
            .ok_or_else(|| Error::malformed("an item's file was not opened"))
    }
}

pub(super) fn checkpoint<'a>(
    metadata: &Metadata,
    metadata_path: &Path,
    files: &[Member<'a>],
    limits: &Limits,
) -> Result<Checkpoint<'a>> {
    let member = file_of(metadata, files);
    let mut tree = Node::Map(Vec::new(), HashMap::new());
    let mut needs: Vec<String> = Vec::new();
    let max_index = metadata.entries.len();
    for entry in &metadata.entries {
        let value = match &entry.item {
            Item::Tensor {
                dtype,
                size,
                chunks,
            } => {
                let mut tiles = Vec::with_capacity(chunks.len());
                for chunk in chunks {
                    let file = member(&chunk.place)?;
                    let view = chunk_view(file, chunk, *dtype)
                        .map_err(|e| e.with_path(metadata_path).with_tensor(entry.fqn.clone()))?;
                    tiles.push(Tile::new(chunk.offsets.clone(), view));
                }
                let view =
                    TensorView::tiled_with(*dtype, size.clone(), tiles, limits).map_err(|e| {
                        e.with_path(metadata_path)
                            .with_member(".metadata")
                            .with_tensor(entry.fqn.clone())
                    })?;
                Value::Tensor(view)
            }
            Item::Bytes(place) => {
                let file = member(place)?;
                let bytes = slice(file, place).map_err(|e| e.with_tensor(entry.fqn.clone()))?;
                match crate::read_with(bytes, limits) {
                    Ok(value) => {
                        needs.extend(value.details().needs.iter().cloned());
                        value.root().clone()
                    }
                    // What the scanner calls dangerous refuses the whole folder.
                    Err(error) if error.kind() == ErrorKind::Dangerous => {
                        return Err(error
                            .with_path(metadata_path)
                            .with_member(format!("{} at byte {}", file.name, place.offset))
                            .with_tensor(entry.fqn.clone()));
                    }
                    // Not plain data (an object of some class): listed, not read.
                    Err(error) => Value::Named {
                        type_name: "object".to_owned(),
                        name: format!("<not read: {}>", error.message()),
                    },
                }
            }
        };
        tree.set(&entry.path, value, max_index)
            .map_err(|e| e.with_path(metadata_path).with_tensor(entry.fqn.clone()))?;
    }
    needs.sort();
    needs.dedup();
    let mut details = Details {
        globals: metadata.globals.clone(),
        needs,
        pickle_protocol: metadata.protocol,
        ..Details::default()
    };
    for (key, value) in &metadata.records {
        details.records.insert(key.clone(), value.clone());
    }
    details
        .records
        .insert("files".to_owned(), files.len().to_string());
    Ok(Checkpoint::new(
        Format::DistributedCheckpoint,
        std::collections::BTreeMap::new(),
        tree.into_value(),
    )
    .with_details(details))
}

/// What [`audit`] finds: every error item by item, and the `torch.save` archive of every
/// chunk and bytes item that lies inside its file, by where it is (`__0_0.distcp at byte
/// 640`), for a caller to verify as a file of its own.
pub(crate) struct Audit<'a> {
    pub(crate) errors: Vec<Error>,
    /// Each archive: where it is (`__0_0.distcp at byte 640`), its file, its offset in the
    /// file, and its bytes.
    pub(crate) archives: Vec<(String, String, u64, &'a [u8])>,
}

/// Checks every item of the folder as [`checkpoint`] reads it, but goes on after an
/// error: each chunk's place, archive, dtype and shape, and each tensor's tiling. When no
/// item is wrong, the state dict is assembled too (`planner_data` paths).
pub(super) fn audit<'a>(
    metadata: &Metadata,
    metadata_path: &Path,
    files: &[Member<'a>],
) -> Audit<'a> {
    let member = file_of(metadata, files);
    let mut audit = Audit {
        errors: Vec::new(),
        archives: Vec::new(),
    };
    for entry in &metadata.entries {
        let located = |e: Error| e.with_path(metadata_path).with_tensor(entry.fqn.clone());
        match &entry.item {
            Item::Tensor {
                dtype,
                size,
                chunks,
            } => {
                let mut tiles = Vec::with_capacity(chunks.len());
                for chunk in chunks {
                    let file = match member(&chunk.place) {
                        Ok(file) => file,
                        Err(e) => {
                            audit.errors.push(located(e));
                            continue;
                        }
                    };
                    if let Ok(bytes) = slice(file, &chunk.place) {
                        let label = format!("{} at byte {}", file.name, chunk.place.offset);
                        audit.archives.push((
                            label,
                            file.name.to_string(),
                            chunk.place.offset,
                            bytes,
                        ));
                    }
                    match chunk_view(file, chunk, *dtype) {
                        Ok(view) => tiles.push(Tile::new(chunk.offsets.clone(), view)),
                        Err(e) => audit.errors.push(located(e)),
                    }
                }
                if tiles.len() == chunks.len()
                    && let Err(e) = TensorView::tiled(*dtype, size.clone(), tiles)
                {
                    audit.errors.push(located(e.with_member(".metadata")));
                }
            }
            Item::Bytes(place) => match member(place).and_then(|file| slice(file, place)) {
                Ok(bytes) => {
                    if let Some(file) = metadata.files.get(place.file) {
                        audit.archives.push((
                            format!("{file} at byte {}", place.offset),
                            file.clone(),
                            place.offset,
                            bytes,
                        ));
                    }
                }
                Err(e) => audit.errors.push(located(e)),
            },
        }
    }
    if audit.errors.is_empty()
        && let Err(e) = checkpoint(metadata, metadata_path, files, &Limits::default())
    {
        audit.errors.push(e);
    }
    audit
}

/// The bytes of an item, checked to lie inside its file.
fn slice<'a>(file: Member<'a>, place: &Place) -> Result<&'a [u8]> {
    let bytes = file.source.bytes();
    let end = place.offset.checked_add(place.length);
    let range = match end {
        Some(end) if end <= bytes.len() as u64 => usize::try_from(place.offset)
            .ok()
            .zip(usize::try_from(end).ok()),
        _ => None,
    };
    range
        .and_then(|(start, end)| bytes.get(start..end))
        .ok_or_else(|| {
            Error::malformed(format!(
                "the metadata puts an item at bytes {}..+{} of `{}`, which is {} bytes long",
                place.offset,
                place.length,
                file.name,
                bytes.len()
            ))
            .with_member(file.name.to_string())
        })
}

/// The tensor of one chunk: the `torch.save` archive at its place, holding a tensor of the
/// chunk's sizes and the tensor's dtype.
fn chunk_view<'a>(file: Member<'a>, chunk: &Chunk, dtype: Dtype) -> Result<TensorView<'a>> {
    let bytes = slice(file, &chunk.place)?;
    let name: Arc<str> = file.name.clone();
    let at = |e: Error| e.with_member(format!("{} at byte {}", file.name, chunk.place.offset));
    let saved = crate::torch::read_zip(bytes).map_err(at)?;
    let Value::Tensor(view) = saved.root() else {
        return Err(at(Error::malformed(format!(
            "the chunk at offsets {:?} does not hold a tensor",
            chunk.offsets
        ))));
    };
    if view.dtype() != dtype || view.shape() != chunk.sizes.as_slice() {
        return Err(at(Error::malformed(format!(
            "the chunk at offsets {:?} holds a {} tensor of shape {:?}, but the metadata says \
             {dtype} of shape {:?}",
            chunk.offsets,
            view.dtype(),
            view.shape(),
            chunk.sizes
        ))));
    }
    Ok(view.clone().in_file(name, chunk.place.offset))
}

/// The nested state dict being built, as `torch.distributed.checkpoint`'s `set_element`
/// builds it.
enum Node<'a> {
    Map(Vec<(Key, Node<'a>)>, HashMap<Key, usize>),
    List(Vec<Option<Node<'a>>>),
    Leaf(Value<'a>),
    /// A place made for a leaf, not filled yet.
    Vacant,
}

impl<'a> Node<'a> {
    fn empty_for(key: &Key) -> Node<'a> {
        match key {
            Key::Str(_) => Node::Map(Vec::new(), HashMap::new()),
            Key::Int(_) => Node::List(Vec::new()),
        }
    }

    /// The child at `key`, made (as `fresh`) when missing.
    fn child(&mut self, key: &Key, fresh: Node<'a>, max_index: usize) -> Result<&mut Node<'a>> {
        match self {
            Node::Map(entries, index) => {
                let at = match index.get(key) {
                    Some(&at) => at,
                    None => {
                        index.insert(key.clone(), entries.len());
                        entries.push((key.clone(), fresh));
                        entries.len() - 1
                    }
                };
                entries
                    .get_mut(at)
                    .map(|(_, node)| node)
                    .ok_or_else(|| Error::malformed("inconsistent state dict"))
            }
            Node::List(items) => {
                let Key::Int(i) = *key else {
                    return Err(Error::malformed(
                        "planner_data puts a named entry inside a list",
                    ));
                };
                if i > max_index {
                    return Err(Error::malformed(format!(
                        "planner_data puts an entry at list index {i}, beyond the {max_index} \
                         entries of the checkpoint"
                    )));
                }
                if items.len() <= i {
                    items.resize_with(i + 1, || None);
                }
                let slot = items
                    .get_mut(i)
                    .ok_or_else(|| Error::malformed("inconsistent state dict"))?;
                Ok(slot.get_or_insert(fresh))
            }
            Node::Leaf(_) | Node::Vacant => Err(Error::malformed(
                "planner_data nests an entry inside another entry",
            )),
        }
    }

    fn set(&mut self, path: &[Key], value: Value<'a>, max_index: usize) -> Result<()> {
        let Some((last, parents)) = path.split_last() else {
            return Err(Error::malformed("an entry has an empty path"));
        };
        let mut node = self;
        for (i, key) in parents.iter().enumerate() {
            let next = path.get(i + 1).unwrap_or(last);
            node = node.child(key, Node::empty_for(next), max_index)?;
        }
        let slot = node.child(last, Node::Vacant, max_index)?;
        if !matches!(slot, Node::Vacant) {
            return Err(Error::malformed("two entries have the same path"));
        }
        *slot = Node::Leaf(value);
        Ok(())
    }

    fn into_value(self) -> Value<'a> {
        match self {
            Node::Leaf(value) => value,
            Node::Vacant => Value::None,
            Node::List(items) => Value::List(
                items
                    .into_iter()
                    .map(|item| item.map_or(Value::None, Node::into_value))
                    .collect(),
            ),
            Node::Map(entries, _) => Value::Dict(Dict::new(
                entries
                    .into_iter()
                    .map(|(key, node)| {
                        let key = match key {
                            Key::Str(s) => Value::Str(s),
                            Key::Int(i) => Value::Int(i64::try_from(i).unwrap_or(i64::MAX)),
                        };
                        (key, node.into_value())
                    })
                    .collect(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny protocol-2 pickle assembler for hand-made metadata.
    fn global(module: &str, name: &str) -> Vec<u8> {
        format!("c{module}\n{name}\n").into_bytes()
    }
    fn text(s: &str) -> Vec<u8> {
        let mut out = vec![b'X'];
        out.extend_from_slice(&u32::try_from(s.len()).unwrap().to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out
    }
    fn int(i: i32) -> Vec<u8> {
        let mut out = vec![b'J'];
        out.extend_from_slice(&i.to_le_bytes());
        out
    }
    fn tuple(items: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![b'('];
        items.iter().for_each(|i| out.extend_from_slice(i));
        out.push(b't');
        out
    }
    fn list(items: &[Vec<u8>]) -> Vec<u8> {
        let mut out = b"](".to_vec();
        items.iter().for_each(|i| out.extend_from_slice(i));
        out.push(b'e');
        out
    }
    fn dict(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        let mut out = b"}(".to_vec();
        for (k, v) in entries {
            out.extend_from_slice(k);
            out.extend_from_slice(v);
        }
        out.push(b'u');
        out
    }
    /// `cls.__new__(cls)` with `state` given to BUILD.
    fn object(module: &str, class: &str, state: Vec<u8>) -> Vec<u8> {
        let mut out = global(module, class);
        out.extend_from_slice(b")\x81");
        out.extend_from_slice(&state);
        out.push(b'b');
        out
    }
    fn size(dims: &[i32]) -> Vec<u8> {
        let mut out = global("torch", "Size");
        out.extend_from_slice(&tuple(&[tuple(
            &dims.iter().map(|&d| int(d)).collect::<Vec<_>>(),
        )]));
        out.push(b'R');
        out
    }
    fn field(name: &str, value: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
        (text(name), value)
    }
    fn pickle(root: Vec<u8>) -> Vec<u8> {
        let mut out = b"\x80\x02".to_vec();
        out.extend_from_slice(&root);
        out.push(b'.');
        out
    }
    fn metadata(entries: Vec<(Vec<u8>, Vec<u8>)>, storage: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<u8> {
        pickle(object(
            METADATA_MODULE,
            "Metadata",
            dict(&[
                field("state_dict_metadata", dict(&entries)),
                field("storage_data", dict(&storage)),
                field("version", text("1.0.0")),
            ]),
        ))
    }
    fn tensor(offsets: &[i32], sizes: &[i32]) -> Vec<u8> {
        tensor_in(offsets, sizes, sizes)
    }
    /// A tensor of size `whole` of which this metadata holds one chunk.
    fn tensor_in(offsets: &[i32], sizes: &[i32], whole: &[i32]) -> Vec<u8> {
        let properties = object(
            METADATA_MODULE,
            "TensorProperties",
            tuple(&[global("torch", "float32"), b"N".to_vec(), b"\x89".to_vec()]),
        );
        let chunk = object(
            METADATA_MODULE,
            "ChunkStorageMetadata",
            dict(&[field("offsets", size(offsets)), field("sizes", size(sizes))]),
        );
        object(
            METADATA_MODULE,
            "TensorStorageMetadata",
            dict(&[
                field("properties", properties),
                field("size", size(whole)),
                field("chunks", list(&[chunk])),
            ]),
        )
    }
    fn index(fqn: &str, offsets: &[i32]) -> Vec<u8> {
        object(
            METADATA_MODULE,
            "MetadataIndex",
            dict(&[field("fqn", text(fqn)), field("offset", size(offsets))]),
        )
    }
    fn info(path: &str, offset: i32, length: i32) -> Vec<u8> {
        object(
            FILESYSTEM_MODULE,
            "_StorageInfo",
            dict(&[
                field("relative_path", text(path)),
                field("offset", int(offset)),
                field("length", int(length)),
            ]),
        )
    }

    /// One rank's metadata of a save without collectives: its row of `w` (2 x 3) and its
    /// copy of the replicated `r`, in its own file.
    fn rank(rank: i32, rows: i32) -> Metadata {
        let file = format!("__{rank}_0.distcp");
        let bytes = metadata(
            vec![
                (text("w"), tensor_in(&[rank, 0], &[1, 3], &[rows, 3])),
                (text("r"), tensor(&[0], &[2])),
            ],
            vec![
                (index("w", &[rank, 0]), info(&file, 0, 10)),
                (index("r", &[0]), info(&file, 10, 10)),
            ],
        );
        Metadata::parse(&bytes, &Limits::default()).unwrap()
    }

    #[test]
    fn ranks_merge_into_one_metadata() {
        let merged = Metadata::merge(vec![
            ("__0.metadata".to_owned(), rank(0, 2)),
            ("__1.metadata".to_owned(), rank(1, 2)),
        ])
        .unwrap();
        assert_eq!(merged.files(), ["__0_0.distcp", "__1_0.distcp"]);
        let chunks = |fqn: &str| -> Vec<(Vec<usize>, usize)> {
            let entry = merged.entries.iter().find(|e| e.fqn == fqn).unwrap();
            let Item::Tensor { chunks, .. } = &entry.item else {
                panic!("{entry:?}")
            };
            chunks
                .iter()
                .map(|c| (c.offsets.clone(), c.place.file))
                .collect()
        };
        // Each rank's row, from its own file; the replicated tensor once, from rank 0.
        assert_eq!(chunks("w"), [(vec![0, 0], 0), (vec![1, 0], 1)]);
        assert_eq!(chunks("r"), [(vec![0], 0)]);
        assert!(
            merged
                .records
                .contains(&("ranks".to_owned(), "2".to_owned()))
        );
    }

    #[test]
    fn ranks_that_disagree_are_malformed() {
        let error = Metadata::merge(vec![
            ("__0.metadata".to_owned(), rank(0, 2)),
            ("__1.metadata".to_owned(), rank(1, 3)),
        ])
        .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Malformed);
        assert!(error.message().contains("`__1.metadata`"), "{error}");
        assert!(error.message().contains("`w`"), "{error}");
    }

    #[test]
    fn hand_made_metadata_reads_as_data() {
        let bytes = metadata(
            vec![(text("w"), tensor(&[0, 0], &[2, 3]))],
            vec![(index("w", &[0, 0]), info("__0_0.distcp", 0, 10))],
        );
        let metadata = Metadata::parse(&bytes, &Limits::default()).unwrap();
        assert_eq!(metadata.files(), ["__0_0.distcp"]);
        let [entry] = metadata.entries.as_slice() else {
            panic!("{:?}", metadata.entries)
        };
        assert_eq!(entry.fqn, "w");
        assert!(matches!(
            &entry.item,
            Item::Tensor { dtype: Dtype::Float32, size, chunks } if size == &[2, 3] && chunks.len() == 1
        ));
        assert_eq!(
            metadata.records,
            [("dcp_version".to_owned(), "1.0.0".to_owned())]
        );
    }

    #[test]
    fn globals_outside_the_allowlist_are_refused() {
        let mut root = global("posix", "system");
        root.extend_from_slice(&tuple(&[text("touch pwned")]));
        root.push(b'R');
        let error = Metadata::parse(&pickle(root), &Limits::default()).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Refused);
        assert!(error.to_string().contains("posix.system"), "{error}");
        // A class of DCP's module that is not one of its metadata classes.
        let root = object(METADATA_MODULE, "Evil", dict(&[]));
        let error = Metadata::parse(&pickle(root), &Limits::default()).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Refused);
    }

    #[test]
    fn broken_metadata_is_malformed() {
        let not_metadata = Metadata::parse(&pickle(int(3)), &Limits::default()).unwrap_err();
        assert!(not_metadata.to_string().contains("expected a Metadata"));

        let negative = metadata(
            vec![(text("w"), tensor(&[0, -1], &[2, 3]))],
            vec![(index("w", &[0, -1]), info("__0_0.distcp", 0, 10))],
        );
        let error = Metadata::parse(&negative, &Limits::default()).unwrap_err();
        assert!(error.to_string().contains("non-negative"), "{error}");

        let nowhere = metadata(
            vec![(text("w"), tensor(&[0, 0], &[2, 3]))],
            vec![(index("v", &[0, 0]), info("__0_0.distcp", 0, 10))],
        );
        let error = Metadata::parse(&nowhere, &Limits::default()).unwrap_err();
        assert!(error.to_string().contains("does not say where"), "{error}");
        assert_eq!(error.location().tensor.as_deref(), Some("w"));

        let past = metadata(
            vec![(text("w"), tensor(&[0, 0], &[2, 3]))],
            vec![(index("w", &[0, 0]), info("__0_0.distcp", -5, 10))],
        );
        assert!(Metadata::parse(&past, &Limits::default()).is_err());
    }
}
