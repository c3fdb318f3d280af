//! Plain values and the tree that holds tensors.

use std::fmt;

use super::{Dtype, Object, TensorView};

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
    /// A complex number: real and imaginary parts.
    Complex(f64, f64),
    /// A text string.
    Str(String),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A `bytearray`.
    ByteArray(Vec<u8>),
    /// A list.
    List(Vec<Value<'data>>),
    /// A tuple.
    Tuple(Vec<Value<'data>>),
    /// A set, in the order of the file.
    Set(Vec<Value<'data>>),
    /// A frozenset, in the order of the file.
    FrozenSet(Vec<Value<'data>>),
    /// A dict or `OrderedDict`.
    Dict(Dict<'data>),
    /// A `slice(start, stop, step)`.
    Slice(Box<[Value<'data>; 3]>),
    /// A `torch.Size`.
    Size(Vec<i64>),
    /// A `torch.device`, as torch prints it (`cuda:0`).
    Device(String),
    /// A `torch.dtype`.
    Dtype(Dtype),
    /// Another value torch defines as data (a layout, a memory format, a qscheme...): its
    /// type and name (`torch.layout`, `torch.strided`).
    Named {
        /// The Python type (`torch.layout`).
        type_name: String,
        /// The value's name (`torch.strided`).
        name: String,
    },
    /// A tensor.
    Tensor(TensorView<'data>),
    /// An instance of a class ckpt gives no meaning to, kept inert as the pickle stores it
    /// (see [`Object`]).
    Object(Box<Object<'data>>),
    /// A class or function named by the pickle but not called (`typing.Any`, the factory of
    /// a `defaultdict`): `module.name`, never imported.
    Global(String),
    /// A reference back to an object that holds this value (the `_parent` of a config
    /// node), named by that object's class: shown, not followed.
    Backref(String),
}

/// A dict or `OrderedDict`, in insertion order.
///
/// Keys are usually strings, but ints and other plain values occur (optimizer state is
/// keyed by parameter index).
#[derive(Debug, Clone, Default)]
pub struct Dict<'data> {
    /// The entries, in insertion order.
    pub entries: Vec<(Value<'data>, Value<'data>)>,
    /// Whether it is a `collections.OrderedDict` (what `state_dict()` returns).
    pub ordered: bool,
    /// Attributes set on the object (`state_dict()._metadata`).
    pub attributes: Vec<(String, Value<'data>)>,
}

impl<'data> Dict<'data> {
    /// A plain dict.
    pub fn new(entries: Vec<(Value<'data>, Value<'data>)>) -> Self {
        Dict {
            entries,
            ordered: false,
            attributes: Vec::new(),
        }
    }

    /// An `OrderedDict`.
    pub fn ordered(entries: Vec<(Value<'data>, Value<'data>)>) -> Self {
        Dict {
            entries,
            ordered: true,
            attributes: Vec::new(),
        }
    }
}

impl Value<'_> {
    /// The Python type of the value, as Python names it (`"int"`, `"NoneType"`,
    /// `"collections.OrderedDict"`, `"torch.Size"`, `"torch.Tensor"`...).
    pub fn type_name(&self) -> &str {
        match self {
            Value::None => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Complex(..) => "complex",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::ByteArray(_) => "bytearray",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Set(_) => "set",
            Value::FrozenSet(_) => "frozenset",
            Value::Dict(d) if d.ordered => "collections.OrderedDict",
            Value::Dict(_) => "dict",
            Value::Slice(_) => "slice",
            Value::Size(_) => "torch.Size",
            Value::Device(_) => "torch.device",
            Value::Dtype(_) => "torch.dtype",
            Value::Named { type_name, .. } => type_name,
            Value::Tensor(_) => "torch.Tensor",
            Value::Object(object) => &object.class,
            Value::Global(_) => "global",
            Value::Backref(_) => "backref",
        }
    }

    /// Whether the value holds other values (dicts, lists, tuples, sets, objects with
    /// attributes).
    pub fn is_container(&self) -> bool {
        match self {
            Value::List(_)
            | Value::Tuple(_)
            | Value::Dict(_)
            | Value::Set(_)
            | Value::FrozenSet(_) => true,
            Value::Object(object) => object.has_attributes(),
            _ => false,
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
            Value::Complex(re, im) => {
                f.write_str("(")?;
                write_float(f, *re)?;
                f.write_str(if im.is_sign_negative() { "-" } else { "+" })?;
                write_float(f, im.abs())?;
                f.write_str("j)")
            }
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "b\"{}\"", b.escape_ascii()),
            Value::ByteArray(b) => write!(f, "bytearray(b\"{}\")", b.escape_ascii()),
            Value::List(items) => write_items(f, "[", items, "]"),
            Value::Tuple(items) if items.len() == 1 => write_items(f, "(", items, ",)"),
            Value::Tuple(items) => write_items(f, "(", items, ")"),
            Value::Set(items) if items.is_empty() => f.write_str("set()"),
            Value::Set(items) => write_items(f, "{", items, "}"),
            Value::FrozenSet(items) => write_items(f, "frozenset({", items, "})"),
            Value::Slice(parts) => write_items(f, "slice(", parts.as_slice(), ")"),
            Value::Size(dims) => {
                let dims: Vec<String> = dims.iter().map(i64::to_string).collect();
                write!(f, "torch.Size([{}])", dims.join(", "))
            }
            Value::Device(d) => write!(f, "device(type={d:?})"),
            Value::Dtype(d) => write!(f, "torch.{d}"),
            Value::Named { name, .. } => f.write_str(name),
            Value::Dict(dict) => {
                f.write_str(if dict.ordered { "OrderedDict({" } else { "{" })?;
                for (i, (key, value)) in dict.entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{key}: {value}")?;
                }
                f.write_str(if dict.ordered { "})" } else { "}" })
            }
            Value::Tensor(t) => write!(f, "tensor({} {:?})", t.dtype(), t.shape()),
            Value::Object(object) => write!(f, "{object}"),
            Value::Global(name) => f.write_str(name),
            Value::Backref(class) => write!(f, "<the enclosing {class}>"),
        }
    }
}

/// Python's `repr` of a float: the shortest text that reads back the same, with an
/// exponent below 1e-4 and from 1e16 on (`1e-08`, `1.5e+16`, `0.001`, `2.0`).
fn write_float(f: &mut fmt::Formatter<'_>, x: f64) -> fmt::Result {
    if x.is_nan() {
        return f.write_str("nan");
    }
    if x.is_infinite() {
        return f.write_str(if x > 0.0 { "inf" } else { "-inf" });
    }
    let scientific = format!("{x:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if x != 0.0 && !(-4..16).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        write!(f, "{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    } else if x == x.trunc() {
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
        let value = Value::Dict(Dict::new(vec![
            (Value::Str("epoch".into()), Value::Int(7)),
            (Value::Int(0), Value::Tuple(vec![Value::Float(0.5)])),
            (
                Value::Str("ok".into()),
                Value::List(vec![Value::Bool(true), Value::None]),
            ),
            (Value::Str("lr".into()), Value::Float(1.0)),
        ]));
        assert_eq!(
            value.to_string(),
            r#"{"epoch": 7, 0: (0.5,), "ok": [True, None], "lr": 1.0}"#
        );
        assert_eq!(Value::Int(3).name_segment(), "3");
        assert_eq!(Value::Complex(1.0, -2.0).to_string(), "(1.0-2.0j)");
        for (x, text) in [
            (1e-8, "1e-08"),
            (0.001, "0.001"),
            (1.5e16, "1.5e+16"),
            (2.0, "2.0"),
            (-0.0, "-0.0"),
            (123.25, "123.25"),
            (1e15, "1000000000000000.0"),
        ] {
            assert_eq!(Value::Float(x).to_string(), text);
        }
        assert_eq!(Value::Size(vec![2, 3]).to_string(), "torch.Size([2, 3])");
        assert_eq!(Value::Bytes(vec![0, b'a']).to_string(), "b\"\\x00a\"");
        assert_eq!(Value::Str("a.b".into()).name_segment(), "a.b");
    }
}
