//! The `pgwal` command line: `pgwal dump` (pg_waldump), `pgwal receive` (pg_receivewal) and
//! `pgwal archive` (archive_command / restore_command helpers). Invoked as `pg_waldump`,
//! `pg_receivewal` or `pg_archivecleanup` (a link made by `pgwal install-links`), the binary is
//! that tool (drop-in mode; see [`prog`]).

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _, Parser};

mod archive;
mod dump;
mod getopt;
mod links;
mod prog;
mod receive;
mod report;

use prog::{Prog, Tool, Usage};

/// pgwal: PostgreSQL write-ahead log toolkit.
#[derive(Debug, Parser)]
#[command(name = "pgwal", version, about, propagate_version = true)]
enum Cli {
    /// Decode and display WAL, as pg_waldump does (for PostgreSQL 13 to 19).
    Dump(dump::DumpArgs),
    /// WAL archive commands: push (archive_command), fetch (restore_command), cleanup, verify, status.
    Archive(archive::ArchiveArgs),
    /// Stream WAL from a server into an archive directory, as pg_receivewal does.
    Receive(receive::ReceiveArgs),
    /// Write an HTML report about a range of WAL (dump's input options; -o FILE).
    Report(report::ReportArgs),
    /// Create links named pg_waldump, pg_receivewal and pg_archivecleanup to this binary in DIR
    /// (invoked under those names, pgwal behaves as those tools).
    InstallLinks(links::InstallLinksArgs),
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let argv0 = args.first().cloned().unwrap_or_else(|| "pgwal".to_owned());
    let base = Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(tool) = Tool::from_pg_name(&base) {
        let p = Prog {
            tool,
            name: base,
            argv0,
            dropin: true,
        };
        return run_tool(p, &args[1..]);
    }
    let sub = match (
        args.get(1).map(String::as_str),
        args.get(2).map(String::as_str),
    ) {
        (Some("dump"), _) => Some((Tool::Dump, 2)),
        (Some("receive"), _) => Some((Tool::Receive, 2)),
        (Some("archive"), Some("cleanup")) => Some((Tool::Cleanup, 3)),
        _ => None,
    };
    if let Some((tool, skip)) = sub {
        let p = Prog {
            tool,
            name: tool.pgwal_name().to_owned(),
            argv0: tool.pgwal_name().to_owned(),
            dropin: false,
        };
        return run_tool(p, &args[skip..]);
    }
    let cli = Cli::parse_from(args.iter().map(OsString::from));
    let result = match cli {
        Cli::Dump(args) => dump::run(args, &getopt::Scanned::default()),
        Cli::Archive(args) => archive::run(args),
        Cli::Receive(args) => receive::run(args, &getopt::Scanned::default()),
        Cli::Report(args) => report::run(args),
        Cli::InstallLinks(args) => links::run(&args),
    };
    finish(result, 1)
}

/// Runs one of the tools pgwal stands in for: `--help` and `--version`, then the command line
/// scanned as getopt_long scans it, each value checked in the order given, then the tool.
fn run_tool(p: Prog, args: &[String]) -> ExitCode {
    let tool = p.tool;
    let dropin = p.dropin;
    let argv0 = p.argv0.clone();
    prog::set(p);
    let name = prog::name();
    let status = tool.usage_status();
    let mut cmd = subcommand(tool).name(name).args_override_self(true);
    // PostgreSQL's tools honour --help and --version only as the first argument.
    match args.first().map(String::as_str) {
        Some("--help" | "-?") => {
            if dropin {
                print!("{}", help_page(tool, name));
            } else {
                let _ = cmd.print_help();
            }
            return ExitCode::SUCCESS;
        }
        Some("--version" | "-V") => {
            print!("{}", prog::version_text(tool, dropin));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    if dropin {
        cmd = cmd.disable_help_flag(true);
    }
    // Under its own name, `--version` may come anywhere; PostgreSQL's tools know `--help` and
    // `--version` after the first argument only to refuse them (with the hint alone).
    let extra: &[(&str, Option<char>, &str)] = if dropin {
        &[
            ("late_help", None, "help"),
            ("late_version", None, "version"),
        ]
    } else {
        &[("version", Some('V'), "version")]
    };
    let mut scanned = match getopt::scan(&cmd, extra, tool.native_longs(), args) {
        Ok(s) => s,
        Err(e) => {
            if dropin {
                eprintln!("{argv0}: {e}");
            } else {
                eprintln!("{name}: error: {e}");
            }
            prog::print_hint();
            return ExitCode::from(status);
        }
    };
    if scanned.has("version") {
        print!("{}", prog::version_text(tool, dropin));
        return ExitCode::SUCCESS;
    }
    let late = scanned
        .options
        .iter()
        .position(|g| g.id == "late_help" || g.id == "late_version");
    if let Some(at) = late {
        scanned.options.truncate(at);
        scanned.operands.clear();
    }
    // Option values in the order given, operand counts: before clap and before any file.
    let checked = match tool {
        Tool::Dump => dump::check_options(&scanned).map(|c| matches!(c, dump::Checked::Listed)),
        Tool::Receive => receive::check_options(&scanned).map(|()| false),
        Tool::Cleanup => archive::check_cleanup_options(&scanned).map(|()| false),
    };
    match checked {
        Ok(true) => return ExitCode::SUCCESS,
        Ok(false) => {}
        Err(e) => return finish(Err(e), status),
    }
    if late.is_some() {
        prog::print_hint();
        return ExitCode::from(status);
    }
    let canonical = std::iter::once(name.to_owned()).chain(scanned.canonical().iter().cloned());
    let matches = match cmd.try_get_matches_from_mut(canonical) {
        Ok(m) => m,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // What getopt lets through and clap still refuses (operand counts are checked by
            // each tool before this point).
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            Usage::new(first.trim_start_matches("error: ")).print();
            return ExitCode::from(status);
        }
    };
    let result = match tool {
        Tool::Dump => dump::DumpArgs::from_arg_matches(&matches)
            .map_err(anyhow::Error::from)
            .and_then(|a| dump::run(a, &scanned)),
        Tool::Receive => receive::ReceiveArgs::from_arg_matches(&matches)
            .map_err(anyhow::Error::from)
            .and_then(|a| receive::run(a, &scanned)),
        Tool::Cleanup => archive::CleanupArgs::from_arg_matches(&matches)
            .map_err(anyhow::Error::from)
            .map(|a| archive::cleanup(a, &scanned)),
    };
    finish(result, status)
}

/// The clap definition of `tool`'s subcommand, taken from [`Cli`].
fn subcommand(tool: Tool) -> clap::Command {
    let cli = Cli::command();
    let found = match tool {
        Tool::Dump => cli.find_subcommand("dump"),
        Tool::Receive => cli.find_subcommand("receive"),
        Tool::Cleanup => cli
            .find_subcommand("archive")
            .and_then(|a| a.find_subcommand("cleanup")),
    };
    found
        .cloned()
        .unwrap_or_else(|| clap::Command::new(tool.pgwal_name()))
}

fn help_page(tool: Tool, name: &str) -> String {
    match tool {
        Tool::Dump => dump::help_page().render(name),
        Tool::Receive => receive::help_page().render(name),
        Tool::Cleanup => archive::cleanup_help_page().render(name),
    }
}

/// Reports the outcome: usage errors with the hint (exit `usage_status`), other errors with
/// the program's name (exit 1), a broken pipe as success.
fn finish(result: anyhow::Result<ExitCode>, usage_status: u8) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            if let Some(u) = e.downcast_ref::<Usage>() {
                u.print();
                return ExitCode::from(usage_status);
            }
            eprintln!("{}: error: {e:#}", prog::name());
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
