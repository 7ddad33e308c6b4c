//! The `lifeboat` command: parses arguments and calls the libraries.

mod cli;
mod commands;
mod exit;
mod output;
mod password;
mod settings;

use std::process::ExitCode;

use clap::Parser;

use cli::{
    BackupCommand, Cli, Command, InfoCommand, KeyCommand, RepairCommand, RestoreCommand, WalCommand,
};

/// Caps glibc's malloc arenas at two.
///
/// Backup and restore hand multi-MiB buffers between many threads; with an
/// arena per thread, glibc keeps the freed buffers of every arena resident and
/// peak memory triples. Two arenas keep it flat at no measurable cost in speed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    // SAFETY: `mallopt` takes two plain integers, reads and writes no memory
    // of ours, and only tunes the allocator. glibc marks it unsafe to call
    // concurrently with allocator initialisation in other threads, so it runs
    // first thing in `main`, while this is the only thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let g = &cli.global;
    match &cli.command {
        Command::Init(a) => commands::init::run(g, a).await,
        Command::Backup(BackupCommand::Files(a)) => commands::backup::files(g, a).await,
        Command::Backup(BackupCommand::Postgres(a)) => commands::backup::postgres(g, a).await,
        Command::Snapshots => commands::snapshots::run(g).await,
        Command::Ls(a) => commands::ls::run(g, a).await,
        Command::Restore(RestoreCommand::Files(a)) => commands::restore::files(g, a).await,
        Command::Restore(RestoreCommand::Postgres(a)) => {
            commands::restore_postgres::run(g, a).await
        }
        Command::Check(a) => commands::check::run(g, a).await,
        Command::Key(KeyCommand::List) => commands::key::list(g).await,
        Command::Key(KeyCommand::Add(a)) => commands::key::add(g, a).await,
        Command::Key(KeyCommand::Remove(a)) => commands::key::remove(g, a).await,
        Command::Repair(RepairCommand::Index) => commands::repair::index(g).await,
        Command::Repair(RepairCommand::Plans) => commands::repair::plans(g).await,
        Command::Info(InfoCommand::Postgres) => commands::info::postgres(g).await,
        Command::Export(a) => commands::export::run(g, a).await,
        Command::Forget(a) => commands::forget::forget(g, a).await,
        Command::Pin(a) => commands::forget::pin(g, a).await,
        Command::Unpin(a) => commands::forget::unpin(g, a).await,
        Command::Prune(a) => commands::prune::prune(g, a).await,
        Command::Copy(a) => commands::copy::copy(g, a).await,
        Command::VerifyData(a) => commands::verify::verify_data(g, a).await,
        Command::Maintenance(c) => commands::verify::maintenance(g, c).await,
        Command::Drill(a) => commands::drill::drill(g, a).await,
        Command::Drills(a) => commands::drill::drills(g, a).await,
        Command::Status => commands::drill::status(g).await,
        Command::Recover(a) => commands::recover::recover(g, a).await,
        Command::Wal(WalCommand::Push(a)) => return commands::wal::push(g, a).await,
        Command::Wal(WalCommand::PushAhead(a)) => commands::wal::push_ahead(g, a).await,
        Command::Wal(WalCommand::Fetch(a)) => return Ok(commands::wal::fetch(g, a).await),
    }
    .map(|()| exit::OK)
}

/// Warns when a `--db` on the command line carries a password: every local
/// user can read it in the process list.
fn warn_about_passwords_in_arguments() {
    let args: Vec<String> = std::env::args().collect();
    let given = args
        .iter()
        .enumerate()
        .filter_map(|(i, a)| match a.strip_prefix("--db=") {
            Some(v) => Some(v),
            None if a == "--db" => args.get(i + 1).map(String::as_str),
            None => None,
        });
    if given.into_iter().any(lifeboat_postgres::sql::has_password) {
        eprintln!(
            "warning: the password in --db is visible to every local user in the process list (ps); \
             put it in PGPASSWORD, ~/.pgpass or a service file (service=NAME in --db) instead"
        );
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    warn_about_passwords_in_arguments();
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
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", exit::message(&e));
            if let Some(h) = exit::hint(&e) {
                eprintln!("HINT: {h}");
            }
            ExitCode::from(exit::code(&e))
        }
    }
}
