//! The repository's error type.

use lifeboat_format::{FormatError, Id};
use lifeboat_storage::StorageError;

/// Everything the repository layer can fail with.
///
/// The variants fall into the classes the command line maps onto exit codes:
/// access problems (no repository, wrong passphrase, storage unreachable or
/// refusing), data problems (damaged or missing objects), and usage problems.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// No repository exists at the location.
    #[error("no lifeboat repository at {location}: {reason}")]
    NotARepository {
        /// Where we looked.
        location: String,
        /// What was missing.
        reason: String,
    },
    /// `init` found a repository (or other data) already there.
    #[error("{location} already holds a lifeboat repository; refusing to initialise over it")]
    AlreadyInitialized {
        /// Where.
        location: String,
    },
    /// No key slot opens with the passphrase given.
    #[error("wrong passphrase: none of the {slots} key slot(s) of {location} opens with it{}",
        if *damaged > 0 { format!(" ({damaged} other slot(s) are damaged; `lifeboat key list` shows them)") } else { String::new() })]
    WrongPassphrase {
        /// Where.
        location: String,
        /// How many slots were tried.
        slots: usize,
        /// Slots that could not be tried because they are damaged.
        damaged: usize,
    },
    /// The repository has no usable key slot at all.
    #[error("{location} cannot be unlocked: {why}")]
    NoKeySlot {
        /// Where.
        location: String,
        /// No slots, or every slot damaged (with the first damage).
        why: String,
    },
    /// A storage operation failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// An object on storage is damaged or unreadable.
    #[error("{object} is damaged: {source}")]
    Corrupt {
        /// Which object (storage key, or blob description).
        object: String,
        /// What is wrong with it.
        #[source]
        source: FormatError,
    },
    /// A blob the snapshot needs is not in any index.
    #[error("blob {id} is missing from the repository (needed by {needed_by})")]
    MissingBlob {
        /// The blob.
        id: Id,
        /// What needs it (snapshot and path).
        needed_by: String,
    },
    /// A snapshot reference did not match.
    #[error("no snapshot matches {0:?}")]
    SnapshotNotFound(String),
    /// A snapshot prefix matched several.
    #[error("snapshot prefix {prefix:?} is ambiguous: it matches {count} snapshots")]
    AmbiguousSnapshot {
        /// The prefix given.
        prefix: String,
        /// How many matched.
        count: usize,
    },
    /// A request that cannot be carried out as asked (bad usage).
    #[error("{0}")]
    Invalid(String),
    /// The repository is damaged: storage did not keep what it acknowledged,
    /// an index or snapshot cannot be read, a pack is shorter than its index
    /// says, a blob is missing or of the wrong type.
    #[error("{0}")]
    Damaged(String),
    /// The work failed for a reason that is neither bad usage nor damage
    /// (a source stream that cannot be read, an internal inconsistency).
    #[error("{0}")]
    Failed(String),
    /// A local file operation failed (reading the source, writing a restore).
    #[error("{path}: {source}")]
    Local {
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A format-level failure outside any stored object (e.g. random source).
    #[error(transparent)]
    Format(#[from] FormatError),
    /// Another process holds a lock this operation needs (only prune takes one).
    #[error(
        "{what} at {location} is locked by {holder}; wait for it to finish, or if that process is gone, run again after {stale_after} (a lock not refreshed for that long is taken over)"
    )]
    Locked {
        /// What is locked.
        what: String,
        /// Where.
        location: String,
        /// Who holds it (process, host, since when).
        holder: String,
        /// When the lock counts as abandoned.
        stale_after: String,
    },
    /// A background task died.
    #[error("internal task failed: {0}")]
    Task(String),
}

impl RepoError {
    /// True for problems reaching or unlocking the repository (exit code 3).
    pub fn is_access_problem(&self) -> bool {
        match self {
            RepoError::NotARepository { .. }
            | RepoError::WrongPassphrase { .. }
            | RepoError::Locked { .. } => true,
            RepoError::Storage(e) => e.is_access_problem() || e.is_transient(),
            _ => false,
        }
    }

    /// This error's class (what the binary's exit code says).
    pub fn class(&self) -> lifeboat_storage::ErrorClass {
        use lifeboat_storage::ErrorClass;
        match self {
            _ if self.is_access_problem() => ErrorClass::Access,
            RepoError::Invalid(_)
            | RepoError::SnapshotNotFound(_)
            | RepoError::AmbiguousSnapshot { .. } => ErrorClass::Usage,
            RepoError::Storage(s) => s.class(),
            _ => ErrorClass::Failure,
        }
    }

    /// Advice for the person at the terminal, when there is some.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            RepoError::Storage(s) => s.hint(),
            RepoError::WrongPassphrase { .. } => Some(
                "check LIFEBOAT_PASSWORD / LIFEBOAT_PASSWORD_FILE / LIFEBOAT_PASSWORD_COMMAND; `lifeboat key list` shows the slots",
            ),
            RepoError::NotARepository { .. } => Some(
                "check LIFEBOAT_REPOSITORY (or --repo); to create a repository there, run `lifeboat init`",
            ),
            RepoError::AlreadyInitialized { .. } => Some(
                "nothing was changed; a new repository (or a replica, with `copy --init`) needs an empty location",
            ),
            RepoError::Corrupt { .. } | RepoError::MissingBlob { .. } | RepoError::Damaged(_) => {
                Some("run `lifeboat check --read-data` to see everything that is affected")
            }
            RepoError::SnapshotNotFound(_) => Some("`lifeboat snapshots` lists the snapshots"),
            _ => None,
        }
    }

    /// Wraps a local I/O error with its path.
    pub fn local(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        RepoError::Local {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    /// Wraps a decoding error of a stored object.
    pub fn corrupt(object: impl Into<String>, source: FormatError) -> Self {
        RepoError::Corrupt {
            object: object.into(),
            source,
        }
    }
}

/// Shorthand for repository results.
pub type Result<T, E = RepoError> = std::result::Result<T, E>;
