//! What each loader of a zip archive reads of it.
//!
//! The same zip is a `torch.save` checkpoint to `torch.load` (its folder's `data.pkl`, its
//! storage records), a TorchScript program to `torch.jit.load` (`constants.pkl`, `code/`,
//! debug pickles), an `.npz` to `numpy.load` (every member that starts like a `.npy`,
//! whatever its name or folder), a `.pt2` to `torch.export.load` (the torch.save files and
//! pickles in its `data/`), and a bag of members to anything that reads them one by one.
//! Each member is a part for every loader that reads it; members no loader reads are
//! probed as pickles, and members that are archives are walked in turn.

use super::zip::{Member, STORED, Zip};
use super::{Content, Loader, NPY_MAGIC, Part, Rest, Use, Walk};
use crate::input::Input;

/// Records of a `torch.save` archive that loaders read as text, never as pickles.
const TORCH_TEXT: &[&str] = &[
    "version",
    ".data/version",
    "byteorder",
    ".format_version",
    ".storage_alignment",
    ".data/serialization_id",
];

/// What kind of archive the zip is, by the records its first folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `torch.save`: `data.pkl`.
    Torch,
    /// `torch.jit.save`: `constants.pkl` (torch.load hands such files to torch.jit.load).
    TorchScript,
    /// `torch.export.save`: `archive_format`.
    Export,
    /// Anything else (an `.npz`, a zip of files).
    Other,
}

pub(super) fn walk_zip<'data>(input: Input<'data>, walk: &mut Walk<'data>) {
    let zip = match Zip::open(input) {
        Ok(zip) => zip,
        Err(error) => {
            walk.errors.push(error);
            return;
        }
    };
    walk.anomalies.extend(zip.anomalies.iter().cloned());
    // torch: the folder of the first entry; its records are found under it by name.
    let prefix = zip
        .members
        .first()
        .and_then(|m| m.name.split_once('/'))
        .map(|(folder, _)| format!("{folder}/"));
    let inner = |m: &Member| -> Option<String> {
        let prefix = prefix.as_deref()?;
        m.name.strip_prefix(prefix).map(str::to_owned)
    };
    let has = |name: &str| {
        zip.members
            .iter()
            .any(|m| inner(m).as_deref() == Some(name))
    };
    let kind = if has("constants.pkl") {
        Kind::TorchScript
    } else if has("data.pkl") {
        Kind::Torch
    } else if has("archive_format") {
        Kind::Export
    } else {
        Kind::Other
    };
    walk.format = Some(match kind {
        Kind::Torch => "torch-zip",
        Kind::TorchScript => "torchscript",
        Kind::Export => "pt2",
        Kind::Other
            if !zip.members.is_empty() && zip.members.iter().all(|m| m.name.ends_with(".npy")) =>
        {
            "npz"
        }
        Kind::Other => "zip",
    });
    let mut code_seen = false;
    for member in zip.members.iter().chain(&zip.hidden) {
        let name = if member.listed { inner(member) } else { None };
        let use_ = match (kind, name.as_deref()) {
            (Kind::Torch, Some("data.pkl")) => Some(Use::Pickle {
                loader: Loader::Torch,
                rest: Rest::Nothing,
            }),
            (Kind::TorchScript, Some(n)) if n.ends_with(".pkl") || n.ends_with(".debug_pkl") => {
                Some(Use::Pickle {
                    loader: Loader::TorchScript,
                    rest: Rest::Nothing,
                })
            }
            (Kind::TorchScript, Some(n)) if n.starts_with("code/") => {
                if code_seen {
                    continue;
                }
                code_seen = true;
                Some(Use::Code)
            }
            (Kind::Torch | Kind::TorchScript, Some(n)) if TORCH_TEXT.contains(&n) => continue,
            // Storage records: tensor bytes, which torch never unpickles (numpy.load of the
            // same file would still read one that starts like an array).
            (Kind::Torch | Kind::TorchScript, Some(n))
                if n.starts_with("data/")
                    || n.starts_with("constants/")
                    || n.starts_with(".data/") =>
            {
                match starts_like_npy(&zip, member) {
                    true => Some(Use::Npy),
                    false => continue,
                }
            }
            (Kind::Export, Some(n))
                if n.starts_with("data/")
                    && (n.contains("/opaque_obj_") || n.contains("/custom_obj_")) =>
            {
                Some(Use::Pickle {
                    loader: Loader::Export,
                    rest: Rest::Nothing,
                })
            }
            // The exported program (a graph of operators torch runs when it is called) and
            // compiled AOTInductor libraries (native code the package loader maps).
            (Kind::Export, Some(n))
                if (n.starts_with("models/") && n.ends_with(".json"))
                    || n.ends_with(".so")
                    || n.ends_with(".dll")
                    || n.ends_with(".dylib") =>
            {
                if code_seen {
                    continue;
                }
                code_seen = true;
                Some(Use::Code)
            }
            _ => None,
        };
        member_part(&zip, member, use_, walk);
    }
    // Bytes after the archive: another reader may take them for a file of their own.
    if zip.end < input.len() {
        let offset = input.base().saturating_add(zip.end);
        walk.rest("after the archive", offset, input.from(zip.end));
    }
}

/// Whether a member's first bytes are numpy's magic (read at their offset, so that a
/// checkpoint's storage records are not mapped in one page each).
fn starts_like_npy(zip: &Zip<'_>, member: &Member) -> bool {
    let Some(start) = member.data_start.filter(|_| member.in_bounds) else {
        return false;
    };
    if member.method == STORED {
        if member.compressed_size < NPY_MAGIC.len() as u64 {
            return false;
        }
        return zip
            .input()
            .peek(start, NPY_MAGIC.len())
            .is_ok_and(|head| head.as_ref() == NPY_MAGIC);
    }
    zip.stored(member).is_ok_and(|data| {
        Content::Zip {
            method: member.method,
            data,
            size: member.size,
        }
        .load(NPY_MAGIC.len() as u64)
        .bytes
        .starts_with(NPY_MAGIC)
    })
}

/// The part of a member: `use_` when its container says what a loader does with it, else
/// what its bytes are (an array, an archive, or a probe).
fn member_part<'data>(
    zip: &Zip<'data>,
    member: &Member,
    use_: Option<Use>,
    walk: &mut Walk<'data>,
) {
    let at = zip.input().base().saturating_add(member.header_start);
    if use_ == Some(Use::Code) {
        walk.part(Part::stored(member.name.clone(), at, &[], Use::Code));
        return;
    }
    let Ok(stored) = zip.stored(member) else {
        // Past the end of the file: the anomaly is reported with the zip's.
        return;
    };
    let offset = zip
        .input()
        .base()
        .saturating_add(member.data_start.unwrap_or(member.header_start));
    let content = if member.method == STORED {
        Content::Stored(stored)
    } else {
        Content::Zip {
            method: member.method,
            data: stored,
            size: member.size,
        }
    };
    let use_ = match use_ {
        Some(use_) => use_,
        None => {
            // What the member's first bytes say it is, to any loader that reads it.
            Use::of(&content.load(8).bytes)
        }
    };
    walk.part(Part {
        name: member.name.clone(),
        offset,
        content,
        use_,
        parsed: None,
    });
}
