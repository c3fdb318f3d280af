//! Whole `nn.Module` pickles: which objects are modules, their merged `BUILD` states, and
//! the `state_dict()` an `nn.Module` would give, without running it (formats.md §3.2).

use std::rc::Rc;

use ckpt_pickle::{Object, ObjectId};

use super::check::bare_instance;
use super::values::{keep_last, last_wins};
use super::{Container, Walker};
use crate::error::Result;
use crate::model::{Dict, Value};
use crate::torch::globals::Meaning;

/// A module's merged `BUILD` state: `(key, value)` pairs, last key wins.
pub(super) type State = Rc<[(ObjectId, ObjectId)]>;

impl<'data> Walker<'_, '_, '_, 'data> {
    /// A module object, read as the `state_dict()` it would give.
    pub(super) fn module_value(&mut self, id: ObjectId, depth: usize) -> Result<Value<'data>> {
        self.from_modules = true;
        let mut entries = Vec::new();
        // `id` is already entered by `value`.
        self.module_state_dict_inner(id, "", depth, &mut entries)?;
        Ok(Value::Dict(Dict::ordered(last_wins(entries))))
    }

    /// The `BUILD` states of an object, merged as Python's `__dict__.update` does (a later
    /// value for a key wins, in the key's first place), when they are dicts.
    pub(super) fn state_entries(&self, id: ObjectId) -> Option<State> {
        if let Some(cached) = self.states.borrow().get(&id) {
            return cached.clone();
        }
        let merged = self.merge_states(id);
        self.states.borrow_mut().insert(id, merged.clone());
        merged
    }

    fn merge_states(&self, id: ObjectId) -> Option<State> {
        let states = &self.pickle.extras(id).states;
        if states.is_empty() {
            return None;
        }
        let mut entries = Vec::new();
        for &state in states {
            entries.extend(self.dict_entries(state)?);
        }
        let merged = keep_last(entries, |&key| self.pickle.as_str(key));
        Some(merged.into())
    }

    /// The entries of a dict-like object: a dict, or an `OrderedDict(...)` call.
    fn dict_entries(&self, id: ObjectId) -> Option<Vec<(ObjectId, ObjectId)>> {
        match self.pickle.get(id) {
            Object::Dict(entries) => Some(entries.clone()),
            Object::Call { callable, .. }
                if self.meaning_of(*callable) == Some(Meaning::OrderedDict) =>
            {
                Some(self.pickle.extras(id).entries.clone())
            }
            _ => None,
        }
    }

    /// If `id` is an instance of an `nn.Module` (its state has `_parameters`, `_buffers`
    /// and `_modules`) or of a TorchScript class (`__torch__.*`), its class name.
    ///
    /// Only objects that pickle rebuilds without calling their class are modules here:
    /// `NEWOBJ` (or `NEWOBJ_EX`) with no arguments, then `BUILD`, which is how
    /// `nn.Module` pickles. `INST`, `OBJ` and `NEWOBJ` with arguments call code.
    pub(super) fn module_class(&self, id: ObjectId) -> Option<(String, String)> {
        if let Some(cached) = self.modules.borrow().get(&id) {
            return cached.clone();
        }
        let class = self.find_module_class(id);
        self.modules.borrow_mut().insert(id, class.clone());
        class
    }

    fn find_module_class(&self, id: ObjectId) -> Option<(String, String)> {
        if !bare_instance(self.pickle, id) {
            return None;
        }
        let Object::Instance { class, .. } = self.pickle.get(id) else {
            return None;
        };
        let (module, name) = self.class_of(*class)?;
        if self.container == Container::TorchScript && module.starts_with("__torch__") {
            return Some((module, name));
        }
        let entries = self.state_entries(id)?;
        let has = |key: &str| {
            entries
                .iter()
                .any(|&(k, _)| self.pickle.as_str(k) == Some(key))
        };
        (has("_parameters") && has("_buffers") && has("_modules")).then_some((module, name))
    }

    /// An `nn.Module`'s `state_dict()` without running it: parameters, then persistent
    /// buffers, then submodules depth first, skipping `None`s (formats.md §3.2).
    pub(super) fn nn_module_state_dict(
        &mut self,
        state: &[(ObjectId, ObjectId)],
        prefix: &str,
        depth: usize,
        out: &mut Vec<(Value<'data>, Value<'data>)>,
    ) -> Result<()> {
        let field = |w: &Self, key: &str| {
            state
                .iter()
                .find(|&&(k, _)| w.pickle.as_str(k) == Some(key))
                .map(|&(_, v)| v)
        };
        let non_persistent: Vec<String> = match field(self, "_non_persistent_buffers_set") {
            Some(set) => match self.value(set, depth + 1)? {
                Value::Set(items) | Value::List(items) | Value::FrozenSet(items) => items
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::Str(s) => Some(s),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            },
            None => Vec::new(),
        };
        for (key, skip) in [("_parameters", &Vec::new()), ("_buffers", &non_persistent)] {
            let Some(container) = field(self, key) else {
                continue;
            };
            let entries = self
                .dict_entries(container)
                .ok_or_else(|| self.error(container, format!("module {key} is not a dict")))?;
            for (name, value) in entries {
                let name = self
                    .text(name)
                    .ok_or_else(|| self.error(name, "parameter name is not text"))?;
                if skip.contains(&name) {
                    continue;
                }
                let what = || format!("module {key} entry `{name}`");
                self.state_dict_tensor(value, format!("{prefix}{name}"), depth, what, out)?;
            }
        }
        if let Some(container) = field(self, "_modules") {
            let entries = self
                .dict_entries(container)
                .ok_or_else(|| self.error(container, "module _modules is not a dict"))?;
            for (name, child) in entries {
                let name = self
                    .text(name)
                    .ok_or_else(|| self.error(name, "submodule name is not text"))?;
                if matches!(self.pickle.get(child), Object::None) {
                    continue;
                }
                self.module_state_dict(child, &format!("{prefix}{name}."), depth + 1, out)?;
            }
        }
        Ok(())
    }

    /// Adds the tensor `value` to a state dict as `key`, detached as `state_dict()` gives
    /// it (a plain tensor: no gradients, no attributes); `None` adds nothing. `what` names
    /// the entry in the error when it is something else.
    pub(super) fn state_dict_tensor(
        &mut self,
        value: ObjectId,
        key: String,
        depth: usize,
        what: impl FnOnce() -> String,
        out: &mut Vec<(Value<'data>, Value<'data>)>,
    ) -> Result<()> {
        if matches!(self.pickle.get(value), Object::None) {
            return Ok(());
        }
        let Value::Tensor(tensor) = self.value(value, depth + 1)? else {
            return Err(self.error(value, format!("{} is not a tensor", what())));
        };
        out.push((Value::Str(key), Value::Tensor(tensor.detached())));
        Ok(())
    }
}
