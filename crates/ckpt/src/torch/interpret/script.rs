//! TorchScript objects: the `__parameters__`/`__buffers__` declarations of their classes,
//! their `state_dict()`, and the `torch.jit._pickle` helpers around typed containers.

use std::collections::HashMap;

use ckpt_pickle::{Object, ObjectId};

use super::Walker;
use crate::error::Result;
use crate::model::Value;

/// What TorchScript's code declares of each class: which attributes are parameters and
/// which are buffers (`__parameters__ = [...]`, `__buffers__ = [...]`), by qualified class
/// name (`__torch__.torch.nn.modules.linear.Linear`). Only these are in `state_dict()`.
pub(crate) type ScriptDecls = HashMap<String, (Vec<String>, Vec<String>)>;

impl<'data> Walker<'_, '_, '_, 'data> {
    /// A `torch.jit._pickle` helper (`build_intlist`, `restore_type_tag`...): its first
    /// argument, unchanged.
    pub(super) fn script_builder(
        &mut self,
        id: ObjectId,
        name: &str,
        args: &[ObjectId],
        depth: usize,
    ) -> Result<Value<'data>> {
        match args.first() {
            Some(&inner) => self.value(inner, depth + 1),
            None => Err(self.error(id, format!("{name} takes an argument"))),
        }
    }

    /// A TorchScript object's `state_dict()`: its parameters, then its buffers (as its
    /// class declares them), then its submodules, each in attribute order. Without a
    /// declaration for the class, every tensor attribute counts.
    pub(super) fn script_state_dict(
        &mut self,
        id: ObjectId,
        state: &[(ObjectId, ObjectId)],
        prefix: &str,
        depth: usize,
        out: &mut Vec<(Value<'data>, Value<'data>)>,
    ) -> Result<()> {
        let class = match self.pickle.get(id) {
            Object::Instance { class, .. } => {
                self.class_of(*class).map(|(m, n)| format!("{m}.{n}"))
            }
            _ => None,
        };
        let decl = class.as_ref().and_then(|c| self.script.get(c)).cloned();
        let attributes: Vec<(String, ObjectId)> = state
            .iter()
            .filter_map(|&(k, v)| self.pickle.as_str(k).map(|k| (k.to_owned(), v)))
            .collect();
        let tensors: Vec<&(String, ObjectId)> = match &decl {
            Some((parameters, buffers)) => attributes
                .iter()
                .filter(|(name, _)| parameters.contains(name))
                .chain(attributes.iter().filter(|(name, _)| buffers.contains(name)))
                .collect(),
            None => attributes
                .iter()
                .filter(|(_, v)| self.is_tensor_object(*v))
                .collect(),
        };
        for (name, value) in tensors {
            let what = || format!("TorchScript attribute `{name}`");
            self.state_dict_tensor(*value, format!("{prefix}{name}"), depth, what, out)?;
        }
        for (name, value) in &attributes {
            if self.module_class(*value).is_some() {
                self.module_state_dict(*value, &format!("{prefix}{name}."), depth + 1, out)?;
            }
        }
        Ok(())
    }
}
