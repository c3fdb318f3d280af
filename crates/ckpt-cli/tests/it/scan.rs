//! `ckpt scan`: the text report, JSON and SARIF shapes, exit codes, and that scanning
//! never runs what it reads.

use serde_json::Value;

use crate::{ckpt, fixtures, transcript};

#[test]
fn text_report_and_summary() {
    let run = ckpt(
        &fixtures(),
        &[
            "scan",
            "attack/torch",
            "ok/tiny-mlp.safetensors",
            "ok/torch/module_tied-2.15-zip.pt",
            "ok/torch/torchscript_traced-2.15.pt",
        ],
    );
    assert_eq!(run.status.code(), Some(1));
    insta::assert_snapshot!(transcript(&run));
}

#[test]
fn json_shape() {
    let run = ckpt(
        &fixtures(),
        &[
            "scan",
            "--json",
            "attack/torch/os_system_reduce.pt",
            "ok/tiny-mlp.safetensors",
        ],
    );
    assert_eq!(run.status.code(), Some(1), "{}", transcript(&run));
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    insta::assert_snapshot!(serde_json::to_string_pretty(&report).unwrap());
}

#[test]
fn sarif_shape() {
    let run = ckpt(
        &fixtures(),
        &["scan", "--sarif", "attack/torch/rebuild_then_reduce.pt"],
    );
    assert_eq!(run.status.code(), Some(1), "{}", transcript(&run));
    let mut log: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(log["version"], "2.1.0");
    let results = log["runs"][0]["results"].as_array().unwrap();
    assert!(results.iter().all(|r| r["level"] == "error"));
    log["runs"][0]["tool"]["driver"]["version"] = "[version]".into();
    insta::assert_snapshot!(serde_json::to_string_pretty(&log).unwrap());
}

#[test]
fn exit_codes() {
    let code = |args: &[&str]| ckpt(&fixtures(), args).status.code();
    // Every file safe.
    assert_eq!(
        code(&[
            "scan",
            "ok/tiny-mlp.safetensors",
            "ok/torch/state_dict-2.15-zip-p2.pt"
        ]),
        Some(0)
    );
    assert_eq!(code(&["scan", "ok/shards", "ok/dcp"]), Some(0));
    // Unsafe fails by default, not with --fail-on dangerous.
    assert_eq!(code(&["scan", "ok/torch/module-2.15-zip.pt"]), Some(1));
    assert_eq!(
        code(&[
            "scan",
            "--fail-on",
            "dangerous",
            "ok/torch/module-2.15-zip.pt"
        ]),
        Some(0)
    );
    assert_eq!(
        code(&[
            "scan",
            "--fail-on",
            "dangerous",
            "attack/torch/builtins_eval.pkl"
        ]),
        Some(1)
    );
    // Errors with nothing worse: 2; a worse finding wins.
    assert_eq!(code(&["scan", "bad/torch/truncated_zip.pt"]), Some(2));
    assert_eq!(code(&["scan", "no/such/file.pt"]), Some(2));
    assert_eq!(
        code(&[
            "scan",
            "bad/torch/truncated_zip.pt",
            "attack/torch/builtins_eval.pkl"
        ]),
        Some(1)
    );
    // --allow vouches for custom classes.
    assert_eq!(
        code(&[
            "scan",
            "--allow",
            "fixture_models",
            "--allow",
            "torch.nn.modules",
            "ok/torch/module-2.15-zip.pt"
        ]),
        Some(0)
    );
}

#[test]
fn untrusted_names_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    // STACK_GLOBAL('evil\x1b[2J', 'x\u202e')
    let pickle = b"\x80\x04\x8c\x0aevil\x1b[2Jmo\x8c\x04x\xe2\x80\xae\x93.".to_vec();
    std::fs::write(dir.path().join("names.pkl"), &pickle).unwrap();
    let run = ckpt(dir.path(), &["scan", "names.pkl"]);
    let text = String::from_utf8(run.stdout).unwrap();
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(text.contains("\\u{1b}"), "{text}");
    assert!(text.contains("\\u{202e}"), "{text}");
}

#[test]
fn scanning_never_runs_the_payload() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let path = marker.to_str().unwrap();
    // builtins.open(marker, 'w') under protocol 2, and os.system('touch marker') under 0.
    let mut open = b"\x80\x02cbuiltins\nopen\nX".to_vec();
    open.extend_from_slice(&u32::try_from(path.len()).unwrap().to_le_bytes());
    open.extend_from_slice(path.as_bytes());
    open.extend_from_slice(b"X\x01\x00\x00\x00w\x86R.");
    std::fs::write(dir.path().join("open.pkl"), open).unwrap();
    let system = format!("cos\nsystem\n(S'touch {path}'\ntR.");
    std::fs::write(dir.path().join("system.pkl"), system).unwrap();
    let run = ckpt(dir.path(), &["scan", "."]);
    assert_eq!(run.status.code(), Some(1), "{}", transcript(&run));
    assert!(String::from_utf8_lossy(&run.stdout).contains("2 dangerous"));
    assert!(!marker.exists());
}

/// What `ckpt scan` calls dangerous, `ckpt inspect`, `ckpt convert` and `ckpt verify` refuse:
/// every file of the loader corpus (each a live bypass of some loader), with the reason,
/// and no output left behind.
#[test]
fn every_command_refuses_what_the_scan_calls_dangerous() {
    let corpus = fixtures().join("attack/loader");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(corpus.join("expected.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for name in manifest.as_object().unwrap().keys() {
        let input = corpus.join(name);
        // Folders are read whole (the library's tests cover them); files past the
        // inflation limit take seconds each in a debug build, and the library's tests read
        // them.
        if input.is_dir() || name.starts_with("inflate_") {
            continue;
        }
        let input = input.to_str().unwrap();
        let scan = ckpt(dir.path(), &["scan", input]);
        assert_eq!(scan.status.code(), Some(1), "{}", transcript(&scan));
        assert!(
            String::from_utf8_lossy(&scan.stdout).contains("DANGEROUS"),
            "{}",
            transcript(&scan)
        );
        for args in [
            &["inspect", input][..],
            &["convert", input, "out.safetensors"][..],
            &["stats", input][..],
        ] {
            let run = ckpt(dir.path(), args);
            assert_eq!(run.status.code(), Some(2), "{args:?}: {}", transcript(&run));
            assert!(
                run.stdout.is_empty() || args[0] == "stats",
                "{}",
                transcript(&run)
            );
            // The reason is the scanner's, whatever else is wrong with the file.
            assert!(
                String::from_utf8_lossy(&run.stderr).contains("dangerous"),
                "{args:?}: {}",
                transcript(&run)
            );
        }
        let verify = ckpt(dir.path(), &["verify", input]);
        assert_ne!(verify.status.code(), Some(0), "{}", transcript(&verify));
        let text =
            String::from_utf8_lossy(&verify.stdout) + String::from_utf8_lossy(&verify.stderr);
        assert!(text.contains("dangerous"), "{}", transcript(&verify));
        assert!(!dir.path().join("out.safetensors").exists(), "{name}");
        checked += 1;
    }
    assert!(checked >= 70, "{checked}");
}
