//! The library's layers stay apart: the replication client knows nothing of the WAL decoder,
//! the descriptions, file reading, the receiver or the archive (`live.rs` joins the client to
//! the decoder from outside both).

use std::fs;
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).expect("read source directory").flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn replication_does_not_depend_on_the_decoder_or_storage() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![root.join("replication.rs")];
    files.retain(|p| p.exists());
    sources(&root.join("replication"), &mut files);
    assert!(files.len() > 5, "{files:?}");
    for f in files {
        let text = fs::read_to_string(&f).expect("read source file");
        for layer in [
            "wal", "desc", "source", "receiver", "archive", "live", "tar",
        ] {
            for form in [format!("crate::{layer}::"), format!("crate::{layer};")] {
                assert!(
                    !text.contains(&form),
                    "{} uses {form}: the replication client must not depend on `{layer}`",
                    f.display()
                );
            }
        }
    }
}
