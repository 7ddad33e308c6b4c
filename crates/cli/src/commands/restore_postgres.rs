//! `lifeboat restore postgres`

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, NaiveDateTime, Utc};
use lifeboat_postgres::catalog::Target;
use lifeboat_postgres::pitr::{self, PgRestoreOptions, StartOptions, TargetAction};

use crate::cli::{Global, RestorePostgresArgs, TargetActionArg, TargetKeyword};
use crate::commands::open_repo;
use crate::exit::UsageError;
use crate::output::{self, Reporter};
use crate::settings::{PasswordSource, Settings};

/// Parses a target time. Without a zone it is read as UTC, and the note says so.
pub fn parse_time(s: &str) -> Result<(DateTime<Utc>, Option<String>)> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok((t.with_timezone(&Utc), None));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%d %H:%M:%S%#z",
        "%Y-%m-%dT%H:%M:%S%.f%#z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Ok((t.with_timezone(&Utc), None));
        }
    }
    let naive = s.strip_suffix(" UTC").unwrap_or(s);
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, f) {
            let note =
                (naive == s).then(|| format!("target time {s:?} has no time zone: read as UTC"));
            return Ok((t.and_utc(), note));
        }
    }
    bail!(UsageError(format!(
        "{s:?} is not a timestamp; use e.g. \"2026-02-23 10:00:00+01\" or \"2026-02-23T09:00:00Z\""
    )))
}

/// Parses `--tablespace-map OID=DIR` values.
pub fn tablespace_maps(maps: &[String]) -> Result<Vec<(u32, PathBuf)>> {
    maps.iter()
        .map(|m| {
            let (oid, dir) = m
                .split_once('=')
                .ok_or_else(|| UsageError(format!("--tablespace-map {m:?}: expected OID=DIR")))?;
            let oid: u32 = oid
                .parse()
                .map_err(|_| UsageError(format!("--tablespace-map {m:?}: {oid} is not an OID")))?;
            Ok((oid, PathBuf::from(dir)))
        })
        .collect()
}

/// `s` quoted for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The `restore_command` for the restored server: this lifeboat, the same
/// repository and passphrase source. A passphrase given only in the
/// environment cannot be written down; the server must then see it too.
/// Without `pgdata`, `wal fetch` finds the data directory as PostgreSQL's
/// working directory.
pub fn restore_command(
    g: &Global,
    settings: &Settings,
    pgdata: Option<&Path>,
) -> Result<(String, Option<String>)> {
    let exe = std::env::current_exe().context("cannot find the lifeboat executable")?;
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut cmd = shell_quote(&exe.display().to_string());
    if let Some(c) = &g.config {
        cmd.push_str(&format!(
            " --config {}",
            shell_quote(&abs(c).display().to_string())
        ));
    }
    let location = match &settings.location {
        lifeboat_storage::Location::Local(p) => abs(p).display().to_string(),
        _ => settings.location_text.clone(),
    };
    cmd.push_str(&format!(" --repo {}", shell_quote(&location)));
    let mut note = None;
    match &settings.password {
        PasswordSource::File(f) => cmd.push_str(&format!(" --password-file {}", shell_quote(&abs(f).display().to_string()))),
        PasswordSource::Command(c) => cmd.push_str(&format!(" --password-command {}", shell_quote(c))),
        PasswordSource::Env(_) | PasswordSource::Prompt => {
            note = Some(
                "the passphrase came from LIFEBOAT_PASSWORD or a prompt, so restore_command cannot name it: \
                 start the server with LIFEBOAT_PASSWORD set, or restore with --password-file"
                    .to_string(),
            )
        }
    }
    cmd.push_str(" wal fetch");
    if let Some(pgdata) = pgdata {
        cmd.push_str(&format!(
            " --pgdata {}",
            shell_quote(&abs(pgdata).display().to_string())
        ));
    }
    cmd.push_str(" %f \"%p\"");
    Ok((cmd, note))
}

fn target(args: &RestorePostgresArgs, reporter: &Reporter) -> Result<Target> {
    Ok(if let Some(t) = &args.target_time {
        let (t, note) = parse_time(t)?;
        if let Some(n) = note {
            reporter.note(&format!("note: {n}"));
        }
        Target::Time(t)
    } else if let Some(l) = &args.target_lsn {
        Target::Lsn(
            l.parse()
                .map_err(|e| UsageError(format!("--target-lsn: {e}")))?,
        )
    } else if let Some(x) = args.target_xid {
        Target::Xid(x)
    } else if let Some(n) = &args.target_name {
        Target::Name(n.clone())
    } else {
        match args.target {
            Some(TargetKeyword::Immediate) => Target::Immediate,
            Some(TargetKeyword::Latest) | None => Target::Latest,
        }
    })
}

/// Restores a base backup and recovers it.
pub async fn run(g: &Global, args: &RestorePostgresArgs) -> Result<()> {
    use lifeboat_ops::access::protect::Destination;
    if args.logical {
        if !args.dry_run {
            // Without --db, the database the PG* variables name.
            let db = args.db.as_deref().unwrap_or_default();
            crate::commands::protect::guard(g, Destination::Database(db), "this database").await?;
        }
        return crate::commands::logical::restore(g, args).await;
    }
    let Some(target_dir) = args.target_dir.clone() else {
        bail!(UsageError("--target-dir is required".into()));
    };
    if !args.dry_run {
        crate::commands::protect::guard(
            g,
            Destination::Directory(&target_dir),
            &format!("{}", target_dir.display()),
        )
        .await?;
    }
    let settings = Settings::resolve(g)?;
    let repo = open_repo(g).await?;
    let reporter = Reporter::new(g);
    let goal = target(args, &reporter)?;
    let timeline = match args.target_timeline.as_deref() {
        None | Some("latest") => None,
        Some(t) => Some(t.parse::<u32>().map_err(|_| {
            UsageError(format!(
                "--target-timeline {t:?} is not a number or \"latest\""
            ))
        })?),
    };
    let spaces = tablespace_maps(&args.tablespace_map)?;
    let (restore_command, note) = restore_command(g, &settings, Some(&target_dir))?;
    if let Some(n) = note
        && !args.start
    {
        reporter.note(&format!("note: {n}"));
    }
    let start = if args.start {
        Some(StartOptions {
            port: match args.port {
                Some(p) => p,
                None => lifeboat_postgres::scratch::free_port()?,
            },
            socket_dir: args.socket_dir.clone(),
            timeout: args.timeout,
        })
    } else {
        None
    };
    let erasure = crate::commands::erase::replay_for_restore(g, &repo, args.skip_erasures).await?;
    if erasure.is_some() && !args.start {
        crate::audit::detail(
            crate::commands::erasure_reports::LEDGER_DETAIL,
            "not applied: the server was not started",
        );
    }
    let opts = PgRestoreOptions {
        erasure,
        snapshot: args.snapshot.clone(),
        target_dir,
        target: goal,
        timeline,
        action: match args.target_action {
            TargetActionArg::Promote => TargetAction::Promote,
            TargetActionArg::Pause => TargetAction::Pause,
            TargetActionArg::Shutdown => TargetAction::Shutdown,
        },
        delta: args.delta,
        tablespaces: spaces,
        restore_command,
        start: start.clone(),
        new_primary: args.new_primary,
        up_to_gap: args.up_to_gap,
        record: !args.dry_run,
        dry_run: args.dry_run,
        concurrency: if repo.storage().capabilities().remote {
            8
        } else {
            4
        },
    };
    let report = pitr::restore(&repo, &opts, reporter.sink()).await;
    reporter.finish();
    let report = report?;
    let gap_failure = || -> Result<()> {
        match &report.stopped_at_gap {
            None => Ok(()),
            Some(gap) => bail!(
                "recovery {} at {}{}: WAL segment {gap} is missing from the archive, so what was archived after it is lost to this restore",
                if report.reached.is_some() {
                    "stopped"
                } else {
                    "will stop"
                },
                report.window.latest_lsn,
                report
                    .window
                    .latest
                    .map(|t| format!(" (last transaction {})", t.format("%Y-%m-%d %H:%M:%S UTC")))
                    .unwrap_or_default()
            ),
        }
    };
    crate::audit::detail("snapshot", report.snapshot.clone());
    if g.json {
        output::json(&report)?;
        return gap_failure();
    }
    for n in &report.notes {
        reporter.note(&format!("note: {n}"));
    }
    if g.quiet {
        return gap_failure();
    }
    if report.dry_run {
        outln!(
            "would restore base backup {} (timeline {}) into {}: {} files, {}",
            &report.snapshot[..8],
            report.backup_timeline,
            report.target_dir.display(),
            report.files.files,
            output::size(report.files.bytes),
        );
        outln!(
            "and recover to {} on timeline {}",
            lifeboat_postgres::pitr::describe_target(&report.target),
            report.timeline
        );
        outln!("recoverable window: {}", report.window.describe());
        outln!("dry run: nothing was written");
        return gap_failure();
    }
    outln!(
        "restored base backup {} (timeline {}) into {}: {} files, {}{}",
        &report.snapshot[..8],
        report.backup_timeline,
        report.target_dir.display(),
        report.files.files,
        output::size(report.files.bytes),
        if args.delta {
            format!(
                ", {} rewritten, {} removed",
                output::size(report.files.bytes_written),
                report.files.removed
            )
        } else {
            String::new()
        }
    );
    outln!("recoverable window: {}", report.window.describe());
    match (&report.reached, &start) {
        (Some(r), Some(s)) => {
            outln!(
                "recovery reached {} at LSN {} on timeline {} in {:.1}s{}",
                r.time
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f UTC").to_string())
                    .unwrap_or_else(|| "the target".into()),
                r.lsn,
                r.timeline,
                r.seconds,
                if r.in_recovery {
                    " (paused in recovery)"
                } else {
                    ""
                }
            );
            for (db, e) in &report.erased {
                let rows: u64 = e.tables.iter().map(|t| t.rows).sum();
                outln!(
                    "erasure ledger re-applied to database {db} before the server was opened: {} of {} erased \
                     subject(s) found and removed again ({rows} row(s))",
                    e.found,
                    e.subjects
                );
            }
            outln!(
                "the server is running: psql \"host={} port={} dbname=postgres\"",
                s.socket_dir.display(),
                s.port
            );
        }
        _ => outln!(
            "recovery settings written; start the server (pg_ctl -D {} start) and it will recover to the target",
            report.target_dir.display()
        ),
    }
    gap_failure()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_times_with_and_without_zones() {
        let (t, note) = parse_time("2026-02-23 10:00:00+01").unwrap_or_default();
        assert_eq!(t.to_rfc3339(), "2026-02-23T09:00:00+00:00");
        assert!(note.is_none());
        let (_, note) = parse_time("2026-02-23 09:00").unwrap_or_default();
        assert!(note.is_some_and(|n| n.contains("read as UTC")));
        assert!(parse_time("yesterday").is_err());
    }

    proptest::proptest! {
        #[test]
        fn no_time_or_tablespace_map_panics(s in "\\PC*") {
            let _ = parse_time(&s);
            let _ = tablespace_maps(std::slice::from_ref(&s));
        }

        #[test]
        fn no_near_timestamp_panics(s in "[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9:.]{0,12}[+Z UTC0-9:-]{0,6}") {
            let _ = parse_time(&s);
        }
    }
}
