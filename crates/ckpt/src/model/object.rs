//! Objects of classes ckpt gives no meaning to, kept as the pickle stores them.
//!
//! A training checkpoint holds more than tensors: `argparse.Namespace` arguments, omegaconf
//! configs, dataclasses, enums, paths, dates, `defaultdict`s, RNG states. Loading such a
//! file in Python imports and runs those classes; ckpt does neither. It keeps each one as
//! an inert [`Object`]: the class's name and the parts the pickle gave it (constructor
//! arguments, the state `BUILD` hands to it, items and entries set on it), so that what it
//! holds can be shown and its tensors reached by name.
//!
//! The parts are shown as stored, not as the class would rebuild them: a class's
//! `__setstate__` or `__reduce__` may transform what it holds.

use std::borrow::Cow;
use std::fmt;

use super::Value;

/// An instance of a class ckpt gives no meaning to, as the pickle stores it: nothing was
/// imported, constructed or called.
///
/// Its named parts ([`Object::fields`]) are what the tree shows under it: dict entries and
/// the attributes of its state by key, list items and constructor arguments by index. Known
/// shapes have a natural [`reading`](Object::reading): a path its text, a date its ISO
/// text, an omegaconf config the dict or list it holds.
#[derive(Debug, Clone)]
pub struct Object<'data> {
    /// The class, `module.qualname` as the pickle names it (`argparse.Namespace`).
    pub class: String,
    /// The arguments of its construction (`cls(*args)`, `cls.__new__(cls, *args)`).
    pub args: Vec<Value<'data>>,
    /// Keyword arguments of its construction (`NEWOBJ_EX`).
    pub kwargs: Vec<(Value<'data>, Value<'data>)>,
    /// What `BUILD` gave it (several states merged as `__dict__.update` would when they are
    /// all dicts), usually its attribute dict.
    pub state: Option<Value<'data>>,
    /// Items appended to it (a list subclass).
    pub items: Vec<Value<'data>>,
    /// Entries set on it (a dict subclass: `defaultdict`, Lightning's `AttributeDict`).
    pub entries: Vec<(Value<'data>, Value<'data>)>,
    /// The value it stands for when ckpt knows the shape (see [`Object`]); its parts are
    /// then the reading's.
    pub reading: Option<Value<'data>>,
}

impl<'data> Object<'data> {
    /// An object of `class` with no parts yet.
    pub fn new(class: impl Into<String>) -> Self {
        Object {
            class: class.into(),
            args: Vec::new(),
            kwargs: Vec::new(),
            state: None,
            items: Vec::new(),
            entries: Vec::new(),
            reading: None,
        }
    }

    /// The class name without its module (`Namespace`).
    pub fn short_class(&self) -> &str {
        self.class.rsplit('.').next().unwrap_or(&self.class)
    }

    /// The named parts of the object: entries (by key), the attributes of a dict state (by
    /// name; both dicts of a `(dict, slots)` state; a state that is not a dict as
    /// `state`), items (by index), then constructor arguments by index and keyword
    /// arguments by name (beside attributes, an argument that is only a class, a function
    /// or `None` is left out). With a [`reading`](Object::reading), its parts instead.
    pub fn fields(&self) -> Vec<(Cow<'_, str>, &Value<'data>)> {
        if let Some(reading) = &self.reading {
            return children(reading);
        }
        let mut out: Vec<(Cow<'_, str>, &Value<'data>)> = Vec::new();
        for (key, value) in &self.entries {
            out.push((Cow::Owned(key.name_segment()), value));
        }
        match &self.state {
            Some(Value::Dict(dict)) => {
                for (key, value) in &dict.entries {
                    out.push((Cow::Owned(key.name_segment()), value));
                }
            }
            Some(Value::Tuple(parts))
                if parts.len() == 2
                    && parts
                        .iter()
                        .all(|p| matches!(p, Value::Dict(_) | Value::None)) =>
            {
                for part in parts {
                    if let Value::Dict(dict) = part {
                        for (key, value) in &dict.entries {
                            out.push((Cow::Owned(key.name_segment()), value));
                        }
                    }
                }
            }
            Some(Value::None) | None => {}
            Some(other) => out.push((Cow::Borrowed("state"), other)),
        }
        for (i, item) in self.items.iter().enumerate() {
            out.push((Cow::Owned(i.to_string()), item));
        }
        let attributes = !out.is_empty();
        for (i, arg) in self.args.iter().enumerate() {
            // A class or function passed along (a defaultdict's factory) is shown in the
            // object's line; as a field beside attributes it would only be noise.
            if !(attributes && matches!(arg, Value::Global(_) | Value::None)) {
                out.push((Cow::Owned(i.to_string()), arg));
            }
        }
        for (key, value) in &self.kwargs {
            out.push((Cow::Owned(key.name_segment()), value));
        }
        out
    }

    /// Whether the object holds named attributes or entries (a namespace, a config, a
    /// dict subclass), rather than being a value of a few arguments (an enum, a path).
    pub fn has_attributes(&self) -> bool {
        match &self.reading {
            Some(reading) => matches!(reading, Value::Dict(_) | Value::List(_)),
            None => {
                !self.entries.is_empty()
                    || !self.items.is_empty()
                    || matches!(&self.state, Some(s) if !matches!(s, Value::None))
            }
        }
    }
}

/// The named children of a container value (dict entries by key, list and tuple items by
/// index, an object's fields); none for anything else.
pub(crate) fn children<'a, 'data>(
    value: &'a Value<'data>,
) -> Vec<(Cow<'a, str>, &'a Value<'data>)> {
    match value {
        Value::Dict(dict) => dict
            .entries
            .iter()
            .map(|(k, v)| (Cow::Owned(k.name_segment()), v))
            .collect(),
        Value::List(items) | Value::Tuple(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (Cow::Owned(i.to_string()), v))
            .collect(),
        Value::Object(object) => object.fields(),
        _ => Vec::new(),
    }
}

/// `Class(arg, key=value, {entries}, [items])`, Python-like: the reading when there is
/// one (`pathlib.PosixPath("/data")`), otherwise the arguments, then the attributes of
/// a dict state as `name=value`, then entries and items.
impl fmt::Display for Object<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.class)?;
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            if first {
                first = false;
                Ok(())
            } else {
                f.write_str(", ")
            }
        };
        if let Some(reading) = &self.reading {
            sep(f)?;
            write!(f, "{reading}")?;
            return f.write_str(")");
        }
        for arg in &self.args {
            sep(f)?;
            write!(f, "{arg}")?;
        }
        for (key, value) in &self.kwargs {
            sep(f)?;
            write!(f, "{}={value}", key.name_segment())?;
        }
        match &self.state {
            Some(Value::Dict(dict))
                if dict.entries.iter().all(|(k, _)| matches!(k, Value::Str(_))) =>
            {
                for (key, value) in &dict.entries {
                    sep(f)?;
                    write!(f, "{}={value}", key.name_segment())?;
                }
            }
            Some(Value::None) | None => {}
            Some(state) => {
                sep(f)?;
                write!(f, "state={state}")?;
            }
        }
        if !self.entries.is_empty() {
            sep(f)?;
            f.write_str("{")?;
            for (i, (key, value)) in self.entries.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{key}: {value}")?;
            }
            f.write_str("}")?;
        }
        if !self.items.is_empty() {
            sep(f)?;
            f.write_str("[")?;
            for (i, item) in self.items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{item}")?;
            }
            f.write_str("]")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Dict;

    fn s(text: &str) -> Value<'static> {
        Value::Str(text.to_owned())
    }

    #[test]
    fn a_namespace_shows_its_attributes() {
        let mut object = Object::new("argparse.Namespace");
        object.state = Some(Value::Dict(Dict::new(vec![
            (s("lr"), Value::Float(0.1)),
            (s("arch"), s("resnet")),
        ])));
        assert_eq!(
            object.to_string(),
            r#"argparse.Namespace(lr=0.1, arch="resnet")"#
        );
        let names: Vec<_> = object.fields().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["lr", "arch"]);
        assert!(object.has_attributes());
        assert_eq!(object.short_class(), "Namespace");
    }

    #[test]
    fn an_enum_is_its_value_with_the_class_named() {
        let mut object = Object::new("transformers.trainer_utils.SchedulerType");
        object.args = vec![s("linear")];
        assert_eq!(
            object.to_string(),
            r#"transformers.trainer_utils.SchedulerType("linear")"#
        );
        assert!(!object.has_attributes());
        let names: Vec<_> = object.fields().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["0"]);
    }

    #[test]
    fn a_defaultdict_names_its_factory_and_entries() {
        let mut object = Object::new("collections.defaultdict");
        object.args = vec![Value::Global("builtins.list".into())];
        object.entries = vec![(s("a"), Value::List(vec![Value::Int(1)]))];
        assert_eq!(
            object.to_string(),
            r#"collections.defaultdict(builtins.list, {"a": [1]})"#
        );
        let names: Vec<_> = object.fields().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["a"]);
    }

    #[test]
    fn a_reading_stands_for_the_parts() {
        let mut object = Object::new("pathlib.PosixPath");
        object.args = vec![s("/data"), s("x")];
        object.reading = Some(s("/data/x"));
        assert_eq!(object.to_string(), r#"pathlib.PosixPath("/data/x")"#);
        assert!(object.fields().is_empty());
        assert!(!object.has_attributes());
    }

    #[test]
    fn a_state_that_is_not_a_dict_is_named_state() {
        let mut object = Object::new("torch.Generator");
        object.state = Some(Value::Tuple(vec![Value::Int(1), Value::Int(2)]));
        let names: Vec<_> = object.fields().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["state"]);
        assert_eq!(object.to_string(), "torch.Generator(state=(1, 2))");
    }
}
