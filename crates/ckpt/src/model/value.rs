//! Plain values and the tree that holds tensors.

use std::fmt;

use super::TensorView;

/// A node of a checkpoint's tree: a tensor, a container, or a plain value.
///
/// The variants mirror what a weights-only pickle can hold, so that a torch checkpoint's
/// structure (`{"epoch": 7, "model": {...}}`) survives reading and writing.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Value<'data> {
    /// Python `None`.
    None,
    /// A boolean.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// An integer that does not fit in 64 bits, in decimal.
    BigInt(String),
    /// A float.
    Float(f64),
    /// A text string.
    Str(String),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Value<'data>>),
    /// A tuple.
    Tuple(Vec<Value<'data>>),
    /// A dict (or `OrderedDict`), in insertion order. Keys are usually strings, but ints
    /// and other plain values occur (optimizer state is keyed by parameter index).
    Dict(Vec<(Value<'data>, Value<'data>)>),
    /// A tensor.
    Tensor(TensorView<'data>),
}

impl Value<'_> {
    /// The name of the value's kind (`"dict"`, `"tensor"`, `"int"`...).
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "none",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
            Value::Tensor(_) => "tensor",
        }
    }

    /// The text this value contributes to a dotted tensor name when it is a dict key:
    /// strings as they are, other plain values as Python prints them.
    pub fn name_segment(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// Python-like `repr` of plain values; containers and tensors are summarised.
impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::None => f.write_str("None"),
            Value::Bool(true) => f.write_str("True"),
            Value::Bool(false) => f.write_str("False"),
            Value::Int(i) => write!(f, "{i}"),
            Value::BigInt(s) => f.write_str(s),
            Value::Float(x) => write_float(f, *x),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "b{:?}", String::from_utf8_lossy(b)),
            Value::List(items) => write_items(f, "[", items, "]"),
            Value::Tuple(items) if items.len() == 1 => write_items(f, "(", items, ",)"),
            Value::Tuple(items) => write_items(f, "(", items, ")"),
            Value::Dict(entries) => {
                f.write_str("{")?;
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{key}: {value}")?;
                }
                f.write_str("}")
            }
            Value::Tensor(t) => write!(f, "tensor({} {:?})", t.dtype(), t.shape()),
        }
    }
}

fn write_float(f: &mut fmt::Formatter<'_>, x: f64) -> fmt::Result {
    if x.is_nan() {
        f.write_str("nan")
    } else if x.is_infinite() {
        f.write_str(if x > 0.0 { "inf" } else { "-inf" })
    } else if x == x.trunc() && x.abs() < 1e16 {
        write!(f, "{x:.1}")
    } else {
        write!(f, "{x}")
    }
}

fn write_items(
    f: &mut fmt::Formatter<'_>,
    open: &str,
    items: &[Value<'_>],
    close: &str,
) -> fmt::Result {
    f.write_str(open)?;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    f.write_str(close)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_python_like() {
        let value = Value::Dict(vec![
            (Value::Str("epoch".into()), Value::Int(7)),
            (Value::Int(0), Value::Tuple(vec![Value::Float(0.5)])),
            (
                Value::Str("ok".into()),
                Value::List(vec![Value::Bool(true), Value::None]),
            ),
            (Value::Str("lr".into()), Value::Float(1.0)),
        ]);
        assert_eq!(
            value.to_string(),
            r#"{"epoch": 7, 0: (0.5,), "ok": [True, None], "lr": 1.0}"#
        );
        assert_eq!(Value::Int(3).name_segment(), "3");
        assert_eq!(Value::Str("a.b".into()).name_segment(), "a.b");
    }
}
