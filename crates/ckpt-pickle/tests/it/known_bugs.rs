//! Where the crate disagrees with CPython. Each entry takes its file out of the corpus-wide
//! test of that check and gets its own ignored test, which fails until the crate is fixed:
//! run them with `cargo test -p ckpt-pickle -- --ignored`, and delete the entry with the fix.

use crate::corpus::{self, Check};
use crate::differential::{check_ops, check_rejects, check_value};

fn run(check: Check, name: &str) {
    let result = match check {
        Check::Ops => check_ops(corpus::ok_case(name)),
        Check::Value => check_value(corpus::ok_case(name)),
        Check::Rejects => check_rejects(corpus::bad_case(name)),
    };
    if let Err(message) = result {
        panic!("{name}: {message}");
    }
}

macro_rules! known_bugs {
    ($( $test:ident: $check:ident $file:literal, $reason:literal; )*) => {
        const KNOWN: &[(Check, &str)] = &[$( (Check::$check, $file) ),*];

        $(
            #[test]
            #[ignore = $reason]
            fn $test() {
                run(Check::$check, $file);
            }
        )*
    };
}

/// Where the crate differs from the reference on purpose: not bugs, so no ignored test;
/// `by_design_differences_hold` checks that the crate does what is written here.
const BY_DESIGN: &[(Check, &str, &str)] = &[
    // pickletools' Python-level decoder reads INT in base 10 with only `00`/`01` as
    // bools; `pickle.load` (the C unpickler, which torch uses) reads strtol base 0 and
    // takes any two-character line worth 0 or 1 as a bool. The decoder follows the C
    // unpickler, so its INT arguments differ from pickletools' on these lines.
    (Check::Ops, "quirk_int_minus_zero", "INT -0 is False"),
    (Check::Ops, "quirk_int_octal", "INT 010 is 8"),
    (Check::Ops, "quirk_int_plus_one", "INT +1 is True"),
    (Check::Ops, "quirk_int_space_one", "INT ' 1' is True"),
    (Check::Ops, "quirk_int_vertical_tab", "INT '\\v1' is True"),
    // The corpus registers copyreg extension codes before pickling; a plain Python has no
    // such registry, so the crate refuses EXT opcodes (`parse_partial` still shows them).
    (Check::Value, "ext_p2", "EXT1 is refused"),
    (Check::Value, "ext_p3", "EXT1 is refused"),
    (Check::Value, "ext_p4", "EXT1 is refused"),
    (Check::Value, "ext_p5", "EXT1 is refused"),
];

pub(crate) fn is_known(check: Check, name: &str) -> bool {
    KNOWN.iter().any(|&(c, n)| c == check && n == name)
        || BY_DESIGN.iter().any(|&(c, n, _)| c == check && n == name)
}

#[test]
fn by_design_differences_hold() {
    use ckpt_pickle::{Arg, Decoder, ErrorKind, Limits, parse};
    for &(check, name, what) in BY_DESIGN {
        let case = corpus::ok_case(name);
        match check {
            Check::Ops => {
                let first = Decoder::new(&case.bytes, 0, Limits::default())
                    .next()
                    .expect("an opcode")
                    .expect("decodes");
                let expected = match name {
                    "quirk_int_minus_zero" => Arg::Bool(false),
                    "quirk_int_octal" => Arg::Int(8),
                    _ => Arg::Bool(true),
                };
                assert_eq!(first.arg, expected, "{name}: {what}");
            }
            Check::Value | Check::Rejects => {
                let error = parse(&case.bytes, 0, &Limits::default()).expect_err(what);
                assert!(
                    matches!(error.kind(), ErrorKind::Unsupported(_)),
                    "{name}: {error}"
                );
            }
        }
    }
}

known_bugs! {
    // Decoder against pickletools.
    ops_surrogates_p0: Ops "surrogates_p0",
        "limitation: a lone surrogate in UNICODE (\\ud800) becomes U+FFFD; CPython keeps it";
    ops_surrogates_p1: Ops "surrogates_p1",
        "limitation: a lone surrogate in BINUNICODE (surrogatepass) becomes U+FFFD x3; CPython keeps it";
    ops_surrogates_p2: Ops "surrogates_p2",
        "limitation: a lone surrogate in BINUNICODE (surrogatepass) becomes U+FFFD x3; CPython keeps it";
    ops_surrogates_p3: Ops "surrogates_p3",
        "limitation: a lone surrogate in BINUNICODE (surrogatepass) becomes U+FFFD x3; CPython keeps it";
    ops_surrogates_p4: Ops "surrogates_p4",
        "limitation: a lone surrogate in SHORT_BINUNICODE becomes U+FFFD x3; CPython keeps it";
    ops_surrogates_p5: Ops "surrogates_p5",
        "limitation: a lone surrogate in SHORT_BINUNICODE becomes U+FFFD x3; CPython keeps it";

    // Values: the crate builds something else than CPython, or refuses what CPython reads.
    value_surrogates_p0: Value "surrogates_p0",
        "limitation (Rust strings cannot hold lone surrogates): pickle.dumps('\\ud800', 0) reads as U+FFFD, not a lone surrogate";
    value_surrogates_p1: Value "surrogates_p1",
        "limitation (Rust strings cannot hold lone surrogates): pickle.dumps('\\ud800', 1) reads as U+FFFD x3, not a lone surrogate";
    value_surrogates_p2: Value "surrogates_p2",
        "limitation (Rust strings cannot hold lone surrogates): pickle.dumps('\\ud800', 2) reads as U+FFFD x3, not a lone surrogate";
    value_surrogates_p3: Value "surrogates_p3",
        "limitation (Rust strings cannot hold lone surrogates): pickle.dumps('\\ud800', 3) reads as U+FFFD x3, not a lone surrogate";
    value_surrogates_p4: Value "surrogates_p4",
        "limitation (Rust strings cannot hold lone surrogates): pickle.dumps('\\ud800', 4) reads as U+FFFD x3, not a lone surrogate";
    value_surrogates_p5: Value "surrogates_p5",
        "limitation (Rust strings cannot hold lone surrogates): pickle.dumps('\\ud800', 5) reads as U+FFFD x3, not a lone surrogate";
}

#[test]
fn known_bugs_name_corpus_files() {
    for &(check, name) in KNOWN {
        match check {
            Check::Ops | Check::Value => drop(corpus::ok_case(name)),
            Check::Rejects => drop(corpus::bad_case(name)),
        }
    }
}
