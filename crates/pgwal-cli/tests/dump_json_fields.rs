//! `--format json`: every `fields` value says what the record's own `desc` text says, for every
//! record type that has `fields`, on the WAL of every major in `testdata/wal`. (The fields were
//! once parsed apart from the descriptions, and a checkpoint's `next_xid`/`next_oid` came out
//! wrong for 13–16.)

#![allow(clippy::unwrap_used)]

mod support;
use support::*;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// Days from 1970-01-01 to the civil date `y-m-d` (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff] UTC` as microseconds since the Unix epoch.
fn parse_utc(ts: &str) -> i64 {
    let ts = ts.strip_suffix(" UTC").unwrap_or_else(|| panic!("{ts}"));
    let (date, time) = ts.split_once(' ').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    let micros: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().unwrap()
    };
    let secs = days_from_civil(d[0], d[1], d[2]) * 86_400 + t[0] * 3600 + t[1] * 60 + t[2];
    secs * 1_000_000 + micros
}

/// `X/Y` (hex, any padding) as a 64-bit LSN.
fn parse_lsn(t: &str) -> u64 {
    let (hi, lo) = t.split_once('/').unwrap_or_else(|| panic!("{t}"));
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

fn true_false(v: &Value) -> &'static str {
    if v.as_bool().unwrap() {
        "true"
    } else {
        "false"
    }
}

/// Checks one record; returns the kind checked.
fn check(major: u64, rtype: &str, desc: &str, f: &Value) -> &'static str {
    let new = major >= 16;
    let u = |k: &str| f[k].as_u64().unwrap_or_else(|| panic!("{k} in {f}"));
    let has = |s: String| {
        assert!(
            desc.contains(&s),
            "{rtype}: desc {desc:?} lacks {s:?} (fields {f})"
        )
    };
    match rtype {
        "CHECKPOINT_ONLINE" | "CHECKPOINT_SHUTDOWN" => {
            // The desc prints the redo LSN as that major's pg_waldump does (19 pads it);
            // JSON always as X/X: compare the values.
            let redo = desc
                .strip_prefix("redo ")
                .unwrap()
                .split(';')
                .next()
                .unwrap();
            assert_eq!(
                parse_lsn(redo),
                parse_lsn(f["redo"].as_str().unwrap()),
                "{desc} / {f}"
            );
            has(format!(
                "; tli {}; prev tli {}; fpw {};",
                u("timeline"),
                u("prev_timeline"),
                true_false(&f["full_page_writes"])
            ));
            let xid = u("next_xid");
            has(format!(
                "; xid {}:{}; oid {};",
                xid >> 32,
                xid as u32,
                u("next_oid")
            ));
            let kind = if f["online"].as_bool().unwrap() {
                "online"
            } else {
                "shutdown"
            };
            assert!(desc.ends_with(kind), "{desc} / {f}");
            assert_eq!(rtype == "CHECKPOINT_ONLINE", kind == "online");
            "checkpoint"
        }
        "NEXTOID" => {
            assert_eq!(desc, u("next_oid").to_string());
            "nextoid"
        }
        "COMMIT" | "ABORT" | "COMMIT_PREPARED" | "ABORT_PREPARED" => {
            assert_eq!(f["op"].as_str().unwrap(), rtype.to_lowercase());
            let ts = if rtype.ends_with("_PREPARED") {
                desc.split_once(": ").unwrap().1
            } else {
                desc
            };
            let end = ts.find(" UTC").unwrap() + 4;
            let unix = f["xact_time_unix_us"].as_i64().unwrap();
            assert_eq!(parse_utc(&ts[..end]), unix, "{desc} / {f}");
            assert_eq!(
                unix - f["xact_time_us"].as_i64().unwrap(),
                946_684_800_000_000
            );
            "xact"
        }
        "INSERT" | "INSERT+INIT" => {
            let (off, flags) = (u("offnum"), u("flags"));
            if new {
                has(format!("off: {off}, flags: 0x{flags:02X}"));
            } else {
                has(format!("off {off} flags 0x{flags:02X}"));
            }
            "heap insert"
        }
        "DELETE" => {
            if new {
                has(format!("xmax: {}, off: {}, ", u("xmax"), u("offnum")));
            } else {
                // 13–15 print no xmax.
                assert!(
                    desc.starts_with(&format!("off {} ", u("offnum"))),
                    "{desc} / {f}"
                );
            }
            "heap delete"
        }
        "UPDATE" | "HOT_UPDATE" | "UPDATE+INIT" | "HOT_UPDATE+INIT" => {
            let (ox, oo, nx, no) = (
                u("old_xmax"),
                u("old_offnum"),
                u("new_xmax"),
                u("new_offnum"),
            );
            if new {
                has(format!("old_xmax: {ox}, old_off: {oo}, "));
                has(format!("new_xmax: {nx}, new_off: {no}"));
            } else {
                has(format!("off {oo} xmax {ox} "));
                has(format!("; new off {no} xmax {nx}"));
            }
            "heap update"
        }
        "MESSAGE" => {
            let tx = f["transactional"].as_bool().unwrap();
            if major == 13 {
                let kind = if tx {
                    "transactional"
                } else {
                    "nontransactional"
                };
                assert_eq!(
                    desc,
                    format!("{kind} message size {} bytes", u("message_size"))
                );
            } else {
                let kind = if tx {
                    "transactional"
                } else {
                    "non-transactional"
                };
                has(format!(
                    "{kind}, prefix \"{}\"; payload ({} bytes): ",
                    f["prefix"].as_str().unwrap(),
                    u("message_size")
                ));
            }
            "logical message"
        }
        other => panic!("fields for {other}, which this test does not know: {f}"),
    }
}

#[test]
fn json_fields_agree_with_desc_for_every_major() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(testdata(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 6, "{dirs:?}");
    for dir in dirs {
        let o = Command::new(BIN)
            .args(["dump", "--format", "json", "-p"])
            .arg(&dir)
            .env("TZ", "UTC")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{}: {}",
            dir.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        let mut majors = std::collections::BTreeSet::new();
        for line in o.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let v: Value = serde_json::from_slice(line).unwrap();
            let f = &v["fields"];
            if f.is_null() {
                continue;
            }
            let major = v["pg_version"].as_u64().unwrap();
            majors.insert(major);
            let kind = check(
                major,
                v["record_type"].as_str().unwrap(),
                v["desc"].as_str().unwrap(),
                f,
            );
            *counts.entry(kind).or_default() += 1;
        }
        for kind in [
            "checkpoint",
            "nextoid",
            "xact",
            "heap insert",
            "heap delete",
            "heap update",
            "logical message",
        ] {
            assert!(
                counts.get(kind).copied().unwrap_or(0) > 0,
                "{}: no {kind} record checked ({counts:?})",
                dir.display()
            );
        }
        eprintln!("{} (PostgreSQL {majors:?}): {counts:?}", dir.display());
    }
}
