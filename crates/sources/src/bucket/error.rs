//! What can go wrong reading or writing a bucket.

use lifeboat_repo::RepoError;

/// An error of a bucket backup or restore.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    /// The endpoint could not be reached (down, wrong address, timeout).
    #[error("the object store at {endpoint} cannot be reached: {detail}")]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// What the connection attempt said.
        detail: String,
    },
    /// The store refused the credentials or the request.
    #[error("access denied to bucket {bucket}: {detail}")]
    Denied {
        /// The bucket.
        bucket: String,
        /// The store's error code and message.
        detail: String,
    },
    /// The bucket does not exist.
    #[error("bucket {bucket} does not exist at {endpoint}")]
    NoSuchBucket {
        /// The bucket.
        bucket: String,
        /// The endpoint asked.
        endpoint: String,
    },
    /// The object is gone (deleted since it was listed).
    #[error("object {key:?} was deleted while it was being read")]
    Gone {
        /// The key.
        key: String,
    },
    /// The object changed since it was listed (its ETag no longer matches).
    #[error("object {key:?} changed while it was being read")]
    Changed {
        /// The key.
        key: String,
    },
    /// Any other answer the store gave.
    #[error("{what}: the object store answered {status} {code}: {message}")]
    Http {
        /// The request.
        what: String,
        /// HTTP status.
        status: u16,
        /// S3 error code, if any.
        code: String,
        /// S3 error message, if any.
        message: String,
    },
    /// Bad input: a malformed location, an unsafe key, a conflicting target.
    #[error("{0}")]
    Invalid(String),
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The repository failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
}

impl BucketError {
    /// This error's class (what the binary's exit code says).
    pub fn class(&self) -> lifeboat_repo::ErrorClass {
        use lifeboat_repo::ErrorClass;
        match self {
            BucketError::Unreachable { .. } => ErrorClass::SourceUnreachable,
            BucketError::Denied { .. } => ErrorClass::SourceDenied,
            BucketError::NoSuchBucket { .. } => ErrorClass::SourceMissing,
            BucketError::Invalid(_) => ErrorClass::Usage,
            BucketError::Repo(r) => r.class(),
            _ => ErrorClass::Failure,
        }
    }

    /// Advice for the person at the terminal, when there is some.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            BucketError::Unreachable { .. } => Some(
                "check --endpoint (or the source's `endpoint`, AWS_ENDPOINT_URL) and that the object store is up",
            ),
            BucketError::Denied { .. } => Some(
                "check LIFEBOAT_BUCKET_ACCESS_KEY_ID / LIFEBOAT_BUCKET_SECRET_ACCESS_KEY (else AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE) and the bucket's permissions",
            ),
            BucketError::NoSuchBucket { .. } => Some(
                "check the bucket name and --endpoint/--region; a restore target bucket must be created first",
            ),
            BucketError::Repo(r) => r.hint(),
            _ => None,
        }
    }

    /// True for errors worth trying again (the object changed or the
    /// connection dropped).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            BucketError::Changed { .. } | BucketError::Unreachable { .. }
        ) || matches!(self, BucketError::Http { status, .. } if *status >= 500)
    }
}

/// Result with [`BucketError`].
pub type Result<T> = std::result::Result<T, BucketError>;
