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

pub(crate) fn is_known(check: Check, name: &str) -> bool {
    KNOWN.iter().any(|&(c, n)| c == check && n == name)
}

known_bugs! {
    // Decoder against pickletools.
    ops_quirk_int_hex: Ops "quirk_int_hex",
        "bug: INT text is read in base 10; CPython's C unpickler reads it with strtol base 0 (I0x1f is 31)";
    ops_quirk_long_hex: Ops "quirk_long_hex",
        "bug: LONG text is read in base 10; CPython reads it in base 0 (L0x10L is 16)";
    ops_surrogates_p0: Ops "surrogates_p0",
        "bug: a lone surrogate in UNICODE (\\ud800) stays 6 characters of text; CPython decodes it";
    ops_surrogates_p1: Ops "surrogates_p1",
        "bug: a lone surrogate in BINUNICODE (surrogatepass) becomes U+FFFD x3; CPython keeps it";
    ops_surrogates_p2: Ops "surrogates_p2",
        "bug: a lone surrogate in BINUNICODE (surrogatepass) becomes U+FFFD x3; CPython keeps it";
    ops_surrogates_p3: Ops "surrogates_p3",
        "bug: a lone surrogate in BINUNICODE (surrogatepass) becomes U+FFFD x3; CPython keeps it";
    ops_surrogates_p4: Ops "surrogates_p4",
        "bug: a lone surrogate in SHORT_BINUNICODE becomes U+FFFD x3; CPython keeps it";
    ops_surrogates_p5: Ops "surrogates_p5",
        "bug: a lone surrogate in SHORT_BINUNICODE becomes U+FFFD x3; CPython keeps it";

    // Values: the crate builds something else than CPython, or refuses what CPython reads.
    value_surrogates_p0: Value "surrogates_p0",
        "bug: pickle.dumps('\\ud800', 0) reads as the 6-character text \\ud800, not a lone surrogate";
    value_surrogates_p1: Value "surrogates_p1",
        "bug: pickle.dumps('\\ud800', 1) reads as U+FFFD x3, not a lone surrogate";
    value_surrogates_p2: Value "surrogates_p2",
        "bug: pickle.dumps('\\ud800', 2) reads as U+FFFD x3, not a lone surrogate";
    value_surrogates_p3: Value "surrogates_p3",
        "bug: pickle.dumps('\\ud800', 3) reads as U+FFFD x3, not a lone surrogate";
    value_surrogates_p4: Value "surrogates_p4",
        "bug: pickle.dumps('\\ud800', 4) reads as U+FFFD x3, not a lone surrogate";
    value_surrogates_p5: Value "surrogates_p5",
        "bug: pickle.dumps('\\ud800', 5) reads as U+FFFD x3, not a lone surrogate";
    value_quirk_int_hex: Value "quirk_int_hex",
        "bug: INT 0x1f is refused; CPython reads 31 (strtol base 0)";
    value_quirk_long_hex: Value "quirk_long_hex",
        "bug: LONG 0x10L is refused; CPython reads 16 (base 0)";
    value_quirk_int_octal: Value "quirk_int_octal",
        "bug: INT 010 reads as 10; CPython reads 8 (strtol base 0)";
    value_quirk_int_space_one: Value "quirk_int_space_one",
        "bug: INT ' 1' reads as 1; CPython reads True (any 3-byte INT line worth 0 or 1 is a bool)";
    value_quirk_int_plus_one: Value "quirk_int_plus_one",
        "bug: INT +1 reads as 1; CPython reads True (any 3-byte INT line worth 0 or 1 is a bool)";
    value_quirk_int_minus_zero: Value "quirk_int_minus_zero",
        "bug: INT -0 reads as 0; CPython reads False (any 3-byte INT line worth 0 or 1 is a bool)";
    value_quirk_setitem_on_list: Value "quirk_setitem_on_list",
        "bug: SETITEM onto a list is refused; CPython assigns list[0] = 5";
    value_quirk_build_none_on_int: Value "quirk_build_none_on_int",
        "bug: BUILD None onto an int records a state; for CPython it is a no-op";
    value_hand_readonly_bytearray: Value "hand_readonly_bytearray",
        "bug: READONLY_BUFFER keeps a bytearray; CPython makes a read-only memoryview of it";

    // bad/ files CPython refuses and the crate accepts.
    rejects_frame_longer_than_data: Rejects "frame_longer_than_data",
        "bug: a FRAME longer than the remaining data is accepted; CPython: pickle data was truncated";
    rejects_global_not_utf8: Rejects "global_not_utf8",
        "bug: a GLOBAL name that is not UTF-8 is read lossily (U+FFFD); CPython: UnicodeDecodeError";
    rejects_inst_not_ascii: Rejects "inst_not_ascii",
        "bug: an INST name that is not ASCII is accepted; CPython: UnicodeDecodeError (ascii)";
    rejects_persid_not_ascii: Rejects "persid_not_ascii",
        "bug: a PERSID that is not ASCII is accepted; CPython: persistent IDs in protocol 0 must be ASCII";
    rejects_binunicode_not_utf8: Rejects "binunicode_not_utf8",
        "bug: BINUNICODE that is not UTF-8 is read lossily (U+FFFD); CPython: UnicodeDecodeError";
    rejects_short_binunicode_truncated_utf8: Rejects "short_binunicode_truncated_utf8",
        "bug: SHORT_BINUNICODE ending mid-sequence is read lossily; CPython: UnicodeDecodeError";
    rejects_unicode_truncated_escape: Rejects "unicode_truncated_escape",
        "bug: UNICODE \\u12 is kept as text; CPython: truncated \\uXXXX escape";
    rejects_unicode_escape_out_of_range: Rejects "unicode_escape_out_of_range",
        "bug: UNICODE \\U00110000 is kept as text; CPython: \\Uxxxxxxxx out of range";
    rejects_float_underscore: Rejects "float_underscore",
        "bug: FLOAT 1_0.5 reads as 10.5; CPython: could not convert string to float";
    rejects_float_leading_space: Rejects "float_leading_space",
        "bug: FLOAT ' 1.5' is accepted; CPython: could not convert string to float";
    rejects_float_trailing_space: Rejects "float_trailing_space",
        "bug: FLOAT '1.5 ' is accepted; CPython: could not convert string to float";
    rejects_float_crlf: Rejects "float_crlf",
        "bug: FLOAT 1.5\\r is accepted; CPython: could not convert string to float";
    rejects_float_overflow: Rejects "float_overflow",
        "bug: FLOAT 1e400 reads as inf; CPython: OverflowError";
    rejects_int_double_underscore: Rejects "int_double_underscore",
        "bug: INT 1__0 reads as 10; CPython: could not convert string to int";
    rejects_int_leading_underscore: Rejects "int_leading_underscore",
        "bug: INT _1 reads as 1; CPython: could not convert string to int";
    rejects_additems_onto_list: Rejects "additems_onto_list",
        "bug: ADDITEMS onto a list appends; CPython: 'list' object has no attribute 'add'";
    rejects_dict_unhashable_key: Rejects "dict_unhashable_key",
        "bug: DICT with a list key is accepted; CPython: unhashable type: 'list'";
    rejects_setitem_unhashable_key: Rejects "setitem_unhashable_key",
        "bug: SETITEM with a list key is accepted; CPython: unhashable type: 'list'";
    rejects_additems_unhashable: Rejects "additems_unhashable",
        "bug: ADDITEMS of a list into a set is accepted; CPython: unhashable type: 'list'";
    rejects_frozenset_unhashable: Rejects "frozenset_unhashable",
        "bug: FROZENSET holding a list is accepted; CPython: unhashable type: 'list'";
    rejects_reduce_args_not_tuple: Rejects "reduce_args_not_tuple",
        "bug: REDUCE with a list of arguments is accepted; CPython: argument list must be a tuple";
    rejects_newobj_class_not_a_type: Rejects "newobj_class_not_a_type",
        "bug: NEWOBJ of an int is accepted; CPython: NEWOBJ class argument must be a type";
    rejects_newobj_args_not_tuple: Rejects "newobj_args_not_tuple",
        "bug: NEWOBJ with list arguments is accepted; CPython: NEWOBJ args argument must be a tuple";
    rejects_newobj_ex_kwargs_not_dict: Rejects "newobj_ex_kwargs_not_dict",
        "bug: NEWOBJ_EX with list kwargs is accepted; CPython: NEWOBJ_EX kwargs argument must be a dict";
    rejects_build_onto_dict: Rejects "build_onto_dict",
        "bug: BUILD of a dict state onto a plain dict is recorded; CPython: no attribute '__dict__'";
    rejects_ext_unregistered: Rejects "ext_unregistered",
        "bug: EXT1 of an unregistered code is accepted; CPython: unregistered extension code 7";
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
