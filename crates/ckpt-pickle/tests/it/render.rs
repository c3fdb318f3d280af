//! The canonical JSON rendering of decoded opcodes and parsed pickles, written exactly like
//! `tests/fixtures/pickle/generate.py` writes CPython's (see the README there).

use std::collections::HashMap;
use std::sync::OnceLock;

use ckpt_pickle::{Arg, InstanceKind, Instruction, Object, ObjectId, Pickle};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Numbers and bytes the way Python prints them.
// ---------------------------------------------------------------------------------------------

/// Python's `repr(float)`: the shortest round-tripping digits, positional notation for
/// exponents -4 to 15, else `d.ddde+XX`.
pub(crate) fn py_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    // Rust's `{:e}` gives the shortest round-tripping digits too: "-1.2345e-5".
    let scientific = format!("{x:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap();
    let exponent: i32 = exponent.parse().unwrap();
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|&c| c != '.').collect();
    let n = digits.len() as i32;
    let body = if (-4..16).contains(&exponent) {
        if exponent < 0 {
            format!("0.{}{digits}", "0".repeat((-exponent - 1) as usize))
        } else if n <= exponent + 1 {
            format!("{digits}{}.0", "0".repeat((exponent + 1 - n) as usize))
        } else {
            let (int, frac) = digits.split_at((exponent + 1) as usize);
            format!("{int}.{frac}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        format!("{first}{dot}{rest}e{exp_sign}{:02}", exponent.abs())
    };
    format!("{sign}{body}")
}

/// Little-endian two's complement bytes as a decimal integer.
pub(crate) fn twos_complement_to_decimal(bytes: &[u8]) -> String {
    let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
    let mut magnitude = bytes.to_vec();
    if negative {
        let mut carry = true;
        for byte in &mut magnitude {
            *byte = !*byte;
            if carry {
                let (sum, overflow) = byte.overflowing_add(1);
                *byte = sum;
                carry = overflow;
            }
        }
    }
    // Big-endian base-256 digits, divided by 10^9 until zero.
    let mut digits: Vec<u32> = magnitude.iter().rev().map(|&b| u32::from(b)).collect();
    let mut chunks = Vec::new();
    while digits.iter().any(|&d| d != 0) {
        let mut remainder = 0u64;
        for digit in &mut digits {
            let value = (remainder << 8) | u64::from(*digit);
            *digit = (value / 1_000_000_000) as u32;
            remainder = value % 1_000_000_000;
        }
        chunks.push(remainder);
    }
    let mut text = match chunks.pop() {
        None => "0".to_owned(),
        Some(top) => top.to_string(),
    };
    for chunk in chunks.iter().rev() {
        text.push_str(&format!("{chunk:09}"));
    }
    if negative && text != "0" {
        text.insert(0, '-');
    }
    text
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The text set elements and dict keys are compared and sorted by: Python's
/// `json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`.
pub(crate) fn canonical(value: &Value) -> String {
    match value {
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let entries: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), canonical(v)))
                .collect();
            format!("{{{}}}", entries.join(","))
        }
        other => serde_json::to_string(other).unwrap(),
    }
}

// ---------------------------------------------------------------------------------------------
// Opcodes: `[offset, name, arg]` as in the `ops` of each JSON.
// ---------------------------------------------------------------------------------------------

pub(crate) fn instruction(ins: &Instruction<'_>) -> Value {
    let arg = match &ins.arg {
        Arg::None => Value::Null,
        Arg::Int(i) => json!(i.to_string()),
        Arg::BigInt(bytes) => json!(twos_complement_to_decimal(bytes)),
        Arg::Bool(b) => json!(b),
        Arg::Float(x) => json!(py_float_repr(*x)),
        Arg::Str(s) => json!(s),
        Arg::Bytes(b) => json!(hex(b)),
        Arg::Global { module, name } => json!(format!("{module} {name}")),
        other => json!(format!("unknown argument {other:?}")),
    };
    json!([ins.offset, ins.opcode.name(), arg])
}

// ---------------------------------------------------------------------------------------------
// Values.
// ---------------------------------------------------------------------------------------------

/// CPython's `_compat_pickle` tables, which its unpickler applies to the globals of protocol
/// 0 to 2 pickles (`fix_imports=True`). The crate keeps names as written; the renderer maps.
pub(crate) struct Compat {
    names: HashMap<(String, String), (String, String)>,
    modules: HashMap<String, String>,
}

pub(crate) fn compat() -> &'static Compat {
    static COMPAT: OnceLock<Compat> = OnceLock::new();
    COMPAT.get_or_init(|| {
        let path = crate::corpus::root().join("compat_pickle.json");
        let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let pair = |v: &Value| {
            (
                v[0].as_str().unwrap().to_owned(),
                v[1].as_str().unwrap().to_owned(),
            )
        };
        let names = json["NAME_MAPPING"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| (pair(&entry[0]), pair(&entry[1])))
            .collect();
        let modules = json["IMPORT_MAPPING"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        Compat { names, modules }
    })
}

impl Compat {
    /// `module.name` as CPython's `find_class` sees it.
    pub(crate) fn global(&self, protocol: u8, module: &str, name: &str) -> String {
        if protocol < 3 {
            if let Some((m, n)) = self.names.get(&(module.to_owned(), name.to_owned())) {
                return format!("{m}.{n}");
            }
            if let Some(m) = self.modules.get(module) {
                return format!("{m}.{name}");
            }
        }
        format!("{module}.{name}")
    }
}

pub(crate) struct Renderer<'a> {
    pickle: &'a Pickle<'a>,
    protocol: u8,
    /// copyreg's registry as the generator set it: code -> `module name`.
    extensions: HashMap<i64, (String, String)>,
    path: Vec<ObjectId>,
}

impl<'a> Renderer<'a> {
    pub(crate) fn new(pickle: &'a Pickle<'a>, case_json: &Value) -> Self {
        let extensions = case_json
            .get("extensions")
            .and_then(Value::as_object)
            .map(|map| {
                map.iter()
                    .map(|(code, global)| {
                        let (m, n) = global.as_str().unwrap().split_once(' ').unwrap();
                        (code.parse().unwrap(), (m.to_owned(), n.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Renderer {
            pickle,
            protocol: pickle.protocol().unwrap_or(0),
            extensions,
            path: Vec::new(),
        }
    }

    pub(crate) fn root(&mut self) -> Value {
        match self.pickle.root() {
            Some(root) => self.render(root),
            None => json!({"no root": true}),
        }
    }

    fn items(&mut self, ids: &[ObjectId]) -> Vec<Value> {
        ids.iter().map(|&id| self.render(id)).collect()
    }

    /// The positional arguments of a call: the items of the argument tuple.
    fn args(&mut self, args: ObjectId) -> Value {
        match self.pickle.get(args) {
            Object::Tuple(items) => Value::Array(self.items(items)),
            _ => json!({"arguments that are not a tuple": self.render(args)}),
        }
    }

    fn pairs(&mut self, pairs: &[(ObjectId, ObjectId)]) -> Vec<Value> {
        pairs
            .iter()
            .map(|&(k, v)| json!([self.render(k), self.render(v)]))
            .collect()
    }

    pub(crate) fn render(&mut self, id: ObjectId) -> Value {
        let pickle = self.pickle;
        let object = pickle.get(id);
        let inner = match object {
            Object::None => Value::Null,
            Object::Bool(b) => json!(b),
            Object::Int(i) => json!({"int": i.to_string()}),
            Object::BigInt(bytes) => json!({"int": twos_complement_to_decimal(bytes)}),
            Object::Float(x) => json!({"float": py_float_repr(*x)}),
            Object::Str(s) => json!({"str": &**s}),
            Object::Bytes(b) => json!({"bytes": hex(b)}),
            Object::ByteArray(b) => json!({"bytearray": hex(b)}),
            // READONLY_BUFFER's view of a bytearray: its bytes as they are at the end.
            Object::MemoryView(array) => match pickle.as_bytes(*array) {
                Some(b) => json!({"memoryview": hex(b), "readonly": true}),
                None => json!({"memoryview of": format!("{:?}", pickle.get(*array))}),
            },
            Object::Global { module, name } => {
                json!({"global": compat().global(self.protocol, module, name)})
            }
            Object::Extension(code) => match self.extensions.get(code) {
                Some((m, n)) => json!({"global": format!("{m}.{n}")}),
                None => json!({"unregistered extension": code}),
            },
            _ => {
                if self.path.contains(&id) {
                    return json!({"cycle": true});
                }
                self.path.push(id);
                let value = self.render_node(id, object);
                self.path.pop();
                return value;
            }
        };
        // Primitive objects cannot be on a path; CPython never gives them extras.
        self.with_extras(id, inner)
    }

    fn render_node(&mut self, id: ObjectId, object: &Object) -> Value {
        let inner = match object {
            Object::Tuple(items) => json!({"tuple": self.items(items)}),
            Object::List(items) => json!({"list": self.items(items)}),
            Object::Dict(pairs) => {
                // A key given twice keeps its first place and its last value, as in Python.
                let mut entries: Vec<(String, Value, Value)> = Vec::new();
                for &(k, v) in pairs {
                    let (key, value) = (self.render(k), self.render(v));
                    let text = canonical(&key);
                    match entries.iter_mut().find(|(t, _, _)| *t == text) {
                        Some(entry) => entry.2 = value,
                        None => entries.push((text, key, value)),
                    }
                }
                let pairs: Vec<Value> =
                    entries.into_iter().map(|(_, k, v)| json!([k, v])).collect();
                json!({"dict": pairs})
            }
            Object::Set(items) | Object::FrozenSet(items) => {
                let mut items: Vec<(String, Value)> = self
                    .items(items)
                    .into_iter()
                    .map(|v| (canonical(&v), v))
                    .collect();
                items.sort_by(|a, b| a.0.cmp(&b.0));
                items.dedup_by(|a, b| a.0 == b.0);
                let items: Vec<Value> = items.into_iter().map(|(_, v)| v).collect();
                let key = if matches!(object, Object::Set(_)) {
                    "set"
                } else {
                    "frozenset"
                };
                json!({key: items})
            }
            Object::Call { callable, args } => {
                json!({"call": self.render(*callable), "args": self.args(*args)})
            }
            Object::Instance {
                class,
                args,
                kwargs,
                kind,
            } => {
                let class_value = self.render(*class);
                let args_value = self.args(*args);
                let no_args = args_value.as_array().is_some_and(Vec::is_empty);
                match kind {
                    // CPython's `instantiate`: `cls(*args)`, or `cls.__new__(cls)` without args.
                    InstanceKind::Obj | InstanceKind::Inst if !no_args => {
                        json!({"call": class_value, "args": args_value})
                    }
                    _ => {
                        // `**{}` is no keyword argument at all.
                        let kwargs_value = match kwargs {
                            Some(kw) if !matches!(self.pickle.get(*kw), Object::Dict(d) if d.is_empty()) => {
                                self.render(*kw)
                            }
                            _ => Value::Null,
                        };
                        json!({"new": class_value, "args": args_value, "kwargs": kwargs_value})
                    }
                }
            }
            Object::PersistentId(pid) => json!({"persid": self.render(*pid)}),
            other => json!({"unknown object": format!("{other:?}")}),
        };
        self.with_extras(id, inner)
    }

    fn with_extras(&mut self, id: ObjectId, inner: Value) -> Value {
        let extras = self.pickle.extras(id);
        if extras.states.is_empty() && extras.items.is_empty() && extras.entries.is_empty() {
            return inner;
        }
        let (states, items, entries) = (
            extras.states.clone(),
            extras.items.clone(),
            extras.entries.clone(),
        );
        let mut out = serde_json::Map::new();
        out.insert("object".to_owned(), inner);
        if !states.is_empty() {
            out.insert("states".to_owned(), Value::Array(self.items(&states)));
        }
        if !items.is_empty() {
            out.insert("items".to_owned(), Value::Array(self.items(&items)));
        }
        if !entries.is_empty() {
            out.insert("entries".to_owned(), Value::Array(self.pairs(&entries)));
        }
        Value::Object(out)
    }
}

#[test]
fn float_repr_is_pythons() {
    for (x, text) in [
        (1.5, "1.5"),
        (0.1, "0.1"),
        (1e16, "1e+16"),
        (1e15, "1000000000000000.0"),
        (9999999999999998.0, "9999999999999998.0"),
        (1e-5, "1e-05"),
        (1e-4, "0.0001"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (-2.25, "-2.25"),
        (123456789.125, "123456789.125"),
        (1.2345e-7, "1.2345e-07"),
        (100.0, "100.0"),
    ] {
        assert_eq!(py_float_repr(x), text);
    }
}

#[test]
fn twos_complement_decimals() {
    assert_eq!(twos_complement_to_decimal(b""), "0");
    assert_eq!(twos_complement_to_decimal(b"\xff"), "-1");
    assert_eq!(twos_complement_to_decimal(b"\x00\x80"), "-32768");
    assert_eq!(twos_complement_to_decimal(b"\xff\x00"), "255");
    assert_eq!(
        twos_complement_to_decimal(b"\0\0\0\0\0\0\0\0\0\0\xff"),
        "-1208925819614629174706176"
    );
    assert_eq!(
        twos_complement_to_decimal(b"\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"),
        "119547037146038801333356"
    );
}
