//! How ckpt talks to a terminal: --color (and NO_COLOR), -q, -v.

use assert_cmd::Command;

use crate::fixtures;

fn run(args: &[&str], no_color: Option<&str>) -> std::process::Output {
    let mut command = Command::cargo_bin("ckpt").unwrap();
    command
        .current_dir(fixtures())
        .args(args)
        .env_remove("NO_COLOR");
    if let Some(value) = no_color {
        command.env("NO_COLOR", value);
    }
    command.output().unwrap()
}

const ESC: &str = "\x1b[";

#[test]
fn color_is_asked_for_or_off_and_no_color_is_honoured() {
    let scan = ["scan", "attack/torch/os_system_reduce.pt"];
    // Into a pipe, `auto` is off.
    let plain = run(&scan, None);
    assert!(!String::from_utf8_lossy(&plain.stdout).contains(ESC));
    let always = [&["--color", "always"][..], &scan].concat();
    let colored = run(&always, None);
    let stdout = String::from_utf8_lossy(&colored.stdout);
    assert!(stdout.contains("\x1b[1;31mDANGEROUS\x1b[0m"), "{stdout}");
    // NO_COLOR turns `auto` off, not `always`.
    assert!(String::from_utf8_lossy(&run(&always, Some("1")).stdout).contains(ESC));
    let never = [&["--color", "never"][..], &scan].concat();
    assert!(!String::from_utf8_lossy(&run(&never, None).stdout).contains(ESC));
    // Errors on stderr.
    let error = run(&["--color", "always", "inspect", "missing.pt"], None);
    assert!(String::from_utf8_lossy(&error.stderr).starts_with("\x1b[1;31merror:\x1b[0m"));
}

#[test]
fn quiet_drops_warnings_and_verbose_lists_everything() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = fixtures().join("ok/frameworks/lightning/richdict/manual.ckpt");
    let checkpoint = checkpoint.to_str().unwrap();
    let out = dir.path().join("a.safetensors");
    let loud = run(&["convert", checkpoint, out.to_str().unwrap()], None);
    assert!(loud.status.success());
    let stderr = String::from_utf8_lossy(&loud.stderr);
    assert!(stderr.contains("warning: 148 plain values"), "{stderr}");
    assert!(stderr.contains("and 140 more (-v lists all)"), "{stderr}");
    let out = dir.path().join("b.safetensors");
    let quiet = run(&["convert", "-q", checkpoint, out.to_str().unwrap()], None);
    assert!(quiet.status.success());
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    let out = dir.path().join("c.safetensors");
    let verbose = run(&["convert", "-v", checkpoint, out.to_str().unwrap()], None);
    let stderr = String::from_utf8_lossy(&verbose.stderr);
    assert!(!stderr.contains("more"), "{stderr}");
    assert!(
        stderr.contains("datamodule_hyper_parameters.data_dir"),
        "{stderr}"
    );
    let inspect = run(&["inspect", "-v", checkpoint], None);
    let stdout = String::from_utf8_lossy(&inspect.stdout);
    assert!(!stdout.contains("more values"), "{stdout}");
    assert!(stdout.contains("hyper_parameters.nested.a.3"), "{stdout}");
}
