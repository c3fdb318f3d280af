//! Every global ckpt knows, in one table: what ckpt does with it, whether torch's
//! `weights_only` loader allows it, and whether it is data.
//!
//! The interpreter dispatches on a global's [`Meaning`] (it has no list of names of its
//! own), torch's allowlist ([`super::allowlist`]) and the scanner's idea of data read the
//! same rows, so a global cannot be known to one and not to the others. Names are in
//! Python 3 spelling (`builtins`, not `__builtin__`: see [`ckpt_pickle::python3_name`]).
//!
//! Sources: `torch/_weights_only_unpickler.py` of torch 2.15 (`_get_allowed_globals`,
//! formats.md §1.7), the rebuild functions of `torch/_utils.py` (§1.5), the storage classes
//! and dtypes (§1.6), TorchScript's `torch/jit/_pickle.py` (§4), numpy's array pickles and
//! the dataclasses of `torch.distributed.checkpoint`'s metadata (§5).

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::model::Dtype;

/// A global ckpt knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Global {
    /// The module, in Python 3 spelling (`torch._utils`).
    pub(crate) module: &'static str,
    /// The name within the module (`_rebuild_tensor_v2`).
    pub(crate) name: &'static str,
    /// What ckpt does with it.
    pub(crate) meaning: Meaning,
    /// Who accepts it as data.
    pub(crate) allowed: Allowed,
}

/// Who accepts a global as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Allowed {
    /// `torch.load(weights_only=True)` allows it, and so it is data to ckpt too.
    ByTorch,
    /// Data to ckpt (the scanner calls it safe), though torch's weights-only loader refuses
    /// it: numpy arrays, TorchScript's list builders, DCP's metadata records...
    ByCkpt,
    /// Not data: ckpt knows what it is, but refuses it as it refuses any unknown global.
    No,
}

/// What ckpt does with a global.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Meaning {
    /// `collections.OrderedDict`: an ordered dict, whose attributes (`_metadata`) come from
    /// `BUILD`.
    OrderedDict,
    /// `collections.Counter`: a dict.
    Counter,
    /// `builtins.set`.
    Set,
    /// `builtins.frozenset`.
    FrozenSet,
    /// `builtins.complex`.
    Complex,
    /// `builtins.bytearray`.
    ByteArray,
    /// `builtins.slice`.
    Slice,
    /// `_codecs.encode`: how protocol 2 pickles `bytes`.
    Encode,
    /// `torch.Size`.
    Size,
    /// `torch.device`.
    Device,
    /// `torch.serialization._get_layout`: a layout, by name.
    Layout,
    /// A dtype (`torch.float32`), a value of its own.
    Dtype(Dtype),
    /// A quantization scheme (`torch.per_tensor_affine`), a value of its own.
    QScheme,
    /// A storage class, named in a storage's persistent id.
    Storage(StorageKind),
    /// A tensor rebuild function of `torch._utils`.
    Rebuild(Rebuild),
    /// `torch._tensor._rebuild_from_type_v2`: a tensor of a subclass, or with attributes.
    RebuildFromType,
    /// `torch.Tensor`: the plain tensor class (`_rebuild_from_type_v2`'s type).
    Tensor,
    /// `torch.nn.parameter.Parameter`: a parameter, built by `NEWOBJ` or as
    /// `_rebuild_from_type_v2`'s type.
    Parameter,
    /// numpy's `_reconstruct`: an array, whose dtype, shape and bytes come from `BUILD`.
    NumpyArray,
    /// numpy's `scalar(dtype, bytes)`: a 0-d array.
    NumpyScalar,
    /// `numpy.dtype(code, ...)`: the dtype of a numpy array or scalar.
    NumpyDtype,
    /// TorchScript's `torch.jit._pickle` helpers that return their first argument (typed
    /// lists, `restore_type_tag`).
    ScriptBuilder,
    /// Harmless to import, nothing of its own: torch's tensor type classes,
    /// `TypedStorage`, the `numpy.ndarray` that `_reconstruct` is given. Calling it or using
    /// it as a value is refused.
    Marker,
    /// Data that no reader of ckpt gives a meaning yet (numpy's dtype classes,
    /// `_frombuffer`): the scanner calls it safe, the interpreter reads it as an inert
    /// object of its class.
    Unread,
    /// A dataclass of `torch.distributed.checkpoint`'s metadata, or a path it holds: read
    /// field by field by the DCP reader; in any other pickle an inert object of its class
    /// (a path read as its text).
    DcpRecord,
}

/// A tensor rebuild function of `torch._utils` (formats.md §1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rebuild {
    /// `_rebuild_tensor(storage, offset, size, stride)`: legacy.
    Tensor,
    /// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`.
    TensorV2,
    /// `_rebuild_tensor_v3(..., hooks, dtype[, metadata])`: an untyped storage and a dtype.
    TensorV3,
    /// `_rebuild_parameter(data, requires_grad, hooks)`.
    Parameter,
    /// `_rebuild_parameter_with_state(data, requires_grad, hooks, state)`.
    ParameterWithState,
    /// `_rebuild_qtensor(storage, offset, size, stride, qparams, requires_grad, hooks)`.
    QTensor,
    /// A device tensor whose first argument holds its data (a CPU tensor, a numpy array).
    FromData,
    /// `_rebuild_meta_tensor_no_storage`: a shape without data.
    Meta,
    /// A sparse tensor (not supported yet).
    Sparse,
    /// Tensors ckpt does not read (wrapper subclasses, nested tensors).
    Unsupported,
}

/// The element type of a storage, from its persistent id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StorageKind {
    /// A typed storage (`torch.FloatStorage`...): its `numel` counts elements of this dtype.
    Typed(Dtype),
    /// `torch.storage.UntypedStorage`: its `numel` counts bytes.
    Untyped,
}

impl StorageKind {
    /// The size of one unit of `numel`.
    pub(crate) fn unit_size(self) -> u64 {
        match self {
            StorageKind::Typed(dtype) => dtype.byte_size().map_or(1, |s| s as u64),
            StorageKind::Untyped => 1,
        }
    }
}

impl Global {
    /// Whether `torch.load(weights_only=True)` allows it.
    pub(crate) fn weights_only(&self) -> bool {
        self.allowed == Allowed::ByTorch
    }

    /// Whether it is data (to the scanner).
    pub(crate) fn is_data(&self) -> bool {
        self.allowed != Allowed::No
    }

    /// Whether the interpreter gives it its meaning: data that is not left to another
    /// reader (or to none), which the interpreter reads as an inert object instead.
    pub(crate) fn interpreted(&self) -> bool {
        self.is_data() && !matches!(self.meaning, Meaning::Unread | Meaning::DcpRecord)
    }
}

/// The global `module.name` (Python 3 spelling), if ckpt knows it.
pub(crate) fn lookup(module: &str, name: &str) -> Option<&'static Global> {
    static INDEX: LazyLock<HashMap<(&str, &str), &Global>> =
        LazyLock::new(|| GLOBALS.iter().map(|g| ((g.module, g.name), g)).collect());
    INDEX.get(&(module, name)).copied()
}

/// What ckpt does with the global `module.name`, if it knows it.
pub(crate) fn meaning(module: &str, name: &str) -> Option<Meaning> {
    lookup(module, name).map(|g| g.meaning)
}

/// What the interpreter makes of the global `module.name`: its meaning when it is data the
/// interpreter reads ([`Global::interpreted`]); `None` for any other global, which the
/// interpreter keeps as an inert object or name.
pub(crate) fn interpreted_meaning(module: &str, name: &str) -> Option<Meaning> {
    lookup(module, name)
        .filter(|g| g.interpreted())
        .map(|g| g.meaning)
}

/// Whether a `torch.distributed.checkpoint` `.metadata` pickle may name `module.name`:
/// DCP's dataclasses and paths, and the torch values they hold (sizes, layouts, dtypes).
pub(crate) fn in_dcp_metadata(module: &str, name: &str) -> bool {
    matches!(
        meaning(module, name),
        Some(Meaning::DcpRecord | Meaning::Size | Meaning::Layout | Meaning::Dtype(_))
    )
}

/// Every global ckpt knows: the rows below, then every dtype.
pub(crate) static GLOBALS: &[Global] = &TABLE;

const fn weights_only(module: &'static str, name: &'static str, meaning: Meaning) -> Global {
    Global {
        module,
        name,
        meaning,
        allowed: Allowed::ByTorch,
    }
}

const fn data(module: &'static str, name: &'static str, meaning: Meaning) -> Global {
    Global {
        module,
        name,
        meaning,
        allowed: Allowed::ByCkpt,
    }
}

const fn not_data(module: &'static str, name: &'static str, meaning: Meaning) -> Global {
    Global {
        module,
        name,
        meaning,
        allowed: Allowed::No,
    }
}

const fn typed(dtype: Dtype) -> Meaning {
    Meaning::Storage(StorageKind::Typed(dtype))
}

const fn rebuild(how: Rebuild) -> Meaning {
    Meaning::Rebuild(how)
}

const UNTYPED: Meaning = Meaning::Storage(StorageKind::Untyped);

const ROWS: &[Global] = &[
    // Plain values.
    weights_only("collections", "OrderedDict", Meaning::OrderedDict),
    weights_only("collections", "Counter", Meaning::Counter),
    weights_only("_codecs", "encode", Meaning::Encode),
    weights_only("builtins", "bytearray", Meaning::ByteArray),
    weights_only("builtins", "set", Meaning::Set),
    weights_only("builtins", "complex", Meaning::Complex),
    data("builtins", "frozenset", Meaning::FrozenSet),
    data("builtins", "slice", Meaning::Slice),
    // torch's small values (dtypes are added after the rows).
    weights_only("torch", "Size", Meaning::Size),
    weights_only("torch", "device", Meaning::Device),
    weights_only("torch.serialization", "_get_layout", Meaning::Layout),
    weights_only("torch", "per_tensor_affine", Meaning::QScheme),
    weights_only("torch", "per_tensor_symmetric", Meaning::QScheme),
    weights_only("torch", "per_channel_affine", Meaning::QScheme),
    weights_only("torch", "per_channel_symmetric", Meaning::QScheme),
    weights_only(
        "torch",
        "per_channel_affine_float_qparams",
        Meaning::QScheme,
    ),
    // Tensors: rebuild functions.
    weights_only("torch._utils", "_rebuild_tensor", rebuild(Rebuild::Tensor)),
    weights_only(
        "torch._utils",
        "_rebuild_tensor_v2",
        rebuild(Rebuild::TensorV2),
    ),
    weights_only(
        "torch._utils",
        "_rebuild_tensor_v3",
        rebuild(Rebuild::TensorV3),
    ),
    weights_only(
        "torch._utils",
        "_rebuild_parameter",
        rebuild(Rebuild::Parameter),
    ),
    weights_only(
        "torch._utils",
        "_rebuild_parameter_with_state",
        rebuild(Rebuild::ParameterWithState),
    ),
    weights_only(
        "torch._utils",
        "_rebuild_qtensor",
        rebuild(Rebuild::QTensor),
    ),
    weights_only(
        "torch._utils",
        "_rebuild_device_tensor_from_cpu_tensor",
        rebuild(Rebuild::FromData),
    ),
    weights_only(
        "torch._utils",
        "_rebuild_device_tensor_from_numpy",
        rebuild(Rebuild::FromData),
    ),
    data(
        "torch._utils",
        "_rebuild_xla_tensor",
        rebuild(Rebuild::FromData),
    ),
    weights_only(
        "torch._utils",
        "_rebuild_meta_tensor_no_storage",
        rebuild(Rebuild::Meta),
    ),
    weights_only(
        "torch._utils",
        "_rebuild_sparse_tensor",
        rebuild(Rebuild::Sparse),
    ),
    not_data(
        "torch._utils",
        "_rebuild_sparse_csr_tensor",
        rebuild(Rebuild::Sparse),
    ),
    weights_only(
        "torch._utils",
        "_rebuild_wrapper_subclass",
        rebuild(Rebuild::Unsupported),
    ),
    not_data(
        "torch._utils",
        "_rebuild_nested_tensor",
        rebuild(Rebuild::Unsupported),
    ),
    weights_only(
        "torch._tensor",
        "_rebuild_from_type_v2",
        Meaning::RebuildFromType,
    ),
    // The module torch loads as `torch._tensor` (`load_module_mapping`); weights_only does not.
    data(
        "torch.tensor",
        "_rebuild_from_type_v2",
        Meaning::RebuildFromType,
    ),
    // Tensors: classes.
    weights_only("torch", "Tensor", Meaning::Tensor),
    weights_only("torch.nn.parameter", "Parameter", Meaning::Parameter),
    weights_only("torch.storage", "TypedStorage", Meaning::Marker),
    weights_only("torch", "FloatTensor", Meaning::Marker),
    weights_only("torch", "DoubleTensor", Meaning::Marker),
    weights_only("torch", "HalfTensor", Meaning::Marker),
    weights_only("torch", "BFloat16Tensor", Meaning::Marker),
    weights_only("torch", "LongTensor", Meaning::Marker),
    weights_only("torch", "IntTensor", Meaning::Marker),
    weights_only("torch", "ShortTensor", Meaning::Marker),
    weights_only("torch", "CharTensor", Meaning::Marker),
    weights_only("torch", "ByteTensor", Meaning::Marker),
    weights_only("torch", "BoolTensor", Meaning::Marker),
    weights_only("torch.cuda", "FloatTensor", Meaning::Marker),
    weights_only("torch.cuda", "DoubleTensor", Meaning::Marker),
    weights_only("torch.cuda", "HalfTensor", Meaning::Marker),
    weights_only("torch.cuda", "BFloat16Tensor", Meaning::Marker),
    weights_only("torch.cuda", "LongTensor", Meaning::Marker),
    weights_only("torch.cuda", "IntTensor", Meaning::Marker),
    weights_only("torch.cuda", "ShortTensor", Meaning::Marker),
    weights_only("torch.cuda", "CharTensor", Meaning::Marker),
    weights_only("torch.cuda", "ByteTensor", Meaning::Marker),
    weights_only("torch.cuda", "BoolTensor", Meaning::Marker),
    weights_only("torch.sparse", "FloatTensor", Meaning::Marker),
    weights_only("torch.sparse", "DoubleTensor", Meaning::Marker),
    weights_only("torch.sparse", "HalfTensor", Meaning::Marker),
    weights_only("torch.sparse", "BFloat16Tensor", Meaning::Marker),
    weights_only("torch.sparse", "LongTensor", Meaning::Marker),
    weights_only("torch.sparse", "IntTensor", Meaning::Marker),
    weights_only("torch.sparse", "ShortTensor", Meaning::Marker),
    weights_only("torch.sparse", "CharTensor", Meaning::Marker),
    weights_only("torch.sparse", "ByteTensor", Meaning::Marker),
    weights_only("torch.sparse", "BoolTensor", Meaning::Marker),
    weights_only("torch.cuda.sparse", "FloatTensor", Meaning::Marker),
    weights_only("torch.cuda.sparse", "DoubleTensor", Meaning::Marker),
    weights_only("torch.cuda.sparse", "HalfTensor", Meaning::Marker),
    weights_only("torch.cuda.sparse", "BFloat16Tensor", Meaning::Marker),
    weights_only("torch.cuda.sparse", "LongTensor", Meaning::Marker),
    weights_only("torch.cuda.sparse", "IntTensor", Meaning::Marker),
    weights_only("torch.cuda.sparse", "ShortTensor", Meaning::Marker),
    weights_only("torch.cuda.sparse", "CharTensor", Meaning::Marker),
    weights_only("torch.cuda.sparse", "ByteTensor", Meaning::Marker),
    weights_only("torch.cuda.sparse", "BoolTensor", Meaning::Marker),
    // Tensors: storage classes. `torch.<Name>Storage` and `torch.cuda.<Name>Storage` are
    // the legacy typed classes torch allows; ckpt also reads the typed names under
    // `torch.storage` in a persistent id, though no torch defines them there.
    weights_only("torch.storage", "UntypedStorage", UNTYPED),
    weights_only("torch", "UntypedStorage", UNTYPED),
    weights_only("torch", "ByteStorage_untyped", UNTYPED),
    weights_only("torch", "DoubleStorage", typed(Dtype::Float64)),
    weights_only("torch", "FloatStorage", typed(Dtype::Float32)),
    weights_only("torch", "HalfStorage", typed(Dtype::Float16)),
    weights_only("torch", "BFloat16Storage", typed(Dtype::BFloat16)),
    weights_only("torch", "LongStorage", typed(Dtype::Int64)),
    weights_only("torch", "IntStorage", typed(Dtype::Int32)),
    weights_only("torch", "ShortStorage", typed(Dtype::Int16)),
    weights_only("torch", "CharStorage", typed(Dtype::Int8)),
    weights_only("torch", "ByteStorage", typed(Dtype::UInt8)),
    weights_only("torch", "BoolStorage", typed(Dtype::Bool)),
    weights_only("torch", "ComplexDoubleStorage", typed(Dtype::Complex128)),
    weights_only("torch", "ComplexFloatStorage", typed(Dtype::Complex64)),
    weights_only("torch", "QInt8Storage", typed(Dtype::QInt8)),
    weights_only("torch", "QUInt8Storage", typed(Dtype::QUInt8)),
    weights_only("torch", "QInt32Storage", typed(Dtype::QInt32)),
    weights_only("torch", "QUInt4x2Storage", typed(Dtype::QUInt4x2)),
    weights_only("torch", "QUInt2x4Storage", typed(Dtype::QUInt2x4)),
    weights_only("torch.cuda", "UntypedStorage", UNTYPED),
    weights_only("torch.cuda", "ByteStorage_untyped", UNTYPED),
    weights_only("torch.cuda", "DoubleStorage", typed(Dtype::Float64)),
    weights_only("torch.cuda", "FloatStorage", typed(Dtype::Float32)),
    weights_only("torch.cuda", "HalfStorage", typed(Dtype::Float16)),
    weights_only("torch.cuda", "BFloat16Storage", typed(Dtype::BFloat16)),
    weights_only("torch.cuda", "LongStorage", typed(Dtype::Int64)),
    weights_only("torch.cuda", "IntStorage", typed(Dtype::Int32)),
    weights_only("torch.cuda", "ShortStorage", typed(Dtype::Int16)),
    weights_only("torch.cuda", "CharStorage", typed(Dtype::Int8)),
    weights_only("torch.cuda", "ByteStorage", typed(Dtype::UInt8)),
    weights_only("torch.cuda", "BoolStorage", typed(Dtype::Bool)),
    weights_only(
        "torch.cuda",
        "ComplexDoubleStorage",
        typed(Dtype::Complex128),
    ),
    weights_only("torch.cuda", "ComplexFloatStorage", typed(Dtype::Complex64)),
    weights_only("torch.cuda", "QInt8Storage", typed(Dtype::QInt8)),
    weights_only("torch.cuda", "QUInt8Storage", typed(Dtype::QUInt8)),
    weights_only("torch.cuda", "QInt32Storage", typed(Dtype::QInt32)),
    weights_only("torch.cuda", "QUInt4x2Storage", typed(Dtype::QUInt4x2)),
    weights_only("torch.cuda", "QUInt2x4Storage", typed(Dtype::QUInt2x4)),
    not_data("torch.storage", "ByteStorage_untyped", UNTYPED),
    not_data("torch.storage", "DoubleStorage", typed(Dtype::Float64)),
    not_data("torch.storage", "FloatStorage", typed(Dtype::Float32)),
    not_data("torch.storage", "HalfStorage", typed(Dtype::Float16)),
    not_data("torch.storage", "BFloat16Storage", typed(Dtype::BFloat16)),
    not_data("torch.storage", "LongStorage", typed(Dtype::Int64)),
    not_data("torch.storage", "IntStorage", typed(Dtype::Int32)),
    not_data("torch.storage", "ShortStorage", typed(Dtype::Int16)),
    not_data("torch.storage", "CharStorage", typed(Dtype::Int8)),
    not_data("torch.storage", "ByteStorage", typed(Dtype::UInt8)),
    not_data("torch.storage", "BoolStorage", typed(Dtype::Bool)),
    not_data(
        "torch.storage",
        "ComplexDoubleStorage",
        typed(Dtype::Complex128),
    ),
    not_data(
        "torch.storage",
        "ComplexFloatStorage",
        typed(Dtype::Complex64),
    ),
    not_data("torch.storage", "QInt8Storage", typed(Dtype::QInt8)),
    not_data("torch.storage", "QUInt8Storage", typed(Dtype::QUInt8)),
    not_data("torch.storage", "QInt32Storage", typed(Dtype::QInt32)),
    not_data("torch.storage", "QUInt4x2Storage", typed(Dtype::QUInt4x2)),
    not_data("torch.storage", "QUInt2x4Storage", typed(Dtype::QUInt2x4)),
    // numpy arrays and scalars (numpy 1 and numpy 2 module names).
    data("numpy.core.multiarray", "_reconstruct", Meaning::NumpyArray),
    data(
        "numpy._core.multiarray",
        "_reconstruct",
        Meaning::NumpyArray,
    ),
    data("numpy.core.multiarray", "scalar", Meaning::NumpyScalar),
    data("numpy._core.multiarray", "scalar", Meaning::NumpyScalar),
    data("numpy", "dtype", Meaning::NumpyDtype),
    data("numpy", "ndarray", Meaning::Marker),
    data("numpy.core.numeric", "_frombuffer", Meaning::Unread),
    data("numpy._core.numeric", "_frombuffer", Meaning::Unread),
    data("numpy.dtypes", "Float64DType", Meaning::Unread),
    data("numpy.dtypes", "Float32DType", Meaning::Unread),
    data("numpy.dtypes", "Float16DType", Meaning::Unread),
    data("numpy.dtypes", "Int64DType", Meaning::Unread),
    data("numpy.dtypes", "Int32DType", Meaning::Unread),
    data("numpy.dtypes", "Int16DType", Meaning::Unread),
    data("numpy.dtypes", "Int8DType", Meaning::Unread),
    data("numpy.dtypes", "UInt64DType", Meaning::Unread),
    data("numpy.dtypes", "UInt32DType", Meaning::Unread),
    data("numpy.dtypes", "UInt16DType", Meaning::Unread),
    data("numpy.dtypes", "UInt8DType", Meaning::Unread),
    data("numpy.dtypes", "BoolDType", Meaning::Unread),
    data("numpy.dtypes", "Complex64DType", Meaning::Unread),
    data("numpy.dtypes", "Complex128DType", Meaning::Unread),
    // TorchScript's typed containers (identity functions in `torch/jit/_pickle.py`).
    data("torch.jit._pickle", "build_intlist", Meaning::ScriptBuilder),
    data(
        "torch.jit._pickle",
        "build_tensorlist",
        Meaning::ScriptBuilder,
    ),
    data(
        "torch.jit._pickle",
        "build_doublelist",
        Meaning::ScriptBuilder,
    ),
    data(
        "torch.jit._pickle",
        "build_boollist",
        Meaning::ScriptBuilder,
    ),
    data(
        "torch.jit._pickle",
        "restore_type_tag",
        Meaning::ScriptBuilder,
    ),
    // torch.distributed.checkpoint's `.metadata`: its dataclasses and the paths they hold
    // (besides torch.Size, layouts and dtypes, above).
    data(DCP_METADATA, "Metadata", Meaning::DcpRecord),
    data(DCP_METADATA, "TensorStorageMetadata", Meaning::DcpRecord),
    data(DCP_METADATA, "ChunkStorageMetadata", Meaning::DcpRecord),
    data(DCP_METADATA, "TensorProperties", Meaning::DcpRecord),
    data(DCP_METADATA, "_MEM_FORMAT_ENCODING", Meaning::DcpRecord),
    data(DCP_METADATA, "BytesStorageMetadata", Meaning::DcpRecord),
    data(DCP_METADATA, "MetadataIndex", Meaning::DcpRecord),
    data(DCP_METADATA, "StorageMeta", Meaning::DcpRecord),
    data(DCP_FILESYSTEM, "_StorageInfo", Meaning::DcpRecord),
    data("pathlib", "PosixPath", Meaning::DcpRecord),
    data("pathlib", "WindowsPath", Meaning::DcpRecord),
    data("pathlib", "PurePosixPath", Meaning::DcpRecord),
    data("pathlib", "PureWindowsPath", Meaning::DcpRecord),
];

const DCP_METADATA: &str = "torch.distributed.checkpoint.metadata";
const DCP_FILESYSTEM: &str = "torch.distributed.checkpoint.filesystem";

const COUNT: usize = ROWS.len() + Dtype::ALL.len();

static TABLE: [Global; COUNT] = rows_then_dtypes();

/// [`ROWS`], then `torch.<name>` for every dtype, which torch allows (all of
/// [`Dtype::ALL`], as ckpt has always read them).
#[allow(clippy::indexing_slicing)] // const evaluation: an index out of range fails the build
const fn rows_then_dtypes() -> [Global; COUNT] {
    let mut table = [weights_only("", "", Meaning::Marker); COUNT];
    let mut i = 0;
    while i < ROWS.len() {
        table[i] = ROWS[i];
        i += 1;
    }
    let mut d = 0;
    while d < Dtype::ALL.len() {
        let dtype = Dtype::ALL[d];
        table[ROWS.len() + d] = weights_only("torch", dtype.name(), Meaning::Dtype(dtype));
        d += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_global() {
        let mut seen = std::collections::HashSet::new();
        for g in GLOBALS {
            assert!(!g.module.is_empty() && !g.name.is_empty(), "{g:?}");
            assert!(
                seen.insert((g.module, g.name)),
                "{}.{} twice",
                g.module,
                g.name
            );
            assert_eq!(lookup(g.module, g.name), Some(g));
        }
        assert_eq!(lookup("builtins", "eval"), None);
        assert_eq!(lookup("torch", "load"), None);
    }

    #[test]
    fn every_dtype_is_a_torch_global() {
        for &dtype in Dtype::ALL {
            let g = lookup("torch", dtype.name()).expect("a row per dtype");
            assert_eq!(g.meaning, Meaning::Dtype(dtype));
            assert!(g.weights_only());
        }
    }

    #[test]
    fn dcp_metadata_holds_its_records_and_torch_values() {
        assert!(in_dcp_metadata(DCP_METADATA, "TensorStorageMetadata"));
        assert!(in_dcp_metadata("pathlib", "PosixPath"));
        assert!(in_dcp_metadata("torch", "Size"));
        assert!(in_dcp_metadata("torch", "bfloat16"));
        assert!(!in_dcp_metadata("torch._utils", "_rebuild_tensor_v2"));
        assert!(!in_dcp_metadata("collections", "OrderedDict"));
        // DCP's records are data to the scanner, but no other pickle may hold them.
        let record = lookup(DCP_METADATA, "Metadata").expect("a row");
        assert!(record.is_data() && !record.interpreted());
    }
}
