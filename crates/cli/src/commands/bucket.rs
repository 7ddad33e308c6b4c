//! `lifeboat backup bucket` and `lifeboat restore bucket`

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use lifeboat_format::snapshot::SourceKind;
use lifeboat_repo::SnapshotEntry;
use lifeboat_sources::bucket::erasure::ObjectReplay;
use lifeboat_sources::bucket::{
    BucketClient, BucketSpec, BucketTarget, ReadOptions, WriteReason, apply_restore, backup_bucket,
    plan_restore, snapshot_objects,
};
use serde_json::json;

use lifeboat_ops::storage_rows::{ObjectsTable, Pairing};

use crate::cli::{BackupBucketArgs, BucketConnArgs, Global, RestoreBucketArgs};
use crate::commands::backup::{options, report};
use crate::commands::{erase_objects, in_scope, open_repo, scoped_reference};
use crate::exit::UsageError;
use crate::output::{self, Reporter};
use crate::settings::FileSettings;

/// The bucket settings of the declared `--source`, when it is a bucket.
fn source_spec(g: &Global) -> Result<Option<BucketSpec>> {
    let Some(name) = &g.source else {
        return Ok(None);
    };
    spec_of_source(&FileSettings::load(g)?, name)
}

/// The bucket settings of the declared source `name`, when it is a bucket.
pub fn spec_of_source(file: &FileSettings, name: &str) -> Result<Option<BucketSpec>> {
    let src = file.source(name)?;
    let Some(url) = &src.bucket else {
        return Ok(None);
    };
    let secret = match &src.secret_access_key_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("reading secret_access_key_file {}", p.display()))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    Ok(Some(BucketSpec {
        endpoint: src.endpoint.clone(),
        region: src.region.clone(),
        path_style: src.path_style,
        access_key_id: src.access_key_id.clone(),
        secret_access_key: secret,
        ..BucketSpec::parse(url)?
    }))
}

/// `spec` with what the command line says on top.
fn with_flags(mut spec: BucketSpec, conn: &BucketConnArgs) -> BucketSpec {
    if conn.endpoint.is_some() {
        spec.endpoint = conn.endpoint.clone();
    }
    if conn.region.is_some() {
        spec.region = conn.region.clone();
    }
    if conn.path_style {
        spec.path_style = Some(true);
    }
    if conn.virtual_hosted {
        spec.path_style = Some(false);
    }
    spec
}

/// How to reach buckets: the `--source`'s settings when it is a bucket,
/// with the command line's on top (the bucket itself left open).
pub fn connection(g: &Global, conn: &BucketConnArgs) -> Result<BucketSpec> {
    Ok(with_flags(source_spec(g)?.unwrap_or_default(), conn))
}

/// The connection settings of `base` (the source's) for another location.
fn elsewhere(base: &BucketSpec, url: &str) -> Result<BucketSpec> {
    let location = BucketSpec::parse(url)?;
    Ok(BucketSpec {
        bucket: location.bucket,
        prefix: location.prefix,
        ..base.clone()
    })
}

/// Backs up a bucket given on the command line.
pub async fn backup(g: &Global, args: &BackupBucketArgs) -> Result<()> {
    let spec = with_flags(BucketSpec::parse(&args.bucket)?, &args.conn);
    run_backup(g, spec, args.parallel, &args.common).await
}

/// Backs up the declared bucket source `--source NAME`.
pub async fn backup_source(g: &Global, common: &crate::cli::BackupCommon) -> Result<()> {
    let Some(spec) = source_spec(g)? else {
        bail!(UsageError("the source declares no `bucket`".into()));
    };
    run_backup(g, spec, lifeboat_sources::bucket::DEFAULT_PARALLEL, common).await
}

async fn run_backup(
    g: &Global,
    spec: BucketSpec,
    parallel: usize,
    common: &crate::cli::BackupCommon,
) -> Result<()> {
    let client = BucketClient::new(&spec)?;
    let repo = open_repo(g).await?;
    if common.dry_run {
        let (mut objects, _) = lifeboat_sources::bucket::list_all(&client).await?;
        objects.retain(|o| !o.key.starts_with(lifeboat_sources::bucket::DRILL_PREFIX));
        let bytes: u64 = objects.iter().map(|o| o.size).sum();
        if g.json {
            return output::json(&serde_json::json!({
                "dry_run": true,
                "source": "bucket",
                "bucket": client.url(),
                "objects": objects.len(),
                "bytes": bytes,
            }));
        }
        if !g.quiet {
            outln!(
                "would back up {}: {} objects, {} (objects unchanged since the last backup are not downloaded again)",
                client.url(),
                objects.len(),
                output::size(bytes)
            );
            outln!("dry run: nothing was written");
        }
        return Ok(());
    }
    let reporter = Reporter::new(g);
    let opts = options(&repo, common);
    let read = ReadOptions {
        parallel,
        ..ReadOptions::default()
    };
    let result = backup_bucket(&repo, &client, &opts, read, reporter.sink()).await;
    reporter.finish();
    let result = result?;
    if !g.json
        && !g.quiet
        && let Some(b) = &result.snapshot.bucket
    {
        outln!(
            "bucket {}: {} objects, {} downloaded ({}), {} unchanged; {} GET and {} LIST requests",
            client.url(),
            b.objects,
            b.objects_read,
            output::size(b.bytes_read),
            b.objects - b.objects_read,
            b.get_requests,
            b.list_requests
        );
    }
    report(g, &result)
}

/// The bucket snapshot to restore: the reference (in the `--source`
/// scope), or with `--as-of` the newest snapshot of the same bucket taken
/// at or before that time.
async fn choose(
    g: &Global,
    repo: &lifeboat_repo::Repository,
    args: &RestoreBucketArgs,
    progress: &lifeboat_repo::progress::DynProgress,
) -> Result<SnapshotEntry> {
    let all = repo.list_snapshots(progress).await?;
    let buckets: Vec<&SnapshotEntry> = all
        .iter()
        .filter(|e| e.snapshot.source == SourceKind::Bucket && in_scope(g, e))
        .collect();
    if let Some(other) = &args.paired_with {
        return paired(repo, &buckets, other, progress).await;
    }
    let picked = if args.snapshot.trim() == "latest" {
        let mut sources: Vec<&Vec<String>> = buckets.iter().map(|e| &e.snapshot.paths).collect();
        sources.sort();
        sources.dedup();
        if sources.len() > 1 {
            bail!(UsageError(format!(
                "\"latest\" is ambiguous: the repository holds snapshots of {} buckets ({}); name one with --source or a snapshot id",
                sources.len(),
                sources
                    .iter()
                    .map(|p| p.join(" "))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        match buckets.last() {
            Some(e) => (*e).clone(),
            None => {
                return Err(lifeboat_repo::RepoError::SnapshotNotFound(
                    "latest bucket snapshot (the repository holds none in this scope)".into(),
                )
                .into());
            }
        }
    } else {
        let reference = scoped_reference(g, repo, &args.snapshot, progress).await?;
        repo.find_snapshot(&reference, progress).await?
    };
    if picked.snapshot.source != SourceKind::Bucket {
        bail!(UsageError(format!(
            "snapshot {} is a {} snapshot, not a bucket snapshot",
            picked.id.short(),
            picked.snapshot.source.as_str()
        )));
    }
    let Some(as_of) = &args.as_of else {
        return Ok(picked);
    };
    let (time, _) = crate::commands::restore_postgres::parse_time(as_of)?;
    let same: Vec<&&SnapshotEntry> = buckets
        .iter()
        .filter(|e| e.snapshot.paths == picked.snapshot.paths)
        .collect();
    match same.iter().rev().find(|e| e.snapshot.time <= time) {
        Some(e) => Ok((**e).clone()),
        None => {
            let oldest = same
                .first()
                .map(|e| e.snapshot.time.to_rfc3339())
                .unwrap_or_default();
            Err(UsageError(format!(
                "no snapshot of {} was taken at or before {}; the oldest is from {oldest}",
                picked.snapshot.paths.join(" "),
                time.to_rfc3339()
            ))
            .into())
        }
    }
}

/// The bucket snapshot of the same `backup --set` run as `reference`.
async fn paired(
    repo: &lifeboat_repo::Repository,
    buckets: &[&SnapshotEntry],
    reference: &str,
    progress: &lifeboat_repo::progress::DynProgress,
) -> Result<SnapshotEntry> {
    let other = repo.find_snapshot(reference, progress).await?;
    let Some(run) = other
        .snapshot
        .tags
        .iter()
        .find(|t| t.starts_with(SET_RUN_TAG))
    else {
        bail!(UsageError(format!(
            "snapshot {} was not taken by `lifeboat backup --set`, so no bucket snapshot is paired with it; use --as-of {}",
            other.id.short(),
            other.snapshot.time.to_rfc3339()
        )));
    };
    let mut found: Vec<&&SnapshotEntry> = buckets
        .iter()
        .filter(|e| e.snapshot.tags.contains(run))
        .collect();
    match found.len() {
        1 => Ok((*found.remove(0)).clone()),
        0 => Err(UsageError(format!(
            "no bucket snapshot carries {run} (in this --source scope)"
        ))
        .into()),
        n => Err(UsageError(format!(
            "{n} bucket snapshots carry {run}; choose one with --source"
        ))
        .into()),
    }
}

/// The tag that links the snapshots of one `backup --set` run.
pub const SET_RUN_TAG: &str = "set-run:";

/// Restores a bucket snapshot.
pub async fn restore(g: &Global, args: &RestoreBucketArgs) -> Result<()> {
    let repo = open_repo(g).await?;
    let reporter = Reporter::new(g);
    let progress = reporter.sink();
    let entry = choose(g, &repo, args, &progress).await?;
    let origin = entry.snapshot.paths.first().cloned().unwrap_or_default();
    let base = with_flags(
        match source_spec(g)? {
            Some(s) => s,
            None => BucketSpec::parse(&origin)?,
        },
        &args.conn,
    );
    if !args.dry_run {
        use lifeboat_ops::access::protect::Destination;
        let into = match (&args.to, args.in_place) {
            (_, true) => Some(origin.as_str()),
            (Some(to), false) if to.starts_with("s3://") => Some(to.as_str()),
            _ => None,
        };
        if let Some(b) = into {
            crate::commands::protect::guard(g, Destination::Bucket(b), b).await?;
        }
    }
    let target = match (&args.to, args.in_place) {
        (_, true) => {
            BucketTarget::Bucket(Box::new(BucketClient::new(&elsewhere(&base, &origin)?)?))
        }
        (Some(to), false) if to.starts_with("s3://") => {
            BucketTarget::Bucket(Box::new(BucketClient::new(&elsewhere(&base, to)?)?))
        }
        (Some(to), false) => BucketTarget::Directory(PathBuf::from(to)),
        (None, false) => bail!(UsageError(
            "where to? --to s3://BUCKET[/PREFIX], --to DIR, or --in-place".into()
        )),
    };
    if args.delete && matches!(target, BucketTarget::Directory(_)) {
        bail!(UsageError(
            "--delete applies to buckets; a directory target must be empty or new".into()
        ));
    }
    let load = repo.load_index(&progress).await?;
    let index = Arc::new(load.index);
    let objects = snapshot_objects(&repo, &index, &entry).await?;
    // Objects of erased subjects stay out, whatever the target.
    let (objects, erased) =
        match crate::commands::erase::ledger_for_restore(&repo, args.skip_erasures).await? {
            Some(ledger) => {
                match erase_objects::replay_for_bucket(&FileSettings::load(g)?, &ledger)? {
                    Some(er) => {
                        let (kept, report) = er.leave_out(&repo, &origin, objects)?;
                        (kept, Some(report))
                    }
                    None => (objects, None),
                }
            }
            None => (objects, None),
        };
    let pairing = match &args.check_rows {
        Some(conninfo) => Some(check_rows(args, conninfo, &entry, &objects).await?),
        None => None,
    };
    let plan = plan_restore(objects, &target, args.delete).await?;
    let differing = plan.differing();
    let occupied = plan.unchanged > 0 || differing > 0 || !plan.extra.is_empty();
    if occupied && !args.in_place && !args.overwrite && !args.dry_run {
        bail!(UsageError(format!(
            "{} already holds objects ({} equal, {} different, {} not in the snapshot); nothing was written. Choose an empty target, or pass --overwrite (add --delete to remove what the snapshot lacks)",
            plan.target,
            plan.unchanged,
            differing,
            plan.extra.len()
        )));
    }
    if args.dry_run {
        reporter.finish();
        if g.json {
            output::json(
                &json!({ "snapshot": entry.id, "dry_run": true, "plan": plan, "rows": pairing, "erased": erased }),
            )?;
        } else {
            outln!(
                "restore of snapshot {} ({} as of {}) into {}, dry run: nothing was changed",
                entry.id.short(),
                origin,
                entry.snapshot.time.to_rfc3339(),
                plan.target
            );
            for w in &plan.write {
                let why = match w.reason {
                    WriteReason::Missing => "missing",
                    WriteReason::Differs => "differs",
                };
                outln!("  write   {:?} ({why})", w.key);
            }
            for key in &plan.extra {
                let verb = if plan.delete_extra {
                    "delete"
                } else {
                    "keep  "
                };
                outln!("  {verb}  {key:?} (not in the snapshot)");
            }
            for r in &plan.refused {
                outln!("  refuse  {r}");
            }
            outln!(
                "{} to write ({}), {} already equal, {} not in the snapshot{}",
                plan.write.len(),
                output::size(plan.write_bytes),
                plan.unchanged,
                plan.extra.len(),
                if plan.delete_extra {
                    " (to delete)"
                } else {
                    " (kept; --delete removes them)"
                }
            );
            print_erased(erased.as_ref())?;
            print_pairing(pairing.as_ref())?;
        }
        return Ok(());
    }
    let result = apply_restore(&repo, index, plan, &target, progress).await;
    reporter.finish();
    let summary = result?;
    if g.json {
        output::json(
            &json!({ "snapshot": entry.id, "summary": &summary, "rows": pairing, "erased": erased }),
        )?;
    } else if !g.quiet {
        outln!(
            "restored bucket snapshot {} ({} as of {}) into {}: {} objects written ({}), {} already equal, {} deleted",
            entry.id.short(),
            origin,
            entry.snapshot.time.to_rfc3339(),
            summary.target,
            summary.written,
            output::size(summary.bytes),
            summary.unchanged,
            summary.deleted
        );
        print_erased(erased.as_ref())?;
        print_pairing(pairing.as_ref())?;
    }
    if !summary.refused.is_empty() {
        for r in &summary.refused {
            reporter.note(&format!("error: {r}"));
        }
        bail!(UsageError(format!(
            "{} key(s) were left as they were in {} (see above): a URL or a file system cannot name them",
            summary.refused.len(),
            target.describe()
        )));
    }
    Ok(())
}

/// Says which objects the erasure ledger kept out.
fn print_erased(erased: Option<&ObjectReplay>) -> Result<()> {
    if let Some(e) = erased.filter(|e| e.objects > 0) {
        outln!(
            "erasure ledger: {} object(s) of {} erased subject(s) left out ({} erasure(s) in force)",
            e.objects,
            e.found,
            e.subjects
        );
    }
    Ok(())
}

/// Pairs the snapshot's objects (their full keys) with the rows naming them.
async fn check_rows(
    args: &RestoreBucketArgs,
    conninfo: &str,
    entry: &SnapshotEntry,
    objects: &[lifeboat_sources::bucket::SnapshotObject],
) -> Result<Pairing> {
    let record = entry.snapshot.bucket.clone().unwrap_or_default();
    let full: Vec<String> = objects
        .iter()
        .map(|o| {
            if record.prefix.is_empty() {
                o.key.clone()
            } else {
                format!("{}/{}", record.prefix, o.key)
            }
        })
        .collect();
    let table = ObjectsTable {
        table: args.rows_table.clone(),
        bucket_id: args.bucket_id.clone().unwrap_or(record.bucket),
    };
    Ok(lifeboat_ops::storage_rows::pair(conninfo, &table, full.iter().map(String::as_str)).await?)
}

fn print_pairing(p: Option<&Pairing>) -> Result<()> {
    let Some(p) = p else {
        return Ok(());
    };
    if p.is_clean() {
        outln!(
            "{} (bucket_id {:?}): every one of {} rows has its object, and every object its row",
            p.table,
            p.bucket_id,
            p.rows
        );
        return Ok(());
    }
    outln!(
        "{} (bucket_id {:?}): {} row(s) without an object, {} object(s) without a row",
        p.table,
        p.bucket_id,
        p.rows_without_objects.len(),
        p.objects_without_rows.len()
    );
    for n in p.rows_without_objects.iter().take(20) {
        outln!("  row without object:  {n:?}");
    }
    for n in p.objects_without_rows.iter().take(20) {
        outln!("  object without row:  {n:?}");
    }
    Ok(())
}
