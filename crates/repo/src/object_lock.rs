//! S3 Object Lock: with a default retention on the bucket, every object is
//! locked for a number of days after it is written (the repository config's
//! `object_lock_days`). Prune must not try to delete such an object before
//! its date; this module tells when each object unlocks.

use std::collections::HashMap;
use std::time::SystemTime;

use chrono::{DateTime, Duration, Utc};

use crate::Result;
use crate::repository::Repository;

/// Added to every lock date: clocks of the store and of this host differ.
pub const CLOCK_MARGIN: Duration = Duration::hours(1);

/// When an object written at `modified` unlocks, `days` later (with the
/// margin). An object whose write time is unknown counts as written now.
pub fn unlocks_at(modified: Option<SystemTime>, days: u32) -> DateTime<Utc> {
    let written: DateTime<Utc> = modified.map_or_else(Utc::now, DateTime::<Utc>::from);
    written + Duration::days(i64::from(days)) + CLOCK_MARGIN
}

impl Repository {
    /// For a repository with Object Lock, when each object under `prefixes`
    /// unlocks (by storage key); `None` without a lock.
    pub async fn lock_dates(
        &self,
        prefixes: &[&str],
    ) -> Result<Option<HashMap<String, DateTime<Utc>>>> {
        let Some(days) = self.config().object_lock_days else {
            return Ok(None);
        };
        let mut out = HashMap::new();
        for prefix in prefixes {
            for m in self.storage().list(prefix).await? {
                out.insert(m.key, unlocks_at(m.modified, days));
            }
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_dates_count_days_from_the_write_plus_a_margin() {
        let written = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400);
        let at = unlocks_at(Some(written), 30);
        assert_eq!(at.timestamp(), 86_400 + 30 * 86_400 + 3600);
        assert!(unlocks_at(None, 1) > Utc::now() + Duration::hours(24));
    }
}
