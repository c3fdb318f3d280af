//! Any bytes through format detection and the readers: an error is fine, a panic, a hang or
//! a huge allocation is a bug. Every tensor that reads is hashed, so its view is walked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(checkpoint) = ckpt::read(data) {
        for (_, view) in checkpoint.tensors() {
            let _ = view.sha256();
        }
    }
});
