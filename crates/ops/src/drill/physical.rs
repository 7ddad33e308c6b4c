//! Physical drills: point-in-time recovery of a base backup into a scratch
//! data directory, started without archiving, checked, then removed.

use std::collections::BTreeMap;

use lifeboat_postgres::catalog::Target;
use lifeboat_postgres::error::PgError;
use lifeboat_postgres::pitr::{self, PgRestoreOptions, StartOptions, TargetAction};
use lifeboat_postgres::scratch::{free_port, scratch_dir};
use lifeboat_postgres::server::{PgBin, Server};
use lifeboat_postgres::sql;
use lifeboat_repo::progress::DynProgress;
use lifeboat_repo::{Repository, SnapshotEntry};

use super::{DrillOptions, DrillReport, main_database, rpo_of, verify_all};
use crate::steps::StepLog;
use crate::verify::Restored;

pub(super) async fn drill(
    repo: &Repository,
    opts: &DrillOptions,
    entry: &SnapshotEntry,
    report: &mut DrillReport,
    log: &mut StepLog,
    progress: &DynProgress,
) {
    let pg = entry.snapshot.postgres.clone().unwrap_or_default();
    let bin = match &opts.pg_bin {
        Some(d) => PgBin::at(d),
        None => PgBin::find(Some(pg.version_num / 10000)),
    };
    log.begin("restore");
    let dir = match scratch_dir("lifeboat-drill-") {
        Ok(d) => d,
        Err(e) => {
            log.end(false, format!("cannot make a scratch directory: {e}"));
            return;
        }
    };
    let port = match free_port() {
        Ok(p) => p,
        Err(e) => {
            log.end(false, e.to_string());
            return;
        }
    };
    let pgdata = dir.path().join("data");
    report.scratch_dir = Some(dir.path().to_path_buf());
    report.restored_into = format!(
        "scratch cluster {} (port {}, removed afterwards)",
        pgdata.display(),
        port
    );
    let target = match opts.target_time {
        Some(t) => Target::Time(t),
        None if opts.snapshot.trim() == "latest" => Target::Latest,
        None => Target::Immediate,
    };
    let restore_opts = PgRestoreOptions {
        // `latest` with a target time: the planner picks the base backup.
        snapshot: if opts.snapshot.trim() == "latest" && opts.target_time.is_some() {
            "latest".into()
        } else {
            entry.id.to_hex()
        },
        target_dir: pgdata.clone(),
        target,
        timeline: None,
        action: TargetAction::Promote,
        delta: false,
        tablespaces: pg
            .tablespaces
            .iter()
            .map(|t| (t.oid, dir.path().join(format!("tablespace-{}", t.oid))))
            .collect(),
        restore_command: opts.restore_command.clone(),
        start: Some(StartOptions {
            port,
            socket_dir: dir.path().to_path_buf(),
            timeout: opts.timeout,
        }),
        new_primary: false,
        up_to_gap: false,
        record: false,
        concurrency: opts.concurrency,
        dry_run: false,
        erasure: opts.erasure.clone(),
    };
    let server = Server {
        pgdata: pgdata.clone(),
        port,
        socket_dir: dir.path().to_path_buf(),
        bin: bin.clone(),
        superuser: None,
    };
    let mut restored = pitr::restore(repo, &restore_opts, progress.clone()).await;
    if let Err(PgError::OutsideWindow(_)) = &restored
        && opts.target_time.is_some()
        && pg.timeline > 0
    {
        // A newer timeline (a recovery that forked the history) may not
        // reach the target; the base backup's own timeline may. Nothing was
        // written: planning failed first.
        let mut retry = restore_opts.clone();
        retry.timeline = Some(pg.timeline);
        if let Ok(r) = pitr::restore(repo, &retry, progress.clone()).await {
            restored = Ok(r);
        }
    }
    match restored {
        Ok(r) => {
            let reached = r.reached.clone().unwrap_or_default();
            report.snapshot = r.snapshot.clone();
            let newest = r.window.latest.unwrap_or(r.window.earliest);
            report.recoverable_to = Some(newest.min(report.target_time));
            report.rpo = rpo_of(report.target_time, Some(newest), &opts.targets);
            let erased: String = r
                .erased
                .iter()
                .map(|(db, e)| {
                    format!(
                        "; erasure ledger re-applied to {db} before it opened: {} of {} erased subject(s) found, {} row(s) removed",
                        e.found,
                        e.subjects,
                        e.tables.iter().map(|t| t.rows).sum::<u64>()
                    )
                })
                .collect();
            log.end(
                true,
                format!(
                    "{} files restored, recovered on timeline {} to {} ({}){erased}",
                    r.files.files,
                    reached.timeline,
                    reached.lsn,
                    reached
                        .time
                        .map_or("no transaction replayed".into(), |t| format!(
                            "last transaction {t}"
                        ))
                ),
            );
            let restored = Restored::Server(server.clone());
            let databases = match list_databases(&server).await {
                Ok(d) => d,
                Err(e) => {
                    log.begin("row counts");
                    log.end(false, e);
                    Vec::new()
                }
            };
            let main = main_database(&pg);
            let reference = reached.time.unwrap_or(entry.snapshot.time);
            if !databases.is_empty() {
                verify_all(
                    opts,
                    &bin,
                    &restored,
                    &databases,
                    &BTreeMap::new(),
                    &main,
                    reference,
                    report,
                    log,
                    progress,
                )
                .await;
            }
        }
        Err(e) => {
            log.end(false, e.to_string());
        }
    }
    log.begin("clean up");
    let running = pgdata.join("postmaster.pid").exists();
    let stopped = if running {
        let s = server.clone();
        tokio::task::spawn_blocking(move || s.stop("immediate"))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
    } else {
        Ok(())
    };
    let path = dir.path().to_path_buf();
    let removed = dir.close().map_err(|e| format!("{}: {e}", path.display()));
    match stopped.and(removed) {
        Ok(()) => log.end(true, "scratch cluster stopped and removed"),
        Err(e) => log.end(false, format!("cleaning up: {e}")),
    };
}

async fn list_databases(s: &Server) -> std::result::Result<Vec<String>, String> {
    let cfg = sql::config(Some(&s.conninfo("postgres")), None).map_err(|e| e.to_string())?;
    let client = sql::connect(&cfg).await.map_err(|e| e.to_string())?;
    let rows = client
        .query(
            "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    rows.iter()
        .map(|r| r.try_get::<_, String>(0).map_err(|e| e.to_string()))
        .collect()
}
