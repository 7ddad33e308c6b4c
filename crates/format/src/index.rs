//! Index files: which blobs live in which pack, at which offset.
//!
//! The payload of an `index/<id>` object (after decryption and decoding):
//! ```text
//! u32 pack count
//! per pack:  pack id (32) | salt (32) | pack size u64 | u32 blob count | entries (45 bytes each)
//! u32 superseded index count | ids (32 each)
//! ```
//! All integers are little-endian. Entries use the pack trailer's layout.
//! `supersedes` names index files whose content this one repeats, so a
//! compaction can replace them (their removal is then safe).

use crate::crypto::SALT_LEN;
use crate::cursor::Cursor;
use crate::error::FormatError;
use crate::id::Id;
use crate::pack::{ENTRY_LEN, PackEntry};

/// One pack as listed in an index file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexPack {
    /// The pack's storage id.
    pub id: Id,
    /// The pack's subkey salt, so a blob can be read with one ranged request.
    pub salt: [u8; SALT_LEN],
    /// Size of the pack file in bytes.
    pub size: u64,
    /// The blobs it holds.
    pub blobs: Vec<PackEntry>,
}

/// The decoded payload of one index file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexFile {
    /// Packs described by this file.
    pub packs: Vec<IndexPack>,
    /// Index files this one makes redundant.
    pub supersedes: Vec<Id>,
}

const PACK_FIXED_LEN: usize = 32 + SALT_LEN + 8 + 4;

impl IndexFile {
    /// Encodes the payload.
    pub fn encode(&self) -> Vec<u8> {
        let blobs: usize = self.packs.iter().map(|p| p.blobs.len()).sum();
        let mut out = Vec::with_capacity(8 + self.packs.len() * PACK_FIXED_LEN + blobs * ENTRY_LEN);
        out.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for p in &self.packs {
            out.extend_from_slice(p.id.as_bytes());
            out.extend_from_slice(&p.salt);
            out.extend_from_slice(&p.size.to_le_bytes());
            out.extend_from_slice(&(p.blobs.len() as u32).to_le_bytes());
            for b in &p.blobs {
                b.encode_into(&mut out);
            }
        }
        out.extend_from_slice(&(self.supersedes.len() as u32).to_le_bytes());
        for id in &self.supersedes {
            out.extend_from_slice(id.as_bytes());
        }
        out
    }

    /// Decodes a payload, rejecting anything malformed.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut c = Cursor::new(bytes, "index");
        let n = c.count(PACK_FIXED_LEN)?;
        let mut packs = Vec::with_capacity(n);
        for _ in 0..n {
            let id = Id::from_bytes(c.array()?);
            let salt = c.array()?;
            let size = c.u64()?;
            let m = c.count(ENTRY_LEN)?;
            let mut blobs = Vec::with_capacity(m);
            for _ in 0..m {
                let e = PackEntry::decode(&mut c)?;
                if e.end() > size {
                    return Err(FormatError::Invalid {
                        what: "index",
                        reason: format!(
                            "blob {} ends at {} beyond the end of pack {} ({size} bytes)",
                            e.id.short(),
                            e.end(),
                            id.short()
                        ),
                    });
                }
                blobs.push(e);
            }
            packs.push(IndexPack {
                id,
                salt,
                size,
                blobs,
            });
        }
        let s = c.count(32)?;
        let mut supersedes = Vec::with_capacity(s);
        for _ in 0..s {
            supersedes.push(Id::from_bytes(c.array()?));
        }
        c.finish()?;
        Ok(Self { packs, supersedes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::BlobType;

    fn sample() -> IndexFile {
        IndexFile {
            packs: vec![IndexPack {
                id: Id::from_bytes([1; 32]),
                salt: [2; 32],
                size: 1000,
                blobs: vec![PackEntry {
                    blob_type: BlobType::Tree,
                    id: Id::from_bytes([3; 32]),
                    offset: 40,
                    length: 100,
                    raw_length: 500,
                }],
            }],
            supersedes: vec![Id::from_bytes([9; 32])],
        }
    }

    #[test]
    fn round_trip() {
        let idx = sample();
        assert_eq!(IndexFile::decode(&idx.encode()).ok(), Some(idx));
        let empty = IndexFile::default();
        assert_eq!(IndexFile::decode(&empty.encode()).ok(), Some(empty));
    }

    #[test]
    fn rejects_truncation_trailing_bytes_and_out_of_pack_entries() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            assert!(IndexFile::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(IndexFile::decode(&extra).is_err());
        let mut bad = sample();
        bad.packs[0].size = 100;
        assert!(IndexFile::decode(&bad.encode()).is_err());
    }
}
