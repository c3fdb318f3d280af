//! What `torch.load(weights_only=True)` accepts: the opcodes its unpickler implements, and
//! the globals the [table of globals](super::globals) marks as allowed by torch.
//!
//! Source: `torch/_weights_only_unpickler.py` of torch 2.15 (`_get_allowed_globals` and the
//! opcodes its `Unpickler.load` handles), as summarised in formats.md §1.7.

use ckpt_pickle::{Decoder, Limits, Object, Opcode, Pickle};

use super::globals::{self, Global};

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

/// Whether torch's weights-only unpickler allows the global `module.name` (Python 3
/// spelling, after the Python 2 name mapping): its row in [the table](super::globals).
pub(crate) fn weights_only_allows(module: &str, name: &str) -> bool {
    globals::lookup(module, name).is_some_and(Global::weights_only)
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
    global_names(pickle, |module, name| !weights_only_allows(module, name))
}

/// Every global of the pickle, `module.name` in Python 3 spelling, sorted and unique.
pub(crate) fn globals(pickle: &Pickle<'_>) -> Vec<String> {
    global_names(pickle, |_, _| true)
}

/// The globals of the pickle that `keep(module, name)` keeps, `module.name` in Python 3
/// spelling, sorted and unique.
fn global_names(pickle: &Pickle<'_>, keep: impl Fn(&str, &str) -> bool) -> Vec<String> {
    let mut names: Vec<String> = pickle
        .objects()
        .filter_map(|(_, object)| match object {
            Object::Global { module, name } => {
                let (module, name) = ckpt_pickle::python3_name(module, name);
                keep(module, name).then(|| format!("{module}.{name}"))
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
