//! Where a file's pickles are, for listings (`ckpt inspect --pickle`) and scanners.

use std::borrow::Cow;

use crate::limits::Limits;

use super::archive::Archive;
use super::tar::tar_members;
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

/// The pickles of a PyTorch file: `data.pkl` and `constants.pkl` of a zip, the five
/// pickles of a legacy stream, the `sys_info` and `pickle` members of a tar, or the file
/// itself for a plain pickle. Other formats have none.
pub fn pickles(bytes: &[u8]) -> Result<Vec<PickleSource<'_>>> {
    let limits = Limits::default();
    let mut out = Vec::new();
    match format::detect(bytes)? {
        Format::TorchZip | Format::TorchScript => {
            let archive = Archive::open(bytes, limits.inflated_len)?;
            for name in ["data.pkl", "constants.pkl"] {
                if let Some(record) = archive.get(name) {
                    out.push(PickleSource {
                        name: record.name.clone(),
                        offset: if record.compressed { 0 } else { record.start },
                        bytes: archive.read(record)?,
                    });
                }
            }
        }
        Format::TorchLegacy => {
            let mut pos = 0usize;
            for name in [
                "magic number",
                "protocol version",
                "sys_info",
                "object pickle",
                "storage keys",
            ] {
                let rest = bytes.get(pos..).unwrap_or_default();
                let len = ckpt_pickle::parse(rest, pos as u64, &limits.pickle)
                    .map(|p| p.byte_len())
                    .unwrap_or(rest.len());
                out.push(PickleSource {
                    name: name.to_owned(),
                    offset: pos as u64,
                    bytes: Cow::Borrowed(rest.get(..len).unwrap_or(rest)),
                });
                pos += len;
                if pos >= bytes.len() {
                    break;
                }
            }
        }
        Format::TorchTar => {
            let members = tar_members(bytes)?;
            for name in ["sys_info", "pickle"] {
                if let Some(&(start, len)) = members.get(name) {
                    out.push(PickleSource {
                        name: name.to_owned(),
                        offset: start as u64,
                        bytes: Cow::Borrowed(bytes.get(start..start + len).unwrap_or_default()),
                    });
                }
            }
        }
        Format::Pickle => out.push(PickleSource {
            name: "pickle".to_owned(),
            offset: 0,
            bytes: Cow::Borrowed(bytes),
        }),
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
    }
    Ok(out)
}
