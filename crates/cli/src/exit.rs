//! Exit codes and hints (listed for users in the README, "Using it").
//!
//! 0 success · 1 failure · 2 bad usage (also: a restore target that is not
//! empty) · 3 repository unusable (not found, unreachable, access denied,
//! wrong passphrase) · 4 source unreachable (database server, or a backed-up
//! bucket's endpoint) · 5 source refused the credentials · 6 source does
//! not exist (database, or bucket). `wal fetch` adds its own
//! codes for PostgreSQL (see `commands::wal`).

use lifeboat_ops::OpsError;
use lifeboat_postgres::PgError;
use lifeboat_repo::{ErrorClass, RepoError};
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

/// The exit code of an error class.
fn code_of(class: ErrorClass) -> u8 {
    match class {
        ErrorClass::Failure => FAILURE,
        ErrorClass::Usage => USAGE,
        ErrorClass::Access => ACCESS,
        ErrorClass::SourceUnreachable => DB_UNREACHABLE,
        ErrorClass::SourceDenied => DB_AUTH,
        ErrorClass::SourceMissing => DB_MISSING,
    }
}

/// The class and hint of the most specific library error in the chain,
/// as that error states them itself.
fn classify(err: &anyhow::Error) -> Option<(ErrorClass, Option<&'static str>)> {
    for cause in err.chain() {
        if cause.downcast_ref::<UsageError>().is_some()
            || cause.downcast_ref::<clap::Error>().is_some()
        {
            return Some((ErrorClass::Usage, None));
        }
        if let Some(p) = cause.downcast_ref::<PgError>() {
            return Some((p.class(), p.hint()));
        }
        if let Some(b) = cause.downcast_ref::<BucketError>() {
            return Some((b.class(), b.hint()));
        }
        // Its wrapped errors are transparent: they do not appear in the chain.
        if let Some(o) = cause.downcast_ref::<OpsError>() {
            return Some((o.class(), o.hint()));
        }
        if let Some(r) = cause.downcast_ref::<RepoError>() {
            return Some((r.class(), r.hint()));
        }
        if let Some(s) = cause.downcast_ref::<StorageError>() {
            return Some((s.class(), s.hint()));
        }
        if let Some(a) = cause.downcast_ref::<lifeboat_ops::access::AccessError>() {
            let class = if a.is_usage() {
                ErrorClass::Usage
            } else {
                ErrorClass::Failure
            };
            return Some((class, None));
        }
    }
    None
}

/// The exit code for an error, from the most specific cause in its chain.
pub fn code(err: &anyhow::Error) -> u8 {
    classify(err).map_or(FAILURE, |(class, _)| code_of(class))
}

/// A line of advice for the person at the terminal, when we have one.
pub fn hint(err: &anyhow::Error) -> Option<&'static str> {
    classify(err).and_then(|(_, hint)| hint)
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

    #[test]
    fn damage_is_a_failure_and_bad_usage_is_usage() {
        let damaged = anyhow::Error::new(RepoError::Damaged("index file x is unreadable".into()))
            .context("prune failed");
        assert_eq!(code(&damaged), FAILURE);
        assert!(hint(&damaged).is_some_and(|h| h.contains("check --read-data")));
        let usage = anyhow::Error::new(RepoError::Invalid("no such path".into()));
        assert_eq!(code(&usage), USAGE);
        let wrapped = anyhow::Error::new(OpsError::Pg(PgError::Repo(RepoError::Damaged(
            "a pack is shorter than its index says".into(),
        ))));
        assert_eq!(code(&wrapped), FAILURE);
        let denied = anyhow::Error::new(StorageError::PermissionDenied {
            key: "config".into(),
            detail: "403".into(),
        });
        assert_eq!(code(&denied), ACCESS);
        assert!(hint(&denied).is_some_and(|h| h.contains("AWS_PROFILE")));
    }
}
