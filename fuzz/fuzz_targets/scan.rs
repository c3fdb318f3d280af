//! Any bytes through the scanner, under each name that changes how it looks at them (a
//! pickle, a PyTorch file, a NumPy array or archive, DCP metadata, a joblib file, a .pt2): a report or an error is
//! fine, a panic, a hang or a huge allocation is a bug.
#![no_main]

use ckpt::scan::{ScanOptions, scan_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = ScanOptions::default();
    for name in ["model.pt", "x.pkl", "a.npy", "a.npz", ".metadata", "m.joblib", "p.pt2"] {
        let _ = scan_bytes(data, name, &options);
    }
});
