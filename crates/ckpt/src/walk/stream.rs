//! Streams of pickles: a plain pickle file, and the legacy `torch.save` stream (torch 0.4 to
//! 1.5), whose loader unpickles five pickles back to back and then reads raw storages.
//!
//! A stream is a legacy one when its first pickle is torch's magic number, or a value only
//! a call could make (a magic number computed by `eval` still passes torch's check): then
//! every pickle torch's legacy loader runs is a part, whatever the fast check of
//! [`crate::format::detect`] made of the file.

use ckpt_pickle::{Object, ObjectId, Pickle};

use super::{Anomaly, AnomalyKind, Loader, Parsed, Part, Rest, Use, Walk};
use crate::input::Input;
use crate::limits::Limits;
use crate::torch::{interpret, legacy};

/// Whether `id` is torch's legacy magic number.
pub(crate) fn is_legacy_magic(pickle: &Pickle<'_>, id: ObjectId) -> bool {
    let value = match pickle.get(id) {
        Object::Int(i) => Some(i.to_string()),
        Object::BigInt(bytes) => ckpt_pickle::bigint_to_decimal(bytes, 64),
        _ => None,
    };
    value.as_deref() == Some(legacy::MAGIC_NUMBER)
}

/// Whether the value `id` is made by running code (a call, an instance, a loader's
/// persistent id): only running it would tell what it is.
fn computed(pickle: &Pickle<'_>, id: ObjectId) -> bool {
    matches!(
        pickle.get(id),
        Object::Call { .. }
            | Object::Instance { .. }
            | Object::PersistentId(_)
            | Object::Extension(_)
            | Object::Global { .. }
    )
}

/// Walks a stream of pickles from its first byte; `None` (and nothing walked) when the
/// bytes are not a pickle at all.
pub(super) fn walk_stream<'data>(
    input: Input<'data>,
    limits: &Limits,
    walk: &mut Walk<'data>,
) -> Option<&'static str> {
    let bytes = input.bytes();
    let (first, error) = ckpt_pickle::parse_partial(bytes, input.base(), &limits.pickle);
    if error.is_some() && ckpt_pickle::sniff(bytes).is_none() {
        return None;
    }
    // A magic number computed by a call passes torch's check as well as a written one; a
    // pickle that is the whole file is no legacy stream either way.
    let more = first.byte_len() < bytes.len();
    let legacy = error.is_none()
        && more
        && first
            .root()
            .is_some_and(|root| is_legacy_magic(&first, root) || computed(&first, root));
    if !legacy {
        walk.part(
            Part::stored(
                "pickle",
                input.base(),
                bytes,
                Use::Pickle {
                    loader: Loader::Pickle,
                    rest: Rest::Nothing,
                },
            )
            .with_parsed(Parsed {
                pickle: first,
                error,
            }),
        );
        return Some("pickle");
    }
    walk_legacy(input, limits, walk);
    Some("torch-legacy")
}

/// The pickles torch's legacy loader runs, then its storages.
fn walk_legacy<'data>(input: Input<'data>, limits: &Limits, walk: &mut Walk<'data>) {
    let pickles = legacy::stream_pickles(input.bytes(), input.base(), limits);
    let mut pos = 0u64;
    let mut broken = false;
    for part in &pickles {
        let bytes = input
            .slice(part.start as u64, part.len as u64)
            .unwrap_or_default();
        walk.part(
            Part::stored(
                part.name,
                input.base() + part.start as u64,
                bytes,
                Use::Pickle {
                    loader: Loader::Torch,
                    rest: Rest::Data,
                },
            )
            .with_parsed(Parsed {
                pickle: part.pickle.clone(),
                error: part.error.clone(),
            }),
        );
        pos = (part.start + part.len) as u64;
        broken |= part.error.is_some();
    }
    let (Some(main), Some(keys), false) = (pickles.get(3), pickles.get(4), broken) else {
        return;
    };
    match storages_end(input, &main.pickle, &keys.pickle, pos) {
        Some(end) if end < input.len() => {
            walk.anomaly(
                Anomaly::new(
                    AnomalyKind::Trailing,
                    format!(
                        "{} bytes follow the last storage; torch ignores them, and they can hide \
                         data from tools that stop earlier",
                        input.len() - end
                    ),
                )
                .at(input.base() + end),
            );
            walk.rest("after the storages", input.base() + end, input.from(end));
        }
        Some(_) => {}
        None => {
            walk.anomaly(
                Anomaly::new(
                    AnomalyKind::Unaccounted,
                    "cannot tell where the storages of the legacy stream end (their keys or \
                     sizes are not plain values), so the bytes after the pickles are not \
                     accounted for",
                )
                .at(input.base() + pos),
            );
            walk.rest("after the pickles", input.base() + pos, input.from(pos));
        }
    }
}

/// Where the storages of a legacy stream end: for each key of the key list, in its order,
/// an 8-byte element count and that many elements of the size the object pickle declares
/// for the storage. `None` when the keys, sizes or counts cannot be told.
fn storages_end(
    input: Input<'_>,
    main: &Pickle<'_>,
    keys: &Pickle<'_>,
    mut pos: u64,
) -> Option<u64> {
    let units = legacy::declared_storages(main).ok()?;
    let list = keys.as_seq(keys.root()?)?;
    for &key in list {
        let key = interpret::text(keys, key)?;
        let unit = units.get(&key)?.0.unit_size();
        let count = input.peek(pos, 8).ok()?;
        let count = u64::from_le_bytes(count.as_ref().try_into().ok()?);
        pos = pos.checked_add(8)?.checked_add(count.checked_mul(unit)?)?;
        if pos > input.len() {
            return None;
        }
    }
    Some(pos)
}

/// A file that is one pickle to `loader` (a DCP `.metadata`).
pub(super) fn walk_pickles<'data>(
    input: Input<'data>,
    loader: Loader,
    limits: &Limits,
    walk: &mut Walk<'data>,
) {
    let bytes = input.bytes();
    let (pickle, error) = ckpt_pickle::parse_partial(bytes, input.base(), &limits.pickle);
    walk.part(
        Part::stored(
            "pickle",
            input.base(),
            bytes,
            Use::Pickle {
                loader,
                rest: Rest::Nothing,
            },
        )
        .with_parsed(Parsed { pickle, error }),
    );
}
