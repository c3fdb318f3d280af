//! Multi-file checkpoints (Hugging Face shard indexes and their shards,
//! torch.distributed.checkpoint `.metadata` and `.distcp` files) made of fuzzed files: an
//! error is fine, a panic, a hang or a huge allocation is a bug. Whatever opens is walked
//! (every tensor hashed).
//!
//! The input is a list of files, each `[name length: u8][name][data length: u32 LE][data]`;
//! names are reduced to `[A-Za-z0-9._-]` (so they stay inside the folder) and written into
//! a fresh folder, which is then opened as one checkpoint. `seed.sh` builds inputs in this
//! form from the fixture folders.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn folder() -> &'static PathBuf {
    static FOLDER: OnceLock<PathBuf> = OnceLock::new();
    FOLDER.get_or_init(|| {
        let base = std::env::var_os("CKPT_FUZZ_TMP").map_or_else(std::env::temp_dir, PathBuf::from);
        base.join(format!("ckpt-fuzz-folder-{}", std::process::id()))
    })
}

fn files(mut data: &[u8]) -> Vec<(String, &[u8])> {
    let mut files = Vec::new();
    while let Some((&len, rest)) = data.split_first() {
        let Some((name, rest)) = rest.split_at_checked(usize::from(len)) else { break };
        let Some((len, rest)) = rest.split_at_checked(4) else { break };
        let len = u32::from_le_bytes(len.try_into().unwrap()) as usize;
        let (body, rest) = rest.split_at(len.min(rest.len()));
        let name: String = name
            .iter()
            .map(|&b| if b.is_ascii_alphanumeric() || b"._-".contains(&b) { b as char } else { '_' })
            .collect();
        if !name.is_empty() && name != "." && name != ".." && files.len() < 16 {
            files.push((name, body));
        }
        data = rest;
    }
    files
}

fuzz_target!(|data: &[u8]| {
    let dir = folder();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("a scratch folder");
    for (name, body) in files(data) {
        std::fs::write(dir.join(name), body).expect("a scratch file");
    }
    if let Ok(source) = ckpt::Source::open(dir) {
        if let Ok(checkpoint) = source.checkpoint() {
            for (_, view) in checkpoint.tensors() {
                let _ = view.sha256();
            }
        }
    }
});
