//! Chunk boundaries: FastCDC 2020 for streams and files, fixed-size blocks
//! for page-structured files (PostgreSQL relations).
//!
//! The boundaries are part of the format: the same bytes must always cut the
//! same way, or deduplication across backups silently stops working. The
//! `fastcdc` crate is therefore pinned to one exact version and the golden
//! tests below pin the cut points for fixed inputs.

use std::borrow::Cow;

use fastcdc::v2020::{self, Normalization};
use serde::{Deserialize, Serialize};

use crate::error::FormatError;

/// The content-defined chunker's parameters, stored in the repository config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// Smallest chunk, in bytes (except the last chunk of a stream).
    pub min_size: u32,
    /// Target average chunk size, in bytes.
    pub avg_size: u32,
    /// Largest chunk, in bytes.
    pub max_size: u32,
    /// FastCDC normalization level (0 to 3).
    pub normalization: u8,
    /// Per-repository secret XORed into the gear table, so chunk lengths do
    /// not reveal which well-known files a repository holds.
    pub seed: u64,
}

impl ChunkerParams {
    /// Default minimum chunk size: 512 KiB.
    pub const DEFAULT_MIN: u32 = 512 * 1024;
    /// Default average chunk size: 1 MiB.
    pub const DEFAULT_AVG: u32 = 1024 * 1024;
    /// Default maximum chunk size: 8 MiB.
    pub const DEFAULT_MAX: u32 = 8 * 1024 * 1024;

    /// The defaults with the given seed.
    pub const fn with_seed(seed: u64) -> Self {
        Self {
            min_size: Self::DEFAULT_MIN,
            avg_size: Self::DEFAULT_AVG,
            max_size: Self::DEFAULT_MAX,
            normalization: 1,
            seed,
        }
    }

    /// Checks the parameters are within what FastCDC 2020 supports.
    pub fn validate(&self) -> Result<(), FormatError> {
        let (min, avg, max) = (
            self.min_size as usize,
            self.avg_size as usize,
            self.max_size as usize,
        );
        let ok = (v2020::MINIMUM_MIN..=v2020::MINIMUM_MAX).contains(&min)
            && (v2020::AVERAGE_MIN..=v2020::AVERAGE_MAX).contains(&avg)
            && (v2020::MAXIMUM_MIN..=v2020::MAXIMUM_MAX).contains(&max)
            && min <= avg
            && avg <= max
            && min % 2 == 0
            && avg % 2 == 0
            && max % 2 == 0
            && self.normalization <= 3;
        if ok {
            Ok(())
        } else {
            Err(FormatError::Invalid {
                what: "chunker parameters",
                reason: format!("{self:?} is outside what FastCDC 2020 supports"),
            })
        }
    }
}

/// Finds content-defined cut points with FastCDC 2020.
#[derive(Clone, Debug)]
pub struct Chunker {
    params: ChunkerParams,
    mask_s: u64,
    mask_l: u64,
    gear: Cow<'static, [u64]>,
    gear_ls: Cow<'static, [u64]>,
}

impl Chunker {
    /// Builds a chunker; fails if the parameters are out of range.
    pub fn new(params: ChunkerParams) -> Result<Self, FormatError> {
        params.validate()?;
        let level = match params.normalization {
            0 => Normalization::Level0,
            1 => Normalization::Level1,
            2 => Normalization::Level2,
            _ => Normalization::Level3,
        };
        let (mask_s, mask_l) = v2020::select_masks(params.avg_size as usize, level);
        let (gear, gear_ls) = v2020::get_gear_with_seed(params.seed);
        Ok(Self {
            params,
            mask_s,
            mask_l,
            gear,
            gear_ls,
        })
    }

    /// The parameters this chunker was built with.
    pub fn params(&self) -> &ChunkerParams {
        &self.params
    }

    /// Largest chunk this chunker cuts; callers buffer this much before asking.
    pub fn max_size(&self) -> usize {
        self.params.max_size as usize
    }

    /// Length of the chunk that starts at `data[0]`.
    ///
    /// `data` must hold at least [`Chunker::max_size`] bytes unless it is the
    /// rest of the stream; only then is the answer independent of how the
    /// stream was buffered. Returns 0 only for empty input.
    pub fn cut(&self, data: &[u8]) -> usize {
        if data.is_empty() {
            return 0;
        }
        let (_, len) = v2020::cut_gear(
            data,
            self.params.min_size as usize,
            self.params.avg_size as usize,
            self.params.max_size as usize,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        len.clamp(1, data.len())
    }

    /// All cut points of a complete in-memory buffer, as chunk lengths.
    pub fn chunk_lengths(&self, mut data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let n = self.cut(data);
            out.push(n);
            data = &data[n..];
        }
        out
    }
}

/// Fixed-size, aligned blocks (for files made of pages, such as PostgreSQL
/// relation segments): chunk `i` covers bytes `i*size .. (i+1)*size`.
pub fn fixed_block_lengths(total: u64, block_size: u32) -> impl Iterator<Item = usize> {
    let block = u64::from(block_size.max(1));
    let full = total / block;
    let rest = total % block;
    (0..full)
        .map(move |_| block as usize)
        .chain((rest > 0).then_some(rest as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic test data: xorshift64* bytes.
    fn pseudo_random(len: usize, mut state: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let v = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.truncate(len);
        out
    }

    fn small_params(seed: u64) -> ChunkerParams {
        ChunkerParams {
            min_size: 2048,
            avg_size: 8192,
            max_size: 65536,
            normalization: 1,
            seed,
        }
    }

    #[test]
    fn golden_boundaries_small_params() {
        let data = pseudo_random(256 * 1024, 0x1234_5678_9abc_def0);
        let c = Chunker::new(small_params(0)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.chunk_lengths(&data), GOLDEN_SMALL_SEED0);
        let c = Chunker::new(small_params(0xdead_beef)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.chunk_lengths(&data), GOLDEN_SMALL_SEEDED);
    }

    #[test]
    fn golden_boundaries_default_params() {
        let data = pseudo_random(12 * 1024 * 1024, 42);
        let c = Chunker::new(ChunkerParams::with_seed(7)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.chunk_lengths(&data), GOLDEN_DEFAULT_SEED7);
    }

    #[test]
    fn agrees_with_the_crates_reference_iterator() {
        let data = pseudo_random(2 * 1024 * 1024, 3);
        for seed in [0, 0xdead_beef] {
            let p = small_params(seed);
            let ours = Chunker::new(p)
                .unwrap_or_else(|e| panic!("{e}"))
                .chunk_lengths(&data);
            let reference: Vec<usize> = v2020::FastCDC::with_level_and_seed(
                &data,
                p.min_size as usize,
                p.avg_size as usize,
                p.max_size as usize,
                Normalization::Level1,
                seed,
            )
            .map(|c| c.length)
            .collect();
            assert_eq!(ours, reference);
        }
    }

    #[test]
    fn chunks_cover_input_and_respect_bounds() {
        let data = pseudo_random(3 * 1024 * 1024 + 17, 9);
        let p = small_params(5);
        let c = Chunker::new(p).unwrap_or_else(|e| panic!("{e}"));
        let lens = c.chunk_lengths(&data);
        assert_eq!(lens.iter().sum::<usize>(), data.len());
        for (i, l) in lens.iter().enumerate() {
            assert!(*l <= p.max_size as usize);
            if i + 1 < lens.len() {
                assert!(*l >= p.min_size as usize);
            }
        }
    }

    #[test]
    fn zeros_cut_at_max() {
        let data = vec![0u8; 200_000];
        let c = Chunker::new(small_params(0)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.chunk_lengths(&data), vec![65536, 65536, 65536, 3392]);
    }

    #[test]
    fn insertion_changes_only_nearby_chunks() {
        let data = pseudo_random(1024 * 1024, 77);
        let mut edited = data[..500_000].to_vec();
        edited.extend_from_slice(&pseudo_random(10_000, 78));
        edited.extend_from_slice(&data[500_000..]);
        let c = Chunker::new(small_params(1)).unwrap_or_else(|e| panic!("{e}"));
        let chunks = |d: &[u8]| {
            let mut out = std::collections::HashSet::new();
            let mut off = 0;
            for l in c.chunk_lengths(d) {
                out.insert(d[off..off + l].to_vec());
                off += l;
            }
            out
        };
        let before = chunks(&data);
        let after = chunks(&edited);
        let new = after.difference(&before).count();
        assert!(new <= 4, "{new} new chunks after a 10 KB insertion");
    }

    #[test]
    fn rejects_bad_params() {
        let mut p = small_params(0);
        p.min_size = 100_000;
        assert!(Chunker::new(p).is_err());
        let mut p = small_params(0);
        p.avg_size = 8191;
        assert!(Chunker::new(p).is_err());
    }

    #[test]
    fn fixed_blocks() {
        let v: Vec<usize> = fixed_block_lengths(20_000, 8192).collect();
        assert_eq!(v, vec![8192, 8192, 3616]);
        assert_eq!(fixed_block_lengths(0, 8192).count(), 0);
        assert_eq!(fixed_block_lengths(16384, 8192).count(), 2);
    }

    const GOLDEN_SMALL_SEED0: &[usize] = &[
        13430, 6899, 9382, 5311, 18042, 9331, 3852, 10147, 14772, 3821, 6556, 11153, 5212, 15901,
        9887, 8519, 7696, 13896, 8311, 3924, 2639, 6598, 14976, 10184, 10840, 4589, 8597, 14398,
        3281,
    ];
    const GOLDEN_SMALL_SEEDED: &[usize] = &[
        13072, 5410, 3101, 13099, 8804, 5929, 13228, 5215, 4512, 7809, 6279, 13305, 2491, 4936,
        9597, 9783, 7328, 5190, 8431, 22669, 9357, 9609, 10260, 6754, 16782, 8633, 8879, 11038,
        9089, 1555,
    ];
    const GOLDEN_DEFAULT_SEED7: &[usize] = &[
        1846844, 545365, 2067939, 1493664, 564974, 1035329, 596092, 1207849, 1049356, 1471587,
        612311, 91602,
    ];
}
