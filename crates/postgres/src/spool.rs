//! A local spool directory that lets WAL archiving and recovery run ahead of
//! PostgreSQL's one-file-at-a-time calls.
//!
//! `pushed/<name>` records (as the BLAKE3 hash of its content, then any
//! warnings) a segment the background pusher archived ahead of time, so
//! PostgreSQL's own call for it returns at once; `failed/<name>` holds the
//! error if archiving it failed. `pusher.lock` is held by the one background
//! pusher of the cluster. `fetched/<name>` holds a WAL file that an earlier
//! `wal fetch` prefetched, so PostgreSQL's call for it is a local rename.
//! Everything in the spool is a cache: losing it costs time, never data.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{PgError, Result};

/// The spool of one cluster.
#[derive(Clone, Debug)]
pub struct Spool {
    dir: PathBuf,
}

/// The default spool root: `$LIFEBOAT_SPOOL_DIR`, else a private directory
/// under the system temporary directory, per user.
pub fn default_root() -> PathBuf {
    match std::env::var_os("LIFEBOAT_SPOOL_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => std::env::temp_dir().join(format!(
            "lifeboat-spool-{}",
            rustix::process::geteuid().as_raw()
        )),
    }
}

fn make_private_dir(p: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .map_err(|e| PgError::io(p, e))?;
    // Refuse a spool someone else could have planted files in.
    let m = fs::metadata(p).map_err(|e| PgError::io(p, e))?;
    if m.permissions().mode() & 0o022 != 0 {
        return Err(PgError::Setup(format!(
            "spool directory {} is writable by others; make it private (chmod 700)",
            p.display()
        )));
    }
    Ok(())
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp-lifeboat");
    let mut f = fs::File::create(&tmp).map_err(|e| PgError::io(&tmp, e))?;
    f.write_all(data).map_err(|e| PgError::io(&tmp, e))?;
    f.sync_all().map_err(|e| PgError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| PgError::io(path, e))
}

impl Spool {
    /// The spool for cluster `sysid` under `root`, created if needed.
    pub fn open(root: &Path, sysid: u64) -> Result<Self> {
        let dir = root.join(format!("{sysid:016x}"));
        for sub in ["pushed", "fetched", "failed"] {
            make_private_dir(&dir.join(sub))?;
        }
        Ok(Self { dir })
    }

    fn pushed(&self, name: &str) -> PathBuf {
        self.dir.join("pushed").join(name)
    }

    fn fetched(&self, name: &str) -> PathBuf {
        self.dir.join("fetched").join(name)
    }

    /// Records that `name` with this content is archived (with warnings to pass on).
    pub fn mark_pushed(&self, name: &str, content: &[u8], warnings: &[String]) -> Result<()> {
        let mut text = blake3::hash(content).to_hex().to_string();
        for w in warnings {
            text.push('\n');
            text.push_str(&w.replace('\n', " "));
        }
        let _ = fs::remove_file(self.failed(name));
        write_atomic(&self.pushed(name), text.as_bytes())
    }

    /// True if a push record exists for `name` (whatever its content).
    pub fn has_pushed(&self, name: &str) -> bool {
        self.pushed(name).exists()
    }

    /// If `name` was archived ahead with exactly this content, consumes the
    /// record and returns the warnings it carried.
    pub fn take_pushed(&self, name: &str, content: &[u8]) -> Option<Vec<String>> {
        let p = self.pushed(name);
        let recorded = fs::read_to_string(&p).ok()?;
        let _ = fs::remove_file(&p);
        let mut lines = recorded.lines();
        (lines.next()?.trim() == blake3::hash(content).to_hex().as_str())
            .then(|| lines.map(str::to_string).collect())
    }

    fn failed(&self, name: &str) -> PathBuf {
        self.dir.join("failed").join(name)
    }

    /// Records why archiving `name` failed.
    pub fn mark_failed(&self, name: &str, why: &str) -> Result<()> {
        write_atomic(&self.failed(name), why.as_bytes())
    }

    /// The recorded failure of `name`, consumed.
    pub fn take_failed(&self, name: &str) -> Option<String> {
        let p = self.failed(name);
        let why = fs::read_to_string(&p).ok()?;
        let _ = fs::remove_file(&p);
        Some(why)
    }

    /// True if a failure is recorded for `name`.
    pub fn has_failed(&self, name: &str) -> bool {
        self.failed(name).exists()
    }

    /// Takes the background pusher's lock without waiting; `None` while
    /// another process holds it. The lock lasts as long as the file is open.
    pub fn try_lock_pusher(&self) -> Option<fs::File> {
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join("pusher.lock"))
            .ok()?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).ok()?;
        Some(f)
    }

    /// Where the background pusher writes its log.
    pub fn pusher_log(&self) -> PathBuf {
        self.dir.join("pusher.log")
    }

    /// Stores a prefetched WAL file.
    pub fn put_fetched(&self, name: &str, content: &[u8]) -> Result<()> {
        write_atomic(&self.fetched(name), content)
    }

    /// Moves a prefetched file to `dest` if there is one. Returns whether it did.
    pub fn take_fetched(&self, name: &str, dest: &Path) -> Result<bool> {
        let src = self.fetched(name);
        if !src.exists() {
            return Ok(false);
        }
        match fs::rename(&src, dest) {
            Ok(()) => {}
            // Another file system: copy, then drop the spooled copy.
            Err(e) if e.raw_os_error() == Some(18) => {
                let data = fs::read(&src).map_err(|e| PgError::io(&src, e))?;
                write_atomic(dest, &data)?;
                let _ = fs::remove_file(&src);
            }
            Err(e) => return Err(PgError::io(dest, e)),
        }
        Ok(true)
    }

    /// True if `name` is already prefetched.
    pub fn has_fetched(&self, name: &str) -> bool {
        self.fetched(name).exists()
    }

    /// Drops prefetched files that sort before `name` (recovery has moved past them).
    pub fn prune_fetched_before(&self, name: &str) {
        if let Ok(entries) = fs::read_dir(self.dir.join("fetched")) {
            for e in entries.flatten() {
                if e.file_name()
                    .to_str()
                    .is_some_and(|n| n < name && !n.ends_with(".history"))
                {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }

    /// The cached WAL segment size of the cluster, if recorded.
    pub fn segment_size(&self) -> Option<u64> {
        fs::read_to_string(self.dir.join("segment-size"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Records the WAL segment size.
    pub fn set_segment_size(&self, size: u64) -> Result<()> {
        write_atomic(&self.dir.join("segment-size"), size.to_string().as_bytes())
    }
}

/// Writes `data` to `dest` durably (temporary file, fsync, rename).
pub fn write_durably(dest: &Path, data: &[u8]) -> Result<()> {
    write_atomic(dest, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_records_failures_locks_and_prefetched_files() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s = Spool::open(root.path(), 42).unwrap_or_else(|e| panic!("{e}"));
        let seg4 = "000000010000000000000004";
        s.mark_pushed(seg4, b"seg4", &[])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            s.take_pushed(seg4, b"other").is_none(),
            "content must match"
        );
        s.mark_pushed(seg4, b"seg4", &["already archived".into()])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.take_pushed(seg4, b"seg4"),
            Some(vec!["already archived".to_string()])
        );
        assert!(
            s.take_pushed(seg4, b"seg4").is_none(),
            "records are single use"
        );

        s.mark_failed("000000010000000000000006", "denied")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(s.has_failed("000000010000000000000006"));
        assert_eq!(
            s.take_failed("000000010000000000000006").as_deref(),
            Some("denied")
        );
        assert!(s.take_failed("000000010000000000000006").is_none());

        let lock = s.try_lock_pusher();
        assert!(lock.is_some());
        assert!(s.try_lock_pusher().is_none(), "the lock is exclusive");
        drop(lock);
        assert!(s.try_lock_pusher().is_some());

        s.put_fetched("000000010000000000000005", b"seg5")
            .unwrap_or_else(|e| panic!("{e}"));
        let dest = root.path().join("RECOVERYXLOG");
        assert!(
            s.take_fetched("000000010000000000000005", &dest)
                .unwrap_or(false)
        );
        assert_eq!(fs::read(&dest).unwrap_or_default(), b"seg5");
        assert!(
            !s.take_fetched("000000010000000000000005", &dest)
                .unwrap_or(true)
        );
        s.put_fetched("000000010000000000000001", b"old")
            .unwrap_or_else(|e| panic!("{e}"));
        s.prune_fetched_before("000000010000000000000003");
        assert!(!s.has_fetched("000000010000000000000001"));
        s.set_segment_size(16 << 20)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.segment_size(), Some(16 << 20));
    }
}
