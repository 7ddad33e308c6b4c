//! Gives a repository a long history for the daemon benchmark
//! (`bench/daemon.sh`): copies of its newest snapshot, each an hour older
//! than the last, and run records of a backup job, so a daemon serving it
//! faces years of backups.
//!
//! Usage: `fill_history REPOSITORY SNAPSHOTS RUNS` with the passphrase in
//! `LIFEBOAT_PASSWORD`.

use anyhow::{Context, Result, bail};
use chrono::{Duration, Utc};
use lifeboat_ops::runs::{Outcome, RunRecord};
use lifeboat_repo::Repository;
use lifeboat_storage::{Location, OpenOptions};

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, location, snapshots, runs] = args.as_slice() else {
        bail!("usage: fill_history REPOSITORY SNAPSHOTS RUNS");
    };
    let snapshots: usize = snapshots.parse().context("SNAPSHOTS")?;
    let runs: usize = runs.parse().context("RUNS")?;
    let pass = std::env::var("LIFEBOAT_PASSWORD").context("LIFEBOAT_PASSWORD")?;
    let storage = lifeboat_storage::open(&Location::parse(location)?, &OpenOptions::default())?;
    let repo = Repository::open(storage, location, pass.as_bytes()).await?;
    let newest = repo
        .list_snapshots(&lifeboat_repo::progress::none())
        .await?
        .pop()
        .context("the repository needs one snapshot to copy")?;
    for i in 1..=snapshots {
        let mut s = newest.snapshot.clone();
        s.time = newest.snapshot.time - Duration::hours(i as i64);
        s.parent = None;
        repo.save_snapshot(&s).await?;
    }
    let now = Utc::now();
    for i in 1..=runs {
        let started = now - Duration::hours(i as i64);
        let record = RunRecord {
            job: "backup app".into(),
            run: "backup".into(),
            source: Some("app".into()),
            scheduled: Some(started),
            started,
            ended: started + Duration::seconds(3),
            outcome: if i % 50 == 0 {
                Outcome::Failure
            } else {
                Outcome::Success
            },
            exit_code: None,
            error: None,
            bytes: Some(1 << 20),
            bytes_added: Some(4096),
            snapshot: Some(newest.id.to_hex()),
            catch_up: false,
            rto_seconds: None,
            started_by: None,
        };
        lifeboat_ops::runs::save(&repo, &record).await?;
    }
    Ok(())
}
