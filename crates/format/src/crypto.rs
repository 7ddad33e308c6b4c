//! Encryption: the master key, per-unit subkeys and AES-256-GCM sealing.
//!
//! Construction (docs/FORMAT.md, "Crypto"): every sealed unit (a pack, or a
//! stand-alone object) carries a fresh random 32-byte salt. Its subkey is
//! `BLAKE3-derive_key(SUBKEY_CONTEXT, K_enc || salt)`. Messages under one
//! subkey use counter nonces 0, 1, 2, …, so a nonce is never repeated under a
//! key and each key encrypts at most a few thousand messages, far below the
//! AES-GCM per-key limits.

use std::fmt;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};

use crate::error::FormatError;
use crate::id::IdKey;

/// BLAKE3 key-derivation context for subkeys. Part of the format.
pub const SUBKEY_CONTEXT: &str = "lifeboat 2026-11-22 v1 aes-256-gcm subkey";

/// Length of a GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Length of a GCM tag.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed message adds to its plaintext (nonce + tag).
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Length of a subkey salt.
pub const SALT_LEN: usize = 32;

/// Fills an array from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], FormatError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| FormatError::Random(e.to_string()))?;
    Ok(out)
}

/// The repository's master key: 32 bytes for encryption, 32 for ids.
///
/// Generated once at `init`, never stored in the clear; key slots wrap it.
#[derive(Clone)]
pub struct MasterKey {
    enc: [u8; 32],
    id: [u8; 32],
}

impl MasterKey {
    /// Length of the serialized key.
    pub const LEN: usize = 64;

    /// A new random key.
    pub fn generate() -> Result<Self, FormatError> {
        Ok(Self {
            enc: random_bytes()?,
            id: random_bytes()?,
        })
    }

    /// Rebuilds a key from its 64 serialized bytes.
    pub fn from_bytes(bytes: &[u8; 64]) -> Self {
        let mut enc = [0u8; 32];
        let mut id = [0u8; 32];
        enc.copy_from_slice(&bytes[..32]);
        id.copy_from_slice(&bytes[32..]);
        Self { enc, id }
    }

    /// The 64 serialized bytes (only ever written inside a key slot).
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.enc);
        out[32..].copy_from_slice(&self.id);
        out
    }

    /// The key for blob and object ids.
    pub fn id_key(&self) -> IdKey {
        IdKey::new(self.id)
    }

    /// The subkey for the unit identified by `salt`.
    pub fn subkey(&self, salt: &[u8; SALT_LEN]) -> SubKey {
        let mut material = [0u8; 64];
        material[..32].copy_from_slice(&self.enc);
        material[32..].copy_from_slice(salt);
        SubKey::new(&blake3::derive_key(SUBKEY_CONTEXT, &material))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<secret>)")
    }
}

/// The 12-byte nonce for message number `counter` under a subkey.
pub fn counter_nonce(counter: u64) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    n
}

/// An AES-256-GCM key ready to seal and open messages.
#[derive(Clone)]
pub struct SubKey(Aes256Gcm);

impl SubKey {
    /// Builds the cipher for a 32-byte key.
    pub fn new(key: &[u8; 32]) -> Self {
        Self(Aes256Gcm::new(&(*key).into()))
    }

    /// Appends `nonce || ciphertext || tag` for `plaintext` to `out`.
    ///
    /// `plaintext_start` is the offset in `out` where the plaintext already
    /// sits: the caller writes the plaintext in place and this encrypts it
    /// there, so no copy is made. The nonce must already be written just
    /// before it, at `plaintext_start - NONCE_LEN`.
    pub fn seal_in_place(
        &self,
        out: &mut Vec<u8>,
        plaintext_start: usize,
        aad: &[u8],
    ) -> Result<(), FormatError> {
        let nonce_start = plaintext_start
            .checked_sub(NONCE_LEN)
            .ok_or(FormatError::Invalid {
                what: "seal",
                reason: "no room for the nonce".into(),
            })?;
        let mut nonce_bytes = [0u8; NONCE_LEN];
        nonce_bytes.copy_from_slice(&out[nonce_start..plaintext_start]);
        let nonce = Nonce::from(nonce_bytes);
        let tag = self
            .0
            .encrypt_inout_detached(&nonce, aad, (&mut out[plaintext_start..]).into())
            .map_err(|_| FormatError::Invalid {
                what: "seal",
                reason: "message too long for AES-GCM".into(),
            })?;
        out.extend_from_slice(tag.as_slice());
        Ok(())
    }

    /// Seals `plaintext` with `nonce`, returning `nonce || ciphertext || tag`.
    pub fn seal(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, FormatError> {
        let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        self.seal_in_place(&mut out, NONCE_LEN, aad)?;
        Ok(out)
    }

    /// Opens `nonce || ciphertext || tag`, returning the plaintext.
    pub fn open(
        &self,
        what: &'static str,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, FormatError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(FormatError::Truncated {
                what,
                needed: SEAL_OVERHEAD - sealed.len(),
            });
        }
        let (nonce_bytes, rest) = sealed.split_at(NONCE_LEN);
        let (ct, tag_bytes) = rest.split_at(rest.len() - TAG_LEN);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(nonce_bytes);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(tag_bytes);
        let mut buf = ct.to_vec();
        self.0
            .decrypt_inout_detached(
                &Nonce::from(nonce),
                aad,
                (&mut buf[..]).into(),
                &Tag::from(tag),
            )
            .map_err(|_| FormatError::Authentication { what })?;
        Ok(buf)
    }
}

impl fmt::Debug for SubKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubKey(<secret>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper_detection() {
        let mk = MasterKey::from_bytes(&[3; 64]);
        let k = mk.subkey(&[9; 32]);
        let sealed = k
            .seal(counter_nonce(5), b"aad", b"secret")
            .unwrap_or_default();
        assert_eq!(sealed.len(), 6 + SEAL_OVERHEAD);
        assert_eq!(k.open("t", b"aad", &sealed).unwrap_or_default(), b"secret");
        assert!(k.open("t", b"other aad", &sealed).is_err());
        let mut bad = sealed.clone();
        bad[NONCE_LEN + 1] ^= 1;
        assert!(k.open("t", b"aad", &bad).is_err());
        let other = mk.subkey(&[8; 32]);
        assert!(other.open("t", b"aad", &sealed).is_err());
        assert!(k.open("t", b"aad", &sealed[..10]).is_err());
    }

    #[test]
    fn master_key_bytes_round_trip() {
        let mk = MasterKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let again = MasterKey::from_bytes(&mk.to_bytes());
        assert_eq!(again.to_bytes(), mk.to_bytes());
        assert_eq!(format!("{mk:?}"), "MasterKey(<secret>)");
    }

    #[test]
    fn counter_nonces_are_distinct() {
        assert_ne!(counter_nonce(0), counter_nonce(1));
        assert_eq!(&counter_nonce(1)[..4], &[0, 0, 0, 0]);
    }
}
