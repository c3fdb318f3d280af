//! The command examples of the README and of docs/ are run, and their outputs compared:
//! the docs cannot drift from what ckpt prints.
//!
//! A fenced block whose info string starts with `console` is an example: each `$ ckpt ...`
//! line is run (from the repository root, or from the folder `cwd=PATH` names; in a
//! scratch folder that sees the repository's `examples/` and `tests/` with `sandbox`), and
//! the lines after it, up to the next `$ `, must be its output (stdout, then stderr). A line
//! `...` stands for any number of lines; `[..]` within a line for any text.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// One `$ ckpt ...` of a block, where it is, and what it must print.
struct Example {
    place: String,
    cwd: Option<String>,
    sandbox: bool,
    args: Vec<String>,
    expected: Vec<String>,
}

fn examples(path: &Path) -> Vec<Example> {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.strip_prefix(repo()).unwrap().display().to_string();
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((_, line)) = lines.next() {
        let Some(info) = line.strip_prefix("```console") else {
            continue;
        };
        let cwd = info
            .split_whitespace()
            .find_map(|w| w.strip_prefix("cwd="))
            .map(str::to_owned);
        let sandbox = info.split_whitespace().any(|w| w == "sandbox");
        for (n, line) in lines.by_ref() {
            if line.starts_with("```") {
                break;
            }
            if let Some(command) = line.strip_prefix("$ ") {
                let args = split(command);
                assert_eq!(
                    args.first().map(String::as_str),
                    Some("ckpt"),
                    "{name}:{}",
                    n + 1
                );
                out.push(Example {
                    place: format!("{name}:{}", n + 1),
                    cwd: cwd.clone(),
                    sandbox,
                    args: args[1..].to_vec(),
                    expected: Vec::new(),
                });
            } else if let Some(example) = out.last_mut() {
                example.expected.push(line.to_owned());
            }
        }
    }
    out
}

/// A command line split as a shell would (single and double quotes, no expansion).
fn split(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if any {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            (_, c) => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(word);
    }
    words
}

/// Whether `line` matches the expected `pattern` (`[..]` matches any text).
fn line_matches(pattern: &str, line: &str) -> bool {
    let mut parts = pattern.split("[..]");
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Whether `actual` matches `expected`, where a line `...` matches any number of lines.
fn matches(expected: &[String], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first.trim() == "..." => {
            (0..=actual.len()).any(|skip| matches(rest, &actual[skip..]))
        }
        Some((first, rest)) => actual
            .split_first()
            .is_some_and(|(line, tail)| line_matches(first, line) && matches(rest, tail)),
    }
}

#[test]
fn the_patterns() {
    assert!(line_matches("wrote a in [..] s", "wrote a in 0.01 s"));
    assert!(!line_matches("wrote a in [..] s", "wrote b in 0.01 s"));
    assert!(line_matches("[..]", "anything"));
    let expected: Vec<String> = ["a", "...", "d"].map(String::from).to_vec();
    assert!(matches(&expected, &["a", "b", "c", "d"]));
    assert!(matches(&expected, &["a", "d"]));
    assert!(!matches(&expected, &["a", "b"]));
    assert_eq!(
        split(r#"ckpt x --rename '^a\.=b' "c d""#),
        ["ckpt", "x", r"--rename", r"^a\.=b", "c d"]
    );
}

#[test]
fn every_example_of_the_docs_prints_what_the_docs_show() {
    let mut files = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut count = 0;
    let mut failures = Vec::new();
    for file in files {
        for example in examples(&file) {
            count += 1;
            let scratch = tempfile::tempdir().unwrap();
            let cwd = if example.sandbox {
                for shared in ["examples", "tests"] {
                    #[cfg(unix)]
                    std::os::unix::fs::symlink(repo().join(shared), scratch.path().join(shared))
                        .unwrap();
                }
                scratch.path().to_path_buf()
            } else {
                repo().join(example.cwd.as_deref().unwrap_or("."))
            };
            let output = Command::cargo_bin("ckpt")
                .unwrap()
                .current_dir(&cwd)
                .args(&example.args)
                .env("NO_COLOR", "1")
                .env("COLUMNS", "100")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            let actual: Vec<&str> = text.lines().collect();
            if !matches(&example.expected, &actual) {
                failures.push(format!(
                    "{}: `ckpt {}` printed:\n{text}--- the docs show:\n{}\n",
                    example.place,
                    example.args.join(" "),
                    example.expected.join("\n")
                ));
            }
        }
    }
    assert!(count >= 8, "only {count} examples found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
