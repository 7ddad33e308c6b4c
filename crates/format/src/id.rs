//! Content ids: keyed BLAKE3 for blobs and objects, plain BLAKE3 for packs.
//!
//! Blob ids are keyed with a secret from the master key so that whoever holds
//! the storage cannot confirm that a repository contains a known file by
//! hashing it. Pack ids hash the pack's *ciphertext*, so they reveal nothing
//! and let anyone verify a pack file without the key.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::FormatError;

/// A 32-byte id, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id([u8; 32]);

impl Id {
    /// Length of an id in bytes.
    pub const LEN: usize = 32;

    /// Wraps raw bytes as an id.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The full 64-digit hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The 8-digit prefix people see in listings.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// Plain BLAKE3 of `data`: the id of a pack file (hash of its bytes).
    pub fn of_pack(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }

    /// A fresh random id (key slot names).
    pub fn random() -> Result<Self, FormatError> {
        Ok(Self(crate::crypto::random_bytes()?))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

impl FromStr for Id {
    type Err = FormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|e| FormatError::Invalid {
            what: "id",
            reason: format!("{s:?} is not 64 hex digits: {e}"),
        })?;
        Ok(Self(out))
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What a blob holds. Stored as one byte in pack trailers and indexes, and
/// mixed into the blob id so equal bytes of different types get different ids.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum BlobType {
    /// File content (a chunk).
    Data,
    /// A directory listing ([`crate::tree::Tree`]).
    Tree,
    /// A chunk stored as the difference to another data blob (its base),
    /// for table data that changes a little from one backup to the next.
    /// Its id covers the base's id and the chunk's content.
    Delta,
}

impl BlobType {
    /// The byte stored on disk.
    pub const fn to_byte(self) -> u8 {
        match self {
            BlobType::Data => 1,
            BlobType::Tree => 2,
            BlobType::Delta => 3,
        }
    }

    /// Parses the stored byte.
    pub fn from_byte(b: u8) -> Result<Self, FormatError> {
        match b {
            1 => Ok(BlobType::Data),
            2 => Ok(BlobType::Tree),
            3 => Ok(BlobType::Delta),
            other => Err(FormatError::Invalid {
                what: "blob type",
                reason: format!("unknown blob type {other}"),
            }),
        }
    }

    /// A lowercase name for messages.
    pub const fn name(self) -> &'static str {
        match self {
            BlobType::Data => "data",
            BlobType::Tree => "tree",
            BlobType::Delta => "delta",
        }
    }
}

/// The secret key of keyed BLAKE3, part of the master key.
#[derive(Clone)]
pub struct IdKey([u8; 32]);

impl IdKey {
    /// Wraps the 32 secret bytes.
    pub const fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The id of a blob: keyed BLAKE3 over the type byte followed by the content.
    pub fn blob_id(&self, blob_type: BlobType, content: &[u8]) -> Id {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(&[blob_type.to_byte()]);
        h.update(content);
        Id(*h.finalize().as_bytes())
    }

    /// The id of a chunk stored as a delta against the data blob `base`:
    /// keyed BLAKE3 over the delta type byte, the base's id and the content.
    /// The same content against another base is another blob.
    pub fn delta_blob_id(&self, base: &Id, content: &[u8]) -> Id {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(&[BlobType::Delta.to_byte()]);
        h.update(base.as_bytes());
        h.update(content);
        Id(*h.finalize().as_bytes())
    }

    /// The id of a stand-alone object: keyed BLAKE3 over the domain byte
    /// `0x80 | kind` followed by the payload (disjoint from blob type bytes).
    pub fn object_id(&self, kind_byte: u8, payload: &[u8]) -> Id {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(&[0x80 | kind_byte]);
        h.update(payload);
        Id(*h.finalize().as_bytes())
    }
}

impl fmt::Debug for IdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdKey(<secret>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let id = Id::from_bytes([0xab; 32]);
        let parsed: Id = id.to_hex().parse().unwrap_or_default();
        assert_eq!(parsed, id);
        assert_eq!(id.short(), "abababab");
        assert!("abc".parse::<Id>().is_err());
        assert!("zz".repeat(32).parse::<Id>().is_err());
    }

    #[test]
    fn keyed_ids_depend_on_key_and_type() {
        let a = IdKey::new([1; 32]);
        let b = IdKey::new([2; 32]);
        let data = b"hello";
        assert_ne!(
            a.blob_id(BlobType::Data, data),
            b.blob_id(BlobType::Data, data)
        );
        assert_ne!(
            a.blob_id(BlobType::Data, data),
            a.blob_id(BlobType::Tree, data)
        );
        assert_ne!(a.blob_id(BlobType::Data, data), a.object_id(1, data));
        assert_eq!(
            a.blob_id(BlobType::Data, data),
            a.blob_id(BlobType::Data, data)
        );
    }

    #[test]
    fn golden_blob_id() {
        // Pinned: a change here changes every id in every repository.
        let key = IdKey::new([7; 32]);
        assert_eq!(
            key.blob_id(BlobType::Data, b"lifeboat").to_hex(),
            GOLDEN_DATA_ID
        );
    }

    const GOLDEN_DATA_ID: &str = "7937ca6d638b431770303e6f16934a3d92b7154f8ee59c701265b2e5907fc574";
}
