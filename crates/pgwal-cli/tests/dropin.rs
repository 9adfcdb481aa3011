//! The pgwal binary under the names `pg_waldump`, `pg_receivewal` and `pg_archivecleanup` (a
//! symlink in a temporary directory), run side by side with the real PostgreSQL 18 tools: the
//! same stdout, stderr and exit status for usage errors, invalid values, end of WAL, missing
//! start, a nonexistent slot and bad compression specifications. The program's path is
//! normalised to its file name only where the real tool prints its own path (glibc's option
//! errors). `--version` and `--help` are compared where pgwal deliberately differs: the version
//! line names the major, and the help has the same options in the same order and layout.
//! Also: `pgwal dump`, `pgwal receive` and `pgwal archive cleanup` use the same shapes.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pgwal_testkit::{reference_waldump, require_major, tools_dir, Cluster, Major};

const BIN: &str = env!("CARGO_BIN_EXE_pgwal");

/// A temporary directory with links named after the PostgreSQL tools.
struct Links {
    dir: tempfile::TempDir,
}

impl Links {
    fn new() -> Links {
        let dir = tempfile::Builder::new()
            .prefix("pgwal-dropin-")
            .tempdir()
            .unwrap();
        let o = Command::new(BIN)
            .arg("install-links")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", show(&o));
        Links { dir }
    }

    fn path(&self, tool: &str) -> PathBuf {
        self.dir.path().join(tool)
    }
}

/// What a run printed, with `program`'s path shortened to its file name at line starts.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run_in(program: &Path, args: &[&str], cwd: &Path) -> Seen {
    let o = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .env_remove("PGDATA")
        .env("TZ", "UTC")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let full = format!("{}: ", program.display());
    let short = format!("{}: ", program.file_name().unwrap().to_string_lossy());
    let norm = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .map(|l| match l.strip_prefix(&full) {
                Some(rest) => format!("{short}{rest}\n"),
                None => format!("{l}\n"),
            })
            .collect::<String>()
    };
    Seen {
        code: o.status.code(),
        stdout: norm(&o.stdout),
        stderr: norm(&o.stderr),
    }
}

/// Runs the real tool and ours with `args` in `cwd` and asserts the same output and status.
fn same(real: &Path, ours: &Path, args: &[&str], cwd: &Path) -> Seen {
    let want = run_in(real, args, cwd);
    let got = run_in(ours, args, cwd);
    let what = format!("{} {args:?}", real.display());
    assert_eq!(
        got.code, want.code,
        "{what}: exit status; stderr {:?}",
        got.stderr
    );
    assert_eq!(got.stderr, want.stderr, "{what}: stderr");
    if got.stdout != want.stdout {
        let line = got
            .stdout
            .lines()
            .zip(want.stdout.lines())
            .position(|(a, b)| a != b);
        panic!(
            "{what}: stdout differs at line {line:?} ({} lines, real {})",
            got.stdout.lines().count(),
            want.stdout.lines().count()
        );
    }
    got
}

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/wal")
        .join(name)
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("pgwal-dropin-data-")
        .tempdir()
        .unwrap()
}

fn real_waldump() -> Option<PathBuf> {
    let p = reference_waldump(Major::V18);
    if p.is_none() {
        eprintln!("skipped: no reference pg_waldump 18");
    }
    p
}

/// The tool `name` of PostgreSQL 19, the newest major pgwal reads, if installed.
fn newest_tool(name: &str) -> Option<PathBuf> {
    let bins = pgwal_testkit::Binaries::locate(Major::V19).ok()?;
    let p = bins.bin_dir().join(name);
    p.is_file().then_some(p)
}

fn real_tool(name: &str) -> Option<PathBuf> {
    let p = tools_dir().join(name);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipped: no reference {name} in {}", tools_dir().display());
        None
    }
}

#[test]
fn waldump_usage_errors_and_invalid_values_match() {
    let Some(real) = real_waldump() else { return };
    let links = Links::new();
    let ours = links.path("pg_waldump");
    let tmp = scratch();
    let cwd = tmp.path();
    let cases: &[&[&str]] = &[
        &[],
        &["-B", "x"],
        &["-B", "4294967295"],
        &["-B", "5"],
        &["-F", "x"],
        &["--fork=heap"],
        &["-R", "1/2"],
        &["-R", "0/1/2"],
        &["--relation", "1/2/x"],
        &["-r", "foo"],
        &["-r", "custom5"],
        &["-r", "custom300"],
        &["-x", "bad"],
        &["-e", "bad"],
        &["-s", "0/"],
        &["-t", "x"],
        &["-t", "0"],
        &["-t", "0x100000000"],
        &["-n", "x"],
        &["--stats=foo"],
        &["a", "b", "c"],
        &["-k"],
        &["--foo=bar"],
        &["--nope"],
        &["-e"],
        &["--end"],
        &["--quiet=x"],
        &["--fo"],
        &["-q", "-V"],
        &["-q", "--help"],
        &["-z=record"],
        &["-p", "/nonexistent/dir"],
        // Values are checked in the order given, before any file is looked at.
        &["--rel=1/2/3", "-x", "5", "-e", "bad"],
        &["-x", "bad", "-e", "bad", "a", "b", "c"],
        &["-e", "bad", "-x", "bad"],
        &["-B", "5", "a", "b", "c"],
        &["nonexistent-file"],
        &["-p", ".", "000000010000000000000001"],
    ];
    for args in cases {
        let seen = same(&real, &ours, args, cwd);
        assert_eq!(seen.code, Some(1), "{args:?}");
        assert!(seen.stdout.is_empty(), "{args:?}");
    }
    // `--rmgr=list` prints the list at once, even with a bad value after it.
    let seen = same(&real, &ours, &["-r", "list", "-x", "bad"], cwd);
    assert_eq!(seen.code, Some(0));
    assert!(seen.stdout.contains("Heap2\n"), "{seen:?}");
}

#[test]
fn pgwal_subcommands_use_the_same_shapes() {
    let tmp = scratch();
    let cwd = tmp.path();
    let bin = Path::new(BIN);
    let seen = run_in(bin, &["dump", "--end", "bad"], cwd);
    assert_eq!(
        seen,
        Seen {
            code: Some(1),
            stdout: String::new(),
            stderr: "pgwal dump: error: invalid WAL location: \"bad\"\n\
                     pgwal dump: hint: Try \"pgwal dump --help\" for more information.\n"
                .into(),
        }
    );
    let seen = run_in(bin, &["dump", "a", "b", "baz"], cwd);
    assert_eq!(seen.code, Some(1));
    assert_eq!(
        seen.stderr,
        "pgwal dump: error: too many command-line arguments (first is \"baz\")\n\
         pgwal dump: hint: Try \"pgwal dump --help\" for more information.\n"
    );
    let seen = run_in(bin, &["receive", "--relation"], cwd);
    assert_eq!(seen.code, Some(1));
    assert_eq!(
        seen.stderr,
        "pgwal receive: error: unrecognized option '--relation'\n\
         pgwal receive: hint: Try \"pgwal receive --help\" for more information.\n"
    );
    let seen = run_in(bin, &["archive", "cleanup", "-k"], cwd);
    assert_eq!(seen.code, Some(2));
    assert!(
        seen.stderr
            .starts_with("pgwal archive cleanup: error: invalid option -- 'k'\n"),
        "{seen:?}"
    );
    for (args, name) in [
        (&["dump", "--version"][..], "pgwal dump"),
        (&["dump", "-V"][..], "pgwal dump"),
        (&["receive", "--version"][..], "pgwal receive"),
        (&["receive", "-V"][..], "pgwal receive"),
        (
            &["archive", "cleanup", "--version"][..],
            "pgwal archive cleanup",
        ),
        (&["archive", "cleanup", "-V"][..], "pgwal archive cleanup"),
    ] {
        let seen = run_in(bin, args, cwd);
        assert_eq!(seen.code, Some(0), "{args:?}");
        assert!(seen.stderr.is_empty(), "{args:?}");
        assert!(
            seen.stdout
                .starts_with(&format!("{name} (pgwal) {}", env!("CARGO_PKG_VERSION"))),
            "{seen:?}"
        );
    }
}

/// The option spellings of a PostgreSQL-style help page, in order (`-b, --bkp-details`).
fn help_options(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("  -") || l.starts_with("      --"))
        .map(|l| {
            l.split("  ")
                .find(|w| !w.is_empty())
                .unwrap()
                .trim()
                .to_owned()
        })
        .collect()
}

/// Where each option line's description starts (None for a spelling alone on its line).
fn help_columns(text: &str) -> Vec<Option<usize>> {
    text.lines()
        .filter(|l| l.starts_with("  -") || l.starts_with("      --"))
        .map(|l| {
            let body = l.trim_start();
            let spelling_end = l.len() - body.len() + body.find("  ").unwrap_or(body.len());
            let rest = &l[spelling_end..];
            (!rest.is_empty()).then(|| spelling_end + rest.len() - rest.trim_start().len())
        })
        .collect()
}

/// The titles of the sections that list options.
fn section_titles(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0].ends_with(':') && w[1].trim_start().starts_with('-'))
        .map(|w| w[0].to_owned())
        .collect()
}

#[test]
fn version_and_help_layout_match() {
    let links = Links::new();
    let tmp = scratch();
    let mut reals = vec![];
    if let Some(w) = real_waldump() {
        reals.push(("pg_waldump", w));
    }
    for t in ["pg_receivewal", "pg_archivecleanup"] {
        if let Some(p) = real_tool(t) {
            reals.push((t, p));
        }
    }
    assert!(!reals.is_empty() || std::env::var_os("PGWAL_ALLOW_MISSING").is_some());
    for (name, real) in reals {
        let ours = links.path(name);
        for v in ["--version", "-V"] {
            let want = run_in(&real, &[v], tmp.path());
            let got = run_in(&ours, &[v], tmp.path());
            assert_eq!(got.code, want.code);
            assert_eq!(got.stderr, want.stderr);
            // Ours names the newest major pgwal reads (19), then pgwal's version; the real
            // tool of that major says e.g. "pg_waldump (PostgreSQL) 19rc1 (Debian 19~rc1-1)".
            let first = got.stdout.lines().next().unwrap();
            assert_eq!(first, format!("{name} (PostgreSQL) 19"));
            if let Some(newest) = newest_tool(name) {
                let real19 = run_in(&newest, &[v], tmp.path());
                assert!(real19.stdout.starts_with(first), "{real19:?}");
                assert!(!real19.stdout[first.len()..].starts_with(|c: char| c.is_ascii_digit()));
            }
            assert_eq!(
                got.stdout.lines().nth(1).unwrap(),
                format!("{name} (pgwal) {}", env!("CARGO_PKG_VERSION"))
            );
        }
        for h in ["--help", "-?"] {
            let want = run_in(&real, &[h], tmp.path());
            let got = run_in(&ours, &[h], tmp.path());
            assert_eq!(
                (got.code, &got.stderr),
                (want.code, &want.stderr),
                "{name} {h}"
            );
            let (w, g) = (&want.stdout, &got.stdout);
            // Same first words, usage line, sections, options in order, description column;
            // pgwal's own options come after, in a section of their own.
            assert_eq!(
                g.split(' ').next(),
                w.split(' ').next(),
                "{name}: summary line"
            );
            assert_eq!(g.lines().nth(3), w.lines().nth(3), "{name}: usage line");
            let (wo, go) = (help_options(w), help_options(g));
            assert_eq!(&go[..wo.len()], &wo[..], "{name}: options\n{g}");
            let (wc, gc) = (help_columns(w), help_columns(g));
            assert_eq!(&gc[..wc.len()], &wc[..], "{name}: description column\n{g}");
            let (ws, gs) = (section_titles(w), section_titles(g));
            assert_eq!(&gs[..ws.len()], &ws[..], "{name}: sections");
            assert!(gs.contains(&"pgwal options:".to_owned()), "{g}");
        }
    }
}

/// A copy of `src`'s segment `name` in `dir` whose second half is zeroed: the end of WAL.
fn truncated_copy(src: &Path, name: &str, dir: &Path) {
    let mut bytes = fs::read(src.join(name)).unwrap();
    let half = bytes.len() / 2;
    bytes[half..].fill(0);
    fs::write(dir.join(name), bytes).unwrap();
}

#[test]
fn waldump_end_of_wal_and_missing_start_match() {
    let Some(real) = real_waldump() else { return };
    let links = Links::new();
    let ours = links.path("pg_waldump");
    let tmp = scratch();
    let seg = "000000010000000000000008";
    truncated_copy(&testdata("pg18"), seg, tmp.path());
    let cwd = tmp.path();
    for args in [
        &[seg][..],
        &["-q", seg][..],
        &["--stats", seg][..],
        &["-n", "3", seg][..],
    ] {
        let seen = same(&real, &ours, args, cwd);
        if args.contains(&"-n") {
            assert_eq!(seen.code, Some(0), "{seen:?}");
        } else {
            assert_eq!(seen.code, Some(1), "{args:?}");
            assert!(
                seen.stderr
                    .starts_with("pg_waldump: error: error in WAL record at 0/"),
                "{seen:?}"
            );
        }
    }
    // Directory only: pg_waldump needs a start.
    let seen = same(&real, &ours, &["-p", ".", "-n", "1"], cwd);
    assert_eq!(
        seen.stderr,
        "pg_waldump: error: no start WAL location given\n\
         pg_waldump: hint: Try \"pg_waldump --help\" for more information.\n"
    );
    // `pgwal dump` keeps its friendlier rules on the same directory.
    let o = Command::new(BIN)
        .args(["dump", "-p", ".", "-n", "1"])
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    // A start LSN outside STARTSEG, an end outside ENDSEG.
    same(&real, &ours, &["-s", "0/1000000", seg], cwd);
    same(&real, &ours, &["-e", "0/1000000", seg], cwd);
}

#[test]
fn archivecleanup_usage_errors_and_dry_run_match() {
    let Some(real) = real_tool("pg_archivecleanup") else {
        return;
    };
    let links = Links::new();
    let ours = links.path("pg_archivecleanup");
    let tmp = scratch();
    let archive = tmp.path().join("archive");
    fs::create_dir(&archive).unwrap();
    for n in 1..=4 {
        fs::write(archive.join(format!("00000001000000000000000{n}")), b"x").unwrap();
    }
    fs::write(
        archive.join("000000010000000000000002.00000028.backup"),
        b"x",
    )
    .unwrap();
    let a = archive.to_str().unwrap();
    let cases: &[&[&str]] = &[
        &[],
        &["a"],
        &["a", "b", "c"],
        &["-k"],
        &["-x"],
        &["--nope"],
        &["/nonexistent/archive", "000000010000000000000001"],
        &[a, "000000010000000000000001.foo"],
        &[a, "junk"],
    ];
    for args in cases {
        let seen = same(&real, &ours, args, tmp.path());
        assert_eq!(seen.code, Some(2), "{args:?}");
    }
    let seen = same(
        &real,
        &ours,
        &["-n", a, "000000010000000000000003"],
        tmp.path(),
    );
    assert_eq!(seen.code, Some(0));
    assert_eq!(seen.stdout.lines().count(), 2, "{seen:?}");
    // A real cleanup with -d -b in two copies of the archive: the same debug lines (the real
    // tool prints them in directory order, so as sets) and the same files left.
    let mut runs = vec![];
    for (program, copy) in [(&real, "real"), (&ours, "ours")] {
        let d = tmp.path().join(copy);
        fs::create_dir(&d).unwrap();
        for e in fs::read_dir(&archive).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), d.join(e.file_name())).unwrap();
        }
        let seen = run_in(
            program,
            &["-d", "-b", copy, "000000010000000000000003"],
            tmp.path(),
        );
        let mut lines: Vec<String> = seen
            .stderr
            .lines()
            .map(|l| l.replace(&format!("\"{copy}/"), "\"DIR/"))
            .collect();
        lines.sort();
        let mut left: Vec<String> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        runs.push((seen.code, seen.stdout, lines, left));
    }
    assert_eq!(runs[1], runs[0]);
    assert_eq!(runs[0].2.len(), 4, "{:?}", runs[0]);
}

#[test]
fn receivewal_usage_errors_and_compression_specs_match() {
    let Some(real) = real_tool("pg_receivewal") else {
        return;
    };
    let links = Links::new();
    let ours = links.path("pg_receivewal");
    let tmp = scratch();
    let d = tmp.path().to_str().unwrap();
    let cases: &[&[&str]] = &[
        &[],
        &["-D", d, "extra"],
        &["--create-slot"],
        &["--drop-slot"],
        &["-s", "x", "-D", d],
        &["-s", "99999999", "-D", d],
        &["-s", "-1", "-D", d],
        &["-E", "bad", "-D", d],
        &["-E", "bad", "-s", "x"],
        &["--create-slot", "--drop-slot", "-S", "s"],
        &["--synchronous", "--no-sync", "-D", d],
        &["-D", "/nonexistent/dir"],
        &["-Z", "foo", "-D", d],
        &["-Z", "gzip:9x", "-D", d],
        &["-Z", "gzip:level=99", "-D", d],
        &["-Z", "5:x", "-D", d],
        &["-Z", "none:5", "-D", d],
        &["--nope"],
        &["-k"],
        &["-D"],
        &["-q", "-V"],
        // Nothing listens: the first connection fails, exit 1 at once.
        &["-h", "127.0.0.1", "-p", "1", "-D", d, "-n"],
        &["-h", "127.0.0.1", "-p", "1", "-D", d],
    ];
    for args in cases {
        let seen = same(&real, &ours, args, tmp.path());
        assert_eq!(seen.code, Some(1), "{args:?}");
    }
}

#[test]
fn receivewal_nonexistent_slot_matches() {
    let Some(real) = real_tool("pg_receivewal") else {
        return;
    };
    if require_major(Major::V18).is_none() {
        return;
    }
    let pg = Cluster::builder(Major::V18).start().unwrap();
    let links = Links::new();
    let ours = links.path("pg_receivewal");
    let tmp = scratch();
    let d = tmp.path().to_str().unwrap();
    let conn = format!(
        "host=127.0.0.1 port={} user=postgres sslmode=disable",
        pg.port()
    );
    let args = ["-d", &conn, "-D", d, "-n", "--slot", "nonexistentslot"];
    let seen = same(&real, &ours, &args, tmp.path());
    assert_eq!(seen.code, Some(1));
    assert_eq!(
        seen.stderr,
        "pg_receivewal: error: replication slot \"nonexistentslot\" does not exist\n\
         pg_receivewal: error: disconnected\n"
    );
    // Slot actions: create, create again (with and without --if-not-exists), drop, drop a
    // missing one. Each tool works on its own slot name; the name is normalised in the output.
    for step in [
        &["--create-slot"][..],
        &["--create-slot"][..],
        &["--create-slot", "--if-not-exists"][..],
        &["--drop-slot"][..],
        &["--drop-slot"][..],
    ] {
        let mut seen = vec![];
        for (program, slot) in [(&real, "slot_real"), (&ours, "slot_ours")] {
            let mut args = vec!["-d", &conn, "-S", slot];
            args.extend(step);
            let s = run_in(program, &args, tmp.path());
            seen.push((s.code, s.stdout, s.stderr.replace(slot, "SLOT")));
        }
        assert_eq!(seen[1], seen[0], "{step:?}");
    }
    // `pgwal receive` prints the same two lines under its own name.
    let o = Command::new(BIN)
        .arg("receive")
        .args(args)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "pgwal receive: error: replication slot \"nonexistentslot\" does not exist\n\
         pgwal receive: error: disconnected\n"
    );
}

/// Compresses `src` into `dst` with the command-line tool `tool` (`zstd`, `gzip`, `lz4`).
fn compress_with(tool: &str, src: &Path, dst: &Path) {
    let o = Command::new(tool)
        .arg("-c")
        .arg(src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    assert!(o.status.success(), "{tool}: {}", show(&o));
    fs::write(dst, o.stdout).unwrap();
}

#[test]
fn plain_segment_names_find_compressed_and_partial_forms() {
    let src = testdata("pg18");
    let (first, last) = ("000000010000000000000008", "000000010000000000000009");
    let plain = Command::new(BIN)
        .args(["dump", "-p"])
        .arg(&src)
        .args([first, last])
        .output()
        .unwrap();
    assert!(plain.status.success(), "{}", show(&plain));
    let tmp = scratch();
    let dir = tmp.path();
    // The first only as .zst (as `receive -Z zstd` writes it), the last only as .partial.
    compress_with("zstd", &src.join(first), &dir.join(format!("{first}.zst")));
    fs::copy(src.join(last), dir.join(format!("{last}.partial"))).unwrap();
    let bin = Path::new(BIN);
    let links = Links::new();
    for (program, pre) in [(bin, &["dump"][..]), (&*links.path("pg_waldump"), &[][..])] {
        let mut args = pre.to_vec();
        args.extend(["-p", dir.to_str().unwrap(), first, last]);
        let seen = run_in(program, &args, dir);
        assert_eq!(seen.code, plain.status.code(), "{args:?}: {seen:?}");
        assert_eq!(seen.stdout.as_bytes(), &plain.stdout[..], "{args:?}");
        // Without -p: the directory of STARTSEG.
        let seen = run_in(program, &[pre, &[first, last][..]].concat(), dir);
        assert_eq!(
            seen.stdout.as_bytes(),
            &plain.stdout[..],
            "{args:?} in the directory"
        );
    }
    // Both a plain and a compressed copy: the plain file wins, as documented.
    fs::write(dir.join(first), b"not WAL").unwrap();
    let seen = run_in(bin, &["dump", "-p", dir.to_str().unwrap(), first], dir);
    assert_eq!(seen.code, Some(1), "{seen:?}");
    // A name that is in neither form is still not found.
    let seen = run_in(
        bin,
        &[
            "dump",
            "-p",
            dir.to_str().unwrap(),
            "00000001000000000000000A",
        ],
        dir,
    );
    assert_eq!(
        seen.stderr,
        "pgwal dump: error: could not locate WAL file \"00000001000000000000000A\"\n"
    );
}

#[test]
fn receivewal_verbose_lines_match() {
    let Some(real) = real_tool("pg_receivewal") else {
        return;
    };
    if require_major(Major::V18).is_none() {
        return;
    }
    let pg = Cluster::builder(Major::V18)
        .wal_segsize_mb(1)
        .set("wal_keep_size", "1GB")
        .start()
        .unwrap();
    let links = Links::new();
    let ours = links.path("pg_receivewal");
    let conn = format!(
        "host=127.0.0.1 port={} user=postgres sslmode=disable",
        pg.port()
    );
    let end = pg
        .scalar_blocking("SELECT pg_current_wal_insert_lsn()::text")
        .unwrap();
    let (d1, d2) = (scratch(), scratch());
    let mut seen = vec![];
    for (program, d) in [(&real, &d1), (&ours, &d2)] {
        let args = [
            "-d",
            &conn,
            "-D",
            d.path().to_str().unwrap(),
            "-n",
            "-v",
            "-E",
            &end,
        ];
        seen.push(run_in(program, &args, d.path()));
    }
    let (want, got) = (&seen[0], &seen[1]);
    assert_eq!(got.code, want.code, "{want:?}\n{got:?}");
    assert_eq!(got.stdout, want.stdout);
    // Every line pg_receivewal prints (it prints "stopped log streaming" twice, before and
    // after closing the partial segment; pgwal once, after) also printed by pgwal, which may
    // say more with -v.
    let ours_lines: Vec<&str> = got.stderr.lines().collect();
    for line in want.stderr.lines() {
        assert!(
            ours_lines.contains(&line),
            "missing {line:?}\n--- real ---\n{}--- ours ---\n{}",
            want.stderr,
            got.stderr
        );
    }
    assert!(
        ours_lines.iter().all(|l| l.starts_with("pg_receivewal: ")),
        "{got:?}"
    );
}

#[test]
fn waldump_end_of_wal_matches_each_major() {
    let links = Links::new();
    let ours = links.path("pg_waldump");
    let mut compared = 0;
    for (sample, major) in [
        ("pg13", Major::V13),
        ("pg15", Major::V15),
        ("pg16", Major::V16),
        ("pg17", Major::V17),
        ("pg18", Major::V18),
    ] {
        let Some(real) = reference_waldump(major) else {
            eprintln!("skipped: no reference pg_waldump {major}");
            continue;
        };
        let src = testdata(sample);
        let seg = fs::read_dir(&src)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.len() == 24)
            .min()
            .unwrap();
        let tmp = scratch();
        truncated_copy(&src, &seg, tmp.path());
        for args in [
            &[seg.as_str()][..],
            &["-q", &seg][..],
            &["-b", "-q", &seg][..],
        ] {
            let seen = same(&real, &ours, args, tmp.path());
            assert_eq!(seen.code, Some(1), "{major} {args:?}: {seen:?}");
            assert!(seen.stderr.contains("error in WAL record at"), "{seen:?}");
        }
        compared += 1;
    }
    assert!(compared > 0 || std::env::var_os("PGWAL_ALLOW_MISSING").is_some());
}

#[test]
fn install_links_makes_and_guards_the_links() {
    let tmp = scratch();
    let dir = tmp.path().join("bin");
    let install = |extra: &[&str]| {
        Command::new(BIN)
            .arg("install-links")
            .args(extra)
            .arg(&dir)
            .output()
            .unwrap()
    };
    let o = install(&[]);
    assert!(o.status.success(), "{}", show(&o));
    let exe = fs::canonicalize(BIN).unwrap();
    for name in ["pg_waldump", "pg_receivewal", "pg_archivecleanup"] {
        assert_eq!(fs::canonicalize(dir.join(name)).unwrap(), exe, "{name}");
    }
    // Again: nothing to do.
    assert!(install(&[]).status.success());
    // Someone else's file is kept unless --force.
    fs::remove_file(dir.join("pg_waldump")).unwrap();
    fs::write(dir.join("pg_waldump"), b"#!/bin/sh\n").unwrap();
    let o = install(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already exists (use --force"),
        "{}",
        show(&o)
    );
    assert_eq!(fs::read(dir.join("pg_waldump")).unwrap(), b"#!/bin/sh\n");
    let o = install(&["--force", "--hard"]);
    assert!(o.status.success(), "{}", show(&o));
    let meta = fs::symlink_metadata(dir.join("pg_waldump")).unwrap();
    assert!(meta.file_type().is_file(), "a hard link");
    // The hard link runs as pg_waldump.
    let seen = run_in(&dir.join("pg_waldump"), &["--version"], tmp.path());
    assert!(
        seen.stdout.starts_with("pg_waldump (PostgreSQL) 19\n"),
        "{seen:?}"
    );
}
