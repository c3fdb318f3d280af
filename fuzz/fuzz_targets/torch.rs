//! Any bytes through each PyTorch reader directly (zip, legacy stream, tar, bare pickle),
//! without format detection in front: an error is fine, a panic, a hang or a huge
//! allocation is a bug. Whatever reads is walked (every tensor hashed) and, when torch's
//! `weights_only` could load it, written back as a `.pth` that must read as the same tensors.
#![no_main]

use ckpt::torch::{read_legacy, read_pickle, read_tar, read_zip, write::Plan};
use libfuzzer_sys::fuzz_target;

fn check(checkpoint: &ckpt::Checkpoint<'_>) {
    let tensors = checkpoint.tensors();
    let hashes: Vec<_> = tensors.iter().map(|(_, view)| view.sha256().ok()).collect();
    // Views the limits refuse to produce cannot be written either; skip the round trip.
    if hashes.iter().any(Option::is_none) {
        return;
    }
    let Ok(plan) = Plan::new(checkpoint.root(), "archive") else {
        return;
    };
    let mut out = Vec::new();
    plan.write_to(&mut out, &()).expect("writing to memory cannot fail");
    assert_eq!(out.len() as u64, plan.file_len());
    let again = read_zip(&out).expect("what ckpt writes, ckpt reads");
    let written = again.tensors();
    assert_eq!(tensors.len(), written.len());
    for ((name, view), ((other_name, other), hash)) in tensors.iter().zip(written.iter().zip(&hashes)) {
        assert_eq!(name, other_name);
        assert_eq!(view.dtype(), other.dtype());
        assert_eq!(view.shape(), other.shape());
        assert_eq!(other.sha256().ok(), *hash, "{name}");
    }
}

fuzz_target!(|data: &[u8]| {
    for read in [read_zip, read_legacy, read_tar, read_pickle] {
        if let Ok(checkpoint) = read(data) {
            check(&checkpoint);
        }
    }
});
