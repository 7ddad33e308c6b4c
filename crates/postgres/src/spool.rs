//! A local spool directory that lets WAL archiving and recovery run ahead of
//! PostgreSQL's one-file-at-a-time calls.
//!
//! `pushed/<name>` records (as the BLAKE3 hash of its content) a segment that
//! an earlier `wal push` archived ahead of time, so PostgreSQL's own call for
//! it returns at once. `fetched/<name>` holds a WAL file that an earlier
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
        for sub in ["pushed", "fetched"] {
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

    /// Records that `name` with this content is archived.
    pub fn mark_pushed(&self, name: &str, content: &[u8]) -> Result<()> {
        write_atomic(
            &self.pushed(name),
            blake3::hash(content).to_hex().as_bytes(),
        )
    }

    /// True if `name` was archived ahead with exactly this content; the
    /// record is then consumed.
    pub fn take_pushed(&self, name: &str, content: &[u8]) -> bool {
        let p = self.pushed(name);
        let Ok(recorded) = fs::read_to_string(&p) else {
            return false;
        };
        let _ = fs::remove_file(&p);
        recorded.trim() == blake3::hash(content).to_hex().as_str()
    }

    /// Forgets push records for names that sort before `name` (PostgreSQL
    /// archives in order, so those were either used or are stale).
    pub fn prune_pushed_before(&self, name: &str) {
        if let Ok(entries) = fs::read_dir(self.dir.join("pushed")) {
            for e in entries.flatten() {
                if e.file_name().to_str().is_some_and(|n| n < name) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
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
    fn push_records_and_prefetched_files() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s = Spool::open(root.path(), 42).unwrap_or_else(|e| panic!("{e}"));
        s.mark_pushed("000000010000000000000004", b"seg4")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!s.take_pushed("000000010000000000000004", b"other"));
        s.mark_pushed("000000010000000000000004", b"seg4")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(s.take_pushed("000000010000000000000004", b"seg4"));
        assert!(
            !s.take_pushed("000000010000000000000004", b"seg4"),
            "records are single use"
        );

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
