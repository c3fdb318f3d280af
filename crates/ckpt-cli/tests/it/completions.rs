//! `ckpt completions SHELL` and `ckpt man [COMMAND]`: generated from the command line's
//! own definition, so they cannot drift from it.

use crate::{ckpt, transcript};

const COMMANDS: &[&str] = &[
    "inspect",
    "convert",
    "scan",
    "verify",
    "diff",
    "stats",
    "limits",
    "completions",
    "man",
];

#[test]
fn completions_for_every_shell_know_every_command_and_option() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let run = ckpt(dir.path(), &["completions", shell]);
        assert!(run.status.success(), "{shell}: {}", transcript(&run));
        let script = String::from_utf8(run.stdout).unwrap();
        for command in COMMANDS {
            assert!(script.contains(command), "{shell}: no `{command}`");
        }
        // fish spells long options `-l max-shard-size`.
        for option in ["max-shard-size", "flag-zero", "limit", "json"] {
            assert!(script.contains(option), "{shell}: no `{option}`");
        }
    }
    let run = ckpt(dir.path(), &["completions", "tcsh"]);
    assert_eq!(run.status.code(), Some(2), "{}", transcript(&run));
}

#[test]
fn a_man_page_for_ckpt_and_each_command() {
    let dir = tempfile::tempdir().unwrap();
    let run = ckpt(dir.path(), &["man"]);
    assert!(run.status.success(), "{}", transcript(&run));
    let page = String::from_utf8(run.stdout).unwrap();
    assert!(page.contains(".TH ckpt 1"), "{page}");
    for command in COMMANDS {
        assert!(page.contains(command), "ckpt(1) names `{command}`");
        let run = ckpt(dir.path(), &["man", command]);
        assert!(run.status.success(), "{command}: {}", transcript(&run));
        let page = String::from_utf8(run.stdout).unwrap();
        assert!(
            page.contains(&format!(".TH ckpt-{command} 1")),
            "{command}: {page}"
        );
        // Every page lists the global --limit and the command's help.
        assert!(page.contains("\\-\\-limit"), "{command}: {page}");
        assert!(page.contains(".SH OPTIONS"), "{command}: {page}");
    }
    let run = ckpt(dir.path(), &["man", "nope"]);
    assert_eq!(run.status.code(), Some(2), "{}", transcript(&run));
    assert!(String::from_utf8_lossy(&run.stderr).contains("its commands are inspect, convert"));
}
