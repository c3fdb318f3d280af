//! Before the walk: every object of the pickle that loading it in Python would call or
//! import, reached by the walk or not, must be data.

use std::collections::HashSet;

use ckpt_pickle::{InstanceKind, Object, ObjectId, Pickle};

use super::{Container, class_of, computed, global_of, python3, refused};
use crate::error::Result;
use crate::torch::globals;

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
/// would call or import beyond known data: the walk only visits what it needs, but Python
/// runs every opcode.
pub(super) fn check_every_object(pickle: &Pickle<'_>, container: Container) -> Result<()> {
    let refuse = |id: ObjectId, what: &str, module: &str, name: &str| {
        Err(refused(what, module, name).at_offset(pickle.offset(id)))
    };
    let computed = |id: ObjectId, what: &str| Err(computed(what).at_offset(pickle.offset(id)));
    // Classes rebuilt without a call (modules, plain objects) may be any global.
    let mut classes = HashSet::new();
    for (id, object) in pickle.objects() {
        if let Object::Instance { class, .. } = object
            && bare_instance(pickle, id)
        {
            classes.insert(*class);
            if let Object::PersistentId(pid) = pickle.get(*class) {
                classes.extend(pickle.as_seq(*pid).unwrap_or_default().iter().copied());
            }
        }
    }
    // Calls and instantiations first (the most telling report), then bare imports.
    for (id, object) in pickle.objects() {
        match object {
            Object::Call { callable, .. } => match global_of(pickle, *callable) {
                Some((module, name)) if interpreted(&module, &name) => {}
                Some((module, name)) => return refuse(id, "calls", &module, &name),
                None => return computed(id, "calls a computed object"),
            },
            Object::Instance { class, .. } if !bare_instance(pickle, id) => {
                match class_of(pickle, *class, container) {
                    Some((module, name)) if interpreted(&module, &name) => {}
                    Some((module, name)) => return refuse(id, "instantiates", &module, &name),
                    None => return computed(id, "instantiates a computed class"),
                }
            }
            _ => {}
        }
    }
    for (id, object) in pickle.objects() {
        if let Object::Global { module, name } = object {
            let (module, name) = python3(module, name);
            if !interpreted(module, name) && !classes.contains(&id) {
                return refuse(id, "imports", module, name);
            }
        }
    }
    Ok(())
}

/// Whether the interpreter accepts a pickle that names the global `module.name`.
fn interpreted(module: &str, name: &str) -> bool {
    globals::lookup(module, name).is_some_and(globals::Global::interpreted)
}
