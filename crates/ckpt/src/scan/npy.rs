//! numpy arrays: an object array's data is a pickle that `numpy.load(allow_pickle=True)`
//! runs. The header is read as numpy reads it ([`crate::npy`]: a Python literal, a dtype
//! built as numpy builds it), and the dtype decides, never a search of its text.

use super::pickle::{scan_pickle, scan_trailing};
use super::{Collector, Verdict};
use crate::npy;
use crate::walk::Loader;

/// A `.npy` array at the start of `bytes` (byte `base`): an object array holds a pickle
/// after its header, which is scanned. A header ckpt cannot decide on is judged as an
/// object array's.
pub(crate) fn scan_npy(c: &mut Collector<'_>, bytes: &[u8], base: u64, member: &str) {
    let data_start = match npy::parse_header_with(bytes, &c.options.limits) {
        Ok(header) if !header.has_object => return,
        Ok(header) => header.data_offset,
        // numpy refuses the header too: it reads no data.
        Err(error) if npy::refused_by_numpy(&error) => {
            c.errors.push(error.with_member(member.to_owned()));
            return;
        }
        Err(error) => {
            let Some(start) = npy::data_offset(bytes) else {
                c.errors.push(error.with_member(member.to_owned()));
                return;
            };
            c.container(
                Verdict::Unsafe,
                Some(member),
                Some(base),
                format!(
                    "ckpt cannot tell whether numpy reads this array as objects ({}): its data \
                     is scanned as the pickle it would be",
                    error.message()
                ),
            );
            start
        }
    };
    let label = format!("{member} (object array)");
    let Some(data) = usize::try_from(data_start)
        .ok()
        .and_then(|start| bytes.get(start..))
    else {
        return;
    };
    let at = base + data_start;
    if let Some(end) = scan_pickle(c, data, at, &label, Some(Loader::Numpy), None) {
        scan_trailing(
            c,
            data.get(end..).unwrap_or_default(),
            at + end as u64,
            &label,
        );
    }
}
