//! `pgwal archive` against real PostgreSQL WAL: push/fetch round trips in every compression,
//! idempotency and conflicts, `cleanup` compared with the real `pg_archivecleanup`, `verify`
//! on a clean archive with a timeline switch and on damaged copies of it, and standbys that
//! recover from an archive written by `archive_command = 'pgwal archive push …'` with
//! `restore_command = 'pgwal archive fetch …'`.
//!
//! Servers run as the `postgres` OS user when the tests run as root, so every directory a
//! server writes to is handed to the data directory's owner.
#![allow(clippy::unwrap_used)]

mod support;
use support::*;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pgwal::wal::{DecoderConfig, WalDecoder};
use pgwal::{Lsn, WalSegSize};
use pgwal_testkit::{require_major, Cluster, Major, PgbenchLength};
use serde_json::Value;

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Give `path` to the owner of `like` (the server's OS user); a no-op when not root.
fn give_to_owner_of(path: &Path, like: &Path) {
    let m = fs::metadata(like).unwrap();
    let _ = std::os::unix::fs::chown(path, Some(m.uid()), Some(m.gid()));
}

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for n in names(from) {
        fs::copy(from.join(&n), to.join(&n)).unwrap();
    }
}

fn push_command(archive: &Path, compress: &str) -> String {
    format!(
        "{BIN} archive push %p --archive {} --compress {compress}",
        s(archive)
    )
}

/// Waits until the server has archived every finished segment (no `.ready` files left).
fn wait_archived(c: &Cluster) {
    let status = c.pg_wal_dir().join("archive_status");
    let start = Instant::now();
    loop {
        let ready: Vec<String> = names(&status)
            .into_iter()
            .filter(|n| n.ends_with(".ready"))
            .collect();
        if ready.is_empty() {
            return;
        }
        if start.elapsed() > Duration::from_secs(120) {
            panic!(
                "still not archived after 2 minutes: {ready:?}\n--- server log ---\n{}",
                c.server_log_tail(40)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn switch_wal(c: &Cluster) -> u64 {
    let lsn = c.scalar_blocking("SELECT pg_switch_wal()").unwrap();
    pgwal_testkit::parse_lsn(&lsn).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The shared archive: timeline 1 from a primary, timeline 2 from its promoted standby.

struct Fixture {
    major: Major,
    /// Clean archive (plain files).
    archive: PathBuf,
    /// A segment of another cluster, of the same segment as our `foreign_name`.
    foreign: PathBuf,
    foreign_name: String,
    seg_size: WalSegSize,
}

fn fixture() -> Option<&'static Fixture> {
    // Built once; if building fails, every test using it fails with the same message.
    static F: OnceLock<Result<Option<Fixture>, String>> = OnceLock::new();
    let built = F.get_or_init(|| {
        std::panic::catch_unwind(build_fixture).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
    });
    match built {
        Ok(f) => f.as_ref(),
        Err(e) => panic!("building the fixture archive failed: {e}"),
    }
}

fn build_fixture() -> Option<Fixture> {
    let major = Major::V15;
    require_major(major)?;
    let t0 = Instant::now();
    let root = scratch_dir("archive-test", "fixture");
    let archive = root.join("archive");
    fs::create_dir(&archive).unwrap();
    let primary = Cluster::builder(major)
        .wal_segsize_mb(1)
        .set("archive_mode", "on")
        .set("archive_command", push_command(&archive, "none"))
        .init()
        .unwrap();
    give_to_owner_of(&archive, primary.data_dir());
    primary.start().unwrap();
    primary.sql_load_blocking(20_000).unwrap();
    switch_wal(&primary);
    primary.sql_load_blocking(5_000).unwrap();
    // pg_basebackup also makes the primary archive a .backup file.
    let standby = primary.create_standby().unwrap();
    primary.sql_load_blocking(5_000).unwrap();
    primary.wait_for_catchup(&standby).unwrap();
    // A clean stop archives every finished segment; the standby then archives the last,
    // unfinished one as .partial when it is promoted.
    primary.stop_fast().unwrap();
    standby.promote().unwrap();
    standby.sql_load_blocking(5_000).unwrap();
    switch_wal(&standby);
    standby.sql_load_blocking(2_000).unwrap();
    switch_wal(&standby);
    wait_archived(&standby);
    standby.stop_fast().unwrap();

    // Another cluster: one of its segments, named like one in the middle of our timeline 1.
    let ours = tli1_segments(&archive);
    let foreign_name = ours[ours.len() / 2].clone();
    let other = Cluster::builder(major).wal_segsize_mb(1).start().unwrap();
    let foreign = root.join("foreign");
    for _ in 0..400 {
        let current = other
            .scalar_blocking("SELECT pg_walfile_name(pg_current_wal_lsn())")
            .unwrap();
        if current > foreign_name {
            break;
        }
        other.sql_load_blocking(500).unwrap();
    }
    fs::copy(other.pg_wal_dir().join(&foreign_name), &foreign).unwrap();
    let head = fs::read(&foreign).unwrap();
    let info = pgwal::storage::probe::probe_segment(&head).unwrap();
    let mine =
        pgwal::storage::probe::probe_segment(&fs::read(archive.join(&foreign_name)).unwrap())
            .unwrap();
    assert_eq!(
        info.pageaddr, mine.pageaddr,
        "a complete segment of the other cluster"
    );
    assert_ne!(info.system_id, mine.system_id);
    drop(other);
    let got = names(&archive);
    assert!(got.contains("00000002.history"), "{got:?}");
    assert!(got.iter().any(|n| n.ends_with(".partial")), "{got:?}");
    assert!(got.iter().any(|n| n.ends_with(".backup")), "{got:?}");
    eprintln!(
        "fixture archive ({:.1}s): {got:?}",
        t0.elapsed().as_secs_f64()
    );
    Some(Fixture {
        major,
        archive,
        foreign,
        foreign_name,
        seg_size: WalSegSize::new(1 << 20).unwrap(),
    })
}

/// A private copy of the fixture archive.
fn archive_copy(tag: &str) -> Option<(&'static Fixture, PathBuf)> {
    let f = fixture()?;
    let dir = scratch_dir("archive-test", tag).join("archive");
    copy_dir(&f.archive, &dir);
    Some((f, dir))
}

fn verify_json(dir: &Path) -> (i32, Value) {
    let o = pgwal(&["archive", "verify", "--archive", s(dir), "--format", "json"]);
    let v: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    (code(&o), v)
}

fn problem_codes(v: &Value, severity: &str) -> Vec<(String, String)> {
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["severity"] == severity)
        .map(|p| {
            (
                p["code"].as_str().unwrap().to_owned(),
                p["file"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Timeline-1 segments of the fixture, complete, in order.
fn tli1_segments(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.len() == 24 && n.starts_with("00000001"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// verify

#[test]
fn verify_passes_clean_archive_with_timeline_switch() {
    let Some((f, dir)) = archive_copy("verify-clean") else {
        return;
    };
    let (rc, v) = verify_json(&dir);
    assert_eq!(rc, 0, "{v:#}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["postgresql_major"], f.major.number());
    let tls = v["timelines"].as_array().unwrap();
    assert_eq!(tls.len(), 2, "{v:#}");
    assert_eq!(tls[1]["timeline"], 2);
    assert_eq!(tls[1]["parent"], 1);
    assert!(tls[1]["end_lsn"].is_string());
    assert!(tls[0]["records"].as_u64().unwrap() > 1000);
    assert_eq!(problem_codes(&v, "error"), vec![]);
    // The standby archived timeline 1's last segment as .partial at promotion: expected.
    assert!(
        problem_codes(&v, "info")
            .iter()
            .any(|(c, _)| c == "partial_at_switch"),
        "{v:#}"
    );

    let text_out = pgwal(&["archive", "verify", "--archive", s(&dir)]);
    assert_eq!(code(&text_out), 0, "{}", text(&text_out));
    assert!(
        String::from_utf8_lossy(&text_out.stdout).contains("verify: OK"),
        "{}",
        text(&text_out)
    );

    let st = pgwal(&[
        "archive",
        "status",
        "--archive",
        s(&dir),
        "--format",
        "json",
    ]);
    assert_eq!(code(&st), 0, "{}", text(&st));
    let st: Value = serde_json::from_slice(&st.stdout).unwrap();
    let tls = st["timelines"].as_array().unwrap();
    assert_eq!(tls.len(), 2);
    assert_eq!(tls[1]["newest_lsn"], v["timelines"][1]["end_lsn"], "{st:#}");
    assert_eq!(tls[0]["partial_files"], 1);
    assert_eq!(
        tls[0]["total_bytes"].as_u64().unwrap(),
        tls[0]["stored_bytes"].as_u64().unwrap()
    );
    let status_text = pgwal(&["archive", "status", "--archive", s(&dir)]);
    assert_eq!(code(&status_text), 0, "{}", text(&status_text));
    assert!(String::from_utf8_lossy(&status_text.stdout).contains("timeline 2:"));
}

#[test]
fn verify_catches_deleted_segment() {
    let Some((_, dir)) = archive_copy("verify-deleted") else {
        return;
    };
    let segs = tli1_segments(&dir);
    let victim = &segs[segs.len() / 2];
    fs::remove_file(dir.join(victim)).unwrap();
    let (rc, v) = verify_json(&dir);
    assert_eq!(rc, 1, "{v:#}");
    assert!(
        problem_codes(&v, "error").contains(&("missing_segment".into(), victim.clone())),
        "{v:#}"
    );
    let p = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "missing_segment")
        .unwrap();
    assert!(p["lsn"].is_string() && p["end_lsn"].is_string(), "{p:#}");
}

#[test]
fn verify_catches_truncated_segment() {
    let Some((f, dir)) = archive_copy("verify-truncated") else {
        return;
    };
    let segs = tli1_segments(&dir);
    let victim = &segs[segs.len() / 2];
    let file = fs::OpenOptions::new()
        .write(true)
        .open(dir.join(victim))
        .unwrap();
    file.set_len(f.seg_size.bytes() / 2 + 100).unwrap();
    let (rc, v) = verify_json(&dir);
    assert_eq!(rc, 1, "{v:#}");
    assert!(
        problem_codes(&v, "error").contains(&("truncated_segment".into(), victim.clone())),
        "{v:#}"
    );
}

#[test]
fn verify_catches_flipped_byte_in_record() {
    let Some((f, dir)) = archive_copy("verify-flipped") else {
        return;
    };
    let segs = tli1_segments(&dir);
    let victim = &segs[segs.len() / 2];
    let path = dir.join(victim);
    let mut bytes = fs::read(&path).unwrap();
    let seg_start = pgwal::WalFileName::parse(victim)
        .unwrap()
        .segno(f.seg_size)
        .unwrap()
        .start_lsn(f.seg_size)
        .unwrap();
    // A record on a later page, with 64 bytes on its page.
    let mut dec = WalDecoder::new(DecoderConfig::new(f.seg_size), seg_start);
    let mut input: &[u8] = &bytes;
    let mut target = None;
    while let Ok(Some(r)) = dec.decode(&mut input) {
        let off = r.lsn().0 - seg_start.0;
        if off > 16384 && r.total_len() >= 64 && r.lsn().page_offset(8192) + 64 < 8192 {
            target = Some(r.lsn());
            break;
        }
    }
    let target: Lsn = target.expect("a record to damage");
    let off = (target.0 - seg_start.0) as usize + 40;
    bytes[off] ^= 0x5A;
    fs::write(&path, &bytes).unwrap();
    let (rc, v) = verify_json(&dir);
    assert_eq!(rc, 1, "{v:#}");
    let p = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "corrupt_wal")
        .unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(p["file"], victim.as_str());
    assert_eq!(p["lsn"], target.to_string());
    assert!(p["message"].as_str().unwrap().contains("checksum"), "{p:#}");
}

#[test]
fn verify_catches_segment_of_another_cluster() {
    let Some((f, dir)) = archive_copy("verify-foreign") else {
        return;
    };
    let name = f.foreign_name.as_str();
    fs::copy(&f.foreign, dir.join(name)).unwrap();
    let (rc, v) = verify_json(&dir);
    assert_eq!(rc, 1, "{v:#}");
    assert!(
        problem_codes(&v, "error").contains(&("foreign_system".into(), name.into())),
        "{v:#}"
    );

    // push refuses it too (the archive's other segments tell the system identifier).
    let fresh = scratch_dir("archive-test", "push-foreign");
    let src = fresh.join(name);
    fs::copy(&f.foreign, &src).unwrap();
    fs::remove_file(dir.join(name)).unwrap();
    let o = pgwal(&["archive", "push", s(&src), "--archive", s(&dir)]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("different database system"),
        "{}",
        text(&o)
    );
    assert!(!dir.join(name).exists());
}

#[test]
fn verify_catches_missing_history_file() {
    let Some((_, dir)) = archive_copy("verify-history") else {
        return;
    };
    fs::remove_file(dir.join("00000002.history")).unwrap();
    let (rc, v) = verify_json(&dir);
    assert_eq!(rc, 1, "{v:#}");
    assert!(
        problem_codes(&v, "error")
            .iter()
            .any(|(c, f)| c == "missing_history" && f == "00000002.history"),
        "{v:#}"
    );
}

#[test]
fn verify_catches_wrong_switch_point_and_leftover_partial() {
    let Some((_, dir)) = archive_copy("verify-switch") else {
        return;
    };
    // Move the switch point of timeline 2 by 8 bytes.
    let h = fs::read_to_string(dir.join("00000002.history")).unwrap();
    let mut parts = h.trim_end().splitn(3, '\t');
    let (tli, sp, rest) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap_or(""),
    );
    let sp: Lsn = sp.parse().unwrap();
    fs::write(
        dir.join("00000002.history"),
        format!("{tli}\t{}\t{rest}\n", Lsn(sp.0 + 8)),
    )
    .unwrap();
    // And leave a .partial next to a complete segment.
    let segs = tli1_segments(&dir);
    fs::copy(dir.join(&segs[1]), dir.join(format!("{}.partial", segs[1]))).unwrap();
    let (rc, v) = verify_json(&dir);
    assert_eq!(rc, 1, "{v:#}");
    let errs = problem_codes(&v, "error");
    assert!(
        errs.iter().any(|(c, _)| c == "switch_point_mismatch"),
        "{v:#}"
    );
    assert!(
        errs.contains(&("partial_leftover".into(), format!("{}.partial", segs[1]))),
        "{v:#}"
    );
}

#[test]
fn compressed_archive_verifies_and_restores() {
    let Some(f) = fixture() else { return };
    for method in ["gzip", "lz4", "zstd:3"] {
        let dir = scratch_dir(
            "archive-test",
            &format!("recompress-{}", method.replace(':', "")),
        );
        for n in names(&f.archive) {
            let o = pgwal(&[
                "archive",
                "push",
                s(&f.archive.join(&n)),
                "--archive",
                s(&dir),
                "--compress",
                method,
            ]);
            assert_eq!(code(&o), 0, "{n}: {}", text(&o));
        }
        let got = names(&dir);
        let suffix = match method {
            "gzip" => ".gz",
            "lz4" => ".lz4",
            _ => ".zst",
        };
        assert!(
            got.contains("00000002.history"),
            "history files stay uncompressed: {got:?}"
        );
        assert!(
            got.iter()
                .filter(|n| n.len() == 24 + suffix.len())
                .all(|n| n.ends_with(suffix)),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|n| n.ends_with(&format!("{suffix}.partial"))),
            "{got:?}"
        );
        let (rc, v) = verify_json(&dir);
        assert_eq!(rc, 0, "{method}: {v:#}");
        let st = pgwal(&[
            "archive",
            "status",
            "--archive",
            s(&dir),
            "--format",
            "json",
        ]);
        let st: Value = serde_json::from_slice(&st.stdout).unwrap();
        let t1 = &st["timelines"][0];
        assert!(
            t1["stored_bytes"].as_u64().unwrap() < t1["total_bytes"].as_u64().unwrap(),
            "{st:#}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// push / fetch

#[test]
fn push_fetch_round_trip_every_compression() {
    let Some(f) = fixture() else { return };
    let segs = tli1_segments(&f.archive);
    let partial = names(&f.archive)
        .into_iter()
        .find(|n| n.ends_with(".partial"))
        .unwrap();
    for method in ["none", "gzip", "gzip:9", "lz4", "zstd", "zstd:19"] {
        let work = scratch_dir(
            "archive-test",
            &format!("roundtrip-{}", method.replace(':', "")),
        );
        let dir = work.join("archive");
        fs::create_dir(&dir).unwrap();
        let mut pushed = vec![
            segs[0].clone(),
            segs[1].clone(),
            "00000002.history".to_owned(),
            partial.clone(),
        ];
        pushed.extend(
            names(&f.archive)
                .into_iter()
                .filter(|n| n.ends_with(".backup")),
        );
        for n in &pushed {
            let o = pgwal(&[
                "archive",
                "push",
                s(&f.archive.join(n)),
                "--archive",
                s(&dir),
                "--compress",
                method,
                "-v",
            ]);
            assert_eq!(code(&o), 0, "{method} {n}: {}", text(&o));
        }
        let leftovers: Vec<String> = names(&dir)
            .into_iter()
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        for n in &pushed {
            let want = fs::read(f.archive.join(n)).unwrap();
            let dest = work.join("RECOVERYXLOG");
            let o = pgwal(&["archive", "fetch", n, s(&dest), "--archive", s(&dir)]);
            assert_eq!(code(&o), 0, "{method} {n}: {}", text(&o));
            assert!(
                fs::read(&dest).unwrap() == want,
                "{method} {n}: content differs"
            );
            fs::remove_file(&dest).unwrap();
        }
        // The .partial is served for its segment name only with --partial.
        let seg_of_partial = partial.trim_end_matches(".partial");
        let dest = work.join("RECOVERYXLOG");
        let o = pgwal(&[
            "archive",
            "fetch",
            seg_of_partial,
            s(&dest),
            "--archive",
            s(&dir),
        ]);
        assert_eq!(code(&o), 1, "{}", text(&o));
        let o = pgwal(&[
            "archive",
            "fetch",
            seg_of_partial,
            s(&dest),
            "--archive",
            s(&dir),
            "--partial",
        ]);
        assert_eq!(code(&o), 0, "{}", text(&o));
        assert!(fs::read(&dest).unwrap() == fs::read(f.archive.join(&partial)).unwrap());
        // Not archived: exit 1, message on stderr, nothing written.
        fs::remove_file(&dest).unwrap();
        let o = pgwal(&["archive", "fetch", &segs[2], s(&dest), "--archive", s(&dir)]);
        assert_eq!(code(&o), 1, "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("not in archive"),
            "{}",
            text(&o)
        );
        assert!(!dest.exists());
        let o = pgwal(&[
            "archive",
            "fetch",
            "00000003.history",
            s(&dest),
            "--archive",
            s(&dir),
            "-q",
        ]);
        assert_eq!(code(&o), 1, "{}", text(&o));
        assert!(o.stderr.is_empty());

        // Idempotent: the same file again succeeds without writing.
        let stored: Vec<String> = names(&dir)
            .into_iter()
            .filter(|n| n.starts_with(&segs[0]))
            .collect();
        assert_eq!(stored.len(), 1, "{stored:?}");
        let before = fs::read(dir.join(&stored[0])).unwrap();
        let o = pgwal(&[
            "archive",
            "push",
            s(&f.archive.join(&segs[0])),
            "--archive",
            s(&dir),
            "--compress",
            method,
        ]);
        assert_eq!(code(&o), 0, "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("already archived"),
            "{}",
            text(&o)
        );
        // Even with another compression: the content is compared, not the bytes stored.
        let o = pgwal(&[
            "archive",
            "push",
            s(&f.archive.join(&segs[0])),
            "--archive",
            s(&dir),
            "--compress",
            "lz4",
        ]);
        assert_eq!(code(&o), 0, "{}", text(&o));
        assert_eq!(
            names(&dir)
                .into_iter()
                .filter(|n| n.starts_with(&segs[0]))
                .count(),
            1
        );

        // Conflict: a different segment under the same name fails and overwrites nothing.
        let mut other = fs::read(f.archive.join(&segs[0])).unwrap();
        other[300_000] ^= 1;
        let src = work.join(&segs[0]);
        fs::write(&src, &other).unwrap();
        let o = pgwal(&[
            "archive",
            "push",
            s(&src),
            "--archive",
            s(&dir),
            "--compress",
            method,
        ]);
        assert_eq!(code(&o), 1, "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("different content"),
            "{}",
            text(&o)
        );
        assert!(fs::read(dir.join(&stored[0])).unwrap() == before);
        assert_eq!(
            names(&dir)
                .into_iter()
                .filter(|n| n.starts_with('.'))
                .count(),
            0
        );

        // A damaged archived file is a real error: exit 2 (not "not found").
        let victim = dir.join(&stored[0]);
        if method == "none" {
            let mut b = before.clone();
            b[8..16].copy_from_slice(&[0xFF; 8]); // page address
            fs::write(&victim, b).unwrap();
        } else {
            fs::write(&victim, &before[..before.len() / 2]).unwrap();
        }
        let o = pgwal(&["archive", "fetch", &segs[0], s(&dest), "--archive", s(&dir)]);
        assert_eq!(code(&o), 2, "{method}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("damaged"),
            "{}",
            text(&o)
        );
        assert!(!dest.exists());
        let o = pgwal(&[
            "archive",
            "fetch",
            &segs[0],
            s(&dest),
            "--archive",
            s(&dir),
            "--error-exit-code",
            "200",
        ]);
        assert_eq!(code(&o), 200, "{}", text(&o));
    }
}

#[test]
fn push_refuses_what_is_not_wal_of_this_cluster() {
    let Some(f) = fixture() else { return };
    let segs = tli1_segments(&f.archive);
    let work = scratch_dir("archive-test", "push-refuses");
    let dir = work.join("archive");
    fs::create_dir(&dir).unwrap();
    let src_dir = work.join("src");
    fs::create_dir(&src_dir).unwrap();
    let push = |src: &Path, extra: &[&str]| {
        let mut args = vec!["archive", "push", s(src), "--archive", s(&dir)];
        args.extend_from_slice(extra);
        pgwal(&args)
    };
    // Zeros under a segment name.
    let zeros = src_dir.join(&segs[3]);
    fs::write(&zeros, vec![0u8; 1 << 20]).unwrap();
    let o = push(&zeros, &[]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a valid WAL segment"),
        "{}",
        text(&o)
    );
    // A real segment under another segment's name.
    let misnamed = src_dir.join(&segs[4]);
    fs::copy(f.archive.join(&segs[3]), &misnamed).unwrap();
    let o = push(&misnamed, &[]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("page header has address"),
        "{}",
        text(&o)
    );
    // Short.
    let short = src_dir.join(&segs[5]);
    fs::write(
        &short,
        &fs::read(f.archive.join(&segs[5])).unwrap()[..100_000],
    )
    .unwrap();
    let o = push(&short, &[]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    // Not a WAL file name.
    let junk = src_dir.join("postmaster.pid");
    fs::write(&junk, "1").unwrap();
    assert_eq!(code(&push(&junk, &[])), 1);
    // --system-id.
    let good = f.archive.join(&segs[3]);
    let o = push(&good, &["--system-id", "42"]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--system-id"),
        "{}",
        text(&o)
    );
    // Missing archive directory.
    let o = pgwal(&[
        "archive",
        "push",
        s(&good),
        "--archive",
        s(&work.join("nope")),
    ]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));
    // The good one is accepted, then the foreign one is refused.
    assert_eq!(code(&push(&good, &[])), 0);
    let foreign = src_dir.join(&f.foreign_name);
    fs::copy(&f.foreign, &foreign).unwrap();
    assert_eq!(code(&push(&foreign, &[])), 1);
    // A broken history file.
    let h = src_dir.join("00000005.history");
    fs::write(&h, "garbage\n").unwrap();
    assert_eq!(code(&push(&h, &[])), 1);
}

// ---------------------------------------------------------------------------------------------
// cleanup

fn pg_archivecleanups() -> Vec<(PathBuf, u32)> {
    let mut v = Vec::new();
    for (p, major) in [
        (
            pgwal_testkit::pg_dir().join("server/19/bin/pg_archivecleanup"),
            19,
        ),
        (pgwal_testkit::tools_dir().join("pg_archivecleanup"), 18),
        (
            pgwal_testkit::pg_dir().join("server/18/bin/pg_archivecleanup"),
            18,
        ),
        (
            pgwal_testkit::pg_dir().join("server/15/bin/pg_archivecleanup"),
            15,
        ),
        (
            PathBuf::from("/usr/lib/postgresql/15/bin/pg_archivecleanup"),
            15,
        ),
    ] {
        if p.is_file() && !v.iter().any(|(_, m)| *m == major) {
            v.push((p, major));
        }
    }
    v
}

const CLEANUP_NAMES: &[&str] = &[
    "000000010000000000000001",
    "000000010000000000000002",
    "000000010000000000000003",
    "000000010000000000000004",
    "000000010000000000000005",
    "000000010000000000000006",
    "000000010000000000000007",
    "000000010000000000000008",
    "000000010000000000000009",
    "00000001000000000000000A",
    "00000001000000000000000F",
    "0000000100000001000000A0",
    "000000020000000000000005",
    "000000020000000000000006",
    "000000020000000000000009",
    "00000002000000000000000A",
    "000000030000000000000001",
    "000000010000000000000004.partial",
    "000000010000000000000008.partial",
    "000000020000000000000009.partial",
    "000000010000000000000003.00000028.backup",
    "000000010000000000000008.000000D0.backup",
    "000000010000000000000002.gz",
    "000000010000000000000009.gz",
    "000000010000000000000003.gz.partial",
    "00000002.history",
    "00000001.history",
    "0000000100000000000000ab",
    "00000001000000000000000g",
    "0000000100000000000000010",
    "00000001000000000000000",
    "README",
    ".hidden",
];

fn cleanup_dir(tag: &str, with_compressed: bool) -> PathBuf {
    let dir = scratch_dir("archive-test", tag).join("archive");
    fs::create_dir_all(&dir).unwrap();
    for n in CLEANUP_NAMES {
        if !with_compressed && (n.contains(".gz")) {
            continue;
        }
        fs::write(dir.join(n), b"x").unwrap();
    }
    dir
}

fn sorted_lines(o: &Output) -> Vec<String> {
    let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

#[test]
fn cleanup_removes_exactly_what_pg_archivecleanup_removes() {
    let tools = pg_archivecleanups();
    assert!(!tools.is_empty(), "no pg_archivecleanup to compare with");
    let cutoffs = [
        "000000010000000000000008",
        "000000020000000000000008",
        "000000030000000000000006",
        "000000010000000000000008.partial",
        "000000010000000000000008.000000D0.backup",
        "000000010000000000000003.00000028.backup",
        "00000001000000000000000A",
        "000000010000000000000001",
        "0000000100000001000000A0",
        "000000010000000000000009.gz",
    ];
    let mut compared = 0;
    for (tool, major) in &tools {
        let mut option_sets: Vec<Vec<&str>> = vec![vec![], vec!["-x", ".gz"]];
        if *major >= 17 {
            option_sets.push(vec!["-b"]);
            option_sets.push(vec!["-b", "-x", ".gz"]);
        }
        for with_compressed in [false, true] {
            let dir = cleanup_dir(
                &format!("cleanup-{major}-{with_compressed}"),
                with_compressed,
            );
            for opts in &option_sets {
                for cutoff in cutoffs {
                    let mut pg = Command::new(tool);
                    pg.arg("-n").args(opts).arg(s(&dir)).arg(cutoff);
                    let pg = pg.output().unwrap();
                    // --exact always matches; the default (which also knows compressed segment
                    // names) matches when there are none.
                    let mut modes = vec![vec!["--exact"]];
                    if !with_compressed {
                        modes.push(vec![]);
                    }
                    for mode in modes {
                        let mut args = vec!["archive", "cleanup", "-n"];
                        args.extend_from_slice(opts);
                        args.extend_from_slice(&mode);
                        args.extend_from_slice(&[s(&dir), cutoff]);
                        let ours = pgwal(&args);
                        assert_eq!(
                            code(&ours),
                            code(&pg),
                            "{major} {opts:?} {mode:?} {cutoff}\npg: {}\nours: {}",
                            text(&pg),
                            text(&ours)
                        );
                        assert_eq!(
                            sorted_lines(&ours),
                            sorted_lines(&pg),
                            "{major} {opts:?} {mode:?} {cutoff} compressed={with_compressed}"
                        );
                        compared += 1;
                    }
                }
            }
            // Real removal, not just a dry run.
            for cutoff in [
                "000000010000000000000008",
                "000000010000000000000003.00000028.backup",
            ] {
                let a = scratch_dir(
                    "archive-test",
                    &format!("cleanup-real-pg-{major}-{with_compressed}"),
                )
                .join("a");
                let b = scratch_dir(
                    "archive-test",
                    &format!("cleanup-real-ours-{major}-{with_compressed}"),
                )
                .join("b");
                copy_dir(&dir, &a);
                copy_dir(&dir, &b);
                let pg = Command::new(tool).arg(s(&a)).arg(cutoff).output().unwrap();
                assert!(pg.status.success(), "{}", text(&pg));
                let ours = pgwal(&["archive", "cleanup", "--exact", s(&b), cutoff]);
                assert!(ours.status.success(), "{}", text(&ours));
                assert_eq!(names(&a), names(&b), "{major} {cutoff}");
                assert!(names(&b).len() < CLEANUP_NAMES.len());
            }
        }
        // Errors: bad file name and missing directory are exit 2 for both.
        let dir = cleanup_dir(&format!("cleanup-errors-{major}"), false);
        for (d, cutoff) in [
            (s(&dir), "junk"),
            (s(&dir), "000000010000000000000008.gz"),
            ("/nonexistent/dir", "000000010000000000000008"),
        ] {
            let pg = Command::new(tool).arg(d).arg(cutoff).output().unwrap();
            let ours = pgwal(&["archive", "cleanup", d, cutoff]);
            assert_eq!(
                code(&ours),
                code(&pg),
                "{d} {cutoff}: {} / {}",
                text(&pg),
                text(&ours)
            );
            assert_eq!(code(&ours), 2);
        }
        assert_eq!(
            names(&dir).len(),
            CLEANUP_NAMES.iter().filter(|n| !n.contains(".gz")).count()
        );
    }
    assert!(compared > 50);

    // Without --exact, compressed segments are cleaned like plain ones.
    let dir = cleanup_dir("cleanup-compressed", true);
    let o = pgwal(&["archive", "cleanup", s(&dir), "000000010000000000000008"]);
    assert!(o.status.success(), "{}", text(&o));
    let left = names(&dir);
    for gone in [
        "000000010000000000000002.gz",
        "000000010000000000000003.gz.partial",
        "000000010000000000000007",
    ] {
        assert!(!left.contains(gone), "{gone}: {left:?}");
    }
    for kept in [
        "000000010000000000000009.gz",
        "00000002.history",
        "000000010000000000000008.partial",
        "000000010000000000000003.00000028.backup",
    ] {
        assert!(left.contains(kept), "{kept}: {left:?}");
    }
}

#[test]
fn cleanup_keep_history_needs_keeps_other_branches() {
    let Some(f) = fixture() else { return };
    let seg = fs::read(f.archive.join(&tli1_segments(&f.archive)[0])).unwrap();
    let dir = scratch_dir("archive-test", "cleanup-history").join("archive");
    fs::create_dir_all(&dir).unwrap();
    // Timeline 1 runs to segment 0x10; timeline 2 forked from it in segment 5 and ran to 8.
    let mut all = Vec::new();
    for n in 1..=0x10u32 {
        all.push(format!("00000001{:08X}{n:08X}", 0));
    }
    for n in 5..=8u32 {
        all.push(format!("00000002{:08X}{n:08X}", 0));
    }
    all.push("000000010000000000000005.partial".into());
    for n in &all {
        fs::write(dir.join(n), &seg).unwrap(); // any real segment: it tells the segment size
    }
    fs::write(
        dir.join("00000002.history"),
        "1\t0/580000\tno recovery target specified\n",
    )
    .unwrap();

    // Oldest kept on timeline 1 past the fork: timeline 2's branch does not pass through it.
    let o = pgwal(&[
        "archive",
        "cleanup",
        "-n",
        "--keep-history-needs",
        s(&dir),
        "00000001000000000000000C",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let removed: BTreeSet<String> = sorted_lines(&o)
        .into_iter()
        .map(|l| {
            Path::new(&l)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let want: BTreeSet<String> = (5..=0xBu32)
        .map(|n| format!("0000000100000000{n:08X}"))
        .chain(["000000010000000000000005.partial".to_owned()])
        .collect();
    assert_eq!(removed, want, "{}", text(&o));
    // Plain rules remove timeline 2's branch and the early timeline-1 segments as well.
    let o = pgwal(&[
        "archive",
        "cleanup",
        "-n",
        s(&dir),
        "00000001000000000000000C",
    ]);
    assert_eq!(sorted_lines(&o).len(), 11 + 4 + 1, "{}", text(&o));

    // Oldest kept on timeline 2: its chain passes through it; nothing extra is kept.
    let a = pgwal(&[
        "archive",
        "cleanup",
        "-n",
        "--keep-history-needs",
        s(&dir),
        "000000020000000000000007",
    ]);
    let b = pgwal(&[
        "archive",
        "cleanup",
        "-n",
        s(&dir),
        "000000020000000000000007",
    ]);
    assert!(a.status.success() && b.status.success());
    assert_eq!(sorted_lines(&a), sorted_lines(&b));
    // Really remove.
    let o = pgwal(&[
        "archive",
        "cleanup",
        "--keep-history-needs",
        s(&dir),
        "00000001000000000000000C",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(dir.join("000000010000000000000004").exists());
    assert!(dir.join("000000020000000000000005").exists());
    assert!(!dir.join("000000010000000000000006").exists());
}

// ---------------------------------------------------------------------------------------------
// A standby that recovers only from the archive.

fn standby_from_archive(major: Major, compress: &str) {
    if require_major(major).is_none() {
        return;
    }
    let t0 = Instant::now();
    let work = scratch_dir(
        "archive-test",
        &format!("standby-{}-{}", major.number(), compress.replace(':', "")),
    );
    let archive = work.join("archive");
    fs::create_dir(&archive).unwrap();
    let primary = Cluster::builder(major)
        .wal_segsize_mb(1)
        .set("archive_mode", "on")
        .set("archive_command", push_command(&archive, compress))
        .init()
        .unwrap();
    give_to_owner_of(&work, primary.data_dir());
    give_to_owner_of(&archive, primary.data_dir());
    primary.start().unwrap();
    primary.pgbench_init(1).unwrap();

    // A base backup (pg_basebackup -R), then cut the standby off from its primary: all later
    // WAL must come through restore_command.
    let standby = primary.create_standby().unwrap();
    standby.stop_fast().unwrap();
    let auto = standby.data_dir().join("postgresql.auto.conf");
    let conf = fs::read_to_string(&auto).unwrap();
    let kept: String = conf
        .lines()
        .filter(|l| !l.starts_with("primary_conninfo") && !l.starts_with("primary_slot_name"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&auto, kept).unwrap();
    standby
        .set_config(
            "restore_command",
            format!("{BIN} archive fetch %f %p --archive {}", s(&archive)),
        )
        .unwrap();
    standby.set_config("archive_mode", "off").unwrap();

    primary.pgbench_run(4, PgbenchLength::Seconds(8)).unwrap();
    let end = switch_wal(&primary);
    wait_archived(&primary);

    standby.start().unwrap();
    standby.wait_for_replay(end).unwrap();
    let receivers = standby
        .scalar_blocking("SELECT count(*) FROM pg_stat_wal_receiver")
        .unwrap();
    assert_eq!(receivers, "0", "the standby must not stream");
    let checksum = "SELECT md5(string_agg(t::text, ',' ORDER BY aid)) FROM pgbench_accounts t";
    let history = "SELECT count(*), coalesce(sum(delta), 0) FROM pgbench_history";
    assert_eq!(
        standby.scalar_blocking(checksum).unwrap(),
        primary.scalar_blocking(checksum).unwrap()
    );
    assert_eq!(
        standby.query_blocking(history).unwrap(),
        primary.query_blocking(history).unwrap()
    );
    let replayed = standby
        .scalar_blocking("SELECT pg_last_wal_replay_lsn()")
        .unwrap();
    assert!(pgwal_testkit::parse_lsn(&replayed).unwrap() >= end);
    assert!(
        standby.server_log_tail(2000).contains("restored log file"),
        "{}",
        standby.server_log_tail(30)
    );

    // What was archived under load verifies.
    let (rc, v) = verify_json(&archive);
    assert_eq!(rc, 0, "{v:#}");
    let segments = v["segments_checked"].as_u64().unwrap();
    assert!(segments >= 10, "{v:#}");
    let suffix = match compress.split(':').next().unwrap() {
        "gzip" => ".gz",
        "lz4" => ".lz4",
        "zstd" => ".zst",
        _ => "",
    };
    assert!(names(&archive)
        .iter()
        .filter(|n| n.len() > 20 && !n.contains(".backup"))
        .all(|n| n.ends_with(suffix)));
    eprintln!(
        "standby from {compress} archive on {major}: {segments} segments, {:.1}s",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn standby_replays_from_plain_archive() {
    standby_from_archive(Major::V15, "none");
}

#[test]
fn standby_replays_from_gzip_archive() {
    standby_from_archive(Major::V18, "gzip");
}

#[test]
fn standby_replays_from_lz4_archive() {
    standby_from_archive(Major::V16, "lz4");
}

#[test]
fn standby_replays_from_zstd_archive() {
    standby_from_archive(Major::V17, "zstd");
}

#[test]
fn standby_replays_from_zstd_archive_19() {
    standby_from_archive(Major::V19, "zstd");
}
