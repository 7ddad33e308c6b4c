//! Reading WAL segments: the long page header that identifies the cluster,
//! and a scan of the records for what point-in-time recovery needs to know
//! (transaction commit and abort times, named restore points, the end of WAL).
//!
//! The scan follows the page layout of PostgreSQL 13 and later: pages of
//! `xlp_xlog_blcksz` bytes, each starting with a page header (24 bytes, 40 on
//! a segment's first page), records aligned to 8 bytes that may continue
//! across pages. Only records of the transaction and XLOG resource managers
//! are interpreted; a record's main data is its last `main_data_len` bytes.

use crate::lsn::Lsn;

/// Page header flag: the page starts with the rest of a record.
const XLP_FIRST_IS_CONTRECORD: u16 = 0x0001;
/// Page header flag: this is a long (segment-first) header.
const XLP_LONG_HEADER: u16 = 0x0002;
const SHORT_HEADER: usize = 24;
const LONG_HEADER: usize = 40;
const RECORD_HEADER: usize = 24;
const RM_XLOG_ID: u8 = 0;
const RM_XACT_ID: u8 = 1;
const XLOG_SWITCH: u8 = 0x40;
const XLOG_RESTORE_POINT: u8 = 0x70;
const XLOG_XACT_OPMASK: u8 = 0x70;
/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// Why a segment was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SegmentError {
    /// Too short to hold a long page header.
    #[error("the file is too short to be a WAL segment ({0} bytes)")]
    TooShort(usize),
    /// The first page does not carry PostgreSQL's page magic and long header.
    #[error("the file does not start with a WAL segment header")]
    NotWal,
    /// The header's size fields are not plausible.
    #[error(
        "the segment header declares a {seg_size}-byte segment with {blcksz}-byte pages, but the file has {len} bytes"
    )]
    BadSize {
        /// Declared segment size.
        seg_size: u32,
        /// Declared page size.
        blcksz: u32,
        /// Actual file length.
        len: usize,
    },
}

/// The identifying fields of a segment's first page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Page magic (identifies the WAL format version).
    pub magic: u16,
    /// Timeline of the first page.
    pub tli: u32,
    /// WAL position of the first page.
    pub pageaddr: Lsn,
    /// System identifier of the cluster that wrote it.
    pub sysid: u64,
    /// Segment size in bytes.
    pub seg_size: u32,
    /// WAL page size in bytes.
    pub blcksz: u32,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Parses and sanity-checks the long header of a complete segment file.
pub fn parse_header(bytes: &[u8]) -> Result<SegmentHeader, SegmentError> {
    if bytes.len() < LONG_HEADER {
        return Err(SegmentError::TooShort(bytes.len()));
    }
    let magic = u16_at(bytes, 0);
    let info = u16_at(bytes, 2);
    if magic & 0xFF00 != 0xD100 || info & XLP_LONG_HEADER == 0 {
        return Err(SegmentError::NotWal);
    }
    let h = SegmentHeader {
        magic,
        tli: u32_at(bytes, 4),
        pageaddr: Lsn(u64_at(bytes, 8)),
        sysid: u64_at(bytes, 24),
        seg_size: u32_at(bytes, 32),
        blcksz: u32_at(bytes, 36),
    };
    let plausible = h.seg_size.is_power_of_two()
        && (1 << 20..=1 << 30).contains(&h.seg_size)
        && h.blcksz.is_power_of_two()
        && (1024..=65536).contains(&h.blcksz)
        && bytes.len() == h.seg_size as usize;
    if !plausible {
        return Err(SegmentError::BadSize {
            seg_size: h.seg_size,
            blcksz: h.blcksz,
            len: bytes.len(),
        });
    }
    Ok(h)
}

/// A named restore point (`pg_create_restore_point`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestorePoint {
    /// Its name.
    pub name: String,
    /// Where its record starts.
    pub lsn: Lsn,
    /// When it was created, Unix microseconds.
    pub time_us: i64,
}

/// What a scan of one segment found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentSummary {
    /// Earliest commit/abort time in the segment, Unix microseconds.
    pub first_xact_us: Option<i64>,
    /// Latest commit/abort time in the segment, Unix microseconds.
    pub last_xact_us: Option<i64>,
    /// Restore points created in the segment.
    pub restore_points: Vec<RestorePoint>,
    /// Records read.
    pub records: u64,
}

/// Reads logical WAL bytes, skipping page headers.
struct Reader<'a> {
    seg: &'a [u8],
    start: Lsn,
    blcksz: usize,
}

impl Reader<'_> {
    fn header_len(&self, page_start: usize) -> usize {
        if page_start == 0 {
            LONG_HEADER
        } else {
            SHORT_HEADER
        }
    }

    /// True if the page at `page_start` is a valid page of this segment.
    fn page_ok(&self, page_start: usize) -> bool {
        page_start + SHORT_HEADER <= self.seg.len()
            && u16_at(self.seg, page_start) & 0xFF00 == 0xD100
            && u64_at(self.seg, page_start + 8) == self.start.0 + page_start as u64
    }

    /// Copies `len` logical bytes starting at physical offset `pos` into
    /// `out`; returns the physical offset after them, or `None` if the
    /// segment (or valid WAL) ends first.
    fn read(&self, mut pos: usize, mut len: usize, out: &mut Vec<u8>) -> Option<usize> {
        while len > 0 {
            let page_start = pos / self.blcksz * self.blcksz;
            let page_end = page_start + self.blcksz;
            if pos == page_start {
                if !self.page_ok(page_start) {
                    return None;
                }
                pos += self.header_len(page_start);
            }
            let n = len.min(page_end - pos);
            out.extend_from_slice(self.seg.get(pos..pos + n)?);
            pos += n;
            len -= n;
            if pos == page_end && len > 0 && page_end >= self.seg.len() {
                return None;
            }
        }
        Some(pos)
    }

    /// Skips `len` logical bytes from `pos`.
    fn skip(&self, pos: usize, len: usize) -> Option<usize> {
        let mut sink = Vec::new();
        self.read(pos, len, &mut sink)
    }
}

fn align8(pos: usize) -> usize {
    (pos + 7) & !7
}

/// Scans the records of a complete segment whose header `h` was checked.
pub fn scan(bytes: &[u8], h: &SegmentHeader) -> SegmentSummary {
    let blcksz = h.blcksz as usize;
    let r = Reader {
        seg: bytes,
        start: h.pageaddr,
        blcksz,
    };
    let mut out = SegmentSummary::default();
    let mut pos = LONG_HEADER;
    // A record continued from the previous segment: skip its remainder.
    if u16_at(bytes, 2) & XLP_FIRST_IS_CONTRECORD != 0 {
        let rem = u32_at(bytes, 16) as usize;
        match r.skip(pos, rem) {
            Some(p) => pos = p,
            None => return out,
        }
    }
    let mut record = Vec::new();
    loop {
        pos = align8(pos);
        if pos.is_multiple_of(blcksz) && pos >= bytes.len() {
            break;
        }
        // At a page boundary the next bytes are a page header.
        let page_start = pos / blcksz * blcksz;
        if pos == page_start {
            if !r.page_ok(page_start) {
                break;
            }
            pos += r.header_len(page_start);
        }
        if pos + 4 > bytes.len() {
            break;
        }
        let tot_len = u32_at(bytes, pos) as usize;
        if tot_len < RECORD_HEADER || tot_len > bytes.len() * 64 {
            break; // zeros after the end of WAL, or garbage
        }
        let lsn = Lsn(h.pageaddr.0 + pos as u64);
        record.clear();
        let Some(next) = r.read(pos, tot_len, &mut record) else {
            break; // continues into the next segment
        };
        out.records += 1;
        let info = record[16];
        let rmid = record[17];
        if rmid == RM_XLOG_ID && info & 0xF0 == XLOG_SWITCH {
            break;
        }
        let interesting = (rmid == RM_XACT_ID
            && matches!(info & XLOG_XACT_OPMASK, 0x00 | 0x20 | 0x30 | 0x40))
            || (rmid == RM_XLOG_ID && info & 0xF0 == XLOG_RESTORE_POINT);
        if interesting
            && let Some(main) = main_data(&record)
            && main.len() >= 8
        {
            let mut t = [0u8; 8];
            t.copy_from_slice(&main[..8]);
            let time_us = i64::from_le_bytes(t).saturating_add(PG_EPOCH_OFFSET_US);
            if rmid == RM_XACT_ID {
                out.first_xact_us.get_or_insert(time_us);
                out.last_xact_us = Some(out.last_xact_us.map_or(time_us, |l| l.max(time_us)));
            } else {
                let name_bytes = &main[8..main.len().min(8 + 64)];
                let end = name_bytes
                    .iter()
                    .position(|&b| b == 0)
                    .unwrap_or(name_bytes.len());
                out.restore_points.push(RestorePoint {
                    name: String::from_utf8_lossy(&name_bytes[..end]).into_owned(),
                    lsn,
                    time_us,
                });
            }
        }
        pos = next;
    }
    out
}

/// The main data of a record without block references: the record's last
/// `len` bytes, where `len` comes from its data header.
fn main_data(record: &[u8]) -> Option<&[u8]> {
    let mut p = RECORD_HEADER;
    loop {
        match *record.get(p)? {
            255 => {
                let len = *record.get(p + 1)? as usize;
                return record.get(record.len().checked_sub(len)?..);
            }
            254 => {
                let len = u32_at(record.get(p..p + 5)?, 1) as usize;
                return record.get(record.len().checked_sub(len)?..);
            }
            253 => p += 3,    // replication origin
            252 => p += 5,    // top-level transaction id
            _ => return None, // block references: not a record we read
        }
    }
}

/// A Unix-microsecond time as UTC.
pub fn us_to_time(us: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a minimal segment of cluster 42 at LSN 0/3000000: long
    /// header, then the given records.
    pub(crate) fn segment(records: &[Vec<u8>], seg_size: usize) -> Vec<u8> {
        let blcksz = 8192usize;
        let mut seg = vec![0u8; seg_size];
        let start: u64 = 0x0300_0000;
        let mut logical = Vec::new();
        for r in records {
            logical.extend_from_slice(r);
            while logical.len() % 8 != 0 {
                logical.push(0);
            }
        }
        // Lay the logical stream over pages.
        let mut pos = 0;
        let mut page = 0;
        while page * blcksz < seg_size {
            let ps = page * blcksz;
            let hl = if page == 0 { LONG_HEADER } else { SHORT_HEADER };
            seg[ps..ps + 2].copy_from_slice(&0xD110u16.to_le_bytes());
            let info = if page == 0 { XLP_LONG_HEADER } else { 0 };
            seg[ps + 2..ps + 4].copy_from_slice(&info.to_le_bytes());
            seg[ps + 4..ps + 8].copy_from_slice(&1u32.to_le_bytes());
            seg[ps + 8..ps + 16].copy_from_slice(&(start + ps as u64).to_le_bytes());
            if page == 0 {
                seg[24..32].copy_from_slice(&42u64.to_le_bytes());
                seg[32..36].copy_from_slice(&(seg_size as u32).to_le_bytes());
                seg[36..40].copy_from_slice(&(blcksz as u32).to_le_bytes());
            }
            let room = blcksz - hl;
            let n = room.min(logical.len().saturating_sub(pos));
            seg[ps + hl..ps + hl + n].copy_from_slice(&logical[pos..pos + n]);
            pos += n;
            page += 1;
        }
        seg
    }

    /// One WAL record of resource manager `rmid` with main data `main`.
    pub(crate) fn record(rmid: u8, info: u8, main: &[u8]) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&((RECORD_HEADER + 2 + main.len()) as u32).to_le_bytes());
        r.extend_from_slice(&[0; 12]);
        r.push(info);
        r.push(rmid);
        r.extend_from_slice(&[0; 6]);
        r.extend_from_slice(&[255u8, main.len() as u8]);
        r.extend_from_slice(main);
        r
    }

    /// A PostgreSQL timestamp (microseconds since 2000) of a Unix time.
    pub(crate) fn pg_time(unix_us: i64) -> [u8; 8] {
        (unix_us - PG_EPOCH_OFFSET_US).to_le_bytes()
    }

    #[test]
    fn header_identifies_the_cluster() {
        let seg = segment(&[], 1 << 20);
        let h = parse_header(&seg).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.sysid, 42);
        assert_eq!(h.seg_size, 1 << 20);
        assert_eq!(h.pageaddr, Lsn(0x0300_0000));
        assert_eq!(
            parse_header(&seg[..100]),
            Err(SegmentError::BadSize {
                seg_size: 1 << 20,
                blcksz: 8192,
                len: 100
            })
        );
        assert_eq!(parse_header(&[0u8; 64]), Err(SegmentError::NotWal));
        assert_eq!(parse_header(b"short"), Err(SegmentError::TooShort(5)));
    }

    #[test]
    fn finds_commit_times_and_restore_points_across_pages() {
        let t1 = 1_763_800_000_000_000i64;
        let t2 = t1 + 5_000_000;
        let mut rp = pg_time(t1 + 1_000_000).to_vec();
        rp.extend_from_slice(b"before-migration\0");
        // Enough filler records that later ones cross page boundaries.
        let mut records = vec![record(RM_XACT_ID, 0x00, &pg_time(t1))];
        for _ in 0..200 {
            records.push(record(9, 0x00, &[1, 2, 3]));
        }
        records.push(record(RM_XLOG_ID, XLOG_RESTORE_POINT, &rp));
        for _ in 0..200 {
            records.push(record(9, 0x00, &[4; 100]));
        }
        records.push(record(RM_XACT_ID, 0x20, &pg_time(t2))); // an abort
        records.push(record(RM_XLOG_ID, XLOG_SWITCH, &[]));
        records.push(record(RM_XACT_ID, 0x00, &pg_time(t2 + 99))); // after the switch: ignored
        let seg = segment(&records, 1 << 20);
        let h = parse_header(&seg).unwrap_or_else(|e| panic!("{e}"));
        let s = scan(&seg, &h);
        assert_eq!(s.first_xact_us, Some(t1));
        assert_eq!(s.last_xact_us, Some(t2));
        assert_eq!(s.restore_points.len(), 1);
        assert_eq!(s.restore_points[0].name, "before-migration");
        assert_eq!(s.restore_points[0].time_us, t1 + 1_000_000);
        assert_eq!(s.records, 404);
    }

    #[test]
    fn main_data_handles_long_headers_and_skips_block_records() {
        let mut r = vec![0u8; RECORD_HEADER];
        r.extend_from_slice(&[252, 1, 0, 0, 0, 254, 3, 0, 0, 0]);
        r.extend_from_slice(b"abc");
        assert_eq!(main_data(&r), Some(&b"abc"[..]));
        let mut b = vec![0u8; RECORD_HEADER];
        b.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(main_data(&b), None);
    }
}
