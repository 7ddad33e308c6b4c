//! An in-memory driver for unit tests of the layers above, and the storage
//! contract every driver's tests run ([`conformance`]).

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::StorageError;
use crate::{Capabilities, IfMissing, ObjectMeta, PutMode, Storage, keys};

/// Objects held in a map. Not for production use.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    objects: Mutex<BTreeMap<String, Bytes>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Bytes>> {
        // A poisoned lock only means another test thread panicked; the map is still usable.
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<(), StorageError> {
        keys::validate(key)?;
        let mut m = self.map();
        if mode == PutMode::CreateOnly && m.contains_key(key) {
            return Err(StorageError::AlreadyExists { key: key.into() });
        }
        m.insert(key.into(), data);
        Ok(())
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, StorageError> {
        keys::validate(key)?;
        let m = self.map();
        let data = m
            .get(key)
            .ok_or_else(|| StorageError::NotFound { key: key.into() })?;
        match range {
            None => Ok(data.clone()),
            Some(r) if r.start <= r.end && r.end <= data.len() as u64 => {
                Ok(data.slice(r.start as usize..r.end as usize))
            }
            Some(r) => Err(StorageError::Invalid {
                key: key.into(),
                detail: format!(
                    "range {}..{} is beyond the end of the object ({} bytes)",
                    r.start,
                    r.end,
                    data.len()
                ),
            }),
        }
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, StorageError> {
        keys::validate(key)?;
        let m = self.map();
        let data = m
            .get(key)
            .ok_or_else(|| StorageError::NotFound { key: key.into() })?;
        Ok(ObjectMeta {
            key: key.into(),
            size: data.len() as u64,
            modified: None,
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        keys::validate_prefix(prefix)?;
        Ok(self
            .map()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| ObjectMeta {
                key: k.clone(),
                size: v.len() as u64,
                modified: None,
            })
            .collect())
    }

    async fn delete(&self, key: &str, if_missing: IfMissing) -> Result<(), StorageError> {
        keys::validate(key)?;
        match (self.map().remove(key), if_missing) {
            (Some(_), _) | (None, IfMissing::Ignore) => Ok(()),
            (None, IfMissing::Fail) => Err(StorageError::NotFound { key: key.into() }),
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_create: true,
            atomic_put: true,
            remote: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::DynStorage;

    #[tokio::test]
    async fn conforms_to_the_storage_contract() {
        crate::contract::assert_conforms(|| async { Arc::new(MemoryStorage::new()) as DynStorage })
            .await;
    }
}
