//! A whole checkpoint: the tree, the metadata and the format it came from.

use std::collections::BTreeMap;

use super::{TensorView, Value};
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

    /// Plain values (everything but tensors and non-empty containers), with their dotted
    /// names, depth first in the tree's order. Empty containers count as values.
    pub fn values(&self) -> Vec<(String, &Value<'data>)> {
        let mut out = Vec::new();
        let mut path = String::new();
        collect_values(&self.root, &mut path, &mut out);
        out
    }

    /// Groups of tensor names whose views share one storage (tied weights, views of one
    /// buffer), in tree order; tensors with a storage of their own are not listed.
    pub fn shared_storages(&self) -> Vec<Vec<String>> {
        let tensors = self.tensors();
        let mut groups: Vec<(usize, Vec<String>)> = Vec::new();
        for (i, (name, view)) in tensors.iter().enumerate() {
            if view.storage().bytes().is_empty() {
                continue;
            }
            match groups.iter_mut().find(|(first, _)| {
                tensors
                    .get(*first)
                    .is_some_and(|(_, v)| v.storage().same_as(view.storage()))
            }) {
                Some((_, names)) => names.push(name.clone()),
                None => groups.push((i, vec![name.clone()])),
            }
        }
        groups
            .into_iter()
            .map(|(_, names)| names)
            .filter(|names| names.len() > 1)
            .collect()
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
        let mut out = Vec::new();
        let mut path = String::new();
        collect(&self.root, &mut path, &mut out);
        out
    }
}

fn collect_values<'a, 'data>(
    value: &'a Value<'data>,
    path: &mut String,
    out: &mut Vec<(String, &'a Value<'data>)>,
) {
    let mut descend = |segment: &str, child: &'a Value<'data>, path: &mut String| {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(segment);
        collect_values(child, path, out);
        path.truncate(len);
    };
    match value {
        Value::Tensor(_) => {}
        Value::Dict(dict) if !dict.entries.is_empty() => {
            for (key, child) in &dict.entries {
                descend(&key.name_segment(), child, path);
            }
        }
        Value::List(items) | Value::Tuple(items) if !items.is_empty() => {
            for (i, child) in items.iter().enumerate() {
                descend(&i.to_string(), child, path);
            }
        }
        other => out.push((path.clone(), other)),
    }
}

fn collect<'a, 'data>(
    value: &'a Value<'data>,
    path: &mut String,
    out: &mut Vec<(String, &'a TensorView<'data>)>,
) {
    let mut descend = |segment: &str, child: &'a Value<'data>, path: &mut String| {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(segment);
        collect(child, path, out);
        path.truncate(len);
    };
    match value {
        Value::Tensor(view) => out.push((path.clone(), view)),
        Value::Dict(dict) => {
            for (key, child) in &dict.entries {
                descend(&key.name_segment(), child, path);
            }
        }
        Value::List(items) | Value::Tuple(items) => {
            for (i, child) in items.iter().enumerate() {
                descend(&i.to_string(), child, path);
            }
        }
        _ => {}
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
