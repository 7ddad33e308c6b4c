//! Exit codes and hints (listed for users in the README, "Using it").
//!
//! 0 success · 1 failure · 2 bad usage (also: a restore target that is not
//! empty) · 3 repository unusable (not found, unreachable, access denied,
//! wrong passphrase) · 4 source unreachable (database server, or a backed-up
//! bucket's endpoint) · 5 source refused the credentials · 6 source does
//! not exist (database, or bucket). `wal fetch` adds its own
//! codes for PostgreSQL (see `commands::wal`).

use lifeboat_ops::OpsError;
use lifeboat_postgres::{ConnectProblem, PgError};
use lifeboat_repo::RepoError;
use lifeboat_sources::bucket::BucketError;
use lifeboat_storage::StorageError;

/// Success.
pub const OK: u8 = 0;
/// Failure: damaged or missing data, I/O errors, refused operations.
pub const FAILURE: u8 = 1;
/// Bad usage: invalid arguments or references, impossible targets.
pub const USAGE: u8 = 2;
/// The repository cannot be used: missing, unreachable, denied, wrong passphrase.
pub const ACCESS: u8 = 3;
/// The database server cannot be reached (down, wrong host or port).
pub const DB_UNREACHABLE: u8 = 4;
/// The database server refused the credentials.
pub const DB_AUTH: u8 = 5;
/// The database named in the connection does not exist.
pub const DB_MISSING: u8 = 6;

/// An OS error's text without the "(os error N)" suffix std adds, for
/// messages that already say what failed.
pub fn os_message(e: &std::io::Error) -> String {
    strip_os_numbers(&e.to_string())
}

/// The error and its causes in one line, each said once: library errors
/// often repeat their cause in their own text (`"{path}: {source}"`), which
/// a plain chain would print twice. OS error numbers are left out.
pub fn message(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = match cause.downcast_ref::<std::io::Error>() {
            Some(io) => os_message(io),
            None => cause.to_string(),
        };
        let text = strip_os_numbers(&text);
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Removes every " (os error N)" from a message.
fn strip_os_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(" (os error ") {
        out.push_str(&rest[..i]);
        match rest[i..].find(')') {
            Some(end) => rest = &rest[i + end + 1..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

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

fn repo_code(r: &RepoError) -> u8 {
    match r {
        _ if r.is_access_problem() => ACCESS,
        RepoError::Invalid(_)
        | RepoError::SnapshotNotFound(_)
        | RepoError::AmbiguousSnapshot { .. } => USAGE,
        RepoError::Storage(s) => storage_code(s),
        _ => FAILURE,
    }
}

fn pg_code(p: &PgError) -> u8 {
    match p {
        PgError::OutsideWindow(_) | PgError::Invalid(_) | PgError::NotEmpty(_) => USAGE,
        PgError::Connect { problem, .. } => match problem {
            ConnectProblem::Unreachable => DB_UNREACHABLE,
            ConnectProblem::Authentication => DB_AUTH,
            ConnectProblem::NoSuchDatabase => DB_MISSING,
        },
        PgError::Repo(r) => repo_code(r),
        _ => FAILURE,
    }
}

fn bucket_code(b: &BucketError) -> u8 {
    match b {
        BucketError::Unreachable { .. } => DB_UNREACHABLE,
        BucketError::Denied { .. } => DB_AUTH,
        BucketError::NoSuchBucket { .. } => DB_MISSING,
        BucketError::Invalid(_) => USAGE,
        BucketError::Repo(r) => repo_code(r),
        _ => FAILURE,
    }
}

fn bucket_hint(b: &BucketError) -> Option<&'static str> {
    match b {
        BucketError::Unreachable { .. } => Some(
            "check --endpoint (or the source's `endpoint`, AWS_ENDPOINT_URL) and that the object store is up",
        ),
        BucketError::Denied { .. } => Some(
            "check LIFEBOAT_BUCKET_ACCESS_KEY_ID / LIFEBOAT_BUCKET_SECRET_ACCESS_KEY (else AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and the bucket's permissions",
        ),
        BucketError::NoSuchBucket { .. } => Some(
            "check the bucket name and --endpoint/--region; a restore target bucket must be created first",
        ),
        BucketError::Repo(r) => repo_hint(r),
        _ => None,
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
        if let Some(p) = cause.downcast_ref::<PgError>() {
            return pg_code(p);
        }
        if let Some(b) = cause.downcast_ref::<BucketError>() {
            return bucket_code(b);
        }
        // Its wrapped errors are transparent: they do not appear in the chain.
        match cause.downcast_ref::<OpsError>() {
            Some(OpsError::Invalid(_)) => return USAGE,
            Some(OpsError::Repo(r)) => return repo_code(r),
            Some(OpsError::Pg(p)) => return pg_code(p),
            Some(OpsError::Hook(_)) => return FAILURE,
            None => {}
        }
        if let Some(r) = cause.downcast_ref::<RepoError>() {
            return repo_code(r);
        }
        if let Some(s) = cause.downcast_ref::<StorageError>() {
            return storage_code(s);
        }
    }
    FAILURE
}

fn repo_hint(r: &RepoError) -> Option<&'static str> {
    match r {
        RepoError::Storage(s) => storage_hint(s),
        RepoError::WrongPassphrase { .. } => Some(
            "check LIFEBOAT_PASSWORD / LIFEBOAT_PASSWORD_FILE / LIFEBOAT_PASSWORD_COMMAND; `lifeboat key list` shows the slots",
        ),
        RepoError::NotARepository { .. } => Some(
            "check LIFEBOAT_REPOSITORY (or --repo); to create a repository there, run `lifeboat init`",
        ),
        RepoError::AlreadyInitialized { .. } => Some(
            "nothing was changed; a new repository (or a replica, with `copy --init`) needs an empty location",
        ),
        RepoError::Corrupt { .. } | RepoError::MissingBlob { .. } => {
            Some("run `lifeboat check --read-data` to see everything that is affected")
        }
        RepoError::SnapshotNotFound(_) => Some("`lifeboat snapshots` lists the snapshots"),
        _ => None,
    }
}

fn storage_hint(s: &StorageError) -> Option<&'static str> {
    match s {
        StorageError::Unreachable { .. } | StorageError::Transient { .. } => Some(
            "check that the storage endpoint is up and reachable (AWS_ENDPOINT_URL for S3-compatible stores)",
        ),
        StorageError::PermissionDenied { .. } => {
            Some("check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket's permissions")
        }
        StorageError::Io { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            Some(
                "a local repository's files are private to the user that wrote them (0600/0700): run lifeboat as that \
             user (for WAL archiving, the postgres user), or chown -R the repository to it",
            )
        }
        _ => None,
    }
}

/// A line of advice for the person at the terminal, when we have one.
pub fn hint(err: &anyhow::Error) -> Option<&'static str> {
    for cause in err.chain() {
        let pg = match cause.downcast_ref::<OpsError>() {
            Some(OpsError::Repo(r)) => return repo_hint(r),
            Some(OpsError::Pg(p)) => Some(p),
            _ => cause.downcast_ref::<PgError>(),
        };
        if let Some(p) = pg {
            return match p {
                PgError::Repo(r) => repo_hint(r),
                PgError::OutsideWindow(_) => {
                    Some("`lifeboat info postgres` shows the recoverable windows")
                }
                PgError::Connect { .. } => Some(
                    "check --db (or PGHOST/PGPORT/PGUSER/PGPASSWORD) and that the server is running",
                ),
                PgError::NotEmpty(_) => Some(
                    "nothing was written; create an empty database (createdb NAME) or pass --clean",
                ),
                _ => None,
            };
        }
        if let Some(b) = cause.downcast_ref::<BucketError>() {
            return bucket_hint(b);
        }
        if let Some(r) = cause.downcast_ref::<RepoError>() {
            return repo_hint(r);
        }
        if let Some(s) = cause.downcast_ref::<StorageError>() {
            return storage_hint(s);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_each_cause_once_without_os_numbers() {
        let io = std::io::Error::from_raw_os_error(20);
        let e = anyhow::Error::new(StorageError::Io {
            key: "config".into(),
            source: io,
        })
        .context("cannot open the repository");
        let m = message(&e);
        assert_eq!(m, "cannot open the repository: config: Not a directory");
        assert_eq!(strip_os_numbers("a (os error 2) b"), "a b");
    }
}
