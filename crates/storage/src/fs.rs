//! The local filesystem driver.
//!
//! Durability: every put writes a temporary file in the target directory,
//! fsyncs it, then moves it into place (rename for overwrite, hard link for
//! create-only, which fails atomically if the name exists) and fsyncs the
//! directory. A crash leaves at worst a `.tmp-*` file, which listings ignore.
//!
//! Privacy: files are created with mode 0600 and directories with 0700,
//! whatever the process umask, so key slots and everything else stay with
//! the repository's owner (another local user could otherwise copy the key
//! slots and guess the passphrase offline).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::StorageError;
use crate::{Capabilities, IfMissing, ObjectMeta, PutMode, Storage, keys};

/// Prefix of temporary files; never part of a valid key.
const TMP_PREFIX: &str = ".tmp-";

/// A repository in a local directory.
#[derive(Debug, Clone)]
pub struct FsStorage {
    root: PathBuf,
}

impl FsStorage {
    /// A driver rooted at `root` (which need not exist yet).
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Temporary files left below the root by writes that were interrupted
    /// (a killed process): path, size and modification time. Listings never
    /// show them; they only take space until removed.
    pub fn temporary_files(
        &self,
    ) -> Result<Vec<(PathBuf, u64, std::time::SystemTime)>, StorageError> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StorageError::from_io(&dir.display().to_string(), e)),
            };
            for entry in entries.flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    stack.push(entry.path());
                } else if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                    let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                    out.push((entry.path(), meta.len(), modified));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        keys::validate(key)?;
        Ok(self.root.join(key))
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn random_suffix() -> String {
    let mut b = [0u8; 8];
    // Falling back to a fixed suffix is safe: create_new below refuses clashes.
    let _ = getrandom::fill(&mut b);
    hex::encode(b)
}

fn put_blocking(
    root: &Path,
    path: &Path,
    key: &str,
    data: &[u8],
    mode: PutMode,
) -> Result<(), StorageError> {
    let io = |e| StorageError::from_io(key, e);
    let dir = path.parent().unwrap_or(root);
    if !dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
        // Make the new directory entries durable up to the root.
        let mut d = dir;
        while let Some(parent) = d.parent() {
            sync_dir(parent).map_err(io)?;
            if parent == root || !parent.starts_with(root) {
                break;
            }
            d = parent;
        }
    }
    let tmp = dir.join(format!("{TMP_PREFIX}{}", random_suffix()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        match mode {
            PutMode::Overwrite => fs::rename(&tmp, path),
            PutMode::CreateOnly => {
                let linked = fs::hard_link(&tmp, path);
                fs::remove_file(&tmp)?;
                linked
            }
        }?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

fn get_blocking(path: &Path, key: &str, range: Option<Range<u64>>) -> Result<Bytes, StorageError> {
    let io = |e| StorageError::from_io(key, e);
    let mut f = File::open(path).map_err(io)?;
    match range {
        None => {
            let mut buf = Vec::new();
            f.read_to_end(&mut buf).map_err(io)?;
            Ok(buf.into())
        }
        Some(r) => {
            let size = f.metadata().map_err(io)?.len();
            if r.start > r.end || r.end > size {
                return Err(StorageError::Invalid {
                    key: key.into(),
                    detail: format!(
                        "range {}..{} is beyond the end of the object ({size} bytes)",
                        r.start, r.end
                    ),
                });
            }
            f.seek(SeekFrom::Start(r.start)).map_err(io)?;
            let mut buf = vec![0u8; (r.end - r.start) as usize];
            f.read_exact(&mut buf).map_err(io)?;
            Ok(buf.into())
        }
    }
}

fn list_blocking(root: &Path, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
    let start = root.join(prefix);
    let mut out = Vec::new();
    let mut stack = vec![start];
    while let Some(dir) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StorageError::from_io(&dir.display().to_string(), e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::from_io(prefix, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(TMP_PREFIX) {
                continue;
            }
            let path = entry.path();
            let meta = match entry.metadata() {
                Ok(m) => m,
                // Deleted since the directory was read (a prune at work):
                // it is not there, so it is not listed.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StorageError::from_io(&path.display().to_string(), e)),
            };
            if meta.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                let key = rel.to_string_lossy().into_owned();
                if keys::validate(&key).is_ok() {
                    out.push(ObjectMeta {
                        key,
                        size: meta.len(),
                        modified: meta.modified().ok(),
                    });
                }
            }
        }
    }
    Ok(out)
}

async fn blocking<T: Send + 'static>(
    key: &str,
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Io {
            key: key.into(),
            source: std::io::Error::other(e.to_string()),
        })?
}

#[async_trait]
impl Storage for FsStorage {
    async fn put(&self, key: &str, data: Bytes, mode: PutMode) -> Result<(), StorageError> {
        let path = self.path(key)?;
        let root = self.root.clone();
        let k = key.to_string();
        blocking(key, move || put_blocking(&root, &path, &k, &data, mode)).await
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, StorageError> {
        let path = self.path(key)?;
        let k = key.to_string();
        blocking(key, move || get_blocking(&path, &k, range)).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, StorageError> {
        let path = self.path(key)?;
        let k = key.to_string();
        blocking(key, move || {
            let m = fs::metadata(&path).map_err(|e| StorageError::from_io(&k, e))?;
            if !m.is_file() {
                return Err(StorageError::NotFound { key: k });
            }
            Ok(ObjectMeta {
                key: k,
                size: m.len(),
                modified: m.modified().ok(),
            })
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        keys::validate_prefix(prefix)?;
        let root = self.root.clone();
        let p = prefix.to_string();
        blocking(prefix, move || list_blocking(&root, &p)).await
    }

    async fn delete(&self, key: &str, if_missing: IfMissing) -> Result<(), StorageError> {
        let path = self.path(key)?;
        let k = key.to_string();
        blocking(key, move || {
            match fs::remove_file(&path) {
                Err(e)
                    if e.kind() == std::io::ErrorKind::NotFound
                        && if_missing == IfMissing::Ignore =>
                {
                    return Ok(());
                }
                other => other.map_err(|e| StorageError::from_io(&k, e))?,
            }
            if let Some(dir) = path.parent() {
                sync_dir(dir).map_err(|e| StorageError::from_io(&k, e))?;
            }
            Ok(())
        })
        .await
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
    use super::*;

    #[tokio::test]
    async fn conforms_to_the_storage_contract() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut n = 0;
        crate::contract::assert_conforms(|| {
            n += 1;
            let s: crate::DynStorage =
                std::sync::Arc::new(FsStorage::new(dir.path().join(format!("repo{n}"))));
            async move { s }
        })
        .await;
    }

    #[tokio::test]
    async fn objects_are_private_to_the_owner_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s = FsStorage::new(dir.path().join("repo"));
        s.put("keys/abc", Bytes::from_static(b"slot"), PutMode::CreateOnly)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mode = |p: &Path| {
            fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0)
        };
        assert_eq!(mode(&dir.path().join("repo/keys/abc")), 0o600);
        assert_eq!(mode(&dir.path().join("repo/keys")), 0o700);
        assert_eq!(mode(&dir.path().join("repo")), 0o700);
    }

    #[tokio::test]
    async fn ignores_temporary_files_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s = FsStorage::new(dir.path().to_path_buf());
        fs::create_dir_all(dir.path().join("data")).unwrap_or_else(|e| panic!("{e}"));
        fs::write(dir.path().join("data/.tmp-abc"), b"partial").unwrap_or_else(|e| panic!("{e}"));
        assert!(s.list("data/").await.map(|l| l.is_empty()).unwrap_or(false));
        let left = s.temporary_files().unwrap_or_default();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].1, 7);
        assert!(s.get("../etc/passwd", None).await.is_err());
        assert!(matches!(
            s.get("data/x", Some(0..1)).await,
            Err(StorageError::NotFound { .. })
        ));
    }
}
