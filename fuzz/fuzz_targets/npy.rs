//! Any bytes as a `.npy` header (a Python literal, a numpy dtype): a header or an error is
//! fine, a panic, a hang, deep recursion or a huge allocation is a bug. A header that
//! parses says where its data starts, inside or at the end of the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = ckpt::npy::MAGIC.to_vec();
    bytes.extend_from_slice(data);
    for input in [data, &bytes[..]] {
        if let Ok(header) = ckpt::npy::parse_header(input) {
            assert!(header.data_offset <= input.len() as u64);
        }
    }
});
