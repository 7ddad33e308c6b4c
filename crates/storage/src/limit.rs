//! A limit on storage operations in flight, so parallel pipelines cannot
//! open unbounded connections or file handles.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Semaphore;

use crate::error::StorageError;
use crate::{Capabilities, DynStorage, IfMissing, ObjectMeta, PutMode, Storage};

/// Allows at most `n` operations of the wrapped store at once.
#[derive(Debug)]
pub struct LimitStorage {
    inner: DynStorage,
    permits: Arc<Semaphore>,
}

impl LimitStorage {
    /// Wraps `inner` with a limit of `n` (at least 1).
    pub fn new(inner: DynStorage, n: usize) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(n.max(1))),
        }
    }

    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, StorageError> {
        self.permits
            .acquire()
            .await
            .map_err(|_| StorageError::Invalid {
                key: String::new(),
                detail: "storage limiter closed".into(),
            })
    }
}

#[async_trait]
impl Storage for LimitStorage {
    async fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<(), StorageError> {
        let _p = self.permit().await?;
        self.inner.put(key, data, mode).await
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, StorageError> {
        let _p = self.permit().await?;
        self.inner.get(key, range).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, StorageError> {
        let _p = self.permit().await?;
        self.inner.head(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        let _p = self.permit().await?;
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str, if_missing: IfMissing) -> Result<(), StorageError> {
        let _p = self.permit().await?;
        self.inner.delete(key, if_missing).await
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStorage;

    #[tokio::test]
    async fn passes_the_contract_through() {
        crate::contract::assert_conforms(|| async {
            Arc::new(LimitStorage::new(Arc::new(MemoryStorage::new()), 2)) as DynStorage
        })
        .await;
    }
}
