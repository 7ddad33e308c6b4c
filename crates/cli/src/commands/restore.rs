//! `lifeboat restore files`

use anyhow::{Result, bail};
use lifeboat_format::tree::NodeKind;
use lifeboat_repo::walk::PathFilter;
use lifeboat_repo::{Repository, RestoreOptions, SnapshotEntry};
use serde::Serialize;
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
    if args.dry_run {
        let plan = plan(&repo, &snap, args, &reporter).await;
        reporter.finish();
        return print_plan(g, &snap, args, &plan?);
    }
    let remote = repo.storage().capabilities().remote;
    let options = RestoreOptions {
        overwrite: args.overwrite,
        include: args.include.clone(),
        // Memory is about concurrency × max_read: 128 MiB remote, 32 MiB local.
        concurrency: if remote { 8 } else { 4 },
        max_read: if remote { 16 << 20 } else { 8 << 20 },
        ..RestoreOptions::default()
    };
    crate::audit::detail("snapshot", snap.id.to_hex());
    crate::audit::detail("into", args.target.display().to_string());
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

/// What a file restore would do.
#[derive(Debug, Default, Serialize)]
struct RestorePlan {
    files: u64,
    dirs: u64,
    symlinks: u64,
    bytes: u64,
    /// Files already at the target that would be replaced (`--overwrite`).
    replaced: Vec<String>,
}

/// Walks the snapshot (limited to `--include`) against the target.
async fn plan(
    repo: &Repository,
    snap: &SnapshotEntry,
    args: &RestoreFilesArgs,
    reporter: &std::sync::Arc<Reporter>,
) -> Result<RestorePlan> {
    let options = RestoreOptions {
        overwrite: args.overwrite,
        ..RestoreOptions::default()
    };
    lifeboat_repo::restore::check_restore_target(&args.target, &options)?;
    let index = repo.load_index(&reporter.sink()).await?.index;
    let label = format!("snapshot {}", snap.id.short());
    let entries = repo
        .walk_snapshot(
            &index,
            &snap.snapshot.root,
            &PathFilter::new(&args.include),
            &label,
        )
        .await?;
    let mut plan = RestorePlan::default();
    for e in entries {
        match e.node.kind {
            NodeKind::Dir => plan.dirs += 1,
            NodeKind::Symlink => plan.symlinks += 1,
            NodeKind::File => {
                plan.files += 1;
                plan.bytes += e.node.size;
                let at = args.target.join(&e.path);
                if at.symlink_metadata().is_ok() {
                    plan.replaced.push(at.display().to_string());
                }
            }
        }
    }
    plan.replaced.sort();
    Ok(plan)
}

fn print_plan(
    g: &Global,
    snap: &SnapshotEntry,
    args: &RestoreFilesArgs,
    plan: &RestorePlan,
) -> Result<()> {
    if g.json {
        return output::json(&json!({
            "snapshot": snap.id,
            "target": args.target,
            "dry_run": true,
            "plan": plan,
        }));
    }
    outln!(
        "would restore snapshot {} into {}: {} files, {} dirs, {} symlinks, {}",
        snap.id.short(),
        args.target.display(),
        plan.files,
        plan.dirs,
        plan.symlinks,
        output::size(plan.bytes)
    );
    for r in plan.replaced.iter().take(50) {
        outln!("  would replace {r}");
    }
    if plan.replaced.len() > 50 {
        outln!("  … and {} more", plan.replaced.len() - 50);
    }
    outln!("dry run: nothing was written");
    Ok(())
}
