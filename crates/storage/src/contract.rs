//! The storage contract as named cases, for tests: every driver and every
//! wrapper runs all of them (the fs, memory, retry, limit and fault tests
//! here; the S3 driver against the S3 test server in `tests/`). Each case
//! gets an empty store and returns what it found wrong, so a failing run
//! names every broken case at once. Test support: nothing in lifeboat calls
//! it at run time.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::{DynStorage, IfMissing, PutMode, StorageError};

/// What a case found wrong, if anything.
pub type CaseResult = Result<(), String>;

type CaseFuture = Pin<Box<dyn Future<Output = CaseResult> + Send>>;

/// One named rule of the contract.
pub struct Case {
    /// What the rule is, as a test name.
    pub name: &'static str,
    run: fn(DynStorage) -> CaseFuture,
}

impl Case {
    /// Runs the case on `store`, which must be empty.
    pub async fn run(&self, store: DynStorage) -> CaseResult {
        (self.run)(store).await
    }
}

macro_rules! case {
    ($name:ident) => {
        Case {
            name: stringify!($name),
            run: |s| Box::pin($name(s)),
        }
    };
}

/// Every case of the contract.
pub fn cases() -> Vec<Case> {
    vec![
        case!(missing_objects_are_not_found),
        case!(create_only_refuses_an_existing_object),
        case!(overwrite_replaces),
        case!(empty_objects),
        case!(ranged_reads),
        case!(listing_by_prefix_with_times),
        case!(deletes_of_missing_objects),
        case!(large_objects),
        case!(concurrent_writers),
        case!(keys_cannot_escape),
    ]
}

/// Runs every case, each on a fresh store from `fresh`, and panics naming
/// every case that failed.
pub async fn assert_conforms<F, Fut>(mut fresh: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = DynStorage>,
{
    let mut failures = Vec::new();
    for case in cases() {
        if let Err(why) = case.run(fresh().await).await {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "storage contract broken:\n  {}",
        failures.join("\n  ")
    );
}

fn check(ok: bool, what: impl FnOnce() -> String) -> CaseResult {
    if ok { Ok(()) } else { Err(what()) }
}

fn step<T>(r: Result<T, StorageError>, what: &str) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

fn not_found<T>(r: &Result<T, StorageError>) -> bool {
    matches!(r, Err(e) if e.is_not_found())
}

/// Deterministic bytes that do not compress or repeat.
fn pattern(len: usize, seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn missing_objects_are_not_found(s: DynStorage) -> CaseResult {
    check(not_found(&s.get("config", None).await), || {
        "get of a missing object".into()
    })?;
    check(not_found(&s.get("config", Some(0..1)).await), || {
        "ranged get of a missing object".into()
    })?;
    check(not_found(&s.head("config").await), || {
        "head of a missing object".into()
    })?;
    let listed = step(s.list("data/").await, "list of an empty prefix")?;
    check(listed.is_empty(), || {
        format!("an empty store lists {listed:?}")
    })
}

async fn create_only_refuses_an_existing_object(s: DynStorage) -> CaseResult {
    step(
        s.put("config", Bytes::from_static(b"one"), PutMode::CreateOnly)
            .await,
        "first create",
    )?;
    let again = s
        .put("config", Bytes::from_static(b"two"), PutMode::CreateOnly)
        .await;
    check(
        matches!(again, Err(StorageError::AlreadyExists { .. })),
        || format!("a second create-only put gave {again:?}"),
    )?;
    let kept = step(s.get("config", None).await, "get")?;
    check(kept == b"one"[..], || {
        format!("the refused put changed the object to {kept:?}")
    })
}

async fn overwrite_replaces(s: DynStorage) -> CaseResult {
    step(
        s.put("config", Bytes::from_static(b"one"), PutMode::Overwrite)
            .await,
        "put",
    )?;
    step(
        s.put("config", Bytes::from_static(b"three"), PutMode::Overwrite)
            .await,
        "overwrite",
    )?;
    let got = step(s.get("config", None).await, "get")?;
    check(got == b"three"[..], || {
        format!("read {got:?} after an overwrite")
    })?;
    let size = step(s.head("config").await, "head")?.size;
    check(size == 5, || format!("head says {size} bytes, not 5"))
}

async fn empty_objects(s: DynStorage) -> CaseResult {
    step(
        s.put("locks/empty", Bytes::new(), PutMode::CreateOnly)
            .await,
        "put",
    )?;
    let got = step(s.get("locks/empty", None).await, "get")?;
    check(got.is_empty(), || {
        format!("an empty object reads as {} bytes", got.len())
    })?;
    let size = step(s.head("locks/empty").await, "head")?.size;
    check(size == 0, || format!("head of an empty object says {size}"))
}

async fn ranged_reads(s: DynStorage) -> CaseResult {
    let data = pattern(10_000, 1);
    step(
        s.put("data/ab/abcd", data.clone(), PutMode::CreateOnly)
            .await,
        "put",
    )?;
    for r in [0..1, 1..4, 9_000..10_000, 0..10_000, 4_321..8_765] {
        let got = step(s.get("data/ab/abcd", Some(r.clone())).await, "ranged get")?;
        let want = data.slice(r.start as usize..r.end as usize);
        check(got == want, || {
            format!("range {r:?} read {} wrong bytes", got.len())
        })?;
    }
    check(
        s.get("data/ab/abcd", Some(9_990..10_010)).await.is_err(),
        || "a range past the end must fail, not come back short".into(),
    )
}

async fn listing_by_prefix_with_times(s: DynStorage) -> CaseResult {
    let before = SystemTime::now() - Duration::from_secs(3600);
    for (k, len) in [
        ("data/ab/abcd", 3usize),
        ("data/cd/cdef", 5),
        ("datafile", 1),
        ("index/0001", 2),
    ] {
        step(
            s.put(k, pattern(len, len as u64), PutMode::CreateOnly)
                .await,
            k,
        )?;
    }
    let mut listed = step(s.list("data/").await, "list")?;
    listed.sort_by(|a, b| a.key.cmp(&b.key));
    let keys: Vec<(&str, u64)> = listed.iter().map(|m| (m.key.as_str(), m.size)).collect();
    check(keys == [("data/ab/abcd", 3), ("data/cd/cdef", 5)], || {
        format!("list(\"data/\") gave {keys:?}")
    })?;
    let after = SystemTime::now() + Duration::from_secs(3600);
    for m in &listed {
        if let Some(t) = m.modified {
            check(t > before && t < after, || {
                format!("{} has modification time {t:?}", m.key)
            })?;
        }
    }
    let all = step(s.list("").await, "list of everything")?;
    check(all.len() == 4, || {
        format!("list(\"\") gave {} objects, not 4", all.len())
    })
}

async fn deletes_of_missing_objects(s: DynStorage) -> CaseResult {
    let missing = s.delete("snapshots/none", IfMissing::Fail).await;
    check(not_found(&missing), || {
        format!("a delete that must find its object gave {missing:?}")
    })?;
    step(
        s.delete("snapshots/none", IfMissing::Ignore).await,
        "a delete that may find nothing",
    )?;
    step(
        s.put(
            "snapshots/one",
            Bytes::from_static(b"1"),
            PutMode::CreateOnly,
        )
        .await,
        "put",
    )?;
    step(s.delete("snapshots/one", IfMissing::Fail).await, "delete")?;
    check(not_found(&s.get("snapshots/one", None).await), || {
        "a deleted object still reads".into()
    })?;
    let twice = s.delete("snapshots/one", IfMissing::Fail).await;
    check(not_found(&twice), || {
        format!("a second delete gave {twice:?}")
    })?;
    let listed = step(s.list("snapshots/").await, "list")?;
    check(listed.is_empty(), || {
        format!("a deleted object is still listed: {listed:?}")
    })
}

async fn large_objects(s: DynStorage) -> CaseResult {
    let data = pattern(20 << 20, 7);
    step(
        s.put("data/ff/large", data.clone(), PutMode::CreateOnly)
            .await,
        "put of 20 MiB",
    )?;
    let size = step(s.head("data/ff/large").await, "head")?.size;
    check(size == 20 << 20, || format!("head says {size}"))?;
    let got = step(s.get("data/ff/large", None).await, "get")?;
    check(got == data, || "20 MiB came back different".into())?;
    let r = (17 << 20)..(17 << 20) + 4096;
    let part = step(s.get("data/ff/large", Some(r.clone())).await, "ranged get")?;
    check(part == data.slice(r.start as usize..r.end as usize), || {
        "a range of a large object came back different".into()
    })
}

async fn concurrent_writers(s: DynStorage) -> CaseResult {
    // Many writers race to create one object: exactly one wins, and the
    // object holds the winner's bytes whole.
    let racers: Vec<_> = (0..8u64)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let data = pattern(64 << 10, 100 + i);
                (
                    s.put("locks/race", data.clone(), PutMode::CreateOnly).await,
                    data,
                )
            })
        })
        .collect();
    let mut winners = Vec::new();
    for r in racers {
        let (result, data) = r.await.map_err(|e| format!("a writer task failed: {e}"))?;
        match result {
            Ok(()) => winners.push(data),
            Err(StorageError::AlreadyExists { .. }) => {}
            Err(e) => return Err(format!("a racing create-only put failed: {e}")),
        }
    }
    check(winners.len() == 1, || {
        format!("{} racing create-only puts succeeded", winners.len())
    })?;
    let got = step(s.get("locks/race", None).await, "get")?;
    check(Some(&got) == winners.first(), || {
        "the object is not the winner's bytes".into()
    })?;
    // Writers of distinct objects do not disturb each other.
    let writers: Vec<_> = (0..32u64)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.put(
                    &format!("data/{i:02x}/obj{i}"),
                    pattern(1000, i),
                    PutMode::CreateOnly,
                )
                .await
            })
        })
        .collect();
    for w in writers {
        let result = w.await.map_err(|e| format!("a writer task failed: {e}"))?;
        step(result, "a concurrent put")?;
    }
    let listed = step(s.list("data/").await, "list")?;
    check(listed.len() == 32, || {
        format!("{} of 32 concurrent puts are listed", listed.len())
    })
}

async fn keys_cannot_escape(s: DynStorage) -> CaseResult {
    for key in ["../escape", "data/../../escape", "/absolute"] {
        check(
            s.put(key, Bytes::new(), PutMode::Overwrite).await.is_err(),
            || format!("put accepted the key {key:?}"),
        )?;
    }
    Ok(())
}
