//! Whatever safetensors file reads must write back and read again as the same tensors,
//! and writing the re-read file must give the same bytes (the writer is deterministic).
#![no_main]

use ckpt::safetensors::{Plan, read};
use libfuzzer_sys::fuzz_target;

fn write(checkpoint: &ckpt::Checkpoint<'_>) -> Vec<u8> {
    let tensors = checkpoint.tensors();
    let plan = Plan::new(&tensors, checkpoint.metadata()).expect("a file that reads can be planned");
    let mut out = Vec::new();
    plan.write_to(&mut out, &()).expect("writing to memory cannot fail");
    assert_eq!(out.len() as u64, plan.file_len());
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(first) = read(data) else { return };
    let bytes = write(&first);
    let second = read(&bytes).expect("what ckpt writes, ckpt reads");
    assert_eq!(first.metadata(), second.metadata());
    let (a, b) = (first.tensors(), second.tensors());
    assert_eq!(a.len(), b.len());
    for (name, view) in &a {
        let (_, other) = b.iter().find(|(n, _)| n == name).expect("every tensor is written");
        assert_eq!(view.dtype(), other.dtype());
        assert_eq!(view.shape(), other.shape());
        assert_eq!(view.to_le_bytes().ok(), other.to_le_bytes().ok());
    }
    assert_eq!(write(&second), bytes);
});
