//! The checkpoint a DCP folder holds: every entry read from its bytes (a tensor assembled
//! from its chunks, a value from its `torch.save` archive) and nested as `planner_data`
//! says, as `torch.distributed.checkpoint` loads them (an int path part makes a list).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::chunks::{self, Files};
use super::metadata::{Item, Key, Metadata};
use crate::error::{Error, ErrorKind, Result};
use crate::format::Format;
use crate::limits::Limits;
use crate::model::{Checkpoint, Details, Dict, TensorView, Value};
use crate::source::Member;

/// The tensors and values of a DCP folder whose `.metadata` (at `metadata_path`) says
/// `metadata`, read from `files`: the files it names, opened.
pub(crate) fn checkpoint<'a>(
    metadata: &Metadata,
    metadata_path: &Path,
    files: &[Member<'a>],
    limits: &Limits,
) -> Result<Checkpoint<'a>> {
    let opened = Files::new(metadata, files);
    let mut tree = Node::Map(Vec::new(), HashMap::new());
    let mut needs: Vec<String> = Vec::new();
    let max_index = metadata.entries.len();
    for entry in &metadata.entries {
        let located = |e: Error| e.with_path(metadata_path).with_tensor(entry.fqn.clone());
        let value = match &entry.item {
            Item::Tensor {
                dtype,
                size,
                chunks,
            } => {
                let tiles = chunks
                    .iter()
                    .map(|chunk| {
                        let file = opened.of(&chunk.place);
                        file.and_then(|file| chunks::tile(file, chunk, *dtype))
                            .map_err(located)
                    })
                    .collect::<Result<Vec<_>>>()?;
                let view = TensorView::tiled_with(*dtype, size.clone(), tiles, limits)
                    .map_err(|e| located(e.with_member(".metadata")))?;
                Value::Tensor(view)
            }
            Item::Bytes(place) => {
                let file = opened.of(place)?;
                let bytes =
                    chunks::slice(file, place).map_err(|e| e.with_tensor(entry.fqn.clone()))?;
                match crate::read_with(bytes, limits) {
                    Ok(value) => {
                        needs.extend(value.details().needs.iter().cloned());
                        value.root().clone()
                    }
                    // What the scanner calls dangerous refuses the whole folder.
                    Err(error) if error.kind() == ErrorKind::Dangerous => {
                        return Err(located(error.with_member(chunks::label(file, place))));
                    }
                    // Not plain data (an object of some class): listed, not read.
                    Err(error) => Value::Named {
                        type_name: "object".to_owned(),
                        name: format!("<not read: {}>", error.message()),
                    },
                }
            }
        };
        tree.set(&entry.path, value, max_index).map_err(located)?;
    }
    needs.sort();
    needs.dedup();
    let mut details = Details {
        globals: metadata.globals.clone(),
        needs,
        pickle_protocol: metadata.protocol,
        ..Details::default()
    };
    for (key, value) in &metadata.records {
        details.records.insert(key.clone(), value.clone());
    }
    details
        .records
        .insert("files".to_owned(), files.len().to_string());
    Ok(Checkpoint::new(
        Format::DistributedCheckpoint,
        BTreeMap::new(),
        tree.into_value(),
    )
    .with_details(details))
}

/// builds it.
enum Node<'a> {
    Map(Vec<(Key, Node<'a>)>, HashMap<Key, usize>),
    List(Vec<Option<Node<'a>>>),
    Leaf(Value<'a>),
    /// A place made for a leaf, not filled yet.
    Vacant,
}

impl<'a> Node<'a> {
    fn empty_for(key: &Key) -> Node<'a> {
        match key {
            Key::Str(_) => Node::Map(Vec::new(), HashMap::new()),
            Key::Int(_) => Node::List(Vec::new()),
        }
    }

    /// The child at `key`, made (as `fresh`) when missing.
    fn child(&mut self, key: &Key, fresh: Node<'a>, max_index: usize) -> Result<&mut Node<'a>> {
        match self {
            Node::Map(entries, index) => {
                let at = match index.get(key) {
                    Some(&at) => at,
                    None => {
                        index.insert(key.clone(), entries.len());
                        entries.push((key.clone(), fresh));
                        entries.len() - 1
                    }
                };
                entries
                    .get_mut(at)
                    .map(|(_, node)| node)
                    .ok_or_else(|| Error::malformed("inconsistent state dict"))
            }
            Node::List(items) => {
                let Key::Int(i) = *key else {
                    return Err(Error::malformed(
                        "planner_data puts a named entry inside a list",
                    ));
                };
                if i > max_index {
                    return Err(Error::malformed(format!(
                        "planner_data puts an entry at list index {i}, beyond the {max_index} \
                         entries of the checkpoint"
                    )));
                }
                if items.len() <= i {
                    items.resize_with(i + 1, || None);
                }
                let slot = items
                    .get_mut(i)
                    .ok_or_else(|| Error::malformed("inconsistent state dict"))?;
                Ok(slot.get_or_insert(fresh))
            }
            Node::Leaf(_) | Node::Vacant => Err(Error::malformed(
                "planner_data nests an entry inside another entry",
            )),
        }
    }

    fn set(&mut self, path: &[Key], value: Value<'a>, max_index: usize) -> Result<()> {
        let Some((last, parents)) = path.split_last() else {
            return Err(Error::malformed("an entry has an empty path"));
        };
        let mut node = self;
        for (i, key) in parents.iter().enumerate() {
            let next = path.get(i + 1).unwrap_or(last);
            node = node.child(key, Node::empty_for(next), max_index)?;
        }
        let slot = node.child(last, Node::Vacant, max_index)?;
        if !matches!(slot, Node::Vacant) {
            return Err(Error::malformed("two entries have the same path"));
        }
        *slot = Node::Leaf(value);
        Ok(())
    }

    fn into_value(self) -> Value<'a> {
        match self {
            Node::Leaf(value) => value,
            Node::Vacant => Value::None,
            Node::List(items) => Value::List(
                items
                    .into_iter()
                    .map(|item| item.map_or(Value::None, Node::into_value))
                    .collect(),
            ),
            Node::Map(entries, _) => Value::Dict(Dict::new(
                entries
                    .into_iter()
                    .map(|(key, node)| {
                        let key = match key {
                            Key::Str(s) => Value::Str(s),
                            Key::Int(i) => Value::Int(i64::try_from(i).unwrap_or(i64::MAX)),
                        };
                        (key, node.into_value())
                    })
                    .collect(),
            )),
        }
    }
}
