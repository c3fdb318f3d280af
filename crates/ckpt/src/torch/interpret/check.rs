//! Before the walk: every object of the pickle that loading it in Python would call or
//! import, reached by the walk or not, must be data.

use ckpt_pickle::{InstanceKind, Object, ObjectId, Pickle};

use super::{Container, class_of, computed, global_of};
use crate::error::Result;

/// Whether `id` is an instance rebuilt without calling its class: `NEWOBJ` with an empty
/// argument tuple, or `NEWOBJ_EX` with no arguments at all.
pub(super) fn bare_instance(pickle: &Pickle<'_>, id: ObjectId) -> bool {
    let Object::Instance {
        args, kwargs, kind, ..
    } = pickle.get(id)
    else {
        return false;
    };
    let empty = |id: ObjectId| match pickle.get(id) {
        Object::Tuple(items) => items.is_empty(),
        Object::Dict(entries) => entries.is_empty(),
        Object::None => true,
        _ => false,
    };
    matches!(kind, InstanceKind::NewObj | InstanceKind::NewObjEx)
        && empty(*args)
        && kwargs.is_none_or(empty)
}

/// Refuses any object of the pickle, reached by the walk or not, that loading it in Python
/// would call or instantiate without naming what: a callable or class that is not a named
/// global (the walk only visits what it needs, but Python runs every opcode). Named
/// globals ckpt gives no meaning to are kept as inert objects by the walk; whether they
/// are dangerous is the scanner's question, asked before any reader gets here.
pub(super) fn check_every_object(pickle: &Pickle<'_>, container: Container) -> Result<()> {
    let computed = |id: ObjectId, what: &str| Err(computed(what).at_offset(pickle.offset(id)));
    for (id, object) in pickle.objects() {
        match object {
            Object::Call { callable, .. } if global_of(pickle, *callable).is_none() => {
                return computed(id, "calls a computed object");
            }
            Object::Instance { class, .. }
                if !bare_instance(pickle, id) && class_of(pickle, *class, container).is_none() =>
            {
                return computed(id, "instantiates a computed class");
            }
            _ => {}
        }
    }
    Ok(())
}
