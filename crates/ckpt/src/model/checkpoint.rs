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
}

impl<'data> Checkpoint<'data> {
    /// A checkpoint read from `format`, with string `metadata` and the tree `root`.
    pub fn new(format: Format, metadata: BTreeMap<String, String>, root: Value<'data>) -> Self {
        Checkpoint {
            format,
            metadata,
            root,
        }
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
        Value::Dict(entries) => {
            for (key, child) in entries {
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
    use crate::model::{ByteOrder, Dtype, Storage};

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
        let root = Value::Dict(vec![
            (Value::Str("epoch".into()), Value::Int(3)),
            (
                Value::Str("model".into()),
                Value::Dict(vec![(Value::Str("fc.weight".into()), t())]),
            ),
            (
                Value::Str("optimizer".into()),
                Value::Dict(vec![(
                    Value::Str("state".into()),
                    Value::Dict(vec![(Value::Int(0), Value::List(vec![t(), t()]))]),
                )]),
            ),
        ]);
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
