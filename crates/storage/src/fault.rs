//! A fault-injecting wrapper for tests: fails a chosen number of upcoming
//! operations with a chosen error, and counts calls.

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::StorageError;
use crate::{Capabilities, DynStorage, IfMissing, ObjectMeta, PutMode, Storage};

/// The failure to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A retryable failure (like a 503 SlowDown).
    Transient,
    /// The endpoint cannot be reached.
    Unreachable,
    /// Access denied.
    Denied,
    /// The operation is carried out, then its answer is lost (a reset after
    /// the request reached the store): the caller sees a transient failure.
    LostResponse,
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

    /// Counts the call and takes the armed fault for it, if any.
    fn take(&self) -> Option<Fault> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let (fault, skip, left) = (*p)?;
        if skip > 0 {
            *p = Some((fault, skip - 1, left));
            return None;
        }
        *p = (left > 1).then_some((fault, 0, left - 1));
        Some(fault)
    }

    /// Runs `op` under the armed fault: fails before it, or (for a lost
    /// response) after it.
    async fn guarded<T>(
        &self,
        key: &str,
        op: impl std::future::Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        match self.take() {
            None => op.await,
            Some(Fault::LostResponse) => {
                op.await?;
                Err(Self::error(Fault::Transient, key))
            }
            Some(f) => Err(Self::error(f, key)),
        }
    }

    fn error(fault: Fault, key: &str) -> StorageError {
        match fault {
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
            Fault::LostResponse => StorageError::Transient {
                key: key.into(),
                detail: "injected reset after the request".into(),
            },
        }
    }
}

#[async_trait]
impl Storage for FaultStorage {
    async fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<(), StorageError> {
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
        self.guarded(key, self.inner.put(key, data, mode)).await
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, StorageError> {
        self.guarded(key, self.inner.get(key, range)).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, StorageError> {
        self.guarded(key, self.inner.head(key)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        self.guarded(prefix, self.inner.list(prefix)).await
    }

    async fn delete(&self, key: &str, if_missing: IfMissing) -> Result<(), StorageError> {
        self.guarded(key, self.inner.delete(key, if_missing)).await
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::memory::MemoryStorage;

    #[tokio::test]
    async fn passes_the_contract_through_when_no_fault_is_armed() {
        crate::contract::assert_conforms(|| async {
            Arc::new(FaultStorage::new(Arc::new(MemoryStorage::new()))) as DynStorage
        })
        .await;
    }
}
