//! What the restore does with each chunk it reads: a data chunk is
//! verified (authenticated decryption and id check) and written at its
//! offsets; a delta chunk waits for its base ([`super::deltas`]).

use std::sync::{Arc, Mutex};

use lifeboat_format::BlobType;
use lifeboat_format::crypto::{MasterKey, SubKey};
use lifeboat_format::pack::open_blob_with;

use super::deltas::Pending;
use super::{BlobJob, Writer};
use crate::index::MasterIndex;
use crate::repository::Repository;

/// Handles the chunks of the first pass; shared by its reading threads.
pub(super) struct ChunkPass {
    pub(super) key: MasterKey,
    pub(super) writer: Arc<Writer>,
    pub(super) pending: Mutex<Pending>,
    /// For a delta past the waiting budget, decoded at once.
    pub(super) repo: Repository,
    pub(super) index: Arc<MasterIndex>,
    pub(super) runtime: tokio::runtime::Handle,
}

impl ChunkPass {
    /// Handles blob `b`, whose sealed record is `record` in pack `pack_key`.
    pub(super) fn blob(&self, subkey: &SubKey, pack_key: &str, b: &BlobJob, record: &[u8]) {
        let damaged = |e: &dyn std::fmt::Display| {
            format!(
                "chunk {} in pack {pack_key} is damaged: {e}",
                b.entry.id.short()
            )
        };
        if b.entry.blob_type != BlobType::Delta {
            match open_blob_with(subkey, &self.key, &b.entry, record) {
                Ok(data) => self.writer.write(&b.targets, &data),
                Err(e) => self.writer.fail(&b.targets, &damaged(&e)),
            }
            return;
        }
        let waits = self
            .pending
            .lock()
            .map(|mut p| p.add(subkey, pack_key, b, record, &self.writer))
            .unwrap_or(false);
        if waits {
            return;
        }
        // Past the memory budget: decoded now, with a read of its base.
        let decoded = match self.index.get(&b.entry.id) {
            Some(loc) => self
                .runtime
                .block_on(self.repo.read_blob_at(&self.index, &loc))
                .map_err(|e| e.to_string()),
            None => Err("it is missing from the index".to_string()),
        };
        match decoded {
            Ok(data) => self.writer.write(&b.targets, &data),
            Err(e) => self.writer.fail(&b.targets, &damaged(&e)),
        }
    }

    /// The deltas waiting for their bases, leaving none.
    pub(super) fn take_pending(&self) -> Pending {
        self.pending
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }
}
