//! Opening, unlocking and initialising a repository, and reading and
//! writing its sealed objects.

use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use lifeboat_format::chunker::ChunkerParams;
use lifeboat_format::compress::{Compression, Encoder};
use lifeboat_format::config::{DEFAULT_PACK_SIZE, RepoConfig};
use lifeboat_format::crypto::{MasterKey, random_bytes};
use lifeboat_format::keyslot::{KdfCost, KeySlot, SlotOrigin};
use lifeboat_format::object::{self, ObjectKind};
use lifeboat_format::{FORMAT_VERSION, Id};
use lifeboat_storage::{DynStorage, PutMode, StorageError};

use crate::error::{RepoError, Result};
use crate::layout;

/// Options for [`Repository::init`].
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Argon2id cost of the first key slot.
    pub kdf: KdfCost,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// Who is creating the repository.
    pub origin: SlotOrigin,
    /// Days objects stay locked by the bucket's Object Lock retention.
    pub object_lock_days: Option<u32>,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            kdf: KdfCost::DEFAULT,
            pack_size: DEFAULT_PACK_SIZE,
            origin: local_origin(None),
            object_lock_days: None,
        }
    }
}

/// The host and user running this process, for key slots and snapshots.
pub fn local_origin(label: Option<String>) -> SlotOrigin {
    SlotOrigin {
        host: gethostname::gethostname().to_string_lossy().into_owned(),
        user: local_user(),
        label,
    }
}

/// The account this process runs as, from the user database (not from
/// `$USER`, which anyone can set); a root shell entered with `sudo` names
/// who entered it.
pub fn local_user() -> String {
    let name = whoami::username()
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| format!("uid {}", rustix::process::getuid().as_raw()));
    let name = match std::env::var("SUDO_USER") {
        Ok(by) if name == "root" && !by.is_empty() && by != "root" => {
            format!("root (sudo by {by})")
        }
        _ => name,
    };
    // A run the daemon started because a dashboard or API user asked for
    // it names that user, beside the account it runs as.
    match (
        std::env::var("LIFEBOAT_ON_BEHALF_OF"),
        std::env::var_os("LIFEBOAT_DIE_WITH_PARENT"),
    ) {
        (Ok(who), Some(_)) if !who.is_empty() => format!("{who} via {name}"),
        _ => name,
    }
}

/// Refuses a location that already holds a repository (a config object),
/// or anything else: a new repository goes into an empty location. Key
/// slots alone are accepted (an `init` that died before writing the config
/// leaves one, and is simply run again).
pub(crate) async fn ensure_no_repository(storage: &DynStorage, location: &str) -> Result<()> {
    match storage.head(layout::CONFIG).await {
        Ok(_) => {
            return Err(RepoError::AlreadyInitialized {
                location: location.into(),
            });
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    let mut other: Vec<String> = storage
        .list("")
        .await?
        .into_iter()
        .map(|m| m.key)
        .filter(|k| !k.starts_with(layout::KEYS))
        .collect();
    if !other.is_empty() {
        other.sort();
        return Err(RepoError::Invalid(format!(
            "{location} is not empty ({} object(s), e.g. {}) and holds no lifeboat repository; \
             a new repository needs an empty or new location, nothing was written",
            other.len(),
            other[0]
        )));
    }
    Ok(())
}

/// Confirms that `storage` holds a repository (its config object exists),
/// without unlocking it. Anything that answers "not there" about a single
/// object must first know the repository itself is there: an unmounted mount
/// point or a mistyped path is not an empty archive.
pub async fn ensure_repository(storage: &DynStorage, location: &str) -> Result<()> {
    match storage.head(layout::CONFIG).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Err(RepoError::NotARepository {
            location: location.into(),
            reason: "it has no config object (is the directory mounted, the path or bucket right?)"
                .into(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Writes the sealed config create-only, after the key slot `slot`; when
/// another writer created a repository there meanwhile, removes the slot
/// again and refuses.
pub(crate) async fn put_config(
    storage: &DynStorage,
    location: &str,
    slot: &Id,
    sealed: Bytes,
) -> Result<()> {
    match storage
        .put(layout::CONFIG, sealed, PutMode::CreateOnly)
        .await
    {
        Ok(()) => Ok(()),
        Err(StorageError::AlreadyExists { .. }) => {
            let _ = storage
                .delete(&layout::key_slot(slot), lifeboat_storage::IfMissing::Ignore)
                .await;
            Err(RepoError::AlreadyInitialized {
                location: location.into(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// An unlocked repository.
#[derive(Clone)]
pub struct Repository {
    inner: Arc<Inner>,
}

struct Inner {
    storage: DynStorage,
    location: String,
    key: MasterKey,
    config: RepoConfig,
    slot: Id,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repository({})", self.inner.location)
    }
}

/// Runs a CPU-heavy closure off the async threads.
pub(crate) async fn cpu<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RepoError::Task(e.to_string()))
}

impl Repository {
    fn assemble(
        storage: DynStorage,
        location: &str,
        key: MasterKey,
        config: RepoConfig,
        slot: Id,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                storage,
                location: location.into(),
                key,
                config,
                slot,
            }),
        }
    }

    /// Creates a new repository at `storage`, protected by `passphrase`.
    pub async fn init(
        storage: DynStorage,
        location: &str,
        passphrase: &[u8],
        options: InitOptions,
    ) -> Result<Self> {
        ensure_no_repository(&storage, location).await?;
        let key = MasterKey::generate()?;
        let seed = u64::from_le_bytes(random_bytes()?);
        let config = RepoConfig {
            version: FORMAT_VERSION,
            id: Id::random()?,
            created: Utc::now(),
            chunker: ChunkerParams::with_seed(seed),
            pack_size: options.pack_size,
            object_lock_days: options.object_lock_days,
        };
        // Validate what we are about to write with the reader's own rules.
        let config_json = config.to_json()?;
        RepoConfig::from_json(&config_json).map_err(RepoError::Format)?;

        // The slot goes first: a crash before the config leaves nothing that
        // looks like a repository, so `init` can simply be run again.
        let slot = Id::random()?;
        write_slot(
            &storage,
            &key,
            passphrase,
            &slot,
            options.kdf,
            options.origin,
        )
        .await?;
        let mut enc = Encoder::new(Compression::DEFAULT)?;
        let bytes =
            object::seal_object(&key, &mut enc, ObjectKind::Config, b"config", &config_json)?;
        put_config(&storage, location, &slot, Bytes::from(bytes)).await?;
        Ok(Self::assemble(storage, location, key, config, slot))
    }

    /// Opens and unlocks the repository at `storage` with `passphrase`.
    pub async fn open(storage: DynStorage, location: &str, passphrase: &[u8]) -> Result<Self> {
        let config_bytes = match storage.get(layout::CONFIG, None).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                return Err(RepoError::NotARepository {
                    location: location.into(),
                    reason: "it has no config object".into(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let (key, slot) = unlock(&storage, location, passphrase).await?;
        let payload = object::open_object(&key, ObjectKind::Config, b"config", &config_bytes)
            .map_err(|e| RepoError::corrupt(layout::CONFIG, e))?;
        let config =
            RepoConfig::from_json(&payload).map_err(|e| RepoError::corrupt(layout::CONFIG, e))?;
        Ok(Self::assemble(storage, location, key, config, slot))
    }

    /// The ids of the objects stored under `prefix` (keys that end in an id;
    /// anything else there is left out).
    pub async fn ids_under(&self, prefix: &str) -> Result<Vec<Id>> {
        Ok(self
            .storage()
            .list(prefix)
            .await?
            .into_iter()
            .filter_map(|m| layout::id_from_key(&m.key, prefix))
            .collect())
    }

    /// The storage (with retry and limit wrappers).
    pub fn storage(&self) -> &DynStorage {
        &self.inner.storage
    }

    /// Where the repository is, for messages.
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// The master key.
    pub fn key(&self) -> &MasterKey {
        &self.inner.key
    }

    /// The config.
    pub fn config(&self) -> &RepoConfig {
        &self.inner.config
    }

    /// The key slot this session was unlocked with.
    pub fn slot(&self) -> Id {
        self.inner.slot
    }

    /// Seals and stores a content-addressed object; returns its id and size.
    pub(crate) async fn save_object(
        &self,
        kind: ObjectKind,
        payload: Vec<u8>,
    ) -> Result<(Id, u64)> {
        let key = self.inner.key.clone();
        let (id, bytes) = cpu(move || {
            let mut enc = Encoder::new(Compression::DEFAULT)?;
            object::seal_object_with_id(&key, &mut enc, kind, &payload)
        })
        .await??;
        let storage_key = match kind {
            ObjectKind::Index => layout::index(&id),
            ObjectKind::Snapshot => layout::snapshot(&id),
            ObjectKind::Pin => layout::pin(&id),
            ObjectKind::DeletionPlan => layout::deletion_plan(&id),
            ObjectKind::Report => layout::report(&id),
            ObjectKind::Config
            | ObjectKind::Wal
            | ObjectKind::Running
            | ObjectKind::Erasure
            | ObjectKind::Audit
            | ObjectKind::AuditCheckpoint => {
                return Err(RepoError::Failed(format!(
                    "{} objects are not content-addressed",
                    kind.name()
                )));
            }
        };
        let size = bytes.len() as u64;
        match self
            .inner
            .storage
            .put(&storage_key, Bytes::from(bytes), PutMode::CreateOnly)
            .await
        {
            // Same name means same content: another writer (or our own lost
            // retry) stored it already.
            Ok(()) | Err(StorageError::AlreadyExists { .. }) => Ok((id, size)),
            Err(e) => Err(e.into()),
        }
    }

    /// Loads and verifies a content-addressed object.
    pub(crate) async fn load_object(
        &self,
        kind: ObjectKind,
        storage_key: &str,
        id: &Id,
    ) -> Result<Vec<u8>> {
        let bytes = self.inner.storage.get(storage_key, None).await?;
        let key = self.inner.key.clone();
        let id = *id;
        let sk = storage_key.to_string();
        cpu(move || {
            object::open_object_with_id(&key, kind, &id, &bytes)
                .map_err(|e| RepoError::corrupt(sk, e))
        })
        .await?
    }
}

/// Writes a new key slot wrapping `key`.
pub(crate) async fn write_slot(
    storage: &DynStorage,
    key: &MasterKey,
    passphrase: &[u8],
    slot: &Id,
    cost: KdfCost,
    origin: SlotOrigin,
) -> Result<()> {
    let key = key.clone();
    let pass = passphrase.to_vec();
    let id = *slot;
    let s = cpu(move || KeySlot::wrap(&key, &pass, &id, cost, origin, Utc::now())).await??;
    storage
        .put(
            &layout::key_slot(slot),
            Bytes::from(s.to_json()?),
            PutMode::CreateOnly,
        )
        .await?;
    Ok(())
}

/// Reads every key slot, in parallel.
pub(crate) async fn read_slots(storage: &DynStorage) -> Result<Vec<(Id, Result<KeySlot>)>> {
    let listed = storage.list(layout::KEYS).await?;
    let ids: Vec<Id> = listed
        .iter()
        .filter_map(|m| layout::id_from_key(&m.key, layout::KEYS))
        .collect();
    futures::stream::iter(ids)
        .map(|id| async move {
            let key = layout::key_slot(&id);
            let slot = match storage.get(&key, None).await {
                Ok(bytes) => KeySlot::from_json(&bytes).map_err(|e| RepoError::corrupt(key, e)),
                Err(e) => Err(e.into()),
            };
            Ok::<_, RepoError>((id, slot))
        })
        .buffer_unordered(8)
        .try_collect()
        .await
}

/// Tries every slot with the passphrase; returns the key and the slot that
/// opened. Damaged slots are skipped and counted, so a wrong passphrase,
/// damage and a repository without key slots each get their own error.
async fn unlock(
    storage: &DynStorage,
    location: &str,
    passphrase: &[u8],
) -> Result<(MasterKey, Id)> {
    let mut slots = read_slots(storage).await?;
    // Newest first: the most recently added passphrase is the likeliest.
    slots.sort_by_key(|(id, s)| (std::cmp::Reverse(s.as_ref().ok().map(|s| s.created)), *id));
    let mut tried = 0;
    let mut damaged: Vec<RepoError> = Vec::new();
    for (id, slot) in slots {
        let slot = match slot {
            Ok(s) => s,
            Err(e) if e.is_access_problem() => return Err(e),
            Err(e) => {
                damaged.push(e);
                continue;
            }
        };
        tried += 1;
        let pass = passphrase.to_vec();
        match cpu(move || slot.unwrap_key(&pass, &id)).await? {
            Ok(key) => return Ok((key, id)),
            Err(lifeboat_format::FormatError::Authentication { .. }) => {}
            Err(e) => damaged.push(RepoError::corrupt(layout::key_slot(&id), e)),
        }
    }
    if tried == 0 {
        return Err(RepoError::NoKeySlot {
            location: location.into(),
            why: match damaged.first() {
                None => {
                    "it has no key slots (keys/ is empty); restore keys/ from a replica or a copy"
                        .into()
                }
                Some(e) => format!(
                    "all {} key slot(s) are damaged (first: {e}); restore keys/ from a replica or a copy",
                    damaged.len()
                ),
            },
        });
    }
    Err(RepoError::WrongPassphrase {
        location: location.into(),
        slots: tried,
        damaged: damaged.len(),
    })
}

/// A repository in memory with a cheap key derivation, for unit tests.
#[cfg(test)]
pub(crate) async fn memory_repository() -> Result<Repository> {
    let init = InitOptions {
        kdf: lifeboat_format::keyslot::KdfCost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..InitOptions::default()
    };
    Repository::init(
        std::sync::Arc::new(lifeboat_storage::memory::MemoryStorage::new()),
        "memory",
        b"pw",
        init,
    )
    .await
}
