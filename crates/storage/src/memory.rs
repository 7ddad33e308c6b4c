//! An in-memory driver for unit tests of the layers above, and the storage
//! contract every driver's tests run ([`conformance`]).

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::StorageError;
use crate::{Capabilities, ObjectMeta, PutMode, Storage, keys};

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

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        keys::validate(key)?;
        self.map()
            .remove(key)
            .map(|_| ())
            .ok_or_else(|| StorageError::NotFound { key: key.into() })
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_create: true,
            atomic_put: true,
            remote: false,
        }
    }
}

/// The storage contract: every driver's tests call this on an empty store.
/// Panics on the first violation.
pub async fn conformance(s: &dyn Storage) {
    let ok = |r: Result<(), StorageError>, what: &str| {
        if let Err(e) = r {
            panic!("{what}: {e}");
        }
    };
    assert!(
        s.get("config", None).await.is_err_and(|e| e.is_not_found()),
        "missing get"
    );
    assert!(
        s.head("config",).await.is_err_and(|e| e.is_not_found()),
        "missing head"
    );
    assert!(
        s.list("data/").await.is_ok_and(|l| l.is_empty()),
        "empty list"
    );
    ok(
        s.put("config", Bytes::from_static(b"one"), PutMode::CreateOnly)
            .await,
        "create",
    );
    assert!(
        matches!(
            s.put("config", Bytes::from_static(b"two"), PutMode::CreateOnly)
                .await,
            Err(StorageError::AlreadyExists { .. })
        ),
        "create-only must refuse an existing object"
    );
    assert_eq!(
        s.get("config", None).await.ok(),
        Some(Bytes::from_static(b"one"))
    );
    ok(
        s.put("config", Bytes::from_static(b"three"), PutMode::Overwrite)
            .await,
        "overwrite",
    );
    assert_eq!(
        s.get("config", None).await.ok(),
        Some(Bytes::from_static(b"three"))
    );
    assert_eq!(
        s.get("config", Some(1..4)).await.ok(),
        Some(Bytes::from_static(b"hre"))
    );
    assert!(
        s.get("config", Some(2..9)).await.is_err(),
        "range past the end must fail"
    );
    assert_eq!(s.head("config").await.ok().map(|m| m.size), Some(5));
    ok(
        s.put(
            "data/ab/abcd",
            Bytes::from_static(b"x"),
            PutMode::CreateOnly,
        )
        .await,
        "nested",
    );
    ok(
        s.put("data/cd/cdef", Bytes::new(), PutMode::CreateOnly)
            .await,
        "empty object",
    );
    ok(
        s.put("datafile", Bytes::from_static(b"y"), PutMode::Overwrite)
            .await,
        "sibling",
    );
    let mut keys: Vec<String> = s
        .list("data/")
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.key)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        vec!["data/ab/abcd".to_string(), "data/cd/cdef".to_string()]
    );
    assert_eq!(s.get("data/cd/cdef", None).await.ok(), Some(Bytes::new()));
    ok(s.delete("data/ab/abcd").await, "delete");
    assert!(
        s.delete("data/ab/abcd")
            .await
            .is_err_and(|e| e.is_not_found()),
        "double delete"
    );
    assert!(
        s.get("data/ab/abcd", None)
            .await
            .is_err_and(|e| e.is_not_found())
    );
    assert!(
        s.put("../escape", Bytes::new(), PutMode::Overwrite)
            .await
            .is_err(),
        "escape"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conforms_to_the_storage_contract() {
        conformance(&MemoryStorage::new()).await;
    }
}
