//! The `pgwal` command line.

use std::process::ExitCode;

use clap::Parser;

/// pgwal: PostgreSQL write-ahead log toolkit.
#[derive(Debug, Parser)]
#[command(name = "pgwal", version, about)]
enum Cli {}

fn main() -> ExitCode {
    let _cli = Cli::parse();
    ExitCode::SUCCESS
}
