//! `lifeboat wal push` and `lifeboat wal fetch`

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use lifeboat_postgres::PgError;
use lifeboat_postgres::archive::{self, Cluster, FetchOutcome, FromSpool, PushReport};
use lifeboat_postgres::spool::{self, Spool};

use crate::cli::{Global, WalFetchArgs, WalPushAheadArgs, WalPushArgs};
use crate::commands::open_repo;
use crate::exit;
use crate::output;
use crate::settings::Settings;

/// Exit code of `wal fetch` for any error other than "not in the archive":
/// above 125, so PostgreSQL stops recovery rather than ending it early.
pub const FETCH_FATAL: u8 = 200;

/// How long `wal push` waits for the background pusher before archiving
/// the file itself.
const PUSHER_PATIENCE: Duration = Duration::from_secs(300);

fn pgdata(arg: &Option<PathBuf>) -> Result<PathBuf> {
    match arg {
        Some(p) => Ok(p.clone()),
        None => match std::env::var_os("PGDATA").filter(|p| !p.is_empty()) {
            Some(p) => Ok(PathBuf::from(p)),
            None => std::env::current_dir().context("cannot find the current directory"),
        },
    }
}

/// The global options as flags, for starting another lifeboat the same way.
pub fn global_args(g: &Global) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    if let Some(c) = &g.config {
        out.extend(["--config".into(), abs(c).into_os_string()]);
    }
    if let Some(r) = &g.repo {
        out.extend(["--repo".into(), r.into()]);
    }
    if let Some(f) = &g.password_file {
        out.extend(["--password-file".into(), abs(f).into_os_string()]);
    }
    if let Some(c) = &g.password_command {
        out.extend(["--password-command".into(), c.into()]);
    }
    out
}

/// Starts the background pusher unless one is running.
fn ensure_pusher(g: &Global, spool: &Spool, pgdata: &Path, parallel: usize) -> Result<()> {
    let Some(lock) = spool.try_lock_pusher() else {
        return Ok(()); // one is running
    };
    drop(lock);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(spool.pusher_log())
        .context("cannot open the pusher log")?;
    let exe = std::env::current_exe().context("cannot find the lifeboat executable")?;
    std::process::Command::new(exe)
        .args(global_args(g))
        .args([
            "wal",
            "push-ahead",
            "--parallel",
            &parallel.to_string(),
            "--pgdata",
        ])
        .arg(pgdata)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: signals to the archiver's group leave it be.
        .process_group(0)
        .spawn()
        .context("cannot start the background WAL pusher")?;
    Ok(())
}

/// Waits for the background pusher to archive `path`; `None` if it went away
/// without doing so.
async fn wait_for_pusher(
    cluster: &Cluster,
    spool: &Spool,
    name: &str,
    path: &Path,
) -> Result<Option<PushReport>> {
    let started = Instant::now();
    loop {
        match archive::push_from_spool(cluster, spool, path)? {
            FromSpool::Archived(r) => return Ok(Some(r)),
            FromSpool::Unverified => return Ok(None),
            FromSpool::NotYet => {}
        }
        if let Some(why) = spool.take_failed(name) {
            bail!(PgError::WalRefused(why));
        }
        if started.elapsed() > Duration::from_millis(500)
            && let Some(lock) = spool.try_lock_pusher()
        {
            drop(lock);
            // The pusher ended; it may have archived the file just before.
            return Ok(match archive::push_from_spool(cluster, spool, path)? {
                FromSpool::Archived(r) => Some(r),
                FromSpool::NotYet | FromSpool::Unverified => None,
            });
        }
        if started.elapsed() > PUSHER_PATIENCE {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Archives one WAL file.
pub async fn push(g: &Global, args: &WalPushArgs) -> Result<u8> {
    let dir = pgdata(&args.pgdata)?;
    let cluster = Cluster::open(&dir)?;
    let spool = Spool::open(&spool::default_root(), cluster.sysid)?;
    let name = args
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    // A record made from another version of the file is not trusted: this
    // process archives the file itself, which compares it with the archive.
    let report = match archive::push_from_spool(&cluster, &spool, &args.path)? {
        FromSpool::Archived(r) => Some(r),
        FromSpool::Unverified => None,
        FromSpool::NotYet if args.ahead > 0 && archive::pushable_ahead(&cluster, &args.path) => {
            ensure_pusher(g, &spool, &dir, args.ahead)?;
            wait_for_pusher(&cluster, &spool, &name, &args.path).await?
        }
        FromSpool::NotYet => None,
    };
    let report = match report {
        Some(r) => r,
        None => {
            let repo = open_repo(g).await?;
            archive::push(&repo, &cluster, &args.path).await?
        }
    };
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if g.json {
        output::json(&report)?;
    }
    Ok(exit::OK)
}

/// The background pusher.
pub async fn push_ahead(g: &Global, args: &WalPushAheadArgs) -> Result<()> {
    let cluster = Cluster::open(&args.pgdata)?;
    let spool = Spool::open(&spool::default_root(), cluster.sysid)?;
    let Some(_lock) = spool.try_lock_pusher() else {
        return Ok(()); // another pusher got there first
    };
    let repo = open_repo(g).await?;
    let report = archive::push_ahead(
        &repo,
        &cluster,
        &spool,
        args.parallel,
        Duration::from_secs(2),
    )
    .await?;
    for (name, why) in &report.failed {
        eprintln!(
            "{} failed to archive {name}: {why}",
            chrono::Utc::now().format("%Y-%m-%d %H:%M:%S")
        );
    }
    Ok(())
}

/// Restores one WAL file; the exit code tells PostgreSQL what happened.
pub async fn fetch(g: &Global, args: &WalFetchArgs) -> u8 {
    match fetch_inner(g, args).await {
        Ok(FetchOutcome::Restored) => exit::OK,
        Ok(FetchOutcome::Missing) => exit::FAILURE,
        Err(e) => {
            eprintln!(
                "error: lifeboat wal fetch {}: {}",
                args.name,
                exit::message(&e)
            );
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
    // The repository's own error is kept, typed: its class and hint reach
    // the message PostgreSQL logs.
    let open = || async {
        open_repo(g)
            .await
            .map_err(|e| match e.downcast::<lifeboat_repo::RepoError>() {
                Ok(r) => lifeboat_postgres::PgError::Repo(r),
                Err(e) => lifeboat_postgres::PgError::Setup(exit::message(&e)),
            })
    };
    Ok(archive::fetch(
        &storage,
        &settings.location_text,
        open,
        cluster.sysid,
        &spool,
        &args.name,
        &dest,
        args.prefetch,
    )
    .await?)
}
