//! Key slots: the master key wrapped under a passphrase-derived key.
//!
//! A slot is a small JSON document stored in the clear under `keys/<slot id>`.
//! Its Argon2id parameters and salt derive a 32-byte key-encryption key (KEK)
//! from the passphrase; the KEK seals the 64-byte master key with AES-256-GCM
//! (random nonce, associated data `"lifeboat key slot v1" || slot id`).
//! Adding or removing a passphrase adds or removes a slot; data is never
//! re-encrypted.

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::crypto::{MasterKey, NONCE_LEN, SubKey, random_bytes};
use crate::error::FormatError;
use crate::id::Id;

const AAD_PREFIX: &[u8] = b"lifeboat key slot v1";
const WHAT: &str = "key slot";

/// Argon2id cost parameters. Readers refuse values above the `MAX_*` limits,
/// so a forged slot cannot make `open` allocate terabytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl KdfCost {
    /// The default: 64 MiB, 3 passes, 1 lane (about a quarter second).
    pub const DEFAULT: KdfCost = KdfCost {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };
    /// Largest memory cost a reader accepts: 4 GiB.
    pub const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
    /// Largest pass count a reader accepts.
    pub const MAX_ITERATIONS: u32 = 64;
    /// Largest lane count a reader accepts.
    pub const MAX_PARALLELISM: u32 = 16;

    fn check(&self) -> Result<Params, FormatError> {
        if self.memory_kib > Self::MAX_MEMORY_KIB
            || self.iterations > Self::MAX_ITERATIONS
            || self.parallelism > Self::MAX_PARALLELISM
        {
            return Err(FormatError::Invalid {
                what: WHAT,
                reason: format!("Argon2id cost {self:?} is beyond the accepted limits"),
            });
        }
        Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
            .map_err(|e| FormatError::Kdf(e.to_string()))
    }
}

/// The KDF section of a slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kdf {
    /// Always `"argon2id"` in version 1.
    pub algorithm: String,
    /// Argon2 version number (19 = 0x13).
    pub argon2_version: u32,
    /// Cost parameters.
    #[serde(flatten)]
    pub cost: KdfCost,
    /// 32-byte salt, base64.
    pub salt: String,
}

/// One key slot as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySlot {
    /// Slot format version.
    pub version: u8,
    /// When the slot was made.
    pub created: DateTime<Utc>,
    /// Host that made it.
    pub host: String,
    /// User that made it.
    pub user: String,
    /// Free-form label (`key add --label`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// How the KEK is derived.
    pub kdf: Kdf,
    /// `nonce || ciphertext || tag` of the master key, base64.
    pub wrapped_key: String,
    /// BLAKE3 (hex) of the fields unlocking depends on (see
    /// [`KeySlot::expected_checksum`]), so a damaged slot is told apart from
    /// a wrong passphrase. Absent in slots written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

fn derive_kek(passphrase: &[u8], salt: &[u8], cost: &KdfCost) -> Result<SubKey, FormatError> {
    let params = cost.check()?;
    let mut kek = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase, salt, &mut kek)
        .map_err(|e| FormatError::Kdf(e.to_string()))?;
    Ok(SubKey::new(&kek))
}

fn aad(slot_id: &Id) -> Vec<u8> {
    let mut a = AAD_PREFIX.to_vec();
    a.extend_from_slice(slot_id.as_bytes());
    a
}

/// Who and where a slot is made, recorded for `key list`.
#[derive(Clone, Debug, Default)]
pub struct SlotOrigin {
    /// Host name.
    pub host: String,
    /// User name.
    pub user: String,
    /// Optional label.
    pub label: Option<String>,
}

impl KeySlot {
    /// Wraps `master` under `passphrase` in a new slot named `slot_id`.
    pub fn wrap(
        master: &MasterKey,
        passphrase: &[u8],
        slot_id: &Id,
        cost: KdfCost,
        origin: SlotOrigin,
        now: DateTime<Utc>,
    ) -> Result<Self, FormatError> {
        let salt: [u8; 32] = random_bytes()?;
        let kek = derive_kek(passphrase, &salt, &cost)?;
        let nonce: [u8; NONCE_LEN] = random_bytes()?;
        let sealed = kek.seal(nonce, &aad(slot_id), &master.to_bytes())?;
        let mut slot = Self {
            version: 1,
            created: now,
            host: origin.host,
            user: origin.user,
            label: origin.label,
            kdf: Kdf {
                algorithm: "argon2id".into(),
                argon2_version: 0x13,
                cost,
                salt: B64.encode(salt),
            },
            wrapped_key: B64.encode(sealed),
            checksum: None,
        };
        slot.checksum = Some(slot.expected_checksum());
        Ok(slot)
    }

    /// The checksum of the fields unlocking depends on: BLAKE3 of
    /// `"lifeboat key slot checksum v1" || 0 || algorithm || 0 ||
    /// argon2_version || memory_kib || iterations || parallelism (u32 LE
    /// each) || salt || 0 || wrapped_key` (the base64 text as stored).
    pub fn expected_checksum(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(b"lifeboat key slot checksum v1\0");
        h.update(self.kdf.algorithm.as_bytes());
        h.update(b"\0");
        for v in [
            self.kdf.argon2_version,
            self.kdf.cost.memory_kib,
            self.kdf.cost.iterations,
            self.kdf.cost.parallelism,
        ] {
            h.update(&v.to_le_bytes());
        }
        h.update(self.kdf.salt.as_bytes());
        h.update(b"\0");
        h.update(self.wrapped_key.as_bytes());
        h.finalize().to_hex().to_string()
    }

    /// Unwraps the master key. A wrong passphrase yields
    /// [`FormatError::Authentication`].
    pub fn unwrap_key(&self, passphrase: &[u8], slot_id: &Id) -> Result<MasterKey, FormatError> {
        crate::check_version(WHAT, self.version)?;
        if self.kdf.algorithm != "argon2id" || self.kdf.argon2_version != 0x13 {
            return Err(FormatError::Invalid {
                what: WHAT,
                reason: format!(
                    "unsupported KDF {} version {}",
                    self.kdf.algorithm, self.kdf.argon2_version
                ),
            });
        }
        let salt = decode_b64(&self.kdf.salt)?;
        let sealed = decode_b64(&self.wrapped_key)?;
        let kek = derive_kek(passphrase, &salt, &self.kdf.cost)?;
        let plain = kek.open(WHAT, &aad(slot_id), &sealed)?;
        let bytes: [u8; MasterKey::LEN] =
            plain
                .as_slice()
                .try_into()
                .map_err(|_| FormatError::Invalid {
                    what: WHAT,
                    reason: format!("wrapped key is {} bytes, expected 64", plain.len()),
                })?;
        Ok(MasterKey::from_bytes(&bytes))
    }

    /// Serializes the slot.
    pub fn to_json(&self) -> Result<Vec<u8>, FormatError> {
        crate::error::encode_json("key slot", self, true)
    }

    /// Parses a stored slot.
    pub fn from_json(bytes: &[u8]) -> Result<Self, FormatError> {
        let slot: KeySlot = serde_json::from_slice(bytes)
            .map_err(|source| FormatError::Json { what: WHAT, source })?;
        crate::check_version(WHAT, slot.version)?;
        if let Some(sum) = &slot.checksum
            && *sum != slot.expected_checksum()
        {
            return Err(FormatError::Invalid {
                what: WHAT,
                reason: "its checksum does not match its content: the slot is damaged".into(),
            });
        }
        Ok(slot)
    }
}

fn decode_b64(s: &str) -> Result<Vec<u8>, FormatError> {
    B64.decode(s).map_err(|e| FormatError::Invalid {
        what: WHAT,
        reason: format!("bad base64: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: KdfCost = KdfCost {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn wrap_unwrap_and_wrong_passphrase() {
        let mk = MasterKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let id = Id::from_bytes([1; 32]);
        let slot = KeySlot::wrap(&mk, b"pw", &id, CHEAP, SlotOrigin::default(), Utc::now())
            .unwrap_or_else(|e| panic!("{e}"));
        let parsed = KeySlot::from_json(&slot.to_json().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed, slot);
        let back = parsed
            .unwrap_key(b"pw", &id)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.to_bytes(), mk.to_bytes());
        assert!(matches!(
            parsed.unwrap_key(b"wrong", &id),
            Err(FormatError::Authentication { .. })
        ));
        // A slot copied under another name does not open.
        assert!(parsed.unwrap_key(b"pw", &Id::from_bytes([2; 32])).is_err());
        // A damaged wrapped key is damage, not a wrong passphrase.
        let text = String::from_utf8(slot.to_json().unwrap_or_default()).unwrap_or_default();
        let mut damaged = slot.wrapped_key.clone().into_bytes();
        damaged[5] = if damaged[5] == b'A' { b'B' } else { b'A' };
        let damaged = text.replace(
            &slot.wrapped_key,
            &String::from_utf8(damaged).unwrap_or_default(),
        );
        let e = KeySlot::from_json(damaged.as_bytes())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("damaged"), "{e}");
        // Slots written before the checksum existed still open.
        let mut old = slot.clone();
        old.checksum = None;
        let old = KeySlot::from_json(&old.to_json().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(old.unwrap_key(b"pw", &id).is_ok());
    }

    #[test]
    fn refuses_absurd_costs_and_newer_versions() {
        let mk = MasterKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let id = Id::from_bytes([1; 32]);
        let mut slot = KeySlot::wrap(&mk, b"pw", &id, CHEAP, SlotOrigin::default(), Utc::now())
            .unwrap_or_else(|e| panic!("{e}"));
        slot.kdf.cost.memory_kib = u32::MAX;
        assert!(slot.unwrap_key(b"pw", &id).is_err());
        slot.version = 9;
        assert!(matches!(
            KeySlot::from_json(&slot.to_json().unwrap_or_default()),
            Err(FormatError::UnsupportedVersion { .. })
        ));
        assert!(KeySlot::from_json(b"{not json").is_err());
    }
}
