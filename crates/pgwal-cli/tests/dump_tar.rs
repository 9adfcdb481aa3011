//! `pgwal dump -p ARCHIVE.tar[.gz|.lz4|.zst]`: WAL read from inside a tar archive, as
//! pg_waldump 19 reads it. For 19 the output must equal pg_waldump 19's on the same archive,
//! byte for byte, and its argument errors must be pg_waldump's; for 13 and 16 (which no
//! tar-reading pg_waldump exists for) it must equal pgwal's own output on the directory, which
//! `dump_differential` compares with their reference pg_waldump.

// Test helpers outside #[test] functions: failing loudly is the point.
#![allow(clippy::unwrap_used)]

mod support;
use support::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use pgwal_testkit::{reference_waldump, Major};

/// The sample's first record (`first_lsn:` in its meta.txt).
fn first_lsn(dir: &Path) -> String {
    meta_lsn(dir, "first_lsn: ")
}

/// The end of the sample's last segment (`last_lsn:` in its meta.txt): without `-e` pg_waldump
/// ends with an error (no next segment in the archive) and prints no statistics.
fn last_lsn(dir: &Path) -> String {
    meta_lsn(dir, "last_lsn: ")
}

fn meta_lsn(dir: &Path, key: &str) -> String {
    let meta = std::fs::read_to_string(dir.join("meta.txt")).unwrap();
    meta.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .to_string()
}

fn run(program: &Path, pre: &[&str], args: &[&str]) -> Output {
    Command::new(program)
        .args(pre)
        .args(args)
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

fn pgwal() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pgwal"))
}

/// Runs a shell command line (tar and the compressors are the real command-line tools).
fn sh(line: &str) {
    let st = Command::new("sh").arg("-c").arg(line).status().unwrap();
    assert!(st.success(), "{line}");
}

/// Archives of a sample's segments: `pg_wal.tar` (members at the top, as `pg_basebackup -Ft`
/// writes pg_wal.tar), `base.tar` (under `pg_wal/`, with a non-WAL member first), and
/// `pg_wal.tar` compressed with gzip, lz4 and zstd.
fn archives(sample: &str, tmp: &Path) -> Vec<PathBuf> {
    let dir = testdata(sample);
    let names = segment_names(&dir).join(" ");
    let d = dir.display();
    let t = tmp.display();
    sh(&format!("tar -cf {t}/pg_wal.tar -C {d} {names}"));
    sh(&format!(
        "mkdir -p {t}/base/pg_wal && echo 19 > {t}/base/PG_VERSION && \
         cd {d} && cp {names} {t}/base/pg_wal/ && tar -cf {t}/base.tar -C {t}/base PG_VERSION pg_wal"
    ));
    sh(&format!("gzip -c {t}/pg_wal.tar > {t}/pg_wal.tar.gz"));
    sh(&format!("lz4 -q -c {t}/pg_wal.tar > {t}/pg_wal.tar.lz4"));
    sh(&format!("zstd -q -c {t}/pg_wal.tar > {t}/pg_wal.tar.zst"));
    [
        "pg_wal.tar",
        "base.tar",
        "pg_wal.tar.gz",
        "pg_wal.tar.lz4",
        "pg_wal.tar.zst",
    ]
    .iter()
    .map(|n| tmp.join(n))
    .collect()
}

const OPTION_SETS: &[&[&str]] = &[&[], &["-b"], &["--stats=record"], &["-j", "2"]];

#[test]
fn tar_archives_of_19_dump_like_pg_waldump_19() {
    if pgwal_testkit::require_major(Major::V19).is_none() {
        return;
    }
    let waldump = reference_waldump(Major::V19).expect("reference pg_waldump 19");
    let tmp = tempfile::tempdir().unwrap();
    let (start, end) = (first_lsn(&testdata("pg19")), last_lsn(&testdata("pg19")));
    for archive in archives("pg19", tmp.path()) {
        let p = archive.display().to_string();
        for opts in OPTION_SETS {
            // pg_waldump has no -j: its output is the one without it.
            let ref_opts: Vec<&str> = opts
                .iter()
                .copied()
                .filter(|o| !o.starts_with("-j") && *o != "2")
                .collect();
            let mut args = vec!["-p", &p, "-s", &start, "-e", &end];
            let reference = run(&waldump, &[], &[&args[..], &ref_opts[..]].concat());
            args.extend(opts.iter().copied());
            let ours = run(&pgwal(), &["dump"], &args);
            assert!(
                reference.stdout.len() > 1_000,
                "{p} {ref_opts:?}: pg_waldump printed little: {}",
                String::from_utf8_lossy(&reference.stderr)
            );
            assert!(
                reference.stdout == ours.stdout,
                "{p} {opts:?}: stdout differs from pg_waldump 19's\n{}",
                String::from_utf8_lossy(&ours.stderr)
            );
            assert_eq!(ours.status.code(), Some(0), "{p} {opts:?}");
        }
    }
}

#[test]
fn tar_archives_of_13_and_16_dump_like_their_directories() {
    for sample in ["pg13", "pg16"] {
        let dir = testdata(sample);
        let d = dir.display().to_string();
        let start = first_lsn(&dir);
        let tmp = tempfile::tempdir().unwrap();
        for archive in archives(sample, tmp.path()) {
            let p = archive.display().to_string();
            for opts in OPTION_SETS {
                let want = run(
                    &pgwal(),
                    &["dump"],
                    &[&["-p", &d, "-s", &start][..], opts].concat(),
                );
                let got = run(
                    &pgwal(),
                    &["dump"],
                    &[&["-p", &p, "-s", &start][..], opts].concat(),
                );
                assert!(want.stdout.len() > 1_000);
                assert!(
                    want.stdout == got.stdout,
                    "{sample} {p} {opts:?}: differs from the directory's dump\n{}",
                    String::from_utf8_lossy(&got.stderr)
                );
            }
        }
    }
}

/// The argument errors pg_waldump 19 gives for tar input, with its wording; and archives that
/// are not tar or hold no WAL are refused naming the archive. No temporary directory is left.
#[test]
fn tar_argument_and_archive_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = archives("pg16", tmp.path()).remove(0);
    let p = tar.display().to_string();
    let seg = segment_names(&testdata("pg16"))[0].clone();
    let junk = tmp.path().join("junk.tar");
    std::fs::write(&junk, vec![7u8; 4096]).unwrap();
    let nowal = tmp.path().join("nowal.tar.gz");
    sh(&format!(
        "tar -czf {} -C {} base/PG_VERSION",
        nowal.display(),
        tmp.path().display()
    ));
    let tmpdir = tmp.path().join("t");
    std::fs::create_dir(&tmpdir).unwrap();
    let cases: Vec<(Vec<String>, String)> = vec![
        (vec!["-p".into(), p.clone()], "no start WAL location given".into()),
        (
            vec!["-p".into(), p.clone(), "-s".into(), "0/1000000".into(), seg.clone()],
            format!("unnecessary command-line arguments specified with tar archive (first is \"{seg}\")"),
        ),
        (
            vec!["-p".into(), p.clone(), "-s".into(), "0/1000000".into(), "-f".into()],
            "--follow is not supported when reading from a tar archive".into(),
        ),
        (
            vec!["-p".into(), junk.display().to_string(), "-s".into(), "0/1000000".into()],
            format!("input file does not appear to be a valid tar archive: \"{}\"", junk.display()),
        ),
        (
            vec!["-p".into(), nowal.display().to_string(), "-s".into(), "0/1000000".into()],
            format!("could not find WAL in archive \"{}\"", nowal.display()),
        ),
    ];
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = Command::new(pgwal())
            .arg("dump")
            .args(&args)
            .env("TMPDIR", &tmpdir)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(&want), "{args:?}: want {want:?}, got {err}");
    }
    assert_eq!(
        std::fs::read_dir(&tmpdir).unwrap().count(),
        0,
        "temporary directories left"
    );
}

/// Members out of order (the later segment first) and a duplicate of the first segment (zeros,
/// after the real one: the first member counts, and a warning names the second), in an
/// uncompressed and a gzip archive of 19's sample: the dump equals the directory's. `TMPDIR`
/// names no directory: nothing is written anywhere (tar input extracted the WAL there before).
#[test]
fn out_of_order_and_duplicate_members_are_read_in_place() {
    let dir = testdata("pg19");
    let names = segment_names(&dir);
    assert!(names.len() >= 2, "{names:?}");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let seg_len = std::fs::metadata(dir.join(&names[0])).unwrap().len() as usize;
    std::fs::create_dir_all(t.join("dup/pg_wal")).unwrap();
    std::fs::write(t.join("dup/pg_wal").join(&names[0]), vec![0u8; seg_len]).unwrap();
    let mut reversed = names.clone();
    reversed.reverse();
    sh(&format!(
        "tar -cf {t}/ooo.tar -C {d} {rev} -C {t}/dup pg_wal/{first} && gzip -c {t}/ooo.tar > {t}/ooo.tar.gz",
        t = t.display(),
        d = dir.display(),
        rev = reversed.join(" "),
        first = names[0],
    ));
    let start = first_lsn(&dir);
    let want = run(
        &pgwal(),
        &["dump"],
        &["-p", &dir.display().to_string(), "-s", &start],
    );
    assert!(want.stdout.len() > 1_000);
    for archive in [t.join("ooo.tar"), t.join("ooo.tar.gz")] {
        let p = archive.display().to_string();
        for opts in [&[][..], &["-j", "2"][..]] {
            let o = Command::new(pgwal())
                .args(["dump", "-p", &p, "-s", &start])
                .args(opts)
                .env("TZ", "UTC")
                .env("TMPDIR", t.join("missing"))
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                o.stdout == want.stdout,
                "{p} {opts:?}: differs from the directory's dump\n{err}"
            );
            assert_eq!(o.status.code(), Some(0), "{p} {opts:?}: {err}");
            let warning = format!(
                "warning: ignoring duplicate WAL \"pg_wal/{}\" found in archive \"{p}\"",
                names[0]
            );
            assert_eq!(err.matches(&warning).count(), 1, "{p} {opts:?}: {err}");
        }
    }
}

/// Drop-in (`pg_waldump` a link to pgwal) against pg_waldump 19 when the range needs a segment
/// the archive lacks: the same error line naming the WAL and the archive, and the same exit
/// status, for an uncompressed and a compressed archive.
#[test]
fn dropin_missing_segment_error_is_pg_waldump_19s() {
    if pgwal_testkit::require_major(Major::V19).is_none() {
        return;
    }
    let waldump = reference_waldump(Major::V19).expect("reference pg_waldump 19");
    let dir = testdata("pg19");
    let names = segment_names(&dir);
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // Only the last segment, and a start in the one before it.
    sh(&format!(
        "tar -cf {t}/one.tar -C {d} {last} && zstd -q -c {t}/one.tar > {t}/one.tar.zst",
        t = t.display(),
        d = dir.display(),
        last = names[names.len() - 1],
    ));
    let link = t.join("pg_waldump");
    std::os::unix::fs::symlink(pgwal(), &link).unwrap();
    let start = first_lsn(&dir);
    for archive in ["one.tar", "one.tar.zst"] {
        let p = t.join(archive).display().to_string();
        let args = ["-p", p.as_str(), "-s", start.as_str()];
        let reference = run(&waldump, &[], &args);
        let ours = run(&link, &[], &args);
        let last_line = |o: &Output| {
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .to_string()
        };
        assert!(
            last_line(&reference).contains(&format!("in archive \"{archive}\"")),
            "{}",
            last_line(&reference)
        );
        assert_eq!(last_line(&ours), last_line(&reference), "{archive}");
        assert_eq!(ours.status.code(), reference.status.code(), "{archive}");
        assert_eq!(ours.stdout, reference.stdout, "{archive}");
    }
}
