//! `pgwal dump --save-fullpage=DIR` keeps page images (table data) private: under a umask of
//! 022 the directory it creates has mode 0700, as pg_waldump's, and every page file mode 0600;
//! an existing directory is handled as pg_waldump handles it (empty: used as it is; not empty,
//! even with only a dot file: refused; not a directory: refused). Real WAL from `testdata/wal/`,
//! with the reference pg_waldump run alongside.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pgwal_testkit::{reference_waldump, Major};

fn sample() -> (PathBuf, String, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/wal/pg16");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.len() == 24 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    names.sort();
    let (first, last) = (names[0].clone(), names[names.len() - 1].clone());
    (dir, first, last)
}

/// Runs `program PRE... -q -p WAL FIRST LAST --save-fullpage=OUT` with a umask of 022.
fn save(program: &Path, pre: &[&str], out: &Path) -> Output {
    let (dir, first, last) = sample();
    let mut cmd = Command::new(program);
    cmd.args(pre)
        .arg("-q")
        .arg("-p")
        .arg(&dir)
        .arg(first)
        .arg(last)
        .arg(format!("--save-fullpage={}", out.display()));
    // SAFETY: umask is async-signal-safe and touches nothing but the child's own state.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    cmd.output().unwrap()
}

fn ours(out: &Path) -> Output {
    save(Path::new(env!("CARGO_BIN_EXE_pgwal")), &["dump"], out)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn save_fullpage_directory_0700_files_0600() {
    let tmp = tempfile::tempdir().unwrap();
    // A new directory, with a missing parent.
    let out = tmp.path().join("parent/pages");
    let o = ours(&out);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(mode(&out), 0o700);
    assert_eq!(
        mode(&tmp.path().join("parent")),
        0o755,
        "parents as mkdir -p"
    );
    let files: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        files.len() > 10,
        "expected page images, got {}",
        files.len()
    );
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }

    // The reference creates its directory with the same mode.
    let waldump = reference_waldump(Major::V16).expect("reference pg_waldump 16");
    let theirs = tmp.path().join("ref");
    let o = save(&waldump, &[], &theirs);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(mode(&theirs), mode(&out));

    // An existing empty directory is used as it is.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o750)).unwrap();
    let o = ours(&empty);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(mode(&empty), 0o750);
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), files.len());

    // A directory holding only a dot file is not empty, for both programs.
    let dotted = tmp.path().join("dotted");
    std::fs::create_dir(&dotted).unwrap();
    std::fs::write(dotted.join(".keep"), b"").unwrap();
    let o = ours(&dotted);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "directory \"{}\" exists but is not empty",
            dotted.display()
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(save(&waldump, &[], &dotted).status.code(), Some(1));
    assert_eq!(std::fs::read_dir(&dotted).unwrap().count(), 1);

    // A file where the directory should be.
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let o = ours(&file);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "could not access directory \"{}\"",
            file.display()
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(save(&waldump, &[], &file).status.code(), Some(1));
}
