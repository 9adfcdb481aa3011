//! `pgwal dump` beyond pg_waldump: compressed, `.partial` and stdin input dump identically to
//! the plain files; bad input gets a clear error naming the file; the JSON Lines schema holds.

// Test helpers outside #[test] functions: failing loudly is the point.
#![allow(clippy::unwrap_used)]

mod support;

use support::*;

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn pgwal() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pgwal"));
    c.env("TZ", "UTC").arg("dump");
    c
}

fn out(mut c: Command) -> Output {
    c.output().expect("run pgwal")
}

/// Compresses with the real command-line tools, as an archive or pg_receivewal -Z would.
fn compress(tool: &str, src: &Path, dst: &Path) {
    let data = std::fs::read(src).unwrap();
    let mut child = Command::new(tool)
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&data).unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{tool} failed");
    std::fs::write(dst, o.stdout).unwrap();
}

#[test]
fn compressed_partial_and_stdin_dump_like_plain_files() {
    for sample in ["pg13", "pg16", "pg18", "pg19"] {
        let dir = testdata(sample);
        let names = segment_names(&dir);
        let plain = |extra: &[&str]| {
            let mut c = pgwal();
            c.arg("-p").arg(&dir).args(&names).args(extra);
            out(c).stdout
        };
        for extra in [&[][..], &["-b"][..], &["--stats=record"][..]] {
            let want = plain(extra);
            assert!(want.len() > 1000);
            for (tool, suffix) in [
                ("gzip", ".gz"),
                ("lz4", ".lz4"),
                ("zstd", ".zst"),
                ("", ".partial"),
            ] {
                let tmp = tempfile::tempdir().unwrap();
                for n in &names {
                    let dst = tmp.path().join(format!("{n}{suffix}"));
                    if tool.is_empty() {
                        std::fs::copy(dir.join(n), &dst).unwrap();
                    } else {
                        compress(tool, &dir.join(n), &dst);
                    }
                }
                let files: Vec<String> = names.iter().map(|n| format!("{n}{suffix}")).collect();
                let mut c = pgwal();
                c.arg("-p").arg(tmp.path()).args(&files).args(extra);
                let got = out(c);
                assert_eq!(
                    got.stdout, want,
                    "{sample} {suffix} {extra:?}: output differs from plain files"
                );
                assert!(got.status.success());
                // Directory mode without naming any file finds the first record by itself.
                let mut c = pgwal();
                c.arg("-p").arg(tmp.path()).args(extra);
                assert_eq!(
                    out(c).stdout,
                    want,
                    "{sample} {suffix} {extra:?}: directory mode differs"
                );
                // In parallel, with many chunks per segment: the workers share each segment,
                // decompressed once.
                for (jobs, pages) in [("2", "3"), ("3", "16")] {
                    let mut c = pgwal();
                    c.env("PGWAL_DUMP_CHUNK_PAGES", pages)
                        .args(["-j", jobs, "-p"])
                        .arg(tmp.path())
                        .args(&files)
                        .args(extra);
                    assert_eq!(
                        out(c).stdout,
                        want,
                        "{sample} {suffix} {extra:?}: -j{jobs} ({pages} pages a chunk) differs"
                    );
                }
            }
            // Standard input: the segments back to back, zstd-compressed.
            let mut cat = Vec::new();
            for n in &names {
                cat.extend(std::fs::read(dir.join(n)).unwrap());
            }
            let z = zstd_bytes(&cat);
            let mut c = pgwal();
            c.arg("-")
                .args(extra)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped());
            let mut child = c.spawn().unwrap();
            {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(&z).unwrap();
            }
            let got = child.wait_with_output().unwrap();
            assert_eq!(got.stdout, want, "{sample} stdin {extra:?}");
        }
    }
}

fn zstd_bytes(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("zstd")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&data).unwrap();
    });
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    o.stdout
}

fn stderr_of(mut c: Command) -> (bool, String) {
    let o = c.output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn bad_input_gets_a_clear_error_naming_the_file() {
    let src = testdata("pg16");
    let seg = segment_names(&src)[0].clone();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(src.join(&seg), tmp.path().join(&seg)).unwrap();

    // Missing file.
    let mut c = pgwal();
    c.arg("-p").arg(tmp.path()).arg("0000000100000000000000FE");
    let (ok, err) = stderr_of(c);
    assert!(!ok && err.contains("0000000100000000000000FE"), "{err}");

    // Wrong size: a complete segment cut short.
    let short = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(src.join(&seg)).unwrap();
    std::fs::write(short.path().join(&seg), &bytes[..bytes.len() / 2]).unwrap();
    let mut c = pgwal();
    c.arg("-p").arg(short.path()).arg(&seg);
    let (ok, err) = stderr_of(c);
    assert!(
        !ok && err.contains(&seg) && err.contains("524288 bytes"),
        "{err}"
    );

    // Unknown magic in the first page.
    let bad = tempfile::tempdir().unwrap();
    let mut b = bytes.clone();
    b[0] = 0x42;
    b[1] = 0x42;
    std::fs::write(bad.path().join(&seg), &b).unwrap();
    let mut c = pgwal();
    c.arg("-p").arg(bad.path()).arg(&seg);
    let (ok, err) = stderr_of(c);
    assert!(
        !ok && err.contains(&seg) && err.contains("invalid magic number 4242"),
        "{err}"
    );

    // A file of another system: the next segment taken from another cluster (pg17's WAL of the
    // same segment number is impossible to line up, so use the sysid check directly: rewrite
    // the long header's system identifier of the second segment).
    let two = testdata("pg18");
    let names = segment_names(&two);
    assert!(names.len() >= 2);
    let other = tempfile::tempdir().unwrap();
    std::fs::copy(two.join(&names[0]), other.path().join(&names[0])).unwrap();
    let mut second = std::fs::read(two.join(&names[1])).unwrap();
    second[24] ^= 0xFF;
    std::fs::write(other.path().join(&names[1]), &second).unwrap();
    let mut c = pgwal();
    c.arg("-p").arg(other.path()).args(&names);
    let (ok, err) = stderr_of(c);
    assert!(
        !ok && err.contains("different database system") && err.contains(&names[1]),
        "{err}"
    );

    // A flipped byte inside a record: corruption, named by LSN and file, non-zero exit.
    let flip = tempfile::tempdir().unwrap();
    let mut f = bytes.clone();
    f[0x3000] ^= 0x01;
    std::fs::write(flip.path().join(&seg), &f).unwrap();
    let mut c = pgwal();
    c.arg("-p").arg(flip.path()).arg(&seg);
    let (ok, err) = stderr_of(c);
    assert!(!ok && err.contains(&seg) && err.contains(" at 0/"), "{err}");
}

#[test]
fn end_of_wal_exits_zero_unless_waldump_exit_is_asked() {
    let dir = testdata("pg15");
    let mut c = pgwal();
    c.arg("-p").arg(&dir).arg("-q");
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("end of valid WAL at 0/"), "{err}");
    let mut c = pgwal();
    c.arg("-p").arg(&dir).arg("-q").arg("--waldump-exit");
    assert_eq!(c.output().unwrap().status.code(), Some(1));
}

/// The JSON Lines output is a stable contract (README, "JSON output").
#[test]
fn dump_json_schema() {
    let dir = testdata("pg17");
    let mut c = pgwal();
    c.arg("-p").arg(&dir).arg("--format").arg("json");
    let o = out(c);
    let text = String::from_utf8(o.stdout).unwrap();
    let mut n = 0;
    let mut with_fields = 0;
    let mut with_image = 0;
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).expect("each line is one JSON object");
        let o = v.as_object().unwrap();
        assert_eq!(o["type"], "record");
        for key in ["lsn", "end_lsn", "prev", "rmgr", "record_type", "desc"] {
            let s = o[key]
                .as_str()
                .unwrap_or_else(|| panic!("{key} is a string: {line}"));
            if key.ends_with("lsn") || key == "prev" {
                assert!(s.contains('/'), "{key} is X/X: {line}");
            }
        }
        for key in [
            "timeline",
            "pg_version",
            "rmid",
            "info",
            "rec_len",
            "tot_len",
            "fpi_len",
            "xid",
            "main_data_len",
        ] {
            assert!(o[key].is_u64(), "{key} is a number: {line}");
        }
        assert!(o["toplevel_xid"].is_null() || o["toplevel_xid"].is_u64());
        assert!(o["origin"].is_null() || o["origin"].is_u64());
        for b in o["blocks"].as_array().unwrap() {
            for key in ["id", "blk", "data_len"] {
                assert!(b[key].is_u64(), "block {key}: {line}");
            }
            for key in ["spc", "db", "rel"] {
                assert!(b["rel"][key].is_u64());
            }
            assert!(["main", "fsm", "vm", "init"].contains(&b["fork"].as_str().unwrap()));
            assert!(b["will_init"].is_boolean());
            if let Some(img) = b["image"].as_object() {
                with_image += 1;
                assert!(
                    img["len"].is_u64()
                        && img["hole_offset"].is_u64()
                        && img["hole_length"].is_u64()
                );
                assert!(img["apply"].is_boolean());
                assert!(
                    ["none", "pglz", "lz4", "zstd"].contains(&img["compression"].as_str().unwrap())
                );
            }
        }
        if o["fields"].is_object() {
            with_fields += 1;
        }
        assert_eq!(o["pg_version"], 17);
        n += 1;
    }
    assert!(
        n > 1000 && with_fields > 50 && with_image > 5,
        "{n} records, {with_fields} with fields, {with_image} images"
    );
    // Statistics: one object.
    let mut c = pgwal();
    c.arg("-p")
        .arg(&dir)
        .arg("--format")
        .arg("json")
        .arg("--stats=record");
    let o = out(c);
    let text = String::from_utf8(o.stdout).unwrap();
    assert_eq!(text.lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["type"], "stats");
    assert_eq!(v["count"].as_u64(), Some(n));
    let rows = v["rows"].as_array().unwrap();
    assert!(rows
        .iter()
        .all(|r| r["rmgr"].is_string() && r["record_type"].is_string() && r["count"].is_u64()));
    assert_eq!(
        rows.iter()
            .map(|r| r["count"].as_u64().unwrap())
            .sum::<u64>(),
        n
    );
}
