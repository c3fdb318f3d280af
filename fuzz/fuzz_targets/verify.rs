//! Any bytes through `ckpt::verify::verify_bytes`: it may refuse them (not a checkpoint) or
//! list problems, but never panic, hang or allocate what the file claims. A report without
//! an error must mean the normal reader accepts the bytes (a sound file reads).
#![no_main]

use ckpt::verify::{Severity, verify_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = verify_bytes(data) {
        for problem in report.problems() {
            assert!(!problem.message().is_empty());
        }
        if report.count(Severity::Error) == 0 && report.is_sound() {
            assert!(ckpt::read(data).is_ok(), "a sound file must read");
        }
    }
});
