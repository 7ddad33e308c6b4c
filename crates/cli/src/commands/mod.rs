//! One small module per verb; each parses nothing and calls the libraries.

pub mod audit;
pub mod backup;
pub mod bucket;
pub mod check;
pub mod copy;
pub mod drill;
pub mod erase;
pub mod erase_objects;
pub mod erasure_reports;
pub mod export;
pub mod forget;
pub mod generate;
pub mod info;
pub mod init;
pub mod key;
pub mod logical;
pub mod ls;
pub mod protect;
pub mod prune;
pub mod recover;
pub mod repair;
pub mod requests;
pub mod restore;
pub mod restore_postgres;
pub mod runs;
pub mod serve;
pub mod snapshots;
pub mod users;
pub mod verify;
pub mod wal;

use anyhow::Result;
use lifeboat_repo::{RepoError, Repository};
use lifeboat_storage::Location;

use crate::cli::Global;
use crate::password;
use crate::settings::Settings;

/// Temporary files that interrupted writes left in a local repository (path,
/// size, age); none for other stores.
pub fn leftover_temporary_files(
    g: &Global,
) -> Result<Vec<(std::path::PathBuf, u64, std::time::Duration)>> {
    let s = Settings::resolve(g)?;
    let Location::Local(root) = &s.location else {
        return Ok(Vec::new());
    };
    let now = std::time::SystemTime::now();
    Ok(lifeboat_storage::fs::FsStorage::new(root.clone())
        .temporary_files()?
        .into_iter()
        .map(|(p, size, modified)| (p, size, now.duration_since(modified).unwrap_or_default()))
        .collect())
}

/// Opens and unlocks the repository the settings point at.
pub async fn open_repo(g: &Global) -> Result<Repository> {
    let s = Settings::resolve(g)?;
    if let Location::Local(p) = &s.location
        && !p.exists()
    {
        return Err(RepoError::NotARepository {
            location: s.location_text.clone(),
            reason: "the directory does not exist".into(),
        }
        .into());
    }
    let storage = lifeboat_storage::open(&s.location, &s.storage)?;
    let pass = password::read(&s.password)?;
    let repo = Repository::open(storage, &s.location_text, pass.as_bytes()).await?;
    crate::audit::opened(&repo);
    Ok(repo)
}

/// The tag a backup of the declared source `name` carries.
pub fn source_tag(name: &str) -> String {
    format!("source:{name}")
}

/// Whether `entry` belongs to the `--source` given (every snapshot does
/// when none is).
pub fn in_scope(g: &Global, entry: &lifeboat_repo::SnapshotEntry) -> bool {
    g.source
        .as_deref()
        .is_none_or(|name| entry.snapshot.tags.contains(&source_tag(name)))
}

/// The snapshot a reference names, in the `--source` scope: with a source,
/// `latest` is the newest snapshot of that source (an id or prefix is taken
/// as given). Returns a reference the libraries resolve.
pub async fn scoped_reference(
    g: &Global,
    repo: &Repository,
    reference: &str,
    progress: &lifeboat_repo::progress::DynProgress,
) -> Result<String> {
    let Some(name) = g.source.as_deref() else {
        return Ok(reference.to_string());
    };
    if reference.trim() != "latest" {
        return Ok(reference.to_string());
    }
    let newest = repo
        .list_snapshots(progress)
        .await?
        .into_iter()
        .rev()
        .find(|e| in_scope(g, e));
    match newest {
        Some(e) => Ok(e.id.to_hex()),
        None => Err(RepoError::SnapshotNotFound(format!(
            "latest of source {name:?} (no snapshot carries the tag {})",
            source_tag(name)
        ))
        .into()),
    }
}
