//! Any bytes through the pickle VM and its listing: an error is fine, a panic, a hang or
//! a huge allocation is a bug.
#![no_main]

use ckpt::pickle::{Limits, parse_partial, write_listing};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (pickle, _) = parse_partial(data, 0, &Limits::default());
    let _ = pickle.len_objects();
    let mut text = String::new();
    let _ = write_listing(data, 0, &Limits::default(), &mut text);
});
