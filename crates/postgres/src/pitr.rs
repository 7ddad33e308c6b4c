//! `restore postgres`: restore a base backup and recover to a point in time.
//!
//! Plan first, write nothing until the plan holds: the archive is listed,
//! the newest base backup that ends before the target is chosen, and a
//! target outside the recoverable window (or beyond a WAL gap) is refused
//! with the window in the message. Then the files are restored in parallel
//! (and synced), the recovery settings written (`recovery.signal` and a
//! marked block in `postgresql.auto.conf`, with `restore_command` calling
//! `lifeboat wal fetch`), and optionally the server started and watched
//! until it reaches the target.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_repo::progress::{DynProgress, Event};
use lifeboat_repo::{Repository, RestoreOptions, RestoreSummary};
use serde::Serialize;

use std::collections::BTreeSet;

use crate::catalog::{BaseBackup, Catalog, Choice, Plan, Target, Window};
use crate::error::{PgError, Result};
use crate::server::{PgBin, Server, log_tail};
use crate::sql;

/// What the server does once it reaches the target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetAction {
    /// End recovery and open for writes on a new timeline.
    #[default]
    Promote,
    /// Stay in recovery, paused, for inspection.
    Pause,
    /// Shut down.
    Shutdown,
}

impl TargetAction {
    fn as_str(self) -> &'static str {
        match self {
            TargetAction::Promote => "promote",
            TargetAction::Pause => "pause",
            TargetAction::Shutdown => "shutdown",
        }
    }
}

/// Starting the restored server.
#[derive(Clone, Debug)]
pub struct StartOptions {
    /// Port to listen on.
    pub port: u16,
    /// Unix socket directory.
    pub socket_dir: PathBuf,
    /// How long to wait for recovery.
    pub timeout: Duration,
}

/// How to restore.
#[derive(Clone, Debug)]
pub struct PgRestoreOptions {
    /// Snapshot reference (`latest` or an id prefix).
    pub snapshot: String,
    /// The new data directory.
    pub target_dir: PathBuf,
    /// What to recover to.
    pub target: Target,
    /// Timeline to follow (default: the newest in the archive).
    pub timeline: Option<u32>,
    /// What to do at the target.
    pub action: TargetAction,
    /// Rewrite only what differs in an existing data directory.
    pub delta: bool,
    /// Tablespace destinations by oid (default: their original locations).
    pub tablespaces: Vec<(u32, PathBuf)>,
    /// The `restore_command` to write (calls `lifeboat wal fetch`).
    pub restore_command: String,
    /// Start the server and wait for the target.
    pub start: Option<StartOptions>,
    /// The restored cluster replaces the original: it keeps the source's
    /// WAL archiving, so the timeline it starts is archived into the
    /// repository as production's. Otherwise (copies, drills, inspections)
    /// archiving is switched off, so a copy never writes into the archive.
    pub new_primary: bool,
    /// Accept a target of `latest` although the archive has a gap: recover
    /// as far as it is continuous.
    pub up_to_gap: bool,
    /// Keep a restore record in the repository catalog.
    pub record: bool,
    /// Pack reads in flight.
    pub concurrency: usize,
    /// Plan only: choose the base backup, check the target and the
    /// destinations, report, and write nothing.
    pub dry_run: bool,
    /// Erasures to re-apply once recovery ends, while the server listens
    /// only on a private socket (`None`: nothing to re-apply).
    pub erasure: Option<crate::erasure::ErasureReplay>,
}

/// Where a started server ended up.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Reached {
    /// Time of the last transaction replayed.
    pub time: Option<DateTime<Utc>>,
    /// WAL position reached.
    pub lsn: String,
    /// Timeline the server is on.
    pub timeline: u32,
    /// Whether it is still in recovery (action `pause`).
    pub in_recovery: bool,
    /// Seconds from the start of the restore until the target was reached.
    pub seconds: f64,
}

/// What a restore did.
#[derive(Clone, Debug, Serialize)]
pub struct PgRestoreReport {
    /// The base backup used.
    pub snapshot: String,
    /// Its timeline, start and stop.
    pub backup_timeline: u32,
    /// The timeline followed.
    pub timeline: u32,
    /// The recoverable window from this backup.
    pub window: Window,
    /// The target.
    pub target: Target,
    /// The data directory.
    pub target_dir: PathBuf,
    /// File restore counts.
    pub files: RestoreSummary,
    /// Where the server got to (with `start`).
    pub reached: Option<Reached>,
    /// Whether the restored cluster archives into the repository.
    pub new_primary: bool,
    /// Things the person restoring should know.
    pub notes: Vec<String>,
    /// Recovery stops at a gap in the archive before the latest WAL
    /// (only with `up_to_gap`): the missing segment.
    pub stopped_at_gap: Option<String>,
    /// Only planned (`dry_run`): nothing was written.
    pub dry_run: bool,
    /// What re-applying the erasure ledger removed, per database.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub erased: Vec<(String, crate::erasure::ReplayReport)>,
}

fn check_destination(dir: &Path, delta: bool) -> Result<()> {
    if dir.join("postmaster.pid").exists() {
        return Err(PgError::Invalid(format!(
            "{} holds a running (or crashed) server's postmaster.pid; stop it first",
            dir.display()
        )));
    }
    let non_empty = std::fs::read_dir(dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if non_empty && !delta {
        return Err(PgError::Invalid(format!(
            "{} is not empty; restore into an empty or new directory, or pass --delta to rewrite only what differs",
            dir.display()
        )));
    }
    Ok(())
}

/// Settings lifeboat writes are kept between these lines, and replaced on
/// the next restore into the same directory.
const BEGIN: &str = "# --- lifeboat restore: begin ---";
const END: &str = "# --- lifeboat restore: end ---";

fn recovery_settings(opts: &PgRestoreOptions, plan: &Plan) -> Vec<(String, String)> {
    let mut s = vec![("restore_command".to_string(), opts.restore_command.clone())];
    match &opts.target {
        Target::Latest => {}
        Target::Immediate => s.push(("recovery_target".into(), "immediate".into())),
        Target::Time(t) => s.push((
            "recovery_target_time".into(),
            t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string(),
        )),
        Target::Lsn(l) => s.push(("recovery_target_lsn".into(), l.to_string())),
        Target::Xid(x) => s.push(("recovery_target_xid".into(), x.to_string())),
        Target::Name(n) => s.push(("recovery_target_name".into(), n.clone())),
    }
    s.push(("recovery_target_timeline".into(), plan.timeline.to_string()));
    if !opts.new_primary {
        s.push(("archive_mode".into(), "off".into()));
    }
    if opts.target != Target::Latest {
        s.push(("recovery_target_action".into(), opts.action.as_str().into()));
    }
    s
}

/// Rewrites `postgresql.auto.conf`: drops recovery settings (ours from an
/// earlier restore, or any left by others) and appends the new block.
fn write_recovery_conf(pgdata: &Path, settings: &[(String, String)]) -> Result<()> {
    let path = pgdata.join("postgresql.auto.conf");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let mut out = String::new();
    let mut inside = false;
    for line in old.lines() {
        let t = line.trim();
        if t == BEGIN {
            inside = true;
            continue;
        }
        if t == END {
            inside = false;
            continue;
        }
        let name = t.split(['=', ' ']).next().unwrap_or("");
        if inside || name == "restore_command" || name.starts_with("recovery_target") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(BEGIN);
    out.push('\n');
    for (k, v) in settings {
        out.push_str(&format!("{k} = {}\n", sql::conf_quote(v)));
    }
    out.push_str(END);
    out.push('\n');
    write_in_pgdata(pgdata, "postgresql.auto.conf", out.as_bytes())?;
    write_in_pgdata(pgdata, "recovery.signal", b"")?;
    let _ = std::fs::remove_file(pgdata.join("standby.signal"));
    Ok(())
}

/// Writes a file into the data directory durably, owned (like everything
/// there) by the directory's owner and private to it.
fn write_in_pgdata(pgdata: &Path, name: &str, data: &[u8]) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let path = pgdata.join(name);
    crate::spool::write_durably(&path, data)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| PgError::io(&path, e))?;
    if rustix::process::geteuid().is_root() {
        let m = std::fs::metadata(pgdata).map_err(|e| PgError::io(pgdata, e))?;
        std::os::unix::fs::chown(&path, Some(m.uid()), Some(m.gid()))
            .map_err(|e| PgError::io(&path, e))?;
    }
    Ok(())
}

/// Restores and (optionally) recovers. Nothing is written unless the target
/// is inside the recoverable window.
pub async fn restore(
    repo: &Repository,
    opts: &PgRestoreOptions,
    progress: DynProgress,
) -> Result<PgRestoreReport> {
    let started = Instant::now();
    progress.event(Event::Phase("planning"));
    let snapshots = repo.list_snapshots(&progress).await?;
    let backups: Vec<BaseBackup> = snapshots
        .iter()
        .filter_map(BaseBackup::from_snapshot)
        .collect();
    if backups.is_empty() {
        return Err(PgError::Invalid(
            "the repository holds no PostgreSQL base backup".into(),
        ));
    }
    let (only, sysid, seg_size) = if opts.snapshot == "latest" {
        let newest = backups.iter().max_by_key(|b| b.stop_time).cloned();
        let b = newest.ok_or_else(|| PgError::Invalid("no base backup".into()))?;
        (None, b.system_id(), wal_size(&b))
    } else {
        let e = repo.find_snapshot(&opts.snapshot, &progress).await?;
        let b = BaseBackup::from_snapshot(&e).ok_or_else(|| {
            PgError::Invalid(format!(
                "snapshot {} is not a PostgreSQL base backup",
                e.id.short()
            ))
        })?;
        (Some(e.id), b.system_id(), wal_size(&b))
    };
    let backups: Vec<BaseBackup> = backups
        .into_iter()
        .filter(|b| b.system_id() == sysid)
        .collect();
    let catalog = Catalog::load(repo, sysid, seg_size).await?;
    let mut adopted: BTreeSet<u32> = backups.iter().map(|b| b.timeline).collect();
    if opts.timeline.is_none() && catalog.has_side_branches() {
        let records = crate::restores::load(repo, sysid).await?;
        adopted.extend(crate::restores::primary_timelines(&records));
    }
    let plan = crate::catalog::plan(
        &catalog,
        &backups,
        &opts.target,
        &Choice {
            timeline: opts.timeline,
            only,
            adopted,
            up_to_gap: opts.up_to_gap,
        },
    )?;
    let pg = plan
        .backup
        .entry
        .snapshot
        .postgres
        .clone()
        .unwrap_or_default();

    // Erasures can only be re-applied to a server lifeboat starts and
    // promotes; one left in recovery would serve erased data read-only.
    if let (Some(er), Some(_)) = (&opts.erasure, &opts.start)
        && opts.action != TargetAction::Promote
    {
        return Err(PgError::Erasure(format!(
            "the erasure ledger has {} erased subject(s), which can only be removed from a server that is \
             promoted (--target-action promote); nothing was restored. Pass --skip-erasures to inspect the \
             data as it was, erased subjects included",
            er.erased.len()
        )));
    }
    // Destinations: the data directory and each tablespace.
    let target =
        std::path::absolute(&opts.target_dir).map_err(|e| PgError::io(&opts.target_dir, e))?;
    check_destination(&target, opts.delta)?;
    let mut spaces: Vec<(u32, PathBuf)> = Vec::new();
    for t in &pg.tablespaces {
        let dest = opts
            .tablespaces
            .iter()
            .find(|(oid, _)| *oid == t.oid)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| PathBuf::from(&t.location));
        check_destination(&dest, opts.delta).map_err(|e| {
            PgError::Invalid(format!(
                "tablespace {} ({}): {e}; map it elsewhere with --tablespace-map {}=DIR",
                t.name, t.oid, t.oid
            ))
        })?;
        spaces.push((t.oid, dest));
    }
    if opts.dry_run {
        let files = plan.backup.entry.snapshot.summary.files;
        let bytes = plan.backup.entry.snapshot.summary.bytes;
        return Ok(PgRestoreReport {
            snapshot: plan.backup.entry.id.to_hex(),
            backup_timeline: plan.backup.timeline,
            timeline: plan.timeline,
            window: plan.window.clone(),
            target: opts.target.clone(),
            target_dir: target,
            files: RestoreSummary {
                files,
                bytes,
                ..RestoreSummary::default()
            },
            reached: None,
            new_primary: opts.new_primary,
            notes: plan.notes.clone(),
            stopped_at_gap: match opts.target {
                Target::Latest => plan.window.gap.clone(),
                _ => None,
            },
            dry_run: true,
            erased: Vec::new(),
        });
    }
    let map_spaces = spaces.clone();
    let map_target = target.clone();
    let map: lifeboat_repo::restore::PathMap = Arc::new(move |p: &Path| {
        if let Ok(rest) = p.strip_prefix("pgdata") {
            return Some(map_target.join(rest));
        }
        let rest = p.strip_prefix("tablespaces").ok()?;
        let mut comps = rest.components();
        let oid: u32 = comps.next()?.as_os_str().to_str()?.parse().ok()?;
        let dest = &map_spaces.iter().find(|(o, _)| *o == oid)?.1;
        Some(dest.join(comps.as_path()))
    });
    progress.event(Event::Phase("restoring files"));
    let mut delta_roots = vec![target.clone()];
    delta_roots.extend(spaces.iter().map(|(_, d)| d.clone()));
    let files = repo
        .restore_files(
            &plan.backup.entry,
            &target,
            &RestoreOptions {
                overwrite: true,
                concurrency: opts.concurrency,
                map: Some(map),
                delta: opts.delta,
                delta_roots,
                ..RestoreOptions::default()
            },
            progress.clone(),
        )
        .await?;
    if !files.failed.is_empty() {
        return Err(PgError::Repo(lifeboat_repo::RepoError::Invalid(format!(
            "{} file(s) could not be restored (first: {}); the data directory is incomplete, do not start it",
            files.failed.len(),
            files.failed[0]
        ))));
    }
    // Point tablespace links at their new homes; PostgreSQL recreates them from this file.
    if !spaces.is_empty() {
        let map: String = spaces
            .iter()
            .map(|(o, d)| format!("{o} {}\n", d.display()))
            .collect();
        write_in_pgdata(&target, "tablespace_map", map.as_bytes())?;
    }
    write_recovery_conf(&target, &recovery_settings(opts, &plan))?;

    let mut erased = Vec::new();
    let reached = match &opts.start {
        None => None,
        Some(start) => {
            let major = pg.version_num / 10000;
            match &opts.erasure {
                None => Some(
                    start_and_wait(&target, start, opts.action, major, started, &progress).await?,
                ),
                Some(er) => {
                    let (reached, report) = start_privately_and_erase(
                        repo, &target, start, er, major, started, &progress,
                    )
                    .await?;
                    erased = report;
                    Some(reached)
                }
            }
        }
    };
    let mut notes = plan.notes.clone();
    if let (Some(er), None) = (&opts.erasure, &opts.start) {
        notes.push(format!(
            "the erasure ledger has {} erased subject(s) that are NOT removed from this copy, because lifeboat \
             did not start it: start it with `lifeboat restore postgres … --start`, or run `lifeboat erasures \
             --replay --db …` on it before anyone else connects",
            er.erased.len()
        ));
    }
    if !opts.new_primary {
        notes.push(
            "WAL archiving is off in the restored cluster (archive_mode = off in postgresql.auto.conf), so this copy \
             never writes into the repository; restore with --new-primary when it replaces the original"
                .into(),
        );
    }
    if opts.record {
        let promoted = reached
            .as_ref()
            .filter(|r| !r.in_recovery && r.timeline > 0)
            .map(|r| r.timeline);
        let record = crate::restores::RestoreRecord {
            system_id: sysid.to_string(),
            snapshot: plan.backup.entry.id.to_hex(),
            followed_timeline: plan.timeline,
            new_timeline: promoted.unwrap_or(catalog.newest_timeline() + 1),
            new_timeline_confirmed: promoted.is_some(),
            new_primary: opts.new_primary,
            target: describe_target(&opts.target),
            target_dir: target.display().to_string(),
        };
        if let Err(e) = repo.save_report(&record.to_catalog()).await {
            notes.push(format!(
                "the restore record could not be stored in the repository: {e}"
            ));
        }
    }
    let stopped_at_gap = match opts.target {
        Target::Latest => plan.window.gap.clone(),
        _ => None,
    };
    Ok(PgRestoreReport {
        snapshot: plan.backup.entry.id.to_hex(),
        backup_timeline: plan.backup.timeline,
        timeline: plan.timeline,
        window: plan.window,
        target: opts.target.clone(),
        target_dir: target,
        files,
        reached,
        new_primary: opts.new_primary,
        notes,
        stopped_at_gap,
        dry_run: false,
        erased,
    })
}

/// Starts the restored server listening only on a private socket, waits
/// until it is promoted, re-applies the erasure ledger to each database
/// the rules name, then restarts it as asked. If the replay fails, the
/// server is stopped: nobody but lifeboat ever connected.
async fn start_privately_and_erase(
    repo: &Repository,
    pgdata: &Path,
    start: &StartOptions,
    er: &crate::erasure::ErasureReplay,
    major: u32,
    started: Instant,
    progress: &DynProgress,
) -> Result<(Reached, Vec<(String, crate::erasure::ReplayReport)>)> {
    let parent = pgdata.parent().unwrap_or(pgdata);
    let private = tempfile::Builder::new()
        .prefix(".lifeboat-private-")
        .tempdir_in(parent)
        .map_err(|e| PgError::io(parent, e))?;
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(|e| PgError::io(private.path(), e))?;
        if rustix::process::geteuid().is_root() {
            let m = std::fs::metadata(pgdata).map_err(|e| PgError::io(pgdata, e))?;
            std::os::unix::fs::chown(private.path(), Some(m.uid()), Some(m.gid()))
                .map_err(|e| PgError::io(private.path(), e))?;
        }
    }
    let hidden = StartOptions {
        port: start.port,
        socket_dir: private.path().to_path_buf(),
        timeout: start.timeout,
    };
    let reached = start_and_wait_with(
        pgdata,
        &hidden,
        &[("listen_addresses", String::new())],
        TargetAction::Promote,
        major,
        started,
        progress,
    )
    .await?;
    progress.event(Event::Phase("re-applying erasures"));
    let server = Server {
        pgdata: pgdata.to_path_buf(),
        port: start.port,
        socket_dir: private.path().to_path_buf(),
        bin: PgBin::find(Some(major)),
        superuser: None,
    };
    let mut reports = Vec::new();
    for (db, rules) in er.by_database() {
        let replayed = async {
            let config = sql::config(Some(&server.conninfo(&db)), None)?;
            let mut client = sql::connect(&config).await?;
            crate::erasure::replay(&mut client, &rules, &er.erased, |k| repo.subject_hash(k)).await
        }
        .await;
        match replayed {
            Ok(r) => reports.push((db, r)),
            Err(e) => {
                let stopped = server.stop("fast");
                return Err(PgError::Erasure(format!(
                    "re-applying the erasure ledger to database {db} failed: {e}; {}",
                    match stopped {
                        Ok(()) => "the restored server was stopped before anyone but lifeboat could connect \
                                   (it listened only on a private socket)"
                            .to_string(),
                        Err(s) => format!("stopping the restored server failed too ({s}): stop it before use"),
                    }
                )));
            }
        }
    }
    server.stop("fast")?;
    let log = pgdata.join("lifeboat-recovery.log");
    let public = Server {
        socket_dir: start.socket_dir.clone(),
        ..server
    };
    public.start(&[], &log, true, start.timeout)?;
    Ok((reached, reports))
}

/// A recovery target in words, for records and messages.
pub fn describe_target(t: &Target) -> String {
    match t {
        Target::Latest => "latest".into(),
        Target::Immediate => "the end of the backup".into(),
        Target::Time(t) => t.format("%Y-%m-%d %H:%M:%S%.6f UTC").to_string(),
        Target::Lsn(l) => format!("LSN {l}"),
        Target::Xid(x) => format!("xid {x}"),
        Target::Name(n) => format!("restore point {n:?}"),
    }
}

fn wal_size(b: &BaseBackup) -> u64 {
    b.entry
        .snapshot
        .postgres
        .as_ref()
        .map(|p| p.wal_segment_size)
        .filter(|s| *s > 0)
        .unwrap_or(16 << 20)
}

async fn start_and_wait(
    pgdata: &Path,
    start: &StartOptions,
    action: TargetAction,
    major: u32,
    started: Instant,
    progress: &DynProgress,
) -> Result<Reached> {
    start_and_wait_with(pgdata, start, &[], action, major, started, progress).await
}

/// [`start_and_wait`] with extra server settings.
async fn start_and_wait_with(
    pgdata: &Path,
    start: &StartOptions,
    settings: &[(&str, String)],
    action: TargetAction,
    major: u32,
    started: Instant,
    progress: &DynProgress,
) -> Result<Reached> {
    progress.event(Event::Phase("starting the server and recovering"));
    let server = Server {
        pgdata: pgdata.to_path_buf(),
        port: start.port,
        socket_dir: start.socket_dir.clone(),
        bin: PgBin::find(Some(major)),
        superuser: None,
    };
    let log = pgdata.join("lifeboat-recovery.log");
    let deadline = Instant::now() + start.timeout;
    server.start(settings, &log, false, start.timeout)?;
    let fail = |why: &str| {
        PgError::Command(format!(
            "{why}; the server log ({}) ends with:\n{}",
            log.display(),
            log_tail(&log, 15)
        ))
    };
    let config = sql::config(Some(&server.conninfo("postgres")), None)?;
    loop {
        if Instant::now() > deadline {
            return Err(fail(&format!(
                "recovery did not finish within {}s",
                start.timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        if !server.is_running() {
            if action == TargetAction::Shutdown {
                return Ok(Reached {
                    seconds: started.elapsed().as_secs_f64(),
                    ..Reached::default()
                });
            }
            return Err(fail("the server stopped during recovery"));
        }
        let Ok(client) = sql::connect(&config).await else {
            continue;
        };
        let Ok(in_recovery) = client.query_one("SELECT pg_is_in_recovery()", &[]).await else {
            continue;
        };
        let in_recovery: bool = in_recovery.try_get(0).unwrap_or(true);
        let done = match action {
            TargetAction::Promote => !in_recovery,
            TargetAction::Pause => {
                let paused = if major >= 14 {
                    "SELECT pg_get_wal_replay_pause_state() = 'paused'"
                } else {
                    "SELECT pg_is_wal_replay_paused()"
                };
                client
                    .query_one(paused, &[])
                    .await
                    .ok()
                    .and_then(|r| r.try_get::<_, bool>(0).ok())
                    .unwrap_or(false)
            }
            TargetAction::Shutdown => false,
        };
        if !done {
            continue;
        }
        let lsn_fn = if in_recovery {
            "pg_last_wal_replay_lsn()"
        } else {
            "pg_current_wal_lsn()"
        };
        let row = client
            .query_one(
                &format!(
                    "SELECT extract(epoch FROM pg_last_xact_replay_timestamp())::float8, {lsn_fn}::text, \
                     (SELECT timeline_id FROM pg_control_checkpoint())"
                ),
                &[],
            )
            .await
            .map_err(PgError::sql("reading where recovery stopped"))?;
        let time = row
            .try_get::<_, Option<f64>>(0)
            .ok()
            .flatten()
            .and_then(|s| DateTime::from_timestamp_micros((s * 1e6) as i64));
        let lsn: String = row.try_get(1).unwrap_or_default();
        let mut timeline = row.try_get::<_, i32>(2).unwrap_or(0) as u32;
        if !in_recovery
            && let Ok(r) = client
                .query_one("SELECT pg_walfile_name(pg_current_wal_lsn())", &[])
                .await
            && let Ok(name) = r.try_get::<_, String>(0)
            && let Ok(t) = u32::from_str_radix(&name[..8.min(name.len())], 16)
        {
            timeline = t;
        }
        return Ok(Reached {
            time,
            lsn,
            timeline,
            in_recovery,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::tests_support::{at, backup};
    use crate::lsn::Lsn;

    fn options(target: Target, new_primary: bool) -> PgRestoreOptions {
        PgRestoreOptions {
            snapshot: "latest".into(),
            target_dir: PathBuf::from("/srv/restore"),
            target,
            timeline: None,
            action: TargetAction::Pause,
            delta: false,
            tablespaces: Vec::new(),
            restore_command: "lifeboat wal fetch %f %p".into(),
            start: None,
            new_primary,
            up_to_gap: false,
            record: false,
            concurrency: 1,
            dry_run: false,
            erasure: None,
        }
    }

    fn plan(timeline: u32) -> Plan {
        Plan {
            backup: backup(1, 1, 2, 2, 10),
            timeline,
            window: Window {
                timeline,
                earliest: at(10),
                earliest_lsn: Lsn(0),
                latest: Some(at(50)),
                latest_lsn: Lsn(0x0600_0000),
                gap: None,
            },
            notes: Vec::new(),
        }
    }

    fn setting<'a>(s: &'a [(String, String)], name: &str) -> Option<&'a str> {
        s.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn recovery_settings_name_the_target_and_keep_copies_out_of_the_archive() {
        let s = recovery_settings(&options(Target::Time(at(20)), false), &plan(3));
        assert_eq!(
            setting(&s, "restore_command"),
            Some("lifeboat wal fetch %f %p")
        );
        let time = setting(&s, "recovery_target_time").unwrap_or_default();
        assert!(time.ends_with("+00"), "{time}");
        assert_eq!(setting(&s, "recovery_target_timeline"), Some("3"));
        assert_eq!(setting(&s, "recovery_target_action"), Some("pause"));
        // A copy never archives into the source's repository…
        assert_eq!(setting(&s, "archive_mode"), Some("off"));
        // …the new primary does; and `latest` has no target or action.
        let s = recovery_settings(&options(Target::Latest, true), &plan(1));
        assert_eq!(setting(&s, "archive_mode"), None);
        assert_eq!(setting(&s, "recovery_target_action"), None);
        assert!(
            !s.iter()
                .any(|(k, _)| k.starts_with("recovery_target_") && k != "recovery_target_timeline")
        );
        let s = recovery_settings(&options(Target::Name("before".into()), false), &plan(1));
        assert_eq!(setting(&s, "recovery_target_name"), Some("before"));
    }

    #[test]
    fn recovery_conf_replaces_earlier_recovery_settings_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let conf = dir.path().join("postgresql.auto.conf");
        std::fs::write(
            &conf,
            format!(
                "work_mem = '64MB'\nrestore_command = 'cp old %p'\nrecovery_target_time = 'x'\n\
                 {BEGIN}\nrestore_command = 'older'\n{END}\nshared_buffers = '1GB'\n"
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("standby.signal"), b"").unwrap_or_else(|e| panic!("{e}"));
        let settings = recovery_settings(&options(Target::Lsn(Lsn(0x0300_0000)), false), &plan(1));
        write_recovery_conf(dir.path(), &settings).unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read_to_string(&conf).unwrap_or_default();
        assert!(text.contains("work_mem = '64MB'") && text.contains("shared_buffers = '1GB'"));
        assert_eq!(text.matches("restore_command").count(), 1, "{text}");
        assert!(
            !text.contains("cp old") && !text.contains("older"),
            "{text}"
        );
        assert!(text.contains("recovery_target_lsn = '0/3000000'"), "{text}");
        assert!(dir.path().join("recovery.signal").exists());
        assert!(!dir.path().join("standby.signal").exists());
        // A second restore into the same directory leaves one block.
        write_recovery_conf(dir.path(), &settings).unwrap_or_else(|e| panic!("{e}"));
        let again = std::fs::read_to_string(&conf).unwrap_or_default();
        assert_eq!(again.matches(BEGIN).count(), 1, "{again}");
    }

    #[test]
    fn a_destination_with_a_server_or_data_is_refused_unless_delta() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert!(check_destination(dir.path(), false).is_ok());
        std::fs::write(dir.path().join("PG_VERSION"), b"15").unwrap_or_else(|e| panic!("{e}"));
        let e = check_destination(dir.path(), false)
            .err()
            .map(|e| e.to_string());
        assert!(e.unwrap_or_default().contains("--delta"));
        assert!(check_destination(dir.path(), true).is_ok());
        std::fs::write(dir.path().join("postmaster.pid"), b"1").unwrap_or_else(|e| panic!("{e}"));
        let e = check_destination(dir.path(), true)
            .err()
            .map(|e| e.to_string());
        assert!(e.unwrap_or_default().contains("postmaster.pid"));
    }
}
