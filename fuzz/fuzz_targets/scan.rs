//! Any bytes through the scanner, under each name that changes how it looks at them (a
//! pickle, a PyTorch file, a NumPy array or archive, DCP metadata, a joblib file, a .pt2): a report or an error is
//! fine, a panic, a hang or a huge allocation is a bug.
#![no_main]

use ckpt::scan::{ScanOptions, scan_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Inflation is bounded by `inflated-len` (four times it per file); at the default of
    // 256 MiB a few hundred bytes of bzip2 keep a run busy for seconds, so the fuzzer sees
    // the same code paths with 256 KiB (at 1 MiB, a 3.6 KB deflated zip took 12 s under
    // ASan for the seven names: 0.12 s each in a release build, but over the timeout).
    let mut limits = ckpt::Limits::default();
    let _ = limits.set("inflated-len", "256KiB");
    let options = ScanOptions::default().with_limits(limits);
    for name in ["model.pt", "x.pkl", "a.npy", "a.npz", ".metadata", "m.joblib", "p.pt2"] {
        let _ = scan_bytes(data, name, &options);
    }
});
