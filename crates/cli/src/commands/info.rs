//! `lifeboat info postgres`

use anyhow::Result;
use lifeboat_postgres::info::info;

use crate::cli::Global;
use crate::commands::open_repo;
use crate::output::{self, Reporter};

/// Describes the PostgreSQL clusters in the repository.
pub async fn postgres(g: &Global) -> Result<()> {
    let repo = open_repo(g).await?;
    let reporter = Reporter::new(g);
    let clusters = info(&repo, &reporter.sink()).await;
    reporter.finish();
    let clusters = clusters?;
    if g.json {
        return output::json(&clusters);
    }
    if clusters.is_empty() {
        outln!("no PostgreSQL backups or WAL in this repository");
        return Ok(());
    }
    for c in &clusters {
        outln!(
            "cluster {} (WAL segments of {})",
            c.system_id,
            output::size(c.wal_segment_size)
        );
        outln!("  base backups:");
        if c.backups.is_empty() {
            outln!("    none");
        }
        for b in &c.backups {
            outln!(
                "    {}  {}  {:<10}  timeline {}  {} .. {}  {}",
                &b.id[..8],
                b.stop_time.format("%Y-%m-%d %H:%M:%S UTC"),
                b.kind,
                b.timeline,
                b.start_lsn,
                b.stop_lsn,
                output::size(b.bytes)
            );
        }
        outln!("  timelines:");
        for t in &c.timelines {
            let window = t
                .window
                .as_ref()
                .map(|w| w.describe())
                .unwrap_or_else(|| format!("timeline {}: no usable base backup", t.timeline));
            outln!(
                "    {} ({} segments){}",
                window,
                t.segments,
                if t.followed_by_latest {
                    "  <- followed by `latest`"
                } else {
                    ""
                }
            );
            if let Some(by) = &t.created_by {
                outln!("      created by {by}");
            }
            if t.side_branch {
                outln!(
                    "      side branch: its parent went on being archived after it forked; `latest` does not follow it (--target-timeline {} does)",
                    t.timeline
                );
            }
            for g in &t.gaps {
                outln!("      gap: {g} is missing");
            }
        }
        for p in &c.continuity {
            outln!("  MISSING {}: {}", p.file, p.message);
        }
        match (&c.newest_wal, c.archive_lag_seconds) {
            (Some(w), Some(lag)) => outln!("  newest WAL: {w}, archived {lag}s ago"),
            _ => outln!("  no WAL archived yet"),
        }
        for (name, lsn, time) in &c.restore_points {
            outln!(
                "  restore point {name:?} at {lsn} ({})",
                time.format("%Y-%m-%d %H:%M:%S UTC")
            );
        }
    }
    Ok(())
}
