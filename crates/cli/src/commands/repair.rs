//! `lifeboat repair index` and `lifeboat repair plans`

use anyhow::{Result, bail};

use crate::cli::Global;
use crate::commands::open_repo;
use crate::output::{self, Reporter};

/// Rebuilds missing index entries from pack trailers.
pub async fn index(g: &Global) -> Result<()> {
    let repo = open_repo(g).await?;
    let reporter = Reporter::new(g);
    let report = repo.repair_index(reporter.sink()).await;
    reporter.finish();
    let report = report?;
    if g.json {
        output::json(&report)?;
    } else if !g.quiet {
        outln!(
            "{} unindexed pack(s) found, {} indexed ({} blobs){}; {} damaged index file(s) removed",
            report.unindexed_packs,
            report.indexed_packs,
            report.blobs,
            report
                .new_index
                .map(|id| format!(" in index {}", id.short()))
                .unwrap_or_default(),
            report.removed_index_files.len()
        );
    }
    if !report.unreadable_packs.is_empty() {
        for p in &report.unreadable_packs {
            reporter.note(&format!("error: pack trailer unreadable: {p}"));
        }
        bail!(
            "{} pack(s) could not be indexed; run `lifeboat check --read-data` to see what they affect",
            report.unreadable_packs.len()
        );
    }
    Ok(())
}

/// Removes unreadable deletion plans and backup-in-progress records.
pub async fn plans(g: &Global) -> Result<()> {
    let repo = open_repo(g).await?;
    let report = repo.repair_plans().await?;
    if g.json {
        output::json(&report)?;
    } else if !g.quiet {
        for k in report.removed_plans.iter().chain(&report.removed_records) {
            outln!("removed {k}");
        }
        outln!(
            "{} unreadable deletion plan(s) and {} unreadable backup-in-progress record(s) removed",
            report.removed_plans.len(),
            report.removed_records.len()
        );
    }
    Ok(())
}
