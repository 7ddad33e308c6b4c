//! A fault-injecting wrapper for tests: fails a chosen number of upcoming
//! operations with a chosen error, and counts calls.

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::StorageError;
use crate::{Capabilities, DynStorage, ObjectMeta, PutMode, Storage};

/// The failure to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A retryable failure (like a 503 SlowDown).
    Transient,
    /// The endpoint cannot be reached.
    Unreachable,
    /// Access denied.
    Denied,
}

/// Wraps a store and fails the next `n` operations with a [`Fault`].
#[derive(Debug)]
pub struct FaultStorage {
    inner: DynStorage,
    /// (fault, operations to let through first, operations to fail)
    pending: Mutex<Option<(Fault, u64, u64)>>,
    calls: AtomicU64,
    /// Keys starting with this are stored with one byte flipped (a store
    /// that acknowledges a write it did not keep intact).
    corrupt_prefix: Mutex<Option<String>>,
}

impl FaultStorage {
    /// Wraps `inner` with no faults armed.
    pub fn new(inner: DynStorage) -> Self {
        Self {
            inner,
            pending: Mutex::new(None),
            calls: AtomicU64::new(0),
            corrupt_prefix: Mutex::new(None),
        }
    }

    /// Fails the next `count` operations with `fault`.
    pub fn inject(&self, fault: Fault, count: u64) {
        self.inject_after(0, fault, count);
    }

    /// Lets `skip` operations through, then fails `count` with `fault`.
    pub fn inject_after(&self, skip: u64, fault: Fault, count: u64) {
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = Some((fault, skip, count));
    }

    /// Stores every later write to a key starting with `prefix` with one
    /// byte flipped, acknowledging it as usual.
    pub fn corrupt_writes(&self, prefix: &str) {
        *self
            .corrupt_prefix
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(prefix.into());
    }

    /// Disarms any pending fault and write corruption.
    pub fn heal(&self) {
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self
            .corrupt_prefix
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Operations seen so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn check(&self, key: &str) -> Result<(), StorageError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let Some((fault, skip, left)) = *p else {
            return Ok(());
        };
        if skip > 0 {
            *p = Some((fault, skip - 1, left));
            return Ok(());
        }
        *p = (left > 1).then_some((fault, 0, left - 1));
        Err(match fault {
            Fault::Transient => StorageError::Transient {
                key: key.into(),
                detail: "injected 503 SlowDown".into(),
            },
            Fault::Unreachable => StorageError::Unreachable {
                detail: "injected connection refused".into(),
            },
            Fault::Denied => StorageError::PermissionDenied {
                key: key.into(),
                detail: "injected 403".into(),
            },
        })
    }
}

#[async_trait]
impl Storage for FaultStorage {
    async fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<(), StorageError> {
        self.check(key)?;
        let corrupt = self
            .corrupt_prefix
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|p| key.starts_with(p.as_str()));
        let data = if corrupt && !data.is_empty() {
            let mut v = data.to_vec();
            let mid = v.len() / 2;
            v[mid] ^= 0x01;
            Bytes::from(v)
        } else {
            data
        };
        self.inner.put(key, data, mode).await
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, StorageError> {
        self.check(key)?;
        self.inner.get(key, range).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, StorageError> {
        self.check(key)?;
        self.inner.head(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        self.check(prefix)?;
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.check(key)?;
        self.inner.delete(key).await
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}
