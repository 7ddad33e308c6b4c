//! Retries with exponential backoff and jitter for transient failures
//! (throttling, 5xx, timeouts, connection resets, unreachable endpoints).

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::StorageError;
use crate::{Capabilities, DynStorage, IfMissing, ObjectMeta, PutMode, Storage};

/// How often and how patiently to retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: u32,
    /// Delay before the first retry; doubles each time.
    pub base_delay: Duration,
    /// Upper bound of one delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Five retries from 250 ms, capped at 8 s: about 8 s of patience in all.
    fn default() -> Self {
        Self {
            max_retries: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (1-based), with jitter in [50%, 100%].
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max_delay);
        let mut b = [0u8; 2];
        let _ = getrandom::fill(&mut b);
        let jitter = 0.5 + f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX) / 2.0;
        exp.mul_f64(jitter)
    }
}

/// Retries transient failures of the wrapped store.
#[derive(Debug)]
pub struct RetryStorage {
    inner: DynStorage,
    policy: RetryPolicy,
    retries: Arc<AtomicU64>,
}

impl RetryStorage {
    /// Wraps `inner`.
    pub fn new(inner: DynStorage, policy: RetryPolicy) -> Self {
        Self {
            inner,
            policy,
            retries: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many retries this wrapper has made so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    async fn run<T, F, Fut>(&self, mut op: F) -> Result<T, StorageError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StorageError>>,
    {
        let mut attempt = 0;
        loop {
            match op().await {
                Err(e) if e.is_transient() && attempt < self.policy.max_retries => {
                    attempt += 1;
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(self.policy.delay(attempt)).await;
                }
                Err(e) if e.is_transient() && attempt > 0 => {
                    return Err(match e {
                        StorageError::Unreachable { detail } => StorageError::Unreachable {
                            detail: format!("{detail} (gave up after {} attempts)", attempt + 1),
                        },
                        StorageError::Transient { key, detail } => StorageError::Transient {
                            key,
                            detail: format!("{detail} (gave up after {} attempts)", attempt + 1),
                        },
                        other => other,
                    });
                }
                other => return other,
            }
        }
    }
}

#[async_trait]
impl Storage for RetryStorage {
    async fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<(), StorageError> {
        // A create-only put whose earlier attempt landed but whose answer was
        // lost finds its own object on the retry: the same bytes are success,
        // anything else is a real "already exists".
        let attempts = AtomicU64::new(0);
        self.run(|| {
            let retry = attempts.fetch_add(1, Ordering::Relaxed) > 0;
            let data = data.clone();
            async move {
                match self.inner.put(key, data.clone(), mode).await {
                    Err(StorageError::AlreadyExists { key: k })
                        if retry && mode == PutMode::CreateOnly =>
                    {
                        if self.inner.get(key, None).await? == data {
                            Ok(())
                        } else {
                            Err(StorageError::AlreadyExists { key: k })
                        }
                    }
                    other => other,
                }
            }
        })
        .await
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, StorageError> {
        self.run(|| self.inner.get(key, range.clone())).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, StorageError> {
        self.run(|| self.inner.head(key)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        self.run(|| self.inner.list(prefix)).await
    }

    async fn delete(&self, key: &str, if_missing: IfMissing) -> Result<(), StorageError> {
        // A delete whose earlier attempt landed but whose answer was lost
        // finds nothing on the retry: that is success.
        let attempts = AtomicU64::new(0);
        self.run(|| {
            let retry = attempts.fetch_add(1, Ordering::Relaxed) > 0;
            async move {
                match self.inner.delete(key, if_missing).await {
                    Err(StorageError::NotFound { .. }) if retry => Ok(()),
                    other => other,
                }
            }
        })
        .await
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{Fault, FaultStorage};
    use crate::memory::MemoryStorage;

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        }
    }

    #[tokio::test]
    async fn retries_transient_failures_then_succeeds() {
        let faulty = Arc::new(FaultStorage::new(Arc::new(MemoryStorage::new())));
        faulty.inject(Fault::Transient, 2);
        let s = RetryStorage::new(faulty.clone(), fast());
        assert!(
            s.put("config", Bytes::from_static(b"x"), PutMode::Overwrite)
                .await
                .is_ok()
        );
        assert_eq!(s.retries(), 2);
        assert_eq!(faulty.calls(), 3);
    }

    #[tokio::test]
    async fn gives_up_with_a_clear_error() {
        let faulty = Arc::new(FaultStorage::new(Arc::new(MemoryStorage::new())));
        faulty.inject(Fault::Unreachable, 100);
        let s = RetryStorage::new(faulty.clone(), fast());
        let err = s
            .get("config", None)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("gave up after 4 attempts"), "{err}");
        assert_eq!(faulty.calls(), 4);
    }

    #[tokio::test]
    async fn does_not_retry_permanent_failures() {
        let faulty = Arc::new(FaultStorage::new(Arc::new(MemoryStorage::new())));
        faulty.inject(Fault::Denied, 100);
        let s = RetryStorage::new(faulty.clone(), fast());
        assert!(matches!(
            s.head("config").await,
            Err(StorageError::PermissionDenied { .. })
        ));
        assert_eq!(faulty.calls(), 1);
        let s = RetryStorage::new(Arc::new(MemoryStorage::new()), fast());
        assert!(s.get("config", None).await.is_err_and(|e| e.is_not_found()));
    }

    #[tokio::test]
    async fn a_create_only_retry_that_finds_its_own_object_succeeds() {
        let faulty = Arc::new(FaultStorage::new(Arc::new(MemoryStorage::new())));
        let s = RetryStorage::new(faulty.clone(), fast());
        faulty.inject(Fault::LostResponse, 1);
        assert!(
            s.put(
                "running/a",
                Bytes::from_static(b"mine"),
                PutMode::CreateOnly
            )
            .await
            .is_ok()
        );
        assert_eq!(s.retries(), 1);
        // Someone else's object under the name is still refused.
        s.inner
            .put(
                "running/b",
                Bytes::from_static(b"theirs"),
                PutMode::Overwrite,
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        faulty.inject(Fault::Transient, 1);
        assert!(matches!(
            s.put(
                "running/b",
                Bytes::from_static(b"mine"),
                PutMode::CreateOnly
            )
            .await,
            Err(StorageError::AlreadyExists { .. })
        ));
        // Without a retry, an existing object is refused as always.
        assert!(matches!(
            s.put(
                "running/a",
                Bytes::from_static(b"mine"),
                PutMode::CreateOnly
            )
            .await,
            Err(StorageError::AlreadyExists { .. })
        ));
    }

    #[tokio::test]
    async fn passes_the_contract_through() {
        crate::contract::assert_conforms(|| async {
            let faulty = Arc::new(FaultStorage::new(Arc::new(MemoryStorage::new())));
            Arc::new(RetryStorage::new(faulty, fast())) as DynStorage
        })
        .await;
    }

    #[tokio::test]
    async fn a_delete_retry_that_finds_nothing_succeeds() {
        let faulty = Arc::new(FaultStorage::new(Arc::new(MemoryStorage::new())));
        let s = RetryStorage::new(faulty.clone(), fast());
        s.put("plans/p", Bytes::from_static(b"x"), PutMode::CreateOnly)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        faulty.inject(Fault::LostResponse, 1);
        assert!(s.delete("plans/p", IfMissing::Fail).await.is_ok());
        assert_eq!(s.retries(), 1);
        // Without a lost answer, a missing object is still NotFound.
        assert!(
            s.delete("plans/p", IfMissing::Fail)
                .await
                .is_err_and(|e| e.is_not_found())
        );
    }

    #[test]
    fn delays_grow_and_are_capped() {
        let p = RetryPolicy::default();
        assert!(p.delay(1) <= Duration::from_millis(250));
        assert!(p.delay(1) >= Duration::from_millis(125));
        assert!(p.delay(30) <= Duration::from_secs(8));
        assert!(p.delay(30) >= Duration::from_secs(4));
    }
}
