//! The `lifeboat` command: parses arguments and calls the libraries.

mod cli;
mod commands;
mod exit;
mod output;
mod password;
mod settings;

use std::process::ExitCode;

use clap::Parser;

use cli::{BackupCommand, Cli, Command, KeyCommand, RestoreCommand};

async fn run(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    match &cli.command {
        Command::Init(a) => commands::init::run(g, a).await,
        Command::Backup(BackupCommand::Files(a)) => commands::backup::files(g, a).await,
        Command::Snapshots => commands::snapshots::run(g).await,
        Command::Ls(a) => commands::ls::run(g, a).await,
        Command::Restore(RestoreCommand::Files(a)) => commands::restore::files(g, a).await,
        Command::Check(a) => commands::check::run(g, a).await,
        Command::Key(KeyCommand::List) => commands::key::list(g).await,
        Command::Key(KeyCommand::Add(a)) => commands::key::add(g, a).await,
        Command::Key(KeyCommand::Remove(a)) => commands::key::remove(g, a).await,
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("error: {e:#}");
            if let Some(h) = exit::hint(&e) {
                eprintln!("HINT: {h}");
            }
            ExitCode::from(exit::code(&e))
        }
    }
}
