//! Every corpus file read by the crate and compared with what CPython did.

use ckpt_pickle::{
    Decoder, Error, ErrorKind, Framing, Limits, parse, parse_partial, parse_partial_framed,
};
use serde_json::{Value, json};

use crate::corpus::{self, Case, Check};
use crate::render::{self, Renderer};

/// (a) `Decoder` yields the offsets, names and arguments `pickletools.genops` yields.
pub(crate) fn check_ops(case: &Case) -> Result<(), String> {
    let expected = &case.json["ops"];
    if expected.is_null() {
        // pickletools itself cannot decode it (see `ops_error`): the Decoder must still.
        return Decoder::new(&case.bytes, 0, Limits::default())
            .collect::<Result<Vec<_>, _>>()
            .map(drop)
            .map_err(|e| format!("Decoder fails: {e}"));
    }
    let mut ops = Vec::new();
    for ins in Decoder::new(&case.bytes, 0, Limits::default()) {
        match ins {
            Ok(ins) => ops.push(render::instruction(&ins)),
            Err(e) => {
                ops.push(json!(format!("error: {e}")));
                break;
            }
        }
    }
    let expected = expected.as_array().unwrap();
    for (i, (got, want)) in ops.iter().zip(expected).enumerate() {
        if got != want {
            return Err(format!("op #{i}: pickletools {want}, Decoder {got}"));
        }
    }
    if ops.len() != expected.len() {
        return Err(format!(
            "pickletools gives {} ops, Decoder {}",
            expected.len(),
            ops.len()
        ));
    }
    Ok(())
}

/// (b) `parse`, rendered canonically, is what CPython's symbolic unpickling built.
pub(crate) fn check_value(case: &Case) -> Result<(), String> {
    let pickle =
        parse(&case.bytes, 0, &Limits::default()).map_err(|e| format!("parse fails: {e}"))?;
    if pickle.byte_len() != case.bytes.len() {
        return Err(format!(
            "STOP at byte {} of {}",
            pickle.byte_len(),
            case.bytes.len()
        ));
    }
    let got = Renderer::new(&pickle, &case.json).root();
    let want = &case.json["value"];
    if &got != want {
        return Err(format!(
            "\n  CPython: {}\n  crate:   {}",
            render::canonical(want),
            render::canonical(&got)
        ));
    }
    check_stream(case, pickle.divergence())
}

/// (b') Read as a stream (`pickle.load` of an `io.BytesIO`, as `torch.load` reads), the
/// file gives what CPython gave that way: the `stream` reading of the JSON where it differs
/// from `pickle.loads`, which the crate must see coming (`Pickle::divergence`); else the
/// same as `pickle.loads`.
pub(crate) fn check_stream(case: &Case, divergence: Option<u64>) -> Result<(), String> {
    let Some(stream) = case.json.get("stream") else {
        return match divergence {
            None => Ok(()),
            Some(at) => Err(format!(
                "a divergence of the framings at {at}, CPython sees none"
            )),
        };
    };
    if divergence.is_none() {
        return Err("CPython reads it otherwise as a stream; the crate sees no divergence".into());
    }
    let (pickle, error) = parse_partial_framed(&case.bytes, 0, &Limits::default(), Framing::Stream);
    match (&stream["value"], error) {
        (Value::Null, Some(_)) => Ok(()),
        (Value::Null, None) => Err("read as a stream, parse succeeds where CPython fails".into()),
        (_, Some(e)) => Err(format!("read as a stream, parse fails: {e}")),
        (want, None) => {
            let end = stream["end"].as_u64().unwrap() as usize;
            if pickle.stream_len() != end {
                return Err(format!(
                    "stream end {} (CPython: {end})",
                    pickle.stream_len()
                ));
            }
            let got = Renderer::new(&pickle, &case.json).root();
            if &got != want {
                return Err(format!(
                    "read as a stream\n  CPython: {}\n  crate:   {}",
                    render::canonical(want),
                    render::canonical(&got)
                ));
            }
            Ok(())
        }
    }
}

pub(crate) fn kind_name(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Truncated => "Truncated",
        ErrorKind::UnknownOpcode(_) => "UnknownOpcode",
        ErrorKind::UnsupportedProtocol(_) => "UnsupportedProtocol",
        ErrorKind::BadArgument(_) => "BadArgument",
        ErrorKind::StackUnderflow => "StackUnderflow",
        ErrorKind::NoMark => "NoMark",
        ErrorKind::MissingMemo(_) => "MissingMemo",
        ErrorKind::WrongType(_) => "WrongType",
        ErrorKind::Unsupported(_) => "Unsupported",
        ErrorKind::LimitExceeded { .. } => "LimitExceeded",
        _ => "(a new kind)",
    }
}

fn check_error(case: &Case, error: &Error) -> Result<(), String> {
    let kinds: Vec<&str> = case.json["expected_kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let kind = kind_name(error.kind());
    if !kinds.contains(&kind) {
        return Err(format!(
            "error kind {kind} ({error}), expected one of {kinds:?}"
        ));
    }
    if error.offset() > case.bytes.len() as u64 {
        return Err(format!("error offset {} past the end", error.offset()));
    }
    if error.message().is_empty() || error.to_string().is_empty() {
        return Err("empty error message".to_owned());
    }
    Ok(())
}

/// (c) Every `bad/` file is refused, with a sensible `ErrorKind`, like CPython refuses it.
pub(crate) fn check_rejects(case: &Case) -> Result<(), String> {
    let cpython = &case.json["cpython"];
    let error = match parse(&case.bytes, 0, &Limits::default()) {
        Ok(pickle) => {
            let got = Renderer::new(&pickle, &case.json).root();
            return Err(format!(
                "parse succeeds with {} where CPython raises {}: {}",
                render::canonical(&got),
                cpython["type"].as_str().unwrap(),
                cpython["message"].as_str().unwrap()
            ));
        }
        Err(error) => error,
    };
    check_error(case, &error)?;
    // parse_partial reports the same error.
    let (pickle, partial) = parse_partial(&case.bytes, 0, &Limits::default());
    if partial.as_ref() != Some(&error) {
        return Err(format!("parse_partial gives {partial:?}, parse {error:?}"));
    }
    check_stream(case, pickle.divergence())
}

#[test]
fn decoder_matches_pickletools() {
    corpus::for_each(corpus::ok(), Check::Ops, check_ops);
}

#[test]
fn parse_matches_cpython() {
    corpus::for_each(corpus::ok(), Check::Value, check_value);
}

#[test]
fn bad_files_are_rejected() {
    corpus::for_each(corpus::bad(), Check::Rejects, check_rejects);
}

#[test]
fn every_opcode_is_covered() {
    let mut seen = std::collections::BTreeSet::new();
    for case in corpus::ok() {
        for op in Decoder::new(&case.bytes, 0, Limits::default()).flatten() {
            seen.insert(op.opcode.name());
        }
    }
    let missing: Vec<&str> = ckpt_pickle::Opcode::ALL
        .iter()
        .map(|op| op.name())
        .filter(|name| !seen.contains(name) && *name != "NEXT_BUFFER")
        .collect();
    assert!(missing.is_empty(), "no ok/ file has {missing:?}");
}

#[test]
fn the_corpus_says_what_cpython_did() {
    for case in corpus::ok() {
        assert!(case.json.get("value").is_some(), "{}", case.name);
        assert!(
            case.json["source"]
                .as_str()
                .unwrap()
                .starts_with("CPython 3.11")
        );
    }
    for case in corpus::bad() {
        assert!(case.json["cpython"]["type"].is_string(), "{}", case.name);
    }
}
