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

/// Result with [`OpsError`].
pub type Result<T> = std::result::Result<T, OpsError>;
