//! The erasure ledger: one sealed object per erasure request
//! (`erasures/<sequence number>`, kind 9), chained by hash so that an entry
//! removed or replaced shows. A data subject is stored only as a keyed
//! hash: the repository never holds the subject's key in the clear.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::chain::Chained;
use crate::crypto::MasterKey;
use crate::error::FormatError;

/// The key-derivation context of the subject hash key.
const SUBJECT_CONTEXT: &str = "lifeboat 2026-11 erasure subject hash";

/// The keyed hash of a data subject's key (as text), in hex: the same
/// value for the same subject under one repository's master key, and
/// nothing an attacker without the key can link to the subject.
pub fn subject_hash(key: &MasterKey, subject: &str) -> String {
    let bytes = key.to_bytes();
    let k = blake3::derive_key(SUBJECT_CONTEXT, &bytes[32..]);
    blake3::keyed_hash(&k, subject.as_bytes())
        .to_hex()
        .to_string()
}

/// A rule as it was applied: which table, and the SQL expression that
/// gives each row's subject key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedRule {
    /// `schema.table`.
    pub table: String,
    /// The expression over the table's columns that yields the subject key.
    pub subject: String,
    /// Rows deleted from the live database.
    pub rows: u64,
}

/// The keyed hash of an object's location, `s3://BUCKET/KEY` (the full
/// key within the bucket): the ledger names the objects it erased this way,
/// so that restores can leave them out without the key ever being stored.
pub fn object_hash(key: &MasterKey, bucket: &str, object_key: &str) -> String {
    subject_hash(key, &format!("s3://{bucket}/{object_key}"))
}

/// Objects of a bucket an erasure deleted, found by one rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasedObjects {
    /// Where the rule looks: `s3://BUCKET[/PREFIX]`.
    pub location: String,
    /// The rule: the key pattern (`key = …`) or the query (`query = …`).
    pub rule: String,
    /// Objects deleted from the live bucket.
    pub objects: u64,
    /// Each deleted object's [`object_hash`], so that restores leave it out
    /// even when no key pattern names its subject (objects a query found).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<String>,
}

/// One erasure request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureEntry {
    /// Position in the ledger, from 1, without gaps.
    pub seq: u64,
    /// Hash (BLAKE3, hex) of the previous entry's payload; empty for the first.
    pub prev: String,
    /// When it was recorded.
    pub time: DateTime<Utc>,
    /// Who asked (user@host).
    pub by: String,
    /// Why (a ticket or request reference; never the person's name).
    pub reason: String,
    /// The subject's keyed hash ([`subject_hash`]).
    pub subject: String,
    /// The rules applied and what each removed.
    pub rules: Vec<AppliedRule>,
    /// The objects deleted from buckets, per bucket rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<ErasedObjects>,
    /// A legal hold deferring the erasure: the rows stay until it is lifted
    /// (a later entry for the same subject), and restores do not remove them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<String>,
}

impl ErasureEntry {
    /// JSON payload.
    pub fn to_json(&self) -> Result<Vec<u8>, FormatError> {
        crate::error::encode_json("erasure ledger entry", self, false)
    }

    /// Parses a payload.
    pub fn from_json(bytes: &[u8]) -> Result<Self, FormatError> {
        serde_json::from_slice(bytes).map_err(|source| FormatError::Json {
            what: "erasure ledger entry",
            source,
        })
    }
}

impl Chained for ErasureEntry {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn prev(&self) -> &str {
        &self.prev
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{chain_hash, verify_chain};

    fn entry(seq: u64, prev: &str) -> (ErasureEntry, Vec<u8>) {
        let e = ErasureEntry {
            seq,
            prev: prev.into(),
            time: DateTime::from_timestamp(1_796_000_000, 0).unwrap_or_default(),
            by: "dpo@db1".into(),
            reason: "ticket 7".into(),
            subject: "ab".repeat(32),
            rules: vec![AppliedRule {
                table: "public.users".into(),
                subject: "id".into(),
                rows: 1,
            }],
            buckets: Vec::new(),
            hold: None,
        };
        let payload = e.to_json().unwrap_or_default();
        (e, payload)
    }

    #[test]
    fn subjects_hash_alike_under_one_key_and_apart_under_another() {
        let (a, b) = (
            MasterKey::from_bytes(&[1; 64]),
            MasterKey::from_bytes(&[2; 64]),
        );
        assert_eq!(subject_hash(&a, "42"), subject_hash(&a, "42"));
        assert_ne!(subject_hash(&a, "42"), subject_hash(&a, "43"));
        assert_ne!(subject_hash(&a, "42"), subject_hash(&b, "42"));
        assert_eq!(subject_hash(&a, "42").len(), 64);
    }

    #[test]
    fn a_chain_with_an_entry_removed_or_rewritten_is_caught() {
        let first = entry(1, "");
        let second = entry(2, &chain_hash(&first.1));
        let third = entry(3, &chain_hash(&second.1));
        let good = vec![first.clone(), second.clone(), third.clone()];
        assert!(verify_chain(&good).is_empty());
        let gap = vec![first.clone(), third.clone()];
        assert!(verify_chain(&gap)[0].problem.contains("entry 2 is missing"));
        let mut changed = second.clone();
        changed.0.reason = "edited".into();
        changed.1 = changed.0.to_json().unwrap_or_default();
        let rewritten = vec![first, changed, third];
        assert!(
            verify_chain(&rewritten)[0]
                .problem
                .contains("entry 3 does not follow")
        );
    }
}
