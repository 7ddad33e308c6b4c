//! The audit log: one sealed object per recorded action
//! (`audit/<log>/<sequence number>`, kind 10), hash-chained like the erasure
//! ledger, and checkpoints of the chain's head (kind 11) that carry a keyed
//! signature an operator can keep elsewhere. A repository writes its own log
//! (`<log>` is a random id named by `audit/self`); `copy` brings the logs of
//! the repositories it copies from, each whole under its own id.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::chain::Chained;
use crate::crypto::MasterKey;
use crate::error::FormatError;

/// The key-derivation context of the checkpoint signature key.
const CHECKPOINT_CONTEXT: &str = "lifeboat 2026-11 audit checkpoint signature";

/// One recorded action: who did what, when, from where, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in its log, from 1, without gaps.
    pub seq: u64,
    /// Hash (BLAKE3, hex) of the previous entry's payload; empty for the first.
    pub prev: String,
    /// The log this entry belongs to.
    pub log: String,
    /// When the action ended (or was refused).
    pub time: DateTime<Utc>,
    /// Who: `user@host`, or a dashboard user.
    pub actor: String,
    /// From where: the host, or a dashboard client's address.
    pub from: String,
    /// What: the verb (`backup`, `restore postgres`, `prune`, `login`, …).
    pub action: String,
    /// Its arguments as given, with passwords removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// `ok`, `failed` or `refused`.
    pub outcome: String,
    /// The exit code of the command (0 when it succeeded).
    pub exit: u8,
    /// Why it failed or was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Facts about the action: the snapshot made or restored, a reason, …
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
}

impl AuditEntry {
    /// JSON payload.
    pub fn to_json(&self) -> Result<Vec<u8>, FormatError> {
        crate::error::encode_json("audit log entry", self, false)
    }

    /// Parses a payload.
    pub fn from_json(bytes: &[u8]) -> Result<Self, FormatError> {
        serde_json::from_slice(bytes).map_err(|source| FormatError::Json {
            what: "audit log entry",
            source,
        })
    }
}

impl Chained for AuditEntry {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn prev(&self) -> &str {
        &self.prev
    }
}

/// The head of a log at one moment: its last entry's number and chain hash,
/// signed with a key only holders of the master key have.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCheckpoint {
    /// The log.
    pub log: String,
    /// The number of the last entry then.
    pub seq: u64,
    /// [`crate::chain::chain_hash`] of that entry's payload.
    pub hash: String,
    /// When the checkpoint was taken.
    pub time: DateTime<Utc>,
    /// [`checkpoint_signature`] of the fields above.
    pub signature: String,
}

impl AuditCheckpoint {
    /// A signed checkpoint.
    pub fn new(key: &MasterKey, log: &str, seq: u64, hash: &str, time: DateTime<Utc>) -> Self {
        AuditCheckpoint {
            log: log.to_string(),
            seq,
            hash: hash.to_string(),
            time,
            signature: checkpoint_signature(key, log, seq, hash, time),
        }
    }

    /// Whether the signature is this repository's over these fields.
    pub fn signed_by(&self, key: &MasterKey) -> bool {
        let want = checkpoint_signature(key, &self.log, self.seq, &self.hash, self.time);
        constant_time_eq(want.as_bytes(), self.signature.as_bytes())
    }

    /// JSON payload.
    pub fn to_json(&self) -> Result<Vec<u8>, FormatError> {
        crate::error::encode_json("audit log checkpoint", self, false)
    }

    /// Parses a payload.
    pub fn from_json(bytes: &[u8]) -> Result<Self, FormatError> {
        serde_json::from_slice(bytes).map_err(|source| FormatError::Json {
            what: "audit log checkpoint",
            source,
        })
    }
}

/// BLAKE3-keyed over `log \n seq \n hash \n time (RFC 3339)`, hex, with a
/// key derived from the master key's id half.
pub fn checkpoint_signature(
    key: &MasterKey,
    log: &str,
    seq: u64,
    hash: &str,
    time: DateTime<Utc>,
) -> String {
    let bytes = key.to_bytes();
    let k = blake3::derive_key(CHECKPOINT_CONTEXT, &bytes[32..]);
    let text = format!("{log}\n{seq}\n{hash}\n{}", time.to_rfc3339());
    blake3::keyed_hash(&k, text.as_bytes()).to_hex().to_string()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_is_signed_by_its_repository_only() {
        let a = MasterKey::from_bytes(&[1; 64]);
        let b = MasterKey::from_bytes(&[2; 64]);
        let t = DateTime::from_timestamp(1_796_000_000, 0).unwrap_or_default();
        let c = AuditCheckpoint::new(&a, "00ff", 7, &"ab".repeat(32), t);
        assert!(c.signed_by(&a));
        assert!(!c.signed_by(&b));
        let mut moved = c.clone();
        moved.seq = 6;
        assert!(!moved.signed_by(&a));
    }

    #[test]
    fn entries_round_trip_through_json() {
        let e = AuditEntry {
            seq: 1,
            prev: String::new(),
            log: "00ff".into(),
            time: DateTime::from_timestamp(1_796_000_000, 0).unwrap_or_default(),
            actor: "alice@db1".into(),
            from: "db1".into(),
            action: "restore postgres".into(),
            args: vec!["latest".into()],
            outcome: "ok".into(),
            exit: 0,
            error: None,
            details: BTreeMap::from([("snapshot".into(), "ab12".into())]),
        };
        let back = AuditEntry::from_json(&e.to_json().unwrap_or_default());
        assert_eq!(back.ok(), Some(e));
    }
}
