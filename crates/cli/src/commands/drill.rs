//! `lifeboat drill`, `lifeboat drills` and `lifeboat status`

use std::path::Path;

use anyhow::{Context, Result, bail};
use lifeboat_ops::drill::{self, DrillOptions, DrillReport};
use lifeboat_ops::markdown;
use lifeboat_ops::status;
use lifeboat_ops::targets::{Targets, human};

use crate::cli::{DrillArgs, DrillsArgs, Global};
use crate::commands::open_repo;
use crate::commands::restore_postgres::{parse_time, restore_command};
use crate::exit::UsageError;
use crate::output::{self, Reporter};
use crate::settings::{FileSettings, Settings};

/// The objectives of lifeboat.toml over the defaults.
pub fn targets(file: &FileSettings) -> Result<Targets> {
    Targets::from_config(&file.targets)
        .map_err(|e| UsageError(format!("lifeboat.toml: {e}")).into())
}

/// The checks of lifeboat.toml, refused when one is unusable.
pub fn checks(file: &FileSettings) -> Result<Vec<lifeboat_postgres::checks::CheckSpec>> {
    if let Some(p) = file.check.iter().find_map(|c| c.problem()) {
        bail!(UsageError(format!("lifeboat.toml: {p}")));
    }
    Ok(file.check.clone())
}

/// Writes a report file: JSON when the name ends in .json, else Markdown.
pub fn write_report<T: serde::Serialize>(path: &Path, value: &T, markdown: &str) -> Result<()> {
    let text = if path.extension().is_some_and(|e| e == "json") {
        serde_json::to_string_pretty(value)?
    } else {
        markdown.to_string()
    };
    std::fs::write(path, text)
        .with_context(|| format!("cannot write the report to {}", path.display()))
}

/// Runs a drill, stores and prints its report.
pub async fn drill(g: &Global, args: &DrillArgs) -> Result<()> {
    let file = FileSettings::load(g)?;
    let targets = targets(&file)?;
    let checks = checks(&file)?;
    let target_time = match &args.target_time {
        Some(t) => Some(parse_time(t)?.0),
        None => None,
    };
    let settings = Settings::resolve(g)?;
    let repo = open_repo(g).await?;
    let (restore_command, _) = restore_command(g, &settings, None)?;
    let reporter = Reporter::new(g);
    let erasure = crate::commands::erase::replay_for_restore(g, &repo, false).await?;
    let bucket_erasure = match crate::commands::erase::ledger_for_restore(&repo, false).await? {
        Some(ledger) => crate::commands::erase_objects::replay_for_bucket(&file, &ledger)?,
        None => None,
    };
    let opts = DrillOptions {
        erasure,
        bucket_erasure,
        snapshot: args.snapshot.clone(),
        tag: g.source.as_deref().map(crate::commands::source_tag),
        target_time,
        staging: args.db.clone(),
        checks,
        targets,
        restore_command,
        pg_bin: std::env::var_os("LIFEBOAT_PG_BIN")
            .filter(|d| !d.is_empty())
            .map(Into::into),
        jobs: args.jobs,
        concurrency: if repo.storage().capabilities().remote {
            8
        } else {
            4
        },
        timeout: args.timeout,
        bucket: Some(crate::commands::bucket::connection(g, &args.conn)?),
        bucket_scratch: args.scratch.clone(),
    };
    let report = drill::run(&repo, &opts, reporter.sink()).await;
    reporter.finish();
    let report = report?;
    let saved = repo.save_report(&report.to_catalog()).await;
    let md = markdown::drill(&report);
    if let Some(path) = &args.report {
        write_report(path, &report, &md)?;
    }
    if g.json {
        output::json(&report)?;
    } else if !g.quiet {
        outln!("{}", md.trim_end_matches('\n'));
    }
    let id = saved.context("the drill ran but its report could not be stored in the repository")?;
    if !g.json && !g.quiet {
        outln!(
            "\nreport {} stored in the repository (`lifeboat drills`)",
            id.short()
        );
    }
    if !report.ok {
        bail!(failure_line(&report));
    }
    Ok(())
}

fn failure_line(r: &DrillReport) -> String {
    format!("drill failed: {}", r.failures.join("; "))
}

/// Lists the drill reports.
pub async fn drills(g: &Global, args: &DrillsArgs) -> Result<()> {
    let repo = open_repo(g).await?;
    let list = repo.reports(Some("drill")).await?;
    let mut reports: Vec<DrillReport> = list
        .reports
        .iter()
        .filter_map(|(_, r)| serde_json::from_value(r.body.clone()).ok())
        .collect();
    if let Some(n) = args.last {
        let skip = reports.len().saturating_sub(n);
        reports.drain(..skip);
    }
    if g.json {
        return output::json(&serde_json::json!({
            "drills": reports,
            "unreadable": list.unreadable,
        }));
    }
    for k in &list.unreadable {
        eprintln!("warning: report {k} cannot be read");
    }
    if reports.is_empty() {
        if !g.quiet {
            outln!("no drills yet: run `lifeboat drill`");
        }
        return Ok(());
    }
    outln!(
        "{:<20}  {:<6}  {:<17}  {:<8}  {:>12}  {:>12}  failures",
        "started",
        "result",
        "source",
        "snapshot",
        "RTO",
        "RPO"
    );
    for r in &reports {
        let fig =
            |m: Option<lifeboat_ops::targets::Measured>| m.map_or("-".into(), |m| human(m.seconds));
        outln!(
            "{:<20}  {:<6}  {:<17}  {:<8}  {:>12}  {:>12}  {}",
            r.started.format("%Y-%m-%d %H:%M:%S"),
            if r.ok { "passed" } else { "FAILED" },
            r.source,
            r.snapshot.get(..8).unwrap_or(&r.snapshot),
            fig(r.rto),
            fig(r.rpo),
            r.failures.join("; ")
        );
    }
    Ok(())
}

/// Prints the checklist; fails when anything is overdue.
pub async fn status(g: &Global) -> Result<()> {
    let file = FileSettings::load(g)?;
    let targets = targets(&file)?;
    let repo = open_repo(g).await?;
    let reporter = Reporter::new(g);
    let report = status::gather(&repo, &targets, g.source.as_deref(), &reporter.sink()).await;
    reporter.finish();
    let report = report?;
    if g.json {
        output::json(&report)?;
    } else if !g.quiet {
        outln!(
            "backups (RPO target {}):",
            human(targets.rpo.num_seconds() as f64)
        );
        for s in &report.sources {
            outln!(
                "  {:<9} {}  newest {} ({} ago, {} snapshots)",
                if s.age.met { "ok" } else { "OVERDUE" },
                s.source,
                s.newest_time.format("%Y-%m-%d %H:%M UTC"),
                human(s.age.seconds),
                s.snapshots
            );
        }
        for a in &report.archives {
            outln!(
                "  {:<9} WAL archive of cluster {}: newest {} ({})",
                if a.lag.is_none_or(|l| l.met) {
                    "ok"
                } else {
                    "OVERDUE"
                },
                a.system_id,
                a.newest_wal.as_deref().unwrap_or("none"),
                a.lag.map_or("lag unknown".into(), |l| format!(
                    "{} ago",
                    human(l.seconds)
                ))
            );
        }
        let run = |what: &str, r: &Option<status::RunStatus>| -> Result<()> {
            match r {
                None => outln!("{what}: never"),
                Some(r) => outln!(
                    "{what}: {} — {}{}",
                    r.time.format("%Y-%m-%d %H:%M UTC"),
                    r.summary,
                    r.last_passed
                        .filter(|_| !r.ok)
                        .map(|t| format!(" (last passed {})", t.format("%Y-%m-%d %H:%M UTC")))
                        .unwrap_or_default()
                ),
            }
            Ok(())
        };
        run("last drill", &report.drill)?;
        run("last check", &report.check)?;
        if !report.jobs.is_empty() {
            outln!("scheduled jobs (newest run):");
            for j in &report.jobs {
                outln!(
                    "  {:<9} {:<28} {}",
                    if j.outcome == "success" {
                        "ok".to_string()
                    } else {
                        j.outcome.to_uppercase()
                    },
                    j.job,
                    j.time.format("%Y-%m-%d %H:%M UTC")
                );
            }
        }
        if report.overdue.is_empty() {
            outln!("status: ok, nothing overdue");
        } else {
            outln!("overdue:");
            for o in &report.overdue {
                outln!("  - {o}");
            }
        }
    }
    if !report.ok {
        bail!("{} item(s) overdue or failing", report.overdue.len());
    }
    Ok(())
}
