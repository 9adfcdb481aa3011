//! `pgwal install-links DIR`: the links that make pgwal a drop-in for pg_waldump,
//! pg_receivewal and pg_archivecleanup.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use crate::prog::Tool;

/// Arguments of `pgwal install-links`.
#[derive(Debug, Args)]
pub struct InstallLinksArgs {
    /// Directory to create the links in (created if missing).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Replace files or links of those names that already exist.
    #[arg(long)]
    force: bool,
    /// Make hard links instead of symbolic links.
    #[arg(long)]
    hard: bool,
}

/// Creates the links, printing each one made.
pub fn run(a: &InstallLinksArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("could not find the pgwal binary's path")?;
    let exe = exe.canonicalize().unwrap_or(exe);
    std::fs::create_dir_all(&a.dir)
        .with_context(|| format!("could not create directory \"{}\"", a.dir.display()))?;
    for tool in [Tool::Dump, Tool::Receive, Tool::Cleanup] {
        let link = a.dir.join(tool.pg_name());
        make_link(&exe, &link, a.force, a.hard)?;
        println!("{} -> {}", link.display(), exe.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn make_link(exe: &Path, link: &Path, force: bool, hard: bool) -> anyhow::Result<()> {
    if link.symlink_metadata().is_ok() {
        if link.canonicalize().ok().as_deref() == Some(exe) && !hard {
            return Ok(());
        }
        if !force {
            bail!(
                "\"{}\" already exists (use --force to replace it)",
                link.display()
            );
        }
        std::fs::remove_file(link)
            .with_context(|| format!("could not remove \"{}\"", link.display()))?;
    }
    let made = if hard {
        std::fs::hard_link(exe, link)
    } else {
        std::os::unix::fs::symlink(exe, link)
    };
    made.with_context(|| format!("could not create link \"{}\"", link.display()))
}
