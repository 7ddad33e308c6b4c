//! `lifeboat copy --to REPLICA`

use anyhow::Result;
use lifeboat_repo::{RepoError, Repository};
use lifeboat_storage::Location;

use crate::cli::{CopyArgs, Global};
use crate::commands::init::kdf_cost;
use crate::commands::open_repo;
use crate::output::{self, Reporter, size};
use crate::password;
use crate::settings::{Settings, Target};

/// Opens (or with `--init` creates) the replica.
async fn open_target(g: &Global, args: &CopyArgs, source: &Repository) -> Result<Repository> {
    let t = Target::resolve(
        &args.to,
        args.to_password_file.as_deref(),
        args.to_password_command.as_deref(),
    )?;
    let storage = lifeboat_storage::open(&t.location, &Settings::resolve(g)?.storage)?;
    if args.init {
        let pass = password::read_new(&t.password, "new replica passphrase")?;
        return Ok(source
            .init_replica(
                storage,
                &t.location_text,
                pass.as_bytes(),
                kdf_cost(&args.kdf),
            )
            .await?);
    }
    if let Location::Local(p) = &t.location
        && !p.exists()
    {
        return Err(RepoError::NotARepository {
            location: t.location_text.clone(),
            reason: "the directory does not exist (create the replica with `lifeboat copy --init`)"
                .into(),
        }
        .into());
    }
    let pass = password::read(&t.password)?;
    Ok(Repository::open(storage, &t.location_text, pass.as_bytes()).await?)
}

/// Copies snapshots and WAL to a replica.
pub async fn copy(g: &Global, args: &CopyArgs) -> Result<()> {
    let repo = open_repo(g).await?;
    let target = open_target(g, args, &repo).await?;
    crate::audit::detail("to", target.location());
    let reporter = Reporter::new(g);
    let sink = reporter.sink();
    let done = async {
        let ids = if args.snapshots.is_empty() {
            None
        } else {
            let mut ids = Vec::new();
            for s in &args.snapshots {
                ids.push(repo.find_snapshot(s, &sink).await?.id);
            }
            Some(ids)
        };
        anyhow::Ok(repo.copy_to(&target, ids, &sink).await?)
    }
    .await;
    reporter.finish();
    let report = done?;
    if g.json {
        return output::json(&report);
    }
    if !g.quiet {
        outln!(
            "copied {} snapshot(s) ({} already there), {} pack(s) ({}), {} WAL file(s) ({}) to {}",
            report.snapshots_copied,
            report.snapshots_present,
            report.packs_copied,
            size(report.pack_bytes),
            report.wal_copied,
            size(report.wal_bytes),
            target.location()
        );
    }
    Ok(())
}
