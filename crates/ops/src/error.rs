//! Errors of the operations layer.

use lifeboat_postgres::error::PgError;
use lifeboat_repo::RepoError;

/// What can go wrong before a drill, status or recovery has a report to give.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The repository failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// PostgreSQL work failed.
    #[error(transparent)]
    Pg(#[from] PgError),
    /// A setting or argument is unusable.
    #[error("{0}")]
    Invalid(String),
    /// A hook command failed or could not run.
    #[error("{0}")]
    Hook(String),
}

impl OpsError {
    /// This error's class (what the binary's exit code says).
    pub fn class(&self) -> lifeboat_repo::ErrorClass {
        match self {
            OpsError::Invalid(_) => lifeboat_repo::ErrorClass::Usage,
            OpsError::Repo(r) => r.class(),
            OpsError::Pg(p) => p.class(),
            OpsError::Hook(_) => lifeboat_repo::ErrorClass::Failure,
        }
    }

    /// Advice for the person at the terminal, when there is some.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            OpsError::Repo(r) => r.hint(),
            OpsError::Pg(p) => p.hint(),
            _ => None,
        }
    }
}

/// Result with [`OpsError`].
pub type Result<T> = std::result::Result<T, OpsError>;
