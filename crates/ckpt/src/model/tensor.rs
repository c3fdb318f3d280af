//! Tensor views: dtype, shape and strides over bytes borrowed from the source file.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::shape::{self, SizeError};
use super::tiles::{SharedTiling, Tile, Tiling};
use super::{Dtype, DtypeClass, Value};
use crate::error::{Error, Result};
use crate::limits::{Limits, MAX_EXPANDED_LEN, MAX_EXPANSION};

/// The size of the pieces in which tensor bytes are handed out ([`TensorView::for_each_chunk`]).
const CHUNK_LEN: usize = 1 << 20;

/// The byte order of multi-byte elements in a storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// Least significant byte first (every safetensors file, torch on common hosts).
    Little,
    /// Most significant byte first (torch files written on s390x and other big-endian hosts).
    Big,
}

/// The bytes a tensor reads its elements from: borrowed from the source (an mmap), or,
/// for the rare data that does not lie in the file as is (numpy arrays inside a pickle,
/// reassembled chunks), owned and shared.
#[derive(Debug, Clone)]
pub struct Storage<'data> {
    bytes: Bytes<'data>,
    byte_order: ByteOrder,
    file_offset: Option<u64>,
    file: Option<Arc<str>>,
}

#[derive(Debug, Clone)]
enum Bytes<'data> {
    Borrowed(&'data [u8]),
    Shared(Arc<[u8]>),
}

impl<'data> Storage<'data> {
    /// A storage over `bytes`, whose multi-byte elements are in `byte_order`.
    pub fn new(bytes: &'data [u8], byte_order: ByteOrder) -> Self {
        Storage {
            bytes: Bytes::Borrowed(bytes),
            byte_order,
            file_offset: None,
            file: None,
        }
    }

    /// A storage that owns its bytes (shared between the views that use it).
    pub fn owned(bytes: impl Into<Arc<[u8]>>, byte_order: ByteOrder) -> Self {
        Storage {
            bytes: Bytes::Shared(bytes.into()),
            byte_order,
            file_offset: None,
            file: None,
        }
    }

    /// Records where these bytes start in the source file (used in reports and errors).
    #[must_use]
    pub fn at_file_offset(mut self, offset: u64) -> Self {
        self.file_offset = Some(offset);
        self
    }

    /// Records that these bytes lie in `file`, one file of a checkpoint stored in several
    /// (a shard, a `.distcp` file), whose bytes from `base` on were read as the container
    /// that holds this storage: [`Storage::file_offset`] then counts from the start of
    /// `file`.
    #[must_use]
    pub fn in_file(mut self, file: Arc<str>, base: u64) -> Self {
        self.file = Some(file);
        self.file_offset = self.file_offset.and_then(|o| o.checked_add(base));
        self
    }

    /// The file of a multi-file checkpoint that holds these bytes (see [`Storage::in_file`]);
    /// `None` for a checkpoint read from one file.
    pub fn file(&self) -> Option<&str> {
        self.file.as_deref()
    }

    /// The storage's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Borrowed(bytes) => bytes,
            Bytes::Shared(bytes) => bytes,
        }
    }

    /// The bytes `start..end` of this storage, as a storage of their own (zero copy for
    /// borrowed bytes), or `None` when the range is out of bounds.
    pub fn slice(&self, start: usize, end: usize) -> Option<Storage<'data>> {
        let bytes = match &self.bytes {
            Bytes::Borrowed(bytes) => Bytes::Borrowed(bytes.get(start..end)?),
            Bytes::Shared(bytes) => Bytes::Shared(Arc::from(bytes.get(start..end)?)),
        };
        Some(Storage {
            bytes,
            byte_order: self.byte_order,
            file_offset: self.file_offset.and_then(|o| o.checked_add(start as u64)),
            file: self.file.clone(),
        })
    }

    /// Whether two storages are the same bytes (views of one torch storage).
    pub fn same_as(&self, other: &Storage<'_>) -> bool {
        let (a, b) = (self.bytes(), other.bytes());
        a.as_ptr() == b.as_ptr() && a.len() == b.len()
    }

    /// The byte order of the storage's elements.
    pub fn byte_order(&self) -> ByteOrder {
        self.byte_order
    }

    /// Where the storage starts in the source file, when known.
    pub fn file_offset(&self) -> Option<u64> {
        self.file_offset
    }
}

/// How the integers of a quantized tensor (`qint8`...) map to real numbers:
/// `real = (int - zero_point) * scale`.
#[derive(Debug, Clone, PartialEq)]
pub enum Quantization {
    /// One scale and zero point for the whole tensor.
    PerTensor {
        /// The scale.
        scale: f64,
        /// The zero point.
        zero_point: i64,
    },
    /// One scale and zero point per index along `axis`.
    PerChannel {
        /// The scales.
        scales: Vec<f64>,
        /// The zero points (integers, except for `per_channel_affine_float_qparams`).
        zero_points: Vec<f64>,
        /// The dimension they run along.
        axis: usize,
        /// Whether this is torch's `per_channel_affine_float_qparams` scheme: float32
        /// scales and float zero points, rather than float64 scales and integer zero
        /// points (`per_channel_affine`). torch tells them apart by the zero points' dtype.
        float_qparams: bool,
    },
}

/// A tensor: a dtype, a shape, and strides over a [`Storage`] it borrows (zero copy).
///
/// Construction checks that every element the view addresses lies inside the storage, so
/// reading a view never fails for lack of bytes. Strides and the storage offset count
/// elements, as in torch; a dense row-major view has [`shape::contiguous_strides`].
///
/// Sub-byte dtypes (`float4_e2m1fn`, `float6_*`) exist only packed, so their views are
/// always dense and start at the beginning of their storage.
///
/// A tensor stored in several chunks (a sharded `torch.distributed.checkpoint` save) is a
/// *tiled* view ([`TensorView::tiled`]): it has no storage of its own, but [`Tile`]s, each a
/// view placed at an offset in the whole. Its bytes are produced in row-major order from the
/// tiles, without ever being concatenated in memory.
#[derive(Debug, Clone)]
pub struct TensorView<'data> {
    dtype: Dtype,
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
    numel: usize,
    nbytes: usize,
    storage: Storage<'data>,
    conj: bool,
    neg: bool,
    quantization: Option<Box<Quantization>>,
    tiling: Option<SharedTiling<'data>>,
    requires_grad: bool,
    parameter: bool,
    attributes: Vec<(String, Value<'data>)>,
}

fn size_error(dtype: Dtype, shape: &[usize], error: SizeError) -> Error {
    match error {
        SizeError::Overflow => Error::malformed(format!(
            "shape {shape:?} of {dtype} elements is too large to be real (its size overflows 64 bits)"
        )),
        SizeError::NotWholeBytes { bits } => Error::malformed(format!(
            "shape {shape:?} of {dtype} elements takes {bits} bits, which is not a whole number of bytes"
        )),
    }
}

impl<'data> TensorView<'data> {
    /// A dense row-major view of all of `storage`, which must hold exactly the bytes that
    /// `shape` elements of `dtype` take.
    pub fn contiguous(dtype: Dtype, shape: Vec<usize>, storage: Storage<'data>) -> Result<Self> {
        let numel = shape::numel(&shape).map_err(|e| size_error(dtype, &shape, e))?;
        let nbytes = shape::packed_len(dtype, numel).map_err(|e| size_error(dtype, &shape, e))?;
        if storage.bytes().len() != nbytes {
            return Err(Error::malformed(format!(
                "{dtype} {shape:?} needs {nbytes} bytes but its data holds {}",
                storage.bytes().len()
            )));
        }
        let strides =
            shape::contiguous_strides(&shape).map_err(|e| size_error(dtype, &shape, e))?;
        Ok(TensorView {
            dtype,
            shape,
            strides,
            offset: 0,
            numel,
            nbytes,
            storage,
            conj: false,
            neg: false,
            quantization: None,
            tiling: None,
            requires_grad: false,
            parameter: false,
            attributes: Vec::new(),
        })
    }

    /// A view of `shape` elements of `dtype` at `offset` elements into `storage`, stepping
    /// `strides` elements along each dimension (zero strides repeat an element).
    pub fn strided(
        dtype: Dtype,
        shape: Vec<usize>,
        strides: Vec<usize>,
        offset: usize,
        storage: Storage<'data>,
    ) -> Result<Self> {
        if strides.len() != shape.len() {
            return Err(Error::malformed(format!(
                "shape {shape:?} has {} dimensions but strides {strides:?} have {}",
                shape.len(),
                strides.len()
            )));
        }
        let numel = shape::numel(&shape).map_err(|e| size_error(dtype, &shape, e))?;
        let nbytes = shape::packed_len(dtype, numel).map_err(|e| size_error(dtype, &shape, e))?;
        let Some(element) = dtype.byte_size() else {
            if offset == 0 && shape::is_contiguous(&shape, &strides) {
                return Self::contiguous(dtype, shape, storage);
            }
            return Err(Error::unsupported(format!(
                "a strided or offset view of sub-byte dtype {dtype} cannot be read"
            )));
        };
        if numel > 0 {
            let last = shape
                .iter()
                .zip(&strides)
                .try_fold(offset, |acc, (&dim, &stride)| {
                    (dim - 1)
                        .checked_mul(stride)
                        .and_then(|step| acc.checked_add(step))
                })
                .and_then(|last| last.checked_add(1))
                .and_then(|count| count.checked_mul(element));
            match last {
                Some(end) if end <= storage.bytes().len() => {}
                _ => {
                    return Err(Error::malformed(format!(
                        "view of {dtype} {shape:?} with strides {strides:?} at offset {offset} \
                         reaches past the end of its storage of {} bytes",
                        storage.bytes().len()
                    )));
                }
            }
        }
        Ok(TensorView {
            dtype,
            shape,
            strides,
            offset,
            numel,
            nbytes,
            storage,
            conj: false,
            neg: false,
            quantization: None,
            tiling: None,
            requires_grad: false,
            parameter: false,
            attributes: Vec::new(),
        })
    }

    /// A tensor of `shape` elements of `dtype` assembled from `tiles`, which must cover it
    /// exactly: every element in exactly one tile (tiles without elements are allowed, and
    /// hold nothing). Nothing is copied: the tiles keep borrowing their storages.
    ///
    /// A single tile that is the whole tensor is returned as it is (an ordinary view). The
    /// tiled view is dense and row-major ([`TensorView::strides`]), has an empty
    /// [`TensorView::storage`] and no [`TensorView::data`]: its bytes come from
    /// [`TensorView::for_each_chunk`].
    ///
    /// Fails when the tiles leave a gap, overlap, reach past `shape`, or differ in dtype or
    /// rank from the whole; the message names the elements or the tiles concerned.
    pub fn tiled(dtype: Dtype, shape: Vec<usize>, tiles: Vec<Tile<'data>>) -> Result<Self> {
        Self::tiled_with(dtype, shape, tiles, &Limits::default())
    }

    /// [`TensorView::tiled`] within `limits` (`tiles`, `rank`).
    pub fn tiled_with(
        dtype: Dtype,
        shape: Vec<usize>,
        tiles: Vec<Tile<'data>>,
        limits: &Limits,
    ) -> Result<Self> {
        let numel = shape::numel(&shape).map_err(|e| size_error(dtype, &shape, e))?;
        let nbytes = shape::packed_len(dtype, numel).map_err(|e| size_error(dtype, &shape, e))?;
        let whole = |tile: &Tile<'_>| {
            tile.offsets().iter().all(|&o| o == 0)
                && tile.view().shape() == shape.as_slice()
                && tile.view().dtype() == dtype
        };
        if let [tile] = tiles.as_slice()
            && whole(tile)
            && numel > 0
            && tile.view().quantization().is_none()
        {
            return Ok(tile.view().clone());
        }
        let strides =
            shape::contiguous_strides(&shape).map_err(|e| size_error(dtype, &shape, e))?;
        let tiling = Tiling::new(dtype, &shape, tiles, limits)?;
        Ok(TensorView {
            dtype,
            shape,
            strides,
            offset: 0,
            numel,
            nbytes,
            storage: Storage::new(&[], ByteOrder::Little),
            conj: false,
            neg: false,
            quantization: None,
            tiling: Some(Arc::new(tiling)),
            requires_grad: false,
            parameter: false,
            attributes: Vec::new(),
        })
    }

    /// The tiles of a tensor assembled from chunks ([`TensorView::tiled`]), in the order
    /// given; `None` for an ordinary view.
    pub fn tiles(&self) -> Option<&[Tile<'data>]> {
        self.tiling.as_deref().map(Tiling::tiles)
    }

    /// The files of a multi-file checkpoint that hold the tensor's bytes (see
    /// [`Storage::in_file`]), each once, in the order of the tiles; empty for a checkpoint
    /// read from one file.
    pub fn files(&self) -> Vec<&str> {
        let mut files: Vec<&str> = Vec::new();
        match self.tiles() {
            Some(tiles) => {
                for file in tiles.iter().filter_map(|t| t.view().storage().file()) {
                    if !files.contains(&file) {
                        files.push(file);
                    }
                }
            }
            None => files.extend(self.storage.file()),
        }
        files
    }

    /// Records that the view's bytes lie in `file` (see [`Storage::in_file`]). Tiled views
    /// are left as they are: their tiles know their files.
    #[must_use]
    pub fn in_file(mut self, file: Arc<str>, base: u64) -> Self {
        if self.tiling.is_none() {
            self.storage = self.storage.in_file(file, base);
        }
        self
    }

    /// Marks the view as conjugated (torch's conj bit): its elements read as the complex
    /// conjugates of the stored ones. Meaningful for complex dtypes only, and not for tiled
    /// views (whose tiles carry their own bits).
    #[must_use]
    pub fn with_conj(mut self, conj: bool) -> Self {
        self.conj = conj && self.dtype.class() == DtypeClass::Complex && self.tiling.is_none();
        self
    }

    /// Marks the view as negated (torch's neg bit): its elements read as the negatives of
    /// the stored ones. Not for tiled views (whose tiles carry their own bits).
    #[must_use]
    pub fn with_neg(mut self, neg: bool) -> Self {
        self.neg = neg && self.tiling.is_none();
        self
    }

    /// Sets the quantization parameters of a quantized tensor.
    #[must_use]
    pub fn with_quantization(mut self, quantization: Quantization) -> Self {
        self.quantization = Some(Box::new(quantization));
        self
    }

    /// The quantization parameters, for quantized dtypes.
    pub fn quantization(&self) -> Option<&Quantization> {
        self.quantization.as_deref()
    }

    /// Sets whether the tensor requires gradients (torch's `requires_grad` flag, saved
    /// with the tensor; it does not change the elements).
    #[must_use]
    pub fn with_requires_grad(mut self, requires_grad: bool) -> Self {
        self.requires_grad = requires_grad;
        self
    }

    /// Whether the tensor requires gradients.
    pub fn requires_grad(&self) -> bool {
        self.requires_grad
    }

    /// Marks the tensor as a `torch.nn.Parameter` (what `torch.load` rebuilds it as).
    #[must_use]
    pub fn with_parameter(mut self, parameter: bool) -> Self {
        self.parameter = parameter;
        self
    }

    /// The tensor as `tensor.detach()` gives it: a plain tensor (not a `Parameter`) that
    /// does not require gradients and has no Python attributes, on the same elements. What
    /// `module.state_dict()` holds.
    #[must_use]
    pub fn detached(mut self) -> Self {
        self.parameter = false;
        self.requires_grad = false;
        self.attributes = Vec::new();
        self
    }

    /// Whether the tensor is a `torch.nn.Parameter`.
    pub fn is_parameter(&self) -> bool {
        self.parameter
    }

    /// Sets the Python attributes of the tensor object (`p.tag = "lora"`), by name, which
    /// torch saves next to the data (`_rebuild_parameter_with_state`,
    /// `_rebuild_from_type_v2`).
    #[must_use]
    pub fn with_attributes(mut self, attributes: Vec<(String, Value<'data>)>) -> Self {
        self.attributes = attributes;
        self
    }

    /// The Python attributes of the tensor object, in the file's order.
    pub fn attributes(&self) -> &[(String, Value<'data>)] {
        &self.attributes
    }

    /// Whether the conj bit is set.
    pub fn is_conj(&self) -> bool {
        self.conj
    }

    /// Whether the neg bit is set.
    pub fn is_neg(&self) -> bool {
        self.neg
    }

    /// The element type.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// The size of each dimension (`[]` for a scalar).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The step, in elements, between neighbours along each dimension.
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    /// Where the first element is, in elements from the start of the storage.
    pub fn storage_offset(&self) -> usize {
        self.offset
    }

    /// The storage the view reads from (empty for a tensor assembled from chunks: see
    /// [`TensorView::tiles`]).
    pub fn storage(&self) -> &Storage<'data> {
        &self.storage
    }

    /// What identifies the bytes the view reads, to find views that share them (tied
    /// weights): the address and length of its storage. `None` when it shares nothing: an
    /// empty storage, or a tensor assembled from chunks.
    pub fn storage_identity(&self) -> Option<(usize, usize)> {
        let bytes = self.storage.bytes();
        (self.tiling.is_none() && !bytes.is_empty())
            .then_some((bytes.as_ptr() as usize, bytes.len()))
    }

    /// How many bytes a writer stores for the view's storage, as torch counts
    /// `untyped_storage().nbytes()`: all of its storage, or for a tensor assembled from
    /// chunks, its own bytes.
    pub fn storage_nbytes(&self) -> usize {
        match self.tiling {
            Some(_) => self.nbytes,
            None => self.storage.bytes().len(),
        }
    }

    /// The number of elements (1 for a scalar, 0 if any dimension is 0).
    pub fn numel(&self) -> usize {
        self.numel
    }

    /// The number of bytes the elements take when packed densely.
    pub fn nbytes(&self) -> usize {
        self.nbytes
    }

    /// Whether the view is dense and row-major.
    pub fn is_contiguous(&self) -> bool {
        shape::is_contiguous(&self.shape, &self.strides)
    }

    fn start_byte(&self) -> Option<usize> {
        match self.dtype.byte_size() {
            Some(element) => self.offset.checked_mul(element),
            None => Some(0),
        }
    }

    /// The elements as packed row-major little-endian bytes, borrowed without a copy, when
    /// the storage already holds them that way (dense, little-endian or single-byte, and
    /// without a conj or neg bit to apply).
    pub fn data(&self) -> Option<&[u8]> {
        let swaps = self.storage.byte_order == ByteOrder::Big && self.dtype.swap_size() > 1;
        if swaps || self.conj || self.neg || self.tiling.is_some() || !self.is_contiguous() {
            return None;
        }
        let start = self.start_byte()?;
        self.storage
            .bytes()
            .get(start..start.checked_add(self.nbytes)?)
    }

    /// Where the elements lie in the source file (`start..end`), when they are dense and
    /// the storage knows its file offset.
    pub fn file_range(&self) -> Option<(u64, u64)> {
        if self.tiling.is_some() || !self.is_contiguous() {
            return None;
        }
        let start = self
            .storage
            .file_offset?
            .checked_add(u64::try_from(self.start_byte()?).ok()?)?;
        Some((start, start.checked_add(u64::try_from(self.nbytes).ok()?)?))
    }

    /// Whether ckpt agrees to produce this tensor's bytes. A view may repeat a small storage
    /// through zero strides into an arbitrarily large tensor (torch's `expand`); ckpt hands
    /// out at most 64 times the storage's size beyond 1 GiB, so that hashing or converting a crafted file cannot run for days or fill a
    /// disk. [`TensorView::for_each_chunk`] checks this first; writers check it before
    /// writing anything.
    pub fn check_producible(&self) -> Result<()> {
        if let Some(tiles) = self.tiles() {
            return tiles
                .iter()
                .try_for_each(|tile| tile.view().check_producible());
        }
        let stored = self.storage.bytes().len();
        if self.nbytes > MAX_EXPANDED_LEN.max(stored.saturating_mul(MAX_EXPANSION)) {
            return Err(Error::limit(format!(
                "a view repeats {stored} bytes of storage into {} bytes (zero strides); ckpt \
                 produces at most {MAX_EXPANSION} times a storage's size beyond {MAX_EXPANDED_LEN} bytes",
                self.nbytes
            ))
            .with_hint("such views come from `expand()` or from a crafted file; the tensor can still be listed without its elements"));
        }
        Ok(())
    }

    /// Hands the elements to `emit` as packed row-major little-endian bytes, in pieces of
    /// at most 1 MiB, whatever the strides and byte order of the storage. Dense
    /// little-endian data is handed out without a copy; memory use does not grow with the
    /// tensor.
    pub fn for_each_chunk(&self, mut emit: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        if self.numel == 0 {
            return Ok(());
        }
        self.check_producible()?;
        if let Some(tiling) = &self.tiling {
            return tiling.for_each_chunk(self.nbytes, &mut emit);
        }
        if let Some(bytes) = self.data() {
            for chunk in bytes.chunks(CHUNK_LEN) {
                emit(chunk)?;
            }
            return Ok(());
        }
        let element = self.dtype.byte_size().ok_or_else(|| {
            Error::unsupported(format!(
                "cannot reorder elements of sub-byte dtype {}",
                self.dtype
            ))
        })?;
        let swap = match self.storage.byte_order {
            ByteOrder::Big => self.dtype.swap_size(),
            ByteOrder::Little => 1,
        };
        let transform = self.conj || self.neg;
        // The trailing dimensions that are laid out densely form one block, copied at once;
        // the leading ones are walked with an odometer.
        let mut outer = self.shape.len();
        let mut block = 1usize;
        while let Some(k) = outer.checked_sub(1) {
            let (dim, stride) = (self.shape.get(k), self.strides.get(k));
            match (dim, stride) {
                (Some(&1), _) => {}
                (Some(&dim), Some(&stride)) if stride == block => block *= dim,
                _ => break,
            }
            outer = k;
        }
        let block_len = block * element;
        let mut index = vec![0usize; outer];
        let mut buffer = Vec::with_capacity(CHUNK_LEN.min(self.nbytes));
        loop {
            let start = index
                .iter()
                .zip(&self.strides)
                .fold(self.offset, |acc, (&i, &stride)| acc + i * stride)
                * element;
            let bytes = self
                .storage
                .bytes()
                .get(start..start + block_len)
                .ok_or_else(|| Error::malformed("tensor view reaches past its storage"))?;
            if swap == 1 && !transform && block_len >= CHUNK_LEN {
                if !buffer.is_empty() {
                    emit(&buffer)?;
                    buffer.clear();
                }
                for chunk in bytes.chunks(CHUNK_LEN) {
                    emit(chunk)?;
                }
            } else {
                let from = buffer.len();
                buffer.extend_from_slice(bytes);
                if let Some(fresh) = buffer.get_mut(from..) {
                    if swap > 1 {
                        fresh.chunks_exact_mut(swap).for_each(<[u8]>::reverse);
                    }
                    if transform {
                        resolve_bits(self.dtype, self.conj, self.neg, fresh);
                    }
                }
                if buffer.len() >= CHUNK_LEN {
                    emit(&buffer)?;
                    buffer.clear();
                }
            }
            // Advance the odometer over the outer dimensions.
            let mut dim = outer;
            loop {
                let Some(k) = dim.checked_sub(1) else {
                    if !buffer.is_empty() {
                        emit(&buffer)?;
                    }
                    return Ok(());
                };
                if let (Some(i), Some(&size)) = (index.get_mut(k), self.shape.get(k)) {
                    *i += 1;
                    if *i < size {
                        break;
                    }
                    *i = 0;
                }
                dim = k;
            }
        }
    }

    /// The elements `start..start + len` along dimension `dim`, as a view of their own
    /// (torch's `narrow`): nothing is copied, and the conj and neg bits are kept. The view
    /// holds the elements only: quantization parameters, flags and attributes are left
    /// behind. A tiled view is narrowed tile by tile.
    ///
    /// Fails when the range reaches past the dimension, and for strided sub-byte dtypes.
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<TensorView<'data>> {
        let size = self.shape.get(dim).copied();
        let end = start.checked_add(len);
        if size.is_none() || end.is_none_or(|end| Some(end) > size) {
            return Err(Error::invalid(format!(
                "narrow({dim}, {start}, {len}) is outside the shape {:?}",
                self.shape
            )));
        }
        let mut shape = self.shape.clone();
        if let Some(d) = shape.get_mut(dim) {
            *d = len;
        }
        if let Some(tiling) = &self.tiling {
            return TensorView::tiled(self.dtype, shape, tiling.narrow(dim, start, len)?);
        }
        if self.dtype.byte_size().is_none() {
            if start == 0 && len == size.unwrap_or(0) {
                return TensorView::contiguous(self.dtype, shape, self.storage.clone());
            }
            return Err(Error::unsupported(format!(
                "a part of a tensor of sub-byte dtype {} cannot be read on its own",
                self.dtype
            )));
        }
        let step = self.strides.get(dim).copied().unwrap_or(0);
        let offset = if len == 0 {
            self.offset
        } else {
            start
                .checked_mul(step)
                .and_then(|o| o.checked_add(self.offset))
                .ok_or_else(|| Error::malformed("tensor view offset overflows"))?
        };
        Ok(TensorView::strided(
            self.dtype,
            shape,
            self.strides.clone(),
            offset,
            self.storage.clone(),
        )?
        .with_conj(self.conj)
        .with_neg(self.neg))
    }

    /// Splits the elements into consecutive pieces in row-major order, each a view of at
    /// most `max_elements` elements (with a whole tensor of a sub-byte dtype as the one
    /// exception: it is never split), paired with the index of its first element. The
    /// pieces depend only on the shape and `max_elements`, so two tensors of one shape split
    /// alike, and their pieces can be read and compared side by side, in parallel.
    ///
    /// Pieces are cut along the first dimension longer than 1, in runs of whole rows, and
    /// a row longer than `max_elements` along the next dimension, and so on. Fails as
    /// [`TensorView::check_producible`] does for the whole.
    pub fn pieces(&self, max_elements: usize) -> Result<Vec<(usize, TensorView<'data>)>> {
        let mut out = Vec::new();
        if self.numel > 0 {
            self.check_producible()?;
            self.pieces_into(0, max_elements.max(1), &mut out)?;
        }
        Ok(out)
    }

    fn pieces_into(
        &self,
        first: usize,
        max: usize,
        out: &mut Vec<(usize, TensorView<'data>)>,
    ) -> Result<()> {
        let dim = self.shape.iter().position(|&d| d > 1);
        let (Some(dim), Some(_)) = (dim, self.dtype.byte_size()) else {
            out.push((first, self.clone()));
            return Ok(());
        };
        if self.numel <= max {
            out.push((first, self.clone()));
            return Ok(());
        }
        let size = self.shape.get(dim).copied().unwrap_or(1);
        let inner = self.numel / size;
        let run = (max / inner.max(1)).max(1);
        let mut start = 0;
        while start < size {
            let len = run.min(size - start);
            let piece = self.narrow(dim, start, len)?;
            piece.pieces_into(first + start * inner, max, out)?;
            start += len;
        }
        Ok(())
    }

    /// The elements as packed row-major little-endian bytes, copied into a new buffer.
    pub fn to_le_bytes(&self) -> Result<Vec<u8>> {
        // Reserve no more than the storage holds: an expanded view may be far larger, and
        // its bytes are only produced as far as the limits allow.
        let mut out = Vec::with_capacity(self.nbytes.min(self.storage.bytes().len()));
        self.for_each_chunk(|chunk| {
            out.extend_from_slice(chunk);
            Ok(())
        })?;
        Ok(out)
    }

    /// The SHA-256 of the elements as packed row-major little-endian bytes.
    ///
    /// It depends only on the dtype-level values, not on the container: the same tensor
    /// hashes the same in a safetensors file, a torch zip, a big-endian legacy file or as a
    /// strided view, which is how hashes prove a conversion lossless.
    pub fn sha256(&self) -> Result<[u8; 32]> {
        let mut hasher = Sha256::new();
        self.for_each_chunk(|chunk| {
            hasher.update(chunk);
            Ok(())
        })?;
        Ok(hasher.finalize().into())
    }
}

/// Applies the conj and neg bits to little-endian elements in place: conj flips the sign
/// of each imaginary part, neg negates every element (floats and complex parts by their
/// sign bit, as IEEE negation does; integers by two's complement).
fn resolve_bits(dtype: Dtype, conj: bool, neg: bool, bytes: &mut [u8]) {
    let Some(size) = dtype.byte_size() else {
        return;
    };
    let part = dtype.swap_size();
    let flip_sign = |unit: &mut [u8]| {
        if let Some(top) = unit.last_mut() {
            *top ^= 0x80;
        }
    };
    for element in bytes.chunks_exact_mut(size) {
        match dtype.class() {
            DtypeClass::Complex => {
                let (re, im) = element.split_at_mut(part);
                if neg {
                    flip_sign(re);
                }
                if neg != conj {
                    flip_sign(im);
                }
            }
            DtypeClass::Float if neg => match dtype {
                // No sign bit: negation is not defined; leave the value.
                Dtype::Float8E8M0Fnu => {}
                // fnuz kinds have no negative zero (0x80 is their NaN): -0 is 0.
                Dtype::Float8E4M3Fnuz | Dtype::Float8E5M2Fnuz if element == [0] => {}
                _ => flip_sign(element),
            },
            DtypeClass::Signed | DtypeClass::Unsigned if neg => {
                // Two's complement negation of a little-endian integer: invert, add one.
                let mut carry = true;
                for byte in element.iter_mut() {
                    *byte = !*byte;
                    if carry {
                        let (sum, overflow) = byte.overflowing_add(1);
                        *byte = sum;
                        carry = overflow;
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le(values: &[u32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn be(values: &[u32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_be_bytes()).collect()
    }

    #[test]
    fn contiguous_view_is_zero_copy() {
        let bytes = le(&[1, 2, 3, 4, 5, 6]);
        let view = TensorView::contiguous(
            Dtype::Int32,
            vec![2, 3],
            Storage::new(&bytes, ByteOrder::Little),
        )
        .unwrap();
        assert_eq!(view.numel(), 6);
        assert_eq!(view.nbytes(), 24);
        assert_eq!(view.data().unwrap().as_ptr(), bytes.as_ptr());
        let shared = TensorView::contiguous(
            Dtype::Int32,
            vec![6],
            Storage::owned(bytes.clone(), ByteOrder::Little),
        )
        .unwrap();
        assert_eq!(shared.to_le_bytes().unwrap(), bytes);
        assert_eq!(view.to_le_bytes().unwrap(), bytes);
    }

    #[test]
    fn contiguous_view_checks_length() {
        let bytes = [0u8; 10];
        let error = TensorView::contiguous(
            Dtype::Float32,
            vec![3],
            Storage::new(&bytes, ByteOrder::Little),
        )
        .unwrap_err();
        assert!(error.to_string().contains("needs 12 bytes"), "{error}");
    }

    #[test]
    fn transposed_view_is_read_row_major() {
        // storage is a 2x3 matrix [[1,2,3],[4,5,6]]; the view is its 3x2 transpose.
        let bytes = le(&[1, 2, 3, 4, 5, 6]);
        let storage = Storage::new(&bytes, ByteOrder::Little);
        let view =
            TensorView::strided(Dtype::Int32, vec![3, 2], vec![1, 3], 0, storage.clone()).unwrap();
        assert!(!view.is_contiguous());
        assert!(view.data().is_none());
        assert_eq!(view.to_le_bytes().unwrap(), le(&[1, 4, 2, 5, 3, 6]));
    }

    #[test]
    fn offset_zero_stride_and_column_views() {
        let bytes = le(&[10, 11, 12, 13, 14, 15]);
        let storage = Storage::new(&bytes, ByteOrder::Little);
        let column =
            TensorView::strided(Dtype::Int32, vec![2], vec![3], 1, storage.clone()).unwrap();
        assert_eq!(column.to_le_bytes().unwrap(), le(&[11, 14]));
        let repeated =
            TensorView::strided(Dtype::Int32, vec![2, 3], vec![0, 1], 3, storage.clone()).unwrap();
        assert_eq!(
            repeated.to_le_bytes().unwrap(),
            le(&[13, 14, 15, 13, 14, 15])
        );
        let tail = TensorView::strided(Dtype::Int32, vec![2], vec![1], 4, storage.clone()).unwrap();
        assert_eq!(tail.data().unwrap(), &bytes[16..24]);
        assert_eq!(tail.file_range(), None);
        let placed = TensorView::strided(
            Dtype::Int32,
            vec![2],
            vec![1],
            4,
            storage.clone().at_file_offset(100),
        )
        .unwrap();
        assert_eq!(placed.file_range(), Some((116, 124)));
    }

    #[test]
    fn big_endian_storage_is_swapped() {
        let bytes = be(&[0x0102_0304, 0x0506_0708]);
        let view =
            TensorView::contiguous(Dtype::UInt32, vec![2], Storage::new(&bytes, ByteOrder::Big))
                .unwrap();
        assert!(view.data().is_none());
        assert_eq!(view.to_le_bytes().unwrap(), le(&[0x0102_0304, 0x0506_0708]));
        // Complex numbers swap each part on its own.
        let parts: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let complex = TensorView::contiguous(
            Dtype::Complex64,
            vec![1],
            Storage::new(&parts, ByteOrder::Big),
        )
        .unwrap();
        let expected: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(complex.to_le_bytes().unwrap(), expected);
        // Single bytes never swap, so big-endian bool data stays zero-copy.
        let flags = [1u8, 0, 1];
        let view =
            TensorView::contiguous(Dtype::Bool, vec![3], Storage::new(&flags, ByteOrder::Big))
                .unwrap();
        assert!(view.data().is_some());
    }

    #[test]
    fn out_of_bounds_and_overflowing_views_are_refused() {
        let bytes = le(&[1, 2, 3]);
        let storage = Storage::new(&bytes, ByteOrder::Little);
        assert!(TensorView::strided(Dtype::Int32, vec![2], vec![3], 0, storage.clone()).is_err());
        assert!(TensorView::strided(Dtype::Int32, vec![2], vec![2], 0, storage.clone()).is_ok());
        assert!(TensorView::strided(Dtype::Int32, vec![3], vec![1], 1, storage.clone()).is_err());
        assert!(
            TensorView::strided(Dtype::Int32, vec![2], vec![usize::MAX], 0, storage.clone())
                .is_err()
        );
        assert!(
            TensorView::strided(Dtype::Int32, vec![2], vec![1, 1], 0, storage.clone()).is_err()
        );
        // An empty view addresses nothing, whatever its offset.
        let empty =
            TensorView::strided(Dtype::Int32, vec![0, 5], vec![5, 1], 99, storage.clone()).unwrap();
        assert_eq!(empty.to_le_bytes().unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn large_strided_tensors_stream_in_chunks() {
        // 600k int32 in a transposed 1000x600 view: more than one chunk of output.
        let values: Vec<u32> = (0..600_000).collect();
        let bytes = le(&values);
        let storage = Storage::new(&bytes, ByteOrder::Little);
        let view = TensorView::strided(
            Dtype::Int32,
            vec![600, 1000],
            vec![1, 600],
            0,
            storage.clone(),
        )
        .unwrap();
        let mut chunks = 0;
        let mut out = Vec::new();
        view.for_each_chunk(|chunk| {
            assert!(chunk.len() <= CHUNK_LEN * 2);
            chunks += 1;
            out.extend_from_slice(chunk);
            Ok(())
        })
        .unwrap();
        assert!(chunks > 1);
        let expected: Vec<u32> = (0..600)
            .flat_map(|r| (0..1000).map(move |c| c * 600 + r))
            .collect();
        assert_eq!(out, le(&expected));
    }

    #[test]
    fn pieces_read_back_as_the_whole() {
        // A transposed big-endian [60, 100] view, with the neg bit: every path of
        // for_each_chunk, cut in pieces of many sizes.
        let values: Vec<u32> = (0..6000).collect();
        let bytes = be(&values);
        let view = TensorView::strided(
            Dtype::Int32,
            vec![60, 100],
            vec![1, 60],
            0,
            Storage::new(&bytes, ByteOrder::Big),
        )
        .unwrap()
        .with_neg(true);
        let whole = view.to_le_bytes().unwrap();
        for max in [1, 7, 99, 100, 101, 250, 5999, 6000, 1 << 20] {
            let (mut out, mut next) = (Vec::new(), 0);
            for (first, piece) in view.pieces(max).unwrap() {
                assert_eq!(first, next, "max {max}");
                assert!(piece.numel() <= max, "max {max}");
                next += piece.numel();
                out.extend(piece.to_le_bytes().unwrap());
            }
            assert_eq!(out, whole, "max {max}");
        }
        // Leading dimensions of 1 are skipped; an empty view has no pieces.
        let row = TensorView::contiguous(
            Dtype::Int32,
            vec![1, 1, 6000],
            Storage::new(&bytes, ByteOrder::Little),
        )
        .unwrap();
        let pieces = row.pieces(1000).unwrap();
        assert_eq!(pieces.len(), 6);
        assert_eq!(pieces[5].0, 5000);
        assert_eq!(pieces[5].1.data().unwrap(), &bytes[20000..24000]);
        let empty = TensorView::contiguous(
            Dtype::Int32,
            vec![0, 3],
            Storage::new(&[], ByteOrder::Little),
        )
        .unwrap();
        assert!(empty.pieces(1).unwrap().is_empty());
        // Narrowing checks its range.
        assert!(view.narrow(0, 59, 2).is_err());
        assert!(view.narrow(2, 0, 1).is_err());
        assert_eq!(view.narrow(0, 60, 0).unwrap().numel(), 0);
        // Sub-byte tensors stay whole.
        let packed = [0x21u8, 0x43];
        let float4 = TensorView::contiguous(
            Dtype::Float4E2M1Fn,
            vec![4],
            Storage::new(&packed, ByteOrder::Little),
        )
        .unwrap();
        assert_eq!(float4.pieces(1).unwrap().len(), 1);
    }

    #[test]
    fn sha256_does_not_depend_on_layout() {
        let dense = le(&[1, 4, 2, 5, 3, 6]);
        let a = TensorView::contiguous(
            Dtype::Int32,
            vec![3, 2],
            Storage::new(&dense, ByteOrder::Little),
        )
        .unwrap();
        let source = be(&[1, 2, 3, 4, 5, 6]);
        let b = TensorView::strided(
            Dtype::Int32,
            vec![3, 2],
            vec![1, 3],
            0,
            Storage::new(&source, ByteOrder::Big),
        )
        .unwrap();
        assert_eq!(a.sha256().unwrap(), b.sha256().unwrap());
    }

    #[test]
    fn sub_byte_views_must_be_dense() {
        let bytes = [0x21u8, 0x43];
        let storage = Storage::new(&bytes, ByteOrder::Little);
        let view =
            TensorView::strided(Dtype::Float4E2M1Fn, vec![4], vec![1], 0, storage.clone()).unwrap();
        assert_eq!(view.nbytes(), 2);
        assert_eq!(view.data().unwrap(), &bytes);
        assert!(
            TensorView::strided(Dtype::Float4E2M1Fn, vec![2], vec![2], 0, storage.clone()).is_err()
        );
        assert!(TensorView::contiguous(Dtype::Float4E2M1Fn, vec![3], storage.clone()).is_err());
    }
}

#[cfg(test)]
mod bit_tests {
    use super::*;

    fn view(dtype: Dtype, bytes: &[u8]) -> TensorView<'_> {
        let size = dtype.byte_size().unwrap();
        TensorView::contiguous(
            dtype,
            vec![bytes.len() / size],
            Storage::new(bytes, ByteOrder::Little),
        )
        .unwrap()
    }

    #[test]
    fn conj_and_neg_bits_are_applied() {
        let parts: Vec<u8> = [1.0f32, 2.0, -3.0, 0.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let read = |v: TensorView<'_>| -> Vec<f32> {
            v.to_le_bytes()
                .unwrap()
                .chunks(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        let conj = view(Dtype::Complex64, &parts).with_conj(true);
        assert!(conj.data().is_none());
        assert_eq!(read(conj), [1.0, -2.0, -3.0, -0.0]);
        let neg = view(Dtype::Complex64, &parts).with_neg(true);
        assert_eq!(read(neg), [-1.0, -2.0, 3.0, -0.0]);
        let both = view(Dtype::Complex64, &parts)
            .with_conj(true)
            .with_neg(true);
        assert_eq!(read(both), [-1.0, 2.0, 3.0, 0.0]);
        let floats = view(Dtype::Float32, &parts).with_neg(true);
        assert_eq!(read(floats), [-1.0, -2.0, 3.0, -0.0]);
        // conj means nothing for real dtypes.
        assert!(!view(Dtype::Float32, &parts).with_conj(true).is_conj());
        let ints: Vec<u8> = [1i16, -5, i16::MIN]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let negated = view(Dtype::Int16, &ints)
            .with_neg(true)
            .to_le_bytes()
            .unwrap();
        let negated: Vec<i16> = negated
            .chunks(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(negated, [-1, 5, i16::MIN]);
    }
}
