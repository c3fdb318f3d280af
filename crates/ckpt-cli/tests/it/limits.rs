//! `ckpt limits` and `--limit NAME=VALUE`.

use insta::assert_snapshot;

use crate::{ckpt, fixtures, transcript};

#[test]
fn the_limits_are_listed_with_their_defaults() {
    let dir = tempfile::tempdir().unwrap();
    assert_snapshot!(transcript(&ckpt(dir.path(), &["limits"])));
    let run = ckpt(
        dir.path(),
        &[
            "--limit",
            "depth=1000",
            "--limit",
            "inflated-len=1GiB",
            "limits",
            "--json",
        ],
    );
    let rows: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let depth = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "depth")
        .unwrap();
    assert_eq!(depth["value"], 1000);
    assert_eq!(depth["default"], 256);
    let inflated = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "inflated-len")
        .unwrap();
    assert_eq!(inflated["value"], 1u64 << 30);
}

/// A file over a limit fails with exit 2 naming the limit and the flag; the flag raises it.
#[test]
fn a_limit_is_named_when_exceeded_and_raised_by_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let file = fixtures().join("ok/torch/checkpoint-2.15-zip.pt");
    let file = file.to_str().unwrap();
    let over = ckpt(dir.path(), &["--limit", "depth=2", "inspect", file]);
    assert_eq!(over.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&over.stderr);
    assert!(stderr.contains("over the `depth` limit of 2"), "{stderr}");
    assert!(stderr.contains("--limit depth=N"), "{stderr}");
    // Every command takes the flag, before or after its name (the scanner reads pickles
    // without interpreting them: the pickle VM's limits are the ones it meets).
    for (args, code) in [
        (vec!["--limit", "pickle-memo=1", "scan", file], 2),
        (
            vec!["convert", "--limit", "depth=2", file, "out.safetensors"],
            2,
        ),
        (vec!["--limit", "depth=2", "stats", file], 2),
        (vec!["--limit", "depth=2", "diff", file, file], 2),
        // verify reports what is over a limit as a problem of the file.
        (vec!["--limit", "depth=2", "verify", file], 1),
    ] {
        let run = ckpt(dir.path(), &args);
        assert_eq!(
            run.status.code(),
            Some(code),
            "{args:?}: {}",
            transcript(&run)
        );
        let text = transcript(&run);
        assert!(text.contains("limit of"), "{args:?}: {text}");
    }
    assert!(!dir.path().join("out.safetensors").exists());
    let raised = ckpt(dir.path(), &["--limit", "depth=300", "inspect", file]);
    assert!(raised.status.success(), "{}", transcript(&raised));
}

#[test]
fn bad_limit_options_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    for (option, expected) in [
        ("depth", "expected NAME=VALUE"),
        ("dept=3", "there is no limit called `dept`"),
        ("depth=lots", "is not a number or size"),
    ] {
        let run = ckpt(dir.path(), &["--limit", option, "limits"]);
        assert_eq!(run.status.code(), Some(2), "{option}");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains(expected), "{option}: {stderr}");
    }
}

/// A file nested as deep as a raised `depth` limit allows is read, printed and dropped
/// without overflowing the stack (the work runs on a thread sized for the limit).
#[test]
fn a_raised_depth_limit_does_not_overflow_the_stack() {
    for command in ["inspect", "stats", "verify", "scan"] {
        let run = ckpt(
            &fixtures(),
            &[
                "--limit",
                "depth=100000",
                "--limit",
                "name-len=10000000",
                command,
                "bad/torch/deep_nesting.pt",
            ],
        );
        assert!(
            run.status.code().is_some_and(|c| c <= 1),
            "{command}: {:?}\n{}",
            run.status,
            String::from_utf8_lossy(&run.stderr)
        );
    }
}
