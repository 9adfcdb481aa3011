//! Module layering: lower modules must not reach up into the modules built on them.
//!
//! Rust accepts import cycles between modules of one crate, so nothing else stops them from
//! coming back. Each rule names a source file and the module paths its code (comments are
//! skipped) must not mention; ARCHITECTURE.md's module map gives the order.

use std::path::Path;

/// (file under `src/`, what it must not refer to, why).
const RULES: &[(&str, &[&str], &str)] = &[
    (
        "lsn.rs",
        &["segment::", "segment;", "SegNo", "WalSegSize"],
        "`segment` builds on `lsn` (segment arithmetic of `Lsn` lives in segment.rs)",
    ),
    (
        "replication/command.rs",
        &["protocol::", "protocol;"],
        "`protocol` builds on `command` (result sets live in replication/result.rs)",
    ),
    (
        "replication/result.rs",
        &["command::", "command;", "protocol::", "protocol;"],
        "result sets are the lowest layer of `replication`",
    ),
];

/// The code of `text` without `//` comments (line and doc comments), line by line.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, line)| {
        let code = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        (!code.trim().is_empty()).then_some((i + 1, code))
    })
}

#[test]
fn lower_modules_do_not_import_higher_ones() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    for (file, forbidden, why) in RULES {
        let path = src.join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        for (line_no, code) in code_lines(&text) {
            for word in forbidden.iter().filter(|w| code.contains(**w)) {
                broken.push(format!("src/{file}:{line_no}: mentions `{word}` ({why})"));
            }
        }
    }
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

#[test]
fn comment_stripping_keeps_code_and_drops_comments() {
    let text = "use crate::segment::SegNo; // a comment\n/// see [`segment::SegNo`]\n\n";
    let lines: Vec<_> = code_lines(text).collect();
    assert_eq!(lines, vec![(1, "use crate::segment::SegNo; ")]);
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir)
        .expect("read source directory")
        .flatten()
    {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The replication client knows nothing of the WAL decoder, the descriptions, file reading,
/// the receiver or the archive (`live.rs` joins the client to the decoder from outside both).
#[test]
fn replication_does_not_depend_on_the_decoder_or_storage() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src.join("replication"), &mut files);
    assert!(files.len() > 5, "{files:?}");
    let mut broken = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read source file");
        for (line_no, code) in code_lines(&text) {
            for layer in [
                "wal", "desc", "source", "storage", "receiver", "archive", "live", "tar",
            ] {
                if code.contains(&format!("crate::{layer}::"))
                    || code.contains(&format!("crate::{layer};"))
                {
                    broken.push(format!("{}:{line_no}: uses `{layer}`", f.display()));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "replication depends on:\n{}",
        broken.join("\n")
    );
}

/// The code of every `.rs` file under `src/<dir>` that mentions one of `layers` as
/// `crate::<layer>::` or `crate::<layer>;`, as "file:line: uses `layer`".
fn uses_of(dir: &str, layers: &[&str]) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src.join(dir), &mut files);
    assert!(!files.is_empty(), "no sources under src/{dir}");
    let mut found = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read source file");
        for (line_no, code) in code_lines(&text) {
            for layer in layers {
                if code.contains(&format!("crate::{layer}::"))
                    || code.contains(&format!("crate::{layer};"))
                {
                    found.push(format!("{}:{line_no}: uses `{layer}`", f.display()));
                }
            }
        }
    }
    found
}

/// `storage` is below the readers, the receiver and the archive: it uses none of them (nor the
/// replication client).
#[test]
fn storage_does_not_depend_on_its_users() {
    let broken = uses_of(
        "storage",
        &[
            "source",
            "receiver",
            "archive",
            "replication",
            "conninfo",
            "live",
            "tar",
            "desc",
        ],
    );
    assert!(
        broken.is_empty(),
        "storage depends on:\n{}",
        broken.join("\n")
    );
}

/// The receiver, the archive and the readers write and read files through `storage`, and the
/// receiver no longer reaches into the archive (it used `archive::durable` for its renames).
#[test]
fn receiver_archive_and_source_use_storage_not_each_other() {
    let broken = uses_of("receiver", &["archive"]);
    assert!(
        broken.is_empty(),
        "the receiver depends on:\n{}",
        broken.join("\n")
    );
    for dir in ["receiver", "archive"] {
        assert!(
            !uses_of(dir, &["storage"]).is_empty(),
            "src/{dir} does not use storage"
        );
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let source = std::fs::read_to_string(src.join("source.rs")).expect("read source.rs");
    assert!(
        source.contains("crate::storage::"),
        "source.rs does not use storage"
    );
    let broken: Vec<String> = code_lines(&source)
        .filter(|(_, code)| {
            ["crate::receiver", "crate::archive"]
                .iter()
                .any(|l| code.contains(l))
        })
        .map(|(n, code)| format!("src/source.rs:{n}: {code}"))
        .collect();
    assert!(
        broken.is_empty(),
        "source depends on:\n{}",
        broken.join("\n")
    );
}
