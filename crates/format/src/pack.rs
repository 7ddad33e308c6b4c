//! Pack files: many encrypted blobs in one storage object.
//!
//! ```text
//! header   40 bytes  "LBPK" | version u8 | 3 reserved zero bytes | salt (32)
//! blob*    n bytes   nonce (12) | AES-256-GCM ciphertext of the encoded blob | tag (16)
//!                    associated data: blob type byte || blob id (32)
//! trailer  m bytes   nonce (12) | ciphertext of the entry table | tag (16)
//!                    nonce = counter nonce 2^64-1, associated data: the 40 header bytes
//! footer    8 bytes  m as u32 little-endian | "LBPT"
//! ```
//! All records in a pack are sealed under the pack's subkey (derived from the
//! salt) with counter nonces 0, 1, 2, … The entry table lists every blob
//! (type, id, offset, length, decoded length) so an index can be rebuilt from
//! the packs alone. A pack is stored under the plain BLAKE3 hash of its bytes.

use crate::compress::{self, Encoder};
use crate::crypto::{
    MasterKey, NONCE_LEN, SALT_LEN, SEAL_OVERHEAD, SubKey, counter_nonce, random_bytes,
};
use crate::cursor::Cursor;
use crate::error::FormatError;
use crate::id::{BlobType, Id};

/// Magic bytes at the start of a pack.
pub const PACK_MAGIC: [u8; 4] = *b"LBPK";
/// Magic bytes at the very end of a pack.
pub const TRAILER_MAGIC: [u8; 4] = *b"LBPT";
/// Length of the pack header.
pub const PACK_HEADER_LEN: usize = 40;
/// Length of the footer.
pub const FOOTER_LEN: usize = 8;
/// Length of one entry in the trailer table (and in index files).
pub const ENTRY_LEN: usize = 1 + 32 + 4 + 4 + 4;
/// Largest decoded blob a reader accepts (256 MiB).
pub const MAX_BLOB_SIZE: u32 = 256 << 20;
fn check_blob_len(len: usize) -> Result<u32, FormatError> {
    u32::try_from(len)
        .ok()
        .filter(|l| *l <= MAX_BLOB_SIZE)
        .ok_or(FormatError::TooLarge {
            what: "blob",
            size: len as u64,
            limit: MAX_BLOB_SIZE.into(),
        })
}

/// The most bytes a blob of `raw_len` bytes can take in a pack (nonce, tag
/// byte, worst-case zstd expansion, GCM tag).
pub fn max_record_len(raw_len: usize) -> usize {
    crate::compress::max_encoded_len(raw_len) + SEAL_OVERHEAD
}

/// Nonce counter reserved for the trailer.
const TRAILER_COUNTER: u64 = u64::MAX;

/// Where one blob sits in its pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PackEntry {
    /// What the blob holds.
    pub blob_type: BlobType,
    /// The blob's keyed id.
    pub id: Id,
    /// Offset of the record (its nonce) from the start of the pack.
    pub offset: u32,
    /// Length of the record: nonce + ciphertext + tag.
    pub length: u32,
    /// Length of the decoded (decompressed) blob.
    pub raw_length: u32,
}

impl PackEntry {
    /// Appends the 45-byte binary form.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(self.blob_type.to_byte());
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.length.to_le_bytes());
        out.extend_from_slice(&self.raw_length.to_le_bytes());
    }

    pub(crate) fn decode(c: &mut Cursor<'_>) -> Result<Self, FormatError> {
        let blob_type = BlobType::from_byte(c.u8()?)?;
        let id = Id::from_bytes(c.array()?);
        let offset = c.u32()?;
        let length = c.u32()?;
        let raw_length = c.u32()?;
        if raw_length > MAX_BLOB_SIZE {
            return Err(FormatError::TooLarge {
                what: "blob",
                size: raw_length.into(),
                limit: MAX_BLOB_SIZE.into(),
            });
        }
        if (length as usize) < SEAL_OVERHEAD || (offset as usize) < PACK_HEADER_LEN {
            return Err(FormatError::Invalid {
                what: "pack entry",
                reason: format!(
                    "blob {} has impossible offset {offset} / length {length}",
                    id.short()
                ),
            });
        }
        Ok(Self {
            blob_type,
            id,
            offset,
            length,
            raw_length,
        })
    }

    /// End offset of the record in the pack.
    pub fn end(&self) -> u64 {
        u64::from(self.offset) + u64::from(self.length)
    }
}

/// The parsed pack header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackHeader {
    /// Format version.
    pub version: u8,
    /// Subkey salt.
    pub salt: [u8; SALT_LEN],
}

impl PackHeader {
    /// Parses the first [`PACK_HEADER_LEN`] bytes of a pack.
    pub fn parse(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut c = Cursor::new(bytes, "pack header");
        if c.array::<4>()? != PACK_MAGIC {
            return Err(FormatError::BadMagic { what: "pack" });
        }
        let version = c.u8()?;
        crate::check_version("pack", version)?;
        let _reserved = c.array::<3>()?;
        let salt = c.array()?;
        Ok(Self { version, salt })
    }

    fn encode(&self) -> [u8; PACK_HEADER_LEN] {
        let mut h = [0u8; PACK_HEADER_LEN];
        h[..4].copy_from_slice(&PACK_MAGIC);
        h[4] = self.version;
        h[8..].copy_from_slice(&self.salt);
        h
    }
}

fn blob_aad(blob_type: BlobType, id: &Id) -> [u8; 33] {
    let mut a = [0u8; 33];
    a[0] = blob_type.to_byte();
    a[1..].copy_from_slice(id.as_bytes());
    a
}

/// Builds one pack in memory.
pub struct PackBuilder {
    salt: [u8; SALT_LEN],
    subkey: SubKey,
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
    raw_bytes: u64,
}

/// A finished pack, ready to upload under `id`.
#[derive(Debug)]
pub struct FinishedPack {
    /// Plain BLAKE3 of `bytes`: the pack's storage name.
    pub id: Id,
    /// Subkey salt (also recorded in the index).
    pub salt: [u8; SALT_LEN],
    /// The whole pack file.
    pub bytes: Vec<u8>,
    /// The blobs it holds.
    pub entries: Vec<PackEntry>,
    /// Sum of the blobs' decoded lengths.
    pub raw_bytes: u64,
}

impl PackBuilder {
    /// Starts a pack with a fresh salt; `capacity` is a size hint in bytes.
    pub fn new(key: &MasterKey, capacity: usize) -> Result<Self, FormatError> {
        Self::with_buffer(key, Vec::with_capacity(capacity + PACK_HEADER_LEN))
    }

    /// Starts a pack in a recycled buffer (its contents are discarded, its
    /// capacity kept), so pipelines can reuse a fixed set of pack buffers.
    pub fn with_buffer(key: &MasterKey, mut buf: Vec<u8>) -> Result<Self, FormatError> {
        buf.clear();
        let salt: [u8; SALT_LEN] = random_bytes()?;
        buf.extend_from_slice(
            &PackHeader {
                version: crate::FORMAT_VERSION,
                salt,
            }
            .encode(),
        );
        Ok(Self {
            salt,
            subkey: key.subkey(&salt),
            buf,
            entries: Vec::new(),
            raw_bytes: 0,
        })
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True if a record of `record_len` bytes (nonce, encoded blob, tag)
    /// fits without growing the buffer.
    pub fn fits(&self, record_len: usize) -> bool {
        self.buf.len() + record_len <= self.buf.capacity()
    }

    /// True when no blob has been added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of blobs added.
    pub fn blob_count(&self) -> usize {
        self.entries.len()
    }

    /// Compresses, encrypts and appends one blob whose id the caller computed.
    /// Returns the stored record length.
    pub fn add(
        &mut self,
        encoder: &mut Encoder,
        blob_type: BlobType,
        id: Id,
        data: &[u8],
    ) -> Result<u32, FormatError> {
        let raw_length = check_blob_len(data.len())?;
        self.append(blob_type, id, raw_length, |buf| {
            encoder.encode_into(data, buf)
        })
    }

    /// Encrypts and appends a blob already encoded with
    /// [`Encoder::encode_into`] (so compression can run outside a lock).
    pub fn add_encoded(
        &mut self,
        blob_type: BlobType,
        id: Id,
        raw_length: usize,
        encoded: &[u8],
    ) -> Result<u32, FormatError> {
        self.add_encoded_parts(blob_type, id, raw_length, &[encoded])
    }

    /// Encrypts and appends a blob already encoded, given as consecutive
    /// parts (such as the tag byte and payload of [`Encoder::encode_parts`]), so
    /// the encoding need not be copied into one buffer first.
    pub fn add_encoded_parts(
        &mut self,
        blob_type: BlobType,
        id: Id,
        raw_length: usize,
        parts: &[&[u8]],
    ) -> Result<u32, FormatError> {
        let raw_length = check_blob_len(raw_length)?;
        self.append(blob_type, id, raw_length, |buf| {
            for part in parts {
                buf.extend_from_slice(part);
            }
        })
    }

    fn append(
        &mut self,
        blob_type: BlobType,
        id: Id,
        raw_length: u32,
        write_plaintext: impl FnOnce(&mut Vec<u8>),
    ) -> Result<u32, FormatError> {
        let offset = self.buf.len();
        let counter = self.entries.len() as u64;
        self.buf.extend_from_slice(&counter_nonce(counter));
        let plain_start = self.buf.len();
        write_plaintext(&mut self.buf);
        if let Err(e) =
            self.subkey
                .seal_in_place(&mut self.buf, plain_start, &blob_aad(blob_type, &id))
        {
            self.buf.truncate(offset);
            return Err(e);
        }
        let too_big = |what| FormatError::TooLarge {
            what,
            size: self.buf.len() as u64,
            limit: u32::MAX.into(),
        };
        let offset32 = u32::try_from(offset).map_err(|_| too_big("pack"))?;
        let length = u32::try_from(self.buf.len() - offset).map_err(|_| too_big("blob record"))?;
        self.entries.push(PackEntry {
            blob_type,
            id,
            offset: offset32,
            length,
            raw_length,
        });
        self.raw_bytes += u64::from(raw_length);
        Ok(length)
    }

    /// Seals the trailer and returns the finished pack.
    pub fn finish(mut self) -> Result<FinishedPack, FormatError> {
        let mut table = Vec::with_capacity(4 + self.entries.len() * ENTRY_LEN);
        table.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            e.encode_into(&mut table);
        }
        let header = self.buf[..PACK_HEADER_LEN].to_vec();
        let sealed = self
            .subkey
            .seal(counter_nonce(TRAILER_COUNTER), &header, &table)?;
        self.buf.extend_from_slice(&sealed);
        self.buf
            .extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(&TRAILER_MAGIC);
        Ok(FinishedPack {
            id: Id::of_pack(&self.buf),
            salt: self.salt,
            bytes: self.buf,
            entries: self.entries,
            raw_bytes: self.raw_bytes,
        })
    }
}

/// Reads the entry table of a complete pack (used by `check --read-data`
/// and index rebuilds).
pub fn read_trailer(
    key: &MasterKey,
    pack: &[u8],
) -> Result<(PackHeader, Vec<PackEntry>), FormatError> {
    let header = PackHeader::parse(pack)?;
    if pack.len() < PACK_HEADER_LEN + FOOTER_LEN {
        return Err(FormatError::Truncated {
            what: "pack",
            needed: PACK_HEADER_LEN + FOOTER_LEN - pack.len(),
        });
    }
    let footer = &pack[pack.len() - FOOTER_LEN..];
    if footer[4..] != TRAILER_MAGIC {
        return Err(FormatError::BadMagic {
            what: "pack trailer",
        });
    }
    let mut len_bytes = [0u8; 4];
    len_bytes.copy_from_slice(&footer[..4]);
    let tlen = u32::from_le_bytes(len_bytes) as usize;
    let body_end = pack.len() - FOOTER_LEN;
    if tlen > body_end - PACK_HEADER_LEN || tlen < SEAL_OVERHEAD {
        return Err(FormatError::Invalid {
            what: "pack trailer",
            reason: format!(
                "trailer length {tlen} does not fit in a pack of {} bytes",
                pack.len()
            ),
        });
    }
    let sealed = &pack[body_end - tlen..body_end];
    if sealed[..NONCE_LEN] != counter_nonce(TRAILER_COUNTER) {
        return Err(FormatError::Invalid {
            what: "pack trailer",
            reason: "unexpected trailer nonce".into(),
        });
    }
    let table = key
        .subkey(&header.salt)
        .open("pack trailer", &pack[..PACK_HEADER_LEN], sealed)?;
    let entries = decode_entry_table(&table)?;
    let limit = (body_end - tlen) as u64;
    if let Some(bad) = entries.iter().find(|e| e.end() > limit) {
        return Err(FormatError::Invalid {
            what: "pack trailer",
            reason: format!("blob {} extends past the blob area", bad.id.short()),
        });
    }
    Ok((header, entries))
}

/// Decodes a trailer's entry table (count followed by entries).
pub fn decode_entry_table(table: &[u8]) -> Result<Vec<PackEntry>, FormatError> {
    let mut c = Cursor::new(table, "pack trailer");
    let n = c.count(ENTRY_LEN)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(PackEntry::decode(&mut c)?);
    }
    c.finish()?;
    Ok(out)
}

/// Decrypts, decompresses and verifies one blob record.
///
/// `record` is exactly the entry's `length` bytes read at its offset; `salt`
/// is the pack's salt (from the index or the pack header).
pub fn open_blob(
    key: &MasterKey,
    salt: &[u8; SALT_LEN],
    entry: &PackEntry,
    record: &[u8],
) -> Result<Vec<u8>, FormatError> {
    open_blob_with(&key.subkey(salt), key, entry, record)
}

/// Like [`open_blob`] with the pack's subkey already derived. A delta blob
/// cannot be decoded on its own: open it with [`open_record`] and finish it
/// with [`decode_delta_blob`] and its base's content.
pub fn open_blob_with(
    subkey: &SubKey,
    key: &MasterKey,
    entry: &PackEntry,
    record: &[u8],
) -> Result<Vec<u8>, FormatError> {
    let encoded = open_record(subkey, entry, record)?;
    if entry.blob_type == BlobType::Delta {
        return Err(FormatError::Invalid {
            what: "blob",
            reason: "a delta blob needs its base to be decoded".into(),
        });
    }
    let data = compress::decode("blob", &encoded, entry.raw_length as usize)?;
    verify_id(entry, key.id_key().blob_id(entry.blob_type, &data))?;
    Ok(data)
}

/// Decrypts one blob record and returns its encoded payload (tag byte and
/// body), authenticated but not yet decoded.
pub fn open_record(
    subkey: &SubKey,
    entry: &PackEntry,
    record: &[u8],
) -> Result<Vec<u8>, FormatError> {
    if record.len() != entry.length as usize {
        return Err(FormatError::Truncated {
            what: "blob",
            needed: (entry.length as usize).saturating_sub(record.len()),
        });
    }
    subkey.open("blob", &blob_aad(entry.blob_type, &entry.id), record)
}

/// Decodes the payload of a delta blob (from [`open_record`]) with the
/// content of its base (the data blob [`compress::delta_base`] names) and
/// verifies the result against the blob's id.
pub fn decode_delta_blob(
    key: &MasterKey,
    entry: &PackEntry,
    encoded: &[u8],
    base: &[u8],
) -> Result<Vec<u8>, FormatError> {
    let base_id = compress::delta_base(encoded)?.ok_or(FormatError::Invalid {
        what: "delta blob",
        reason: "its payload is not a delta".into(),
    })?;
    let data = compress::decode_delta("delta blob", encoded, base, entry.raw_length as usize)?;
    verify_id(entry, key.id_key().delta_blob_id(&base_id, &data))?;
    Ok(data)
}

fn verify_id(entry: &PackEntry, actual: Id) -> Result<(), FormatError> {
    if actual != entry.id {
        return Err(FormatError::IdMismatch {
            what: "blob",
            expected: entry.id,
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::Compression;

    fn build(key: &MasterKey, blobs: &[&[u8]]) -> FinishedPack {
        let mut enc = Encoder::new(Compression::DEFAULT).unwrap_or_else(|e| panic!("{e}"));
        let mut p = PackBuilder::new(key, 1024).unwrap_or_else(|e| panic!("{e}"));
        for b in blobs {
            let id = key.id_key().blob_id(BlobType::Data, b);
            p.add(&mut enc, BlobType::Data, id, b)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        p.finish().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn round_trip_blobs_and_trailer() {
        let key = MasterKey::from_bytes(&[5; 64]);
        let big = vec![7u8; 100_000];
        let blobs: Vec<&[u8]> = vec![b"", b"a", &big, b"hello world"];
        let pack = build(&key, &blobs);
        assert_eq!(pack.id, Id::of_pack(&pack.bytes));
        let (header, entries) = read_trailer(&key, &pack.bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(header.salt, pack.salt);
        assert_eq!(entries, pack.entries);
        for (e, b) in entries.iter().zip(&blobs) {
            let rec = &pack.bytes[e.offset as usize..e.end() as usize];
            let data = open_blob(&key, &pack.salt, e, rec).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&data, b);
        }
    }

    #[test]
    fn detects_flips_truncation_and_wrong_keys() {
        let key = MasterKey::from_bytes(&[5; 64]);
        let pack = build(&key, &[b"some data", b"more data"]);
        let e = pack.entries[1];
        let rec = &pack.bytes[e.offset as usize..e.end() as usize];
        for i in 0..rec.len() {
            let mut bad = rec.to_vec();
            bad[i] ^= 1;
            assert!(open_blob(&key, &pack.salt, &e, &bad).is_err());
        }
        assert!(open_blob(&key, &pack.salt, &e, &rec[1..]).is_err());
        let other = MasterKey::from_bytes(&[6; 64]);
        assert!(open_blob(&other, &pack.salt, &e, rec).is_err());
        // Swapping the entry's id is caught by the associated data.
        let mut swapped = e;
        swapped.id = pack.entries[0].id;
        assert!(open_blob(&key, &pack.salt, &swapped, rec).is_err());
        for cut in [0, 10, 40, pack.bytes.len() - 1] {
            assert!(read_trailer(&key, &pack.bytes[..cut]).is_err());
        }
        let mut bad = pack.bytes.clone();
        let n = bad.len();
        bad[n - 20] ^= 1;
        assert!(read_trailer(&key, &bad).is_err());
    }

    #[test]
    fn pre_encoded_blobs_read_back_like_any_other() {
        let key = MasterKey::from_bytes(&[5; 64]);
        let mut enc = Encoder::new(Compression::DEFAULT).unwrap_or_else(|e| panic!("{e}"));
        let data = b"pre-encoded ".repeat(1000);
        let mut encoded = Vec::new();
        enc.encode_into(&data, &mut encoded);
        let id = key.id_key().blob_id(BlobType::Data, &data);
        let mut p = PackBuilder::new(&key, 1024).unwrap_or_else(|e| panic!("{e}"));
        p.add_encoded(BlobType::Data, id, data.len(), &encoded)
            .unwrap_or_else(|e| panic!("{e}"));
        let pack = p.finish().unwrap_or_else(|e| panic!("{e}"));
        let e = pack.entries[0];
        let rec = &pack.bytes[e.offset as usize..e.end() as usize];
        assert_eq!(open_blob(&key, &pack.salt, &e, rec).ok(), Some(data));
    }

    #[test]
    fn delta_blobs_open_only_with_their_base_and_verify_their_id() {
        let key = MasterKey::from_bytes(&[6; 64]);
        let base = b"1\talice\t100\n2\tbob\t200\n".repeat(500);
        let mut data = base.clone();
        data[10] = b'X';
        let base_id = key.id_key().blob_id(BlobType::Data, &base);
        let id = key.id_key().delta_blob_id(&base_id, &data);
        let encoded =
            compress::encode_delta(3, &base_id, &base, &data).unwrap_or_else(|e| panic!("{e}"));
        let mut p = PackBuilder::new(&key, 1024).unwrap_or_else(|e| panic!("{e}"));
        p.add_encoded(BlobType::Delta, id, data.len(), &encoded)
            .unwrap_or_else(|e| panic!("{e}"));
        let pack = p.finish().unwrap_or_else(|e| panic!("{e}"));
        let e = pack.entries[0];
        assert_eq!(e.blob_type, BlobType::Delta);
        let rec = &pack.bytes[e.offset as usize..e.end() as usize];
        assert!(open_blob(&key, &pack.salt, &e, rec).is_err());
        let subkey = key.subkey(&pack.salt);
        let opened = open_record(&subkey, &e, rec).unwrap_or_default();
        assert_eq!(compress::delta_base(&opened).ok().flatten(), Some(base_id));
        assert_eq!(
            decode_delta_blob(&key, &e, &opened, &base).ok(),
            Some(data.clone())
        );
        // A different base of the same length decodes to other bytes: refused by the id.
        let other: Vec<u8> = base
            .iter()
            .map(|&b| if b == b'a' { b'e' } else { b })
            .collect();
        assert!(decode_delta_blob(&key, &e, &opened, &other).is_err());
        // Stored under the data type, the same payload is refused.
        let mut as_data = e;
        as_data.blob_type = BlobType::Data;
        assert!(open_blob(&key, &pack.salt, &as_data, rec).is_err());
    }

    #[test]
    fn entry_table_rejects_forged_counts() {
        let mut t = Vec::new();
        t.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_entry_table(&t).is_err());
        assert!(decode_entry_table(&[]).is_err());
        let ok = 0u32.to_le_bytes();
        assert_eq!(decode_entry_table(&ok).map(|v| v.len()).unwrap_or(9), 0);
    }
}
