//! Delta blobs at restore time.
//!
//! A delta blob decodes only with its base, a data blob stored by an
//! earlier backup, usually in another pack. Reading each base on its own
//! when its delta turns up costs one small read per changed block (an
//! incremental backup of scattered updates holds thousands). Instead, the
//! first pass decrypts each delta and files it under its base; once every
//! other chunk is written, the bases are read like the first pass's chunks,
//! grouped by pack into few large reads, and each delta is decoded and
//! written as its base arrives. The deltas waiting meanwhile are held in
//! memory, compressed, up to a budget (default [`WAITING_BUDGET`]); past it,
//! a delta is decoded at once with a read of its own base.

use std::collections::HashMap;

use lifeboat_format::compress;
use lifeboat_format::crypto::{MasterKey, SubKey};
use lifeboat_format::pack::{PackEntry, decode_delta_blob, open_blob_with, open_record};
use lifeboat_format::{BlobType, Id};

use super::{BlobJob, RangeJob, Target, Writer, coalesce};
use crate::index::MasterIndex;

/// The most bytes of delta payloads held while waiting for their bases,
/// unless the restore's options say otherwise.
const WAITING_BUDGET: usize = 128 << 20;

/// A delta blob read in the first pass: its decrypted payload.
struct Waiting {
    entry: PackEntry,
    pack_key: String,
    encoded: Vec<u8>,
    targets: Vec<Target>,
}

/// The delta blobs read so far, by base.
#[derive(Default)]
pub(super) struct Pending {
    by_base: HashMap<Id, Vec<Waiting>>,
    bytes: usize,
    budget: usize,
}

fn damaged(entry: &PackEntry, pack_key: &str, e: impl std::fmt::Display) -> String {
    format!(
        "chunk {} in pack {pack_key} is damaged: {e}",
        entry.id.short()
    )
}

impl Pending {
    /// Holds at most `budget` bytes of deltas (0 = [`WAITING_BUDGET`]).
    pub(super) fn new(budget: usize) -> Self {
        Self {
            budget: if budget == 0 { WAITING_BUDGET } else { budget },
            ..Self::default()
        }
    }

    /// Decrypts the delta blob `b` (its sealed `record`) and files it under
    /// its base. False, with nothing done, when that would pass the memory
    /// budget: the caller decodes it at once. A damaged record fails its
    /// files.
    pub(super) fn add(
        &mut self,
        subkey: &SubKey,
        pack_key: &str,
        b: &BlobJob,
        record: &[u8],
        writer: &Writer,
    ) -> bool {
        if self.bytes + record.len() > self.budget {
            return false;
        }
        let encoded = match open_record(subkey, &b.entry, record) {
            Ok(e) => e,
            Err(e) => {
                writer.fail(&b.targets, &damaged(&b.entry, pack_key, e));
                return true;
            }
        };
        match compress::delta_base(&encoded) {
            Ok(Some(base)) => {
                self.bytes += encoded.len();
                self.by_base.entry(base).or_default().push(Waiting {
                    entry: b.entry,
                    pack_key: pack_key.to_string(),
                    encoded,
                    targets: b.targets.clone(),
                });
            }
            Ok(None) => writer.fail(
                &b.targets,
                &damaged(&b.entry, pack_key, "its payload is not a delta"),
            ),
            Err(e) => writer.fail(&b.targets, &damaged(&b.entry, pack_key, e)),
        }
        true
    }

    /// The reads of every base, in ranges like the first pass's, and the
    /// deltas waiting for each. A base missing from the index (or not a
    /// data blob) fails the files of its deltas.
    pub(super) fn plan_bases(
        self,
        index: &MasterIndex,
        max_read: u64,
        writer: &Writer,
    ) -> (Vec<RangeJob>, Bases) {
        let mut reads = Vec::new();
        for (base, waiting) in &self.by_base {
            match index.get(base) {
                Some(loc) if loc.entry.blob_type == BlobType::Data => reads.push((
                    loc.pack,
                    BlobJob {
                        entry: loc.entry,
                        targets: waiting.iter().flat_map(|w| w.targets.clone()).collect(),
                    },
                )),
                _ => {
                    for w in waiting {
                        writer.fail(
                            &w.targets,
                            &format!(
                                "blob {} is missing from the repository (the base of delta blob {})",
                                base.short(),
                                w.entry.id.short()
                            ),
                        );
                    }
                }
            }
        }
        (
            coalesce(reads.into_iter(), max_read),
            Bases {
                waiting: self.by_base,
            },
        )
    }
}

/// Deltas waiting for their bases, which are being read.
pub(super) struct Bases {
    waiting: HashMap<Id, Vec<Waiting>>,
}

impl Bases {
    /// Opens the base `b` (its sealed `record`) and decodes and writes every
    /// delta waiting for it.
    pub(super) fn apply(
        &self,
        key: &MasterKey,
        subkey: &SubKey,
        pack_key: &str,
        b: &BlobJob,
        record: &[u8],
        writer: &Writer,
    ) {
        let Some(waiting) = self.waiting.get(&b.entry.id) else {
            return;
        };
        let base = match open_blob_with(subkey, key, &b.entry, record) {
            Ok(data) => data,
            Err(e) => {
                let why = format!(
                    "the base {} of delta chunks, in pack {pack_key}, is damaged: {e}",
                    b.entry.id.short()
                );
                for w in waiting {
                    writer.fail(&w.targets, &why);
                }
                return;
            }
        };
        for w in waiting {
            match decode_delta_blob(key, &w.entry, &w.encoded, &base) {
                Ok(data) => writer.write(&w.targets, &data),
                Err(e) => writer.fail(&w.targets, &damaged(&w.entry, &w.pack_key, e)),
            }
        }
    }
}
