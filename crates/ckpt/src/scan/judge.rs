//! Judging a walked file: every part a loader unpickles is parsed (whatever it looks like),
//! every probe is read as a pickle as far as it goes, every array header is read as numpy
//! reads it, archives inside are walked in turn, and every anomaly of the containers is a
//! finding. Only pickles, headers and directories are read: tensor bytes are never touched.

use std::io::Read;

use super::pickle::{judge_static, scan_pickle, scan_trailing};
use super::{Category, Collector, Finding, Verdict};
use crate::error::Error;
use crate::input::Input;
use crate::walk::{self, Anomaly, AnomalyKind, Content, Part, Rest, Use};

/// The deepest nesting of archives walked (a member of a member of...).
const MAX_NESTING: usize = 8;

/// Walks `input` (named `name`, inside the part `within` of an outer file when nested) and
/// judges it; returns what the file is.
pub(crate) fn scan_input(
    c: &mut Collector<'_>,
    input: Input<'_>,
    name: &str,
    within: &str,
    depth: usize,
) -> Option<&'static str> {
    let walked = walk::walk(input, name, &c.options.limits);
    for anomaly in &walked.anomalies {
        judge_anomaly(c, anomaly, within);
    }
    for error in walked.errors {
        c.errors.push(if within.is_empty() {
            error
        } else {
            error.with_member(within.to_owned())
        });
    }
    let mut code_seen = false;
    for part in &walked.parts {
        if part.use_ == Use::Code {
            if !code_seen {
                code_seen = true;
                c.add(Finding {
                    verdict: Verdict::Unsafe,
                    category: Category::Code,
                    global: None,
                    usage: None,
                    member: Some(path(within, &part.name)),
                    offset: Some(part.offset),
                    count: 1,
                    why: if walked.format == Some("pt2") {
                        "an exported program (or a compiled library): torch.export.load \
                         rebuilds its graph of operators, which run when it is called"
                            .to_owned()
                    } else {
                        "TorchScript code: torch.jit.load compiles and runs it (it can read \
                         and write files); `ckpt convert` extracts the tensors without it"
                            .to_owned()
                    },
                });
            }
            continue;
        }
        judge_part(c, part, within, depth);
    }
    walked.format
}

/// `within > name`, the place of a part of a nested file.
fn path(within: &str, name: &str) -> String {
    if within.is_empty() {
        name.to_owned()
    } else {
        format!("{within} > {name}")
    }
}

fn judge_part(c: &mut Collector<'_>, part: &Part<'_>, within: &str, depth: usize) {
    let place = path(within, &part.name);
    let compressed = !part.content.is_stored();
    if compressed && c.inflation_left == 0 {
        c.container(
            Verdict::Unsafe,
            Some(&place),
            Some(part.offset),
            format!(
                "not inflated: the file's compressed parts already inflated to {} bytes, four \
                 times the `inflated-len` limit",
                c.options.limits.inflated_len.saturating_mul(4)
            ),
        );
        return;
    }
    let max = c.options.limits.inflated_len.min(c.inflation_left);
    let loaded = part.content.load(max);
    if compressed {
        c.inflation_left = c.inflation_left.saturating_sub(loaded.bytes.len() as u64);
    }
    if let Some(problem) = &loaded.problem {
        c.container(
            Verdict::Unsafe,
            Some(&place),
            Some(part.offset),
            format!(
                "{problem}: only the {} bytes inflated before that were scanned",
                loaded.bytes.len()
            ),
        );
    }
    let bytes: &[u8] = &loaded.bytes;
    let base = part.base();
    match part.use_ {
        Use::Pickle { loader, rest } => {
            let parsed = if part.content.is_stored() {
                part.parsed.as_ref()
            } else {
                None
            };
            let end = scan_pickle(c, bytes, base, &place, Some(loader), parsed);
            if let (Some(end), Rest::Nothing) = (end, rest) {
                scan_trailing(
                    c,
                    bytes.get(end..).unwrap_or_default(),
                    base + end as u64,
                    &place,
                );
            }
        }
        Use::Probe => {
            scan_pickle(c, bytes, base, &place, None, None);
        }
        Use::Npy => super::npy::scan_npy(c, bytes, base, &place),
        Use::Nested => {
            if depth >= MAX_NESTING {
                c.container(
                    Verdict::Unsafe,
                    Some(&place),
                    Some(part.offset),
                    format!("an archive nested {MAX_NESTING} deep: what it holds was not scanned"),
                );
                return;
            }
            let input = if part.content.is_stored() {
                Input::inflated(bytes, part.offset)
            } else {
                Input::inflated(bytes, 0)
            };
            let name = part.name.rsplit('/').next().unwrap_or_default();
            scan_input(c, input, name, &place, depth + 1);
        }
        Use::Code => {}
    }
    if loaded.over_limit {
        stream_past_the_limit(c, part, &place, bytes);
    }
}

/// A reader that counts what it reads.
struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buffer)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// What a compressed part names past the `inflated-len` limit: the part inflated so far was
/// judged; the rest of the stream is read on (as much again as the limit, within what the
/// file may still inflate), holding no more than a mebibyte of it at once, and every global
/// decoding finds there is judged.
fn stream_past_the_limit(c: &mut Collector<'_>, part: &Part<'_>, place: &str, held: &[u8]) {
    let start = match part.use_ {
        Use::Pickle { .. } | Use::Probe => 0,
        // An object array's pickle starts after its header.
        Use::Npy => match crate::npy::parse_header_with(held, &c.options.limits) {
            Ok(header) if !header.has_object => return,
            Ok(header) => header.data_offset,
            Err(_) => match crate::npy::data_offset(held) {
                Some(start) => start,
                None => return,
            },
        },
        // A compressed file joblib unpickles from its first byte.
        Use::Nested if matches!(part.content, Content::Wrapped { .. }) => 0,
        Use::Nested | Use::Code => return,
    };
    let Some(mut reader) = part.content.reader() else {
        return;
    };
    if std::io::copy(&mut (&mut reader).take(start), &mut std::io::sink()).ok() != Some(start) {
        return;
    }
    // From the start again (what is held was judged already), and on for at most the limit
    // again, within what the file may still inflate.
    let budget =
        (held.len() as u64).saturating_add(c.options.limits.inflated_len.min(c.inflation_left));
    let counted = Counted {
        inner: reader,
        read: 0,
    };
    let mut counted = counted;
    let found = ckpt_pickle::static_globals_read(
        &mut counted,
        start,
        &c.options.limits.pickle,
        1 << 20,
        budget,
    );
    c.inflation_left = c
        .inflation_left
        .saturating_sub(counted.read.saturating_sub(held.len() as u64));
    let judged = held.len() as u64;
    for global in found.iter().filter(|g| g.offset >= judged) {
        judge_static(
            c,
            global,
            place,
            " (past the `inflated-len` limit, read streaming)",
        );
    }
}

/// How bad each anomaly of a container is.
fn judge_anomaly(c: &mut Collector<'_>, anomaly: &Anomaly, within: &str) {
    let verdict = match anomaly.kind {
        // Two readers see different files: what a scanner reads is not what loads.
        AnomalyKind::ZipDuplicate
        | AnomalyKind::ZipLocalHeader
        | AnomalyKind::ZipEncrypted
        | AnomalyKind::ZipHidden
        | AnomalyKind::ZipOverlap => Verdict::Dangerous,
        // A truncated file: its reader fails there.
        AnomalyKind::ZipBounds => {
            let mut error = Error::malformed(anomaly.message.clone())
                .with_hint("the file is truncated; fetch it again");
            if let Some(member) = &anomaly.member {
                error = error.with_member(path(within, member));
            }
            if let Some(offset) = anomaly.offset {
                error = error.at_offset(offset);
            }
            c.errors.push(error);
            return;
        }
        // Bytes that are not accounted for, or not read.
        AnomalyKind::ZipEntry
        | AnomalyKind::ZipCompression
        | AnomalyKind::ZipDescriptor
        | AnomalyKind::ZipGap
        | AnomalyKind::ZipPrefix
        | AnomalyKind::ZipTrailing
        | AnomalyKind::Trailing
        | AnomalyKind::Unaccounted
        | AnomalyKind::Polyglot => Verdict::Unsafe,
    };
    let member = anomaly.member.as_deref().map(|m| path(within, m));
    let member = member.or_else(|| (!within.is_empty()).then(|| within.to_owned()));
    c.container(
        verdict,
        member.as_deref(),
        anomaly.offset,
        anomaly.message.clone(),
    );
}
