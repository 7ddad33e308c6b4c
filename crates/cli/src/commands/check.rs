//! `lifeboat check`

use anyhow::{Result, bail};
use lifeboat_format::report::CatalogReport;
use lifeboat_repo::check::Affected;
use lifeboat_repo::{CheckOptions, Finding, Severity};

use crate::cli::{CheckArgs, Global};
use crate::commands::open_repo;
use crate::exit::UsageError;
use crate::output::{self, Reporter};

/// Checks the repository; fails when any error is found.
pub async fn run(g: &Global, args: &CheckArgs) -> Result<()> {
    let subset = args
        .subset
        .as_deref()
        .map(|s| {
            s.trim()
                .trim_end_matches('%')
                .parse::<f64>()
                .ok()
                .filter(|p| *p > 0.0 && *p <= 100.0)
                .ok_or_else(|| {
                    UsageError(format!(
                        "--subset {s:?}: expected a percentage above 0% and at most 100%"
                    ))
                })
        })
        .transpose()?;
    let repo = open_repo(g).await?;
    let reporter = Reporter::new(g);
    let started = chrono::Utc::now();
    let report = repo
        .check(
            CheckOptions {
                read_data: args.read_data,
                subset,
            },
            reporter.sink(),
        )
        .await;
    let continuity = match &report {
        Ok(_) => Some(lifeboat_postgres::info::info(&repo, &reporter.sink()).await),
        Err(_) => None,
    };
    reporter.finish();
    let mut report = report?;
    // Interrupted writes to a local repository leave temporary files that
    // listings skip; they only take space, and prune removes them.
    for (path, size, age) in crate::commands::leftover_temporary_files(g)? {
        report.findings.push(Finding {
            severity: Severity::Warning,
            object: path.display().to_string(),
            message: format!(
                "temporary file of an interrupted write ({}, {} min old); prune removes it once it is older than its grace period",
                output::size(size),
                age.as_secs() / 60
            ),
            affected: Vec::new(),
        });
    }
    // Continuity: a missing WAL segment damages no object, yet breaks recovery.
    if let Some(clusters) = continuity {
        for c in clusters? {
            for p in c.continuity {
                report.findings.push(Finding {
                    severity: Severity::Error,
                    object: p.object,
                    message: format!("{}: {}", p.file, p.message),
                    affected: p
                        .affects
                        .iter()
                        .map(|(id, time)| Affected {
                            snapshot: *id,
                            time: *time,
                            paths: Vec::new(),
                        })
                        .collect(),
                });
            }
        }
        report
            .findings
            .sort_by(|a, b| a.severity.cmp(&b.severity).then(a.object.cmp(&b.object)));
    }
    if g.json {
        output::json(&report)?;
    } else {
        for f in &report.findings {
            let level = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            if f.severity == Severity::Warning && g.quiet {
                continue;
            }
            eprintln!("{level}: {}: {}", f.object, f.message);
            for a in &f.affected {
                eprintln!(
                    "  affects snapshot {} ({}){}{}",
                    a.snapshot.short(),
                    a.time.format("%Y-%m-%d %H:%M:%S UTC"),
                    if a.paths.is_empty() { "" } else { ": " },
                    a.paths.join(", ")
                );
            }
        }
        if !g.quiet {
            outln!(
                "checked {} snapshots, {} packs, {} blobs, {} WAL files{}: {} errors, {} warnings",
                report.snapshots,
                report.packs,
                report.blobs,
                report.wal_files,
                if report.read_data {
                    format!(
                        ", read {}{}",
                        output::size(report.bytes_read),
                        report
                            .subset
                            .map(|p| format!(" ({p}% of the packs, chosen at random)"))
                            .unwrap_or_default()
                    )
                } else {
                    String::new()
                },
                report.errors(),
                report.warnings()
            );
        }
    }
    // Kept in the catalog for `status` (the weekly check of the runbook).
    let o = lifeboat_repo::repository::local_origin(None);
    let stored = CatalogReport {
        kind: "check".into(),
        time: started,
        by: format!("{}@{}", o.user, o.host),
        ok: report.errors() == 0,
        summary: format!(
            "{} check: {} snapshots, {} packs{}: {} errors, {} warnings",
            if report.read_data {
                "data"
            } else {
                "structure"
            },
            report.snapshots,
            report.packs,
            report
                .subset
                .map(|p| format!(" ({p}% read)"))
                .unwrap_or_default(),
            report.errors(),
            report.warnings()
        ),
        body: serde_json::to_value(&report).unwrap_or_default(),
    };
    if let Err(e) = repo.save_report(&stored).await {
        eprintln!("warning: the check report could not be stored in the repository: {e}");
    }
    if report.errors() > 0 {
        bail!("the repository has {} error(s)", report.errors());
    }
    Ok(())
}
