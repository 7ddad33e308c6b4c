//! `wal push` (archive_command) and `wal fetch` (restore_command).
//!
//! The contract (docs/FORMAT.md section 9): push succeeds only once the file is
//! durably stored; an identical file pushed again succeeds with a warning; a
//! different file under an existing name is refused and never overwritten;
//! a segment whose header names another cluster (or another position) is
//! refused. Push works ahead on the next `.ready` segments so PostgreSQL's
//! serial archiver keeps up; fetch prefetches the next segments into the spool.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chrono::Utc;
use futures::StreamExt;
use lifeboat_repo::Repository;
use lifeboat_repo::pool::BufferPool;
use lifeboat_storage::{DynStorage, PutMode};

use crate::error::{PgError, Result, blocking};
use crate::segment::{self, RestorePoint};
use crate::spool::{self, PushedAnswer, PushedFile, Spool};
use crate::walname::{WalFile, looks_like_wal};
use crate::walstore::{self, Stored, WalEntry};

/// The cluster whose WAL is being archived or restored, identified by the
/// `pg_control` of its data directory.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// The data directory.
    pub pgdata: PathBuf,
    /// Its system identifier.
    pub sysid: u64,
}

impl Cluster {
    /// Reads the cluster's identity from `pgdata`.
    pub fn open(pgdata: &Path) -> Result<Self> {
        Ok(Self {
            pgdata: pgdata.to_path_buf(),
            sysid: crate::control::system_identifier(pgdata)?,
        })
    }
}

/// A WAL file checked and summarised, ready to store.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Its archive entry.
    pub entry: WalEntry,
    /// Restore points found in it.
    pub restore_points: Vec<RestorePoint>,
    /// The segment size its header declares (segments only).
    pub segment_size: Option<u64>,
}

/// Checks that `content` is a WAL file of `cluster` named `name` and
/// summarises it for point-in-time recovery.
pub fn prepare(cluster: &Cluster, name: &str, content: &[u8]) -> Result<Prepared> {
    if !looks_like_wal(name) {
        return Err(PgError::WalRefused(format!(
            "{name:?} is not the name of a WAL file"
        )));
    }
    let mut entry = WalEntry {
        sysid: cluster.sysid,
        name: name.to_string(),
        first_xact_us: None,
        last_xact_us: None,
        pushed_s: Utc::now().timestamp(),
        stored_size: 0,
    };
    let is_segment = name.len() == 24 || name.ends_with(".partial");
    if !is_segment {
        return Ok(Prepared {
            entry,
            restore_points: Vec::new(),
            segment_size: None,
        });
    }
    let h =
        segment::parse_header(content).map_err(|e| PgError::WalRefused(format!("{name}: {e}")))?;
    if h.sysid != cluster.sysid {
        return Err(PgError::WalRefused(format!(
            "{name} belongs to the cluster with system identifier {}, but this is cluster {} ({}); refusing it",
            h.sysid,
            cluster.sysid,
            cluster.pgdata.display()
        )));
    }
    let seg_size = u64::from(h.seg_size);
    let start = match WalFile::parse(name, seg_size) {
        Some(WalFile::Segment { segno, .. }) | Some(WalFile::Partial { segno, .. }) => {
            segno * seg_size
        }
        _ => {
            return Err(PgError::WalRefused(format!(
                "{name} does not fit the {seg_size}-byte segment size its header declares"
            )));
        }
    };
    if h.pageaddr.0 != start {
        return Err(PgError::WalRefused(format!(
            "{name} holds WAL from position {}, not the position its name says; refusing a renamed or damaged file",
            h.pageaddr
        )));
    }
    let summary = segment::scan(content, &h);
    entry.first_xact_us = summary.first_xact_us;
    entry.last_xact_us = summary.last_xact_us;
    Ok(Prepared {
        entry,
        restore_points: summary.restore_points,
        segment_size: Some(seg_size),
    })
}

/// What a push did with the file PostgreSQL asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PushOutcome {
    /// Stored now.
    Stored,
    /// An identical copy was already archived (a repeated push).
    AlreadyArchived,
    /// An earlier push had archived it ahead of time.
    ArchivedAhead,
    /// A `.partial` file was refused; reported, but not fatal.
    PartialSkipped,
}

/// The report of one `wal push`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PushReport {
    /// The file PostgreSQL asked to archive.
    pub name: String,
    /// What happened to it.
    pub outcome: PushOutcome,
    /// Later segments archived ahead in the same run.
    pub ahead: Vec<String>,
    /// Things worth a warning.
    pub warnings: Vec<String>,
}

/// Resolves `%p` (relative to the data directory): the full path and the
/// file name.
fn wal_path(cluster: &Cluster, path: &Path) -> Result<(PathBuf, String)> {
    let full = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cluster.pgdata.join(path)
    };
    let name = full
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| PgError::Invalid(format!("{} has no file name", full.display())))?
        .to_string();
    Ok((full, name))
}

/// Resolves `%p` and reads the file.
fn read_wal(cluster: &Cluster, path: &Path) -> Result<(String, Vec<u8>)> {
    let (full, name) = wal_path(cluster, path)?;
    let content = std::fs::read(&full).map_err(|e| PgError::io(&full, e))?;
    Ok((name, content))
}

/// What the spool answered for one `wal push`.
#[derive(Debug)]
pub enum FromSpool {
    /// The background pusher archived this very file.
    Archived(PushReport),
    /// Not archived ahead (yet).
    NotYet,
    /// Archived ahead from another version of the file: the caller must
    /// archive it itself, which compares it with the archived copy.
    Unverified,
}

/// Answers a push from the spool alone, without unlocking the repository or
/// reading the segment, when the background pusher already archived this
/// exact file.
pub fn push_from_spool(cluster: &Cluster, spool: &Spool, path: &Path) -> Result<FromSpool> {
    let (full, name) = wal_path(cluster, path)?;
    // A file that is not there is an error now, not after waiting for a
    // pusher that will never find it.
    std::fs::metadata(&full).map_err(|e| PgError::io(&full, e))?;
    Ok(match spool.take_pushed(&name, &full)? {
        PushedAnswer::NotYet => FromSpool::NotYet,
        PushedAnswer::Unverified => FromSpool::Unverified,
        PushedAnswer::Archived(warnings) => FromSpool::Archived(PushReport {
            outcome: if warnings.is_empty() {
                PushOutcome::ArchivedAhead
            } else {
                PushOutcome::AlreadyArchived
            },
            name,
            ahead: Vec::new(),
            warnings,
        }),
    })
}

/// True when `path` is a full segment in the cluster's `pg_wal`, which the
/// background pusher can archive ahead of PostgreSQL's call.
pub fn pushable_ahead(cluster: &Cluster, path: &Path) -> bool {
    let full = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cluster.pgdata.join(path)
    };
    let in_pg_wal = full
        .parent()
        .zip(std::fs::canonicalize(cluster.pgdata.join("pg_wal")).ok())
        .is_some_and(|(dir, wal)| std::fs::canonicalize(dir).is_ok_and(|d| d == wal));
    in_pg_wal
        && full
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.len() == 24 && looks_like_wal(n))
}

/// Refuses a history file that is malformed or contradicts the archived
/// history of its parents: one forged file would make every later recovery
/// of the cluster fail, or follow a timeline that never existed.
async fn check_history(repo: &Repository, entry: &WalEntry, content: &[u8]) -> Result<()> {
    let Some(WalFile::History { tli }) = WalFile::parse(&entry.name, 16 << 20) else {
        return Ok(());
    };
    // The parents the file names (the nearest ones: each archived history
    // was checked against its own parents when it was pushed).
    let parents: Vec<u32> = crate::history::parse(&String::from_utf8_lossy(content))
        .unwrap_or_default()
        .iter()
        .rev()
        .map(|b| b.parent)
        .filter(|p| *p >= 2)
        .take(16)
        .collect();
    let mut archived = std::collections::BTreeMap::new();
    for parent in parents {
        let name = WalFile::History { tli: parent }.name(16 << 20);
        if let Some(e) = walstore::find(repo.storage(), entry.sysid, &name)
            .await?
            .into_iter()
            .next()
        {
            let text = walstore::load(repo, &e).await?;
            if let Ok(b) = crate::history::parse(&String::from_utf8_lossy(&text)) {
                archived.insert(parent, b);
            }
        }
    }
    crate::history::validate(tli, content, &|t| archived.get(&t).cloned())
        .map(|_| ())
        .map_err(|why| {
            PgError::WalRefused(format!(
                "{} is not a valid timeline history file: {why}; refusing to archive it",
                entry.name
            ))
        })
}

async fn store_prepared(repo: &Repository, p: &Prepared, content: Vec<u8>) -> Result<Stored> {
    check_history(repo, &p.entry, &content).await?;
    let stored = walstore::store(repo, &p.entry, content).await?;
    store_restore_points(repo, p).await?;
    Ok(stored)
}

/// Records the restore points found in a stored WAL file.
async fn store_restore_points(repo: &Repository, p: &Prepared) -> Result<()> {
    for rp in &p.restore_points {
        let key = walstore::restore_point_key(p.entry.sysid, rp);
        match repo
            .storage()
            .put(&key, bytes::Bytes::new(), PutMode::CreateOnly)
            .await
        {
            Ok(()) | Err(lifeboat_storage::StorageError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The `.ready` segments of the cluster, oldest first.
fn ready_segments(cluster: &Cluster) -> Vec<String> {
    let dir = cluster.pgdata.join("pg_wal").join("archive_status");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_suffix(".ready")
                        .map(str::to_string)
                })
                .filter(|f| f.len() == 24)
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Archives the file at `path` (as PostgreSQL's `%p`) now, in this process.
pub async fn push(repo: &Repository, cluster: &Cluster, path: &Path) -> Result<PushReport> {
    let (name, content) = read_wal(cluster, path)?;
    let mut report = PushReport {
        name: name.clone(),
        outcome: PushOutcome::Stored,
        ahead: Vec::new(),
        warnings: Vec::new(),
    };
    let stored = match prepare(cluster, &name, &content) {
        Ok(p) => store_prepared(repo, &p, content).await,
        Err(e) => Err(e),
    };
    match stored {
        Ok(Stored::New) => {}
        Ok(Stored::AlreadyArchived) => {
            report.outcome = PushOutcome::AlreadyArchived;
            report.warnings.push(format!(
                "{name} was already archived with identical content; nothing to do"
            ));
        }
        Err(PgError::WalRefused(why)) if name.ends_with(".partial") => {
            report.outcome = PushOutcome::PartialSkipped;
            report
                .warnings
                .push(format!("{why} (a .partial file; not retried)"));
        }
        Err(e) => return Err(e),
    }
    Ok(report)
}

/// What a background pusher run did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PusherReport {
    /// Segments archived.
    pub archived: Vec<String>,
    /// Segments that failed, with the reason (also left in the spool).
    pub failed: Vec<(String, String)>,
}

/// The background pusher: archives every `.ready` segment of the cluster,
/// `parallel` at a time, recording each outcome in the spool, until no new
/// segment has appeared for `idle`. One unlock serves the whole burst, so
/// PostgreSQL's serial archiver only has to find the records.
pub async fn push_ahead(
    repo: &Repository,
    cluster: &Cluster,
    spool: &Spool,
    parallel: usize,
    idle: std::time::Duration,
) -> Result<PusherReport> {
    let parallel = parallel.max(1);
    let mut report = PusherReport::default();
    let mut quiet_since = std::time::Instant::now();
    let buffers = BufferPool::new(parallel);
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut busy: HashSet<String> = HashSet::new();
    // Segments this pusher archived: PostgreSQL takes their records and
    // renames their `.ready` a moment later, and they must not be archived
    // twice in between. (A failed one is left to its failure record, which
    // `wal push` consumes, so it is tried again.)
    let mut done: HashSet<String> = HashSet::new();
    loop {
        // Keep `parallel` segments in flight: a new one starts as soon as
        // one ends, not when a whole batch has ended.
        if in_flight.len() < parallel {
            let ready = ready_segments(cluster);
            done.retain(|n| ready.binary_search(n).is_ok());
            let next: Vec<String> = ready
                .into_iter()
                .filter(|n| !busy.contains(n) && !done.contains(n))
                .filter(|n| !spool.has_pushed(n) && !spool.has_failed(n))
                .take(parallel - in_flight.len())
                .collect();
            for name in next {
                busy.insert(name.clone());
                in_flight.push(push_one_ahead(repo, cluster, spool, &buffers, name));
            }
        }
        let Some((name, r)) = in_flight.next().await else {
            if quiet_since.elapsed() > idle {
                return Ok(report);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        quiet_since = std::time::Instant::now();
        busy.remove(&name);
        match r {
            Ok(()) => {
                done.insert(name.clone());
                report.archived.push(name);
            }
            Err(e) => {
                let why = e.to_string();
                let _ = spool.mark_failed(&name, &why);
                report.failed.push((name, why));
                if e.is_access_problem() {
                    // The store is down: let PostgreSQL's retries pace us.
                    return Ok(report);
                }
            }
        }
    }
}

/// Archives segment `name` of `pg_wal` for the background pusher and records
/// it in the spool.
async fn push_one_ahead(
    repo: &Repository,
    cluster: &Cluster,
    spool: &Spool,
    buffers: &BufferPool,
    name: String,
) -> (String, Result<()>) {
    let full = cluster.pgdata.join("pg_wal").join(&name);
    let r = async {
        // Reading, checking and sealing a segment run on a blocking thread
        // (on this task they would take turns with the other segments in
        // flight), into a recycled buffer: a fresh 16 MiB buffer per
        // segment, faulted in and freed again, cost a tenth of a backlog's
        // drain. The spool records the file by its identity (or, if it
        // changed while read, by a hash), so only the sealed bytes move on.
        let (record, p, sealed) = blocking({
            let (cluster, name, full) = (cluster.clone(), name.clone(), full.clone());
            let (key, buffers) = (repo.key().clone(), buffers.clone());
            move || {
                let mut buf = buffers.take(0);
                let sealed = (|| {
                    let identity = spool::read_identified(&full, &mut buf)
                        .map_err(|e| PgError::io(&full, e))?;
                    let p = prepare(&cluster, &name, &buf)?;
                    let sealed = walstore::seal(&key, &p.entry, &buf)?;
                    Ok((PushedFile::of(identity, &buf), p, sealed))
                })();
                buffers.give(buf);
                sealed
            }
        })
        .await?;
        let reread = || std::fs::read(&full).map_err(|e| PgError::io(&full, e));
        let warnings = match walstore::store_sealed(repo, &p.entry, sealed, reread).await? {
            Stored::New => Vec::new(),
            Stored::AlreadyArchived => vec![format!(
                "{name} was already archived with identical content; nothing to do"
            )],
        };
        store_restore_points(repo, &p).await?;
        let (spool, n) = (spool.clone(), name.clone());
        blocking(move || spool.mark_pushed(&n, &record, &warnings)).await
    }
    .await;
    (name, r)
}

/// What a fetch found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchOutcome {
    /// Written to the destination.
    Restored,
    /// Not in the archive (PostgreSQL asks for such files routinely).
    Missing,
}

/// True when `content`, taken from the spool, is the segment the archive
/// lists as `entry`: the right cluster, position and size, and the same
/// first and last transaction times as the archive key records.
fn matches_archive(entry: &WalEntry, sysid: u64, content: &[u8]) -> bool {
    let Ok(h) = segment::parse_header(content) else {
        return false;
    };
    let seg_size = u64::from(h.seg_size);
    let Some(WalFile::Segment { segno, .. }) = WalFile::parse(&entry.name, seg_size) else {
        return false;
    };
    if h.sysid != sysid || h.pageaddr.0 != segno * seg_size || content.len() as u64 != seg_size {
        return false;
    }
    let summary = segment::scan(content, &h);
    summary.first_xact_us == entry.first_xact_us && summary.last_xact_us == entry.last_xact_us
}

/// Restores WAL file `name` of `sysid` to `dest`, prefetching up to
/// `prefetch` following segments into the spool.
///
/// The archive is always listed first. "Missing" is answered only after the
/// repository at `location` is confirmed to exist, so an unmounted or
/// mistyped repository is an error (which stops recovery), never an end of
/// WAL (which would promote early). A file is answered without unlocking the
/// repository when it is missing or prefetched; `open` is only called when
/// there is something to decrypt.
#[allow(clippy::too_many_arguments)]
pub async fn fetch<F, Fut>(
    storage: &DynStorage,
    location: &str,
    open: F,
    sysid: u64,
    spool: &Spool,
    name: &str,
    dest: &Path,
    prefetch: usize,
) -> Result<FetchOutcome>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Repository>>,
{
    if !looks_like_wal(name) {
        return Err(PgError::Invalid(format!(
            "{name:?} is not the name of a WAL file"
        )));
    }
    if name.len() == 24 {
        spool.prune_fetched_before(name);
    }
    let spooled = spool.take_fetched(name);
    let Some(entry) = walstore::find(storage, sysid, name)
        .await?
        .into_iter()
        .next()
    else {
        lifeboat_repo::repository::ensure_repository(storage, location).await?;
        return Ok(FetchOutcome::Missing);
    };
    if let Some(content) = spooled
        && matches_archive(&entry, sysid, &content)
    {
        spool::write_durably(dest, &content)?;
        return Ok(FetchOutcome::Restored);
    }
    let repo = open().await?;
    // The following segments, when the segment size is known.
    let next: Vec<String> = match (
        spool.segment_size(),
        WalFile::parse(name, spool.segment_size().unwrap_or(16 << 20)),
    ) {
        (Some(size), Some(WalFile::Segment { tli, segno })) => (1..=prefetch as u64)
            .map(|i| {
                WalFile::Segment {
                    tli,
                    segno: segno + i,
                }
                .name(size)
            })
            .filter(|n| !spool.has_fetched(n))
            .collect(),
        _ => Vec::new(),
    };
    let main = async {
        let content = walstore::load(&repo, &entry).await?;
        if name.len() == 24 {
            let h = segment::parse_header(&content)
                .map_err(|e| PgError::WalRefused(format!("archived {name}: {e}")))?;
            if h.sysid != sysid {
                return Err(PgError::WalRefused(format!(
                    "archived {name} belongs to cluster {}, not {sysid}",
                    h.sysid
                )));
            }
            if spool.segment_size().is_none() {
                spool.set_segment_size(u64::from(h.seg_size))?;
            }
        }
        spool::write_durably(dest, &content)
    };
    let ahead = futures::stream::iter(next)
        .map(|n| {
            let repo = &repo;
            async move {
                let found = walstore::find(repo.storage(), sysid, &n)
                    .await
                    .ok()?
                    .into_iter()
                    .next()?;
                let content = walstore::load(repo, &found).await.ok()?;
                spool.put_fetched(&n, &content).ok()
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>();
    let (main, _) = futures::join!(main, ahead);
    main?;
    Ok(FetchOutcome::Restored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    async fn fetch_from(storage: DynStorage, spool_root: &Path) -> Result<FetchOutcome> {
        let spool = Spool::open(spool_root, 9)?;
        let dest = spool_root.join("RECOVERYXLOG");
        fetch(
            &storage,
            "/mnt/backups/lifeboat",
            || async { Err(PgError::Invalid("no repository to open".into())) },
            9,
            &spool,
            "000000010000000000000003",
            &dest,
            0,
        )
        .await
    }

    #[tokio::test]
    async fn a_missing_repository_is_an_error_not_a_missing_segment() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // Nothing at all where the repository should be (an unmounted mount point).
        let empty: DynStorage = Arc::new(lifeboat_storage::memory::MemoryStorage::new());
        let r = fetch_from(empty.clone(), &dir.path().join("spool")).await;
        let e = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            e.contains("no lifeboat repository at /mnt/backups/lifeboat"),
            "{e}"
        );
        // A repository (a config object) without the segment: missing.
        empty
            .put(
                "config",
                bytes::Bytes::from_static(b"x"),
                PutMode::CreateOnly,
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let r = fetch_from(empty, &dir.path().join("spool")).await;
        assert_eq!(r.ok(), Some(FetchOutcome::Missing));
    }

    /// Segment 0/3000000 (1 MiB segments) of cluster 42, with one commit.
    const NAME: &str = "000000010000000000000030";

    fn wal(sysid: u64) -> Vec<u8> {
        use crate::segment::tests::{pg_time, record, segment};
        let mut seg = segment(&[record(1, 0x00, &pg_time(1_763_800_000_000_000))], 1 << 20);
        seg[24..32].copy_from_slice(&sysid.to_le_bytes());
        seg
    }

    async fn repo() -> Repository {
        let init = lifeboat_repo::InitOptions {
            kdf: lifeboat_format::keyslot::KdfCost {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            ..Default::default()
        };
        Repository::init(
            Arc::new(lifeboat_storage::memory::MemoryStorage::new()),
            "memory",
            b"pw",
            init,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn cluster(dir: &Path) -> Cluster {
        Cluster {
            pgdata: dir.to_path_buf(),
            sysid: 42,
        }
    }

    #[test]
    fn a_segment_is_accepted_only_from_its_cluster_and_under_its_own_name() {
        let c = cluster(Path::new("/srv/pg"));
        let p = prepare(&c, NAME, &wal(42)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.segment_size, Some(1 << 20));
        assert_eq!(p.entry.first_xact_us, Some(1_763_800_000_000_000));
        let refused = |name: &str, content: &[u8]| match prepare(&c, name, content) {
            Err(PgError::WalRefused(why)) => why,
            other => panic!("{name}: {other:?}"),
        };
        assert!(refused(NAME, &wal(7)).contains("system identifier 7"));
        assert!(
            refused("000000010000000000000031", &wal(42))
                .contains("not the position its name says")
        );
        assert!(refused("notwal", &wal(42)).contains("not the name of a WAL file"));
        assert!(refused(NAME, b"garbage").contains(NAME));
        // History files carry no header; they are checked when stored.
        let h = prepare(
            &c,
            "00000002.history",
            b"1\t0/3000000\tno recovery target\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.segment_size, None);
    }

    #[test]
    fn a_spooled_segment_is_trusted_only_if_it_is_the_archived_one() {
        let c = cluster(Path::new("/srv/pg"));
        let content = wal(42);
        let entry = prepare(&c, NAME, &content)
            .unwrap_or_else(|e| panic!("{e}"))
            .entry;
        assert!(matches_archive(&entry, 42, &content));
        assert!(!matches_archive(&entry, 43, &content));
        assert!(!matches_archive(&entry, 42, &content[..content.len() / 2]));
        let mut other = entry.clone();
        other.last_xact_us = Some(1);
        assert!(!matches_archive(&other, 42, &content));
    }

    #[tokio::test]
    async fn a_pushed_segment_comes_back_byte_for_byte_and_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let c = cluster(dir.path());
        let r = repo().await;
        let path = dir.path().join(NAME);
        std::fs::write(&path, wal(42)).unwrap_or_else(|e| panic!("{e}"));
        let first = push(&r, &c, &path).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.outcome, PushOutcome::Stored);
        let again = push(&r, &c, &path).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.outcome, PushOutcome::AlreadyArchived);
        // A different file under the same name is refused, the archived one kept.
        let mut changed = wal(42);
        changed[5000] ^= 1;
        std::fs::write(&path, &changed).unwrap_or_else(|e| panic!("{e}"));
        assert!(push(&r, &c, &path).await.is_err());
        // A .partial that is not WAL is skipped with a warning, not an error.
        let partial = dir.path().join(format!("{NAME}.partial"));
        std::fs::write(&partial, b"torn").unwrap_or_else(|e| panic!("{e}"));
        let skipped = push(&r, &c, &partial)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(skipped.outcome, PushOutcome::PartialSkipped);

        let spool = Spool::open(&dir.path().join("spool"), 42).unwrap_or_else(|e| panic!("{e}"));
        let dest = dir.path().join("RECOVERYXLOG");
        let fetched = |name: &'static str| {
            let (r, spool, dest) = (r.clone(), &spool, &dest);
            async move {
                let storage = r.storage().clone();
                fetch(
                    &storage,
                    "memory",
                    || async move { Ok(r) },
                    42,
                    spool,
                    name,
                    dest,
                    2,
                )
                .await
            }
        };
        assert_eq!(fetched(NAME).await.ok(), Some(FetchOutcome::Restored));
        assert_eq!(std::fs::read(&dest).unwrap_or_default(), wal(42));
        assert_eq!(
            fetched("000000010000000000000031").await.ok(),
            Some(FetchOutcome::Missing)
        );
    }
}
