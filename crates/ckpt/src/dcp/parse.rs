//! The `.metadata` pickle, read as data: a pickle of dataclasses (`Metadata`,
//! `TensorStorageMetadata`, `ChunkStorageMetadata`, `MetadataIndex`, `_StorageInfo`...). It
//! is read by the safe VM of [`ckpt_pickle`], which builds a graph of symbolic objects and
//! runs nothing; this module reads that graph as data, by the field names of those classes.
//! Every global of the pickle must be one the table of globals marks as DCP's (its
//! dataclasses, paths, `torch.Size`, layouts and dtypes: [`globals::in_dcp_metadata`]):
//! anything else is refused before any field is read.

use std::collections::HashMap;

use ckpt_pickle::{Object, ObjectId, Pickle};

use super::metadata::{Chunk, Entry, Item, Key, Metadata, Place};
use crate::error::{Error, ErrorKind, Result};
use crate::limits::{self, Limits};
use crate::model::Dtype;
use crate::torch::globals;

const METADATA_MODULE: &str = "torch.distributed.checkpoint.metadata";
const FILESYSTEM_MODULE: &str = "torch.distributed.checkpoint.filesystem";

/// The `storage_data` key of an item: its fqn and, for tensor chunks, the chunk's offsets.
type IndexKey = (String, Option<Vec<usize>>);

impl Metadata {
    /// Reads a `.metadata` pickle.
    pub(crate) fn parse(bytes: &[u8], limits: &Limits) -> Result<Metadata> {
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A tiny protocol-2 pickle assembler for hand-made metadata.
    fn global(module: &str, name: &str) -> Vec<u8> {
        format!("c{module}\n{name}\n").into_bytes()
    }
    pub(in crate::dcp) fn text(s: &str) -> Vec<u8> {
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
    pub(in crate::dcp) fn metadata(
        entries: Vec<(Vec<u8>, Vec<u8>)>,
        storage: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Vec<u8> {
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
    pub(in crate::dcp) fn tensor(offsets: &[i32], sizes: &[i32]) -> Vec<u8> {
        tensor_in(offsets, sizes, sizes)
    }
    /// A tensor of size `whole` of which this metadata holds one chunk.
    pub(in crate::dcp) fn tensor_in(offsets: &[i32], sizes: &[i32], whole: &[i32]) -> Vec<u8> {
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
    pub(in crate::dcp) fn index(fqn: &str, offsets: &[i32]) -> Vec<u8> {
        object(
            METADATA_MODULE,
            "MetadataIndex",
            dict(&[field("fqn", text(fqn)), field("offset", size(offsets))]),
        )
    }
    pub(in crate::dcp) fn info(path: &str, offset: i32, length: i32) -> Vec<u8> {
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
