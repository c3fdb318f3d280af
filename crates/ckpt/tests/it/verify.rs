//! `ckpt::verify`: every good fixture is sound, and every planted defect fires exactly
//! the rule it breaks.

use std::path::{Path, PathBuf};

use std::io::{Read, Write};

use ckpt::verify::{self, Manifest, Report, Severity};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Every file (and shard or DCP folder) under `ok/`.
fn good_inputs() -> Vec<PathBuf> {
    let mut inputs = Vec::new();
    let ok = fixtures().join("ok");
    for folder in [ok.clone(), ok.join("torch"), ok.join("torch/pypi")] {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_file() && !name.ends_with(".json") && !name.ends_with(".md") {
                inputs.push(path);
            }
        }
    }
    for folder in ["shards", "dcp"] {
        for entry in std::fs::read_dir(ok.join(folder)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                inputs.push(path);
            }
        }
    }
    inputs.sort();
    inputs
}

/// Verifies `path` on a thread with a large stack: the readers recurse as deep as a
/// pickle nests (up to their limit), more than a test thread's 2 MB allow in debug builds.
fn verify_path(path: &Path) -> ckpt::Result<Report> {
    let path = path.to_path_buf();
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || verify::verify_path(&path))
        .unwrap()
        .join()
        .unwrap()
}

/// The rule ids a report lists, in order.
fn rules_of(report: &Report) -> Vec<&'static str> {
    report.problems().iter().map(|p| p.rule().id).collect()
}

#[test]
fn every_good_fixture_is_sound() {
    let inputs = good_inputs();
    assert!(inputs.len() > 80, "{}", inputs.len());
    let mut unsound = Vec::new();
    for path in &inputs {
        let report =
            verify::verify_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for problem in report.problems() {
            unsound.push(format!("{}: {problem}", path.display()));
        }
    }
    assert!(unsound.is_empty(), "{}", unsound.join("\n"));
}

/// The committed `bad/` fixtures, each with exactly the rules it must break.
const BAD_FIXTURES: &[(&str, &[&str])] = &[
    (
        "bad/duplicate_metadata_key.safetensors",
        &["st.duplicate-key"],
    ),
    (
        "bad/duplicate_tensor_name.safetensors",
        &["st.duplicate-key"],
    ),
    ("bad/f4_odd_element_count.safetensors", &["st.size"]),
    (
        "bad/header_length_past_eof.safetensors",
        &["st.header-length"],
    ),
    ("bad/header_not_json.safetensors", &["st.header-json"]),
    ("bad/header_not_object.safetensors", &["st.header-json"]),
    ("bad/header_not_utf8.safetensors", &["st.header-utf8"]),
    ("bad/hole_between_tensors.safetensors", &["st.offsets"]),
    (
        "bad/metadata_value_not_string.safetensors",
        &["st.header-json"],
    ),
    ("bad/missing_dtype_field.safetensors", &["st.header-json"]),
    ("bad/nul_padded_header.safetensors", &["st.header-json"]),
    ("bad/offsets_reversed.safetensors", &["st.offsets"]),
    ("bad/offsets_three_values.safetensors", &["st.header-json"]),
    ("bad/overlapping_tensors.safetensors", &["st.offsets"]),
    ("bad/shape_float.safetensors", &["st.header-json"]),
    ("bad/shape_negative.safetensors", &["st.header-json"]),
    ("bad/size_mismatch.safetensors", &["st.size"]),
    ("bad/trailing_bytes.safetensors", &["st.trailing"]),
    ("bad/truncated_data.safetensors", &["st.truncated"]),
    ("bad/unknown_dtype.safetensors", &["st.dtype"]),
    ("bad/torch/binunicode_4gb.pt", &["torch.pickle"]),
    ("bad/torch/deep_nesting.pt", &["torch.read"]),
    ("bad/torch/huge_shape.pt", &["torch.read"]),
    ("bad/torch/legacy_bad_magic.pt", &["pickle.read"]),
    (
        "bad/torch/legacy_numel_mismatch.pt",
        &["legacy.storage-size"],
    ),
    ("bad/torch/memo_get_unset.pt", &["torch.pickle"]),
    (
        "bad/torch/missing_data_record.pt",
        &["torch.storage-missing"],
    ),
    ("bad/torch/missing_version_record.pt", &["torch.version"]),
    ("bad/torch/ok_tensor_then_garbage.pt", &["torch.pickle"]),
    // The record the persistent id should have named is left over.
    (
        "bad/torch/persistent_id_not_storage.pt",
        &["torch.storage-ref", "torch.storage-unused"],
    ),
    ("bad/torch/pickle_stack_underflow.pt", &["torch.pickle"]),
    (
        "bad/torch/pickle_truncated_mid_opcode.pt",
        &["torch.pickle"],
    ),
    ("bad/torch/record_size_mismatch.pt", &["torch.storage-size"]),
    ("bad/torch/stop_missing.pt", &["torch.pickle"]),
    (
        "bad/torch/storage_offset_past_end.pt",
        &["torch.view-bounds"],
    ),
    ("bad/torch/stray_top_level_file.pt", &["zip.layout"]),
    ("bad/torch/stride_past_end.pt", &["torch.view-bounds"]),
    ("bad/torch/truncated_legacy.pt", &["legacy.storage-missing"]),
    ("bad/torch/unknown_opcode.pt", &["torch.pickle"]),
    ("bad/torch/version_11.pt", &["torch.version"]),
    ("bad/shards/bin_tensor_missing", &["hf.tensor-missing"]),
    ("bad/shards/in_two_shards", &["hf.tensor-duplicate"]),
    ("bad/shards/missing_shard", &["hf.shard"]),
    ("bad/shards/path_escape", &["hf.shard"]),
    ("bad/shards/symlink_escape", &["hf.shard"]),
    ("bad/shards/tensor_missing", &["hf.tensor-missing"]),
    ("bad/shards/wrong_shard", &["hf.tensor-missing"]),
    ("bad/dcp/chunk_gap", &["dcp.read"]),
    ("bad/dcp/chunk_overlap", &["dcp.read"]),
    ("bad/dcp/huge_list_index", &["dcp.read"]),
    ("bad/dcp/missing_file", &["dcp.read"]),
    ("bad/dcp/path_escape", &["dcp.read"]),
    // Every item past the cut, each with its tensor.
    (
        "bad/dcp/truncated_file",
        &["dcp.read", "dcp.read", "dcp.read", "dcp.read"],
    ),
    ("bad/dcp/unknown_global", &["dcp.read"]),
];

#[test]
fn every_bad_fixture_breaks_exactly_its_rules() {
    let mut wrong = Vec::new();
    for (name, expected) in BAD_FIXTURES {
        let report = verify_path(&fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let found = rules_of(&report);
        if found != *expected {
            wrong.push(format!("{name}: expected {expected:?}, found {found:?}"));
        }
        for problem in report.problems() {
            assert!(!problem.message().is_empty(), "{name}");
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The deflated tensor records load in torch (a warning per record), but not under mmap.
    let report = verify_path(&fixtures().join("bad/torch/deflate_data_record.pt")).unwrap();
    assert!(!report.is_sound());
    assert!(report.problems().iter().all(|p| {
        p.rule().id == "zip.compression"
            && p.severity() == Severity::Warning
            && p.location()
                .member
                .as_deref()
                .is_some_and(|m| m.contains("/data/"))
    }));
}

/// Files that are not checkpoints at all are errors, not reports.
#[test]
fn unreadable_inputs_are_errors() {
    for name in [
        "bad/too_short.safetensors",
        "bad/torch/truncated_zip.pt",
        "bad/torch/missing_data_pkl.pt",
        "does-not-exist.pt",
    ] {
        assert!(verify_path(&fixtures().join(name)).is_err(), "{name}");
    }
}

// Defects planted in good fixtures by the tests themselves, one rule each.

fn ok(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("ok").join(name)).unwrap()
}

fn rules_of_bytes(bytes: &[u8]) -> Vec<&'static str> {
    rules_of(&verify::verify_bytes(bytes).unwrap())
}

/// Where the data of the record named `suffix` lies, from the zip directory.
fn record_range(bytes: &[u8], suffix: &str) -> (usize, usize, u64) {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let name = zip
        .file_names()
        .map(|n| n.unwrap().into_owned())
        .find(|n| n.ends_with(suffix))
        .unwrap();
    let file = zip.by_name(&name).unwrap();
    let start = file.data_start().unwrap() as usize;
    (
        start,
        start + file.compressed_size() as usize,
        file.header_start(),
    )
}

/// Rebuilds a zip with the zip crate: every record (stored, 64-aligned) through `edit`,
/// which may change or drop it, then the `extra` records.
fn rezip(
    bytes: &[u8],
    edit: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>,
    extra: &[(&str, &[u8])],
) -> Vec<u8> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .with_alignment(64);
    let mut prefix = String::new();
    for i in 0..zip.len() {
        let mut file = zip.by_index(i).unwrap();
        let name = file.name().unwrap().into_owned();
        prefix = name.split_once('/').unwrap().0.to_owned();
        let mut data = Vec::new();
        file.read_to_end(&mut data).unwrap();
        if let Some(data) = edit(&name, data) {
            out.start_file(name, options).unwrap();
            out.write_all(&data).unwrap();
        }
    }
    for (name, data) in extra {
        out.start_file(format!("{prefix}/{name}"), options).unwrap();
        out.write_all(data).unwrap();
    }
    out.finish().unwrap().into_inner()
}

const ZIP: &str = "torch/state_dict-2.15-zip-p2.pt";
const LEGACY: &str = "torch/state_dict-2.15-legacy-p2.pt";

#[test]
fn planted_zip_defects_fire_their_rule() {
    let good = ok(ZIP);
    assert_eq!(rules_of_bytes(&good), Vec::<&str>::new());
    // Rebuilt by another zip writer, the archive is still sound.
    assert_eq!(
        rules_of_bytes(&rezip(&good, |_, d| Some(d), &[])),
        Vec::<&str>::new()
    );

    // One bit of tensor data flipped: only the CRC tells (torch.load would load it).
    let (start, _, _) = record_range(&good, "/data/0");
    let mut flipped = good.clone();
    flipped[start] ^= 1;
    assert_eq!(rules_of_bytes(&flipped), ["zip.crc"]);

    // The local header of data.pkl names another member than the central directory.
    let (_, _, header) = record_range(&good, "/data.pkl");
    let mut renamed = good.clone();
    let name_len =
        u16::from_le_bytes([renamed[header as usize + 26], renamed[header as usize + 27]]) as usize;
    renamed[header as usize + 30 + name_len - 1] = b'x';
    // Readers disagree on such a file: the scanner calls it dangerous too.
    assert_eq!(
        rules_of_bytes(&renamed),
        ["scan.dangerous", "zip.local-header"]
    );

    // The data descriptor after data/0 repeats another CRC.
    let (_, end, _) = record_range(&good, "/data/0");
    let mut descriptor = good.clone();
    assert_eq!(&descriptor[end..end + 4], b"PK\x07\x08");
    descriptor[end + 4] ^= 0xff;
    assert_eq!(rules_of_bytes(&descriptor), ["zip.data-descriptor"]);

    let middle = rezip(
        &good,
        |name, d| (!name.ends_with("/byteorder")).then_some(d),
        &[("byteorder", b"middle")],
    );
    assert_eq!(rules_of_bytes(&middle), ["torch.byteorder"]);

    let unused = rezip(&good, |_, d| Some(d), &[("data/99", b"\0\0\0\0")]);
    let report = verify::verify_bytes(&unused).unwrap();
    assert_eq!(rules_of(&report), ["torch.storage-unused"]);
    assert_eq!(report.problems()[0].severity(), Severity::Warning);

    let version = rezip(
        &good,
        |name, d| {
            if name.ends_with("/version") {
                Some(b"three\n".to_vec())
            } else {
                Some(d)
            }
        },
        &[],
    );
    assert_eq!(rules_of_bytes(&version), ["torch.version"]);

    // Several defects at once are all listed.
    let mut many = rezip(
        &good,
        |name, d| (!name.ends_with("/version")).then_some(d),
        &[("data/99", b"")],
    );
    let (start, _, _) = record_range(&many, "/data/1");
    many[start] ^= 1;
    assert_eq!(
        rules_of_bytes(&many),
        ["zip.crc", "torch.version", "torch.storage-unused"]
    );
}

#[test]
fn planted_legacy_and_tar_defects_fire_their_rule() {
    let good = ok(LEGACY);
    assert_eq!(rules_of_bytes(&good), Vec::<&str>::new());
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"hidden");
    assert_eq!(rules_of_bytes(&trailing), ["legacy.trailing"]);
    // Protocol version 1002 instead of 1001.
    let mut protocol = good.clone();
    assert_eq!(&protocol[15..21], b"\x80\x02\x4d\xe9\x03\x2e");
    protocol[18] = 0xea;
    assert_eq!(rules_of_bytes(&protocol), ["legacy.header"]);
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 3);
    assert_eq!(rules_of_bytes(&truncated), ["legacy.storage-missing"]);

    let tar = ok("torch/tar-0.3.pt");
    assert_eq!(rules_of_bytes(&tar), Vec::<&str>::new());
    // Cut inside the `storages` member (its data starts at byte 3584).
    assert_eq!(rules_of_bytes(&tar[..3600]), ["tar.read"]);
}

#[test]
fn planted_safetensors_defects_fire_their_rule() {
    let good = ok("tiny-mlp.safetensors");
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&100_000_001u64.to_le_bytes());
    assert_eq!(rules_of_bytes(&huge), ["st.header-length"]);

    let data: Vec<u8> = vec![0; 4];
    let view = ckpt::TensorView::contiguous(
        ckpt::Dtype::Float32,
        vec![1],
        ckpt::model::Storage::new(&data, ckpt::model::ByteOrder::Little),
    )
    .unwrap();
    let metadata = std::collections::BTreeMap::from([("format".to_owned(), "np".to_owned())]);
    let tensors = [("w".to_owned(), &view)];
    let plan = ckpt::safetensors::Plan::new(&tensors, &metadata).unwrap();
    let mut file = Vec::new();
    plan.write_to(&mut file, &()).unwrap();
    assert_eq!(rules_of_bytes(&file), ["st.format-metadata"]);
}

/// Copies the shard folder `ok/shards/<name>` into a temporary folder, with its index
/// rewritten by `edit`.
fn shard_copy(name: &str, edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixtures().join("ok/shards").join(name)).unwrap() {
        let path = entry.unwrap().path();
        let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut bytes = std::fs::read(&path).unwrap();
        if file_name.ends_with(".index.json") {
            bytes = edit(std::str::from_utf8(&bytes).unwrap()).into_bytes();
        }
        std::fs::write(dir.path().join(file_name), bytes).unwrap();
    }
    dir
}

#[test]
fn planted_shard_index_defects_fire_their_rule() {
    let same = shard_copy("safetensors", str::to_owned);
    assert!(verify_path(same.path()).unwrap().is_sound());

    let total = shard_copy("safetensors", |index| index.replace("1080", "1081"));
    let report = verify_path(total.path()).unwrap();
    assert_eq!(rules_of(&report), ["hf.total-size"]);
    assert!(
        report.problems()[0].message().contains("1081"),
        "{}",
        report.problems()[0]
    );

    let unlisted = shard_copy("safetensors", |index| {
        index.replace(
            "    \"layers.1.step\": \"model-00003-of-00004.safetensors\",\n",
            "",
        )
    });
    let report = verify_path(unlisted.path()).unwrap();
    assert_eq!(rules_of(&report), ["hf.tensor-unlisted"]);
    assert_eq!(
        report.problems()[0].location().tensor.as_deref(),
        Some("layers.1.step")
    );

    let twice = shard_copy("safetensors", |index| {
        index.replace(
            "\"weight_map\": {",
            "\"weight_map\": {\n    \"head.weight\": \"model-00001-of-00004.safetensors\",",
        )
    });
    assert_eq!(rules_of(&verify_path(twice.path()).unwrap()), ["hf.index"]);

    // A shard with a defect of its own is reported inside the folder's report.
    let broken = shard_copy("safetensors", str::to_owned);
    let shard = broken.path().join("model-00002-of-00004.safetensors");
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes.extend_from_slice(b"tail");
    std::fs::write(&shard, bytes).unwrap();
    let report = verify_path(broken.path()).unwrap();
    assert_eq!(rules_of(&report), ["st.trailing"]);
    assert_eq!(
        report.problems()[0].location().member.as_deref(),
        Some("model-00002-of-00004.safetensors")
    );
    assert_eq!(report.files(), 5);
}

#[test]
fn a_manifest_checks_the_same_tensors_in_any_format() {
    let source = ckpt::Source::open(fixtures().join("ok").join(ZIP)).unwrap();
    let checkpoint = source.checkpoint().unwrap();
    let manifest = Manifest::of(&checkpoint, &()).unwrap();
    assert!(!manifest.tensors.is_empty());
    let parsed = Manifest::parse(manifest.to_json().as_bytes()).unwrap();
    // The legacy file of the same state dict holds the same tensors.
    let legacy = ckpt::Source::open(fixtures().join("ok").join(LEGACY)).unwrap();
    assert!(
        parsed
            .check(&legacy.checkpoint().unwrap(), &())
            .unwrap()
            .is_empty()
    );
    // Another checkpoint fails, every difference listed.
    let other = ckpt::Source::open(fixtures().join("ok/tiny-mlp.safetensors")).unwrap();
    let problems = parsed.check(&other.checkpoint().unwrap(), &()).unwrap();
    assert!(problems.iter().any(|p| p.rule().id == "manifest.missing"));
    assert!(problems.iter().any(|p| p.rule().id == "manifest.extra"));
    // A file that verifies with a warning only but that the reader refuses: its tensors
    // cannot be checked, which is a problem, not a failure.
    let refused = fixtures().join("bad/torch/ok_tensor_then_garbage.pt");
    let problems = verify::check_manifest(&refused, &parsed, &()).unwrap();
    let found: Vec<&str> = problems.iter().map(|p| p.rule().id).collect();
    assert_eq!(found, ["manifest.read"]);
    assert!(verify::check_manifest(Path::new("/no/such/file.pt"), &parsed, &()).is_err());
}

/// Deterministic damage to good files (bytes flipped across the file, cuts at many
/// lengths): verify refuses or reports, never panics; and when it finds nothing wrong, the
/// normal reader reads the bytes.
#[test]
fn damaged_files_never_panic_and_sound_means_readable() {
    let files = [
        "tiny-mlp.safetensors",
        "metadata.safetensors",
        "torch/state_dict-2.15-zip-p2.pt",
        "torch/views-2.15-zip.pt",
        "torch/state_dict-2.15-legacy-p2.pt",
        "torch/tar-0.3.pt",
        "torch/torchscript_traced-2.15.pt",
    ];
    let inputs: Vec<Vec<u8>> = files.iter().map(|f| ok(f)).collect();
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            let mut checked = 0usize;
            for good in &inputs {
                let len = good.len();
                let mut damaged = Vec::new();
                for i in 0..64 {
                    let at = (i * 7919 + 13) % len;
                    let mut bytes = good.clone();
                    bytes[at] ^= 1 << (i % 8);
                    damaged.push(bytes);
                    damaged.push(good[..(i * 104_729 + 1) % len].to_vec());
                }
                for bytes in &damaged {
                    let Ok(report) = verify::verify_bytes(bytes) else {
                        continue;
                    };
                    checked += 1;
                    if report.count(Severity::Error) == 0 && report.is_sound() {
                        assert!(ckpt::read(bytes).is_ok(), "sound but unreadable");
                    }
                }
            }
            assert!(checked > 500, "{checked}");
        })
        .unwrap()
        .join()
        .unwrap();
}

/// A stored zip written by hand (no data descriptors), with where each member's local
/// header and central directory entry start, so that tests can damage them.
fn raw_zip(members: &[(&str, &[u8])]) -> (Vec<u8>, Vec<usize>, Vec<usize>) {
    let mut out = Vec::new();
    let mut locals = Vec::new();
    for (name, data) in members {
        locals.push(out.len());
        let crc = crc32fast::hash(data);
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
    }
    let directory = out.len();
    let mut centrals = Vec::new();
    for ((name, data), local) in members.iter().zip(&locals) {
        centrals.push(out.len());
        out.extend_from_slice(b"PK\x01\x02");
        out.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0; 12]);
        out.extend_from_slice(&(*local as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
    }
    let size = out.len() - directory;
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(size as u32).to_le_bytes());
    out.extend_from_slice(&(directory as u32).to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    (out, locals, centrals)
}

/// Sets a member's sizes, in its local header and its central directory entry alike.
fn set_sizes(bytes: &mut [u8], local: usize, central: usize, size: u32) {
    for at in [local + 18, local + 22, central + 20, central + 24] {
        bytes[at..at + 4].copy_from_slice(&size.to_le_bytes());
    }
}

#[test]
fn planted_zip_container_defects_fire_their_rule() {
    // A whole archive as another zip writer would write it, taken apart and put back.
    let good = ok(ZIP);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&good[..])).unwrap();
    let mut members = Vec::new();
    for i in 0..zip.len() {
        let mut file = zip.by_index(i).unwrap();
        let mut data = Vec::new();
        file.read_to_end(&mut data).unwrap();
        members.push((file.name().unwrap().into_owned(), data));
    }
    let members: Vec<(&str, &[u8])> = members
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let (rebuilt, locals, centrals) = raw_zip(&members);
    assert_eq!(rules_of_bytes(&rebuilt), Vec::<&str>::new());

    let mut twice = members.clone();
    twice.push(members[0]);
    assert_eq!(
        rules_of_bytes(&raw_zip(&twice).0),
        ["scan.dangerous", "zip.duplicate"]
    );

    // The last member claims a megabyte the file does not have.
    let last = members.len() - 1;
    let mut past = rebuilt.clone();
    set_sizes(&mut past, locals[last], centrals[last], 1 << 20);
    assert_eq!(rules_of_bytes(&past), ["zip.bounds"]);

    // The first member reaches into the second's data: they share bytes, and its CRC is
    // wrong. Reaching only into the next local header is an overlap too.
    let mut overlap = rebuilt.clone();
    let to_next = locals[1] - locals[0] - 30 - members[0].0.len();
    let into_data = to_next + 30 + members[1].0.len() + 1;
    set_sizes(&mut overlap, locals[0], centrals[0], into_data as u32);
    assert_eq!(
        rules_of_bytes(&overlap),
        ["scan.dangerous", "zip.overlap", "zip.crc"]
    );
    let mut into_header = rebuilt.clone();
    set_sizes(
        &mut into_header,
        locals[0],
        centrals[0],
        (to_next + 8) as u32,
    );
    let found = rules_of_bytes(&into_header);
    assert_eq!(
        &found[..3],
        ["scan.dangerous", "zip.overlap", "zip.crc"],
        "{found:?}"
    );

    // A deflated member claiming 3 GiB is not inflated to check its CRC (a zip bomb).
    let mut bomb = rebuilt.clone();
    bomb[locals[last] + 8] = 8;
    bomb[centrals[last] + 10] = 8;
    for at in [locals[last] + 22, centrals[last] + 24] {
        bomb[at..at + 4].copy_from_slice(&(3u32 << 30).to_le_bytes());
    }
    let report = verify::verify_bytes(&bomb).unwrap();
    assert_eq!(rules_of(&report), ["zip.compression"]);
    assert_eq!(report.problems()[0].severity(), Severity::Warning);
    assert!(report.problems()[0].message().contains("not checked"));

    // A member compressed with a method torch cannot read (12, bzip2).
    let mut bzip = rebuilt.clone();
    bzip[locals[last] + 8] = 12;
    bzip[centrals[last] + 10] = 12;
    assert_eq!(rules_of_bytes(&bzip), ["zip.compression"]);
}

#[test]
fn every_chunk_of_a_dcp_folder_is_verified_as_an_archive() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixtures().join("ok/dcp/sharded-2.15");
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    assert!(verify_path(dir.path()).unwrap().is_sound());
    // One bit of one chunk's tensor data flipped: its archive's CRC tells.
    let file = dir.path().join("__0_0.distcp");
    let mut bytes = std::fs::read(&file).unwrap();
    // The file is archives back to back: flip a bit in the first one with a tensor.
    let mut start = 0;
    let mut flipped = None;
    while let Some(eocd) = bytes[start..].windows(4).position(|w| w == b"PK\x05\x06") {
        let end = start + eocd + 22;
        let has_tensor = zip::ZipArchive::new(std::io::Cursor::new(&bytes[start..end]))
            .unwrap()
            .file_names()
            .any(|n| n.unwrap().ends_with("/data/0"));
        if has_tensor {
            let (data, _, _) = record_range(&bytes[start..end], "/data/0");
            bytes[start + data] ^= 1;
            flipped = Some(start);
            break;
        }
        start = end;
    }
    let archive = flipped.unwrap();
    std::fs::write(&file, bytes).unwrap();
    let report = verify_path(dir.path()).unwrap();
    assert_eq!(rules_of(&report), ["zip.crc"]);
    let member = report.problems()[0].location().member.clone().unwrap();
    assert!(
        member.starts_with(&format!("__0_0.distcp at byte {archive}:")),
        "{member}"
    );
    assert!(member.ends_with("/data/0"), "{member}");
}
