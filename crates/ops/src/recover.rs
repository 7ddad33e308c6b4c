//! The corruption runbook as one command: stop writes on the damaged
//! database, recover a new data directory to a point in time, verify it
//! with the drill checks, switch over (a configured command, or printed
//! instructions) and resume writes. Each step is timed and logged; a failed
//! step stops the run, so nothing switches to a copy that failed its
//! checks. The damaged cluster's data directory is never written.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_format::report::CatalogReport;
use lifeboat_postgres::catalog::Target;
use lifeboat_postgres::checks::CheckSpec;
use lifeboat_postgres::pitr::{self, PgRestoreOptions, StartOptions, TargetAction};
use lifeboat_postgres::server::{PgBin, Server};
use lifeboat_postgres::{maintenance, sql};
use lifeboat_repo::Repository;
use lifeboat_repo::progress::{DynProgress, Event};
use lifeboat_repo::repository::local_origin;
use serde::{Deserialize, Serialize};

use crate::hooks;
use crate::steps::{Step, StepLog};
use crate::verify::{self, Restored};

/// How to recover.
#[derive(Clone, Debug)]
pub struct RecoverOptions {
    /// The moment to go back to (just before the accident).
    pub target_time: DateTime<Utc>,
    /// The new data directory (must not exist or be empty).
    pub target_dir: PathBuf,
    /// Tablespace destinations by oid.
    pub tablespaces: Vec<(u32, PathBuf)>,
    /// The damaged, still running database: writes are stopped there first.
    pub live_db: Option<String>,
    /// How long sessions on it may finish before they are ended.
    pub grace: Duration,
    /// The checks a recovered copy must pass.
    pub checks: Vec<CheckSpec>,
    /// `restore_command` for the new cluster.
    pub restore_command: String,
    /// Port and socket directory for the recovered server.
    pub port: u16,
    /// Unix socket directory.
    pub socket_dir: PathBuf,
    /// How long recovery may take.
    pub timeout: Duration,
    /// Pack reads in flight.
    pub concurrency: usize,
    /// Keep the recovered cluster from archiving into the repository.
    pub no_archive: bool,
    /// Application-side hooks from lifeboat.toml.
    pub on_command: Option<String>,
    /// Run once writes are resumed.
    pub off_command: Option<String>,
    /// Switches the application over to the recovered server; without it
    /// the switch-over is printed for a person to do.
    pub switch_command: Option<String>,
    /// Erasures to re-apply before the recovered server is opened.
    pub erasure: Option<lifeboat_postgres::erasure::ErasureReplay>,
}

/// What a recovery did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecoverReport {
    /// When it started.
    pub started: DateTime<Utc>,
    /// The target time.
    pub target_time: DateTime<Utc>,
    /// The new data directory.
    pub target_dir: PathBuf,
    /// How to reach the recovered server, once started.
    pub conninfo: Option<String>,
    /// Each step, timed.
    pub steps: Vec<Step>,
    /// The checks run against the recovered copy.
    pub checks: Vec<lifeboat_postgres::checks::CheckResult>,
    /// How it ended, in words.
    pub outcome: String,
    /// Whether it ran to the end (switched over, or ready to).
    pub ok: bool,
    /// What a person does next.
    pub next: Vec<String>,
}

impl RecoverReport {
    /// The report as stored in the repository catalog.
    pub fn to_catalog(&self) -> CatalogReport {
        let o = local_origin(None);
        CatalogReport {
            kind: "recover".into(),
            time: self.started,
            by: format!("{}@{}", o.user, o.host),
            ok: self.ok,
            summary: format!("recovery to {}: {}", self.target_time, self.outcome),
            body: serde_json::to_value(self).unwrap_or_default(),
        }
    }
}

/// Runs the recovery. It always returns a report; `ok` says whether it
/// got to the end.
pub async fn run(repo: &Repository, opts: &RecoverOptions, progress: DynProgress) -> RecoverReport {
    let mut log = StepLog::new();
    let mut report = RecoverReport {
        started: Utc::now(),
        target_time: opts.target_time,
        target_dir: opts.target_dir.clone(),
        conninfo: None,
        steps: Vec::new(),
        checks: Vec::new(),
        outcome: String::new(),
        ok: false,
        next: Vec::new(),
    };
    let finish = |mut report: RecoverReport, log: StepLog, outcome: &str, ok: bool| {
        report.steps = log.steps;
        report.outcome = outcome.into();
        report.ok = ok;
        report
    };
    let resume_old = opts.live_db.as_ref().map(|db| {
        format!("writes are still stopped on the damaged database: `lifeboat maintenance off --db '{db}'` resumes them there")
    });

    // 1. Stop writes.
    if let Some(db) = &opts.live_db {
        progress.event(Event::Phase("stopping writes"));
        log.begin("stop writes");
        let stopped = async {
            hooks::run("maintenance on_command", opts.on_command.as_deref(), &[])
                .map_err(|e| e.to_string())?;
            let client = sql::connect(&sql::config(Some(db), None).map_err(|e| e.to_string())?)
                .await
                .map_err(|e| e.to_string())?;
            maintenance::on(&client, opts.grace)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match stopped {
            Ok(r) => log.end(
                true,
                format!(
                    "database {} read-only for new sessions, {} session(s) ended",
                    r.database, r.sessions_ended
                ),
            ),
            Err(e) => {
                log.end(false, e);
                report.next.push("nothing was recovered; fix the connection or run without --db (writes then continue during the recovery)".into());
                return finish(report, log, "stopped: writes could not be stopped", false);
            }
        };
    }

    // 2. Point-in-time recovery into the new data directory.
    log.begin("restore");
    let restore = PgRestoreOptions {
        snapshot: "latest".into(),
        target_dir: opts.target_dir.clone(),
        target: Target::Time(opts.target_time),
        timeline: None,
        action: TargetAction::Promote,
        delta: false,
        tablespaces: opts.tablespaces.clone(),
        restore_command: opts.restore_command.clone(),
        start: Some(StartOptions {
            port: opts.port,
            socket_dir: opts.socket_dir.clone(),
            timeout: opts.timeout,
        }),
        // The recovered server becomes the primary once switched over.
        new_primary: !opts.no_archive,
        up_to_gap: false,
        record: true,
        concurrency: opts.concurrency,
        dry_run: false,
        erasure: opts.erasure.clone(),
    };
    let restored = match pitr::restore(repo, &restore, progress.clone()).await {
        Ok(r) => r,
        Err(e) => {
            log.end(false, e.to_string());
            report.next.extend(resume_old);
            return finish(report, log, "stopped: the recovery failed", false);
        }
    };
    let reached = restored.reached.clone().unwrap_or_default();
    log.end(
        true,
        format!(
            "base backup {} restored ({} files), recovered to {} on timeline {}",
            &restored.snapshot[..restored.snapshot.len().min(8)],
            restored.files.files,
            reached
                .time
                .map_or("the backup's end".into(), |t| t.to_string()),
            reached.timeline
        ),
    );
    // The base backup's metadata: its version picks the programs, its
    // databases the one checks run in.
    let pg = match restored.snapshot.parse::<lifeboat_format::Id>() {
        Ok(id) => repo.load_snapshot(&id).await.ok().and_then(|s| s.postgres),
        Err(_) => None,
    }
    .unwrap_or_default();
    let server = Server {
        pgdata: restored.target_dir.clone(),
        port: opts.port,
        socket_dir: opts.socket_dir.clone(),
        bin: PgBin::find(Some(pg.version_num / 10000)),
        superuser: None,
    };
    let conninfo = server.conninfo("postgres");
    report.conninfo = Some(conninfo.clone());

    // 3. Verify with the drill checks.
    progress.event(Event::Phase("verifying"));
    let target = Restored::Server(server.clone());
    log.begin("pg_amcheck");
    let (amcheck_ok, detail) = verify::amcheck(&server.bin, &target).await;
    log.end(amcheck_ok, detail);
    log.begin("checks");
    let main = crate::drill::main_database(&pg);
    report.checks = verify::run_checks(&target, &opts.checks, &main, opts.target_time).await;
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    let checks_ok = failed.is_empty();
    log.end(
        checks_ok,
        if opts.checks.is_empty() {
            "no checks configured ([[check]] in lifeboat.toml)".into()
        } else if checks_ok {
            format!("all {} passed", report.checks.len())
        } else {
            failed.join("; ")
        },
    );
    let counts = verify::count_tables(&target, std::slice::from_ref(&main), &BTreeMap::new()).await;
    if let Ok(t) = counts {
        log.begin("row counts");
        log.end(true, verify::describe_counts(&t).1);
    }
    if !(amcheck_ok && checks_ok) {
        report.next.push(format!(
            "the recovered copy failed verification and was NOT switched to; it is still running for inspection at {conninfo}; stop it with `pg_ctl -D {} stop`",
            restored.target_dir.display()
        ));
        report.next.extend(resume_old);
        return finish(
            report,
            log,
            "stopped before switch-over: verification failed",
            false,
        );
    }

    // 4. Switch over.
    let env = [
        (
            "LIFEBOAT_RECOVERED_PGDATA",
            restored.target_dir.display().to_string(),
        ),
        (
            "LIFEBOAT_RECOVERED_HOST",
            opts.socket_dir.display().to_string(),
        ),
        ("LIFEBOAT_RECOVERED_PORT", opts.port.to_string()),
        ("LIFEBOAT_RECOVERED_CONNINFO", conninfo.clone()),
    ];
    log.begin("switch over");
    match &opts.switch_command {
        Some(cmd) => {
            if let Err(e) = hooks::run("recover switch_command", Some(cmd), &env) {
                log.end(false, e.to_string());
                report
                    .next
                    .push(format!("switch the application to {conninfo} by hand"));
                report.next.extend(resume_old);
                return finish(
                    report,
                    log,
                    "stopped: the switch-over command failed",
                    false,
                );
            }
            log.end(true, format!("ran {cmd:?}"));
        }
        None => {
            log.end(
                true,
                "no switch_command configured: printed for a person to do",
            );
            report.next.push(format!(
                "switch over: point the application at the recovered server ({conninfo}), or stop the damaged server and serve {} in its place",
                restored.target_dir.display()
            ));
            report.next.push(format!(
                "then resume writes: `lifeboat maintenance off --db '{conninfo}'` (runs the off_command hook)"
            ));
            return finish(
                report,
                log,
                "recovered and verified; switch over by hand",
                true,
            );
        }
    }

    // 5. Resume writes on the recovered server.
    log.begin("resume writes");
    let resumed = async {
        let client = sql::connect(&sql::config(Some(&conninfo), None).map_err(|e| e.to_string())?)
            .await
            .map_err(|e| e.to_string())?;
        maintenance::off(&client).await.map_err(|e| e.to_string())?;
        hooks::run("maintenance off_command", opts.off_command.as_deref(), &env)
            .map_err(|e| e.to_string())
    }
    .await;
    match resumed {
        Ok(()) => log.end(true, "writes allowed on the recovered server"),
        Err(e) => {
            log.end(false, e);
            return finish(
                report,
                log,
                "switched over, but resuming writes failed",
                false,
            );
        }
    };
    if opts.live_db.is_some() {
        report.next.push(
            "the damaged database stays read-only; keep it for investigation, then stop it".into(),
        );
    }
    finish(
        report,
        log,
        "recovered, verified, switched over and resumed",
        true,
    )
}
