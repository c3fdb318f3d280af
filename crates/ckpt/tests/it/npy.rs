//! The `.npy` header reader against real numpy: every case of the differential corpus
//! (`tests/fixtures/npy/corpus.json`, made by `tests/fixtures/npy/generate.py` with numpy 2.4.6)
//! gets numpy's verdict from ckpt, except the differences listed in [`ALLOWED`], each of which
//! errs towards "object".
//!
//! `CKPT_NPY_CORPUS=/path/to/corpus.json` runs another corpus of the same format (the
//! generator's `--explore` mode writes large ones).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ckpt::npy::{Header, parse_header, parse_header_with, refused_by_numpy};
use serde_json::Value as Json;

/// Where numpy refuses a header with this exception and ckpt reads it, and why that is allowed
/// (it errs towards reading, so towards "object").
const ALLOWED_READS: &[(&str, &str)] = &[(
    "MemoryError",
    "CPython's parser runs out of its stack (6,000 frames) on legal nesting of fewer than 200 \
     brackets when inner values are not first in their container; ckpt follows the grammar \
     up to CPython's 200 brackets",
)];

/// The differences from numpy that are allowed, each recognised by a phrase of ckpt's error
/// message, with the reason. All are in the safe direction: ckpt says "undecided" (the caller
/// then treats the data as a pickle); it never says "plain" or "refused" where numpy unpickles.
const ALLOWED: &[(&str, &str)] = &[
    (
        "is not in ckpt's table",
        "a \\N{...} character name outside ckpt's table (Latin letters, digits, punctuation, \
         control characters, CJK ideographs): CPython knows about 40,000 more, so ckpt cannot \
         tell a valid name from a typo",
    ),
    (
        "a field is a set",
        "a field given as a set of two or three items: Python unpacks it in an order that \
         depends on string hashing (PYTHONHASHSEED), so numpy's own answer changes from run to \
         run",
    ),
];

fn corpus() -> (PathBuf, Vec<Json>) {
    let path = std::env::var_os("CKPT_NPY_CORPUS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/npy/corpus.json"),
        PathBuf::from,
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let json: Json = serde_json::from_str(&text).unwrap();
    let cases = json["cases"].as_array().unwrap().clone();
    (path, cases)
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// ckpt's verdict, in the corpus' words: `object`, `plain`, `refused` (numpy's `error` or
/// `crash`) or `undecided`.
fn ours(result: &ckpt::Result<Header>) -> &'static str {
    match result {
        Ok(h) if h.has_object => "object",
        Ok(_) => "plain",
        Err(e) if refused_by_numpy(e) => "refused",
        Err(_) => "undecided",
    }
}

/// Where a plain header's details differ from numpy's.
fn plain_details(case: &Json, h: &Header) -> Option<String> {
    let shape: Vec<i128> = case["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d.as_i64()
                .map(i128::from)
                .or_else(|| d.as_u64().map(i128::from))
                .unwrap()
        })
        .collect();
    let mut wrong = Vec::new();
    if case["itemsize"].as_u64() != Some(h.itemsize) {
        wrong.push(format!(
            "itemsize {} (numpy {})",
            h.itemsize, case["itemsize"]
        ));
    }
    if shape != h.shape {
        wrong.push(format!("shape {:?} (numpy {shape:?})", h.shape));
    }
    if case["fortran_order"].as_bool() != Some(h.fortran_order) {
        wrong.push(format!("fortran_order {}", h.fortran_order));
    }
    if let Some(typestr) = case.get("typestr").and_then(Json::as_str)
        && h.typestr.as_deref() != Some(typestr)
    {
        wrong.push(format!("typestr {:?} (numpy {typestr:?})", h.typestr));
    }
    (!wrong.is_empty()).then(|| wrong.join(", "))
}

#[test]
fn every_corpus_case_gets_numpys_verdict() {
    let (path, cases) = corpus();
    assert!(
        cases.len() > 300,
        "{}: {} cases",
        path.display(),
        cases.len()
    );
    let mut seen = BTreeMap::new();
    let mut failures = Vec::new();
    let mut tally: BTreeMap<(String, &str), usize> = BTreeMap::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let numpy = case["numpy"].as_str().unwrap();
        let file = unhex(case["file"].as_str().unwrap());
        let result = parse_header(&file);
        let verdict = ours(&result);
        *tally.entry((numpy.to_owned(), verdict)).or_default() += 1;
        let detail = match &result {
            Ok(_) => String::new(),
            Err(e) => format!(" ({e})"),
        };
        let agree = match (numpy, verdict) {
            ("object", "object") | ("error" | "crash", "refused") => true,
            ("plain", "plain") => match plain_details(case, result.as_ref().unwrap()) {
                None => true,
                Some(wrong) => {
                    failures.push(format!("{name}: plain, but {wrong}"));
                    continue;
                }
            },
            _ => false,
        };
        if agree {
            continue;
        }
        // Never plain or refused where numpy unpickles, allowed or not.
        let unsafe_miss = numpy == "object" && verdict != "undecided";
        let why = case.get("why").and_then(Json::as_str).unwrap_or_default();
        let rule = match &result {
            Err(e) if verdict == "undecided" => ALLOWED
                .iter()
                .find(|(phrase, _)| e.message().contains(phrase)),
            Ok(_) if numpy == "error" => ALLOWED_READS.iter().find(|(w, _)| *w == why),
            _ => None,
        };
        match rule {
            Some((phrase, _)) if !unsafe_miss => {
                seen.insert(*phrase, ());
            }
            _ => failures.push(format!(
                "{name}: numpy says {numpy}, ckpt says {verdict}{detail}{}",
                if unsafe_miss { " (UNSAFE)" } else { "" }
            )),
        }
    }
    let stale: Vec<&str> = ALLOWED
        .iter()
        .chain(ALLOWED_READS)
        .map(|(phrase, _)| *phrase)
        .filter(|p| !seen.contains_key(p))
        .collect();
    assert!(
        stale.is_empty() || std::env::var_os("CKPT_NPY_CORPUS").is_some(),
        "allowed differences that the corpus no longer shows: {stale:?}"
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases of {} disagree with numpy:\n{}\n(numpy verdict, ckpt verdict): {tally:?}",
        failures.len(),
        cases.len(),
        path.display(),
        failures.join("\n")
    );
}

#[test]
fn the_corpus_covers_every_verdict() {
    let (_, cases) = corpus();
    for verdict in ["object", "plain", "error", "crash"] {
        let n = cases.iter().filter(|c| c["numpy"] == verdict).count();
        assert!(n > 0, "no case where numpy says {verdict}");
    }
}

/// A `.npy` file prefix around `header` (format 1.0, or 2.0 when longer than 1.0 allows, or
/// 3.0 for characters beyond latin-1).
fn npy(header: &str) -> Vec<u8> {
    let (version, bytes): (u8, Vec<u8>) = if header.chars().all(|c| (c as u32) < 256) {
        let bytes: Vec<u8> = header.chars().map(|c| c as u8).collect();
        (if bytes.len() > 0xFFFF { 2 } else { 1 }, bytes)
    } else {
        (3, header.as_bytes().to_vec())
    };
    let mut file = b"\x93NUMPY".to_vec();
    file.extend([version, 0]);
    if version == 1 {
        file.extend(u16::try_from(bytes.len()).unwrap().to_le_bytes());
    } else {
        file.extend(u32::try_from(bytes.len()).unwrap().to_le_bytes());
    }
    file.extend(bytes);
    file
}

fn header(descr: &str) -> String {
    format!("{{'descr': {descr}, 'fortran_order': False, 'shape': (1,)}}")
}

#[test]
fn every_truncation_and_flip_of_the_corpus_is_an_answer_not_a_panic() {
    let (_, cases) = corpus();
    for (n, case) in cases.iter().enumerate().filter(|(n, _)| n % 4 == 0) {
        let file = unhex(case["file"].as_str().unwrap());
        for end in 0..file.len().min(300) {
            let _ = parse_header(&file[..end]);
        }
        for i in (0..file.len().min(300)).step_by(3) {
            let mut flipped = file.clone();
            flipped[i] ^= 1 << (n % 8);
            let _ = parse_header(&flipped);
        }
    }
}

/// Inputs that cost quadratic time or memory when read naively; each must come back quickly
/// (these take milliseconds; a quadratic reader takes minutes).
#[test]
fn hostile_headers_cost_linear_work() {
    // A 1 MB string under 150 nested fields (copying the subtree at each level: 150 MB).
    let deep = format!(
        "{}'{}'{}",
        "[('a', ".repeat(150),
        "x".repeat(1 << 20),
        ")]".repeat(150)
    );
    let e = parse_header(&npy(&header(&deep))).unwrap_err();
    assert!(refused_by_numpy(&e), "{e}");
    // 20,000 one-character names given as one str (indexing it from the start each time).
    let names: String = (0..20_000u32)
        .map(|i| char::from_u32(0x4E00 + i).unwrap())
        .collect();
    let formats = vec!["'i1'"; 20_000].join(",");
    let union = format!("('V', {{'names': '{names}', 'formats': [{formats}]}})");
    let h = parse_header(&npy(&header(&union))).unwrap();
    assert_eq!((h.has_object, h.itemsize), (false, 20_000));
    // 20,000 distinct set elements (deduplicated by hashing, not by comparing pairs).
    let set: Vec<String> = (0..20_000)
        .map(|i| format!("(('t{i}', 'a{i}'), 'f4')"))
        .collect();
    let h = parse_header(&npy(&header(&format!("{{{}}}", set.join(","))))).unwrap();
    assert_eq!(h.itemsize, 80_000);
    // Integers of 4,300 digits (the most CPython converts), again and again: a budget.
    let big = vec!["9".repeat(4300); 400].join(",");
    let e = parse_header(&npy(&header(&format!("[({big})]")))).unwrap_err();
    assert_eq!(e.kind(), ckpt::ErrorKind::LimitExceeded, "{e}");
    // A million signs, comments and continuations.
    let e = parse_header(&npy(&header(&"-".repeat(1 << 20)))).unwrap_err();
    assert!(refused_by_numpy(&e));
    let noise = "# note\n ".repeat(100_000);
    let h = parse_header(&npy(&header(&format!("[{noise}('a', 'O')]")))).unwrap();
    assert!(h.has_object);
}

#[test]
fn values_are_bounded_by_the_header_len_limit() {
    let mut limits = ckpt::Limits::default();
    limits.set("header-len", "1MiB").unwrap();
    // One value per 64 bytes of the limit: 16,384 here.
    let shape = |n: usize| {
        npy(&format!(
            "{{'descr': '|O', 'fortran_order': False, 'shape': ({})}}",
            "1,".repeat(n)
        ))
    };
    assert!(
        parse_header_with(&shape(16_000), &limits)
            .unwrap()
            .has_object
    );
    let e = parse_header_with(&shape(20_000), &limits).unwrap_err();
    assert_eq!(e.kind(), ckpt::ErrorKind::LimitExceeded, "{e}");
    assert!(!refused_by_numpy(&e));
    assert!(e.message().contains("`header-len` limit"), "{e}");
}

#[test]
fn deep_headers_fit_small_stacks() {
    let handle = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(|| {
            let deepest = format!("{}('a', 'O'){}", "[".repeat(199), "]".repeat(199));
            let nested_fields = format!("{}'O'{}", "[('a', ".repeat(99), ")]".repeat(99));
            let nested_unions = format!("{}'O'{}", "('O', [('a', ".repeat(66), ")])".repeat(66));
            [deepest, nested_fields, nested_unions]
                .iter()
                .map(|d| parse_header(&npy(&header(d))).map(|h| h.has_object))
                .collect::<Vec<_>>()
        })
        .unwrap();
    let results = handle.join().unwrap();
    // numpy: a list nested 199 deep is not a field list, the others hold objects.
    assert!(results[0].as_ref().is_err_and(refused_by_numpy));
    assert!(*results[1].as_ref().unwrap());
    assert!(*results[2].as_ref().unwrap());
}
