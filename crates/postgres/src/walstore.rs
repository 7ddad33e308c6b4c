//! WAL files in the repository.
//!
//! Each WAL file is one sealed object (kind `WAL`), readable on its own with
//! the master key and no index:
//!
//! ```text
//! wal/<system id, 16 hex>/<file name>/<first xact µs, 16 hex>.<last xact µs, 16 hex>.<pushed at, unix s hex>
//! rp/<system id, 16 hex>/<lsn, 16 hex>.<time µs, 16 hex>.<name, hex>
//! ```
//!
//! The last component of a WAL key summarises the file (the first and last
//! transaction commit/abort times in it, 0 when none, and when it was
//! archived), so one listing gives everything point-in-time recovery needs to
//! plan, without downloading a byte. The key is the object's sealed name:
//! editing it breaks authentication. `rp/` keys list named restore points.

use bytes::Bytes;
use lifeboat_format::compress::{Compression, Encoder};
use lifeboat_format::crypto::MasterKey;
use lifeboat_format::object::{self, ObjectKind};
use lifeboat_repo::Repository;
use lifeboat_storage::{DynStorage, PutMode, StorageError};

use crate::error::{PgError, Result, blocking};
use crate::lsn::Lsn;
use crate::segment::RestorePoint;

/// Prefix of every WAL object.
pub const WAL_PREFIX: &str = lifeboat_repo::layout::WAL;
/// Prefix of every restore point marker.
pub const RESTORE_POINT_PREFIX: &str = lifeboat_repo::layout::RESTORE_POINTS;

/// The prefix of one cluster's WAL.
pub fn cluster_prefix(sysid: u64) -> String {
    format!("{WAL_PREFIX}{sysid:016x}/")
}

/// The prefix holding one WAL file.
pub fn file_prefix(sysid: u64, name: &str) -> String {
    format!("{WAL_PREFIX}{sysid:016x}/{name}/")
}

/// One archived WAL file as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalEntry {
    /// Cluster.
    pub sysid: u64,
    /// File name, as in `pg_wal`.
    pub name: String,
    /// Earliest transaction commit/abort time in it, Unix µs.
    pub first_xact_us: Option<i64>,
    /// Latest transaction commit/abort time in it, Unix µs.
    pub last_xact_us: Option<i64>,
    /// When it was archived, Unix seconds.
    pub pushed_s: i64,
    /// Stored size in bytes (compressed and encrypted).
    pub stored_size: u64,
}

impl WalEntry {
    /// The storage key.
    pub fn key(&self) -> String {
        format!(
            "{}{:016x}.{:016x}.{:x}",
            file_prefix(self.sysid, &self.name),
            self.first_xact_us.unwrap_or(0).max(0),
            self.last_xact_us.unwrap_or(0).max(0),
            self.pushed_s.max(0)
        )
    }

    /// Parses a listed key.
    pub fn parse(key: &str, stored_size: u64) -> Option<Self> {
        let rest = key.strip_prefix(WAL_PREFIX)?;
        let mut parts = rest.split('/');
        let sysid = u64::from_str_radix(parts.next()?, 16).ok()?;
        let name = parts.next()?.to_string();
        let meta = parts.next()?;
        if parts.next().is_some() || !crate::walname::looks_like_wal(&name) {
            return None;
        }
        let mut m = meta.split('.');
        let time = |s: &str| i64::from_str_radix(s, 16).ok().filter(|t| *t > 0);
        let first = m.next()?;
        let last = m.next()?;
        let pushed = i64::from_str_radix(m.next()?, 16).ok()?;
        Some(Self {
            sysid,
            name,
            first_xact_us: time(first),
            last_xact_us: time(last),
            pushed_s: pushed,
            stored_size,
        })
    }
}

/// The storage key of a restore point marker.
pub fn restore_point_key(sysid: u64, rp: &RestorePoint) -> String {
    format!(
        "{RESTORE_POINT_PREFIX}{sysid:016x}/{:016x}.{:016x}.{}",
        rp.lsn.0,
        rp.time_us.max(0),
        hex::encode(rp.name.as_bytes())
    )
}

/// Parses a restore point marker key.
pub fn parse_restore_point(key: &str) -> Option<(u64, RestorePoint)> {
    let rest = key.strip_prefix(RESTORE_POINT_PREFIX)?;
    let (sys, meta) = rest.split_once('/')?;
    let sysid = u64::from_str_radix(sys, 16).ok()?;
    let mut m = meta.splitn(3, '.');
    let lsn = Lsn(u64::from_str_radix(m.next()?, 16).ok()?);
    let time_us = i64::from_str_radix(m.next()?, 16).ok()?;
    let name = String::from_utf8(hex::decode(m.next()?).ok()?).ok()?;
    Some((sysid, RestorePoint { name, lsn, time_us }))
}

/// Every archived WAL file of a cluster (one listing; no key needed).
pub async fn list(storage: &DynStorage, sysid: u64) -> Result<Vec<WalEntry>> {
    Ok(storage
        .list(&cluster_prefix(sysid))
        .await?
        .into_iter()
        .filter_map(|m| WalEntry::parse(&m.key, m.size))
        .collect())
}

/// The stored versions of one WAL file (normally zero or one).
pub async fn find(storage: &DynStorage, sysid: u64, name: &str) -> Result<Vec<WalEntry>> {
    Ok(storage
        .list(&file_prefix(sysid, name))
        .await?
        .into_iter()
        .filter_map(|m| WalEntry::parse(&m.key, m.size))
        .collect())
}

/// Every restore point of a cluster.
pub async fn restore_points(storage: &DynStorage, sysid: u64) -> Result<Vec<RestorePoint>> {
    let mut out: Vec<RestorePoint> = storage
        .list(&format!("{RESTORE_POINT_PREFIX}{sysid:016x}/"))
        .await?
        .into_iter()
        .filter_map(|m| parse_restore_point(&m.key).map(|(_, rp)| rp))
        .collect();
    out.sort_by_key(|r| r.lsn);
    Ok(out)
}

/// Downloads and decrypts one WAL file.
pub async fn load(repo: &Repository, entry: &WalEntry) -> Result<Vec<u8>> {
    let key = entry.key();
    let bytes = repo.storage().get(&key, None).await?;
    let mk = repo.key().clone();
    blocking(move || {
        object::open_object(&mk, ObjectKind::Wal, key.as_bytes(), &bytes)
            .map_err(|e| PgError::Repo(lifeboat_repo::RepoError::corrupt(key, e)))
    })
    .await
}

/// What [`store`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Newly stored.
    New,
    /// The same content was already archived under this name.
    AlreadyArchived,
}

/// Archives a WAL file unless an identical copy exists; refuses, and never
/// overwrites, a different file under the same name. Returns once durable.
pub async fn store(repo: &Repository, entry: &WalEntry, content: Vec<u8>) -> Result<Stored> {
    let existing = find(repo.storage(), entry.sysid, &entry.name).await?;
    if !existing.is_empty() {
        return compare(repo, entry, &existing, &content).await;
    }
    let (mk, e) = (repo.key().clone(), entry.clone());
    let (sealed, content) = blocking(move || Ok((seal(&mk, &e, &content)?, content))).await?;
    put_sealed(repo, entry, sealed, || Ok(content)).await
}

/// Encrypts and compresses WAL file `entry` for the repository, with this
/// thread's encoder. Blocks for the time compression takes.
pub fn seal(key: &MasterKey, entry: &WalEntry, content: &[u8]) -> Result<Vec<u8>> {
    let name = entry.key();
    Ok(with_wal_encoder(|enc| {
        object::seal_object(key, enc, ObjectKind::Wal, name.as_bytes(), content)
    })
    .map_err(lifeboat_repo::RepoError::from)?)
}

/// [`store`] for a file already [`seal`]ed; `content` gives its plain bytes
/// again, needed only if a copy is found to compare with.
pub async fn store_sealed(
    repo: &Repository,
    entry: &WalEntry,
    sealed: Vec<u8>,
    content: impl FnOnce() -> Result<Vec<u8>>,
) -> Result<Stored> {
    let existing = find(repo.storage(), entry.sysid, &entry.name).await?;
    if !existing.is_empty() {
        return compare(repo, entry, &existing, &content()?).await;
    }
    put_sealed(repo, entry, sealed, content).await
}

async fn put_sealed(
    repo: &Repository,
    entry: &WalEntry,
    sealed: Vec<u8>,
    content: impl FnOnce() -> Result<Vec<u8>>,
) -> Result<Stored> {
    match repo
        .storage()
        .put(&entry.key(), Bytes::from(sealed), PutMode::CreateOnly)
        .await
    {
        Ok(()) => Ok(Stored::New),
        // Another pusher won the race (or our retry found our own write).
        Err(StorageError::AlreadyExists { .. }) => {
            let existing = find(repo.storage(), entry.sysid, &entry.name).await?;
            compare(repo, entry, &existing, &content()?).await
        }
        Err(e) => Err(e.into()),
    }
}

thread_local! {
    /// Each blocking thread's WAL encoder, kept between segments: a fresh
    /// one allocates its zstd context and a segment-sized output buffer
    /// again, and touching that fresh memory cost a WAL backlog's drain a
    /// tenth of its CPU.
    static WAL_ENCODER: std::cell::RefCell<Option<Encoder>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with this thread's WAL encoder (zstd level 1: WAL is written
/// once and read only for recovery; on pgbench's WAL level 3 stores 3 %
/// less and takes 1.4 times as long).
fn with_wal_encoder<T>(
    f: impl FnOnce(&mut Encoder) -> std::result::Result<T, lifeboat_format::FormatError>,
) -> std::result::Result<T, lifeboat_format::FormatError> {
    WAL_ENCODER.with_borrow_mut(|slot| {
        let enc = match slot {
            Some(e) => e,
            None => slot.insert(Encoder::new(Compression::Zstd(1))?),
        };
        f(enc)
    })
}

async fn compare(
    repo: &Repository,
    entry: &WalEntry,
    existing: &[WalEntry],
    content: &[u8],
) -> Result<Stored> {
    for e in existing {
        if load(repo, e).await? == content {
            return Ok(Stored::AlreadyArchived);
        }
    }
    Err(PgError::WalRefused(format!(
        "{} is already archived for cluster {:016x} with different content; refusing to overwrite it \
         (is another server with the same system identifier archiving into this repository?)",
        entry.name, entry.sysid
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_by_name() {
        let e = WalEntry {
            sysid: 0x1234_5678_9abc_def0,
            name: "000000010000000000000003".into(),
            first_xact_us: Some(1_763_800_000_000_000),
            last_xact_us: None,
            pushed_s: 1_763_800_100,
            stored_size: 7,
        };
        let k = e.key();
        assert!(k.starts_with("wal/123456789abcdef0/000000010000000000000003/"));
        assert_eq!(WalEntry::parse(&k, 7), Some(e));
        assert_eq!(
            WalEntry::parse("wal/xyz/000000010000000000000003/0.0.0", 1),
            None
        );
        assert_eq!(
            WalEntry::parse("wal/00000000000000ff/notwal/0.0.0", 1),
            None
        );
        let rp = RestorePoint {
            name: "before migration 42".into(),
            lsn: Lsn(0x300_0158),
            time_us: 1_763_800_000_000_000,
        };
        let k = restore_point_key(7, &rp);
        assert_eq!(parse_restore_point(&k), Some((7, rp)));
        assert!(lifeboat_storage::keys::validate(&k).is_ok());
    }
}
