//! Hash chains stored as one sealed object per entry, named
//! `<prefix><12-digit number>` (the erasure ledger, the audit logs): reading
//! a chain back with its breaks found, and writing a named sealed object.

use bytes::Bytes;
use lifeboat_format::FormatError;
use lifeboat_format::chain::{Chained, verify_chain};
use lifeboat_format::compress::{Compression, Encoder};
use lifeboat_format::object::{self, ObjectKind};
use lifeboat_storage::PutMode;

use crate::error::Result;
use crate::repository::{Repository, cpu};

/// A chain as read: its readable entries in order (each with its payload)
/// and what is wrong with it, each problem with the storage key and entry
/// number it concerns.
#[derive(Clone, Debug)]
pub(crate) struct StoredChain<E> {
    /// Readable entries in number order, with their payloads.
    pub entries: Vec<(E, Vec<u8>)>,
    /// Damage: `(key, entry number, problem)`, in number order.
    pub problems: Vec<(String, u64, String)>,
    /// The highest entry number listed, readable or not (0 for none).
    pub highest: u64,
}

/// The entry number of `key` under `prefix`: exactly 12 digits after it
/// (anything else, deeper keys included, is not an entry).
pub(crate) fn entry_number(prefix: &str, key: &str) -> Option<u64> {
    let rest = key.strip_prefix(prefix)?;
    (rest.len() == 12 && rest.bytes().all(|b| b.is_ascii_digit()))
        .then(|| rest.parse().ok())
        .flatten()
}

/// The key of entry `seq` under `prefix` (the fixed width keeps listings in
/// chain order).
pub(crate) fn entry_key(prefix: &str, seq: u64) -> String {
    format!("{prefix}{seq:012}")
}

impl Repository {
    /// Reads every entry under `prefix` (keys of exactly 12 digits after it;
    /// anything deeper is left alone) and verifies the chain.
    pub(crate) async fn read_chain<E: Chained + Send + 'static>(
        &self,
        prefix: &str,
        kind: ObjectKind,
        parse: fn(&[u8]) -> std::result::Result<E, FormatError>,
    ) -> Result<StoredChain<E>> {
        let mut numbered: Vec<(u64, String)> = self
            .storage()
            .list(prefix)
            .await?
            .into_iter()
            .filter_map(|m| Some((entry_number(prefix, &m.key)?, m.key)))
            .collect();
        numbered.sort();
        let highest = numbered.last().map_or(0, |(seq, _)| *seq);
        let mut problems = Vec::new();
        let mut entries = Vec::new();
        for (seq, key) in numbered {
            let bytes = match self.storage().get(&key, None).await {
                Ok(b) => b,
                // Deleted between the listing and the read: the chain
                // check below names the gap.
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            let (mk, name) = (self.key().clone(), key.clone());
            let opened = cpu(move || {
                object::open_object(&mk, kind, name.as_bytes(), &bytes)
                    .and_then(|payload| Ok((parse(&payload)?, payload)))
            })
            .await?;
            match opened {
                Ok((entry, payload)) if entry.seq() == seq => entries.push((entry, payload)),
                Ok((entry, _)) => problems.push((
                    key,
                    seq,
                    format!("entry {seq} holds entry {} instead", entry.seq()),
                )),
                Err(e) => problems.push((
                    key,
                    seq,
                    format!("entry {seq} is unreadable ({e}): it was edited, moved or damaged"),
                )),
            }
        }
        let unreadable: Vec<u64> = problems.iter().map(|(_, s, _)| *s).collect();
        for b in verify_chain(&entries) {
            // An unreadable entry shows again as a gap: say it once.
            if unreadable.contains(&b.seq) {
                continue;
            }
            problems.push((entry_key(prefix, b.seq), b.seq, b.problem));
        }
        problems.sort_by_key(|(_, seq, _)| *seq);
        Ok(StoredChain {
            entries,
            problems,
            highest,
        })
    }

    /// Seals `payload` as a `kind` object named `key` (bound to the name)
    /// and stores it with `mode`.
    pub(crate) async fn put_named(
        &self,
        key: &str,
        kind: ObjectKind,
        payload: Vec<u8>,
        mode: PutMode,
    ) -> Result<std::result::Result<(), lifeboat_storage::StorageError>> {
        let (mk, name) = (self.key().clone(), key.to_string());
        let sealed = cpu(move || {
            let mut enc = Encoder::new(Compression::DEFAULT)?;
            object::seal_object(&mk, &mut enc, kind, name.as_bytes(), &payload)
        })
        .await??;
        Ok(self.storage().put(key, Bytes::from(sealed), mode).await)
    }

    /// Reads and opens the sealed object `key`; `None` when it does not exist.
    pub(crate) async fn get_named(&self, key: &str, kind: ObjectKind) -> Result<Option<Vec<u8>>> {
        let bytes = match self.storage().get(key, None).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let (mk, name) = (self.key().clone(), key.to_string());
        let payload = cpu(move || object::open_object(&mk, kind, name.as_bytes(), &bytes))
            .await?
            .map_err(|e| crate::error::RepoError::corrupt(key, e))?;
        Ok(Some(payload))
    }
}
