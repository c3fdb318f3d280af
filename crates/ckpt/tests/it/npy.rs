//! The `.npy` header reader against real numpy: every case of the differential corpus
//! (`tests/fixtures/npy/corpus.json`, made by `tests/fixtures/npy/generate.py` with numpy 2.4.6)
//! gets numpy's verdict from ckpt, except the differences listed in [`ALLOWED`], each of which
//! errs towards "object".
//!
//! `CKPT_NPY_CORPUS=/path/to/corpus.json` runs another corpus of the same format (the
//! generator's `--explore` mode writes large ones).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ckpt::npy::{Header, parse_header, refused_by_numpy};
use serde_json::Value as Json;

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
        let rule = match &result {
            Err(e) if verdict == "undecided" => ALLOWED
                .iter()
                .find(|(phrase, _)| e.message().contains(phrase)),
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
