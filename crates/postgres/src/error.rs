//! The PostgreSQL layer's errors.

use lifeboat_repo::RepoError;
use lifeboat_storage::StorageError;

/// Everything the PostgreSQL layer can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The repository layer failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// A SQL command failed.
    #[error("{what}: {source}")]
    Sql {
        /// What was being done.
        what: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// No connection to the database could be made.
    #[error("cannot connect to PostgreSQL at {target}: {source}")]
    Connect {
        /// Where.
        target: String,
        /// Why, in classes that get their own exit codes.
        problem: ConnectProblem,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A restore target already holds what the restore would create.
    #[error("{0}")]
    NotEmpty(String),
    /// A WAL file was refused (wrong cluster, damaged, different content…).
    #[error("{0}")]
    WalRefused(String),
    /// The recovery target cannot be reached with what the repository holds.
    #[error("{0}")]
    OutsideWindow(String),
    /// The server is not set up for what was asked.
    #[error("{0}")]
    Setup(String),
    /// A request that cannot be carried out as asked.
    #[error("{0}")]
    Invalid(String),
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A PostgreSQL program failed.
    #[error("{0}")]
    Command(String),
    /// Erasure rules could not be applied (a rule no longer fits the schema).
    #[error("{0}")]
    Erasure(String),
}

/// Why a connection failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectProblem {
    /// The server could not be reached (down, wrong host or port, network).
    Unreachable,
    /// The server refused the credentials.
    Authentication,
    /// The database does not exist.
    NoSuchDatabase,
}

impl ConnectProblem {
    /// Classifies a driver error.
    pub fn of(e: &tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        match e.code() {
            Some(c) if *c == SqlState::INVALID_CATALOG_NAME => ConnectProblem::NoSuchDatabase,
            Some(c)
                if *c == SqlState::INVALID_PASSWORD
                    || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
            {
                ConnectProblem::Authentication
            }
            _ if describe_chain(e).contains("password missing") => ConnectProblem::Authentication,
            _ => ConnectProblem::Unreachable,
        }
    }
}

/// An error with its causes in one line, each said once (the driver's
/// "db error" says nothing without the server's message below it).
pub fn describe_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

impl PgError {
    /// This error's class (what the binary's exit code says).
    pub fn class(&self) -> lifeboat_repo::ErrorClass {
        use lifeboat_repo::ErrorClass;
        match self {
            PgError::OutsideWindow(_) | PgError::Invalid(_) | PgError::NotEmpty(_) => {
                ErrorClass::Usage
            }
            PgError::Connect { problem, .. } => match problem {
                ConnectProblem::Unreachable => ErrorClass::SourceUnreachable,
                ConnectProblem::Authentication => ErrorClass::SourceDenied,
                ConnectProblem::NoSuchDatabase => ErrorClass::SourceMissing,
            },
            PgError::Repo(r) => r.class(),
            _ => ErrorClass::Failure,
        }
    }

    /// Advice for the person at the terminal, when there is some.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            PgError::Repo(r) => r.hint(),
            PgError::OutsideWindow(_) => {
                Some("`lifeboat info postgres` shows the recoverable windows")
            }
            PgError::Connect { .. } => Some(
                "check --db (or PGHOST/PGPORT/PGUSER, PGPASSWORD or ~/.pgpass) and that the server is running",
            ),
            PgError::NotEmpty(_) => Some(
                "nothing was written; create an empty database (createdb NAME) or pass --clean",
            ),
            PgError::Erasure(_) => Some(
                "fix the [[erasure]] rule in lifeboat.toml to fit the schema; `lifeboat erasures` lists the ledger",
            ),
            _ => None,
        }
    }

    /// Wraps an I/O error with its path.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        PgError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    /// Wraps a SQL error with what was being done.
    pub fn sql(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let what = what.into();
        move |source| PgError::Sql { what, source }
    }

    /// True when the repository or its storage cannot be used at all.
    pub fn is_access_problem(&self) -> bool {
        match self {
            PgError::Repo(r) => r.is_access_problem(),
            _ => false,
        }
    }
}

impl From<StorageError> for PgError {
    fn from(e: StorageError) -> Self {
        PgError::Repo(RepoError::Storage(e))
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = PgError> = std::result::Result<T, E>;

/// Runs `f` on a blocking thread (file I/O, parsing, compression), so that
/// async tasks working side by side do not take turns on it.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PgError::Invalid(format!("internal task failed: {e}")))?
}
