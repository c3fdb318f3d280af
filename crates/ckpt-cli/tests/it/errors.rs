//! Errors: exit code 2, one `error:` line saying what and where, maybe a hint, no panic.

use insta::assert_snapshot;

use crate::{ckpt, fixtures, transcript};

#[test]
fn every_bad_and_attack_file_fails_cleanly() {
    for folder in ["bad", "attack"] {
        for entry in std::fs::read_dir(fixtures().join(folder)).unwrap() {
            let path = entry.unwrap().path();
            let relative = format!("{folder}/{}", path.file_name().unwrap().to_string_lossy());
            for extra in [None, Some("--json"), Some("--hash")] {
                let mut args = vec!["inspect"];
                args.extend(extra);
                args.push(&relative);
                let run = ckpt(&fixtures(), &args);
                let stderr = String::from_utf8_lossy(&run.stderr);
                assert_eq!(
                    run.status.code(),
                    Some(2),
                    "{relative}: {}",
                    transcript(&run)
                );
                assert!(run.stdout.is_empty(), "{relative}: {}", transcript(&run));
                assert!(
                    stderr.starts_with(&format!("error: {relative}")),
                    "{relative}: {stderr}"
                );
                assert!(stderr.lines().count() <= 2, "{relative}: {stderr}");
                assert!(!stderr.contains("panicked"), "{relative}: {stderr}");
            }
        }
    }
}

#[test]
fn malformed_files_say_where() {
    let run = ckpt(&fixtures(), &["inspect", "bad/size_mismatch.safetensors"]);
    assert_snapshot!(transcript(&run));
    let run = ckpt(
        &fixtures(),
        &["inspect", "bad/duplicate_tensor_name.safetensors"],
    );
    assert_snapshot!(transcript(&run));
    let run = ckpt(&fixtures(), &["inspect", "bad/truncated_data.safetensors"]);
    assert_snapshot!(transcript(&run));
    let run = ckpt(
        &fixtures(),
        &["inspect", "attack/header_too_large.safetensors"],
    );
    assert_snapshot!(transcript(&run));
}

#[test]
fn files_that_are_not_checkpoints_say_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8]); 5] = [
        (
            "pointer.bin",
            b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2148\nsize 90868376\n",
        ),
        (
            "page.bin",
            b"<!DOCTYPE html>\n<html><head><title>Sign in</title>",
        ),
        ("model.gguf", b"GGUF\x03\x00\x00\x00\x00\x00\x00\x00"),
        ("empty.pt", b""),
        ("notes.txt", b"hello, world: not a checkpoint\n"),
    ];
    let mut all = String::new();
    for (name, bytes) in cases {
        std::fs::write(dir.path().join(name), bytes).unwrap();
        let run = ckpt(dir.path(), &["inspect", name]);
        assert_eq!(run.status.code(), Some(2));
        all.push_str(&transcript(&run));
    }
    assert_snapshot!(all);
}

#[test]
fn a_legacy_stream_cut_after_its_magic_number() {
    let dir = tempfile::tempdir().unwrap();
    // A protocol-2 pickle of torch's legacy magic number, and nothing more.
    std::fs::write(
        dir.path().join("legacy.pth"),
        b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.",
    )
    .unwrap();
    let run = ckpt(dir.path(), &["inspect", "legacy.pth"]);
    assert_snapshot!(transcript(&run));
}

#[test]
fn missing_files_and_folders() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("shards")).unwrap();
    let run = ckpt(dir.path(), &["inspect", "missing.safetensors"]);
    assert_snapshot!(transcript(&run));
    let run = ckpt(dir.path(), &["inspect", "shards"]);
    assert_snapshot!(transcript(&run));
}

#[test]
fn usage_errors_exit_2() {
    let run = ckpt(&fixtures(), &["inspect"]);
    assert_eq!(run.status.code(), Some(2));
    let run = ckpt(&fixtures(), &["frobnicate"]);
    assert_eq!(run.status.code(), Some(2));
    let run = ckpt(&fixtures(), &["--help"]);
    assert_eq!(run.status.code(), Some(0));
    assert_snapshot!(String::from_utf8_lossy(&run.stdout));
}

#[test]
fn fuzz_findings_fail_cleanly() {
    let dir = fixtures().join("fuzz");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let run = ckpt(
            &dir,
            &["inspect", path.file_name().unwrap().to_str().unwrap()],
        );
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            matches!(run.status.code(), Some(0 | 2)),
            "{}",
            transcript(&run)
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// A view that repeats 16 bytes into 2 PiB is listed, but neither hashed nor converted:
/// both stop before producing a byte, name the tensor, and leave nothing behind.
#[test]
fn expanded_views_are_listed_but_not_produced() {
    let input = fixtures().join("fuzz/tar-expanded-view.tar");
    let input = input.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = ckpt(dir.path(), &["inspect", input]);
    assert!(run.status.success(), "{}", transcript(&run));
    assert!(String::from_utf8_lossy(&run.stdout).contains("2.00 PiB"));
    for args in [
        &["inspect", "--hash", input][..],
        &["convert", input, "out.safetensors"][..],
    ] {
        let run = ckpt(dir.path(), args);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{}", transcript(&run));
        assert!(stderr.contains("tensor `steps`"), "{stderr}");
        assert!(stderr.contains("zero strides"), "{stderr}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// A missing output folder is said of the output, not of the temporary file ckpt would
/// have written first.
#[test]
fn a_missing_output_folder_names_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let example = fixtures().join("ok/tiny-mlp.safetensors");
    for output in ["missing/out.safetensors", "missing/sharded/"] {
        let mut args = vec!["convert", example.to_str().unwrap(), output];
        if output.ends_with('/') {
            args.insert(1, "--max-shard-size=1MB");
        }
        let run = ckpt(dir.path(), &args);
        assert_eq!(run.status.code(), Some(2), "{}", transcript(&run));
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            stderr.starts_with(&format!("error: {output}: the output's folder `missing")),
            "{stderr}"
        );
        assert!(!stderr.contains("ckpt-partial"), "{stderr}");
    }
}
