//! Plain values: `OrderedDict` (with its `_metadata`), `Counter`, sets, complex numbers,
//! bytes, slices, torch's small values (`torch.Size`, `torch.device`, layouts), and Python's
//! rule for repeated dict keys.

use std::collections::HashMap;

use ckpt_pickle::{Object, ObjectId};

use super::Walker;
use crate::error::Result;
use crate::model::{Dict, Value};
use crate::torch::globals::Meaning;

impl<'data> Walker<'_, '_, '_, 'data> {
    /// `OrderedDict(...)` with the entries set later and attributes from `BUILD`.
    pub(super) fn ordered_dict(
        &mut self,
        id: ObjectId,
        args: &[ObjectId],
        depth: usize,
    ) -> Result<Value<'data>> {
        let mut entries = match args {
            [] => Vec::new(),
            // Python 2 era: OrderedDict([[k, v], ...]).
            [items] => {
                let pairs = self
                    .pickle
                    .as_seq(*items)
                    .map(<[_]>::to_vec)
                    .unwrap_or_default();
                let mut entries = Vec::with_capacity(pairs.len());
                for pair in pairs {
                    match self.pickle.as_seq(pair) {
                        Some(&[k, v]) => {
                            entries.push((self.value(k, depth + 1)?, self.value(v, depth + 1)?))
                        }
                        _ => {
                            return Err(
                                self.error(pair, "OrderedDict item is not a (key, value) pair")
                            );
                        }
                    }
                }
                entries
            }
            _ => return Err(self.error(id, "OrderedDict takes at most one argument")),
        };
        let extras = self.pickle.extras(id).clone();
        entries.extend(self.entries(&extras.entries, depth)?);
        let mut dict = Dict::ordered(last_wins(entries));
        for state in extras.states {
            // `BUILD` of a dict state onto an OrderedDict sets attributes (`_metadata`).
            if let Value::Dict(attrs) = self.value(state, depth + 1)? {
                for (key, value) in attrs.entries {
                    dict.attributes.push((key.name_segment(), value));
                }
            }
        }
        Ok(Value::Dict(dict))
    }

    /// `Counter(mapping)`, with the entries set later.
    pub(super) fn counter(
        &mut self,
        id: ObjectId,
        args: &[ObjectId],
        depth: usize,
    ) -> Result<Value<'data>> {
        let mut entries = match args {
            [] => Vec::new(),
            [mapping] => match self.value(*mapping, depth + 1)? {
                Value::Dict(dict) => dict.entries,
                _ => return Err(self.error(id, "Counter of something that is not a dict")),
            },
            _ => return Err(self.error(id, "Counter takes one mapping")),
        };
        entries.extend(self.entries(&self.pickle.extras(id).entries.clone(), depth)?);
        Ok(Value::Dict(Dict::new(last_wins(entries))))
    }

    /// `set(items)` or `frozenset(items)`.
    pub(super) fn set(
        &mut self,
        id: ObjectId,
        meaning: Meaning,
        name: &str,
        args: &[ObjectId],
        depth: usize,
    ) -> Result<Value<'data>> {
        let items = match args {
            [] => Vec::new(),
            [items] => match self.value(*items, depth + 1)? {
                Value::List(items)
                | Value::Tuple(items)
                | Value::Set(items)
                | Value::FrozenSet(items) => items,
                _ => {
                    return Err(
                        self.error(id, format!("{name}() of something that is not a sequence"))
                    );
                }
            },
            _ => return Err(self.error(id, format!("{name}() takes one sequence"))),
        };
        Ok(if meaning == Meaning::Set {
            Value::Set(items)
        } else {
            Value::FrozenSet(items)
        })
    }

    /// `complex(real, imag)`.
    pub(super) fn complex(&self, id: ObjectId, args: &[ObjectId]) -> Result<Value<'data>> {
        let part = |w: &Self, i: usize| -> Result<f64> {
            match args.get(i).map(|&a| w.pickle.get(a)) {
                None => Ok(0.0),
                Some(Object::Float(x)) => Ok(*x),
                #[allow(clippy::cast_precision_loss)] // Python's complex(int) does the same
                Some(Object::Int(i)) => Ok(*i as f64),
                Some(_) => Err(w.error(id, "complex() of something that is not a number")),
            }
        };
        Ok(Value::Complex(part(self, 0)?, part(self, 1)?))
    }

    /// `bytearray(data[, encoding])`.
    pub(super) fn bytearray(
        &mut self,
        id: ObjectId,
        args: &[ObjectId],
        depth: usize,
    ) -> Result<Value<'data>> {
        match args {
            [] => Ok(Value::ByteArray(Vec::new())),
            [data, rest @ ..] => {
                let encoding = rest
                    .first()
                    .and_then(|&e| self.text(e))
                    .map(|e| e.to_ascii_lowercase().replace('_', "-"));
                match (self.value(*data, depth + 1)?, encoding.as_deref()) {
                    (Value::Bytes(bytes) | Value::ByteArray(bytes), None) => {
                        Ok(Value::ByteArray(bytes))
                    }
                    (Value::Str(text), Some("latin1" | "latin-1" | "iso-8859-1")) => {
                        Ok(Value::ByteArray(latin1(&text).ok_or_else(|| {
                            self.error(id, "bytearray() of text that is not Latin-1")
                        })?))
                    }
                    (Value::Str(text), Some("utf-8" | "utf8")) => {
                        Ok(Value::ByteArray(text.into_bytes()))
                    }
                    _ => {
                        Err(self.error(id, "bytearray() of something ckpt does not read as bytes"))
                    }
                }
            }
        }
    }

    /// `_codecs.encode(text, encoding)`: how protocol 2 pickles bytes.
    pub(super) fn encode(&self, id: ObjectId, args: &[ObjectId]) -> Result<Value<'data>> {
        match args {
            [text, encoding] => {
                let text = self.text(*text).ok_or_else(|| {
                    self.error(id, "_codecs.encode of something that is not text")
                })?;
                let encoding = self
                    .text(*encoding)
                    .unwrap_or_default()
                    .to_ascii_lowercase()
                    .replace('_', "-");
                let bytes = match encoding.as_str() {
                    "latin1" | "latin-1" | "iso-8859-1" => latin1(&text),
                    "utf-8" | "utf8" => Some(text.into_bytes()),
                    "ascii" if text.is_ascii() => Some(text.into_bytes()),
                    _ => None,
                };
                bytes.map(Value::Bytes).ok_or_else(|| {
                    self.error(
                        id,
                        format!("_codecs.encode with encoding `{encoding}` ckpt does not handle"),
                    )
                })
            }
            _ => Err(self.error(id, "_codecs.encode takes text and an encoding")),
        }
    }

    /// `slice(start, stop, step)`.
    pub(super) fn slice(
        &mut self,
        id: ObjectId,
        args: &[ObjectId],
        depth: usize,
    ) -> Result<Value<'data>> {
        let mut parts = self.values(args, depth)?;
        parts.resize(3, Value::None);
        let [a, b, c]: [Value<'data>; 3] = parts
            .try_into()
            .map_err(|_| self.error(id, "slice() takes up to 3 arguments"))?;
        Ok(Value::Slice(Box::new([a, b, c])))
    }

    /// `torch.Size(dims)`.
    pub(super) fn size(&self, id: ObjectId, args: &[ObjectId]) -> Result<Value<'data>> {
        match args {
            [dims] => Ok(Value::Size(
                self.dims(*dims, "torch.Size")?
                    .into_iter()
                    .map(|d| i64::try_from(d).unwrap_or(i64::MAX))
                    .collect(),
            )),
            _ => Err(self.error(id, "torch.Size takes one tuple")),
        }
    }

    /// `torch.device(type[, index])`.
    pub(super) fn device(&self, id: ObjectId, args: &[ObjectId]) -> Result<Value<'data>> {
        let kind = args
            .first()
            .and_then(|&a| self.text(a))
            .ok_or_else(|| self.error(id, "torch.device needs a device type"))?;
        Ok(Value::Device(match args.get(1) {
            Some(&index) if !matches!(self.pickle.get(index), Object::None) => {
                format!("{kind}:{}", self.int(index, "device index")?)
            }
            _ => kind,
        }))
    }

    /// `torch.serialization._get_layout(name)`: a layout, by name.
    pub(super) fn layout(&self, id: ObjectId, args: &[ObjectId]) -> Result<Value<'data>> {
        let name = match args {
            [name] => self.text(*name),
            _ => None,
        }
        .ok_or_else(|| self.error(id, "_get_layout takes the layout's name"))?;
        Ok(Value::Named {
            type_name: "torch.layout".to_owned(),
            name,
        })
    }
}

/// Keeps the last value of each key, in the key's first place, as a Python dict does.
/// Keys are compared by value for plain keys (text, numbers, bytes, tuples of those).
pub(super) fn last_wins<'data>(
    entries: Vec<(Value<'data>, Value<'data>)>,
) -> Vec<(Value<'data>, Value<'data>)> {
    fn identity(key: &Value<'_>) -> Option<String> {
        Some(match key {
            Value::Str(s) => format!("s{s}"),
            Value::Int(i) => format!("n{i}"),
            Value::Bool(b) => format!("n{}", i64::from(*b)),
            Value::BigInt(digits) => format!("n{digits}"),
            #[allow(clippy::cast_possible_truncation)] // only when exactly integral
            Value::Float(x) if x.fract() == 0.0 && x.abs() < 9e15 => format!("n{}", *x as i64),
            Value::Float(x) => format!("f{}", x.to_bits()),
            Value::None => "None".to_owned(),
            Value::Bytes(b) => format!("b{b:?}"),
            Value::Tuple(items) => {
                let parts: Option<Vec<String>> = items.iter().map(identity).collect();
                format!("t({})", parts?.join(","))
            }
            _ => return None,
        })
    }
    keep_last(entries, identity)
}

/// Keeps the last value of each key, in the key's first place. Keys without an identity
/// (unhashable or unknown to ckpt) are all kept.
pub(super) fn keep_last<K, V, I: std::hash::Hash + Eq>(
    entries: Vec<(K, V)>,
    mut identity: impl FnMut(&K) -> Option<I>,
) -> Vec<(K, V)> {
    let mut index: HashMap<I, usize> = HashMap::new();
    let mut out: Vec<(K, V)> = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        match identity(&key) {
            Some(id) => match index.get(&id) {
                Some(&slot) => {
                    if let Some(entry) = out.get_mut(slot) {
                        entry.1 = value;
                    }
                }
                None => {
                    index.insert(id, out.len());
                    out.push((key, value));
                }
            },
            None => out.push((key, value)),
        }
    }
    out
}

/// Latin-1 encoding of text whose characters are all below U+0100.
pub(super) fn latin1(text: &str) -> Option<Vec<u8>> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect()
}
