//! Storage errors, classified so callers can tell "retry", "missing",
//! "not allowed" and "broken" apart.

/// An error from a storage operation.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The object does not exist.
    #[error("{key}: not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// A create-only put found the object already there.
    #[error("{key}: already exists")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// The store refused the credentials or the operation.
    #[error("{key}: access denied: {detail}")]
    PermissionDenied {
        /// The key.
        key: String,
        /// What the store said.
        detail: String,
    },
    /// The store could not be reached at all (connection refused, DNS).
    #[error("storage unreachable: {detail}")]
    Unreachable {
        /// What failed.
        detail: String,
    },
    /// A failure worth retrying: throttling (429, 503 SlowDown), 5xx, timeouts, resets.
    #[error("{key}: temporary failure: {detail}")]
    Transient {
        /// The key.
        key: String,
        /// What failed.
        detail: String,
    },
    /// A local I/O error.
    #[error("{key}: {source}")]
    Io {
        /// The key (or path).
        key: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The request was invalid (bad key, bad range, misconfiguration).
    #[error("{key}: {detail}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong.
        detail: String,
    },
}

impl StorageError {
    /// True for failures a retry may cure.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StorageError::Transient { .. } | StorageError::Unreachable { .. }
        )
    }

    /// True when the object is missing.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::NotFound { .. })
    }

    /// True when the store cannot be used at all: unreachable or access denied.
    pub fn is_access_problem(&self) -> bool {
        matches!(
            self,
            StorageError::Unreachable { .. } | StorageError::PermissionDenied { .. }
        ) || matches!(self, StorageError::Io { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied)
    }

    /// Maps a local I/O error for `key`.
    pub fn from_io(key: &str, source: std::io::Error) -> Self {
        match source.kind() {
            std::io::ErrorKind::NotFound => StorageError::NotFound { key: key.into() },
            std::io::ErrorKind::AlreadyExists => StorageError::AlreadyExists { key: key.into() },
            std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut => {
                StorageError::Transient {
                    key: key.into(),
                    detail: source.to_string(),
                }
            }
            _ => StorageError::Io {
                key: key.into(),
                source,
            },
        }
    }
}

/// What kind of failure an error is, for the person or script that ran
/// the command: every library error type states its own class (and the
/// binary turns classes into exit codes, documented in its `--help`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The work failed: damaged or missing data, I/O errors, refused
    /// operations (exit 1).
    Failure,
    /// The command was invoked wrongly: arguments, references, targets
    /// (exit 2).
    Usage,
    /// The repository cannot be used: missing, unreachable, denied, wrong
    /// passphrase (exit 3).
    Access,
    /// The source (database server, bucket endpoint) cannot be reached (exit 4).
    SourceUnreachable,
    /// The source refused the credentials (exit 5).
    SourceDenied,
    /// The source (database, bucket) does not exist (exit 6).
    SourceMissing,
}

impl StorageError {
    /// This error's class.
    pub fn class(&self) -> ErrorClass {
        if self.is_access_problem() || self.is_transient() {
            ErrorClass::Access
        } else {
            ErrorClass::Failure
        }
    }

    /// Advice for the person at the terminal, when there is some.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            StorageError::Unreachable { .. } | StorageError::Transient { .. } => Some(
                "check that the storage endpoint is up and reachable (AWS_ENDPOINT_URL for S3-compatible stores)",
            ),
            StorageError::PermissionDenied { .. } => Some(
                "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and the bucket's permissions",
            ),
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
}
