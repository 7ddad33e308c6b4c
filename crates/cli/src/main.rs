//! The `lifeboat` command: parses arguments and calls the libraries.

/// Prints a line on stdout like `println!`, inside a function returning
/// `anyhow::Result`: a closed pipe ends the command quietly instead of
/// panicking.
macro_rules! outln {
    () => {
        $crate::output::line(format_args!(""))?
    };
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))?
    };
}

mod audit;
mod cli;
mod commands;
mod exit;
mod logging;
mod output;
mod password;
mod settings;
mod units;

use std::process::ExitCode;

use clap::Parser;

use cli::{
    AlertCommand, BackupCommand, Cli, Command, GenerateCommand, InfoCommand, KeyCommand,
    RepairCommand, RestoreCommand, WalCommand,
};

/// Caps glibc's malloc arenas at two and fixes its mmap threshold.
///
/// Backup and restore hand multi-MiB buffers between many threads; with an
/// arena per thread, glibc keeps the freed buffers of every arena resident and
/// peak memory triples. Two arenas keep it flat at no measurable cost in speed.
/// glibc also raises its mmap threshold to the size of each large buffer
/// freed, after which buffers of that size come from the arenas and stay
/// resident when freed: a logical backup peaked at 117 MiB instead of 95 MiB.
/// A fixed threshold of 1 MiB keeps the multi-MiB buffers (chunks, packs)
/// mapped on their own and returned to the system when freed, while the
/// 256 KiB buffers of relation blocks, allocated per chunk by a restore, come
/// from the arenas (at 128 KiB, their page faults were 12 % of a restore).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_malloc() {
    // SAFETY: `mallopt` takes two plain integers, reads and writes no memory
    // of ours, and only tunes the allocator. glibc marks it unsafe to call
    // concurrently with allocator initialisation in other threads, so it runs
    // first thing in `main`, while this is the only thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let g = &cli.global;
    logging::init(g)?;
    let started = std::time::Instant::now();
    let verb = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    tracing::info!(command = %verb, version = env!("CARGO_PKG_VERSION"), "lifeboat started");
    let result = dispatch(&cli).await;
    if let Some(action) = audit::action(&cli.command) {
        audit::record(action, &result).await;
    }
    match &result {
        Ok(code) => tracing::info!(
            exit = code,
            seconds = started.elapsed().as_secs_f64(),
            "lifeboat finished"
        ),
        Err(e) => {
            tracing::error!(exit = exit::code(e), error = %exit::message(e), seconds = started.elapsed().as_secs_f64(), "lifeboat failed")
        }
    }
    result
}

async fn dispatch(cli: &Cli) -> anyhow::Result<u8> {
    let g = &cli.global;
    // An unknown --source is bad usage, whatever the verb.
    if let Some(name) = &g.source {
        settings::FileSettings::load(g)?.source(name)?;
    }
    match &cli.command {
        Command::Init(a) => commands::init::run(g, a).await,
        Command::Backup(a) => match &a.what {
            Some(_) if g.source.is_some() => Err(exit::UsageError(
                "--source NAME backs up the declared source with its own settings: use `lifeboat --source NAME backup` without `files`, `postgres` or `bucket`".into(),
            )
            .into()),
            Some(BackupCommand::Files(f)) => commands::backup::files(g, f).await,
            Some(BackupCommand::Postgres(p)) => commands::backup::postgres(g, p).await,
            Some(BackupCommand::Bucket(b)) => commands::bucket::backup(g, b).await,
            None => match &a.set {
                Some(set) if g.source.is_some() => Err(exit::UsageError(format!(
                    "--set {set} backs up the set's own sources: leave out --source"
                ))
                .into()),
                Some(set) => commands::backup::set(g, set, &a.common).await,
                None => commands::backup::source(g, &a.common).await,
            },
        },
        Command::Snapshots(a) => commands::snapshots::run(g, a).await,
        Command::Version => commands::generate::version(g),
        Command::Generate(GenerateCommand::Completions { shell }) => {
            commands::generate::completions(*shell)
        }
        Command::Generate(GenerateCommand::Man { dir }) => commands::generate::man(g, dir),
        Command::Ls(a) => commands::ls::run(g, a).await,
        Command::Restore(RestoreCommand::Files(a)) => commands::restore::files(g, a).await,
        Command::Restore(RestoreCommand::Bucket(a)) => commands::bucket::restore(g, a).await,
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
        Command::Erase(a) => commands::erase::erase(g, a).await,
        Command::Erasures(a) => commands::erase::list(g, a).await,
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
        Command::Serve(a) => commands::serve::serve(g, a).await,
        Command::Runs(a) => commands::runs::runs(g, a).await,
        Command::Audit(a) => commands::audit::audit(g, a).await,
        Command::User(c) => commands::users::user(g, c).await,
        Command::Token(c) => commands::users::token(g, c).await,
        Command::Request(a) => commands::requests::request(g, a).await,
        Command::Requests(a) => commands::requests::list(g, a).await,
        Command::Approve(a) => commands::requests::approve(g, a).await,
        Command::Schedule(a) => commands::runs::schedule(g, a).await,
        Command::Alert(AlertCommand::Test) => commands::runs::alert_test(g).await,
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

/// A job of the daemon dies with it: the daemon sets
/// `LIFEBOAT_DIE_WITH_PARENT` to its process id, and the job asks the kernel
/// for SIGTERM when its parent goes (then checks the parent is still that
/// daemon, in case it died before).
fn die_with_parent() {
    let Some(parent) = std::env::var("LIFEBOAT_DIE_WITH_PARENT")
        .ok()
        .and_then(|p| p.parse::<i32>().ok())
    else {
        return;
    };
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM));
    if rustix::process::getppid().map(|p| p.as_raw_nonzero().get()) != Some(parent) {
        std::process::exit(i32::from(exit::FAILURE));
    }
}

/// Whether `--json` is on the command line (for errors found before the
/// arguments are parsed).
fn json_requested() -> bool {
    std::env::args_os().skip(1).any(|a| a == "--json")
}

/// Prints an error as one JSON document on stderr:
/// `{"error": MESSAGE, "exit": CODE, "hint": HINT-or-null}`.
fn report_json_error(message: &str, code: u8, hint: Option<&str>) {
    let doc = serde_json::json!({ "error": message, "exit": code, "hint": hint });
    eprintln!("{doc}");
}

fn main() -> ExitCode {
    tune_malloc();
    die_with_parent();
    warn_about_passwords_in_arguments();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if e.use_stderr() && json_requested() => {
            let text = e.kind().to_string();
            let detail = e.to_string();
            let first = detail.lines().next().unwrap_or(&text);
            report_json_error(
                first.strip_prefix("error: ").unwrap_or(first),
                exit::USAGE,
                Some("`lifeboat help` lists the commands; `lifeboat COMMAND --help` their options"),
            );
            return ExitCode::from(exit::USAGE);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let json = cli.global.json;
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
        Err(e) if e.downcast_ref::<output::ClosedPipe>().is_some() => ExitCode::from(exit::OK),
        Err(e) => {
            let code = exit::code(&e);
            if json {
                report_json_error(&exit::message(&e), code, exit::hint(&e));
            } else {
                eprintln!("error: {}", exit::message(&e));
                if let Some(h) = exit::hint(&e) {
                    eprintln!("HINT: {h}");
                }
            }
            ExitCode::from(code)
        }
    }
}
