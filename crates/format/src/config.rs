//! The repository config: the parameters every writer must share.
//!
//! Stored as JSON in the sealed object `config`, written once at `init` with
//! create-only semantics and never changed afterwards.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::chunker::ChunkerParams;
use crate::error::FormatError;
use crate::id::Id;

/// Default target size of a pack: 16 MiB.
pub const DEFAULT_PACK_SIZE: u32 = 16 << 20;

/// The repository config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoConfig {
    /// Repository format version.
    pub version: u8,
    /// Random repository id.
    pub id: Id,
    /// When the repository was created.
    pub created: DateTime<Utc>,
    /// Content-defined chunker parameters (including its secret seed).
    pub chunker: ChunkerParams,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// Days every object stays locked after it is written (S3 Object Lock
    /// with a default retention on the bucket); prune deletes nothing
    /// younger. Absent: no lock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock_days: Option<u32>,
}

impl RepoConfig {
    /// JSON payload.
    pub fn to_json(&self) -> Result<Vec<u8>, FormatError> {
        crate::error::encode_json("repository config", self, true)
    }

    /// Parses and validates a payload.
    pub fn from_json(bytes: &[u8]) -> Result<Self, FormatError> {
        let c: RepoConfig = serde_json::from_slice(bytes).map_err(|source| FormatError::Json {
            what: "config",
            source,
        })?;
        crate::check_version("repository", c.version)?;
        c.chunker.validate()?;
        if !(1 << 20..=1 << 30).contains(&c.pack_size) {
            return Err(FormatError::Invalid {
                what: "config",
                reason: format!("pack size {} outside 1 MiB..1 GiB", c.pack_size),
            });
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_validation() {
        let c = RepoConfig {
            version: 1,
            id: Id::from_bytes([1; 32]),
            created: Utc::now(),
            chunker: ChunkerParams::with_seed(3),
            pack_size: DEFAULT_PACK_SIZE,
            object_lock_days: None,
        };
        assert_eq!(
            RepoConfig::from_json(&c.to_json().unwrap_or_default()).ok(),
            Some(c.clone())
        );
        assert!(!String::from_utf8_lossy(&c.to_json().unwrap_or_default()).contains("object_lock"));
        let locked = RepoConfig {
            object_lock_days: Some(30),
            ..c.clone()
        };
        assert_eq!(
            RepoConfig::from_json(&locked.to_json().unwrap_or_default()).ok(),
            Some(locked)
        );
        let mut newer = c.clone();
        newer.version = 7;
        assert!(matches!(
            RepoConfig::from_json(&newer.to_json().unwrap_or_default()),
            Err(FormatError::UnsupportedVersion { .. })
        ));
        let mut bad = c;
        bad.pack_size = 10;
        assert!(RepoConfig::from_json(&bad.to_json().unwrap_or_default()).is_err());
    }
}
