//! `ckpt::scan`: every fixture gets the verdict it deserves, and every place a pickle can
//! hide is looked at. Hostile files are assembled by hand, byte by byte.

use std::path::{Path, PathBuf};

use ckpt::scan::{
    Category, Report, ScanOptions, Verdict, collect_files, scan_bytes, scan_file, scan_paths,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn scan(bytes: &[u8], name: &str) -> Report {
    scan_bytes(bytes, name, &ScanOptions::default())
}

fn describe(report: &Report) -> String {
    let mut out = format!("{} {}\n", report.status(), report.path.display());
    for f in &report.findings {
        out.push_str(&format!(
            "  {} {:?} {:?} {:?} {:?}@{:?}: {}\n",
            f.verdict, f.category, f.global, f.usage, f.member, f.offset, f.why
        ));
    }
    for e in &report.errors {
        out.push_str(&format!("  error: {e}\n"));
    }
    out
}

// --- fixtures ---

#[test]
fn every_ok_fixture_is_safe_or_documented_unsafe() {
    let files = collect_files(&[fixtures().join("ok")]);
    assert!(files.len() > 80, "{}", files.len());
    for file in files {
        let file = file.unwrap();
        let report = scan_file(&file, &ScanOptions::default());
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        // Whole-module pickles and TorchScript need code, and so do the objects of training
        // frameworks' checkpoints (unsafe exactly when the reader keeps an inert object of
        // a class that is not data); everything else is data.
        let framework = file.components().any(|c| c.as_os_str() == "frameworks");
        let expected = if name.starts_with("module") || name.starts_with("torchscript") {
            Verdict::Unsafe
        } else if framework && name.ends_with(".json") {
            Verdict::Safe
        } else if framework {
            let source = ckpt::Source::open(&file).unwrap();
            let checkpoint = source.checkpoint().unwrap();
            // Paths are data to the scanner (DCP metadata holds them); numpy arrays are
            // data though torch's weights-only loader refuses them.
            let code = checkpoint
                .objects()
                .iter()
                .any(|(_, o)| !o.class.starts_with("pathlib."));
            if code { Verdict::Unsafe } else { Verdict::Safe }
        } else {
            Verdict::Safe
        };
        assert!(report.errors.is_empty(), "{}", describe(&report));
        assert_eq!(report.verdict, expected, "{}", describe(&report));
        if name.starts_with("torchscript") {
            assert!(report.findings.iter().any(|f| f.category == Category::Code));
        }
    }
}

#[test]
fn every_torch_attack_fixture_is_dangerous() {
    let files = collect_files(&[fixtures().join("attack/torch")]);
    assert!(files.len() >= 6);
    for file in files {
        let report = scan_file(&file.unwrap(), &ScanOptions::default());
        assert_eq!(report.verdict, Verdict::Dangerous, "{}", describe(&report));
    }
}

#[test]
fn the_polyglot_safetensors_is_reported() {
    let report = scan_file(
        &fixtures().join("attack/polyglot.safetensors"),
        &ScanOptions::default(),
    );
    assert_eq!(report.verdict, Verdict::Unsafe, "{}", describe(&report));
    assert_eq!(report.pickles, 1);
}

#[test]
fn the_dcp_metadata_with_a_foreign_global_is_dangerous() {
    let report = scan_file(
        &fixtures().join("bad/dcp/unknown_global/.metadata"),
        &ScanOptions::default(),
    );
    assert_eq!(report.verdict, Verdict::Dangerous);
}

#[test]
fn an_index_brings_its_shards() {
    let index = fixtures().join("ok/shards/bin/pytorch_model.bin.index.json");
    let files: Vec<PathBuf> = collect_files(&[index])
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(files.len(), 5);
    for file in files {
        let report = scan_file(&file, &ScanOptions::default());
        assert_eq!(report.status(), "safe", "{}", describe(&report));
    }
}

// --- a tiny assembler ---

// --- several paths, as JSON ---

#[test]
fn a_scan_of_several_paths_serializes_each_report_and_a_summary() {
    let paths = [
        fixtures().join("attack/torch/os_system_reduce.pt"),
        fixtures().join("ok/tiny-mlp.safetensors"),
        fixtures().join("no such file.pt"),
    ];
    let scan = scan_paths(&paths, &ScanOptions::default());
    let statuses: Vec<&str> = scan.files.iter().map(Report::status).collect();
    assert_eq!(statuses, ["dangerous", "safe", "error"]);
    assert_eq!(
        (
            scan.summary.files,
            scan.summary.dangerous,
            scan.summary.errors
        ),
        (3, 1, 1)
    );

    let json = serde_json::to_value(&scan).unwrap();
    assert_eq!(
        json["summary"],
        serde_json::json!({"files": 3, "safe": 1, "unsafe": 0, "dangerous": 1, "errors": 1})
    );
    let finding = &json["files"][0]["findings"][0];
    assert_eq!(finding["verdict"], "dangerous");
    assert_eq!(finding["category"], "global");
    assert_eq!(finding["usage"], "called");
    assert_eq!(finding["member"], "archive/data.pkl");
    let missing = &json["files"][2];
    assert_eq!(missing["verdict"], "error");
    assert_eq!(missing["path"], paths[2].display().to_string());
    assert_eq!(missing["errors"][0]["kind"], "io");
    // Fields in a stable order, as `ckpt scan --json` prints them.
    let text = serde_json::to_string(&scan.files[1]).unwrap();
    assert!(
        text.ends_with(
            r#"","verdict":"safe","format":"safetensors","pickles":0,"findings":[],"errors":[],"data_globals":[]}"#
        ),
        "{text}"
    );
}

fn global(module: &str, name: &str) -> Vec<u8> {
    format!("c{module}\n{name}\n").into_bytes()
}

fn unicode(s: &str) -> Vec<u8> {
    let mut out = vec![b'X'];
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    out
}

fn proto2(body: &[u8]) -> Vec<u8> {
    [&[0x80, 2][..], body, b"."].concat()
}

/// `os.system(cmd)` under protocol 2.
fn os_system(cmd: &str) -> Vec<u8> {
    proto2(&[global("os", "system"), unicode(cmd), b"\x85R".to_vec()].concat())
}

const EMPTY_DICT: &[u8] = b"\x80\x02}q\x00.";

/// A zip archive of `(name, bytes)` members, stored, with local headers as given by
/// `local_name` (to forge mismatches) and optional flags.
struct Entry<'a> {
    name: &'a str,
    local_name: &'a str,
    data: Vec<u8>,
    flags: u16,
    deflate: bool,
}

fn entry<'a>(name: &'a str, data: &[u8]) -> Entry<'a> {
    Entry {
        name,
        local_name: name,
        data: data.to_vec(),
        flags: 0,
        deflate: false,
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn deflate(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn zip(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let offset = out.len() as u32;
        let stored = if e.deflate {
            deflate(&e.data)
        } else {
            e.data.clone()
        };
        let method: u16 = if e.deflate { 8 } else { 0 };
        let crc = crc32(&e.data);
        let header = |sig: &[u8], name: &str| {
            let mut h = sig.to_vec();
            h.extend_from_slice(&20u16.to_le_bytes());
            h.extend_from_slice(&e.flags.to_le_bytes());
            h.extend_from_slice(&method.to_le_bytes());
            h.extend_from_slice(&[0, 0, 0x21, 0]); // time, date
            h.extend_from_slice(&crc.to_le_bytes());
            h.extend_from_slice(&(stored.len() as u32).to_le_bytes());
            h.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes());
            h
        };
        out.extend(header(b"PK\x03\x04", e.local_name));
        out.extend_from_slice(e.local_name.as_bytes());
        out.extend_from_slice(&stored);
        let mut c = b"PK\x01\x02\x14\x00".to_vec();
        c.extend(header(b"", e.name));
        c.extend_from_slice(&[0u8; 6]); // comment len, disk, internal attrs
        c.extend_from_slice(&[0u8; 4]); // external attrs
        c.extend_from_slice(&offset.to_le_bytes());
        c.extend_from_slice(e.name.as_bytes());
        central.push(c);
    }
    let cd_start = out.len() as u32;
    let cd: Vec<u8> = central.concat();
    out.extend_from_slice(&cd);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_start.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn torch_zip(data_pkl: &[u8], extra: Vec<Entry<'_>>) -> Vec<u8> {
    let mut entries = vec![
        entry("archive/data.pkl", data_pkl),
        entry("archive/version", b"3\n"),
    ];
    entries.extend(extra);
    zip(&entries)
}

// --- where pickles hide ---

#[test]
fn a_clean_hand_made_archive_is_safe() {
    let report = scan(&torch_zip(EMPTY_DICT, vec![]), "model.pt");
    assert_eq!(report.status(), "safe", "{}", describe(&report));
}

#[test]
fn a_pickle_member_named_data_txt_is_scanned() {
    let report = scan(
        &torch_zip(
            EMPTY_DICT,
            vec![entry("archive/data.txt", &os_system("id"))],
        ),
        "model.pt",
    );
    assert_eq!(report.verdict, Verdict::Dangerous, "{}", describe(&report));
    let finding = &report.findings[0];
    assert_eq!(finding.member.as_deref(), Some("archive/data.txt"));
    assert_eq!(finding.global.as_deref(), Some("os.system"));
}

#[test]
fn a_compressed_pickle_is_inflated_and_scanned() {
    let mut member = entry("archive/data.pkl", &os_system("id"));
    member.deflate = true;
    let report = scan(
        &zip(&[member, entry("archive/version", b"3\n")]),
        "model.pt",
    );
    assert_eq!(report.verdict, Verdict::Dangerous, "{}", describe(&report));
}

#[test]
fn duplicate_names_and_header_mismatches_are_dangerous() {
    let report = scan(
        &zip(&[
            entry("archive/data.pkl", EMPTY_DICT),
            entry("archive/data.pkl", &os_system("id")),
        ]),
        "model.pt",
    );
    assert_eq!(report.verdict, Verdict::Dangerous, "{}", describe(&report));
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.why.contains("share a name"))
    );

    let mut forged = entry("archive/data.pkl", EMPTY_DICT);
    forged.local_name = "archive/data.pkx";
    let report = scan(
        &zip(&[forged, entry("archive/version", b"3\n")]),
        "model.pt",
    );
    assert_eq!(report.verdict, Verdict::Dangerous, "{}", describe(&report));
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.why.contains("local header names"))
    );
}

#[test]
fn a_member_missing_from_the_central_directory_is_dangerous() {
    // Two members written, the directory lists only the first.
    let hidden = zip(&[
        entry("archive/data.pkl", EMPTY_DICT),
        entry("archive/evil.pkl", &os_system("id")),
    ]);
    let listed = zip(&[entry("archive/data.pkl", EMPTY_DICT)]);
    // Keep the local records of `hidden`, then the directory of `listed`.
    let locals_end = u32::from_le_bytes(
        hidden[hidden.len() - 6..hidden.len() - 2]
            .try_into()
            .unwrap(),
    ) as usize;
    let listed_cd = u32::from_le_bytes(
        listed[listed.len() - 6..listed.len() - 2]
            .try_into()
            .unwrap(),
    ) as usize;
    let mut bytes = hidden[..locals_end].to_vec();
    let mut directory = listed[listed_cd..].to_vec();
    let n = directory.len();
    directory[n - 6..n - 2].copy_from_slice(&(locals_end as u32).to_le_bytes());
    bytes.extend(directory);
    let report = scan(&bytes, "model.pt");
    assert_eq!(report.verdict, Verdict::Dangerous, "{}", describe(&report));
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.global.as_deref() == Some("os.system"))
    );
}

#[test]
fn an_encrypted_flag_is_dangerous_and_the_member_still_scanned() {
    let mut member = entry("archive/data.pkl", EMPTY_DICT);
    member.flags = 1;
    let report = scan(
        &zip(&[member, entry("archive/version", b"3\n")]),
        "model.pt",
    );
    assert_eq!(report.verdict, Verdict::Dangerous, "{}", describe(&report));
    assert_eq!(report.pickles, 1);
}

#[test]
fn data_after_the_archive_is_reported_and_scanned() {
    let mut bytes = torch_zip(EMPTY_DICT, vec![]);
    bytes.extend(os_system("id"));
    let report = scan(&bytes, "model.pt");
    assert_eq!(report.verdict, Verdict::Dangerous, "{}", describe(&report));
}

#[test]
fn torchscript_code_is_unsafe() {
    let report = scan(
        &zip(&[
            entry("m/data.pkl", EMPTY_DICT),
            entry("m/constants.pkl", b"\x80\x02)."),
            entry("m/code/__torch__/m.py", b"class M(Module):\n  pass\n"),
        ]),
        "model.pt",
    );
    assert_eq!(report.verdict, Verdict::Unsafe, "{}", describe(&report));
    assert!(report.findings.iter().any(|f| f.category == Category::Code));
}

#[test]
fn stacked_and_truncated_raw_pickles() {
    let mut stacked = EMPTY_DICT.to_vec();
    stacked.extend(os_system("id"));
    assert_eq!(scan(&stacked, "x.pkl").verdict, Verdict::Dangerous);

    let full = os_system("id");
    let truncated = &full[..full.len() - 3];
    let report = scan(truncated, "x.pkl");
    assert_eq!(report.verdict, Verdict::Dangerous, "{}", describe(&report));
    assert_eq!(report.errors.len(), 1);
}

#[test]
fn a_legacy_stream_is_scanned_to_its_end() {
    let magic = 0x1950_a86a_20f9_469c_fc6c_u128.to_le_bytes();
    let mut bytes = proto2(&[&[0x8a, 10][..], &magic[..10]].concat());
    bytes.extend(proto2(b"M\xe9\x03"));
    bytes.extend(proto2(b"}q\x00"));
    bytes.extend(proto2(b"}q\x00"));
    bytes.extend(proto2(b"]q\x00"));
    let report = scan(&bytes, "old.pt");
    assert_eq!(report.status(), "safe", "{}", describe(&report));
    // A pickle after the (zero) storages.
    bytes.extend(os_system("id"));
    let report = scan(&bytes, "old.pt");
    assert_eq!(report.verdict, Verdict::Dangerous, "{}", describe(&report));
}

fn npy(descr: &str, body: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (1,), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
    out
}

#[test]
fn numpy_object_arrays_are_scanned() {
    assert_eq!(scan(&npy("<f4", &[0; 4]), "a.npy").status(), "safe");
    let report = scan(&npy("|O", &os_system("id")), "a.npy");
    assert_eq!(report.verdict, Verdict::Dangerous, "{}", describe(&report));
    // The same inside an .npz.
    let npz = zip(&[
        entry("a.npy", &npy("|O", &os_system("id"))),
        entry("b.npy", &npy("<f4", &[0; 4])),
    ]);
    let report = scan(&npz, "a.npz");
    assert_eq!(report.verdict, Verdict::Dangerous, "{}", describe(&report));
}

#[test]
fn dotted_stack_global_reaches_os() {
    // protocol 4: STACK_GLOBAL('random', '_os.system')
    let bytes = b"\x80\x04\x8c\x06random\x8c\x0a_os.system\x93\x8c\x02id\x85R.";
    let report = scan(bytes, "x.pkl");
    assert_eq!(report.verdict, Verdict::Dangerous);
    assert_eq!(
        report.findings[0].global.as_deref(),
        Some("random._os.system")
    );
}

#[test]
fn allow_makes_custom_classes_safe() {
    let bytes = proto2(&[global("mymod", "Config"), b")\x81".to_vec()].concat());
    assert_eq!(scan(&bytes, "x.pkl").verdict, Verdict::Unsafe);
    let options = ScanOptions::default().with_allow(["mymod.Config".to_owned()]);
    assert_eq!(scan_bytes(&bytes, "x.pkl", &options).verdict, Verdict::Safe);
}

#[test]
fn scanning_never_runs_the_payload() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ckpt-scan-marker");
    let cmd = format!("touch {}", marker.display());
    // open(marker, 'w') and os.system('touch marker'), in a raw pickle and a torch zip.
    let open = proto2(
        &[
            global("builtins", "open"),
            unicode(&marker.display().to_string()),
            unicode("w"),
            b"\x86R".to_vec(),
        ]
        .concat(),
    );
    std::fs::write(dir.path().join("open.pkl"), &open).unwrap();
    std::fs::write(
        dir.path().join("system.pt"),
        torch_zip(&os_system(&cmd), vec![]),
    )
    .unwrap();
    for file in collect_files(&[dir.path().to_path_buf()]) {
        let report = scan_file(&file.unwrap(), &ScanOptions::default());
        assert_eq!(report.verdict, Verdict::Dangerous);
    }
    assert!(!marker.exists());
}

#[test]
fn unreadable_paths_are_errors() {
    let files = collect_files(&[PathBuf::from("/nonexistent/ckpt-scan")]);
    assert!(files[0].is_err());
}

#[test]
fn text_members_that_look_like_pickles_are_not_errors() {
    let report = scan(
        &torch_zip(
            EMPTY_DICT,
            vec![entry("archive/notes.txt", b"]\nnot a pickle at all")],
        ),
        "model.pt",
    );
    assert_eq!(report.status(), "safe", "{}", describe(&report));
}

#[cfg(unix)]
#[test]
fn folder_walks_skip_symlink_loops() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("a")).unwrap();
    std::os::unix::fs::symlink(dir.path(), dir.path().join("a/loop")).unwrap();
    std::fs::write(dir.path().join("a/x.pkl"), EMPTY_DICT).unwrap();
    std::fs::write(dir.path().join("README.md"), b"(c) text.").unwrap();
    let files = collect_files(&[dir.path().to_path_buf()]);
    assert_eq!(files.len(), 1, "{files:?}");
}

/// The attack corpus (`tests/fixtures/attack/scan/`, made by its generator with a manifest
/// of expected verdicts), when present: every file gets its expected verdict.
#[test]
fn the_attack_corpus_gets_its_expected_verdicts() {
    let dir = fixtures().join("attack/scan");
    let Ok(manifest) = std::fs::read(dir.join("expected.json")) else {
        return; // the corpus lands separately
    };
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let mut wrong = Vec::new();
    for (name, entry) in manifest.as_object().unwrap() {
        let expected = entry["verdict"].as_str().unwrap();
        let report = scan_file(&dir.join(name), &ScanOptions::default());
        if report.status() != expected {
            wrong.push(format!("expected {expected}: {}", describe(&report)));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The loader corpus (`tests/fixtures/attack/loader/`, by `generate_loader.py`): files that
/// `torch.load`, `numpy.load`, `joblib.load`, `torch.export.load` or a streaming unzip run
/// (their twins prove it live in the interop suite). Every one is `dangerous`, with the
/// payload's global named where it is; every twin (the payload replaced by a call to
/// `builtins.print`) is at least `unsafe`.
#[test]
fn every_loader_corpus_file_is_dangerous_and_names_its_payload() {
    let dir = fixtures().join("attack/loader");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let manifest = manifest.as_object().unwrap();
    assert!(manifest.len() >= 40, "{}", manifest.len());
    let worst = |path: &Path| -> Vec<Report> {
        collect_files(&[path.to_path_buf()])
            .into_iter()
            .map(|file| scan_file(&file.unwrap(), &ScanOptions::default()))
            .collect()
    };
    let mut wrong = Vec::new();
    for (name, entry) in manifest {
        let reports = worst(&dir.join(name));
        let payload = entry["payload_global"].as_str().unwrap();
        // The payload's global, or a dotted path through which it is reached.
        let named = reports.iter().flat_map(|r| &r.findings).any(|f| {
            f.verdict == Verdict::Dangerous
                && f.offset.is_some()
                && f.global
                    .as_deref()
                    .is_some_and(|g| g == payload || g.ends_with(&format!(".{payload}")))
        });
        let dangerous = reports.iter().any(|r| r.verdict == Verdict::Dangerous);
        if !dangerous || !named {
            let text: Vec<String> = reports.iter().map(describe).collect();
            wrong.push(format!(
                "{name}: want dangerous naming {payload}\n{}",
                text.join("")
            ));
        }
        let twin = worst(&dir.join("twins").join(name));
        if !twin.iter().any(|r| r.verdict >= Verdict::Unsafe) {
            let text: Vec<String> = twin.iter().map(describe).collect();
            wrong.push(format!(
                "twins/{name}: want at least unsafe\n{}",
                text.join("")
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// What the scanner calls dangerous, no reader reads: `ckpt::Source::checkpoint` (behind
/// inspect, convert, diff, stats) refuses every dangerous file of both corpora, naming why.
#[test]
fn readers_refuse_every_file_the_scanner_calls_dangerous() {
    let mut checked = 0;
    for corpus in ["attack/scan", "attack/loader", "attack/torch"] {
        for file in collect_files(&[fixtures().join(corpus)]) {
            let file = file.unwrap();
            if file.components().any(|c| c.as_os_str() == "twins") {
                continue;
            }
            let report = scan_file(&file, &ScanOptions::default());
            if report.verdict != Verdict::Dangerous {
                continue;
            }
            checked += 1;
            // A DCP folder is read as a whole, from its folder.
            let target = if file
                .extension()
                .is_some_and(|e| e == "distcp" || e == "metadata")
                || file.file_name().is_some_and(|n| n == ".metadata")
            {
                file.parent().unwrap().to_path_buf()
            } else {
                file.clone()
            };
            let read = ckpt::Source::open(&target).and_then(|s| s.checkpoint().map(|_| ()));
            match read {
                Ok(()) => panic!(
                    "{} is dangerous but reads:\n{}",
                    file.display(),
                    describe(&report)
                ),
                Err(e) => assert!(e.kind() != ckpt::ErrorKind::Io, "{}: {e}", file.display()),
            }
        }
    }
    assert!(checked > 100, "{checked}");
}

/// Many compressed members cannot each take the `inflated-len` limit: a file's parts
/// inflate to at most four times it in all, and what is left over is reported, not read.
#[test]
fn a_file_inflates_to_four_times_the_limit_at_most() {
    use std::io::Write;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for i in 0..6 {
        writer.start_file(format!("m/x{i}.pkl"), options).unwrap();
        // A pickle of a MiB of zeros (popped), then None.
        let mut pickle = b"\x80\x04\x8e".to_vec();
        pickle.extend_from_slice(&(1u64 << 20).to_le_bytes());
        pickle.extend(std::iter::repeat_n(0u8, 1 << 20));
        pickle.extend_from_slice(b"0N.");
        writer.write_all(&pickle).unwrap();
    }
    let bytes = writer.finish().unwrap().into_inner();
    let mut limits = ckpt::Limits::default();
    limits.set("inflated-len", "2MiB").unwrap();
    let report = scan_bytes(&bytes, "a.zip", &ScanOptions::default().with_limits(limits));
    let spent = report
        .findings
        .iter()
        .filter(|f| f.why.contains("four times the `inflated-len` limit"))
        .count();
    // 6 members of a MiB each, 8 MiB allowed in all: every member fits.
    assert_eq!(spent, 0, "{}", describe(&report));
    let mut limits = ckpt::Limits::default();
    limits.set("inflated-len", "1MiB").unwrap();
    let report = scan_bytes(&bytes, "a.zip", &ScanOptions::default().with_limits(limits));
    // Each member is a little over a MiB (held to the limit, the rest read on): four MiB
    // in all are spent by the third member, and the others are not inflated.
    let spent = report
        .findings
        .iter()
        .filter(|f| f.why.contains("four times the `inflated-len` limit"))
        .map(|f| f.count)
        .sum::<usize>();
    assert!((1..=4).contains(&spent), "{spent}: {}", describe(&report));
    assert!(report.verdict >= Verdict::Unsafe);
}

/// The recording unpickler as oracle, at the level of `ckpt scan`: for every pickle of the
/// differential corpus, every random stream and every file of the attack corpora, each
/// global CPython's `find_class` was asked for (recorded by `tests/fixtures/pickle/`'s
/// generator) is one the scan reports, as a finding or as data.
#[test]
fn the_scan_reports_every_global_cpython_imports() {
    let dir = fixtures().join("pickle");
    // What CPython imported: (module, name) pairs as written.
    type Imported = Vec<(String, String)>;
    let mut cases: Vec<(String, Vec<u8>, Imported)> = Vec::new();
    let mut files: Vec<(PathBuf, Imported)> = Vec::new();
    let pairs = |value: &serde_json::Value| -> Vec<(String, String)> {
        value
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|g| {
                        (
                            g[0].as_str().unwrap().to_owned(),
                            g[1].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    for folder in ["ok", "bad"] {
        for entry in std::fs::read_dir(dir.join(folder)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "pkl") {
                let json: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(path.with_extension("json")).unwrap())
                        .unwrap();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                cases.push((name, std::fs::read(&path).unwrap(), pairs(&json["globals"])));
            }
        }
    }
    let streams: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("streams.json")).unwrap()).unwrap();
    for (i, stream) in streams["streams"].as_array().unwrap().iter().enumerate() {
        let hex = stream["hex"].as_str().unwrap();
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        cases.push((format!("stream {i}"), bytes, pairs(&stream["globals"])));
    }
    let attack: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("attack_globals.json")).unwrap()).unwrap();
    for file in attack["files"].as_array().unwrap() {
        let path = file["path"].as_str().unwrap();
        let mut globals = Vec::new();
        for entry in file["entries"].as_array().unwrap() {
            for pickle in entry["pickles"].as_array().unwrap() {
                globals.extend(pairs(&pickle["globals"]));
            }
        }
        files.push((fixtures().join(path), globals));
    }
    assert!(cases.len() > 2000, "{}", cases.len());
    assert!(files.len() > 150, "{}", files.len());
    let reports = cases
        .iter()
        .map(|(name, bytes, globals)| {
            let file_name = name.rsplit('/').next().unwrap_or(name);
            (
                name.clone(),
                globals,
                scan_bytes(bytes, file_name, &ScanOptions::default()),
            )
        })
        .chain(files.iter().map(|(path, globals)| {
            let name = path.display().to_string();
            (name, globals, scan_file(path, &ScanOptions::default()))
        }));
    let mut missed = Vec::new();
    for (name, globals, report) in reports {
        let reported: std::collections::HashSet<&str> = report
            .findings
            .iter()
            .filter_map(|f| f.global.as_deref())
            .chain(report.data_globals.iter().map(String::as_str))
            .collect();
        // A global computed at load time, or named by an extension code the loading
        // process's registry resolves, may be any of them.
        let computed = report
            .findings
            .iter()
            .any(|f| f.category == Category::ComputedGlobal || f.why.contains("extension code"));
        for (module, global) in globals {
            let (m, n) = ckpt::pickle::python3_name(module, global);
            let full = format!("{m}.{n}");
            if !reported.contains(full.as_str()) && !computed {
                missed.push(format!("{name}: {full}\n{}", describe(&report)));
            }
        }
    }
    assert!(
        missed.is_empty(),
        "{} missed:\n{}",
        missed.len(),
        missed.join("\n")
    );
}
