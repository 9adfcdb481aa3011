//! `pgwal receive` never writes through a symbolic link planted in its directory: a linked lock
//! file, `.partial` or `.tmp` file pointing outside is refused (or only the link removed), the
//! file it points to stays untouched, and the error names the link. Against a real server.

#![allow(clippy::unwrap_used)]

mod support;
use support::*;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use pgwal_testkit::{format_lsn, parse_lsn, require_major, Cluster, Major};

const LOCK: &str = ".pgwal-receive.lock";

fn flush_lsn(pg: &Cluster) -> u64 {
    parse_lsn(
        &pg.scalar_blocking("SELECT pg_current_wal_flush_lsn()")
            .unwrap(),
    )
    .unwrap()
}

/// The `.partial` files in `dir`.
fn partials(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    v.sort();
    v
}

fn assert_refused(o: &Output, link: &Path) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{}", text(o));
    assert!(
        err.contains(&format!("\"{}\"", link.display())) && err.contains("symbolic link"),
        "the error must name the link {}\n{}",
        link.display(),
        text(o)
    );
}

#[test]
fn symlinks_in_the_directory_are_never_written_through() {
    if require_major(Major::V17).is_none() {
        return;
    }
    let pg = Cluster::builder(Major::V17)
        .wal_segsize_mb(1)
        .set("wal_keep_size", "1GB")
        .start()
        .unwrap();
    let ci = format!(
        "host=127.0.0.1 port={} user=postgres sslmode=disable",
        pg.port()
    );
    let tmp = tempfile::Builder::new()
        .prefix("pgwal-receive-symlinks-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().join("archive");
    fs::create_dir(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let limit = Duration::from_secs(60);

    // 1. A lock file that links to another file: refused before anything is written.
    let victim = tmp.path().join("victim-lock");
    fs::write(&victim, "precious lock victim\n").unwrap();
    let lock = dir.join(LOCK);
    symlink(&victim, &lock).unwrap();
    pg.sql_load_blocking(2_000).unwrap();
    let end = format_lsn(flush_lsn(&pg) - 1);
    let o = receive(&["-d", &ci, "-D", d, "-n", "-E", &end], limit);
    assert_refused(&o, &lock);
    assert_eq!(
        fs::read_to_string(&victim).unwrap(),
        "precious lock victim\n"
    );
    assert!(partials(&dir).is_empty(), "{}", text(&o));
    // A dangling lock link is not followed either: its target is not created.
    fs::remove_file(&lock).unwrap();
    let nowhere = tmp.path().join("nowhere");
    symlink(&nowhere, &lock).unwrap();
    let o = receive(&["-d", &ci, "-D", d, "-n", "-E", &end], limit);
    assert_refused(&o, &lock);
    assert!(!nowhere.exists());
    fs::remove_file(&lock).unwrap();

    // 2. Stream some WAL: a partial segment is left behind.
    let o = receive(&["-d", &ci, "-D", d, "-n", "-E", &end], limit);
    assert!(o.status.success(), "{}", text(&o));
    let names = partials(&dir);
    let partial_name = names.last().expect("a .partial file").clone();
    let partial = dir.join(&partial_name);

    // Replace the partial with a link to a copy outside: the copy holds valid WAL, so a
    // receiver that followed the link would resume into it.
    let outside = tmp.path().join("victim-partial");
    fs::rename(&partial, &outside).unwrap();
    let before = fs::read(&outside).unwrap();
    symlink(&outside, &partial).unwrap();
    // And a leftover temporary file that links to another victim.
    let victim_tmp = tmp.path().join("victim-tmp");
    fs::write(&victim_tmp, "precious tmp victim\n").unwrap();
    let tmp_link = dir.join(format!("{partial_name}.tmp"));
    symlink(&victim_tmp, &tmp_link).unwrap();

    pg.sql_load_blocking(2_000).unwrap();
    let end = format_lsn(flush_lsn(&pg) - 1);
    let o = receive(&["-d", &ci, "-D", d, "-n", "-E", &end], limit);
    assert_refused(&o, &partial);
    // Without -n too: retrying cannot help, so it is fatal at once.
    let o = receive(&["-d", &ci, "-D", d, "-E", &end], limit);
    assert_refused(&o, &partial);
    assert_eq!(
        fs::read(&outside).unwrap(),
        before,
        "the linked file was changed"
    );
    assert_eq!(
        fs::read_to_string(&victim_tmp).unwrap(),
        "precious tmp victim\n"
    );
    // The leftover link itself was removed (only the link).
    assert!(fs::symlink_metadata(&tmp_link).is_err());
    assert!(fs::symlink_metadata(&partial)
        .unwrap()
        .file_type()
        .is_symlink());

    // 3. With the real file back, the receiver resumes it and reaches the end position.
    fs::remove_file(&partial).unwrap();
    fs::rename(&outside, &partial).unwrap();
    let o = receive(&["-d", &ci, "-D", d, "-n", "-E", &end, "-v"], limit);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("resuming \""),
        "{}",
        text(&o)
    );
    assert_eq!(
        fs::read_to_string(&victim_tmp).unwrap(),
        "precious tmp victim\n"
    );
}
