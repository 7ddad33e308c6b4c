//! The sealed envelope for stand-alone objects: config, index files, snapshots.
//!
//! ```text
//! offset size field
//!      0    4 magic "LBOB"
//!      4    1 format version (1)
//!      5    1 kind (ObjectKind)
//!      6    2 reserved, zero
//!      8    8 decoded payload length, u64 little-endian
//!     16   32 salt (subkey derivation)
//!     48   12 nonce (counter nonce 0)
//!     60    n ciphertext of the encoded payload (tag byte + raw/zstd bytes)
//!   60+n   16 GCM tag
//! ```
//! Associated data: the 48 header bytes followed by the object's name (its
//! 32-byte id, or the ASCII name `config`), so an object cannot be moved to
//! another name or kind, and its header cannot be altered, without detection.

use crate::compress::{self, Encoder};
use crate::crypto::{MasterKey, NONCE_LEN, SALT_LEN, SEAL_OVERHEAD, counter_nonce, random_bytes};
use crate::cursor::Cursor;
use crate::error::FormatError;
use crate::id::Id;

/// Magic bytes of a sealed object.
pub const OBJECT_MAGIC: [u8; 4] = *b"LBOB";
/// Length of the clear header.
pub const OBJECT_HEADER_LEN: usize = 48;
/// Largest decoded payload a reader accepts (1 GiB).
pub const MAX_OBJECT_SIZE: u64 = 1 << 30;

/// What a stand-alone object holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// The repository config (`config`).
    Config,
    /// An index file (`index/<id>`).
    Index,
    /// A snapshot (`snapshots/<id>`).
    Snapshot,
    /// A PostgreSQL WAL file (`wal/<system id>/<file name>/<summary>`).
    Wal,
    /// A pin (legal hold) on a snapshot (`pins/<id>`).
    Pin,
    /// A prune's deletion plan: packs marked for deletion (`prune/<id>`).
    DeletionPlan,
    /// A backup in progress, for prune to wait on (`running/<id>`).
    Running,
    /// A drill, check or recovery report (`reports/<id>`).
    Report,
    /// An entry of the erasure ledger (`erasures/<sequence number>`).
    Erasure,
    /// An entry of an audit log (`audit/<log>/<sequence number>`).
    Audit,
    /// A checkpoint of an audit log's head (`audit/<log>/head`, and
    /// `audit/<log>/checkpoints/<sequence number>`).
    AuditCheckpoint,
}

impl ObjectKind {
    /// The byte stored in the header.
    pub const fn to_byte(self) -> u8 {
        match self {
            ObjectKind::Config => 1,
            ObjectKind::Index => 2,
            ObjectKind::Snapshot => 3,
            ObjectKind::Wal => 4,
            ObjectKind::Pin => 5,
            ObjectKind::DeletionPlan => 6,
            ObjectKind::Running => 7,
            ObjectKind::Report => 8,
            ObjectKind::Erasure => 9,
            ObjectKind::Audit => 10,
            ObjectKind::AuditCheckpoint => 11,
        }
    }

    /// Parses the header byte.
    pub fn from_byte(b: u8) -> Result<Self, FormatError> {
        match b {
            1 => Ok(ObjectKind::Config),
            2 => Ok(ObjectKind::Index),
            3 => Ok(ObjectKind::Snapshot),
            4 => Ok(ObjectKind::Wal),
            5 => Ok(ObjectKind::Pin),
            6 => Ok(ObjectKind::DeletionPlan),
            7 => Ok(ObjectKind::Running),
            8 => Ok(ObjectKind::Report),
            9 => Ok(ObjectKind::Erasure),
            10 => Ok(ObjectKind::Audit),
            11 => Ok(ObjectKind::AuditCheckpoint),
            other => Err(FormatError::Invalid {
                what: "object",
                reason: format!("unknown object kind {other}"),
            }),
        }
    }

    /// Name for messages.
    pub const fn name(self) -> &'static str {
        match self {
            ObjectKind::Config => "config",
            ObjectKind::Index => "index",
            ObjectKind::Snapshot => "snapshot",
            ObjectKind::Wal => "WAL file",
            ObjectKind::Pin => "pin",
            ObjectKind::DeletionPlan => "deletion plan",
            ObjectKind::Running => "backup-in-progress record",
            ObjectKind::Report => "report",
            ObjectKind::Erasure => "erasure ledger entry",
            ObjectKind::Audit => "audit log entry",
            ObjectKind::AuditCheckpoint => "audit log checkpoint",
        }
    }
}

/// The parsed clear header of a sealed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectHeader {
    /// Format version.
    pub version: u8,
    /// Kind of object.
    pub kind: ObjectKind,
    /// Decoded payload length.
    pub decoded_len: u64,
    /// Subkey salt.
    pub salt: [u8; SALT_LEN],
}

impl ObjectHeader {
    /// Parses and validates the header at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut c = Cursor::new(bytes, "object header");
        if c.array::<4>()? != OBJECT_MAGIC {
            return Err(FormatError::BadMagic { what: "object" });
        }
        let version = c.u8()?;
        crate::check_version("object", version)?;
        let kind = ObjectKind::from_byte(c.u8()?)?;
        let _reserved = c.array::<2>()?;
        let decoded_len = c.u64()?;
        if decoded_len > MAX_OBJECT_SIZE {
            return Err(FormatError::TooLarge {
                what: "object",
                size: decoded_len,
                limit: MAX_OBJECT_SIZE,
            });
        }
        let salt = c.array::<SALT_LEN>()?;
        Ok(Self {
            version,
            kind,
            decoded_len,
            salt,
        })
    }

    fn encode(&self) -> [u8; OBJECT_HEADER_LEN] {
        let mut h = [0u8; OBJECT_HEADER_LEN];
        h[..4].copy_from_slice(&OBJECT_MAGIC);
        h[4] = self.version;
        h[5] = self.kind.to_byte();
        h[8..16].copy_from_slice(&self.decoded_len.to_le_bytes());
        h[16..48].copy_from_slice(&self.salt);
        h
    }
}

/// Seals `payload` as an object of `kind` stored under `name`.
pub fn seal_object(
    key: &MasterKey,
    encoder: &mut Encoder,
    kind: ObjectKind,
    name: &[u8],
    payload: &[u8],
) -> Result<Vec<u8>, FormatError> {
    let header = ObjectHeader {
        version: crate::FORMAT_VERSION,
        kind,
        decoded_len: payload.len() as u64,
        salt: random_bytes()?,
    }
    .encode();
    let mut out = Vec::with_capacity(OBJECT_HEADER_LEN + SEAL_OVERHEAD + payload.len() / 2);
    out.extend_from_slice(&header);
    out.extend_from_slice(&counter_nonce(0));
    let plain_start = out.len();
    encoder.encode_into(payload, &mut out);
    let mut salt = [0u8; SALT_LEN];
    salt.copy_from_slice(&header[16..48]);
    key.subkey(&salt)
        .seal_in_place(&mut out, plain_start, &aad(&header, name))?;
    Ok(out)
}

/// Opens an object of `kind` stored under `name`, returning its payload.
pub fn open_object(
    key: &MasterKey,
    kind: ObjectKind,
    name: &[u8],
    bytes: &[u8],
) -> Result<Vec<u8>, FormatError> {
    let header = ObjectHeader::parse(bytes)?;
    if header.kind != kind {
        return Err(FormatError::Invalid {
            what: kind.name(),
            reason: format!(
                "object holds a {}, not a {}",
                header.kind.name(),
                kind.name()
            ),
        });
    }
    let sealed = &bytes[OBJECT_HEADER_LEN..];
    if sealed.len() < NONCE_LEN {
        return Err(FormatError::Truncated {
            what: kind.name(),
            needed: NONCE_LEN - sealed.len(),
        });
    }
    let encoded = key.subkey(&header.salt).open(
        kind.name(),
        &aad(&bytes[..OBJECT_HEADER_LEN], name),
        sealed,
    )?;
    compress::decode(kind.name(), &encoded, header.decoded_len as usize)
}

/// Opens a content-addressed object and checks its payload hashes to `id`.
pub fn open_object_with_id(
    key: &MasterKey,
    kind: ObjectKind,
    id: &Id,
    bytes: &[u8],
) -> Result<Vec<u8>, FormatError> {
    let payload = open_object(key, kind, id.as_bytes(), bytes)?;
    let actual = key.id_key().object_id(kind.to_byte(), &payload);
    if &actual != id {
        return Err(FormatError::IdMismatch {
            what: kind.name(),
            expected: *id,
            actual,
        });
    }
    Ok(payload)
}

/// Seals a content-addressed object, returning its id and bytes.
pub fn seal_object_with_id(
    key: &MasterKey,
    encoder: &mut Encoder,
    kind: ObjectKind,
    payload: &[u8],
) -> Result<(Id, Vec<u8>), FormatError> {
    let id = key.id_key().object_id(kind.to_byte(), payload);
    let bytes = seal_object(key, encoder, kind, id.as_bytes(), payload)?;
    Ok((id, bytes))
}

fn aad(header: &[u8], name: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(header.len() + name.len());
    a.extend_from_slice(header);
    a.extend_from_slice(name);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::Compression;

    fn setup() -> (MasterKey, Encoder) {
        (
            MasterKey::from_bytes(&[4; 64]),
            Encoder::new(Compression::DEFAULT).unwrap_or_else(|e| panic!("{e}")),
        )
    }

    #[test]
    fn round_trip_with_id() {
        let (k, mut e) = setup();
        let payload = b"{\"hello\": \"world\"}".repeat(50);
        let (id, bytes) = seal_object_with_id(&k, &mut e, ObjectKind::Snapshot, &payload)
            .unwrap_or_else(|e| panic!("{e}"));
        let back = open_object_with_id(&k, ObjectKind::Snapshot, &id, &bytes)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, payload);
    }

    #[test]
    fn detects_rename_kind_change_truncation_and_flips() {
        let (k, mut e) = setup();
        let (id, bytes) = seal_object_with_id(&k, &mut e, ObjectKind::Index, b"payload")
            .unwrap_or_else(|e| panic!("{e}"));
        let other = Id::from_bytes([0; 32]);
        assert!(open_object_with_id(&k, ObjectKind::Index, &other, &bytes).is_err());
        assert!(open_object_with_id(&k, ObjectKind::Snapshot, &id, &bytes).is_err());
        for cut in [0, 3, 47, 50, bytes.len() - 1] {
            assert!(open_object_with_id(&k, ObjectKind::Index, &id, &bytes[..cut]).is_err());
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(
                open_object_with_id(&k, ObjectKind::Index, &id, &bad).is_err(),
                "flip at {i} went unnoticed"
            );
        }
    }

    #[test]
    fn refuses_newer_version_and_huge_sizes() {
        let (k, mut e) = setup();
        let bytes = seal_object(&k, &mut e, ObjectKind::Config, b"config", b"{}")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut newer = bytes.clone();
        newer[4] = 2;
        assert!(matches!(
            ObjectHeader::parse(&newer),
            Err(FormatError::UnsupportedVersion { found: 2, .. })
        ));
        let mut huge = bytes.clone();
        huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            ObjectHeader::parse(&huge),
            Err(FormatError::TooLarge { .. })
        ));
    }
}
