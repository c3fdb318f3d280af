//! Plain values as JSON (see [`super::ValueEntry::value`]).

use serde_json::value::RawValue;

use crate::model::Value;

/// A plain value as JSON text: exact integers of any size, `"nan"`/`"inf"`/`"-inf"` for
/// such floats, hex for bytes, `[re, im]` for complex numbers, lists for sequences.
pub(super) fn value_json(value: &Value<'_>) -> serde_json::Result<Box<RawValue>> {
    RawValue::from_string(plain(value))
}

/// A float as JSON: a number, or a string for NaN and the infinities (which JSON lacks).
pub(crate) fn float(x: f64) -> serde_json::Value {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        x.into()
    }
}

/// A zero point as JSON: an integer when it is one (torch's integer zero points, stored as
/// floats), the float otherwise.
pub(super) fn integral_or_float(z: f64) -> serde_json::Value {
    match z {
        #[allow(clippy::cast_possible_truncation)] // integral, in range
        z if z.fract() == 0.0 && z.abs() < 9e15 => serde_json::Value::from(z as i64),
        z => serde_json::Value::from(z),
    }
}

/// The JSON text of `value`.
fn plain(value: &Value<'_>) -> String {
    // Sets of tuples of tuples... nest as deep as the pickle did.
    stacker::maybe_grow(64 << 10, 1 << 20, || {
        let json = match value {
            Value::None => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            // Exact, as a JSON number of any size.
            Value::BigInt(digits) => return digits.clone(),
            Value::Float(x) => float(*x),
            Value::Complex(re, im) => serde_json::Value::Array(vec![float(*re), float(*im)]),
            Value::Str(s) => s.clone().into(),
            Value::Bytes(b) | Value::ByteArray(b) => crate::digest::hex(b).into(),
            Value::Size(dims) => dims.clone().into(),
            Value::Device(d) => d.clone().into(),
            Value::Dtype(d) => d.name().into(),
            Value::Named { name, .. } => name.clone().into(),
            // An inert object listed as one value (a path, a date, an enum): its reading,
            // or its one argument, as JSON; `type` names the class.
            Value::Object(object) => match (&object.reading, object.args.as_slice()) {
                (Some(reading), _) => return plain(reading),
                (None, [only]) if object.state.is_none() && object.entries.is_empty() => {
                    return plain(only);
                }
                _ => object.to_string().into(),
            },
            Value::Global(name) => name.clone().into(),
            Value::Dict(dict) if dict.entries.is_empty() => serde_json::json!({}),
            Value::List(items)
            | Value::Tuple(items)
            | Value::Set(items)
            | Value::FrozenSet(items) => return list(items),
            Value::Slice(parts) => return list(parts.as_slice()),
            other => other.to_string().into(),
        };
        json.to_string()
    })
}

/// A JSON list of the values.
fn list(items: &[Value<'_>]) -> String {
    let parts: Vec<String> = items.iter().map(plain).collect();
    format!("[{}]", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(value: &Value<'_>) -> String {
        value_json(value).unwrap().get().to_owned()
    }

    #[test]
    fn plain_values() {
        assert_eq!(json(&Value::None), "null");
        assert_eq!(json(&Value::Int(-7)), "-7");
        let big = "1".repeat(40);
        assert_eq!(json(&Value::BigInt(big.clone())), big);
        assert_eq!(json(&Value::Float(f64::NAN)), r#""nan""#);
        assert_eq!(json(&Value::Float(f64::NEG_INFINITY)), r#""-inf""#);
        assert_eq!(json(&Value::Complex(1.5, f64::INFINITY)), r#"[1.5,"inf"]"#);
        assert_eq!(json(&Value::Bytes(vec![0, 255])), r#""00ff""#);
        assert_eq!(
            json(&Value::Tuple(vec![Value::Int(1), Value::Str("a\"".into())])),
            r#"[1,"a\""]"#
        );
        assert_eq!(integral_or_float(3.0), serde_json::json!(3));
        assert_eq!(integral_or_float(0.5), serde_json::json!(0.5));
    }
}
