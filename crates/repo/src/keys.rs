//! Key management: several passphrases per repository, added and removed
//! without touching any data (each is a slot wrapping the same master key).

use chrono::{DateTime, Utc};
use lifeboat_format::Id;
use lifeboat_format::keyslot::{KdfCost, SlotOrigin};
use serde::Serialize;

use crate::error::{RepoError, Result};
use crate::layout;
use crate::repository::{Repository, read_slots, write_slot};

/// One key slot as listed by `key list`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct KeyInfo {
    /// Slot id.
    pub id: Id,
    /// When it was added.
    pub created: DateTime<Utc>,
    /// Host that added it.
    pub host: String,
    /// User that added it.
    pub user: String,
    /// Label given when adding it.
    pub label: Option<String>,
    /// True for the slot that unlocked this session.
    pub current: bool,
}

impl Repository {
    /// Lists the key slots, oldest first.
    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for (id, slot) in read_slots(self.storage()).await? {
            let slot = slot?;
            out.push(KeyInfo {
                id,
                created: slot.created,
                host: slot.host,
                user: slot.user,
                label: slot.label,
                current: id == self.slot(),
            });
        }
        out.sort_by_key(|k| (k.created, k.id));
        Ok(out)
    }

    /// Adds a passphrase; returns the new slot's id.
    pub async fn add_key(
        &self,
        passphrase: &[u8],
        cost: KdfCost,
        origin: SlotOrigin,
    ) -> Result<Id> {
        if passphrase.is_empty() {
            return Err(RepoError::Invalid("the new passphrase is empty".into()));
        }
        let id = Id::random()?;
        write_slot(self.storage(), self.key(), passphrase, &id, cost, origin).await?;
        Ok(id)
    }

    /// Removes the slot whose id starts with `prefix`. Refuses to remove the
    /// slot this session was unlocked with (so nobody locks themselves out by
    /// mistake) and the last slot.
    pub async fn remove_key(&self, prefix: &str) -> Result<Id> {
        let keys = self.list_keys().await?;
        let matches: Vec<&KeyInfo> = keys
            .iter()
            .filter(|k| !prefix.is_empty() && k.id.to_hex().starts_with(&prefix.to_lowercase()))
            .collect();
        let target = match matches.as_slice() {
            [one] => *one,
            [] => {
                return Err(RepoError::Invalid(format!(
                    "no key slot matches {prefix:?}"
                )));
            }
            many => {
                return Err(RepoError::Invalid(format!(
                    "key prefix {prefix:?} is ambiguous: it matches {} slots",
                    many.len()
                )));
            }
        };
        if target.current {
            return Err(RepoError::Invalid(format!(
                "key {} is the one this session was unlocked with; unlock with another passphrase to remove it",
                target.id.short()
            )));
        }
        if keys.len() < 2 {
            return Err(RepoError::Invalid("refusing to remove the last key".into()));
        }
        self.storage()
            .delete(
                &layout::key_slot(&target.id),
                lifeboat_storage::IfMissing::Fail,
            )
            .await?;
        Ok(target.id)
    }
}

/// Convenience for callers building an origin with a label.
pub fn origin_with_label(label: Option<String>) -> SlotOrigin {
    crate::repository::local_origin(label)
}
