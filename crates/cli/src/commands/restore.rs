//! `lifeboat restore files`

use anyhow::{Result, bail};
use lifeboat_repo::RestoreOptions;
use serde_json::json;

use crate::cli::{Global, RestoreFilesArgs};
use crate::commands::{open_repo, scoped_reference};
use crate::output::{self, Reporter};

/// Restores a file snapshot into a directory.
pub async fn files(g: &Global, args: &RestoreFilesArgs) -> Result<()> {
    let repo = open_repo(g).await?;
    let reporter = Reporter::new(g);
    let reference = scoped_reference(g, &repo, &args.snapshot, &reporter.sink()).await?;
    let snap = repo.find_snapshot(&reference, &reporter.sink()).await?;
    let remote = repo.storage().capabilities().remote;
    let options = RestoreOptions {
        overwrite: args.overwrite,
        include: args.include.clone(),
        // Memory is about concurrency × max_read: 128 MiB remote, 32 MiB local.
        concurrency: if remote { 8 } else { 4 },
        max_read: if remote { 16 << 20 } else { 8 << 20 },
        ..RestoreOptions::default()
    };
    let summary = repo
        .restore_files(&snap, &args.target, &options, reporter.sink())
        .await;
    reporter.finish();
    let summary = summary?;
    if g.json {
        output::json(&json!({ "snapshot": snap.id, "target": args.target, "summary": summary }))?;
    } else if !g.quiet {
        outln!(
            "restored snapshot {} into {}: {} files, {} dirs, {} symlinks, {} in {}",
            snap.id.short(),
            args.target.display(),
            summary.files,
            summary.dirs,
            summary.symlinks,
            output::size(summary.bytes),
            output::secs(summary.duration_ms)
        );
    }
    if !summary.failed.is_empty() {
        for f in &summary.failed {
            reporter.note(&format!("error: not restored completely: {f}"));
        }
        bail!(
            "{} file(s) could not be restored completely; run `lifeboat check --read-data` for details",
            summary.failed.len()
        );
    }
    Ok(())
}
