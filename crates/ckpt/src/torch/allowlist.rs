//! What `torch.load(weights_only=True)` accepts, in one place.
//!
//! Source: `torch/_weights_only_unpickler.py` of torch 2.15 (`_get_allowed_globals` and the
//! opcodes its `Unpickler.load` handles), as summarised in formats.md §1.7.

use ckpt_pickle::{Decoder, Limits, Object, Opcode, Pickle};

use crate::model::Dtype;

/// The opcodes the weights-only unpickler implements. Any other opcode makes it fail
/// ("Unsupported operand"), whatever the pickle means.
const WEIGHTS_ONLY_OPCODES: &[Opcode] = &[
    Opcode::Proto,
    Opcode::Stop,
    Opcode::Global,
    Opcode::Reduce,
    Opcode::NewObj,
    Opcode::Build,
    Opcode::Mark,
    Opcode::Tuple,
    Opcode::Tuple1,
    Opcode::Tuple2,
    Opcode::Tuple3,
    Opcode::EmptyTuple,
    Opcode::EmptyList,
    Opcode::Append,
    Opcode::Appends,
    Opcode::EmptyDict,
    Opcode::SetItem,
    Opcode::SetItems,
    Opcode::EmptySet,
    Opcode::None,
    Opcode::NewTrue,
    Opcode::NewFalse,
    Opcode::BinInt,
    Opcode::BinInt1,
    Opcode::BinInt2,
    Opcode::Long1,
    Opcode::BinFloat,
    Opcode::BinUnicode,
    Opcode::ShortBinString,
    Opcode::BinPersId,
    Opcode::BinGet,
    Opcode::LongBinGet,
    Opcode::BinPut,
    Opcode::LongBinPut,
];

/// Rebuild functions of `torch._utils` that torch allows.
const REBUILD_FUNCTIONS: &[&str] = &[
    "_rebuild_parameter",
    "_rebuild_parameter_with_state",
    "_rebuild_qtensor",
    "_rebuild_tensor",
    "_rebuild_tensor_v2",
    "_rebuild_tensor_v3",
    "_rebuild_sparse_tensor",
    "_rebuild_meta_tensor_no_storage",
    "_rebuild_wrapper_subclass",
    "_rebuild_device_tensor_from_numpy",
    "_rebuild_device_tensor_from_cpu_tensor",
];

const TENSOR_TYPES: &[&str] = &[
    "FloatTensor",
    "DoubleTensor",
    "HalfTensor",
    "BFloat16Tensor",
    "LongTensor",
    "IntTensor",
    "ShortTensor",
    "CharTensor",
    "ByteTensor",
    "BoolTensor",
];

pub(crate) const QSCHEMES: &[&str] = &[
    "per_tensor_affine",
    "per_tensor_symmetric",
    "per_channel_affine",
    "per_channel_symmetric",
    "per_channel_affine_float_qparams",
];

/// Whether torch's weights-only unpickler allows the global `module.name` (Python 3
/// spelling, after the Python 2 name mapping).
pub(crate) fn weights_only_allows(module: &str, name: &str) -> bool {
    match module {
        "collections" => matches!(name, "OrderedDict" | "Counter"),
        "_codecs" => name == "encode",
        "builtins" => matches!(name, "bytearray" | "set" | "complex"),
        "torch.nn.parameter" => name == "Parameter",
        "torch.serialization" => name == "_get_layout",
        "torch.storage" => matches!(name, "TypedStorage" | "UntypedStorage"),
        "torch._utils" => REBUILD_FUNCTIONS.contains(&name),
        "torch._tensor" => name == "_rebuild_from_type_v2",
        "torch" => {
            matches!(name, "Size" | "Tensor" | "device")
                || super::interpret::storage_kind("torch", name).is_some()
                || TENSOR_TYPES.contains(&name)
                || QSCHEMES.contains(&name)
                || Dtype::from_name(name).is_some()
        }
        "torch.cuda" => {
            super::interpret::storage_kind("torch.cuda", name).is_some()
                || TENSOR_TYPES.contains(&name)
        }
        "torch.sparse" | "torch.cuda.sparse" => TENSOR_TYPES.contains(&name),
        _ => false,
    }
}

/// Whether ckpt reads the global `module.name` as data: torch's weights-only allowlist,
/// plus numpy's array and scalar reconstruction, TorchScript's list helpers, and harmless
/// builtins (`frozenset`, `slice`). Everything the interpreter gives meaning to is here.
pub(crate) fn is_data_global(module: &str, name: &str) -> bool {
    weights_only_allows(module, name)
        || matches!(
            (module, name),
            (
                "numpy.core.multiarray" | "numpy._core.multiarray",
                "_reconstruct" | "scalar"
            ) | ("numpy", "ndarray" | "dtype")
                | ("builtins", "frozenset" | "slice")
                | ("torch.tensor", "_rebuild_from_type_v2")
                | ("torch._utils", "_rebuild_xla_tensor")
                | (
                    "torch.jit._pickle",
                    "build_intlist"
                        | "build_tensorlist"
                        | "build_doublelist"
                        | "build_boollist"
                        | "restore_type_tag"
                )
        )
}

/// Whether `torch.load(weights_only=True)` would accept this pickle: only the opcodes it
/// implements, and only globals it allows.
pub(crate) fn weights_only_accepts(bytes: &[u8], pickle: &Pickle<'_>) -> bool {
    let opcodes_ok = Decoder::new(bytes, 0, Limits::default())
        .map_while(Result::ok)
        .all(|instruction| WEIGHTS_ONLY_OPCODES.contains(&instruction.opcode));
    opcodes_ok
        && pickle.objects().all(|(_, object)| match object {
            Object::Global { module, name } => {
                let (module, name) = ckpt_pickle::python3_name(module, name);
                weights_only_allows(module, name)
            }
            Object::Extension(_) => false,
            _ => true,
        })
}

/// The globals of the pickle that torch's weights-only unpickler refuses, `module.name`
/// in Python 3 spelling, sorted and unique: what loading the file in Python needs beyond
/// plain data (custom classes, numpy, or worse).
pub(crate) fn globals_outside_weights_only(pickle: &Pickle<'_>) -> Vec<String> {
    let mut names: Vec<String> = pickle
        .objects()
        .filter_map(|(_, object)| match object {
            Object::Global { module, name } => {
                let (module, name) = ckpt_pickle::python3_name(module, name);
                (!weights_only_allows(module, name)).then(|| format!("{module}.{name}"))
            }
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Every global of the pickle, `module.name` in Python 3 spelling, sorted and unique.
pub(crate) fn globals(pickle: &Pickle<'_>) -> Vec<String> {
    let mut names: Vec<String> = pickle
        .objects()
        .filter_map(|(_, object)| match object {
            Object::Global { module, name } => {
                let (module, name) = ckpt_pickle::python3_name(module, name);
                Some(format!("{module}.{name}"))
            }
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torch_allowlist() {
        assert!(weights_only_allows("torch._utils", "_rebuild_tensor_v2"));
        assert!(weights_only_allows("torch", "BFloat16Storage"));
        assert!(weights_only_allows("torch", "float8_e4m3fn"));
        assert!(weights_only_allows("collections", "OrderedDict"));
        assert!(!weights_only_allows(
            "numpy.core.multiarray",
            "_reconstruct"
        ));
        assert!(!weights_only_allows("torch.nn.modules.linear", "Linear"));
        assert!(!weights_only_allows("builtins", "eval"));
        assert!(!weights_only_allows("torch", "load"));
    }
}
