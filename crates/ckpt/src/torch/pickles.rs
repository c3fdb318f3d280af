//! Where a file's pickles are, for listings (`ckpt inspect --pickle`) and scanners.

use std::borrow::Cow;

use crate::limits::Limits;

use crate::error::{Error, Result};
use crate::format::{self, Format};

/// One pickle of a file.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PickleSource<'data> {
    /// What it is (`data.pkl`, `object pickle`...).
    pub name: String,
    /// Where its bytes start in the file (0 for a compressed zip record).
    pub offset: u64,
    /// Its bytes (to the end of its record or of the file; the pickle ends at its `STOP`).
    pub bytes: Cow<'data, [u8]>,
}

/// The pickles of a file, as its loaders unpickle them (see `crate::walk`): `data.pkl` of a
/// torch zip; `data.pkl`, `constants.pkl` and the debug pickles of a TorchScript archive;
/// the five pickles of a legacy stream; the pickles of a tar checkpoint's `storages`,
/// `tensors` and `pickle` members; a `.metadata`; or the file itself for a plain pickle.
/// Compressed ones are inflated (within the default `inflated-len` limit).
pub fn pickles(bytes: &[u8]) -> Result<Vec<PickleSource<'_>>> {
    let limits = Limits::default();
    match format::detect(bytes)? {
        Format::Safetensors => {
            return Err(Error::invalid(
                "a safetensors file holds no pickle (its header is JSON)",
            ));
        }
        Format::DistributedCheckpoint => {
            return Err(Error::invalid(
                "a torch.distributed.checkpoint is a folder; list the pickle of its `.metadata` file",
            ));
        }
        _ => {}
    }
    let walked = crate::walk::walk(crate::input::Input::new(bytes), "", &limits);
    let mut out = Vec::new();
    for part in walked.parts {
        if !matches!(part.use_, crate::walk::Use::Pickle { .. }) {
            continue;
        }
        let loaded = part.content.load(limits.inflated_len);
        out.push(PickleSource {
            name: part.name.clone(),
            offset: part.base(),
            bytes: loaded.bytes,
        });
    }
    Ok(out)
}
