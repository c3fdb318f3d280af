//! The safetensors format: an 8-byte little-endian header length, a JSON header, then the
//! tensors' bytes, dense, row-major and little-endian.
//!
//! Reading goes in three steps, each with its own type: `header.rs` parses the JSON into raw
//! entries, [`read_header`] validates them against the file (every rule of the reference
//! reader, plus no duplicate keys) into a [`Header`], and [`read`] turns that into a
//! [`Checkpoint`](crate::Checkpoint) whose tensors borrow the file's bytes.
//!
//! Writing ([`Plan`]) lays the file out exactly as HF's `safetensors.torch.save_file` does
//! (same tensor order, offsets and header padding), then streams the tensors' bytes.

pub(crate) mod header;
mod read;
mod write;

pub use read::{Entry, Header, read, read_header, read_header_with, read_with};
pub use write::Plan;

use crate::model::Dtype;

/// The size of the header-length field at the start of the file.
pub(crate) const LENGTH_LEN: usize = 8;

/// The largest header the reference implementation reads or writes (100 MB, decimal).
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// The safetensors dtype names, in the order of the reference `Dtype` enum, which is the
/// order its writer sorts by (descending), so a name's index is its sort rank.
pub(crate) const DTYPES: [(&str, Dtype); 22] = [
    ("BOOL", Dtype::Bool),
    ("F4", Dtype::Float4E2M1Fn),
    ("F6_E2M3", Dtype::Float6E2M3Fn),
    ("F6_E3M2", Dtype::Float6E3M2Fn),
    ("U8", Dtype::UInt8),
    ("I8", Dtype::Int8),
    ("F8_E5M2", Dtype::Float8E5M2),
    ("F8_E4M3", Dtype::Float8E4M3Fn),
    ("F8_E8M0", Dtype::Float8E8M0Fnu),
    ("F8_E4M3FNUZ", Dtype::Float8E4M3Fnuz),
    ("F8_E5M2FNUZ", Dtype::Float8E5M2Fnuz),
    ("I16", Dtype::Int16),
    ("U16", Dtype::UInt16),
    ("F16", Dtype::Float16),
    ("BF16", Dtype::BFloat16),
    ("I32", Dtype::Int32),
    ("U32", Dtype::UInt32),
    ("F32", Dtype::Float32),
    ("C64", Dtype::Complex64),
    ("F64", Dtype::Float64),
    ("I64", Dtype::Int64),
    ("U64", Dtype::UInt64),
];

/// The dtype for a safetensors dtype name (`"BF16"`); names are case-sensitive.
pub(crate) fn dtype_from_str(name: &str) -> Option<Dtype> {
    DTYPES.iter().find(|(n, _)| *n == name).map(|&(_, d)| d)
}

/// The safetensors name and sort rank of a dtype, if safetensors can store it.
fn dtype_name(dtype: Dtype) -> Option<(&'static str, usize)> {
    DTYPES
        .iter()
        .position(|&(_, d)| d == dtype)
        .and_then(|rank| DTYPES.get(rank).map(|&(name, _)| (name, rank)))
}

/// The dtypes safetensors can store, by torch name, for messages.
fn storable_dtypes() -> String {
    let mut names: Vec<&str> = DTYPES.iter().map(|(_, d)| d.name()).collect();
    names.push(Dtype::Float4E2M1FnX2.name());
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_table_matches_the_reference_crate() {
        use safetensors::Dtype as Ref;
        let reference = [
            Ref::BOOL,
            Ref::F4,
            Ref::F6_E2M3,
            Ref::F6_E3M2,
            Ref::U8,
            Ref::I8,
            Ref::F8_E5M2,
            Ref::F8_E4M3,
            Ref::F8_E8M0,
            Ref::F8_E4M3FNUZ,
            Ref::F8_E5M2FNUZ,
            Ref::I16,
            Ref::U16,
            Ref::F16,
            Ref::BF16,
            Ref::I32,
            Ref::U32,
            Ref::F32,
            Ref::C64,
            Ref::F64,
            Ref::I64,
            Ref::U64,
        ];
        assert!(
            reference.is_sorted(),
            "the reference enum order is the sort order"
        );
        for ((name, dtype), reference) in DTYPES.iter().zip(reference) {
            assert_eq!(format!("{reference:?}"), *name);
            assert_eq!(
                u32::try_from(reference.bitsize()).unwrap(),
                dtype.bits(),
                "{name}"
            );
            assert_eq!(dtype_from_str(name), Some(*dtype));
        }
        assert_eq!(dtype_name(Dtype::BFloat16), Some(("BF16", 14)));
        assert_eq!(dtype_name(Dtype::Complex128), None);
    }
}
