//! A local spool directory that lets WAL archiving and recovery run ahead of
//! PostgreSQL's one-file-at-a-time calls.
//!
//! `pushed/<name>` records a segment the background pusher archived ahead of
//! time, so PostgreSQL's own call for it returns at once. The record names
//! the file it was made from (its [`FileIdentity`] as the pusher read it, or,
//! when the file changed during the read, the BLAKE3 hash of its content),
//! then any warnings; `failed/<name>` holds the
//! error if archiving it failed. `pusher.lock` is held by the one background
//! pusher of the cluster. `fetched/<name>` holds a WAL segment that an earlier
//! `wal fetch` prefetched, so PostgreSQL's call for it is answered locally.
//! Everything in the spool is a cache: losing it costs time, never data.
//!
//! The spool is trusted (a push record makes `wal push` report success), so
//! it must be private: every directory from the spool root down is created
//! by this user with mode 0700, and an existing one is refused unless it is a
//! real directory (not a symlink) owned by this user and closed to others.
//! Files are read without following symlinks and only when owned by this
//! user. A prefetched segment is still checked against the archive's listing
//! before it is handed to PostgreSQL (see `archive::fetch`).

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
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

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Why an existing spool directory cannot be trusted, if it cannot.
fn untrusted_dir(m: &fs::Metadata) -> Option<String> {
    if m.file_type().is_symlink() {
        Some("is a symbolic link".into())
    } else if !m.is_dir() {
        Some("is not a directory".into())
    } else if m.uid() != euid() {
        Some(format!(
            "belongs to uid {}, not to this user (uid {})",
            m.uid(),
            euid()
        ))
    } else if m.permissions().mode() & 0o077 != 0 {
        Some(format!(
            "has mode {:o}; it must be private to its owner (chmod 700)",
            m.permissions().mode() & 0o777
        ))
    } else {
        None
    }
}

/// Creates `p` (mode 0700) or accepts it if it already is a private
/// directory of this user; its parent must exist.
fn make_private_dir(p: &Path) -> Result<()> {
    let refuse = |why: String| {
        PgError::Setup(format!(
            "spool directory {} {why}; refusing to use it (another local user could plant WAL or \
             archive records there). Remove it, or set LIFEBOAT_SPOOL_DIR to a private directory",
            p.display()
        ))
    };
    match fs::symlink_metadata(p) {
        Ok(m) => match untrusted_dir(&m) {
            Some(why) => Err(refuse(why)),
            None => Ok(()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match fs::DirBuilder::new().mode(0o700).create(p) {
                Ok(()) => {}
                // Another process made it meanwhile: judged below.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(PgError::io(p, e)),
            }
            let m = fs::symlink_metadata(p).map_err(|e| PgError::io(p, e))?;
            match untrusted_dir(&m) {
                Some(why) => Err(refuse(why)),
                None => Ok(()),
            }
        }
        Err(e) => Err(PgError::io(p, e)),
    }
}

/// Reads a spool file without following a symlink, only if this user owns
/// it; `None` when it is absent or not to be trusted.
fn read_private(path: &Path) -> Option<Vec<u8>> {
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(o_nofollow())
        .open(path)
        .ok()?;
    let m = f.metadata().ok()?;
    if !m.is_file() || m.uid() != euid() {
        return None;
    }
    let mut out = Vec::with_capacity(m.len() as usize);
    f.read_to_end(&mut out).ok()?;
    Some(out)
}

/// What tells one version of a file from another without reading it: its
/// device, inode, size and modification and change times to the nanosecond.
/// Any write to the file, and any reset of its modification time, moves the
/// change time, which no user can set; a file replaced by another has a new
/// inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileIdentity {
    /// The identity of the file `m` describes.
    pub fn of(m: &fs::Metadata) -> Self {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        }
    }

    fn to_line(self) -> String {
        format!(
            "{IDENTITY_TAG} {} {} {} {} {}",
            self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns
        )
    }

    fn parse_line(line: &str) -> Option<Self> {
        let mut f = line.strip_prefix(IDENTITY_TAG)?.split_whitespace();
        let id = Self {
            dev: f.next()?.parse().ok()?,
            ino: f.next()?.parse().ok()?,
            size: f.next()?.parse().ok()?,
            mtime_ns: f.next()?.parse().ok()?,
            ctime_ns: f.next()?.parse().ok()?,
        };
        f.next().is_none().then_some(id)
    }
}

const IDENTITY_TAG: &str = "identity";

/// Reads `path` into `buf` (replacing what it held), noting the file's
/// identity before and after the read: `None` when it changed meanwhile.
pub fn read_identified(path: &Path, buf: &mut Vec<u8>) -> std::io::Result<Option<FileIdentity>> {
    let mut f = fs::File::open(path)?;
    let before = FileIdentity::of(&f.metadata()?);
    buf.clear();
    buf.reserve(usize::try_from(before.size).unwrap_or(0));
    f.read_to_end(buf)?;
    let after = FileIdentity::of(&f.metadata()?);
    Ok((before == after && after.size == buf.len() as u64).then_some(after))
}

/// What a push record says the archived file was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushedFile {
    /// The file as it was when read, by its identity.
    Identity(FileIdentity),
    /// The BLAKE3 hash of the content read (for a file that changed while
    /// it was read).
    Hash(String),
}

impl PushedFile {
    /// How to record a file read with [`read_identified`].
    pub fn of(identity: Option<FileIdentity>, content: &[u8]) -> Self {
        match identity {
            Some(id) => Self::Identity(id),
            None => Self::Hash(blake3::hash(content).to_hex().to_string()),
        }
    }
}

/// What the spool says about a file PostgreSQL asks to archive.
#[derive(Debug, PartialEq, Eq)]
pub enum PushedAnswer {
    /// No record (yet).
    NotYet,
    /// Archived ahead from this very file; the warnings to pass on.
    Archived(Vec<String>),
    /// A record was made from another version of the file: whoever asked
    /// must compare the file with the archive itself.
    Unverified,
}

fn o_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp-lifeboat");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| PgError::io(&tmp, e))?;
    f.write_all(data).map_err(|e| PgError::io(&tmp, e))?;
    f.sync_all().map_err(|e| PgError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| PgError::io(path, e))
}

impl Spool {
    /// The spool for cluster `sysid` under `root`, created if needed.
    pub fn open(root: &Path, sysid: u64) -> Result<Self> {
        if let Some(parent) = root.parent()
            && !parent.as_os_str().is_empty()
        {
            fs::create_dir_all(parent).map_err(|e| PgError::io(parent, e))?;
        }
        make_private_dir(root)?;
        let dir = root.join(format!("{sysid:016x}"));
        make_private_dir(&dir)?;
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

    /// Records that `name`, the file `file` describes, is archived (with
    /// warnings to pass on).
    pub fn mark_pushed(&self, name: &str, file: &PushedFile, warnings: &[String]) -> Result<()> {
        let mut text = match file {
            PushedFile::Identity(id) => id.to_line(),
            PushedFile::Hash(h) => h.clone(),
        };
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

    /// Whether `name`, the file at `path`, was archived ahead: compared by
    /// identity (a `stat`, without reading the file) or, for a record made
    /// from a file that changed while read, by the hash of its content. A
    /// record found is consumed.
    pub fn take_pushed(&self, name: &str, path: &Path) -> Result<PushedAnswer> {
        let p = self.pushed(name);
        let Some(recorded) = read_private(&p) else {
            return Ok(PushedAnswer::NotYet);
        };
        let _ = fs::remove_file(&p);
        let recorded = String::from_utf8_lossy(&recorded);
        let mut lines = recorded.lines();
        let first = lines.next().unwrap_or_default().trim();
        let same = match FileIdentity::parse_line(first) {
            Some(id) => {
                let now = fs::metadata(path).map_err(|e| PgError::io(path, e))?;
                FileIdentity::of(&now) == id
            }
            None => {
                let content = fs::read(path).map_err(|e| PgError::io(path, e))?;
                first == blake3::hash(&content).to_hex().as_str()
            }
        };
        Ok(if same {
            PushedAnswer::Archived(lines.map(str::to_string).collect())
        } else {
            PushedAnswer::Unverified
        })
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
        let why = read_private(&p)?;
        let _ = fs::remove_file(&p);
        Some(String::from_utf8_lossy(&why).into_owned())
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

    /// Takes a prefetched file out of the spool: its content, if there was
    /// one this user wrote. The caller verifies it before use.
    pub fn take_fetched(&self, name: &str) -> Option<Vec<u8>> {
        let src = self.fetched(name);
        let content = read_private(&src);
        let _ = fs::remove_file(&src);
        content
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
        String::from_utf8(read_private(&self.dir.join("segment-size"))?)
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
        let s = Spool::open(&root.path().join("spool"), 42).unwrap_or_else(|e| panic!("{e}"));
        let seg4 = "000000010000000000000004";
        let file = root.path().join(seg4);
        fs::write(&file, b"seg4").unwrap_or_else(|e| panic!("{e}"));
        let mut buf = Vec::new();
        let identity = read_identified(&file, &mut buf).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(buf, b"seg4");
        assert!(identity.is_some(), "a file at rest has an identity");
        let read = PushedFile::of(identity, &buf);
        let take = |s: &Spool| s.take_pushed(seg4, &file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(take(&s), PushedAnswer::NotYet);
        s.mark_pushed(seg4, &read, &["already archived".into()])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            take(&s),
            PushedAnswer::Archived(vec!["already archived".to_string()])
        );
        assert_eq!(take(&s), PushedAnswer::NotYet, "records are single use");
        // The file rewritten after the pusher read it, even with the same
        // size and its old modification time put back: its change time moved.
        s.mark_pushed(seg4, &read, &[])
            .unwrap_or_else(|e| panic!("{e}"));
        let mtime = fs::metadata(&file)
            .and_then(|m| m.modified())
            .unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs::write(&file, b"SEG4").unwrap_or_else(|e| panic!("{e}"));
        fs::File::options()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_modified(mtime))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(take(&s), PushedAnswer::Unverified);
        // A record by content hash (the file changed while being read).
        s.mark_pushed(seg4, &PushedFile::of(None, b"SEG4"), &[])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(take(&s), PushedAnswer::Archived(Vec::new()));
        s.mark_pushed(seg4, &PushedFile::of(None, b"seg4"), &[])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(take(&s), PushedAnswer::Unverified, "content must match");

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
        assert_eq!(
            s.take_fetched("000000010000000000000005").as_deref(),
            Some(&b"seg5"[..])
        );
        assert!(s.take_fetched("000000010000000000000005").is_none());
        s.put_fetched("000000010000000000000001", b"old")
            .unwrap_or_else(|e| panic!("{e}"));
        s.prune_fetched_before("000000010000000000000003");
        assert!(!s.has_fetched("000000010000000000000001"));
        s.set_segment_size(16 << 20)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.segment_size(), Some(16 << 20));
    }

    #[test]
    fn refuses_a_spool_it_cannot_trust() {
        let base = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let err = |root: &Path| {
            Spool::open(root, 7)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        // A symlink planted where the spool goes.
        let elsewhere = base.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap_or_else(|e| panic!("{e}"));
        fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o700))
            .unwrap_or_else(|e| panic!("{e}"));
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap_or_else(|e| panic!("{e}"));
        assert!(err(&link).contains("symbolic link"), "{}", err(&link));
        // A directory others can write to.
        let open = base.path().join("open");
        fs::create_dir(&open).unwrap_or_else(|e| panic!("{e}"));
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(err(&open).contains("mode 777"), "{}", err(&open));
        // A symlink below a good root.
        let good = base.path().join("good");
        let s = Spool::open(&good, 7).unwrap_or_else(|e| panic!("{e}"));
        let fetched = good.join(format!("{:016x}", 7)).join("fetched");
        fs::remove_dir(&fetched).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(&elsewhere, &fetched).unwrap_or_else(|e| panic!("{e}"));
        assert!(err(&good).contains("symbolic link"), "{}", err(&good));
        // A fresh spool is private.
        let fresh = base.path().join("fresh");
        Spool::open(&fresh, 7).unwrap_or_else(|e| panic!("{e}"));
        let mode = fs::metadata(&fresh)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o700);
        // A file planted as a symlink is not read through.
        fs::write(elsewhere.join("target"), b"planted").unwrap_or_else(|e| panic!("{e}"));
        let spool = Spool::open(&fresh, 8).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(
            elsewhere.join("target"),
            spool.fetched("000000010000000000000009"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(spool.take_fetched("000000010000000000000009").is_none());
        drop(s);
    }
}
