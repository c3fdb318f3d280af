//! Instances of classes the table of globals gives no meaning to, kept inert: the class's
//! name and the parts the pickle gives it ([`Object`]), and the natural reading of the
//! shapes people recognise (paths, dates, omegaconf configs).
//!
//! Nothing is imported or called. Whether a class would run code when Python loads the
//! file is the scanner's question; a reader refuses what the scanner calls dangerous
//! before it gets here.

use ckpt_pickle::{Object as PickleObject, ObjectId};

use super::Walker;
use super::values::last_wins;
use crate::error::Result;
use crate::model::{Dict, Object, Value};

impl<'data> Walker<'_, '_, '_, 'data> {
    /// `module.name(*args)` (a `REDUCE`, `INST` or `OBJ`) or `module.name.__new__(cls,
    /// *args, **kwargs)` (`NEWOBJ`, `NEWOBJ_EX`) of a global ckpt gives no meaning to, with
    /// what `BUILD`, `APPEND` and `SETITEM` later gave the result.
    pub(super) fn object(
        &mut self,
        id: ObjectId,
        class: String,
        args: &[ObjectId],
        kwargs: Option<ObjectId>,
        depth: usize,
    ) -> Result<Value<'data>> {
        let mut object = Object::new(class);
        object.args = self.indexed(args, depth)?;
        if let Some(kwargs) = kwargs {
            match self.pickle.get(kwargs) {
                PickleObject::Dict(entries) => {
                    let entries = entries.clone();
                    object.kwargs = self.entries(&entries, depth)?;
                }
                PickleObject::None => {}
                _ => return Err(self.error(kwargs, "keyword arguments that are not a dict")),
            }
        }
        let extras = self.pickle.extras(id).clone();
        object.entries = last_wins(self.entries(&extras.entries, depth)?);
        object.items = self.indexed(&extras.items, depth)?;
        let mut states = Vec::with_capacity(extras.states.len());
        for &state in &extras.states {
            states.push(self.value(state, depth + 1)?);
        }
        object.state = merged(states);
        object.reading = reading(&object);
        Ok(Value::Object(Box::new(object)))
    }
}

/// One state from several `BUILD`s: dicts merged as `__dict__.update` does (the last value
/// of a key wins, in its first place); otherwise all of them, in order, as a list.
fn merged(mut states: Vec<Value<'_>>) -> Option<Value<'_>> {
    match states.len() {
        0 => None,
        1 => states.pop(),
        _ if states.iter().all(|s| matches!(s, Value::Dict(_))) => {
            let mut entries = Vec::new();
            for state in states {
                if let Value::Dict(dict) = state {
                    entries.extend(dict.entries);
                }
            }
            Some(Value::Dict(Dict::new(last_wins(entries))))
        }
        _ => Some(Value::List(states)),
    }
}

/// The natural reading of an object whose shape ckpt knows, if any.
fn reading<'data>(object: &Object<'data>) -> Option<Value<'data>> {
    let (module, name) = object.class.rsplit_once('.')?;
    match (module, name) {
        ("pathlib" | "pathlib._local", _) if name.contains("Path") => path(name, &object.args),
        ("datetime", "datetime") => datetime(&object.args),
        ("datetime", "date") => date(&object.args).map(Value::Str),
        ("datetime", "time") => time(&object.args),
        ("datetime", "timedelta") => timedelta(&object.args).map(Value::Str),
        ("datetime", "timezone") => timezone(&object.args).map(Value::Str),
        ("omegaconf.dictconfig", "DictConfig") | ("omegaconf.listconfig", "ListConfig") => {
            config_content(object)
        }
        ("omegaconf.nodes", _) => state_field(object, "_val").cloned(),
        _ => None,
    }
}

/// The attribute `key` of an object's dict state.
fn state_field<'a, 'data>(object: &'a Object<'data>, key: &str) -> Option<&'a Value<'data>> {
    let Some(Value::Dict(state)) = &object.state else {
        return None;
    };
    state
        .entries
        .iter()
        .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
        .map(|(_, v)| v)
}

/// An omegaconf `DictConfig` or `ListConfig` as the dict or list it holds: its `_content`,
/// each value node (`AnyNode`, `IntegerNode`...) replaced by the value it holds. A config
/// whose content is `None` or a string (`"???"`, an interpolation) reads as that.
fn config_content<'data>(object: &Object<'data>) -> Option<Value<'data>> {
    let node = |value: &Value<'data>| match value {
        Value::Object(inner) if inner.class.starts_with("omegaconf.nodes.") => inner
            .reading
            .clone()
            .or_else(|| state_field(inner, "_val").cloned())
            .unwrap_or(Value::None),
        other => other.clone(),
    };
    Some(match state_field(object, "_content")? {
        Value::Dict(dict) => Value::Dict(Dict::new(
            dict.entries
                .iter()
                .map(|(k, v)| (k.clone(), node(v)))
                .collect(),
        )),
        Value::List(items) => Value::List(items.iter().map(node).collect()),
        other => other.clone(),
    })
}

/// A path's text from the parts it pickles (`PurePath.__reduce__`: its parts, or since
/// Python 3.12 its text), joined as pathlib joins them.
fn path<'data>(class: &str, args: &[Value<'data>]) -> Option<Value<'data>> {
    let windows = class.contains("Windows");
    let sep = if windows { '\\' } else { '/' };
    let mut out = String::new();
    for arg in args {
        let Value::Str(part) = arg else {
            return None;
        };
        let absolute = part.starts_with(sep) || (windows && part.get(1..2) == Some(":"));
        if absolute || out.is_empty() {
            out.clone_from(part);
        } else {
            if !out.ends_with(sep) {
                out.push(sep);
            }
            out.push_str(part);
        }
    }
    Some(Value::Str(if out.is_empty() { ".".into() } else { out }))
}

/// The bytes of a pickled date or time (`datetime.__reduce__` gives its packed state).
fn packed<const N: usize>(arg: Option<&Value<'_>>) -> Option<[u8; N]> {
    match arg {
        Some(Value::Bytes(bytes)) => bytes.as_slice().try_into().ok(),
        _ => None,
    }
}

/// `YYYY-MM-DD` from the four bytes of a `date` (year big-endian, month, day).
fn date(args: &[Value<'_>]) -> Option<String> {
    let [y0, y1, month, day] = packed(args.first())?;
    let year = u16::from_be_bytes([y0, y1]);
    Some(format!("{year:04}-{month:02}-{day:02}"))
}

/// `HH:MM:SS[.ffffff]` from three bytes of hour, minute, second and three of
/// microseconds (the fold flag in the hour's high bit ignored).
fn clock([hour, minute, second, u0, u1, u2]: [u8; 6]) -> String {
    let micros = u32::from_be_bytes([0, u0, u1, u2]);
    let mut text = format!("{:02}:{minute:02}:{second:02}", hour & 0x7f);
    if micros != 0 {
        text.push_str(&format!(".{micros:06}"));
    }
    text
}

/// `datetime.datetime(state[, tzinfo])` as ISO text.
fn datetime<'data>(args: &[Value<'data>]) -> Option<Value<'data>> {
    let [y0, y1, month, day, h, m, s, u0, u1, u2] = packed(args.first())?;
    let year = u16::from_be_bytes([y0, y1]);
    let mut text = format!(
        "{year:04}-{:02}-{day:02}T{}",
        month & 0x7f,
        clock([h, m, s, u0, u1, u2])
    );
    text.push_str(&offset_of(args.get(1)).unwrap_or_default());
    Some(Value::Str(text))
}

/// `datetime.time(state[, tzinfo])` as ISO text.
fn time<'data>(args: &[Value<'data>]) -> Option<Value<'data>> {
    let mut text = clock(packed(args.first())?);
    text.push_str(&offset_of(args.get(1)).unwrap_or_default());
    Some(Value::Str(text))
}

/// The UTC offset of a `datetime.timezone` argument, as ISO text (`+02:00`).
fn offset_of(tz: Option<&Value<'_>>) -> Option<String> {
    let Some(Value::Object(tz)) = tz else {
        return None;
    };
    if tz.class != "datetime.timezone" {
        return None;
    }
    let Some(Value::Object(delta)) = tz.args.first() else {
        return None;
    };
    offset(seconds(&delta.args)?)
}

/// The whole seconds and microseconds of `timedelta(days, seconds, microseconds)`.
fn seconds(args: &[Value<'_>]) -> Option<(i64, i64)> {
    let part = |i: usize| match args.get(i) {
        Some(Value::Int(n)) => Some(*n),
        None => Some(0),
        _ => None,
    };
    let secs = part(0)?.checked_mul(86_400)?.checked_add(part(1)?)?;
    Some((secs, part(2)?))
}

/// `+HH:MM[:SS[.ffffff]]` for an offset in seconds and microseconds.
fn offset((secs, micros): (i64, i64)) -> Option<String> {
    let total = secs.checked_mul(1_000_000)?.checked_add(micros)?;
    let sign = if total < 0 { '-' } else { '+' };
    let total = total.unsigned_abs();
    let (s, us) = (total / 1_000_000, total % 1_000_000);
    let mut text = format!("{sign}{:02}:{:02}", s / 3600, s / 60 % 60);
    if s % 60 != 0 || us != 0 {
        text.push_str(&format!(":{:02}", s % 60));
    }
    if us != 0 {
        text.push_str(&format!(".{us:06}"));
    }
    Some(text)
}

/// `datetime.timezone(offset[, name])`: its name, or `UTC` and its offset.
fn timezone(args: &[Value<'_>]) -> Option<String> {
    if let Some(Value::Str(name)) = args.get(1) {
        return Some(name.clone());
    }
    let Some(Value::Object(delta)) = args.first() else {
        return None;
    };
    let (secs, micros) = seconds(&delta.args)?;
    if secs == 0 && micros == 0 {
        return Some("UTC".into());
    }
    Some(format!("UTC{}", offset((secs, micros))?))
}

/// `timedelta(days, seconds, microseconds)` as Python prints it (`1 day, 2:03:04.000005`).
fn timedelta(args: &[Value<'_>]) -> Option<String> {
    let (secs, micros) = seconds(args)?;
    let total = secs.checked_mul(1_000_000)?.checked_add(micros)?;
    let days = total.div_euclid(86_400_000_000);
    let rest = total.rem_euclid(86_400_000_000);
    let (s, us) = (rest / 1_000_000, rest % 1_000_000);
    let mut text = String::new();
    if days != 0 {
        let plural = if days.abs() == 1 { "" } else { "s" };
        text.push_str(&format!("{days} day{plural}, "));
    }
    text.push_str(&format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60));
    if us != 0 {
        text.push_str(&format!(".{us:06}"));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value<'static> {
        Value::Str(text.to_owned())
    }

    fn delta(days: i64, secs: i64, us: i64) -> Value<'static> {
        let mut object = Object::new("datetime.timedelta");
        object.args = vec![Value::Int(days), Value::Int(secs), Value::Int(us)];
        Value::Object(Box::new(object))
    }

    #[test]
    fn paths_join_their_parts_as_pathlib_does() {
        let read = |class: &str, parts: &[&str]| {
            path(class, &parts.iter().map(|p| s(p)).collect::<Vec<_>>()).map(|v| v.to_string())
        };
        assert_eq!(
            read("PosixPath", &["/", "data", "x"]).unwrap(),
            r#""/data/x""#
        );
        assert_eq!(read("PosixPath", &["/data/x"]).unwrap(), r#""/data/x""#);
        assert_eq!(read("PurePosixPath", &["a", "b"]).unwrap(), r#""a/b""#);
        assert_eq!(read("PosixPath", &[]).unwrap(), r#"".""#);
        assert_eq!(read("WindowsPath", &["C:\\", "x"]).unwrap(), r#""C:\\x""#);
    }

    #[test]
    fn dates_and_times_read_as_python_prints_them() {
        // datetime(2026, 12, 7, 19, 5, 3, 250) with timezone(timedelta(hours=2)).
        let mut tz = Object::new("datetime.timezone");
        tz.args = vec![delta(0, 7200, 0)];
        assert_eq!(timezone(&tz.args).unwrap(), "UTC+02:00");
        let args = vec![
            Value::Bytes(vec![0x07, 0xea, 12, 7, 19, 5, 3, 0, 0, 250]),
            Value::Object(Box::new(tz)),
        ];
        assert_eq!(
            datetime(&args).unwrap().to_string(),
            r#""2026-12-07T19:05:03.000250+02:00""#
        );
        assert_eq!(
            date(&[Value::Bytes(vec![0x07, 0xea, 1, 2])]).unwrap(),
            "2026-01-02"
        );
        assert_eq!(
            timedelta(&[Value::Int(1), Value::Int(7384), Value::Int(5)]).unwrap(),
            "1 day, 2:03:04.000005"
        );
        assert_eq!(
            timedelta(&[Value::Int(-1), Value::Int(86_399), Value::Int(0)]).unwrap(),
            "-1 day, 23:59:59"
        );
        assert_eq!(
            timedelta(&[Value::Int(0), Value::Int(60)]).unwrap(),
            "0:01:00"
        );
        let mut utc = Object::new("datetime.timezone");
        utc.args = vec![delta(0, 0, 0)];
        assert_eq!(timezone(&utc.args).unwrap(), "UTC");
        assert_eq!(offset((-3600 * 5 - 1800, 0)).unwrap(), "-05:30");
        // Not the packed state: no reading, the object keeps its parts.
        assert!(datetime(&[s("2026")]).is_none());
    }
}
