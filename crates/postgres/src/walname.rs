//! WAL file names: segments, partial segments, timeline history files and
//! backup history files, as PostgreSQL names them in `pg_wal`.

use std::fmt;

/// What a file in `pg_wal` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WalFile {
    /// A WAL segment, e.g. `000000010000000000000003`.
    Segment {
        /// Timeline.
        tli: u32,
        /// Segment number (counting from LSN 0).
        segno: u64,
    },
    /// The last, incomplete segment of a timeline left when a standby or a
    /// restored server was promoted: `000000010000000000000003.partial`.
    Partial {
        /// Timeline.
        tli: u32,
        /// Segment number.
        segno: u64,
    },
    /// A timeline history file, e.g. `00000002.history`.
    History {
        /// The timeline it describes.
        tli: u32,
    },
    /// A backup history file, e.g. `000000010000000000000002.00000028.backup`.
    BackupHistory {
        /// Timeline.
        tli: u32,
        /// Segment number.
        segno: u64,
        /// Offset of the backup start in the segment.
        offset: u32,
    },
}

fn segs_per_xlogid(seg_size: u64) -> u64 {
    0x1_0000_0000 / seg_size.max(1)
}

fn parse_segment(name: &str, seg_size: u64) -> Option<(u32, u64)> {
    if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let tli = u32::from_str_radix(&name[0..8], 16).ok()?;
    let log = u64::from_str_radix(&name[8..16], 16).ok()?;
    let seg = u64::from_str_radix(&name[16..24], 16).ok()?;
    let per = segs_per_xlogid(seg_size);
    if seg >= per {
        return None;
    }
    Some((tli, log * per + seg))
}

fn segment_name(tli: u32, segno: u64, seg_size: u64) -> String {
    let per = segs_per_xlogid(seg_size);
    format!("{tli:08X}{:08X}{:08X}", segno / per, segno % per)
}

impl WalFile {
    /// Classifies a file name; `seg_size` is the cluster's WAL segment size.
    pub fn parse(name: &str, seg_size: u64) -> Option<Self> {
        if let Some(base) = name.strip_suffix(".partial") {
            let (tli, segno) = parse_segment(base, seg_size)?;
            return Some(WalFile::Partial { tli, segno });
        }
        if let Some(base) = name.strip_suffix(".history") {
            if base.len() == 8 && base.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Some(WalFile::History {
                    tli: u32::from_str_radix(base, 16).ok()?,
                });
            }
            return None;
        }
        if let Some(base) = name.strip_suffix(".backup") {
            let (seg, off) = base.split_once('.')?;
            let (tli, segno) = parse_segment(seg, seg_size)?;
            if off.len() != 8 {
                return None;
            }
            let offset = u32::from_str_radix(off, 16).ok()?;
            return Some(WalFile::BackupHistory { tli, segno, offset });
        }
        let (tli, segno) = parse_segment(name, seg_size)?;
        Some(WalFile::Segment { tli, segno })
    }

    /// The file name.
    pub fn name(&self, seg_size: u64) -> String {
        match *self {
            WalFile::Segment { tli, segno } => segment_name(tli, segno, seg_size),
            WalFile::Partial { tli, segno } => {
                format!("{}.partial", segment_name(tli, segno, seg_size))
            }
            WalFile::History { tli } => format!("{tli:08X}.history"),
            WalFile::BackupHistory { tli, segno, offset } => {
                format!("{}.{offset:08X}.backup", segment_name(tli, segno, seg_size))
            }
        }
    }

    /// True for a full segment.
    pub fn is_segment(&self) -> bool {
        matches!(self, WalFile::Segment { .. })
    }
}

impl fmt::Display for WalFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name(16 << 20))
    }
}

/// True if `name` looks like any WAL file name PostgreSQL archives (whatever
/// the segment size); used to refuse paths that are not WAL.
pub fn looks_like_wal(name: &str) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(b) = name.strip_suffix(".partial") {
        return hex(b, 24);
    }
    if let Some(b) = name.strip_suffix(".history") {
        return hex(b, 8);
    }
    if let Some(b) = name.strip_suffix(".backup") {
        return b
            .split_once('.')
            .is_some_and(|(s, o)| hex(s, 24) && hex(o, 8));
    }
    hex(name, 24)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB16: u64 = 16 << 20;

    #[test]
    fn round_trips_every_kind() {
        for (name, want) in [
            (
                "000000010000000000000003",
                WalFile::Segment { tli: 1, segno: 3 },
            ),
            (
                "0000000200000001000000FF",
                WalFile::Segment {
                    tli: 2,
                    segno: 256 + 255,
                },
            ),
            (
                "000000010000000000000003.partial",
                WalFile::Partial { tli: 1, segno: 3 },
            ),
            ("0000000A.history", WalFile::History { tli: 10 }),
            (
                "000000010000000000000002.00000028.backup",
                WalFile::BackupHistory {
                    tli: 1,
                    segno: 2,
                    offset: 0x28,
                },
            ),
        ] {
            let parsed = WalFile::parse(name, MB16);
            assert_eq!(parsed, Some(want), "{name}");
            assert_eq!(want.name(MB16), name);
            assert!(looks_like_wal(name));
        }
    }

    #[test]
    fn refuses_other_names_and_out_of_range_segments() {
        for bad in [
            "",
            "RECOVERYXLOG",
            "00000001000000000000000",
            "000000010000000000000100",
            "x.history",
            "../000000010000000000000003",
        ] {
            assert_eq!(WalFile::parse(bad, MB16), None, "{bad}");
        }
        assert!(!looks_like_wal("postgresql.conf"));
        // With 1 GiB segments only 4 fit in one xlogid.
        assert_eq!(WalFile::parse("000000010000000000000004", 1 << 30), None);
        assert_eq!(
            WalFile::parse("000000010000000100000003", 1 << 30),
            Some(WalFile::Segment { tli: 1, segno: 7 })
        );
    }
}
