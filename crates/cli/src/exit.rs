//! Exit codes and hints (DESIGN.md section 5).
//!
//! 0 success · 1 failure · 2 bad usage · 3 repository unusable (not found,
//! unreachable, access denied, wrong passphrase).

use lifeboat_repo::RepoError;
use lifeboat_storage::StorageError;

/// Success.
pub const OK: u8 = 0;
/// Failure: damaged or missing data, I/O errors, refused operations.
pub const FAILURE: u8 = 1;
/// Bad usage: invalid arguments or references.
pub const USAGE: u8 = 2;
/// The repository cannot be used: missing, unreachable, denied, wrong passphrase.
pub const ACCESS: u8 = 3;

/// An error caused by how the command was invoked.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn storage_code(e: &StorageError) -> u8 {
    if e.is_access_problem() || e.is_transient() {
        ACCESS
    } else {
        FAILURE
    }
}

/// The exit code for an error, from the most specific cause in its chain.
pub fn code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.downcast_ref::<UsageError>().is_some()
            || cause.downcast_ref::<clap::Error>().is_some()
        {
            return USAGE;
        }
        if let Some(r) = cause.downcast_ref::<RepoError>() {
            return match r {
                _ if r.is_access_problem() => ACCESS,
                RepoError::Invalid(_)
                | RepoError::SnapshotNotFound(_)
                | RepoError::AmbiguousSnapshot { .. } => USAGE,
                RepoError::Storage(s) => storage_code(s),
                _ => FAILURE,
            };
        }
        if let Some(s) = cause.downcast_ref::<StorageError>() {
            return storage_code(s);
        }
    }
    FAILURE
}

/// A line of advice for the person at the terminal, when we have one.
pub fn hint(err: &anyhow::Error) -> Option<&'static str> {
    for cause in err.chain() {
        if let Some(RepoError::Storage(s)) = cause.downcast_ref::<RepoError>() {
            return storage_hint(s);
        }
        if let Some(r) = cause.downcast_ref::<RepoError>() {
            match r {
                RepoError::WrongPassphrase { .. } => {
                    return Some(
                        "check LIFEBOAT_PASSWORD / LIFEBOAT_PASSWORD_FILE / LIFEBOAT_PASSWORD_COMMAND; `lifeboat key list` shows the slots",
                    );
                }
                RepoError::NotARepository { .. } => {
                    return Some(
                        "check LIFEBOAT_REPOSITORY (or --repo); to create a repository there, run `lifeboat init`",
                    );
                }
                RepoError::AlreadyInitialized { .. } => {
                    return Some(
                        "nothing was changed; point LIFEBOAT_REPOSITORY at an empty location to create a new repository",
                    );
                }
                RepoError::Corrupt { .. } | RepoError::MissingBlob { .. } => {
                    return Some(
                        "run `lifeboat check --read-data` to see everything that is affected",
                    );
                }
                RepoError::SnapshotNotFound(_) => {
                    return Some("`lifeboat snapshots` lists the snapshots");
                }
                _ => {}
            }
        }
        if let Some(s) = cause.downcast_ref::<StorageError>() {
            return storage_hint(s);
        }
    }
    None
}

fn storage_hint(s: &StorageError) -> Option<&'static str> {
    match s {
        StorageError::Unreachable { .. } | StorageError::Transient { .. } => Some(
            "check that the storage endpoint is up and reachable (AWS_ENDPOINT_URL for S3-compatible stores)",
        ),
        StorageError::PermissionDenied { .. } => {
            Some("check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket's permissions")
        }
        _ => None,
    }
}
