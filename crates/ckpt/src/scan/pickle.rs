//! Scanning pickles: every global they name, how it is used, and what a broken stream
//! still shows before (and after) the point where it breaks.

use std::collections::{BTreeMap, HashMap};

use ckpt_pickle::{Arg, Decoder, ErrorKind, Limits, Object, ObjectId, Opcode, Pickle};

use super::globals::classify;
use super::{Category, Collector, Finding, Usage, Verdict};

/// What to do with bytes after the last expected pickle of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trailing {
    /// Report them (and scan them when they hold another pickle).
    Report,
    /// Raw data follows by design (tar `storages`): ignore it.
    Ignore,
}

/// Whether `bytes` start like a pickle: [`ckpt_pickle::sniff`], or an opening opcode of a
/// protocol 0/1 pickle even when the last byte is not `STOP` (trailing junk must not hide
/// a pickle that `pickle.load` reads happily).
pub(crate) fn looks_like_pickle(bytes: &[u8]) -> bool {
    if ckpt_pickle::sniff(bytes).is_some() {
        return true;
    }
    matches!(
        bytes.first().and_then(|&b| Opcode::from_byte(b)),
        Some(
            Opcode::Mark
                | Opcode::EmptyDict
                | Opcode::EmptyList
                | Opcode::EmptyTuple
                | Opcode::Global
                | Opcode::Inst
                | Opcode::Unicode
                | Opcode::BinUnicode
                | Opcode::ShortBinUnicode
                | Opcode::String
                | Opcode::BinString
                | Opcode::ShortBinString
        )
    ) && bytes.len() >= 2
        && plausible_global_line(bytes)
}

/// For a stream that opens with `GLOBAL` or `INST`: whether its first line is a module
/// path (so that a Python source file starting with `class` is not taken for a pickle).
fn plausible_global_line(bytes: &[u8]) -> bool {
    if !matches!(bytes.first(), Some(b'c' | b'i')) {
        return true;
    }
    let line = bytes
        .get(1..)
        .unwrap_or_default()
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or_default();
    !line.is_empty()
        && line
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// Scans one pickle at the start of `data` (byte `base` of the file). Returns its length
/// when it reached `STOP`, `None` when it broke (the error is recorded, what was read
/// before it is judged). With `must` false (bytes that only look like a pickle), a broken
/// stream that names no global is not a pickle worth reporting and is ignored.
pub(crate) fn scan_one(
    c: &mut Collector<'_>,
    data: &[u8],
    base: u64,
    member: &str,
    must: bool,
) -> Option<usize> {
    let limits = c.options.limits.pickle.clone();
    let (pickle, error) = ckpt_pickle::parse_partial(data, base, &limits);
    if !must && error.is_some() {
        // Bytes that only looked like a pickle: unless they name a global, they are data
        // that no loader can turn into code (a text record that starts with `]`...).
        let names_a_global = pickle
            .objects()
            .any(|(_, o)| matches!(o, Object::Global { .. }))
            || !static_globals(data, base, &limits).is_empty();
        if !names_a_global {
            return None;
        }
    }
    c.pickles += 1;
    judge_globals(c, &pickle, member);
    let Some(error) = error else {
        return Some(pickle.byte_len());
    };
    match (error.opcode(), error.kind()) {
        (Some(Opcode::StackGlobal), ErrorKind::WrongType(_) | ErrorKind::StackUnderflow) => {
            c.add(Finding {
                verdict: Verdict::Dangerous,
                category: Category::ComputedGlobal,
                global: None,
                usage: None,
                member: Some(member.to_owned()),
                offset: Some(error.offset()),
                count: 1,
                why: "STACK_GLOBAL takes its module and name from values that are not plain \
                      strings (the result of a call, a memo trick): the global is computed at \
                      load time and can be anything"
                    .to_owned(),
            });
        }
        (Some(Opcode::Ext1 | Opcode::Ext2 | Opcode::Ext4), _) => {
            c.add(Finding {
                verdict: Verdict::Unsafe,
                category: Category::Global,
                global: None,
                usage: None,
                member: Some(member.to_owned()),
                offset: Some(error.offset()),
                count: 1,
                why: "names a global by copyreg extension code, which only the loading \
                      process's registry resolves"
                    .to_owned(),
            });
        }
        _ => {}
    }
    // The static names after the break: a reader that does not stop where ckpt's VM
    // stops would still import them.
    for (offset, module, name) in static_globals(data, base, &limits) {
        if offset >= error.offset() {
            judge(
                c,
                &module,
                &name,
                Usage::Referenced,
                member,
                offset,
                " (after the point where the pickle breaks)",
            );
        }
    }
    c.errors.push(
        crate::torch::pickle_error(&error, member)
            .with_hint("the pickle is broken here; everything it names up to here was judged"),
    );
    None
}

/// Scans the pickles of `data` back to back: `expected` of them, then whatever follows.
/// Returns where the scanned pickles end (relative to `data`), or `None` when one broke.
pub(crate) fn scan_stream(
    c: &mut Collector<'_>,
    data: &[u8],
    base: u64,
    member: &str,
    trailing: Trailing,
    must: bool,
) -> Option<usize> {
    let len = scan_one(c, data, base, member, must)?;
    if trailing == Trailing::Report {
        scan_trailing(
            c,
            data.get(len..).unwrap_or_default(),
            base + len as u64,
            member,
        );
    }
    Some(len)
}

/// Judges bytes that follow the end of what a loader reads: another pickle is scanned
/// (and reported as stacked), anything else is reported as hidden data.
pub(crate) fn scan_trailing(c: &mut Collector<'_>, rest: &[u8], base: u64, member: &str) {
    let mut rest = rest;
    let mut base = base;
    let mut stacked = 0usize;
    while !rest.is_empty() {
        if looks_like_pickle(rest) && stacked < 64 {
            stacked += 1;
            c.container(
                Verdict::Unsafe,
                Some(member),
                Some(base),
                "another pickle follows STOP (stacked pickles): a loader that calls \
                 pickle.load again reads it, a scanner that stops at the first misses it",
            );
            let name = format!("{member} (stacked pickle {stacked})");
            match scan_one(c, rest, base, &name, true) {
                Some(len) if len > 0 => {
                    rest = rest.get(len..).unwrap_or_default();
                    base += len as u64;
                }
                _ => return,
            }
        } else {
            c.container(
                Verdict::Unsafe,
                Some(member),
                Some(base),
                format!(
                    "{} bytes follow the end that loaders read; they are not a pickle, but \
                     they hide data from tools that stop earlier",
                    rest.len()
                ),
            );
            return;
        }
    }
}

/// Every `GLOBAL` and `INST` of a stream by its text, as far as the opcodes decode.
fn static_globals(data: &[u8], base: u64, limits: &Limits) -> Vec<(u64, String, String)> {
    Decoder::new(data, base, limits.clone())
        .map_while(Result::ok)
        .filter(|i| matches!(i.opcode, Opcode::Global | Opcode::Inst))
        .filter_map(|i| match i.arg {
            Arg::Global { module, name } => {
                Some((i.offset, module.into_owned(), name.into_owned()))
            }
            _ => None,
        })
        .collect()
}

/// Classifies every global of a (possibly partial) pickle with its strongest use, and
/// flags `BUILD` on globals themselves.
fn judge_globals(c: &mut Collector<'_>, pickle: &Pickle<'_>, member: &str) {
    let mut uses: HashMap<ObjectId, Usage> = HashMap::new();
    let mut bump = |id: ObjectId, usage: Usage| {
        let entry = uses.entry(id).or_insert(usage);
        if usage > *entry {
            *entry = usage;
        }
    };
    for (_, object) in pickle.objects() {
        match object {
            Object::Call { callable, .. } => bump(*callable, Usage::Called),
            Object::Instance { class, .. } => bump(*class, Usage::Instantiated),
            _ => {}
        }
    }
    // Globals in creation order, so findings come in file order.
    let globals: BTreeMap<ObjectId, (&str, &str)> = pickle
        .objects()
        .filter_map(|(id, o)| match o {
            Object::Global { module, name } => Some((id, (&**module, &**name))),
            _ => None,
        })
        .collect();
    for (&id, &(module, name)) in &globals {
        let usage = uses.get(&id).copied().unwrap_or(Usage::Referenced);
        let offset = pickle.offset(id);
        judge(c, module, name, usage, member, offset, "");
        let extras = pickle.extras(id);
        if !extras.states.is_empty() || !extras.items.is_empty() || !extras.entries.is_empty() {
            let (m, n) = ckpt_pickle::python3_name(module, name);
            c.add(Finding {
                verdict: Verdict::Dangerous,
                category: Category::Mutation,
                global: Some(format!("{m}.{n}")),
                usage: Some(Usage::Mutated),
                member: Some(member.to_owned()),
                offset: Some(offset),
                count: 1,
                why: "BUILD, SETITEM or APPEND writes into the global itself (a module, class, \
                      function or registry), not into a new object: it rewires what every later \
                      user of it runs"
                    .to_owned(),
            });
        }
    }
}

fn judge(
    c: &mut Collector<'_>,
    module: &str,
    name: &str,
    usage: Usage,
    member: &str,
    offset: u64,
    note: &str,
) {
    let judgement = classify(module, name, &c.options.allow);
    let (m, n) = ckpt_pickle::python3_name(module, name);
    let full = format!("{m}.{n}");
    if judgement.verdict == Verdict::Safe {
        c.data_globals.insert(full);
        return;
    }
    c.add(Finding {
        verdict: judgement.verdict,
        category: Category::Global,
        global: Some(full),
        usage: Some(usage),
        member: Some(member.to_owned()),
        offset: Some(offset),
        count: 1,
        why: format!("{}{note}", judgement.why),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::ScanOptions;

    fn scan(bytes: &[u8]) -> (Collector<'static>, Option<usize>) {
        static OPTIONS: std::sync::OnceLock<ScanOptions> = std::sync::OnceLock::new();
        let mut c = Collector::new(OPTIONS.get_or_init(ScanOptions::default));
        let len = scan_stream(&mut c, bytes, 0, "pickle", Trailing::Report, true);
        (c, len)
    }

    fn worst(c: &Collector<'_>) -> Verdict {
        c.findings
            .iter()
            .map(|f| f.verdict)
            .max()
            .unwrap_or(Verdict::Safe)
    }

    #[test]
    fn usage_is_recorded() {
        let (c, _) = scan(b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.");
        assert_eq!(c.findings[0].usage, Some(Usage::Called));
        assert_eq!(c.findings[0].offset, Some(2));
        let (c, _) = scan(b"(S'x'\nimymod\nMyClass\n}b.");
        assert_eq!(c.findings[0].usage, Some(Usage::Instantiated));
        assert_eq!(worst(&c), Verdict::Unsafe);
    }

    #[test]
    fn a_truncated_pickle_keeps_what_it_named() {
        let (c, len) = scan(b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R");
        assert_eq!(len, None);
        assert_eq!(worst(&c), Verdict::Dangerous);
        assert_eq!(c.errors.len(), 1);
    }

    #[test]
    fn globals_after_a_break_are_still_judged() {
        // A memo GET of an unset slot breaks the VM; the GLOBAL after it is still judged.
        let (c, _) = scan(b"\x80\x02h\x09cbuiltins\nexec\n.");
        assert_eq!(worst(&c), Verdict::Dangerous);
    }

    #[test]
    fn memo_games_resolve_as_cpython_does() {
        // MEMOIZE numbers slots by memo size; a BINPUT in between shifts nothing else.
        // "os" memoized at 0, "system" at 1, then STACK_GLOBAL from the memo.
        let bytes = b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93N\x85R.";
        let (c, _) = scan(bytes);
        assert_eq!(c.findings[0].global.as_deref(), Some("os.system"));
        // Protocol-0 STRING operands for STACK_GLOBAL.
        let (c, _) = scan(b"\x80\x04S'subprocess'\nS'Popen'\n\x93.");
        assert_eq!(c.findings[0].global.as_deref(), Some("subprocess.Popen"));
        // PUT then MEMOIZE: MEMOIZE uses len(memo) = 1 here, overwriting nothing.
        let (c, _) = scan(b"\x80\x04\x8c\x08builtinsp5\n\x8c\x04eval\x94h\x05h\x01\x93.");
        assert_eq!(c.findings[0].global.as_deref(), Some("builtins.eval"));
    }

    #[test]
    fn a_computed_global_is_dangerous() {
        // STACK_GLOBAL whose name is the result of a call.
        let bytes = b"\x80\x04\x8c\x02os\x8c\x08builtins\x8c\x03str\x93\x8c\x06system\x85R\x93.";
        let (c, _) = scan(bytes);
        assert!(
            c.findings
                .iter()
                .any(|f| f.category == Category::ComputedGlobal && f.verdict == Verdict::Dangerous)
        );
    }

    #[test]
    fn build_on_a_global_is_mutation() {
        let bytes = b"\x80\x02cnumpy\nprod\n}X\x01\x00\x00\x00aX\x02\x00\x00\x00ossb.";
        let (c, _) = scan(bytes);
        assert!(c.findings.iter().any(|f| f.category == Category::Mutation));
        assert_eq!(worst(&c), Verdict::Dangerous);
    }

    #[test]
    fn setitem_into_a_global_registry_is_mutation() {
        // pydantic._dynamic_imports['x'] = ('os', 'system')
        let bytes = b"\x80\x02cpydantic\n_dynamic_imports\nX\x01\x00\x00\x00xX\x02\x00\x00\x00oss.";
        let (c, _) = scan(bytes);
        assert!(c.findings.iter().any(|f| f.category == Category::Mutation));
        assert_eq!(worst(&c), Verdict::Dangerous);
    }

    #[test]
    fn stacked_pickles_and_trailing_bytes() {
        let mut bytes = b"\x80\x02}q\x00.".to_vec();
        bytes.extend_from_slice(b"\x80\x02cos\nsystem\n.");
        let (c, _) = scan(&bytes);
        assert_eq!(worst(&c), Verdict::Dangerous);
        assert_eq!(c.pickles, 2);
        let (c, _) = scan(b"\x80\x02}q\x00.junk");
        assert_eq!(worst(&c), Verdict::Unsafe);
        let (c, _) = scan(b"\x80\x02}q\x00.");
        assert!(c.findings.is_empty());
    }

    #[test]
    fn inst_and_obj_are_seen() {
        let (c, _) = scan(b"(S'touch /tmp/x'\nios\nsystem\n.");
        assert_eq!(c.findings[0].global.as_deref(), Some("os.system"));
        assert_eq!(c.findings[0].usage, Some(Usage::Instantiated));
        let (c, _) = scan(b"(cos\nsystem\nS'id'\no.");
        assert_eq!(c.findings[0].usage, Some(Usage::Instantiated));
        assert_eq!(worst(&c), Verdict::Dangerous);
    }
}
