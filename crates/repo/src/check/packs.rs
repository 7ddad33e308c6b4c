//! `check`'s pack phases: which indexed packs are stored whole (and which
//! stored packs no index lists), then, with `--read-data`, every byte of
//! the readable packs, then the delta blobs decoded with their bases.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use lifeboat_format::crypto::MasterKey;
use lifeboat_format::pack::{PackEntry, open_blob_with, open_record, read_trailer};
use lifeboat_format::{BlobType, Id};

use super::{Checker, Damage, Severity};
use crate::error::{RepoError, Result};
use crate::index::{BlobLocation, MasterIndex, PackInfo};
use crate::layout;
use crate::progress::Event;
use crate::readback::in_sample;
use crate::repository::cpu;

/// Where each indexed pack stands in storage.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct PackPresence {
    /// Positions (in the index) of packs stored at their indexed size.
    pub readable: Vec<usize>,
    /// Positions of packs missing or of the wrong size, and why.
    pub lost: Vec<(usize, String)>,
    /// Stored packs no index lists, sorted.
    pub stray: Vec<Id>,
}

/// Compares the index's packs with the stored ones (`stored`: id → size).
pub(super) fn pack_presence(index: &MasterIndex, stored: &HashMap<Id, u64>) -> PackPresence {
    let mut out = PackPresence::default();
    for (pos, pack) in index.packs().iter().enumerate() {
        match stored.get(&pack.id) {
            None => out
                .lost
                .push((pos, "pack is missing from storage".to_string())),
            Some(&size) if size != pack.size => out.lost.push((
                pos,
                format!(
                    "pack has {size} bytes but the index says {}: it was truncated or replaced",
                    pack.size
                ),
            )),
            Some(_) => out.readable.push(pos),
        }
    }
    let indexed: HashSet<Id> = index.packs().iter().map(|p| p.id).collect();
    out.stray = stored
        .keys()
        .filter(|id| !indexed.contains(id))
        .copied()
        .collect();
    out.stray.sort();
    out
}

/// The blobs of each pack, by the pack's position in the index.
pub(super) fn blobs_by_pack(index: &MasterIndex) -> Vec<Vec<PackEntry>> {
    let mut by_pack: Vec<Vec<PackEntry>> = vec![Vec::new(); index.packs().len()];
    for (_, loc) in index.blobs() {
        by_pack[loc.pack as usize].push(loc.entry);
    }
    by_pack
}

/// Marks every blob of a pack as lost for the same reason.
pub(super) fn mark_lost(
    bad: &mut HashMap<Id, Damage>,
    entries: &[PackEntry],
    object: &str,
    message: &str,
) {
    for e in entries {
        bad.insert(
            e.id,
            Damage {
                object: object.to_string(),
                message: message.to_string(),
            },
        );
    }
}

/// A delta blob whose seal held, to decode once its base can be read.
pub(super) struct PendingDelta {
    key: String,
    pos: usize,
    entry: PackEntry,
}

impl Checker<'_> {
    /// Lists the stored packs, records missing and short ones as damage and
    /// stray ones as warnings; returns the readable packs' positions.
    pub(super) async fn check_pack_presence(
        &mut self,
        index: &MasterIndex,
        by_pack: &[Vec<PackEntry>],
    ) -> Result<Vec<usize>> {
        self.progress.event(Event::Phase("listing packs"));
        let stored = self.repo.list_packs().await?;
        let presence = pack_presence(index, &stored);
        for (pos, message) in &presence.lost {
            let key = layout::pack(&index.pack(*pos as u32).id);
            mark_lost(&mut self.bad, &by_pack[*pos], &key, message);
        }
        for id in &presence.stray {
            self.add(
                Severity::Warning,
                layout::pack(id),
                "pack is not listed in any index (left by an interrupted backup, or its index is damaged); \
                 no snapshot uses it until it is indexed, and prune will remove it"
                    .into(),
            );
        }
        Ok(presence.readable)
    }

    /// Reads and verifies the `readable` packs (a random `subset` percent of
    /// them if given); returns the delta blobs to decode.
    pub(super) async fn read_packs(
        &mut self,
        index: &Arc<MasterIndex>,
        by_pack: Arc<Vec<Vec<PackEntry>>>,
        mut readable: Vec<usize>,
        subset: Option<f64>,
    ) -> Result<Vec<PendingDelta>> {
        if let Some(percent) = subset {
            let salt = u64::from_le_bytes(lifeboat_format::crypto::random_bytes()?);
            readable.retain(|&pos| in_sample(&index.packs()[pos].id, percent, salt));
            self.report.subset = Some(percent);
        }
        self.progress.event(Event::Phase("reading packs"));
        let total: u64 = readable.iter().map(|&p| index.pack(p as u32).size).sum();
        self.progress.event(Event::Total {
            items: readable.len() as u64,
            bytes: total,
        });
        let repo = self.repo;
        let mut reads = futures::stream::iter(readable)
            .map(|pos| {
                let (index, by_pack) = (index.clone(), by_pack.clone());
                async move {
                    let pack = index.pack(pos as u32).clone();
                    let key = layout::pack(&pack.id);
                    let bytes = repo.storage().get(&key, None).await;
                    let mk = repo.key().clone();
                    let entries = by_pack[pos].clone();
                    let checked = match bytes {
                        Err(e) if e.is_access_problem() || e.is_transient() => {
                            return Err(e.into());
                        }
                        Err(e) => Err(format!("pack could not be read: {e}")),
                        Ok(bytes) => {
                            Ok(cpu(move || verify_pack(&mk, &pack, &entries, &bytes)).await?)
                        }
                    };
                    Ok::<_, RepoError>((pos, key, checked))
                }
            })
            .buffer_unordered(4);
        let mut deltas = Vec::new();
        while let Some(r) = reads.next().await {
            let (pos, key, checked) = r?;
            let size = index.pack(pos as u32).size;
            self.report.bytes_read += size;
            self.progress.event(Event::Advance {
                items: 1,
                bytes: size,
            });
            match checked {
                Err(message) => mark_lost(&mut self.bad, &by_pack[pos], &key, &message),
                Ok(v) => {
                    deltas.extend(v.deltas.into_iter().map(|entry| PendingDelta {
                        key: key.clone(),
                        pos,
                        entry,
                    }));
                    for message in v.pack_problems {
                        self.add(Severity::Error, key.clone(), message);
                    }
                    for (id, message) in v.bad_blobs {
                        let object = key.clone();
                        self.bad.insert(id, Damage { object, message });
                    }
                }
            }
        }
        Ok(deltas)
    }

    /// Decodes each delta blob with its base: a base that is gone or
    /// damaged makes the delta unreadable too.
    pub(super) async fn decode_deltas(
        &mut self,
        index: &Arc<MasterIndex>,
        deltas: Vec<PendingDelta>,
    ) -> Result<()> {
        if deltas.is_empty() {
            return Ok(());
        }
        self.progress
            .event(Event::Phase("decoding delta blobs with their bases"));
        let repo = self.repo;
        let mut decodes = futures::stream::iter(deltas)
            .map(|d| {
                let index = index.clone();
                async move {
                    let loc = BlobLocation {
                        pack: d.pos as u32,
                        entry: d.entry,
                    };
                    let r = repo.read_blob_at(&index, &loc).await;
                    (d.key, d.entry.id, r)
                }
            })
            .buffer_unordered(4);
        while let Some((key, id, r)) = decodes.next().await {
            match r {
                Ok(_) => {}
                Err(e) if e.is_access_problem() => return Err(e),
                Err(e) => {
                    let message = format!("delta blob {} cannot be decoded: {e}", id.short());
                    self.bad.insert(
                        id,
                        Damage {
                            object: key,
                            message,
                        },
                    );
                }
            }
        }
        Ok(())
    }
}

/// What reading one whole pack found.
pub(super) struct PackVerdict {
    /// Problems of the pack as a whole (trailer, hash).
    pub pack_problems: Vec<String>,
    /// Blobs that do not open, and why.
    pub bad_blobs: Vec<(Id, String)>,
    /// Delta blobs whose seal held, to decode once their bases can be read.
    pub deltas: Vec<PackEntry>,
}

/// Verifies one whole pack: its trailer, each listed blob, and its hash.
pub(super) fn verify_pack(
    key: &MasterKey,
    pack: &PackInfo,
    entries: &[PackEntry],
    bytes: &[u8],
) -> PackVerdict {
    let mut v = PackVerdict {
        pack_problems: Vec::new(),
        bad_blobs: Vec::new(),
        deltas: Vec::new(),
    };
    if let Err(e) = read_trailer(key, bytes) {
        v.pack_problems
            .push(format!("pack trailer is unreadable: {e}"));
    }
    let subkey = key.subkey(&pack.salt);
    for e in entries {
        let (s, end) = (e.offset as usize, e.end() as usize);
        let result = match bytes.get(s..end) {
            None => Err(format!(
                "{} blob {} lies beyond the end of the pack",
                e.blob_type.name(),
                e.id.short()
            )),
            Some(record) if e.blob_type == BlobType::Delta => open_record(&subkey, e, record)
                .map(|_| v.deltas.push(*e))
                .map_err(|err| format!("delta blob {} is damaged: {err}", e.id.short())),
            Some(record) => open_blob_with(&subkey, key, e, record)
                .map(|_| ())
                .map_err(|err| {
                    format!(
                        "{} blob {} is damaged: {err}",
                        e.blob_type.name(),
                        e.id.short()
                    )
                }),
        };
        if let Err(m) = result {
            v.bad_blobs.push((e.id, m));
        }
    }
    // Damage outside every blob and the trailer still shows in the pack's hash.
    let actual = Id::of_pack(bytes);
    if actual != pack.id && v.bad_blobs.is_empty() && v.pack_problems.is_empty() {
        v.pack_problems.push(format!(
            "pack content does not match its name (hash {}): it was altered or damaged",
            actual.short()
        ));
    }
    v
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use lifeboat_format::index::{IndexFile, IndexPack};

    use super::*;

    fn id(n: u8) -> Id {
        Id::from_bytes([n; 32])
    }

    fn index(packs: &[(u8, u64)]) -> MasterIndex {
        let file = IndexFile {
            packs: packs
                .iter()
                .map(|(n, size)| IndexPack {
                    id: id(*n),
                    salt: [0; 32],
                    size: *size,
                    blobs: vec![PackEntry {
                        blob_type: BlobType::Data,
                        id: id(100 + n),
                        offset: 0,
                        length: 10,
                        raw_length: 10,
                    }],
                })
                .collect(),
            supersedes: Vec::new(),
        };
        MasterIndex::from_files(&[(id(250), file)], &HashSet::new(), false)
    }

    #[test]
    fn packs_are_sorted_into_readable_lost_and_stray() {
        let index = index(&[(1, 100), (2, 200), (3, 300)]);
        let stored = HashMap::from([(id(1), 100), (id(2), 150), (id(9), 5), (id(8), 5)]);
        let p = pack_presence(&index, &stored);
        let pos = |n: u8| index.packs().iter().position(|p| p.id == id(n)).unwrap();
        assert_eq!(p.readable, vec![pos(1)]);
        let mut lost = p.lost.clone();
        lost.sort();
        assert_eq!(lost.len(), 2);
        let why = |n: u8| &p.lost.iter().find(|(q, _)| *q == pos(n)).unwrap().1;
        assert!(
            why(2).contains("150 bytes but the index says 200"),
            "{}",
            why(2)
        );
        assert_eq!(why(3), "pack is missing from storage");
        assert_eq!(p.stray, vec![id(8), id(9)]);
    }

    #[test]
    fn every_blob_of_a_lost_pack_is_marked_with_the_same_reason() {
        let index = index(&[(1, 100), (2, 100)]);
        let by_pack = blobs_by_pack(&index);
        assert_eq!(by_pack.iter().map(Vec::len).sum::<usize>(), 2);
        let mut bad = HashMap::new();
        let pos = index.packs().iter().position(|p| p.id == id(2)).unwrap();
        mark_lost(&mut bad, &by_pack[pos], "data/02", "gone");
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[&id(102)].message, "gone");
        assert_eq!(bad[&id(102)].object, "data/02");
    }
}
