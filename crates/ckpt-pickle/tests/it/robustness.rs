//! No input makes the crate panic: prefixes of every corpus file, random bytes, bit flips.

use ckpt_pickle::{
    Decoder, ErrorKind, Limits, Object, ObjectId, Opcode, Pickle, StaticName, parse, parse_partial,
    static_globals, write_listing,
};
use proptest::prelude::*;

use crate::corpus;
use crate::differential::kind_name;

/// Every global the machine made (even before an error) is one [`static_globals`] reports
/// at the same offset under the same name, or an `EXT` code the static pass could not
/// follow (a registration it cannot read). Returns how many globals it checked.
pub(crate) fn static_pass_covers_machine(data: &[u8]) -> usize {
    let limits = Limits::default();
    let (pickle, _) = parse_partial(data, 0, &limits);
    let found = static_globals(data, 0, &limits);
    let mut checked = 0;
    for (id, object) in pickle.objects() {
        let Object::Global { module, name } = object else {
            continue;
        };
        checked += 1;
        let offset = pickle.offset(id);
        let global = found
            .iter()
            .find(|g| g.offset == offset)
            .unwrap_or_else(|| {
                panic!("no static global at {offset} for {module}.{name}: {data:?}")
            });
        let covered = global.module_name() == Some((module, name))
            || matches!(global.opcode, Opcode::Ext1 | Opcode::Ext2 | Opcode::Ext4)
                && matches!(global.name, StaticName::Extension(_));
        assert!(
            covered,
            "{module}.{name} at {offset}: {global:?} in {data:?}"
        );
    }
    checked
}

/// Everything the crate offers, run on `data`: must not panic, and must be consistent.
fn read_everything(data: &[u8]) -> Result<Pickle<'_>, ckpt_pickle::Error> {
    let limits = Limits::default();
    static_pass_covers_machine(data);
    let decoded: Vec<_> = Decoder::new(data, 7, limits.clone()).collect();
    let mut listing = String::new();
    let listed = write_listing(data, 7, &limits, &mut listing).unwrap();
    let (partial, partial_error) = parse_partial(data, 0, &limits);
    let result = parse(data, 0, &limits);
    match &result {
        Ok(pickle) => {
            assert!(partial_error.is_none());
            assert!(pickle.byte_len() <= data.len());
            assert_eq!(data[pickle.byte_len() - 1], b'.');
            assert!(pickle.root().is_some());
            assert!(matches!(listed, Ok(len) if len == pickle.byte_len()));
            assert!(decoded.iter().all(Result::is_ok));
        }
        Err(error) => {
            assert_eq!(partial_error.as_ref(), Some(error));
            assert!(partial.root().is_none());
            assert!(error.offset() <= data.len() as u64, "{error}");
            assert!(!error.to_string().is_empty());
            // The decoder reads at least as far as the machine ran.
            if let Some(Err(decode_error)) = decoded.last() {
                assert!(decode_error.offset() >= error.offset() + 7);
            }
        }
    }
    // Every object id the pickle refers to is its own.
    if let Ok(pickle) = &result {
        for (_, object) in pickle.objects() {
            for child in children(object) {
                assert!(child.index() < pickle.len_objects());
            }
        }
    }
    result
}

fn children(object: &Object) -> Vec<ObjectId> {
    match object {
        Object::Tuple(items)
        | Object::List(items)
        | Object::Set(items)
        | Object::FrozenSet(items) => items.clone(),
        Object::Dict(pairs) => pairs.iter().flat_map(|&(k, v)| [k, v]).collect(),
        Object::Call { callable, args } => vec![*callable, *args],
        Object::Instance {
            class,
            args,
            kwargs,
            ..
        } => {
            let mut ids = vec![*class, *args];
            ids.extend(*kwargs);
            ids
        }
        Object::PersistentId(pid) => vec![*pid],
        _ => Vec::new(),
    }
}

/// (d) Every strict prefix of every ok/ file fails cleanly (CPython refuses them all; the
/// generator checks it), as truncated or as a length running past the end.
#[test]
fn every_prefix_fails_cleanly() {
    let mut checked = 0;
    for case in corpus::ok() {
        let len = case.bytes.len();
        // Files of more than 600 bytes: the first and last 200 cuts (30 past 20 kB), and about
        // 100 between
        // (a debug build parses a few MB/s; this keeps the test to seconds).
        let cuts: Vec<usize> = if len <= 600 {
            (0..len).collect()
        } else {
            let step = (len / 100).max(37);
            let tail = if len > 20_000 { 30 } else { 200 };
            (0..200)
                .chain((200..len - tail).step_by(step))
                .chain(len - tail..len)
                .collect()
        };
        // A file the crate cannot read whole fails its prefixes its own way (known bugs).
        let whole_parses = parse(&case.bytes, 0, &Limits::default()).is_ok();
        for (i, cut) in cuts.into_iter().enumerate() {
            let data = &case.bytes[..cut];
            // Everything on some cuts, `parse` alone on the others (debug builds are slow).
            let result = if i % 7 == 0 {
                read_everything(data)
            } else {
                parse(data, 0, &Limits::default())
            };
            let error = match result {
                Ok(_) => panic!("{}: the {cut}-byte prefix parses", case.name),
                Err(error) => error,
            };
            if !whole_parses {
                continue;
            }
            let truncated = matches!(error.kind(), ErrorKind::Truncated)
                || matches!(error.kind(), ErrorKind::BadArgument(m) if m.contains("bytes remain"));
            assert!(
                truncated,
                "{}: the {cut}-byte prefix fails with {} ({error})",
                case.name,
                kind_name(error.kind())
            );
            checked += 1;
        }
    }
    assert!(checked > 30_000, "{checked}");
}

/// Every bad/ file, known disagreements included, is read without a panic.
#[test]
fn bad_files_never_panic() {
    for case in corpus::bad() {
        let _ = read_everything(&case.bytes);
    }
}

/// The deep nestings of stress/ parse (CPython loads them) to the right depth.
#[test]
fn deep_nesting_parses() {
    let cases = corpus::stress();
    assert!(!cases.is_empty());
    for case in cases {
        let pickle = read_everything(&case.bytes).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let mut id = pickle.root().unwrap();
        let mut depth = 1;
        while let Some(&[first, ..]) = pickle.as_seq(id) {
            id = first;
            depth += 1;
        }
        if pickle.as_seq(id).is_none() {
            depth -= 1;
        }
        assert_eq!(depth, case.json["depth"].as_u64().unwrap(), "{}", case.name);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = read_everything(&data);
    }

    #[test]
    fn random_opcodes_never_panic(
        protocol in 0u8..7,
        body in proptest::collection::vec(any::<(u8, u8)>(), 0..200),
    ) {
        // Opcode bytes and small arguments are much likelier than in random bytes; strings
        // (`\x8c\x01` + a byte) and EXT codes make STACK_GLOBALs and registrations.
        const LIKELY: &[u8] = b"(.NKaeltdsubR012hq}])\x81\x82\x85\x86\x87\x8f\x90\x91\x92\x93\x94\x95\x96\x98Qo\n\x00\x01\x8c\x01";
        let mut data = vec![0x80, protocol];
        data.extend(body.into_iter().map(|(choice, byte)| {
            if choice < 220 { LIKELY[usize::from(byte) % LIKELY.len()] } else { byte }
        }));
        let _ = read_everything(&data);
    }

    #[test]
    fn bit_flips_never_panic(file in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let cases = corpus::ok();
        let case = &cases[file.index(cases.len())];
        let mut data = case.bytes.clone();
        let i = at.index(data.len());
        data[i] ^= 1 << bit;
        let _ = read_everything(&data);
    }

    #[test]
    fn spliced_files_never_panic(
        a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>(),
        cut_a in any::<prop::sample::Index>(), cut_b in any::<prop::sample::Index>(),
    ) {
        // The start of one corpus file glued to the end of another: valid opcodes, wrong state.
        let cases = corpus::ok();
        let (a, b) = (&cases[a.index(cases.len())].bytes, &cases[b.index(cases.len())].bytes);
        let mut data = a[..cut_a.index(a.len())].to_vec();
        data.extend_from_slice(&b[cut_b.index(b.len())..]);
        let _ = read_everything(&data);
    }
}
