//! `lifeboat prune`

use anyhow::Result;
use lifeboat_repo::prune::{PruneOptions, PruneReport};

use crate::cli::{Global, PruneArgs};
use crate::commands::open_repo;
use crate::exit::UsageError;
use crate::output::{self, Reporter, size};

fn options(args: &PruneArgs) -> Result<PruneOptions> {
    let grace = crate::units::to_chrono(args.grace);
    let max_unused = args
        .max_unused
        .trim()
        .trim_end_matches('%')
        .parse::<f64>()
        .ok()
        .filter(|p| (0.0..=100.0).contains(p))
        .ok_or_else(|| {
            UsageError(format!(
                "--max-unused {:?}: expected a percentage from 0% to 100%",
                args.max_unused
            ))
        })?;
    let max_repack = args.max_repack;
    Ok(PruneOptions {
        dry_run: args.dry_run,
        grace,
        max_unused_percent: max_unused,
        max_repack,
        ..PruneOptions::default()
    })
}

/// Marks and deletes unused data.
pub async fn prune(g: &Global, args: &PruneArgs) -> Result<()> {
    let options = options(args)?;
    let repo = open_repo(g).await?;
    let reporter = Reporter::new(g);
    let report = repo.prune(&options, reporter.sink()).await;
    reporter.finish();
    let report = report?;
    let temporary = remove_temporary_files(g, &options)?;
    if g.json {
        let mut v = serde_json::to_value(&report)?;
        v["temporary_files_removed"] = serde_json::json!(temporary);
        return output::json(&v);
    }
    if !g.quiet {
        print_report(&report)?;
        for k in &report.stale_records_removed {
            outln!(
                "{} {k}: left by an interrupted backup",
                if report.dry_run {
                    "would remove"
                } else {
                    "removed"
                }
            );
        }
        if !temporary.is_empty() {
            outln!(
                "{} {} temporary file(s) of interrupted writes ({})",
                if report.dry_run {
                    "would remove"
                } else {
                    "removed"
                },
                temporary.len(),
                size(temporary.iter().map(|(_, s)| s).sum())
            );
        }
    }
    Ok(())
}

/// Removes (unless a dry run) the temporary files interrupted writes left in
/// a local repository, once older than the grace period and never younger
/// than a stale record. A write in progress keeps touching its temporary file
/// until it moves it into place, and any process may start one at any moment
/// (a backup that registers after we looked, a `wal push`, which registers
/// nowhere): so only the file's age can tell that no one is writing it.
fn remove_temporary_files(g: &Global, options: &PruneOptions) -> Result<Vec<(String, u64)>> {
    let grace = options
        .grace
        .to_std()
        .unwrap_or_default()
        .max(std::time::Duration::from_secs(
            lifeboat_format::maintenance::RUNNING_STALE_AFTER_SECS as u64,
        ));
    let mut removed = Vec::new();
    for (path, bytes, age) in crate::commands::leftover_temporary_files(g)? {
        if age < grace {
            continue;
        }
        if !options.dry_run {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(anyhow::anyhow!(
                        "cannot remove {}: {}",
                        path.display(),
                        crate::exit::os_message(&e)
                    ));
                }
            }
        }
        removed.push((path.display().to_string(), bytes));
    }
    Ok(removed)
}

fn print_report(r: &PruneReport) -> Result<()> {
    let would = |done: &'static str, dry: &'static str| if r.dry_run { dry } else { done };
    outln!(
        "{} snapshots use {} blobs; {} packs, {} stored",
        r.snapshots,
        r.used_blobs,
        r.packs,
        size(r.stored_bytes)
    );
    if r.missing_blobs > 0 {
        outln!(
            "warning: {} blobs named by snapshots are in no index; unindexed packs are kept \
             (run `lifeboat check`, then `lifeboat repair index`)",
            r.missing_blobs
        );
    }
    let d = &r.deleted;
    if !d.plans.is_empty() {
        outln!(
            "{} {} packs ({}) from {} deletion plan(s); {} index file(s) replaced{}",
            would("deleted", "would delete"),
            d.packs,
            size(d.bytes),
            d.plans.len(),
            d.index_files_replaced,
            if d.kept_in_use > 0 {
                format!(
                    "; kept {} marked pack(s) that new snapshots use",
                    d.kept_in_use
                )
            } else {
                String::new()
            }
        );
    }
    if d.locked_packs > 0 {
        outln!(
            "kept {} pack(s) ({}) under S3 Object Lock until {}: they stay marked and a prune after that date deletes them",
            d.locked_packs,
            size(d.locked_bytes),
            d.locked_until.map_or("unknown".into(), |t| t
                .format("%Y-%m-%d %H:%M UTC")
                .to_string())
        );
    }
    for p in &r.postponed {
        outln!(
            "waiting: plan {} ({} packs, {}): {}",
            p.plan.short(),
            p.packs,
            size(p.bytes),
            p.why
        );
    }
    let m = &r.marked;
    let marked = m.unused_packs + m.unindexed_packs + m.repacked_packs;
    if marked == 0 {
        outln!("nothing new to mark");
    } else {
        outln!(
            "{} {} packs ({}) for deletion: {} unused, {} unindexed, {} repacked into {} new pack(s) ({}){}",
            would("marked", "would mark"),
            marked,
            size(m.bytes),
            m.unused_packs,
            m.unindexed_packs,
            m.repacked_packs,
            m.new_packs,
            size(m.new_bytes),
            m.plan
                .map(|p| format!("; plan {}", p.short()))
                .unwrap_or_default()
        );
    }
    outln!(
        "{} unused in partly used packs left (within --max-unused)",
        size(r.unused_bytes_left)
    );
    if r.dry_run {
        outln!("dry run: nothing changed");
    }
    Ok(())
}
