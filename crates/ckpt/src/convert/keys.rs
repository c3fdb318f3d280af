//! Key surgery: which tensors a conversion keeps, and under which names.
//!
//! Names are the dotted full names of the checkpoint's tensors
//! (`encoder.layer.0.attn.weight`). Include and exclude patterns look at those source
//! names; then prefixes are stripped and rename rules applied, in the order they were
//! given. Two tensors may not end up under one name.

use std::collections::HashMap;

use globset::{Glob, GlobSet, GlobSetBuilder};
use regex::Regex;

use crate::error::{Error, Result};

/// How tensor names change on the way to the output: filters, then prefix stripping, then
/// renames. The default keeps every name as it is.
#[derive(Debug, Clone, Default)]
pub struct KeyMap {
    include: Vec<String>,
    exclude: Vec<String>,
    include_set: Option<GlobSet>,
    exclude_set: Option<GlobSet>,
    strip_prefixes: Vec<String>,
    renames: Vec<(Regex, String)>,
}

impl KeyMap {
    /// A map that keeps every name.
    pub fn new() -> Self {
        KeyMap::default()
    }

    /// Adds an include pattern: only tensors whose source name matches one of the include
    /// patterns are kept (globs: `*` and `?` also match dots; `[abc]`, `{a,b}` work as in a
    /// shell). Repeatable.
    pub fn include(mut self, pattern: &str) -> Result<Self> {
        self.include.push(pattern.to_owned());
        self.include_set = Some(glob_set(&self.include, "include")?);
        Ok(self)
    }

    /// Adds an exclude pattern: tensors whose source name matches one of the exclude
    /// patterns (globs, as [`KeyMap::include`]) are dropped. Repeatable; exclusion wins over
    /// inclusion.
    pub fn exclude(mut self, pattern: &str) -> Result<Self> {
        self.exclude.push(pattern.to_owned());
        self.exclude_set = Some(glob_set(&self.exclude, "exclude")?);
        Ok(self)
    }

    /// Removes `prefix` from the names that start with it (`module.`, the prefix
    /// `DataParallel` adds). Names without it are kept as they are. Repeatable, applied in
    /// order.
    pub fn strip_prefix(mut self, prefix: &str) -> Result<Self> {
        if prefix.is_empty() {
            return Err(Error::invalid("a prefix to strip cannot be empty"));
        }
        self.strip_prefixes.push(prefix.to_owned());
        Ok(self)
    }

    /// Adds a rename rule `REGEX=REPLACEMENT`: every match of the regular expression in a name
    /// is replaced, as Python's `re.sub` does; the replacement names groups as the regex
    /// crate does, `$1` or `${name}` (not `\1`; `${1}` when a letter, digit or `_` follows,
    /// since `$1a` is the group `1a`). The first `=` separates the two parts (write `\x3D` for a `=` in the
    /// expression). Repeatable, applied in order after prefixes are stripped.
    pub fn rename(mut self, spec: &str) -> Result<Self> {
        let (pattern, replacement) = spec.split_once('=').ok_or_else(|| {
            Error::invalid(format!("`{spec}` is not a rename rule REGEX=REPLACEMENT")).with_hint(
                "for example `^transformer\\.=model.` (an empty replacement deletes the match)",
            )
        })?;
        let regex = Regex::new(pattern).map_err(|e| {
            Error::invalid(format!(
                "rename rule `{spec}`: not a regular expression: {}",
                regex_error(&e)
            ))
        })?;
        self.renames.push((regex, replacement.to_owned()));
        Ok(self)
    }

    /// Whether the map keeps every name unchanged.
    pub fn is_identity(&self) -> bool {
        self.include.is_empty()
            && self.exclude.is_empty()
            && self.strip_prefixes.is_empty()
            && self.renames.is_empty()
    }

    /// Whether a tensor with this source name is kept.
    pub fn keeps(&self, name: &str) -> bool {
        let included = self
            .include_set
            .as_ref()
            .is_none_or(|set| set.is_match(name));
        let excluded = self
            .exclude_set
            .as_ref()
            .is_some_and(|set| set.is_match(name));
        included && !excluded
    }

    /// The output name of a kept tensor.
    pub fn rename_one(&self, name: &str) -> String {
        let mut name = name.to_owned();
        for prefix in &self.strip_prefixes {
            if let Some(rest) = name.strip_prefix(prefix.as_str()) {
                name = rest.to_owned();
            }
        }
        for (regex, replacement) in &self.renames {
            if let std::borrow::Cow::Owned(renamed) = regex.replace_all(&name, replacement.as_str())
            {
                name = renamed;
            }
        }
        name
    }

    /// Applies the map to `(name, item)` pairs, in order. Fails if two items would get one
    /// name, or a rename would leave a name empty (an empty source name is kept).
    pub fn apply<T>(&self, items: Vec<(String, T)>) -> Result<Mapped<T>> {
        let mut mapped = Mapped {
            kept: Vec::with_capacity(items.len()),
            renamed: Vec::new(),
            dropped: Vec::new(),
        };
        let mut sources: HashMap<String, String> = HashMap::new();
        for (name, item) in items {
            if !self.keeps(&name) {
                mapped.dropped.push(name);
                continue;
            }
            let new = self.rename_one(&name);
            if new.is_empty() && !name.is_empty() {
                return Err(Error::invalid(format!(
                    "renaming leaves tensor `{name}` without a name"
                )));
            }
            if let Some(first) = sources.insert(new.clone(), name.clone()) {
                return Err(Error::invalid(format!(
                    "tensors `{first}` and `{name}` would both be written as `{new}`"
                ))
                .with_hint(
                    "change the prefix stripping or the rename rules, or leave one of the two \
                     out with an exclude pattern",
                ));
            }
            if new != name {
                mapped.renamed.push((name, new.clone()));
            }
            mapped.kept.push((new, item));
        }
        Ok(mapped)
    }
}

/// What [`KeyMap::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped<T> {
    /// The kept items under their output names, in source order.
    pub kept: Vec<(String, T)>,
    /// `(source name, output name)` of every kept item whose name changed.
    pub renamed: Vec<(String, String)>,
    /// Source names dropped by the filters.
    pub dropped: Vec<String>,
}

/// The glob set of `patterns`; `which` (`include`, `exclude`) names them in errors.
fn glob_set(patterns: &[String], which: &str) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = Glob::new(pattern).map_err(|e| {
            Error::invalid(format!(
                "`{pattern}` is not a valid {which} pattern: {}",
                e.kind()
            ))
        })?;
        builder.add(glob);
    }
    builder
        .build()
        .map_err(|e| Error::invalid(format!("the {which} patterns: {e}")))
}

/// The prefix every name has when the names look saved from a wrapper (`module.` from
/// `DataParallel`/`DistributedDataParallel`, `_orig_mod.` from `torch.compile`), if all of
/// them have the same one: a prefix to strip, worth suggesting.
pub fn common_wrapper_prefix<'n>(names: impl IntoIterator<Item = &'n str>) -> Option<&'static str> {
    const WRAPPERS: [&str; 2] = ["module.", "_orig_mod."];
    let mut names = names.into_iter().peekable();
    names.peek()?;
    let mut candidates: Vec<&'static str> = WRAPPERS.to_vec();
    for name in names {
        candidates.retain(|prefix| name.starts_with(prefix) && name.len() > prefix.len());
        if candidates.is_empty() {
            return None;
        }
    }
    candidates.first().copied()
}

/// A regex error on one line: the regex crate draws the pattern with a caret under the
/// fault on lines of their own (`regex parse error:\n    ([\n     ^\nerror: unclosed
/// character class`), which an error line cannot hold: `unclosed character class, at
/// character 2`.
fn regex_error(error: &regex::Error) -> String {
    let text = error.to_string();
    let lines: Vec<&str> = text.lines().collect();
    match lines.as_slice() {
        [_, _, caret, .., last] if caret.trim_start().starts_with('^') => {
            let column = caret.find('^').unwrap_or(4).saturating_sub(4) + 1;
            let what = last.strip_prefix("error: ").unwrap_or(last);
            format!("{what}, at character {column}")
        }
        _ => lines.join("; "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_named_as_the_docs_say() {
        let map = |rule: &str| KeyMap::new().rename(rule).unwrap().rename_one("h.3.w");
        assert_eq!(map(r"^h\.(\d+)\.=layers.$1."), "layers.3.w");
        assert_eq!(map(r"^h\.(\d+)\.=${1}x."), "3x.w");
        // `$1x` is the group named `1x`, which does not exist: nothing.
        assert_eq!(map(r"^h\.(\d+)\.=$1x."), ".w");
        // Not Python's `\1`.
        assert_eq!(map(r"^h\.(\d+)\.=\1."), "\\1.w");
    }

    #[test]
    fn a_bad_rename_regex_is_one_line() {
        let error = KeyMap::new().rename("([=x").unwrap_err().to_string();
        assert_eq!(
            error,
            "rename rule `([=x`: not a regular expression: unclosed character class, at \
             character 2"
        );
        assert!(!error.contains('\n'));
    }

    fn names(list: &[&str]) -> Vec<(String, ())> {
        list.iter().map(|n| ((*n).to_owned(), ())).collect()
    }

    fn kept(mapped: &Mapped<()>) -> Vec<&str> {
        mapped.kept.iter().map(|(n, ())| n.as_str()).collect()
    }

    #[test]
    fn the_default_map_changes_nothing() {
        let map = KeyMap::new();
        assert!(map.is_identity());
        let mapped = map.apply(names(&["a.weight", "b"])).unwrap();
        assert_eq!(kept(&mapped), ["a.weight", "b"]);
        assert!(mapped.renamed.is_empty() && mapped.dropped.is_empty());
    }

    #[test]
    fn globs_match_across_dots_and_exclusion_wins() {
        let map = KeyMap::new()
            .include("encoder.*")
            .unwrap()
            .include("head.weight")
            .unwrap()
            .exclude("*.bias")
            .unwrap();
        let mapped = map
            .apply(names(&[
                "encoder.layer.0.weight",
                "encoder.layer.0.bias",
                "decoder.weight",
                "head.weight",
            ]))
            .unwrap();
        assert_eq!(kept(&mapped), ["encoder.layer.0.weight", "head.weight"]);
        assert_eq!(mapped.dropped, ["encoder.layer.0.bias", "decoder.weight"]);
    }

    #[test]
    fn prefixes_are_stripped_then_renames_applied_in_order() {
        let map = KeyMap::new()
            .strip_prefix("module.")
            .unwrap()
            .rename(r"^h\.(\d+)\.=layers.$1.")
            .unwrap()
            .rename(r"\.attn\.=.attention.")
            .unwrap();
        let mapped = map
            .apply(names(&["module.h.0.attn.w", "module.wte", "lm_head"]))
            .unwrap();
        assert_eq!(kept(&mapped), ["layers.0.attention.w", "wte", "lm_head"]);
        assert_eq!(
            mapped.renamed,
            [
                (
                    "module.h.0.attn.w".to_owned(),
                    "layers.0.attention.w".to_owned()
                ),
                ("module.wte".to_owned(), "wte".to_owned())
            ]
        );
    }

    #[test]
    fn renames_replace_every_match_like_re_sub() {
        let map = KeyMap::new().rename("gamma=weight").unwrap();
        assert_eq!(map.rename_one("ln.gamma.gamma"), "ln.weight.weight");
    }

    #[test]
    fn collisions_and_empty_names_are_refused() {
        let map = KeyMap::new().strip_prefix("module.").unwrap();
        let error = map.apply(names(&["module.a", "a"])).unwrap_err();
        assert!(error.to_string().contains("`module.a` and `a`"), "{error}");
        let map = KeyMap::new().rename("^.*$=").unwrap();
        assert!(map.apply(names(&["x"])).is_err());
    }

    #[test]
    fn bad_patterns_are_clear_errors() {
        assert!(KeyMap::new().include("a[").is_err());
        assert!(KeyMap::new().rename("no-equals-sign").is_err());
        assert!(KeyMap::new().rename("(=x").is_err());
        assert!(KeyMap::new().strip_prefix("").is_err());
    }

    #[test]
    fn wrapper_prefixes_are_suggested_only_when_every_name_has_one() {
        assert_eq!(
            common_wrapper_prefix(["module.a", "module.b.c"]),
            Some("module.")
        );
        assert_eq!(common_wrapper_prefix(["_orig_mod.a"]), Some("_orig_mod."));
        assert_eq!(common_wrapper_prefix(["module.a", "b"]), None);
        assert_eq!(common_wrapper_prefix(["module."]), None);
        assert_eq!(common_wrapper_prefix(std::iter::empty()), None);
    }
}
