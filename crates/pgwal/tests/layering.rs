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
                "wal", "desc", "source", "receiver", "archive", "live", "tar",
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
