//! PostgreSQL data page checksums (`data_checksums`), verified while a base
//! backup reads relation files, so corruption is reported by file and block
//! before it spreads into every later backup.

use crate::lsn::Lsn;

const N_SUMS: usize = 32;
const FNV_PRIME: u32 = 16_777_619;
/// Page size of the clusters lifeboat backs up.
pub const BLCKSZ: usize = 8192;
/// Blocks per 1 GiB relation segment file.
pub const RELSEG_BLOCKS: u32 = 131_072;

/// Initial states of the 32 parallel sums (PostgreSQL's `checksumBaseOffsets`).
const BASE_OFFSETS: [u32; N_SUMS] = [
    0x5B1F36E9, 0xB8525960, 0x02AB50AA, 0x1DE66D2A, 0x79FF467A, 0x9BB9F8A3, 0x217E7CD2, 0x83E13D2C,
    0xF8D4474F, 0xE39EB970, 0x42C6AE16, 0x993216FA, 0x7B093B5D, 0x98DAFF3C, 0xF718902A, 0x0B1C9CDB,
    0xE58F764B, 0x187636BC, 0x5D7B3BB1, 0xE73DE7DE, 0x92BEC979, 0xCCA6C0B2, 0x304A0979, 0x85AA43D4,
    0x783125BB, 0x6CA8EAA2, 0xE407EAC6, 0x4B5CFC3E, 0x9FBF8C76, 0x15CA20BE, 0xF2CA9FD3, 0x959BD756,
];

fn comp(sum: u32, value: u32) -> u32 {
    let tmp = sum ^ value;
    tmp.wrapping_mul(FNV_PRIME) ^ (tmp >> 17)
}

/// The checksum PostgreSQL stores in a page numbered `blkno` (counting across
/// the relation's segment files), computed with the stored checksum zeroed.
pub fn page_checksum(page: &[u8; BLCKSZ], blkno: u32) -> u16 {
    let mut sums = BASE_OFFSETS;
    for (i, word) in page.chunks_exact(4).enumerate() {
        let mut v = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        if i == 2 {
            // pd_checksum is the low half of the third word: treated as zero.
            v &= 0xFFFF_0000;
        }
        let lane = i % N_SUMS;
        sums[lane] = comp(sums[lane], v);
    }
    for _ in 0..2 {
        for s in &mut sums {
            *s = comp(*s, 0);
        }
    }
    let folded = sums.iter().fold(0u32, |acc, s| acc ^ s) ^ blkno;
    ((folded % 65535) + 1) as u16
}

/// The verdict on one page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageCheck {
    /// The stored checksum matches.
    Ok,
    /// A new, never-written page (all zeros or `pd_upper == 0`).
    New,
    /// Written after the backup started: it may be torn, WAL replay repairs it.
    Skipped,
    /// The checksum does not match.
    Bad {
        /// Stored.
        stored: u16,
        /// Computed.
        computed: u16,
    },
}

/// Checks one page of a relation file.
pub fn verify_page(page: &[u8; BLCKSZ], blkno: u32, backup_start: Lsn) -> PageCheck {
    let upper = u16::from_le_bytes([page[14], page[15]]);
    if upper == 0 {
        return if page.iter().all(|&b| b == 0) {
            PageCheck::New
        } else {
            // PostgreSQL accepts only all-zero new pages.
            PageCheck::Bad {
                stored: u16::from_le_bytes([page[8], page[9]]),
                computed: 0,
            }
        };
    }
    let lsn_hi = u32::from_le_bytes([page[0], page[1], page[2], page[3]]);
    let lsn_lo = u32::from_le_bytes([page[4], page[5], page[6], page[7]]);
    if Lsn((u64::from(lsn_hi) << 32) | u64::from(lsn_lo)) >= backup_start {
        return PageCheck::Skipped;
    }
    let stored = u16::from_le_bytes([page[8], page[9]]);
    let computed = page_checksum(page, blkno);
    if stored == computed {
        PageCheck::Ok
    } else {
        PageCheck::Bad { stored, computed }
    }
}

/// True for files that hold relation pages: `base/<db>/<relfilenode>[_fsm|_vm|_init][.N]`,
/// `global/<relfilenode>…`, and the same inside tablespaces. Returns the
/// segment number `N` (0 for the first file).
pub fn relation_segment(path: &std::path::Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    let (stem, seg) = match name.split_once('.') {
        Some((s, n)) => (s, n.parse::<u32>().ok()?),
        None => (name, 0),
    };
    let stem = stem
        .strip_suffix("_fsm")
        .or_else(|| stem.strip_suffix("_vm"))
        .or_else(|| stem.strip_suffix("_init"))
        .unwrap_or(stem);
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let parent = path.parent()?;
    let in_db = parent
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str());
    let dir = parent.file_name()?.to_str()?;
    let is_rel_dir = dir == "global"
        || (in_db == Some("base") && dir.bytes().all(|b| b.is_ascii_digit()))
        || (in_db.is_some_and(|d| d.starts_with("PG_")) && dir.bytes().all(|b| b.is_ascii_digit()));
    is_rel_dir.then_some(seg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn new_pages_and_lsn_skips() {
        let zero = [0u8; BLCKSZ];
        assert_eq!(verify_page(&zero, 0, Lsn(0)), PageCheck::New);
        let mut page = [0u8; BLCKSZ];
        page[14] = 0x10; // pd_upper
        page[4] = 0x50; // LSN 0/50
        let sum = page_checksum(&page, 7);
        page[8..10].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(verify_page(&page, 7, Lsn(0x1000)), PageCheck::Ok);
        assert!(matches!(
            verify_page(&page, 8, Lsn(0x1000)),
            PageCheck::Bad { .. }
        ));
        assert_eq!(verify_page(&page, 8, Lsn(0x40)), PageCheck::Skipped);
        page[100] ^= 1;
        assert!(matches!(
            verify_page(&page, 7, Lsn(0x1000)),
            PageCheck::Bad { .. }
        ));
    }

    #[test]
    fn recognises_relation_files() {
        assert_eq!(relation_segment(Path::new("base/5/16384")), Some(0));
        assert_eq!(relation_segment(Path::new("base/5/16384.2")), Some(2));
        assert_eq!(relation_segment(Path::new("base/5/16384_fsm")), Some(0));
        assert_eq!(relation_segment(Path::new("global/1262")), Some(0));
        assert_eq!(
            relation_segment(Path::new("PG_15_202209061/16390/16400_vm")),
            Some(0)
        );
        assert_eq!(relation_segment(Path::new("base/5/PG_VERSION")), None);
        assert_eq!(relation_segment(Path::new("base/5/pg_filenode.map")), None);
        assert_eq!(relation_segment(Path::new("global/pg_control")), None);
        assert_eq!(relation_segment(Path::new("pg_xact/0000")), None);
    }
}
