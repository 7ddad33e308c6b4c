//! `lifeboat wal push` and `lifeboat wal fetch`

use std::path::PathBuf;

use anyhow::{Context, Result};
use lifeboat_postgres::archive::{self, Cluster, FetchOutcome, PushOutcome};
use lifeboat_postgres::spool::{self, Spool};

use crate::cli::{Global, WalFetchArgs, WalPushArgs};
use crate::commands::open_repo;
use crate::exit;
use crate::output;
use crate::settings::Settings;

/// Exit code of `wal fetch` for any error other than "not in the archive":
/// above 125, so PostgreSQL stops recovery rather than ending it early.
pub const FETCH_FATAL: u8 = 200;

fn pgdata(arg: &Option<PathBuf>) -> Result<PathBuf> {
    match arg {
        Some(p) => Ok(p.clone()),
        None => match std::env::var_os("PGDATA").filter(|p| !p.is_empty()) {
            Some(p) => Ok(PathBuf::from(p)),
            None => std::env::current_dir().context("cannot find the current directory"),
        },
    }
}

/// Archives one WAL file.
pub async fn push(g: &Global, args: &WalPushArgs) -> Result<u8> {
    let cluster = Cluster::open(&pgdata(&args.pgdata)?)?;
    let spool = Spool::open(&spool::default_root(), cluster.sysid)?;
    let report = match archive::push_from_spool(&cluster, &spool, &args.path)? {
        Some(r) => r,
        None => {
            let repo = open_repo(g).await?;
            archive::push(&repo, &cluster, &spool, &args.path, args.ahead).await?
        }
    };
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if g.json {
        output::json(&report)?;
    } else if !g.quiet && report.outcome == PushOutcome::Stored && !report.ahead.is_empty() {
        eprintln!(
            "archived {} and {} more ahead",
            report.name,
            report.ahead.len()
        );
    }
    Ok(exit::OK)
}

/// Restores one WAL file; the exit code tells PostgreSQL what happened.
pub async fn fetch(g: &Global, args: &WalFetchArgs) -> u8 {
    match fetch_inner(g, args).await {
        Ok(FetchOutcome::Restored) => exit::OK,
        Ok(FetchOutcome::Missing) => exit::FAILURE,
        Err(e) => {
            eprintln!("error: lifeboat wal fetch {}: {e:#}", args.name);
            if let Some(h) = exit::hint(&e) {
                eprintln!("HINT: {h}");
            }
            FETCH_FATAL
        }
    }
}

async fn fetch_inner(g: &Global, args: &WalFetchArgs) -> Result<FetchOutcome> {
    let dir = pgdata(&args.pgdata)?;
    let cluster = Cluster::open(&dir)?;
    let spool = Spool::open(&spool::default_root(), cluster.sysid)?;
    let dest = if args.path.is_absolute() {
        args.path.clone()
    } else {
        dir.join(&args.path)
    };
    let settings = Settings::resolve(g)?;
    let storage = lifeboat_storage::open(&settings.location, &settings.storage)?;
    let open = || async {
        open_repo(g)
            .await
            .map_err(|e| lifeboat_postgres::PgError::Setup(format!("{e:#}")))
    };
    Ok(archive::fetch(
        &storage,
        open,
        cluster.sysid,
        &spool,
        &args.name,
        &dest,
        args.prefetch,
    )
    .await?)
}
