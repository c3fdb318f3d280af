//! Inputs that once crashed a reader under fuzzing (tests/fixtures/fuzz): each must now
//! be read or refused without a panic.

use std::path::Path;

#[test]
fn fuzz_findings_fail_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/fuzz");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        if let Ok(checkpoint) = ckpt::read(&bytes) {
            for (_, view) in checkpoint.tensors() {
                let _ = view.sha256();
            }
        }
        let _ = ckpt::torch::pickles(&bytes);
        count += 1;
    }
    assert!(count > 0);
}
