//! The crate sees every global CPython's unpickler asks for.
//!
//! `generate.py` recorded, with a `find_class` that writes down what it receives, the
//! globals CPython asked for in every corpus file, in every pickle of the attack corpus
//! (`attack_globals.json`) and in 2000 random streams (`streams.json`). For each, the
//! machine's globals and [`static_globals`] together must hold them all; and where CPython
//! read a pickle to its end, the machine must too (a scanner must never stop where a
//! loader reads on). The attack corpus and the streams were read as `torch.load` reads,
//! through an `io.BytesIO` ([`Framing::Stream`]). The interop suite checks that the
//! recordings are still what CPython does.

use std::collections::BTreeSet;
use std::io::Read;

use ckpt_pickle::{
    Framing, Limits, Object, Opcode, Pickle, StaticGlobal, StaticName, parse_partial,
    parse_partial_framed, static_globals,
};
use serde_json::Value;

use crate::corpus::{self, root};

type Name = (String, String);

/// What the crate reports for the pickle at the start of `data`: the machine's globals
/// (of a partial parse) and the static pass.
fn reported(data: &[u8], base: u64) -> (BTreeSet<Name>, Vec<StaticGlobal>) {
    let limits = Limits::default();
    let (pickle, _) = parse_partial(data, base, &limits);
    let mut names: BTreeSet<Name> = pickle
        .objects()
        .filter_map(|(_, o)| match o {
            Object::Global { module, name } => Some((module.to_string(), name.to_string())),
            _ => None,
        })
        .collect();
    let found = static_globals(data, base, &limits);
    names.extend(
        found
            .iter()
            .filter_map(StaticGlobal::module_name)
            .map(|(m, n)| (m.to_owned(), n.to_owned())),
    );
    (names, found)
}

fn names(json: &Value) -> Vec<Name> {
    json.as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap().to_owned(),
                pair[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The globals CPython asked for that the crate does not report.
fn missing(data: &[u8], base: u64, cpython: &[Name]) -> Vec<Name> {
    let (crate_names, _) = reported(data, base);
    cpython
        .iter()
        .filter(|name| !crate_names.contains(*name))
        .cloned()
        .collect()
}

#[test]
fn corpus_globals_are_all_seen() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for (folder, cases) in [("ok", corpus::ok()), ("bad", corpus::bad())] {
        for case in cases {
            let mut cpython = names(&case.json["globals"]);
            // What a stream reader (torch.load) asked for, where it reads otherwise.
            if let Some(stream) = case.json.get("stream") {
                cpython.extend(names(&stream["globals"]));
            }
            checked += cpython.len();
            let mut missing = missing(&case.bytes, 0, &cpython);
            // The `ext` group was read with a registry set up outside the pickle: the
            // crate cannot name those globals, only report the codes it does not know.
            if let Some(registry) = case.json.get("extensions").and_then(Value::as_object) {
                let (_, found) = reported(&case.bytes, 0);
                let unresolved: BTreeSet<String> = found
                    .iter()
                    .filter_map(|g| match g.name {
                        StaticName::Extension(code) => Some(code.to_string()),
                        _ => None,
                    })
                    .collect();
                missing.retain(|(m, n)| {
                    !registry.iter().any(|(code, global)| {
                        global.as_str() == Some(&format!("{m} {n}")) && unresolved.contains(code)
                    })
                });
            }
            if !missing.is_empty() {
                failures.push(format!("{folder}/{}: {missing:?}", case.name));
            }
        }
    }
    assert!(checked > 200, "{checked}");
    assert!(
        failures.is_empty(),
        "CPython asked for more:\n{}",
        failures.join("\n")
    );
}

/// The bytes of one entry of `attack_globals.json`: the file, or a zip member's stored or
/// deflated bytes (read at their offset, as a loader that trusts the local header does).
fn attack_data(file: &[u8], entry: &Value) -> (Vec<u8>, u64) {
    if entry["member"].is_null() {
        return (file.to_vec(), 0);
    }
    let start = entry["data_offset"].as_u64().unwrap() as usize;
    let len = entry["compress_size"].as_u64().unwrap() as usize;
    let raw = &file[start..start + len];
    match entry["compress_type"].as_u64().unwrap() {
        0 => (raw.to_vec(), start as u64),
        8 => {
            let mut out = Vec::new();
            flate2::read::DeflateDecoder::new(raw)
                .read_to_end(&mut out)
                .unwrap();
            (out, 0)
        }
        other => panic!("compression method {other}"),
    }
}

#[test]
fn attack_corpus_globals_are_all_seen() {
    let path = root().join("attack_globals.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut failures = Vec::new();
    let (mut pickles, mut globals) = (0, 0);
    for file in json["files"].as_array().unwrap() {
        let name = file["path"].as_str().unwrap();
        let bytes = std::fs::read(root().join("..").join(name)).unwrap();
        for entry in file["entries"].as_array().unwrap() {
            let (data, base) = attack_data(&bytes, entry);
            let place = match entry["member"].as_str() {
                Some(member) => format!("{name}:{member}"),
                None => name.to_owned(),
            };
            for pickle in entry["pickles"].as_array().unwrap() {
                let offset = pickle["offset"].as_u64().unwrap() as usize;
                let cpython = names(&pickle["globals"]);
                pickles += 1;
                globals += cpython.len();
                let rest = &data[offset..];
                let at = base + offset as u64;
                let missing = missing(rest, at, &cpython);
                if !missing.is_empty() {
                    failures.push(format!("{place} at {offset}: {missing:?}"));
                }
                if pickle["error"].is_null() {
                    let end = pickle["end"].as_u64().unwrap() as usize;
                    if let Err(e) = reads_to(rest, at, end - offset) {
                        failures.push(format!("{place} at {offset}: {e}"));
                    }
                }
            }
        }
    }
    assert!(
        pickles > 100 && globals > 80,
        "{pickles} pickles, {globals} globals"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The machine reads the pickle at the start of `data` as a stream to `end`, as CPython
/// did.
fn reads_to(data: &[u8], base: u64, end: usize) -> Result<Pickle<'_>, String> {
    match parse_partial_framed(data, base, &Limits::default(), Framing::Stream) {
        (read, None) if read.stream_len() == end => Ok(read),
        (read, None) => Err(format!(
            "CPython read to {end}, the machine to {}",
            read.stream_len()
        )),
        (_, Some(e)) => Err(format!("CPython reads it, the machine stops: {e}")),
    }
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn random_stream_globals_are_all_seen() {
    let path = root().join("streams.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let streams = json["streams"].as_array().unwrap();
    assert_eq!(streams.len(), json["count"].as_u64().unwrap() as usize);
    let mut failures = Vec::new();
    let (mut loads, mut globals) = (0, 0);
    for (i, stream) in streams.iter().enumerate() {
        let data = unhex(stream["hex"].as_str().unwrap());
        let cpython = names(&stream["globals"]);
        globals += cpython.len();
        let missing = missing(&data, 0, &cpython);
        if !missing.is_empty() {
            failures.push(format!("stream {i}: {missing:?}"));
        }
        if stream["loads"].as_bool().unwrap() {
            loads += 1;
            let end = stream["end"].as_u64().unwrap() as usize;
            if let Err(e) = reads_to(&data, 0, end) {
                failures.push(format!("stream {i}: {e}"));
            }
        }
    }
    assert!(
        loads > 1000 && globals > 3000,
        "{loads} loads, {globals} globals"
    );
    assert!(
        failures.is_empty(),
        "{} of {} streams:\n{}",
        failures.len(),
        streams.len(),
        failures.join("\n")
    );
}

/// On every corpus file and random stream: each global the machine made is reported by
/// the static pass at the same offset, by the same opcode, under the same name (or, for an
/// `EXT` code the pass could not follow, as an unresolved code).
#[test]
fn the_static_pass_covers_the_machine() {
    let path = root().join("streams.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let streams: Vec<Vec<u8>> = json["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| unhex(s["hex"].as_str().unwrap()))
        .collect();
    let files = corpus::ok().iter().chain(corpus::bad()).map(|c| &c.bytes);
    let mut checked = 0;
    for data in files.chain(&streams) {
        checked += crate::robustness::static_pass_covers_machine(data);
    }
    assert!(checked > 3000, "{checked}");
}

#[test]
fn ext_opcodes_are_the_only_unresolved_codes() {
    for case in corpus::ok() {
        for global in static_globals(&case.bytes, 0, &Limits::default()) {
            if let StaticName::Extension(_) = global.name {
                assert!(
                    matches!(global.opcode, Opcode::Ext1 | Opcode::Ext2 | Opcode::Ext4),
                    "{}",
                    case.name
                );
            }
        }
    }
}
