//! The tar format of torch <= 0.3 (formats.md §2.3).
//!
//! Four tar entries: `sys_info` (a pickle), `storages` (a count, then per storage a pickled
//! `(key, location, storage_type)`, an int64 element count and the bytes, then a pickled
//! list of views), `tensors` (a count, then per tensor a pickled `(key, storage_key,
//! tensor_type)` and its sizes, strides and offset in binary), and `pickle`, whose
//! persistent ids name tensors and storages by key.

use std::collections::{BTreeMap, HashMap};

use ckpt_pickle::Object;

use super::interpret::{self, Container, StorageId, StorageKind, Storages};
use super::{details, parse_pickle, plain_only};
use crate::error::{Error, Result};
use crate::format::Format;
use crate::limits::{self, Limits};
use crate::model::{ByteOrder, Checkpoint, Dtype, Storage, TensorView, Value};

/// A little cursor over the binary parts of the `storages` and `tensors` members.
struct Cursor<'data, 'l> {
    bytes: &'data [u8],
    pos: usize,
    end: usize,
    limits: &'l Limits,
}

impl<'data> Cursor<'data, '_> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'data [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.end)
            .ok_or_else(|| {
                Error::malformed(format!("the tar checkpoint ends inside {what}"))
                    .at_offset(self.pos as u64)
            })?;
        let slice = self.bytes.get(self.pos..end).unwrap_or_default();
        self.pos = end;
        Ok(slice)
    }

    fn i64(&mut self, what: &str) -> Result<i64> {
        let bytes = self.take(8, what)?;
        Ok(i64::from_le_bytes(bytes.try_into().unwrap_or_default()))
    }

    fn pickle(&mut self, what: &str) -> Result<ckpt_pickle::Pickle<'data>> {
        let data = self.bytes.get(..self.end).unwrap_or_default();
        let pickle = parse_pickle(data, self.pos, what, self.limits)?;
        plain_only(&pickle, what)?;
        self.pos += pickle.byte_len();
        Ok(pickle)
    }
}

fn count(pickle: &ckpt_pickle::Pickle<'_>, what: &str) -> Result<usize> {
    pickle
        .root()
        .and_then(|r| pickle.as_int(r))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| Error::malformed(format!("the {what} count is not a number")))
}

/// A key of the tar format: an int or a string, compared as text.
fn key(pickle: &ckpt_pickle::Pickle<'_>, id: ckpt_pickle::ObjectId) -> Option<String> {
    interpret::text(pickle, id).or_else(|| pickle.as_int(id).map(|i| i.to_string()))
}

struct TarObjects<'data> {
    tensors: HashMap<String, TensorView<'data>>,
    storages: HashMap<String, (Storage<'data>, Dtype)>,
}

impl<'data> Storages<'data> for TarObjects<'data> {
    fn storage(&mut self, id: &StorageId) -> Result<Storage<'data>> {
        self.storages
            .get(&id.key)
            .map(|(s, _)| s.clone())
            .ok_or_else(|| Error::malformed(format!("unknown storage `{}`", id.key)))
    }

    fn other(&mut self, pid: &str) -> Result<Value<'data>> {
        if let Some(tensor) = self.tensors.get(pid) {
            return Ok(Value::Tensor(tensor.clone()));
        }
        if let Some((storage, dtype)) = self.storages.get(pid) {
            let size = dtype.byte_size().unwrap_or(1);
            return TensorView::strided(
                *dtype,
                vec![storage.bytes().len() / size],
                vec![1],
                0,
                storage.clone(),
            )
            .map(Value::Tensor);
        }
        Err(Error::malformed(format!(
            "the pickle refers to `{pid}`, which the archive does not hold"
        )))
    }
}

/// Reads a tar checkpoint of torch <= 0.3.
pub fn read_tar(bytes: &[u8]) -> Result<Checkpoint<'_>> {
    read_tar_with(bytes, &Limits::default())
}

/// [`read_tar`] within `limits`.
pub fn read_tar_with<'data>(bytes: &'data [u8], limits: &Limits) -> Result<Checkpoint<'data>> {
    let members = crate::walk::tar::members(bytes)?;
    // `tarfile.getmember`: the last member of the name.
    let member = |name: &str| {
        crate::walk::tar::member(&members, name)
            .map(|m| (m.data_start, m.size))
            .ok_or_else(|| Error::malformed(format!("the tar checkpoint has no `{name}` member")))
    };
    let mut objects = TarObjects {
        tensors: HashMap::new(),
        storages: HashMap::new(),
    };

    let (start, len) = member("storages")?;
    let mut cursor = Cursor {
        bytes,
        pos: start,
        end: start + len,
        limits,
    };
    let storage_count = count(&cursor.pickle("the storage count")?, "storage")?;
    for _ in 0..storage_count {
        let header = cursor.pickle("a storage header")?;
        let items = header
            .root()
            .and_then(|r| header.as_seq(r))
            .unwrap_or_default();
        let [key_id, _location, storage_type] = items else {
            return Err(
                Error::malformed("a storage header is not (key, location, type)")
                    .at_offset(cursor.pos as u64),
            );
        };
        let key = key(&header, *key_id)
            .ok_or_else(|| Error::malformed("a storage key is not text or int"))?;
        let (module, name) = interpret::global_of(&header, *storage_type)
            .ok_or_else(|| Error::malformed("a storage type is not a class name"))?;
        let Some(StorageKind::Typed(dtype)) = interpret::storage_kind(&module, &name) else {
            return Err(Error::malformed(format!(
                "unknown storage type `{module}.{name}`"
            )));
        };
        let numel = cursor.i64("a storage size")?;
        let unit = dtype.byte_size().unwrap_or(1);
        let len = usize::try_from(numel)
            .ok()
            .and_then(|n| n.checked_mul(unit))
            .ok_or_else(|| Error::malformed(format!("storage `{key}` has a bad size {numel}")))?;
        let data_start = cursor.pos as u64;
        let data = cursor.take(len, "a storage's data")?;
        objects.storages.insert(
            key,
            (
                Storage::new(data, ByteOrder::Little).at_file_offset(data_start),
                dtype,
            ),
        );
    }
    let views = cursor.pickle("the storage views")?;
    let list = views.root().and_then(|r| views.as_seq(r)).ok_or_else(|| {
        Error::malformed("the storage views are not a list").at_offset(cursor.pos as u64)
    })?;
    {
        for &view in list {
            let Some(&[target, root, offset, size]) = views.as_seq(view) else {
                return Err(Error::malformed(
                    "a storage view is not (target, root, offset, size)",
                ));
            };
            let (target, root) = (key(&views, target), key(&views, root));
            let (offset, size) = (views.as_int(offset), views.as_int(size));
            let (Some(target), Some(root), Some(offset), Some(size)) = (target, root, offset, size)
            else {
                return Err(Error::malformed("a storage view has bad fields"));
            };
            let (storage, dtype) =
                objects.storages.get(&root).cloned().ok_or_else(|| {
                    Error::malformed(format!("a view of unknown storage `{root}`"))
                })?;
            let unit = i64::try_from(dtype.byte_size().unwrap_or(1)).unwrap_or(1);
            let range = offset
                .checked_mul(unit)
                .zip(offset.checked_add(size).and_then(|e| e.checked_mul(unit)))
                .and_then(|(a, b)| Some((usize::try_from(a).ok()?, usize::try_from(b).ok()?)));
            let view = range
                .and_then(|(a, b)| storage.slice(a, b))
                .ok_or_else(|| {
                    Error::malformed(format!("a view of storage `{root}` reaches past its end"))
                })?;
            objects.storages.insert(target, (view, dtype));
        }
    }

    let (start, len) = member("tensors")?;
    let mut cursor = Cursor {
        bytes,
        pos: start,
        end: start + len,
        limits,
    };
    let tensor_count = count(&cursor.pickle("the tensor count")?, "tensor")?;
    for _ in 0..tensor_count {
        let header = cursor.pickle("a tensor header")?;
        let items = header
            .root()
            .and_then(|r| header.as_seq(r))
            .unwrap_or_default();
        let [key_id, storage_key, ..] = items else {
            return Err(Error::malformed(
                "a tensor header is not (key, storage, type)",
            ));
        };
        let (Some(key), Some(storage_key)) = (key(&header, *key_id), key(&header, *storage_key))
        else {
            return Err(Error::malformed("a tensor header has bad keys"));
        };
        let ndim = cursor.take(4, "a tensor rank")?;
        let ndim = usize::try_from(i32::from_le_bytes(ndim.try_into().unwrap_or_default()))
            .ok()
            .ok_or_else(|| Error::malformed(format!("tensor `{key}` has a negative rank")))?;
        if ndim > limits.rank {
            return Err(limits::exceeded(
                "rank",
                limits.rank as u64,
                format_args!("tensor `{key}` has {ndim} dimensions"),
            ));
        }
        cursor.take(4, "padding")?;
        let mut dims = |what: &str| -> Result<Vec<usize>> {
            (0..ndim)
                .map(|_| {
                    let v = cursor.i64(what)?;
                    usize::try_from(v).map_err(|_| {
                        Error::malformed(format!("tensor `{key}` has a negative {what}"))
                    })
                })
                .collect()
        };
        let shape = dims("size")?;
        let strides = dims("stride")?;
        let offset = usize::try_from(cursor.i64("a storage offset")?).map_err(|_| {
            Error::malformed(format!("tensor `{key}` has a negative storage offset"))
        })?;
        let (storage, dtype) = objects.storages.get(&storage_key).cloned().ok_or_else(|| {
            Error::malformed(format!(
                "tensor `{key}` refers to unknown storage `{storage_key}`"
            ))
        })?;
        let view = TensorView::strided(dtype, shape, strides, offset, storage)?;
        objects.tensors.insert(key, view);
    }

    let (start, len) = member("pickle")?;
    let data = bytes.get(..start + len).unwrap_or_default();
    let main = parse_pickle(data, start, "pickle", limits)?;
    if main.byte_len() != len {
        return Err(Error::malformed(format!(
            "{} bytes follow the main pickle's STOP in the tar member; torch never writes them",
            len - main.byte_len().min(len)
        ))
        .at_offset((start + main.byte_len()) as u64));
    }
    let main_bytes = bytes
        .get(start..start + main.byte_len())
        .unwrap_or_default();
    let mut records = BTreeMap::new();
    if let Ok((start, len)) = member("sys_info") {
        let sys_info = parse_pickle(
            bytes.get(..start + len).unwrap_or_default(),
            start,
            "sys_info",
            limits,
        )?;
        plain_only(&sys_info, "sys_info")?;
        if let Some(Object::Dict(entries)) = sys_info.root().map(|r| sys_info.get(r)) {
            for &(k, v) in entries {
                if let (Some(k), Some(v)) = (sys_info.as_str(k), sys_info.as_int(v)) {
                    records.insert(k.to_owned(), v.to_string());
                }
            }
        }
    }
    let interpreted = interpret::interpret(&main, &mut objects, Container::Tar, limits)
        .map_err(|e| e.with_member("pickle"))?;
    let mut details = details(&main, main_bytes, false);
    details.records = records;
    details.from_modules = interpreted.from_modules;
    details.root_is_module = interpreted.root_is_module;
    Ok(Checkpoint::new(Format::TorchTar, BTreeMap::new(), interpreted.root).with_details(details))
}
