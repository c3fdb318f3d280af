//! Nothing lost: a conversion that is killed, interrupted, or runs out of disk or of
//! permission leaves its input untouched and no partial output.
//!
//! The full-disk and read-only cases mount a small tmpfs in a user and mount namespace of
//! their own (`unshare -rm`), so they need no privilege. Where the system forbids such
//! namespaces they fail, saying so; `CKPT_TEST_NO_NAMESPACES=1` skips them there.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{ckpt, leftovers, transcript};

/// A safetensors file of one float32 tensor of `elements` values, none of them zero.
fn big_input(dir: &Path, elements: usize) -> PathBuf {
    let header = format!(
        r#"{{"w":{{"dtype":"F32","shape":[{elements}],"data_offsets":[0,{}]}}}}"#,
        elements * 4
    );
    let padded = header.len().div_ceil(8) * 8;
    let path = dir.join("in.safetensors");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    file.write_all(&(padded as u64).to_le_bytes()).unwrap();
    file.write_all(format!("{header:<padded$}").as_bytes())
        .unwrap();
    let block: Vec<u8> = (0..1u32 << 16)
        .flat_map(|i| (1.0f32 + i as f32 / 65536.0).to_le_bytes())
        .collect();
    for _ in 0..elements / (1 << 16) {
        file.write_all(&block).unwrap();
    }
    file.flush().unwrap();
    path
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn spawn(dir: &Path, args: &[&str]) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("ckpt"))
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `child` has a file open for writing in `dir` other than `input` (its
/// temporary output: `#INODE (deleted)` for an unnamed one), so that a signal sent now
/// lands in the middle of the write.
fn wait_for_output(child: &mut Child, dir: &Path, input: &Path) {
    let fds = PathBuf::from(format!("/proc/{}/fd", child.id()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("ckpt ended ({status}) before it started writing");
        }
        let open = std::fs::read_dir(&fds)
            .into_iter()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            // Not the folder itself: ckpt lists it (for a killed run's leftovers) before
            // it creates anything there.
            .any(|target| target.starts_with(dir) && target != dir && target != input);
        if open {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("ckpt never opened its output");
}

/// The input is the same file with the same bytes as before the run.
fn assert_untouched(input: &Path, before: &[u8]) {
    assert!(std::fs::read(input).unwrap() == before, "the input changed");
}

/// 32 M float32 values (128 MB) cast to bfloat16: seconds of work in a debug build, so
/// the kill lands mid-write.
const ELEMENTS: usize = 32 << 20;

#[cfg(target_os = "linux")]
#[test]
fn a_killed_conversion_leaves_no_file_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let input = big_input(dir.path(), ELEMENTS);
    let before = std::fs::read(&input).unwrap();
    let mut child = spawn(
        dir.path(),
        &[
            "convert",
            "--dtype",
            "bfloat16",
            "in.safetensors",
            "out.safetensors",
        ],
    );
    wait_for_output(&mut child, dir.path(), &input);
    child.kill().unwrap(); // SIGKILL: no handler runs
    assert!(!child.wait().unwrap().success());
    // The output had no name (O_TMPFILE); the kernel freed it with the process.
    assert_eq!(listing(dir.path()), ["in.safetensors"]);
    assert_untouched(&input, &before);
}

#[cfg(target_os = "linux")]
#[test]
fn a_killed_sharded_conversion_is_cleared_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = big_input(dir.path(), ELEMENTS);
    let before = std::fs::read(&input).unwrap();
    let args = [
        "convert",
        "--dtype",
        "bfloat16",
        "--max-shard-size",
        "16MB",
        "in.safetensors",
        "out",
    ];
    let mut child = spawn(dir.path(), &args);
    wait_for_output(&mut child, dir.path(), &input);
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());
    // A folder cannot be unnamed: the killed run's temporary stays, hidden, and no `out`.
    let left = leftovers(dir.path());
    assert_eq!(left.len(), 1, "{:?}", listing(dir.path()));
    assert!(left[0].starts_with(".out."), "{left:?}");
    assert!(!dir.path().join("out").exists());
    assert_untouched(&input, &before);

    // Its lock died with it: the next run for the same output removes it.
    let run = ckpt(dir.path(), &args);
    assert!(run.status.success(), "{}", transcript(&run));
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        listing(dir.path())
    );
    assert_eq!(listing(dir.path()), ["in.safetensors", "out"]);
}

#[cfg(target_os = "linux")]
#[test]
fn an_interrupted_conversion_exits_130_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = big_input(dir.path(), ELEMENTS);
    let before = std::fs::read(&input).unwrap();
    for output in ["out.safetensors", "out.pth", "shards"] {
        let mut args = vec!["convert", "--dtype", "bfloat16", "in.safetensors", output];
        if output == "shards" {
            args.splice(1..1, ["--max-shard-size", "16MB"]);
        }
        let mut child = spawn(dir.path(), &args);
        wait_for_output(&mut child, dir.path(), &input);
        let killed = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let result = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(130), "{output}: {stderr}");
        assert!(stderr.contains("interrupted"), "{output}: {stderr}");
        assert_eq!(listing(dir.path()), ["in.safetensors"], "{output}");
    }
    assert_untouched(&input, &before);
}

/// Runs `script` (POSIX sh) in a user and mount namespace of its own, with `$OUT` a tmpfs
/// mounted with `mount_options` and `$CKPT` the binary; its stdout and stderr, or `None`
/// where namespaces are not allowed and `CKPT_TEST_NO_NAMESPACES` says to skip.
fn in_namespace(dir: &Path, mount_options: &str, script: &str) -> Option<(String, String)> {
    let probe = Command::new("unshare")
        .args(["-rm", "true"])
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        assert!(
            std::env::var_os("CKPT_TEST_NO_NAMESPACES").is_some(),
            "`unshare -rm` (util-linux) is missing or not allowed here; the full-disk tests \
             need it. Set CKPT_TEST_NO_NAMESPACES=1 to skip them."
        );
        return None;
    }
    let out = dir.join("mnt");
    std::fs::create_dir(&out).unwrap();
    let script = format!("mount -t tmpfs -o {mount_options} none \"$OUT\" && {script}");
    let run = Command::new("unshare")
        .args(["-rm", "sh", "-c", &script])
        .current_dir(dir)
        .env("OUT", &out)
        .env("CKPT", assert_cmd::cargo::cargo_bin("ckpt"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    Some((
        String::from_utf8_lossy(&run.stdout).into_owned(),
        String::from_utf8_lossy(&run.stderr).into_owned(),
    ))
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_is_named_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // 4 MB of input for a 1 MB disk.
    let input = big_input(dir.path(), 1 << 20);
    let before = std::fs::read(&input).unwrap();
    for (output, extra) in [
        ("out.safetensors", ""),
        ("out.pth", ""),
        ("shards", "--max-shard-size 256KB"),
    ] {
        let script = format!(
            "\"$CKPT\" convert {extra} in.safetensors \"$OUT/{output}\"; echo \"exit=$?\"; ls -A \"$OUT\""
        );
        let Some((listing, report)) = in_namespace(dir.path(), "size=1m", &script) else {
            return;
        };
        assert_eq!(listing, "exit=2\n", "{output}: files were left: {report}");
        assert!(report.contains("disk is full"), "{output}: {report}");
        std::fs::remove_dir(dir.path().join("mnt")).unwrap();
    }
    assert_untouched(&input, &before);
}

#[cfg(target_os = "linux")]
#[test]
fn a_read_only_folder_is_named_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let input = big_input(dir.path(), 1 << 16);
    let before = std::fs::read(&input).unwrap();
    let script = "\"$CKPT\" convert in.safetensors \"$OUT/out.safetensors\"; echo \"exit=$?\"; ls -A \"$OUT\"";
    let Some((listing, report)) = in_namespace(dir.path(), "ro,size=1m", script) else {
        return;
    };
    assert_eq!(listing, "exit=2\n", "{report}");
    assert!(report.contains("out.safetensors"), "{report}");
    assert!(report.contains("Read-only file system"), "{report}");
    assert_untouched(&input, &before);
}
