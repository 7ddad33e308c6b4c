//! Bucket drills: a bucket snapshot restored into a scratch prefix, every
//! object read back and compared (count, sizes, content hashes) with what
//! the backup recorded, then the scratch prefix removed.

use std::sync::Arc;

use lifeboat_repo::progress::{DynProgress, Event};
use lifeboat_repo::{Repository, SnapshotEntry};
use lifeboat_sources::bucket::{
    BucketClient, BucketSpec, BucketTarget, DRILL_PREFIX, apply_restore, compare, plan_restore,
    remove_prefix, snapshot_objects,
};

use super::{DrillOptions, DrillReport, newest_of_source_before, rpo_of};
use crate::steps::StepLog;
use crate::targets::Measured;

/// The scratch location: the one given, else a fresh prefix under
/// [`DRILL_PREFIX`] of the backed-up bucket.
fn scratch(opts: &DrillOptions, entry: &SnapshotEntry) -> Result<BucketSpec, String> {
    let origin = entry
        .snapshot
        .paths
        .first()
        .ok_or("the snapshot names no bucket")?;
    let base = opts.bucket.clone().unwrap_or_default();
    let at = match &opts.bucket_scratch {
        Some(url) => BucketSpec::parse(url).map_err(|e| e.to_string())?,
        None => {
            let o = BucketSpec::parse(origin).map_err(|e| e.to_string())?;
            BucketSpec {
                prefix: format!(
                    "{DRILL_PREFIX}{}-{}",
                    entry.id.short(),
                    chrono::Utc::now().timestamp_millis()
                ),
                ..o
            }
        }
    };
    Ok(BucketSpec {
        bucket: at.bucket,
        prefix: at.prefix,
        ..base
    })
}

pub(super) async fn drill(
    repo: &Repository,
    opts: &DrillOptions,
    entry: &SnapshotEntry,
    report: &mut DrillReport,
    log: &mut StepLog,
    progress: &DynProgress,
) {
    report.recoverable_to =
        newest_of_source_before(repo, entry, report.target_time, progress).await;
    report.rpo = rpo_of(report.target_time, report.recoverable_to, &opts.targets);

    log.begin("restore into a scratch prefix");
    let client =
        match scratch(opts, entry).and_then(|s| BucketClient::new(&s).map_err(|e| e.to_string())) {
            Ok(c) => c,
            Err(e) => {
                log.end(false, e);
                return;
            }
        };
    report.restored_into = client.url().to_string();
    let target = BucketTarget::Bucket(Box::new(client.clone()));
    progress.event(Event::Phase("restoring into a scratch prefix"));
    let restored = async {
        let index = Arc::new(repo.load_index(progress).await?.index);
        let mut objects = snapshot_objects(repo, &index, entry).await?;
        let mut left_out = None;
        if let (Some(er), Some(origin)) = (&opts.bucket_erasure, entry.snapshot.paths.first()) {
            let (kept, replay) = er.leave_out(repo, origin, objects)?;
            objects = kept;
            left_out = Some(replay);
        }
        let plan = plan_restore(objects.clone(), &target, false).await?;
        if plan.unchanged > 0 || !plan.extra.is_empty() {
            return Err(lifeboat_sources::bucket::BucketError::Invalid(format!(
                "the scratch prefix {} is not empty",
                client.url()
            )));
        }
        let done = apply_restore(repo, index, plan, &target, progress.clone()).await?;
        Ok((objects, done, left_out))
    }
    .await;
    let objects = match restored {
        Ok((objects, done, left_out)) => {
            let erased = match left_out.filter(|r| r.objects > 0) {
                Some(r) => format!(
                    "; {} object(s) of {} erased subject(s) left out by the erasure ledger",
                    r.objects, r.found
                ),
                None => String::new(),
            };
            log.end(
                true,
                format!(
                    "{} objects, {} bytes written{erased}",
                    done.written, done.bytes
                ),
            );
            objects
        }
        Err(e) => {
            log.end(false, e.to_string());
            cleanup(opts, &client, log).await;
            return;
        }
    };

    log.begin("compare with the backup's manifest");
    progress.event(Event::Phase("reading the restored objects back"));
    match compare(&client, &objects).await {
        Ok(c) if c.differences.is_empty() => {
            log.end(
                true,
                format!(
                    "{} of {} objects present, sizes and BLAKE3 content hashes equal ({} bytes read back)",
                    c.found, c.expected, c.bytes
                ),
            );
        }
        Ok(c) => {
            let first: Vec<&str> = c.differences.iter().take(5).map(String::as_str).collect();
            log.end(
                false,
                format!(
                    "{} difference(s) between the restored prefix and the backup: {}",
                    c.differences.len(),
                    first.join("; ")
                ),
            );
        }
        Err(e) => {
            log.end(false, e.to_string());
        }
    }
    report.rto = Some(Measured::against(log.elapsed(), opts.targets.rto));
    cleanup(opts, &client, log).await;
}

/// Removes the scratch prefix (only the one the drill made itself).
async fn cleanup(opts: &DrillOptions, client: &BucketClient, log: &mut StepLog) {
    if opts.bucket_scratch.is_some() {
        return;
    }
    log.begin("remove the scratch prefix");
    match remove_prefix(client).await {
        Ok(n) => log.end(true, format!("{n} objects deleted")),
        Err(e) => log.end(false, format!("{e}; delete {} by hand", client.url())),
    };
}
