//! A whole checkpoint: the tree, the metadata and the format it came from.

use std::collections::BTreeMap;

use super::{Object, TensorView, Value, children};
use crate::format::Format;

/// A checkpoint read from a file (or about to be written to one).
///
/// Its tensors borrow their bytes from the source for `'data`.
#[derive(Debug, Clone)]
pub struct Checkpoint<'data> {
    format: Format,
    metadata: BTreeMap<String, String>,
    root: Value<'data>,
    details: Details,
}

/// What a checkpoint is, in the terms people ask about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// A flat mapping of names to tensors (`model.state_dict()`, a safetensors file).
    StateDict,
    /// A training checkpoint: a dict with a state dict, optimizer state, plain values...
    Checkpoint,
    /// A whole `nn.Module` (`torch.save(model)`), read as its `state_dict()`.
    Module,
    /// A TorchScript archive, read as its `state_dict()`.
    TorchScript,
    /// A single tensor.
    Tensor,
    /// Anything else (a list, a plain value...).
    Other,
}

impl Kind {
    /// A short stable name (`"state-dict"`...), as used in JSON reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::StateDict => "state-dict",
            Kind::Checkpoint => "checkpoint",
            Kind::Module => "module",
            Kind::TorchScript => "torchscript",
            Kind::Tensor => "tensor",
            Kind::Other => "other",
        }
    }
}

/// A kind serializes as its [`Kind::name`].
impl serde::Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// What a reader learnt about a file beyond its values: records, globals, classes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Details {
    /// Small text records of the container (`version`, `byteorder`, `.format_version`,
    /// `.storage_alignment`, `.data/serialization_id` of a torch zip; the legacy
    /// `protocol_version`, `little_endian`...).
    pub records: BTreeMap<String, String>,
    /// Every global the pickle references, `module.name` (Python 3 spelling), sorted.
    pub globals: Vec<String>,
    /// Classes that loading the file in Python needs (custom `nn.Module`s of a whole-model
    /// pickle, TorchScript classes), sorted.
    pub needs: Vec<String>,
    /// Whether `torch.load(f, weights_only=True)` accepts the file, when that question
    /// applies (PyTorch formats).
    pub weights_only: Option<bool>,
    /// The pickle protocol of the main pickle.
    pub pickle_protocol: Option<u8>,
    /// Whether some of the tree was recovered from whole `nn.Module` objects (their
    /// `state_dict()`).
    pub from_modules: bool,
    /// Whether the file's root object is a whole module (`torch.save(model)`).
    pub root_is_module: bool,
}

impl<'data> Checkpoint<'data> {
    /// A checkpoint read from `format`, with string `metadata` and the tree `root`.
    pub fn new(format: Format, metadata: BTreeMap<String, String>, root: Value<'data>) -> Self {
        Checkpoint {
            format,
            metadata,
            root,
            details: Details::default(),
        }
    }

    /// Sets what the reader learnt about the file.
    #[must_use]
    pub fn with_details(mut self, details: Details) -> Self {
        self.details = details;
        self
    }

    /// What the reader learnt about the file.
    pub fn details(&self) -> &Details {
        &self.details
    }

    /// What the checkpoint is.
    pub fn kind(&self) -> Kind {
        if self.format == Format::TorchScript {
            return Kind::TorchScript;
        }
        if self.details.root_is_module {
            return Kind::Module;
        }
        match &self.root {
            Value::Tensor(_) => Kind::Tensor,
            Value::Dict(dict)
                if dict
                    .entries
                    .iter()
                    .all(|(_, v)| matches!(v, Value::Tensor(_))) =>
            {
                Kind::StateDict
            }
            Value::Dict(_) => Kind::Checkpoint,
            _ => Kind::Other,
        }
    }

    /// The keys at the top of the tree, when it is a dict (a training checkpoint's
    /// `epoch`, `model`, `optimizer`...).
    pub fn top_level_keys(&self) -> Vec<String> {
        match &self.root {
            Value::Dict(dict) => dict.entries.iter().map(|(k, _)| k.name_segment()).collect(),
            _ => Vec::new(),
        }
    }

    /// Plain values (everything but tensors and non-empty containers), with their dotted
    /// names, depth first in the tree's order. Empty containers count as values.
    pub fn values(&self) -> Vec<(String, &Value<'data>)> {
        self.root.values()
    }

    /// Every object of a class ckpt keeps inert ([`Object`]) with its dotted name, depth
    /// first in the tree's order, an object before those it holds.
    pub fn objects(&self) -> Vec<(String, &Object<'data>)> {
        fn walk<'a, 'data>(
            value: &'a Value<'data>,
            path: &mut String,
            out: &mut Vec<(String, &'a Object<'data>)>,
        ) {
            if let Value::Object(object) = value {
                out.push((path.clone(), object));
            }
            for (segment, child) in children(value) {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&segment);
                walk(child, path, out);
                path.truncate(len);
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut String::new(), &mut out);
        out
    }

    /// Groups of tensor names whose views share one storage (tied weights, views of one
    /// buffer), each sorted, and sorted by their first name; tensors with a storage of
    /// their own are not listed.
    pub fn shared_storages(&self) -> Vec<Vec<String>> {
        let mut by_storage: std::collections::HashMap<(usize, usize), Vec<String>> =
            std::collections::HashMap::new();
        for (name, view) in self.tensors() {
            let bytes = view.storage().bytes();
            if bytes.is_empty() {
                continue;
            }
            by_storage
                .entry((bytes.as_ptr() as usize, bytes.len()))
                .or_default()
                .push(name);
        }
        let mut groups: Vec<Vec<String>> = by_storage
            .into_values()
            .map(|mut names| {
                names.sort();
                names
            })
            .filter(|names| names.len() > 1)
            .collect();
        groups.sort();
        groups
    }

    /// The format the checkpoint was read from.
    pub fn format(&self) -> Format {
        self.format
    }

    /// String metadata (safetensors `__metadata__`).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The tree of values.
    pub fn root(&self) -> &Value<'data> {
        &self.root
    }

    /// Every tensor with its full name, depth first in the tree's order.
    ///
    /// Names join the path with `.`: dict keys as they are, list and tuple indices in
    /// decimal (`optimizer.state.0.exp_avg`). A tensor at the root has the empty name.
    pub fn tensors(&self) -> Vec<(String, &TensorView<'data>)> {
        self.root.tensors()
    }

    /// The same tensors as [`Checkpoint::tensors`], one at a time, without building a list.
    pub fn iter_tensors(&self) -> Tensors<'_, 'data> {
        self.root.iter_tensors()
    }

    /// The tensor called `name` (as [`Checkpoint::tensors`] names it), found by following
    /// the path down the tree, not by listing every tensor. Where two paths give one name
    /// (a key that contains dots), the first in the tree's order, as `tensors` lists it.
    pub fn get(&self, name: &str) -> Option<&TensorView<'data>> {
        self.root.get(name)
    }

    /// The value at a dotted path of dict keys (`model`, `state_dict`,
    /// `module.encoder`), where a key may itself contain dots.
    pub fn subtree(&self, path: &str) -> Option<&Value<'data>> {
        self.root.subtree(path)
    }

    /// The value at `key` ([`Checkpoint::subtree`]), or an error that lists the top-level
    /// keys there are.
    pub fn select(&self, key: &str) -> crate::Result<&Value<'data>> {
        self.subtree(key).ok_or_else(|| {
            crate::Error::invalid(format!("the checkpoint has no key `{key}`")).with_hint(
                match self.top_level_keys().as_slice() {
                    [] => "the checkpoint is not a dict".to_owned(),
                    keys => format!("its top-level keys are: {}", keys.join(", ")),
                },
            )
        })
    }

    /// The checkpoint whose tree is the value at `key` ([`Checkpoint::select`]), with
    /// this one's format, metadata and details.
    pub fn at_key(&self, key: &str) -> crate::Result<Checkpoint<'data>> {
        Ok(Checkpoint {
            format: self.format,
            metadata: self.metadata.clone(),
            root: self.select(key)?.clone(),
            details: self.details.clone(),
        })
    }
}

impl<'data> Value<'data> {
    /// The value at a dotted path of dict keys and object attributes under this one (see
    /// [`Checkpoint::subtree`]); the longest key that matches wins.
    pub fn subtree(&self, path: &str) -> Option<&Value<'data>> {
        let mut value = self;
        let mut rest = path;
        while !rest.is_empty() {
            if !matches!(value, Value::Dict(_) | Value::Object(_)) {
                return None;
            }
            let (child, remaining) = children(value)
                .into_iter()
                .filter_map(|(key, child)| {
                    if rest == key {
                        Some((child, "", key.len()))
                    } else {
                        rest.strip_prefix(key.as_ref())
                            .and_then(|r| r.strip_prefix('.'))
                            .map(|r| (child, r, key.len()))
                    }
                })
                .max_by_key(|&(_, _, len)| len)
                .map(|(child, remaining, _)| (child, remaining))?;
            value = child;
            rest = remaining;
        }
        Some(value)
    }

    /// Every tensor in this value with its dotted name, depth first (see
    /// [`Checkpoint::tensors`]).
    pub fn tensors(&self) -> Vec<(String, &TensorView<'data>)> {
        self.iter_tensors().collect()
    }

    /// The tensors of [`Value::tensors`], one at a time.
    pub fn iter_tensors(&self) -> Tensors<'_, 'data> {
        Tensors {
            root: Some(self),
            path: String::new(),
            stack: Vec::new(),
        }
    }

    /// The tensor called `name` under this value (see [`Checkpoint::get`]).
    pub fn get(&self, name: &str) -> Option<&TensorView<'data>> {
        // Depth first, children in order, each child only where its segment starts the
        // rest of the name: the first match is the first `tensors` lists under that name.
        let mut stack = vec![(self, name)];
        while let Some((value, rest)) = stack.pop() {
            if let Value::Tensor(view) = value {
                if rest.is_empty() {
                    return Some(view);
                }
                continue;
            }
            let mut found = Vec::new();
            for (segment, child) in children(value) {
                if rest == segment {
                    found.push((child, ""));
                } else if let Some(r) = rest
                    .strip_prefix(segment.as_ref())
                    .and_then(|r| r.strip_prefix('.'))
                {
                    found.push((child, r));
                }
            }
            // Reversed, so that the first child is tried first.
            stack.extend(found.into_iter().rev());
        }
        None
    }

    /// Every plain value in this value with its dotted name (see [`Checkpoint::values`]).
    pub fn values(&self) -> Vec<(String, &Value<'data>)> {
        let mut out = Vec::new();
        let mut path = String::new();
        // An empty container at the root (an empty state dict) holds nothing to list.
        if !is_empty_container(self) {
            collect_values(self, &mut path, &mut out);
        }
        out
    }
}

fn is_empty_container(value: &Value<'_>) -> bool {
    match value {
        Value::Dict(dict) => dict.entries.is_empty(),
        Value::List(items) | Value::Tuple(items) | Value::Set(items) | Value::FrozenSet(items) => {
            items.is_empty()
        }
        _ => false,
    }
}

/// Whether the plain-value listing shows `value` as one value rather than its parts: not a
/// non-empty dict, list or tuple, nor an object with attributes (a namespace, a config).
fn is_leaf(value: &Value<'_>) -> bool {
    match value {
        Value::Dict(dict) => dict.entries.is_empty(),
        Value::List(items) | Value::Tuple(items) => items.is_empty(),
        Value::Object(object) => !object.has_attributes() || object.fields().is_empty(),
        _ => true,
    }
}

fn collect_values<'a, 'data>(
    value: &'a Value<'data>,
    path: &mut String,
    out: &mut Vec<(String, &'a Value<'data>)>,
) {
    match value {
        Value::Tensor(_) => {}
        other if is_leaf(other) => out.push((path.clone(), other)),
        other => {
            for (segment, child) in children(other) {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&segment);
                collect_values(child, path, out);
                path.truncate(len);
            }
        }
    }
}

/// The named children of a container left to walk.
type Children<'a, 'data> = std::vec::IntoIter<(std::borrow::Cow<'a, str>, &'a Value<'data>)>;

/// The tensors under a value with their dotted names, depth first ([`Value::iter_tensors`]).
#[derive(Debug)]
pub struct Tensors<'a, 'data> {
    /// The value to start from, until the first call.
    root: Option<&'a Value<'data>>,
    /// The name of the container being walked.
    path: String,
    /// For each container being walked: the length of its name, and its children left.
    stack: Vec<(usize, Children<'a, 'data>)>,
}

impl<'a, 'data> Iterator for Tensors<'a, 'data> {
    type Item = (String, &'a TensorView<'data>);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(root) = self.root.take() {
            if let Value::Tensor(view) = root {
                return Some((String::new(), view));
            }
            self.stack.push((0, children(root).into_iter()));
        }
        loop {
            let (base, children_left) = self.stack.last_mut()?;
            let base = *base;
            let Some((segment, child)) = children_left.next() else {
                self.stack.pop();
                continue;
            };
            self.path.truncate(base);
            if base > 0 {
                self.path.push('.');
            }
            self.path.push_str(&segment);
            match child {
                Value::Tensor(view) => return Some((self.path.clone(), view)),
                _ => self
                    .stack
                    .push((self.path.len(), children(child).into_iter())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ByteOrder, Dict, Dtype, Storage};

    #[test]
    fn tensor_names_join_the_path() {
        let bytes = [0u8; 4];
        let t = || {
            Value::Tensor(
                TensorView::contiguous(
                    Dtype::Float32,
                    vec![],
                    Storage::new(&bytes, ByteOrder::Little),
                )
                .unwrap(),
            )
        };
        let root = Value::Dict(Dict::new(vec![
            (Value::Str("epoch".into()), Value::Int(3)),
            (
                Value::Str("model".into()),
                Value::Dict(Dict::ordered(vec![(Value::Str("fc.weight".into()), t())])),
            ),
            (
                Value::Str("optimizer".into()),
                Value::Dict(Dict::new(vec![(
                    Value::Str("state".into()),
                    Value::Dict(Dict::new(vec![(
                        Value::Int(0),
                        Value::List(vec![t(), t()]),
                    )])),
                )])),
            ),
        ]));
        let checkpoint = Checkpoint::new(Format::Safetensors, BTreeMap::new(), root);
        let names: Vec<_> = checkpoint.tensors().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "model.fc.weight",
                "optimizer.state.0.0",
                "optimizer.state.0.1"
            ]
        );
    }
}
