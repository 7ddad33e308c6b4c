//! Records that let `prune` run while backups run (docs/FORMAT.md,
//! "Deletion plans" and "Backups in progress"): the packs a prune has marked
//! for deletion, and the backups that may still be deduplicating against
//! the index they loaded.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{FormatError, Id};

/// Packs marked for deletion by a prune (`prune/<id>`, kind 6). They are
/// deleted by a later phase once the grace period has passed and every
/// backup that could still use them has finished.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionPlan {
    /// When the packs were marked.
    pub time: DateTime<Utc>,
    /// Who marked them (user@host).
    pub by: String,
    /// The packs to delete.
    pub packs: Vec<Id>,
    /// Their total size in bytes.
    pub bytes: u64,
}

/// A backup in progress (`running/<id>`, kind 7), refreshed while it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupInProgress {
    /// When the backup started.
    pub started: DateTime<Utc>,
    /// When this record was last rewritten; a record not refreshed for
    /// longer than [`RUNNING_STALE_AFTER_SECS`] belongs to a dead backup.
    pub refreshed: DateTime<Utc>,
    /// Host and process of the backup.
    pub host: String,
    /// Process id on that host.
    pub pid: u32,
    /// What is being backed up, for messages.
    pub what: String,
    /// Deletion plans the backup saw before loading its index (whose packs
    /// it therefore does not use). `None` until it has listed them: such a
    /// backup may use any pack.
    pub seen_plans: Option<Vec<Id>>,
}

/// How often a running backup rewrites its record.
pub const RUNNING_REFRESH_SECS: u64 = 60;
/// After how long without a refresh a record is taken as left by a dead process.
pub const RUNNING_STALE_AFTER_SECS: i64 = 15 * 60;

macro_rules! json_object {
    ($t:ty, $what:literal) => {
        impl $t {
            /// JSON payload.
            pub fn to_json(&self) -> Result<Vec<u8>, crate::FormatError> {
                crate::error::encode_json($what, self, false)
            }

            /// Parses a payload.
            pub fn from_json(bytes: &[u8]) -> Result<Self, FormatError> {
                serde_json::from_slice(bytes).map_err(|source| FormatError::Json {
                    what: $what,
                    source,
                })
            }
        }
    };
}

json_object!(DeletionPlan, "deletion plan");
json_object!(BackupInProgress, "backup-in-progress record");

impl BackupInProgress {
    /// True if the record has not been refreshed for too long at `now`.
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        (now - self.refreshed).num_seconds() > RUNNING_STALE_AFTER_SECS
    }

    /// True if this backup may use the packs of plan `id` (it had not seen
    /// the plan when it loaded its index).
    pub fn may_use(&self, plan: &Id) -> bool {
        self.seen_plans.as_ref().is_none_or(|s| !s.contains(plan))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_judge_staleness() {
        let t = DateTime::parse_from_rfc3339("2026-11-23T08:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{e}"));
        let plan = DeletionPlan {
            time: t,
            by: "root@db1".into(),
            packs: vec![Id::from_bytes([1; 32])],
            bytes: 42,
        };
        assert_eq!(
            DeletionPlan::from_json(&plan.to_json().unwrap_or_default()).ok(),
            Some(plan)
        );
        let mut r = BackupInProgress {
            started: t,
            refreshed: t,
            host: "db1".into(),
            pid: 7,
            what: "files /etc".into(),
            seen_plans: None,
        };
        assert!(r.may_use(&Id::from_bytes([1; 32])));
        r.seen_plans = Some(vec![Id::from_bytes([1; 32])]);
        assert!(!r.may_use(&Id::from_bytes([1; 32])));
        assert!(r.may_use(&Id::from_bytes([2; 32])));
        assert!(!r.is_stale(t + chrono::Duration::minutes(15)));
        assert!(r.is_stale(t + chrono::Duration::minutes(16)));
        assert_eq!(
            BackupInProgress::from_json(&r.to_json().unwrap_or_default()).ok(),
            Some(r.clone())
        );
        assert!(BackupInProgress::from_json(b"{}").is_err());
    }
}
