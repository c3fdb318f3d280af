//! copyreg's extension registry, as a pickle fills it itself.
//!
//! `EXT1`/`EXT2`/`EXT4` name a global by a code that `copyreg.add_extension(module, name,
//! code)` registered in the loading process. A plain Python registers none, but a pickle
//! can call `copyreg.add_extension` itself (`REDUCE`, or `OBJ`/`INST` with arguments) and
//! use the code afterwards: `EXT1 5` is then `os.system` as surely as `GLOBAL os system`.
//! The machine and the static pass ([`crate::static_globals`]) both keep this registry,
//! with copyreg's checks, for the rest of the pickle.

use std::collections::HashMap;
use std::sync::Arc;

/// The highest code `copyreg.add_extension` takes (codes are 1 to 0x7fffffff).
const MAX_CODE: i64 = 0x7fff_ffff;

/// Whether `module.name` is `copyreg.add_extension` for an unpickler in `protocol`:
/// `copy_reg` is its Python 2 name, which CPython maps to `copyreg` only below protocol 3
/// (the protocol of the last `PROTO` read, 0 before any); above, `copy_reg` is a module
/// Python 3 does not have.
pub(crate) fn is_add_extension(module: &str, name: &str, protocol: u8) -> bool {
    name == "add_extension" && (module == "copyreg" || module == "copy_reg" && protocol < 3)
}

/// Why `int(code)` (or its range check) fails in `add_extension`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CodeError {
    /// `ValueError: code out of range` (also for ints too large to compare).
    OutOfRange,
    /// `int()` refuses the value (`ValueError`, `OverflowError`).
    NotANumber(String),
    /// Decimal text over the digit limit (CPython's `ValueError` at 4300 digits).
    TooManyDigits,
}

/// `int(x)` of a float, as a code.
pub(crate) fn code_from_float(x: f64) -> Result<i64, CodeError> {
    if !x.is_finite() {
        return Err(CodeError::NotANumber(format!(
            "cannot convert float {x} to integer"
        )));
    }
    let truncated = x.trunc();
    if truncated.abs() >= 9.2e18 {
        return Err(CodeError::OutOfRange);
    }
    #[allow(clippy::cast_possible_truncation)] // integral and in range
    Ok(truncated as i64)
}

/// `int(text)` of `str` (ASCII) or `bytes` text, as a code: base 10 with whitespace around,
/// a sign and underscores (`PyLong_FromString` over the whole text, a NUL included).
pub(crate) fn code_from_text(text: &[u8], max_digits: usize) -> Result<i64, CodeError> {
    let not_a_number = || {
        CodeError::NotANumber(format!(
            "invalid literal for int(): `{}`",
            text.escape_ascii()
        ))
    };
    if text.contains(&0) {
        return Err(not_a_number());
    }
    let literal = crate::text::py_long_literal(text, crate::text::IntBase::Decimal)
        .ok_or_else(not_a_number)?;
    if literal.digits.len() > max_digits {
        return Err(CodeError::TooManyDigits);
    }
    let significant: Vec<u8> = literal
        .digits
        .iter()
        .copied()
        .skip_while(|&d| d == b'0')
        .collect();
    if significant.len() > 18 {
        return Err(CodeError::OutOfRange);
    }
    let magnitude: i64 = std::str::from_utf8(&significant)
        .ok()
        .filter(|s| !s.is_empty())
        .map_or(Ok(0), str::parse)
        .map_err(|_| CodeError::OutOfRange)?;
    Ok(if literal.negative {
        -magnitude
    } else {
        magnitude
    })
}

/// What a code is registered for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// Two strings: `EXT` of the code is the global `module.name`.
    Named(Arc<str>, Arc<str>),
    /// Something else (not two strings, or values only code would make): CPython refuses
    /// `EXT` of the code (`_inverted_registry[code] isn't a 2-tuple of strings`) or the
    /// global cannot be named without running code.
    Opaque,
}

/// The key `add_extension` registers a code for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    /// `(module, name)`, two strings.
    Named(Arc<str>, Arc<str>),
    /// Anything else hashable.
    Opaque,
}

/// copyreg's `_extension_registry` and `_inverted_registry`, starting empty.
#[derive(Debug, Clone, Default)]
pub(crate) struct Registry {
    by_code: HashMap<i64, Entry>,
    by_key: HashMap<(Arc<str>, Arc<str>), i64>,
}

impl Registry {
    /// `copyreg.add_extension(module, name, code)` once `int(code)` is known, with its
    /// checks: the code's range, then a key or a code already taken by something else (a
    /// registration repeated exactly is benign). The error is CPython's `ValueError` text.
    ///
    /// Opaque keys cannot be compared, so a repeat or a clash between two of them is let
    /// through: the registry never stops a pickle that CPython might read on.
    pub(crate) fn add(&mut self, key: Key, code: i64) -> Result<(), String> {
        if !(1..=MAX_CODE).contains(&code) {
            return Err("code out of range".to_owned());
        }
        match key {
            Key::Named(module, name) => {
                let pair = (module, name);
                let taken = self.by_key.get(&pair).copied();
                let entry = Entry::Named(pair.0.clone(), pair.1.clone());
                if taken == Some(code) && self.by_code.get(&code) == Some(&entry) {
                    return Ok(());
                }
                if let Some(other) = taken {
                    return Err(format!(
                        "key ('{}', '{}') is already registered with code {other}",
                        pair.0, pair.1
                    ));
                }
                if self.by_code.contains_key(&code) {
                    return Err(format!("code {code} is already in use"));
                }
                self.by_code.insert(code, entry);
                self.by_key.insert(pair, code);
            }
            Key::Opaque => match self.by_code.get(&code) {
                Some(Entry::Named(..)) => return Err(format!("code {code} is already in use")),
                Some(Entry::Opaque) => {}
                None => {
                    self.by_code.insert(code, Entry::Opaque);
                }
            },
        }
        Ok(())
    }

    /// What `code` is registered for.
    pub(crate) fn get(&self, code: i64) -> Option<&Entry> {
        self.by_code.get(&code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(module: &str, name: &str) -> Key {
        Key::Named(module.into(), name.into())
    }

    #[test]
    fn registers_with_copyregs_checks() {
        let mut registry = Registry::default();
        registry.add(named("os", "system"), 5).unwrap();
        assert_eq!(
            registry.get(5),
            Some(&Entry::Named("os".into(), "system".into()))
        );
        // The same registration again is benign.
        registry.add(named("os", "system"), 5).unwrap();
        assert!(
            registry
                .add(named("os", "popen"), 5)
                .unwrap_err()
                .contains("in use")
        );
        assert!(
            registry
                .add(named("os", "system"), 6)
                .unwrap_err()
                .contains("already registered with code 5")
        );
        assert_eq!(
            registry.add(named("a", "b"), 0).unwrap_err(),
            "code out of range"
        );
        assert!(registry.add(named("a", "b"), MAX_CODE + 1).is_err());
        registry.add(named("a", "b"), MAX_CODE).unwrap();
        registry.add(Key::Opaque, 7).unwrap();
        registry.add(Key::Opaque, 7).unwrap();
        assert!(registry.add(Key::Opaque, 5).is_err());
        assert_eq!(registry.get(7), Some(&Entry::Opaque));
        assert_eq!(registry.get(8), None);
        assert!(is_add_extension("copy_reg", "add_extension", 2));
        assert!(!is_add_extension("copy_reg", "add_extension", 3));
        assert!(is_add_extension("copyreg", "add_extension", 5));
        assert!(!is_add_extension("copyreg", "remove_extension", 0));
    }

    #[test]
    fn codes_as_int_reads_them() {
        assert_eq!(code_from_text(b" 9 ", 4300), Ok(9));
        assert_eq!(code_from_text(b"1_0", 4300), Ok(10));
        assert_eq!(code_from_text(b"-007", 4300), Ok(-7));
        assert!(matches!(
            code_from_text(b"0x10", 4300),
            Err(CodeError::NotANumber(_))
        ));
        assert!(matches!(
            code_from_text(b"9\0", 4300),
            Err(CodeError::NotANumber(_))
        ));
        assert_eq!(
            code_from_text(b"99999999999999999999", 4300),
            Err(CodeError::OutOfRange)
        );
        assert_eq!(code_from_text(b"1", 0), Err(CodeError::TooManyDigits));
        assert_eq!(code_from_float(10.7), Ok(10));
        assert_eq!(code_from_float(-0.5), Ok(0));
        assert!(matches!(
            code_from_float(f64::NAN),
            Err(CodeError::NotANumber(_))
        ));
        assert_eq!(code_from_float(1e300), Err(CodeError::OutOfRange));
    }
}
