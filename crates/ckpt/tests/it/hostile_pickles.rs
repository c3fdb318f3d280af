//! Hand-assembled pickles and legacy streams that attack the interpretation of a checkpoint
//! rather than the pickle grammar: code hidden where the root never reaches, classes dressed
//! as modules, values shared so often that reading them would copy gigabytes, views that
//! repeat a few bytes into terabytes. Each must be refused with the right kind of error.

use ckpt::{ErrorKind, Value};

// --- a tiny pickle assembler (protocol 2 opcodes) ---

fn global(module: &str, name: &str) -> Vec<u8> {
    format!("c{module}\n{name}\n").into_bytes()
}

fn unicode(s: &str) -> Vec<u8> {
    let mut out = vec![b'X'];
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    out
}

fn long(n: i64) -> Vec<u8> {
    let mut out = vec![0x8a, 8];
    out.extend_from_slice(&n.to_le_bytes());
    out
}

fn tuple(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![b'('];
    for item in items {
        out.extend_from_slice(item);
    }
    out.push(b't');
    out
}

fn proto2(body: &[u8]) -> Vec<u8> {
    [&[0x80, 2][..], body, b"."].concat()
}

/// `('storage', torch.<class>, key, 'cpu', numel)` as a persistent id.
fn storage(class: &str, key: &str, numel: i64) -> Vec<u8> {
    let pid = tuple(&[
        unicode("storage"),
        global("torch", class),
        unicode(key),
        unicode("cpu"),
        long(numel),
        b"N".to_vec(),
    ]);
    [pid, b"Q".to_vec()].concat()
}

/// `torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())`.
fn tensor(storage: Vec<u8>, size: &[i64], stride: &[i64]) -> Vec<u8> {
    let ints = |v: &[i64]| tuple(&v.iter().map(|&n| long(n)).collect::<Vec<_>>());
    let hooks = [global("collections", "OrderedDict"), b")R".to_vec()].concat();
    let args = tuple(&[
        storage,
        b"K\x00".to_vec(),
        ints(size),
        ints(stride),
        b"\x89".to_vec(),
        hooks,
    ]);
    [
        global("torch._utils", "_rebuild_tensor_v2"),
        args,
        b"R".to_vec(),
    ]
    .concat()
}

/// A legacy (torch < 1.6) stream: magic, protocol 1001, `sys_info`, the object pickle, the
/// storage keys, then each storage as an element count and its bytes.
fn legacy(sys_info: &[u8], object: &[u8], storages: &[(&str, &[u8], u64)]) -> Vec<u8> {
    let magic = 0x1950_a86a_20f9_469c_fc6c_u128.to_le_bytes();
    let mut out = proto2(&[&[0x8a, 10][..], &magic[..10]].concat());
    out.extend(proto2(b"M\xe9\x03"));
    out.extend_from_slice(sys_info);
    out.extend_from_slice(object);
    let keys: Vec<u8> = storages.iter().flat_map(|(key, ..)| unicode(key)).collect();
    out.extend(proto2(&[b"](", &keys[..], b"e"].concat()));
    for (_, data, numel) in storages {
        out.extend_from_slice(&numel.to_le_bytes());
        out.extend_from_slice(data);
    }
    out
}

fn plain_sys_info() -> Vec<u8> {
    let sizes = [
        b"}(".to_vec(),
        unicode("short"),
        b"K\x02".to_vec(),
        unicode("int"),
        b"K\x04".to_vec(),
        unicode("long"),
        b"K\x04u".to_vec(),
    ]
    .concat();
    let body = [
        b"}(".to_vec(),
        unicode("protocol_version"),
        b"M\xe9\x03".to_vec(),
        unicode("little_endian"),
        b"\x88".to_vec(),
        unicode("type_sizes"),
        sizes,
        b"u".to_vec(),
    ]
    .concat();
    proto2(&body)
}

#[track_caller]
fn refused_with(bytes: &[u8], kind: ErrorKind, needle: &str) -> ckpt::Error {
    let error = match ckpt::read(bytes) {
        Ok(_) => panic!("read should fail with {kind:?} ({needle})"),
        Err(error) => error,
    };
    assert_eq!(error.kind(), kind, "{error}");
    assert!(error.to_string().contains(needle), "{error}");
    error
}

// --- code that torch would run ---

#[test]
fn a_call_the_root_never_reaches_is_still_refused() {
    // os.system('echo') is called, its result popped, and the root is an empty dict:
    // unpickling runs the call even though nothing keeps its result.
    let body = [global("os", "system"), unicode("echo"), b"\x85R0}".to_vec()].concat();
    // The scanner calls it dangerous: no reader reads it.
    refused_with(&proto2(&body), ErrorKind::Dangerous, "os.system");
}

#[test]
fn a_callable_dressed_as_a_module_is_refused() {
    // INST builds `os.system('echo pwned')`, then BUILD gives it a module's state.
    let mut body = b"(S'echo pwned'\nios\nsystem\n".to_vec();
    body.extend_from_slice(b"(dS'_parameters'\n(dsS'_buffers'\n(dsS'_modules'\n(dsb.");
    refused_with(&body, ErrorKind::Dangerous, "os.system");
}

#[test]
fn torchscript_classes_outside_torchscript_archives_are_inert_objects() {
    // Outside a TorchScript archive, `__torch__.Evil` is a class like any other: kept as
    // an inert object with the state the pickle gives it, not read as a script module.
    let body = [
        global("__torch__", "Evil"),
        b")\x81}".to_vec(),
        unicode("a"),
        b"Nsb".to_vec(),
    ]
    .concat();
    let bytes = proto2(&body);
    let checkpoint = ckpt::read(&bytes).unwrap();
    assert_eq!(checkpoint.root().to_string(), "__torch__.Evil(a=None)");
    assert_eq!(checkpoint.details().needs, ["__torch__.Evil"]);
    assert!(checkpoint.tensors().is_empty());
}

#[test]
fn calling_a_computed_object_is_refused() {
    // The callable of REDUCE is a persistent id's result, not a named global.
    let body = b"]q\x00X\x06\x00\x00\x00moduleah\x00Qq\x01h\x00h\x01a0h\x01)R";
    let error = ckpt::read(&proto2(body)).unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::Refused | ErrorKind::Malformed),
        "{error}"
    );
}

#[test]
fn a_legacy_sys_info_that_runs_code_is_refused() {
    let sys_info = proto2(&[global("os", "system"), unicode("echo"), b"\x85R0}".to_vec()].concat());
    let bytes = legacy(&sys_info, &proto2(b"}"), &[]);
    let error = refused_with(&bytes, ErrorKind::Dangerous, "os.system");
    assert_eq!(error.location().member.as_deref(), Some("sys_info"));
}

#[test]
fn a_rebuild_from_type_that_contains_itself_does_not_recurse_forever() {
    // L = [f, Tensor, L, None]; f(f, Tensor, L, None)
    let mut body = global("torch._tensor", "_rebuild_from_type_v2");
    body.extend_from_slice(b"q\x00");
    body.extend(global("torch", "Tensor"));
    body.extend_from_slice(b"q\x01]q\x02(h\x00h\x01h\x02Neh\x00(h\x00h\x01h\x02Ntq\x03R");
    assert!(ckpt::read(&proto2(&body)).is_err());
}

// --- values that would take too long or too much memory to produce ---

#[test]
fn tuples_nested_by_sharing_are_refused() {
    // t0 = (), t(i+1) = (ti, ti): a 63-deep tree of 2^63 leaves in 450 bytes.
    let mut body = b")q\x00".to_vec();
    for i in 0..63u8 {
        body.extend_from_slice(&[b'h', i, b'h', i, 0x86, b'q', i + 1]);
    }
    body.extend_from_slice(b"}h\x3fNs");
    let error = refused_with(
        &proto2(&body),
        ErrorKind::LimitExceeded,
        "refers to shared values so many times that reading it would produce millions of values",
    );
    // Where the sharing starts: the first tuple built of two references.
    assert_eq!(error.location().offset, Some(9), "{error}");
}

/// A list holding `value` (memoized once) `times` times.
fn shared_in_a_list(value: &[u8], times: usize) -> Vec<u8> {
    let mut body = value.to_vec();
    body.extend_from_slice(b"q\x00](");
    for _ in 0..times {
        body.extend_from_slice(b"h\x00");
    }
    body.push(b'e');
    proto2(&body)
}

#[test]
fn a_byte_string_shared_many_times_is_refused() {
    // 4 MiB of bytes, listed 100,000 times: reading it as values would copy 400 GiB.
    let mut bytes = vec![b'B'];
    bytes.extend_from_slice(&(4u32 << 20).to_le_bytes());
    bytes.resize(bytes.len() + (4 << 20), b'B');
    let pickle = shared_in_a_list(&bytes, 100_000);
    refused_with(
        &pickle,
        ErrorKind::LimitExceeded,
        "refers to the same strings, bytes or large integers so many times",
    );
}

#[test]
fn a_big_integer_shared_many_times_is_refused() {
    // A 4 KiB integer, listed 20,000 times: each copy is ~10,000 decimal digits.
    let mut long4 = vec![0x8b];
    long4.extend_from_slice(&4096u32.to_le_bytes());
    long4.resize(long4.len() + 4096, 0x7f);
    let pickle = shared_in_a_list(&long4, 20_000);
    refused_with(
        &pickle,
        ErrorKind::LimitExceeded,
        "refers to the same strings, bytes or large integers so many times",
    );
}

#[test]
fn dotted_names_longer_than_the_limit_are_refused() {
    // A 200,000-tuple used as a dict key 200,000 times: every name would be megabytes.
    let n = 200_000;
    let mut body = b"(".to_vec();
    body.extend(std::iter::repeat_n(b'N', n));
    body.extend_from_slice(b"tq\x00}q\x01(");
    for _ in 0..n {
        body.extend_from_slice(b"h\x00N");
    }
    body.push(b'u');
    refused_with(&proto2(&body), ErrorKind::LimitExceeded, "name");
}

#[test]
fn a_view_that_repeats_a_storage_into_terabytes_is_not_produced() {
    // One double, viewed as 2^20 x 2^20 with zero strides: 8 TiB of output.
    let object = proto2(
        &[
            b"}".to_vec(),
            unicode("w"),
            tensor(
                storage("DoubleStorage", "1", 1),
                &[1 << 20, 1 << 20],
                &[0, 0],
            ),
            b"s".to_vec(),
        ]
        .concat(),
    );
    let data = 0.5f64.to_le_bytes();
    let bytes = legacy(&plain_sys_info(), &object, &[("1", &data, 1)]);
    let checkpoint = ckpt::read(&bytes).unwrap();
    let tensors = checkpoint.tensors();
    let (name, view) = &tensors[0];
    assert_eq!(name, "w");
    assert_eq!(view.numel(), 1 << 40);
    let error = view.sha256().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::LimitExceeded, "{error}");
}

#[test]
fn a_legacy_storage_the_object_never_uses_is_refused() {
    let bytes = legacy(&plain_sys_info(), &proto2(b"}"), &[("0", &[0; 8], 8)]);
    refused_with(&bytes, ErrorKind::Malformed, "never refers to");
}

// --- what torch does with odd but harmless pickles ---

#[test]
fn a_repeated_dict_key_keeps_its_last_value() {
    let body = [
        b"}(".to_vec(),
        unicode("a"),
        b"K\x01".to_vec(),
        unicode("a"),
        b"K\x02u".to_vec(),
    ]
    .concat();
    let bytes = proto2(&body);
    let checkpoint = ckpt::read(&bytes).unwrap();
    let values = checkpoint.values();
    assert_eq!(values.len(), 1);
    assert_eq!(values[0].0, "a");
    assert!(matches!(values[0].1, Value::Int(2)));
}
