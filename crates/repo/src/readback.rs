//! Reading back what a backup wrote, before it reports success: every
//! metadata pack and a sample of the data packs are fetched again from
//! storage, their bytes checked against their names (the hash) and their
//! encrypted blob tables opened and compared with what was indexed. A store
//! that lost, truncated or altered a write is caught by the backup that made
//! it, not months later by a restore.

use futures::StreamExt;
use lifeboat_format::Id;
use lifeboat_format::pack::read_trailer;

use crate::error::{RepoError, Result};
use crate::layout;
use crate::repository::{Repository, cpu};
use crate::uploader::WrittenPack;

/// Whether pack `id` falls in a random `percent` % sample drawn with `salt`.
pub fn in_sample(id: &Id, percent: f64, salt: u64) -> bool {
    score(id, salt) <= threshold(percent)
}

fn threshold(percent: f64) -> u64 {
    (percent.clamp(0.0, 100.0) / 100.0 * u64::MAX as f64) as u64
}

fn score(id: &Id, salt: u64) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id.as_bytes()[..8]);
    u64::from_le_bytes(b) ^ salt
}

/// Which packs to read back: all metadata packs, and about `percent` % of
/// the data packs (at least one, when there are any), chosen at random.
pub fn sample(written: &[WrittenPack], percent: f64, salt: u64) -> Vec<&WrittenPack> {
    let data: Vec<&WrittenPack> = written.iter().filter(|p| !p.trees).collect();
    let mut chosen: Vec<&WrittenPack> = written.iter().filter(|p| p.trees).collect();
    let mut picked: Vec<&WrittenPack> = data
        .iter()
        .copied()
        .filter(|p| in_sample(&p.id, percent, salt))
        .collect();
    if picked.is_empty()
        && let Some(p) = data.iter().copied().min_by_key(|p| score(&p.id, salt))
    {
        picked.push(p);
    }
    chosen.extend(picked);
    chosen
}

impl Repository {
    /// Reads back `packs` and verifies each (see the module documentation).
    /// Returns the bytes read.
    pub async fn read_back(&self, packs: &[&WrittenPack]) -> Result<u64> {
        let mut checks = futures::stream::iter(packs.iter().map(|p| (*p).clone()))
            .map(|p| async move {
                let key = layout::pack(&p.id);
                let bytes = self.storage().get(&key, None).await?;
                let mk = self.key().clone();
                let problem = cpu(move || {
                    if bytes.len() as u64 != p.size {
                        return Some(format!(
                            "it has {} bytes, {} were written",
                            bytes.len(),
                            p.size
                        ));
                    }
                    if Id::of_pack(&bytes) != p.id {
                        return Some("its content differs from what was written".into());
                    }
                    match read_trailer(&mk, &bytes) {
                        Ok((_, entries)) if entries.len() == p.blobs => None,
                        Ok((_, entries)) => Some(format!(
                            "its blob table lists {} blobs, {} were written",
                            entries.len(),
                            p.blobs
                        )),
                        Err(e) => Some(format!("its blob table cannot be read: {e}")),
                    }
                })
                .await?;
                match problem {
                    Some(why) => Err(RepoError::Damaged(format!(
                        "reading back {key} after writing it: {why}; the storage did not keep \
                         what it acknowledged, so this backup is not reported as successful"
                    ))),
                    None => Ok(p.size),
                }
            })
            // One whole pack in memory at a time, on top of what the backup used.
            .buffer_unordered(1);
        let mut total = 0;
        while let Some(r) = checks.next().await {
            total += r?;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(n: u8, trees: bool) -> WrittenPack {
        WrittenPack {
            id: Id::from_bytes([n; 32]),
            size: 100,
            blobs: 1,
            trees,
        }
    }

    #[test]
    fn every_metadata_pack_and_a_share_of_data_packs_are_chosen() {
        let packs: Vec<WrittenPack> = (0..=255u8).map(|n| pack(n, n % 50 == 0)).collect();
        let trees = packs.iter().filter(|p| p.trees).count();
        let none = sample(&packs, 0.0, 7);
        assert_eq!(none.len(), trees + 1, "at least one data pack");
        assert!(none.iter().filter(|p| p.trees).count() == trees);
        let all = sample(&packs, 100.0, 7);
        assert_eq!(all.len(), packs.len());
        let some = sample(&packs, 10.0, 12345).len() - trees;
        assert!(
            (5..=60).contains(&some),
            "{some} of 250 data packs for 10 %"
        );
        assert!(sample(&[], 10.0, 1).is_empty());
    }
}
