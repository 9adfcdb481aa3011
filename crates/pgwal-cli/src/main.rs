//! The `pgwal` command line: `pgwal dump` (pg_waldump), `pgwal receive` (pg_receivewal) and
//! `pgwal archive` (archive_command / restore_command helpers).

use std::process::ExitCode;

use clap::Parser;

mod archive;
mod dump;
mod receive;

/// pgwal: PostgreSQL write-ahead log toolkit.
#[derive(Debug, Parser)]
#[command(name = "pgwal", version, about, propagate_version = true)]
enum Cli {
    /// Decode and display WAL, as pg_waldump does (for PostgreSQL 13 to 18).
    Dump(dump::DumpArgs),
    /// WAL archive commands: push (archive_command), fetch (restore_command), cleanup, verify, status.
    Archive(archive::ArchiveArgs),
    /// Stream WAL from a server into an archive directory, as pg_receivewal does.
    Receive(receive::ReceiveArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli {
        Cli::Dump(args) => dump::run(args),
        Cli::Archive(args) => archive::run(args),
        Cli::Receive(args) => receive::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("pgwal: error: {e:#}");
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
