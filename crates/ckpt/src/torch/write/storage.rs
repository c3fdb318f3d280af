//! Which storages a checkpoint holds, how each is written (`data/N`), and the streaming of
//! their bytes.
//!
//! torch writes a storage once, whole, however many tensors view it; the views keep their
//! offsets and strides. So does ckpt: views whose storages are the same bytes of the
//! source ([`Storage::same_as`]) share one record. A storage whose views all have one dtype
//! with a legacy storage class (`torch.FloatStorage`...) is written as that class, as torch
//! does; the dtypes without one (`uint16`, `float8_*`...) use `torch.storage.UntypedStorage`,
//! and so does a storage viewed under several dtypes, which torch cannot save but loads
//! (`_rebuild_tensor_v3` names each view's dtype).
//!
//! Bytes are always written little-endian: big-endian storages are byteswapped as they
//! stream. Every byte transformation goes through [`Transform`], in one place, so that
//! another one (a dtype cast) can be added there.

use std::collections::HashMap;

use crate::cast::{Cast, TensorCast};
use crate::error::{Error, Result};
use crate::model::{ByteOrder, Dtype, DtypeClass, Storage, TensorView};

/// The largest piece of a storage read, transformed and written at once.
pub(super) const CHUNK_LEN: usize = 1 << 20;

/// How a storage is named in its persistent id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StorageType {
    /// A legacy typed storage class: the id's `numel` counts elements of this dtype.
    Typed(Dtype),
    /// `torch.storage.UntypedStorage`: the id's `numel` counts bytes.
    Untyped,
}

impl StorageType {
    /// The storage class, as a global.
    pub(super) fn global(self) -> (&'static str, &'static str) {
        match self {
            StorageType::Typed(dtype) => ("torch", storage_class(dtype).unwrap_or("ByteStorage")),
            StorageType::Untyped => ("torch.storage", "UntypedStorage"),
        }
    }

    /// The size of the unit the persistent id's `numel` counts.
    fn unit(self) -> u64 {
        match self {
            StorageType::Typed(dtype) => dtype.byte_size().map_or(1, |s| s as u64),
            StorageType::Untyped => 1,
        }
    }
}

/// torch's legacy storage class of a dtype (`torch.storage._dtype_to_storage_type_map`),
/// or `None` for the dtypes saved through `UntypedStorage` and `_rebuild_tensor_v3`.
pub(super) fn storage_class(dtype: Dtype) -> Option<&'static str> {
    Some(match dtype {
        Dtype::Float64 => "DoubleStorage",
        Dtype::Float32 => "FloatStorage",
        Dtype::Float16 => "HalfStorage",
        Dtype::BFloat16 => "BFloat16Storage",
        Dtype::Int64 => "LongStorage",
        Dtype::Int32 => "IntStorage",
        Dtype::Int16 => "ShortStorage",
        Dtype::Int8 => "CharStorage",
        Dtype::UInt8 => "ByteStorage",
        Dtype::Bool => "BoolStorage",
        Dtype::Complex128 => "ComplexDoubleStorage",
        Dtype::Complex64 => "ComplexFloatStorage",
        Dtype::QInt8 => "QInt8Storage",
        Dtype::QUInt8 => "QUInt8Storage",
        Dtype::QInt32 => "QInt32Storage",
        Dtype::QUInt4x2 => "QUInt4x2Storage",
        Dtype::QUInt2x4 => "QUInt2x4Storage",
        _ => return None,
    })
}

/// The dtype torch holds a tensor of `dtype` as: itself, or `float4_e2m1fn_x2` for
/// single float4 values (safetensors `F4`, two to a byte), or `None` when torch has no such
/// dtype (`float6_*`).
pub(super) fn torch_dtype(dtype: Dtype) -> Option<Dtype> {
    match dtype {
        Dtype::Float4E2M1Fn => Some(Dtype::Float4E2M1FnX2),
        Dtype::Float6E2M3Fn | Dtype::Float6E3M2Fn => None,
        other => Some(other),
    }
}

/// What happens to a storage's bytes between the source and the record.
///
/// This is the one place where bytes change on their way out. A dtype cast (same element
/// count, another dtype) would be another variant: it would give the record its length
/// ([`Transform::output_len`]) and turn each chunk of whole source elements into output
/// elements ([`Transform::apply`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transform {
    /// The bytes as they are.
    Identity,
    /// Every `unit` bytes reversed: big-endian elements (or complex parts) made
    /// little-endian.
    ByteSwap {
        /// The size of the swapped unit.
        unit: usize,
    },
}

impl Transform {
    /// The length of the output for `input_len` bytes of source.
    fn output_len(self, input_len: u64) -> u64 {
        match self {
            Transform::Identity | Transform::ByteSwap { .. } => input_len,
        }
    }

    /// The size of the unit a chunk must hold whole numbers of.
    fn unit(self) -> usize {
        match self {
            Transform::Identity => 1,
            Transform::ByteSwap { unit } => unit,
        }
    }

    /// Transforms one chunk of source bytes, into `scratch` when it must change them.
    fn apply<'b>(self, input: &'b [u8], scratch: &'b mut Vec<u8>) -> &'b [u8] {
        match self {
            Transform::Identity => input,
            Transform::ByteSwap { unit } => {
                scratch.clear();
                scratch.extend_from_slice(input);
                // A tail shorter than a unit (bytes no view of the dtype reaches) stays.
                scratch.chunks_exact_mut(unit).for_each(<[u8]>::reverse);
                scratch
            }
        }
    }
}

/// Where a record's bytes come from.
#[derive(Debug, Clone)]
enum Source<'data> {
    /// A storage of the source, whole.
    Storage(Storage<'data>),
    /// A tensor assembled from chunks ([`TensorView::tiles`]): its little-endian elements.
    Assembled(TensorView<'data>),
    /// A tensor cast to another dtype: its elements, cast, row-major; `names`
    /// are the dotted names of the tensors written from it (tied ones share it), for the
    /// report.
    Cast {
        view: TensorView<'data>,
        cast: Cast,
        names: Vec<String>,
    },
}

/// One `data/N` record: which bytes, under which storage class, transformed how.
#[derive(Debug, Clone)]
pub(super) struct Record<'data> {
    source: Source<'data>,
    /// How many source bytes are written (a typed storage holds whole elements only).
    source_len: usize,
    pub(super) storage_type: StorageType,
    transform: Transform,
}

impl Record<'_> {
    /// The length of the record.
    pub(super) fn len(&self) -> u64 {
        self.transform.output_len(self.source_len as u64)
    }

    /// The persistent id's `numel`: elements of a typed storage, bytes of an untyped one.
    pub(super) fn numel(&self) -> u64 {
        self.len() / self.storage_type.unit()
    }

    /// Hands the record's bytes to `emit` in pieces of at most [`CHUNK_LEN`] bytes,
    /// borrowed from the source when they need no change. Memory use does not depend on
    /// the storage's size.
    /// Returns what a cast did to the values, for each tensor of a cast record.
    pub(super) fn stream(
        &self,
        mut emit: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<Vec<TensorCast>> {
        let storage = match &self.source {
            Source::Storage(storage) => storage,
            Source::Assembled(view) => return view.for_each_chunk(emit).map(|()| Vec::new()),
            Source::Cast { view, cast, names } => {
                let view = crate::cast::CastView::with_cast(view, *cast)?;
                let stats = view.for_each_chunk(emit)?.unwrap_or_default();
                return Ok(names
                    .iter()
                    .map(|name| TensorCast {
                        name: name.clone(),
                        from: cast.from(),
                        to: cast.to(),
                        stats,
                    })
                    .collect());
            }
        };
        let bytes = storage
            .bytes()
            .get(..self.source_len)
            .ok_or_else(|| Error::malformed("a storage is shorter than planned"))?;
        // Whole units per chunk, so that no unit is split between two chunks.
        let unit = self.transform.unit().max(1);
        let chunk_len = CHUNK_LEN / unit * unit;
        let mut scratch = Vec::new();
        for chunk in bytes.chunks(chunk_len.max(unit)) {
            emit(self.transform.apply(chunk, &mut scratch))?;
        }
        Ok(Vec::new())
    }
}

/// The storages of a tree: found first ([`Registry::add_view`], which decides each
/// storage's class and transform from all its views), then numbered in the order the
/// pickle first refers to them ([`Registry::reference`]), as torch numbers them.
#[derive(Debug, Default)]
pub(super) struct Registry<'data> {
    /// Storages by identity (address and length of their bytes).
    by_identity: HashMap<(usize, usize), usize>,
    groups: Vec<Group<'data>>,
    /// The records, in key order (`data/0`, `data/1`...).
    records: Vec<Record<'data>>,
    /// Records of cast tensors, by the view they cast.
    casts: HashMap<CastKey, usize>,
}

/// A view of a storage, cast: the same key is the same cast tensor.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CastKey {
    storage: (usize, usize),
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
    to: Dtype,
}

/// A storage and the views of it found in the tree.
#[derive(Debug)]
struct Group<'data> {
    storage: Storage<'data>,
    /// The (torch) dtypes the storage is viewed as, in order of first appearance.
    dtypes: Vec<Dtype>,
    /// The record's key, once the pickle refers to it.
    key: Option<usize>,
}

/// A storage as a pickle refers to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reference {
    /// The record's key (`"0"` for `data/0`).
    pub(super) key: String,
    /// The storage class.
    pub(super) storage_type: StorageType,
    /// The persistent id's `numel`.
    pub(super) numel: u64,
}

impl<'data> Registry<'data> {
    /// Notes that `view` (of torch dtype `dtype`) will be written.
    pub(super) fn add_view(&mut self, view: &TensorView<'data>, dtype: Dtype) {
        // Empty storages and chunk-assembled tensors share nothing.
        let Some(identity) = view.storage_identity() else {
            return;
        };
        match self.by_identity.get(&identity) {
            Some(&index) => {
                if let Some(group) = self.groups.get_mut(index)
                    && !group.dtypes.contains(&dtype)
                {
                    group.dtypes.push(dtype);
                }
            }
            None => {
                self.by_identity.insert(identity, self.groups.len());
                self.groups.push(Group {
                    storage: view.storage().clone(),
                    dtypes: vec![dtype],
                    key: None,
                });
            }
        }
    }

    /// How the storage of `view` (seen as `dtype`) is written, or why it cannot be.
    pub(super) fn resolve(
        &self,
        view: &TensorView<'data>,
        dtype: Dtype,
    ) -> Result<(StorageType, Transform), String> {
        let Some(group) = self.group_index(view).and_then(|i| self.groups.get(i)) else {
            // An empty storage: nothing to share, swap or check.
            return Ok((simple_type(dtype), Transform::Identity));
        };
        let storage_type = match group.dtypes.as_slice() {
            [one] => simple_type(*one),
            dtypes if dtypes.iter().any(|d| d.class() == DtypeClass::Quantized) => {
                return Err(format!(
                    "its storage is also viewed as {}: a quantized storage holds one dtype",
                    names(dtypes)
                ));
            }
            _ => StorageType::Untyped,
        };
        let transform = match group.storage.byte_order() {
            ByteOrder::Little => Transform::Identity,
            ByteOrder::Big => {
                let mut units: Vec<usize> = group.dtypes.iter().map(|d| d.swap_size()).collect();
                units.sort_unstable();
                units.dedup();
                match units.as_slice() {
                    [1] => Transform::Identity,
                    [unit] => Transform::ByteSwap { unit: *unit },
                    _ => {
                        return Err(format!(
                            "its big-endian storage is viewed as {}, whose elements swap \
                             differently: its little-endian bytes are ambiguous",
                            names(&group.dtypes)
                        ));
                    }
                }
            }
        };
        Ok((storage_type, transform))
    }

    fn group_index(&self, view: &TensorView<'data>) -> Option<usize> {
        view.storage_identity()
            .and_then(|identity| self.by_identity.get(&identity).copied())
    }

    /// A storage of its own for `view` cast by `cast` (dense, row-major, little-endian),
    /// shared by the same view of the same storage (tied weights stay tied); `name` is
    /// the tensor's dotted name, for the report.
    pub(super) fn cast(
        &mut self,
        view: &TensorView<'data>,
        cast: Cast,
        name: &str,
    ) -> Result<Reference, String> {
        let identity = view.storage_identity().map(|storage| CastKey {
            storage,
            shape: view.shape().to_vec(),
            strides: view.strides().to_vec(),
            offset: view.storage_offset(),
            to: cast.to(),
        });
        if let Some(&key) = identity.as_ref().and_then(|id| self.casts.get(id)) {
            if let Some(Record {
                source: Source::Cast { names, .. },
                ..
            }) = self.records.get_mut(key)
            {
                names.push(name.to_owned());
            }
            return self.reference_to(key);
        }
        let len = cast.output_len(view.nbytes()).map_err(|e| e.to_string())?;
        self.records.push(Record {
            source: Source::Cast {
                view: view.clone(),
                cast,
                names: vec![name.to_owned()],
            },
            source_len: len,
            storage_type: simple_type(cast.to()),
            transform: Transform::Identity,
        });
        let key = self.records.len() - 1;
        if let Some(identity) = identity {
            self.casts.insert(identity, key);
        }
        self.reference_to(key)
    }

    /// The storage of `view` (seen as `dtype`) as the pickle refers to it, numbering it on
    /// first use. Empty storages get a record each.
    pub(super) fn reference(
        &mut self,
        view: &TensorView<'data>,
        dtype: Dtype,
    ) -> Result<Reference, String> {
        let (storage_type, transform) = self.resolve(view, dtype)?;
        if view.tiles().is_some() {
            // Assembled from chunks: its own storage, produced in order.
            self.records.push(Record {
                source: Source::Assembled(view.clone()),
                source_len: view.nbytes(),
                storage_type,
                transform: Transform::Identity,
            });
            return self.reference_to(self.records.len() - 1);
        }
        let Some(index) = self.group_index(view) else {
            let key = self.push(view.storage().clone(), storage_type, transform);
            return self.reference_to(key);
        };
        let (storage, existing) = match self.groups.get(index) {
            Some(group) => (group.storage.clone(), group.key),
            None => return Err("its storage was not planned (a bug in ckpt)".to_owned()),
        };
        let key = match existing {
            Some(key) => key,
            None => {
                let key = self.push(storage, storage_type, transform);
                if let Some(group) = self.groups.get_mut(index) {
                    group.key = Some(key);
                }
                key
            }
        };
        self.reference_to(key)
    }

    /// A storage that owns `bytes` (little-endian elements of `dtype`, which has a storage
    /// class), referred to once: quantization parameters.
    pub(super) fn owned(&mut self, bytes: Vec<u8>, dtype: Dtype) -> Result<Reference, String> {
        let storage = Storage::owned(bytes, ByteOrder::Little);
        let key = self.push(storage, StorageType::Typed(dtype), Transform::Identity);
        self.reference_to(key)
    }

    fn push(
        &mut self,
        storage: Storage<'data>,
        storage_type: StorageType,
        transform: Transform,
    ) -> usize {
        let len = storage.bytes().len();
        let unit = usize::try_from(storage_type.unit()).unwrap_or(1).max(1);
        self.records.push(Record {
            source: Source::Storage(storage),
            // A typed storage holds whole elements; no view reaches a shorter tail.
            source_len: len / unit * unit,
            storage_type,
            transform,
        });
        self.records.len() - 1
    }

    fn reference_to(&self, key: usize) -> Result<Reference, String> {
        let record = self
            .records
            .get(key)
            .ok_or_else(|| "a storage record is missing (a bug in ckpt)".to_owned())?;
        Ok(Reference {
            key: key.to_string(),
            storage_type: record.storage_type,
            numel: record.numel(),
        })
    }

    /// The records, in key order.
    pub(super) fn into_records(self) -> Vec<Record<'data>> {
        self.records
    }
}

/// A storage viewed under one dtype: its legacy class when it has one.
fn simple_type(dtype: Dtype) -> StorageType {
    match storage_class(dtype) {
        Some(_) => StorageType::Typed(dtype),
        None => StorageType::Untyped,
    }
}

fn names(dtypes: &[Dtype]) -> String {
    let names: Vec<&str> = dtypes.iter().map(|d| d.name()).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(bytes: &[u8], dtype: Dtype, order: ByteOrder) -> TensorView<'_> {
        let n = bytes.len() / dtype.byte_size().unwrap();
        TensorView::contiguous(dtype, vec![n], Storage::new(bytes, order)).unwrap()
    }

    fn collect(record: &Record<'_>) -> (Vec<u8>, usize) {
        let mut out = Vec::new();
        let mut chunks = 0;
        record
            .stream(|chunk| {
                assert!(chunk.len() <= CHUNK_LEN);
                out.extend_from_slice(chunk);
                chunks += 1;
                Ok(())
            })
            .unwrap();
        (out, chunks)
    }

    #[test]
    fn views_of_one_storage_share_one_record() {
        let bytes: Vec<u8> = (0..24).collect();
        let storage = Storage::new(&bytes, ByteOrder::Little);
        let whole = TensorView::contiguous(Dtype::Float32, vec![6], storage.clone()).unwrap();
        let part = TensorView::strided(Dtype::Float32, vec![2], vec![2], 1, storage).unwrap();
        let other = view(&bytes[..8], Dtype::Int64, ByteOrder::Little);
        let mut registry = Registry::default();
        for v in [&whole, &part, &other] {
            registry.add_view(v, v.dtype());
        }
        let a = registry.reference(&other, Dtype::Int64).unwrap();
        let b = registry.reference(&part, Dtype::Float32).unwrap();
        let c = registry.reference(&whole, Dtype::Float32).unwrap();
        assert_eq!((a.key.as_str(), a.numel), ("0", 1));
        assert_eq!(a.storage_type, StorageType::Typed(Dtype::Int64));
        assert_eq!(b, c);
        assert_eq!((b.key.as_str(), b.numel), ("1", 6));
        assert_eq!(b.storage_type.global(), ("torch", "FloatStorage"));
        let records = registry.into_records();
        assert_eq!(records.len(), 2);
        assert_eq!(collect(&records[1]).0, bytes);
    }

    #[test]
    fn new_dtypes_and_mixed_views_are_untyped() {
        let bytes = [0u8; 8];
        let storage = Storage::new(&bytes, ByteOrder::Little);
        let u16s = TensorView::contiguous(Dtype::UInt16, vec![4], storage.clone()).unwrap();
        let f32s = TensorView::contiguous(Dtype::Float32, vec![2], storage).unwrap();
        let mut registry = Registry::default();
        registry.add_view(&u16s, Dtype::UInt16);
        assert_eq!(
            registry.resolve(&u16s, Dtype::UInt16).unwrap().0,
            StorageType::Untyped
        );
        registry.add_view(&f32s, Dtype::Float32);
        let reference = registry.reference(&f32s, Dtype::Float32).unwrap();
        assert_eq!(reference.storage_type, StorageType::Untyped);
        assert_eq!(reference.numel, 8);
        assert_eq!(
            reference.storage_type.global(),
            ("torch.storage", "UntypedStorage")
        );
    }

    #[test]
    fn big_endian_storages_are_swapped_per_element() {
        let values: Vec<u8> = [0x0102_0304u32, 0x0506_0708]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let v = view(&values, Dtype::UInt32, ByteOrder::Big);
        let mut registry = Registry::default();
        registry.add_view(&v, Dtype::UInt32);
        registry.reference(&v, Dtype::UInt32).unwrap();
        let records = registry.into_records();
        let le: Vec<u8> = [0x0102_0304u32, 0x0506_0708]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(collect(&records[0]).0, le);
        // Complex numbers swap each part.
        let parts: Vec<u8> = [1.5f64, -2.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let c = view(&parts, Dtype::Complex128, ByteOrder::Big);
        let mut registry = Registry::default();
        registry.add_view(&c, Dtype::Complex128);
        assert_eq!(
            registry.resolve(&c, Dtype::Complex128).unwrap().1,
            Transform::ByteSwap { unit: 8 }
        );
        // Single bytes never swap; two sizes of swap are ambiguous.
        let bytes = [1u8, 2, 3, 4];
        let storage = Storage::new(&bytes, ByteOrder::Big);
        let u8s = TensorView::contiguous(Dtype::UInt8, vec![4], storage.clone()).unwrap();
        let i32s = TensorView::contiguous(Dtype::Int32, vec![1], storage).unwrap();
        let mut registry = Registry::default();
        registry.add_view(&u8s, Dtype::UInt8);
        assert_eq!(
            registry.resolve(&u8s, Dtype::UInt8).unwrap().1,
            Transform::Identity
        );
        registry.add_view(&i32s, Dtype::Int32);
        let error = registry.resolve(&u8s, Dtype::UInt8).unwrap_err();
        assert!(error.contains("uint8, int32"), "{error}");
    }

    #[test]
    fn large_storages_stream_in_bounded_chunks() {
        let bytes: Vec<u8> = (0..(3 * CHUNK_LEN + 6))
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        let v = view(&bytes, Dtype::Int16, ByteOrder::Big);
        let mut registry = Registry::default();
        registry.add_view(&v, Dtype::Int16);
        registry.reference(&v, Dtype::Int16).unwrap();
        let records = registry.into_records();
        let (out, chunks) = collect(&records[0]);
        assert_eq!(chunks, 4);
        let swapped: Vec<u8> = bytes.chunks(2).flat_map(|c| [c[1], c[0]]).collect();
        assert_eq!(out, swapped);
    }

    #[test]
    fn typed_records_hold_whole_elements() {
        // 10 bytes viewed as float32: torch's FloatStorage of 2 elements (8 bytes).
        let bytes = [0u8; 10];
        let storage = Storage::new(&bytes, ByteOrder::Little);
        let v = TensorView::strided(Dtype::Float32, vec![2], vec![1], 0, storage).unwrap();
        let mut registry = Registry::default();
        registry.add_view(&v, Dtype::Float32);
        let reference = registry.reference(&v, Dtype::Float32).unwrap();
        assert_eq!(reference.numel, 2);
        assert_eq!(registry.into_records()[0].len(), 8);
    }

    #[test]
    fn empty_storages_are_never_shared() {
        let a = TensorView::contiguous(
            Dtype::Float32,
            vec![0],
            Storage::new(&[], ByteOrder::Little),
        )
        .unwrap();
        let b = TensorView::contiguous(Dtype::UInt16, vec![0], Storage::new(&[], ByteOrder::Big))
            .unwrap();
        let mut registry = Registry::default();
        registry.add_view(&a, Dtype::Float32);
        registry.add_view(&b, Dtype::UInt16);
        let ra = registry.reference(&a, Dtype::Float32).unwrap();
        let rb = registry.reference(&b, Dtype::UInt16).unwrap();
        assert_eq!((ra.key.as_str(), ra.numel), ("0", 0));
        assert_eq!(ra.storage_type, StorageType::Typed(Dtype::Float32));
        assert_eq!(
            (rb.key.as_str(), rb.storage_type),
            ("1", StorageType::Untyped)
        );
    }

    #[test]
    fn quantized_storages_hold_one_dtype() {
        let bytes = [0u8; 4];
        let storage = Storage::new(&bytes, ByteOrder::Little);
        let q = TensorView::contiguous(Dtype::QInt8, vec![4], storage.clone()).unwrap();
        let u = TensorView::contiguous(Dtype::UInt8, vec![4], storage).unwrap();
        let mut registry = Registry::default();
        registry.add_view(&q, Dtype::QInt8);
        assert_eq!(
            registry.resolve(&q, Dtype::QInt8).unwrap().0,
            StorageType::Typed(Dtype::QInt8)
        );
        registry.add_view(&u, Dtype::UInt8);
        assert!(
            registry
                .resolve(&q, Dtype::QInt8)
                .unwrap_err()
                .contains("quantized")
        );
    }
}
