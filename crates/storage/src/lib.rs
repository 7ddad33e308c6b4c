//! lifeboat's storage layer.
//!
//! One narrow trait, [`Storage`], with six operations (put, get, head, list,
//! delete, capabilities). Differences between stores are expressed as
//! [`Capabilities`] flags, never as new methods. Cross-cutting behaviour —
//! retries with backoff, a concurrency limit — lives in wrappers that stack
//! around any driver in one place ([`open`]).
//!
//! Drivers: [`fs::FsStorage`] (a local directory), [`s3::S3Storage`] (any
//! S3-compatible store), and [`memory::MemoryStorage`] for unit tests, plus
//! [`fault::FaultStorage`] which injects failures for tests of the layers above.

#![forbid(unsafe_code)]

pub mod aws_profile;
pub mod contract;
pub mod error;
pub mod fault;
pub mod fs;
pub mod keys;
pub mod limit;
pub mod location;
pub mod memory;
pub mod retry;
pub mod s3;

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

pub use error::{ErrorClass, StorageError};
pub use location::Location;

/// How a `put` treats an existing object of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutMode {
    /// Replace it.
    Overwrite,
    /// Fail with [`StorageError::AlreadyExists`] if it exists. Atomic on
    /// stores whose [`Capabilities::atomic_create`] is true.
    CreateOnly,
}

/// What a delete does when the object is not there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfMissing {
    /// Fail with [`StorageError::NotFound`] (S3 pays a HEAD request to know).
    Fail,
    /// Succeed: the object is gone either way (one request on S3).
    Ignore,
}

/// What a store can do, so the layers above can choose safe strategies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// `PutMode::CreateOnly` is atomic (no check-then-write race).
    pub atomic_create: bool,
    /// Objects appear whole or not at all (no partial reads of a write in progress).
    pub atomic_put: bool,
    /// Requests have a network round trip; batch and parallelise them.
    pub remote: bool,
}

/// One object as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object's key, relative to the repository root.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written, where the store says (S3 object lock
    /// periods run from this).
    pub modified: Option<std::time::SystemTime>,
}

/// The storage trait every driver implements.
///
/// Keys are `/`-separated relative paths such as `data/ab/ab12…` or
/// `snapshots/…`; drivers map them onto their own namespace.
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// Stores `data` under `key`. Returns only when the object is durable.
    async fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<(), StorageError>;

    /// Reads the whole object, or the byte range `range` of it.
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, StorageError>;

    /// Size of the object (fails with `NotFound` if it does not exist).
    async fn head(&self, key: &str) -> Result<ObjectMeta, StorageError>;

    /// Every object whose key starts with `prefix` (a directory-like prefix
    /// ending in `/`), in no particular order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError>;

    /// Removes an object. A missing object is `NotFound` or success, as
    /// `if_missing` says.
    async fn delete(&self, key: &str, if_missing: IfMissing) -> Result<(), StorageError>;

    /// What this store can do, and where it is (for messages).
    fn capabilities(&self) -> Capabilities;
}

/// A shared, type-erased store.
pub type DynStorage = Arc<dyn Storage>;

/// Options for [`open`].
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Retry policy for transient failures.
    pub retry: retry::RetryPolicy,
    /// Most operations in flight at once.
    pub max_concurrency: usize,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            retry: retry::RetryPolicy::default(),
            max_concurrency: 8,
        }
    }
}

/// Opens the store at `location` with the standard wrapper stack:
/// driver → retry → concurrency limit.
pub fn open(location: &Location, options: &OpenOptions) -> Result<DynStorage, StorageError> {
    let driver: DynStorage = match location {
        Location::Local(path) => Arc::new(fs::FsStorage::new(path.clone())),
        Location::S3 { bucket, prefix } => Arc::new(s3::S3Storage::from_env(bucket, prefix)?),
    };
    Ok(wrap(driver, options))
}

/// Stacks the standard wrappers around any driver.
pub fn wrap(driver: DynStorage, options: &OpenOptions) -> DynStorage {
    let retried: DynStorage = Arc::new(retry::RetryStorage::new(driver, options.retry.clone()));
    Arc::new(limit::LimitStorage::new(retried, options.max_concurrency))
}
