//! numpy arrays: an object array's data is a pickle that `numpy.load(allow_pickle=True)`
//! runs.

use super::Collector;
use super::pickle::{scan_pickle, scan_trailing};
use crate::error::Error;
use crate::walk::{Loader, NPY_MAGIC};

/// A `.npy` array at the start of `bytes` (byte `base`): an object array holds a pickle
/// after its header, which is scanned.
pub(crate) fn scan_npy(c: &mut Collector<'_>, bytes: &[u8], base: u64, member: &str) {
    let header = (|| {
        if !bytes.starts_with(NPY_MAGIC) {
            return None;
        }
        let major = *bytes.get(6)?;
        let (len, skip): (usize, usize) = match major {
            1 => (
                usize::from(u16::from_le_bytes(bytes.get(8..10)?.try_into().ok()?)),
                10,
            ),
            2 | 3 => (
                usize::try_from(u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?)).ok()?,
                12,
            ),
            _ => return None,
        };
        let end = skip.checked_add(len)?;
        Some((bytes.get(skip..end)?, end))
    })();
    let Some((header, data_start)) = header else {
        c.errors.push(
            Error::malformed("the .npy header cannot be read")
                .with_member(member.to_owned())
                .at_offset(base),
        );
        return;
    };
    let text = String::from_utf8_lossy(header);
    let descr = text
        .split("'descr':")
        .nth(1)
        .and_then(|rest| rest.split("'fortran_order'").next())
        .unwrap_or(&text);
    let object = descr.contains('O') || descr.contains("object");
    if object {
        let label = format!("{member} (object array)");
        let data = bytes.get(data_start..).unwrap_or_default();
        let at = base + data_start as u64;
        if let Some(end) = scan_pickle(c, data, at, &label, Some(Loader::Numpy), None) {
            scan_trailing(
                c,
                data.get(end..).unwrap_or_default(),
                at + end as u64,
                &label,
            );
        }
    }
}
