//! Who is running: `pgwal dump`, `pgwal receive`, `pgwal archive cleanup`, or, when the binary
//! is invoked under a PostgreSQL tool's name (drop-in mode), `pg_waldump`, `pg_receivewal` or
//! `pg_archivecleanup`. The name prefixes every message, as PostgreSQL's tools prefix theirs.

use std::fmt;
use std::sync::OnceLock;

/// The newest PostgreSQL major pgwal supports; drop-in `--version` reports it.
pub const NEWEST_MAJOR: u32 = 19;

/// A tool pgwal can stand in for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// `pgwal dump` / `pg_waldump`.
    Dump,
    /// `pgwal receive` / `pg_receivewal`.
    Receive,
    /// `pgwal archive cleanup` / `pg_archivecleanup`.
    Cleanup,
}

impl Tool {
    /// The PostgreSQL tool's name.
    pub fn pg_name(self) -> &'static str {
        match self {
            Tool::Dump => "pg_waldump",
            Tool::Receive => "pg_receivewal",
            Tool::Cleanup => "pg_archivecleanup",
        }
    }

    /// The pgwal subcommand's name.
    pub fn pgwal_name(self) -> &'static str {
        match self {
            Tool::Dump => "pgwal dump",
            Tool::Receive => "pgwal receive",
            Tool::Cleanup => "pgwal archive cleanup",
        }
    }

    /// The tool whose name is `file_name` (argv[0]'s file name), if any.
    pub fn from_pg_name(file_name: &str) -> Option<Tool> {
        [Tool::Dump, Tool::Receive, Tool::Cleanup]
            .into_iter()
            .find(|t| t.pg_name() == file_name)
    }

    /// The PostgreSQL tool's own long options (PostgreSQL 18).
    pub fn native_longs(self) -> &'static [&'static str] {
        match self {
            Tool::Dump => &[
                "bkp-details",
                "block",
                "end",
                "follow",
                "fork",
                "fullpage",
                "help",
                "limit",
                "path",
                "quiet",
                "relation",
                "rmgr",
                "save-fullpage",
                "start",
                "stats",
                "timeline",
                "version",
                "xid",
            ],
            Tool::Receive => &[
                "directory",
                "dbname",
                "endpos",
                "host",
                "no-loop",
                "no-password",
                "password",
                "port",
                "status-interval",
                "slot",
                "username",
                "verbose",
                "version",
                "compress",
                "create-slot",
                "drop-slot",
                "if-not-exists",
                "synchronous",
                "no-sync",
                "help",
            ],
            Tool::Cleanup => &[
                "clean-backup-history",
                "debug",
                "dry-run",
                "help",
                "strip-extension",
                "version",
            ],
        }
    }

    /// The exit status of a usage error (pg_archivecleanup uses 2, the others 1).
    pub fn usage_status(self) -> u8 {
        match self {
            Tool::Cleanup => 2,
            _ => 1,
        }
    }
}

/// How the program was invoked.
#[derive(Clone, Debug)]
pub struct Prog {
    /// The tool.
    pub tool: Tool,
    /// The message prefix: `pgwal dump`, or argv[0]'s file name in drop-in mode.
    pub name: String,
    /// argv[0] as given (glibc prefixes option-syntax errors with it).
    pub argv0: String,
    /// Invoked under the PostgreSQL tool's name.
    pub dropin: bool,
}

static PROG: OnceLock<Prog> = OnceLock::new();

/// Records how the program was invoked (once, at start).
pub fn set(p: Prog) {
    let _ = PROG.set(p);
}

/// The message prefix (`pgwal` before [`set`]).
pub fn name() -> &'static str {
    PROG.get().map_or("pgwal", |p| p.name.as_str())
}

/// Whether the binary runs under a PostgreSQL tool's name.
pub fn dropin() -> bool {
    PROG.get().is_some_and(|p| p.dropin)
}

/// The `--version` text: the PostgreSQL tool's first line in drop-in mode, then pgwal's own.
pub fn version_text(tool: Tool, dropin: bool) -> String {
    let own = env!("CARGO_PKG_VERSION");
    if dropin {
        format!(
            "{} (PostgreSQL) {NEWEST_MAJOR}\n{} (pgwal) {own}\n",
            tool.pg_name(),
            tool.pg_name()
        )
    } else {
        format!(
            "{} (pgwal) {own}, for PostgreSQL 13 to {NEWEST_MAJOR}\n",
            tool.pgwal_name()
        )
    }
}

/// The C library's text for an I/O error (`%m`), without Rust's `(os error N)`.
pub fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// A mistake on the command line: reported with `error:`, an optional `detail:`, and the hint
/// to try `--help`, as PostgreSQL's tools report theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// The error line.
    pub msg: String,
    /// The detail line, if any.
    pub detail: Option<String>,
}

impl Usage {
    /// A usage error without detail.
    pub fn new(msg: impl Into<String>) -> Usage {
        Usage {
            msg: msg.into(),
            detail: None,
        }
    }

    /// Prints the error, detail and hint lines with the program's name.
    pub fn print(&self) {
        let n = name();
        eprintln!("{n}: error: {}", self.msg);
        if let Some(d) = &self.detail {
            eprintln!("{n}: detail: {d}");
        }
        print_hint();
    }
}

/// Prints the `Try "PROG --help"` hint.
pub fn print_hint() {
    let n = name();
    eprintln!("{n}: hint: Try \"{n} --help\" for more information.");
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Usage {}

/// One option line of a help page: its spelling and its description's lines.
pub type HelpOption<'a> = (&'a str, &'a [&'a str]);

/// A `--help` page laid out as PostgreSQL's tools lay theirs out: a summary line, usage,
/// sections of options with descriptions in a column, and a footer.
pub struct HelpPage<'a> {
    /// The first line.
    pub summary: &'a str,
    /// The usage line after the program name.
    pub usage: &'a str,
    /// Sections: title and (option spelling, description lines).
    pub sections: &'a [(&'a str, &'a [HelpOption<'a>])],
    /// Lines after the sections.
    pub footer: &'a [&'a str],
    /// The description column (counted from the start of the line).
    pub column: usize,
}

impl HelpPage<'_> {
    /// The page as text, for the program `prog`.
    pub fn render(&self, prog: &str) -> String {
        let mut s = format!(
            "{prog} {}\n\nUsage:\n  {prog} {}\n",
            self.summary, self.usage
        );
        for (title, opts) in self.sections {
            s.push_str(&format!("\n{title}\n"));
            for (spelling, desc) in *opts {
                let head = format!("  {spelling}");
                let mut lines = desc.iter();
                if head.len() + 1 > self.column {
                    s.push_str(&head);
                    s.push('\n');
                } else if let Some(first) = lines.next() {
                    s.push_str(&format!("{head:<w$}{first}\n", w = self.column));
                } else {
                    s.push_str(&head);
                    s.push('\n');
                }
                for l in lines {
                    s.push_str(&format!("{:w$}{l}\n", "", w = self.column));
                }
            }
        }
        if !self.footer.is_empty() {
            s.push('\n');
            for l in self.footer {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }
}

#[cfg(test)]
mod newest_tests {
    #[test]
    fn newest_major_is_the_newest_the_library_decodes() {
        let newest = pgwal::wal::PgVersion::ALL
            .iter()
            .map(|v| v.major())
            .max()
            .unwrap_or_default();
        assert_eq!(super::NEWEST_MAJOR, newest);
    }
}
