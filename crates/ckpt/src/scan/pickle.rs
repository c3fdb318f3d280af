//! Scanning pickles: every global they name, how it is used, and what a broken stream
//! still shows before (and after) the point where it breaks.

use std::collections::{BTreeMap, HashMap};

use ckpt_pickle::{ErrorKind, Object, ObjectId, Opcode, Pickle, StaticGlobal, StaticName};

use super::globals::classify;
use super::{Category, Collector, Finding, Usage, Verdict};
use crate::walk::{Loader, Parsed};

/// Scans the pickle at the start of `data` (byte `base` of the file, or of the inflated
/// bytes), which `loader` unpickles; `None` for bytes that only another loader might read
/// as a pickle (a probe). `parsed`: the walk's parse of the same bytes, when it has one.
///
/// Returns the pickle's length when it reached `STOP`. A pickle a loader unpickles that
/// breaks is never judged better than `unsafe`: what the loader does past the break cannot
/// be told, and what the bytes after it name is judged too. A probe that names nothing is
/// not a pickle and is not reported.
pub(crate) fn scan_pickle(
    c: &mut Collector<'_>,
    data: &[u8],
    base: u64,
    member: &str,
    loader: Option<Loader>,
    parsed: Option<&Parsed<'_>>,
) -> Option<usize> {
    let limits = c.options.limits.pickle.clone();
    let owned;
    // joblib writes numpy arrays inline, after the BUILD of a NumpyArrayWrapper: its
    // unpickler reads them (or an object array's nested pickle) from the stream itself.
    let mut nested: Vec<usize> = Vec::new();
    let joblib = memchr::memmem::find(data, b"NumpyArrayWrapper").is_some();
    let (pickle, error) = match parsed {
        Some(parsed) if !joblib => (&parsed.pickle, parsed.error.as_ref()),
        _ if joblib => {
            let all = c.options.limits.clone();
            let mut hook = |view: &Pickle<'_>, target: ObjectId, rest: &[u8]| -> usize {
                match crate::joblib::inline(view, target, rest, &all) {
                    Ok(crate::joblib::Inline::Raw(n)) => n,
                    Ok(crate::joblib::Inline::Pickle) => {
                        let inner = ckpt_pickle::parse_partial(rest, 0, &limits).0;
                        nested.push(data.len() - rest.len());
                        inner.byte_len()
                    }
                    _ => 0,
                }
            };
            owned = ckpt_pickle::parse_partial_inline(
                data,
                base,
                &limits,
                ckpt_pickle::Framing::Contiguous,
                &mut hook,
            );
            (&owned.0, owned.1.as_ref())
        }
        _ => {
            owned = ckpt_pickle::parse_partial(data, base, &limits);
            (&owned.0, owned.1.as_ref())
        }
    };
    // Each object array's pickle, as joblib reads it.
    for &at in &nested {
        let bytes = data.get(at..).unwrap_or_default();
        let name = format!("{member} (object array at byte {})", base + at as u64);
        scan_pickle(
            c,
            bytes,
            base + at as u64,
            &name,
            Some(Loader::Joblib),
            None,
        );
    }
    // Where the two ways CPython reads a frame part (`pickle.loads` of the bytes, `torch.load`
    // of an `io.BytesIO`), the stream reading is judged too.
    if pickle.divergence().is_some() {
        let (stream, _) =
            ckpt_pickle::parse_partial_framed(data, base, &limits, ckpt_pickle::Framing::Stream);
        judge_globals(c, &stream, member);
        c.container(
            Verdict::Dangerous,
            Some(member),
            pickle.divergence(),
            "an opcode here crosses the end of a FRAME: pickle.loads and torch.load (which reads \
             through io.BytesIO) read different bytes from here on (no pickler writes this); \
             both readings were judged",
        );
    }
    let after_break: Vec<StaticGlobal> = match error {
        // A stream cut short has nothing after its break.
        Some(error) if *error.kind() == ErrorKind::Truncated => Vec::new(),
        Some(error) => ckpt_pickle::static_globals(data, base, &limits)
            .into_iter()
            .filter(|g| g.offset >= error.offset())
            .collect(),
        None => Vec::new(),
    };
    if loader.is_none() && error.is_some() {
        // Bytes that only another loader could read as a pickle: unless they name a
        // global, no loader can turn them into code.
        let names_a_global = pickle
            .objects()
            .any(|(_, o)| matches!(o, Object::Global { .. }))
            || !after_break.is_empty();
        if !names_a_global {
            return None;
        }
    }
    c.pickles += 1;
    judge_globals(c, pickle, member);
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
    // The names after the break: a reader that does not stop where ckpt's VM stops would
    // still import them.
    for global in after_break {
        judge_static(
            c,
            &global,
            member,
            " (after the point where the pickle breaks)",
        );
    }
    let over_a_limit = matches!(error.kind(), ErrorKind::LimitExceeded { .. });
    if let Some(loader) = loader.filter(|_| !over_a_limit) {
        c.container(
            Verdict::Unsafe,
            Some(member),
            Some(error.offset()),
            format!(
                "{} unpickles these bytes, and they break here ({}): what it does with them \
                 cannot be vouched for; everything they name was judged",
                loader.describe(),
                error.message()
            ),
        );
    }
    if loader.is_some() {
        let error = crate::torch::pickle_error(error, member);
        c.errors.push(if over_a_limit {
            error
        } else {
            error.with_hint("the pickle is broken here; everything it names was judged")
        });
    }
    None
}

/// Judges bytes that follow the end of what a loader reads: another pickle is scanned
/// (and reported as stacked: a loader that calls `pickle.load` again reads it), anything
/// else is reported as hidden data.
pub(crate) fn scan_trailing(c: &mut Collector<'_>, rest: &[u8], base: u64, member: &str) {
    let mut rest = rest;
    let mut base = base;
    let mut stacked = 0usize;
    while !rest.is_empty() {
        let limits = c.options.limits.pickle.clone();
        let (pickle, error) = ckpt_pickle::parse_partial(rest, base, &limits);
        let is_pickle = error.is_none() || pickle.len_objects() > 0;
        if !is_pickle || stacked >= 64 {
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
            scan_pickle(c, rest, base, member, None, None);
            return;
        }
        stacked += 1;
        c.container(
            Verdict::Unsafe,
            Some(member),
            Some(base),
            "another pickle follows STOP (stacked pickles): a loader that calls pickle.load \
             again reads it, a scanner that stops at the first misses it",
        );
        let name = format!("{member} (stacked pickle {stacked})");
        let parsed = Parsed { pickle, error };
        match scan_pickle(c, rest, base, &name, Some(Loader::Pickle), Some(&parsed)) {
            Some(len) if len > 0 => {
                rest = rest.get(len..).unwrap_or_default();
                base += len as u64;
            }
            _ => return,
        }
    }
}

/// Judges a global found by decoding alone: a name, an extension code the pickle did not
/// register, or a `STACK_GLOBAL` of computed operands.
pub(crate) fn judge_static(c: &mut Collector<'_>, global: &StaticGlobal, member: &str, note: &str) {
    match &global.name {
        StaticName::Named { module, name } => {
            judge(
                c,
                module,
                name,
                Usage::Referenced,
                member,
                global.offset,
                note,
            );
        }
        StaticName::Extension(code) => c.add(Finding {
            verdict: Verdict::Unsafe,
            category: Category::Global,
            global: None,
            usage: None,
            member: Some(member.to_owned()),
            offset: Some(global.offset),
            count: 1,
            why: format!(
                "names a global by copyreg extension code {code}, which only the loading \
                 process's registry resolves{note}"
            ),
        }),
        StaticName::Computed => c.add(Finding {
            verdict: Verdict::Dangerous,
            category: Category::ComputedGlobal,
            global: None,
            usage: None,
            member: Some(member.to_owned()),
            offset: Some(global.offset),
            count: 1,
            why: format!(
                "STACK_GLOBAL takes its module and name from values that are not plain \
                 strings (the result of a call, a memo trick): the global is computed at \
                 load time and can be anything{note}"
            ),
        }),
        _ => {}
    }
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
        let len = scan_pickle(&mut c, bytes, 0, "pickle", Some(Loader::Pickle), None);
        if let Some(len) = len {
            scan_trailing(&mut c, &bytes[len..], len as u64, "pickle");
        }
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
