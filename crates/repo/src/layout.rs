//! Where each kind of object lives in storage (docs/FORMAT.md, "Layout").

use lifeboat_format::Id;

/// The repository config object.
pub const CONFIG: &str = "config";
/// Prefix of key slots.
pub const KEYS: &str = "keys/";
/// Prefix of pack files.
pub const DATA: &str = "data/";
/// Prefix of index files.
pub const INDEX: &str = "index/";
/// Prefix of snapshots.
pub const SNAPSHOTS: &str = "snapshots/";
/// Prefix of pins (legal holds on snapshots).
pub const PINS: &str = "pins/";
/// Prefix of deletion plans (packs a prune has marked for deletion).
pub const PRUNE: &str = "prune/";
/// Prefix of backup-in-progress records.
pub const RUNNING: &str = "running/";
/// The prune lock (one prune at a time; backups never take it).
pub const PRUNE_LOCK: &str = "locks/prune";
/// Prefix of catalog reports (drills, checks, recoveries).
pub const REPORTS: &str = "reports/";
/// Prefix of archived PostgreSQL WAL (see docs/FORMAT.md section 9).
pub const WAL: &str = "wal/";
/// Prefix of named restore point markers (docs/FORMAT.md section 9).
pub const RESTORE_POINTS: &str = "rp/";

/// Prefix of the erasure ledger (docs/FORMAT.md, "Erasure ledger").
pub const ERASURES: &str = "erasures/";

/// Key of erasure ledger entry `seq` (numbered from 1; the fixed width
/// keeps listings in ledger order).
pub fn erasure(seq: u64) -> String {
    format!("{ERASURES}{seq:012}")
}

/// Prefix of the audit logs (docs/FORMAT.md, "Audit log").
pub const AUDIT: &str = "audit/";
/// The object naming this repository's own audit log.
pub const AUDIT_SELF: &str = "audit/self";

/// Prefix of the entries of audit log `log`.
pub fn audit_log(log: &str) -> String {
    format!("{AUDIT}{log}/")
}

/// Key of the head checkpoint of audit log `log` (overwritten on each entry).
pub fn audit_head(log: &str) -> String {
    format!("{AUDIT}{log}/head")
}

/// Prefix of the periodic checkpoints of audit log `log`.
pub fn audit_checkpoints(log: &str) -> String {
    format!("{AUDIT}{log}/checkpoints/")
}

/// Key of a key slot.
pub fn key_slot(id: &Id) -> String {
    format!("{KEYS}{id}")
}

/// Key of a pack: `data/<first two hex digits>/<id>`.
pub fn pack(id: &Id) -> String {
    let hex = id.to_hex();
    format!("{DATA}{}/{hex}", &hex[..2])
}

/// Key of an index file.
pub fn index(id: &Id) -> String {
    format!("{INDEX}{id}")
}

/// Key of a snapshot.
pub fn snapshot(id: &Id) -> String {
    format!("{SNAPSHOTS}{id}")
}

/// Key of a pin.
pub fn pin(id: &Id) -> String {
    format!("{PINS}{id}")
}

/// Key of a catalog report.
pub fn report(id: &Id) -> String {
    format!("{REPORTS}{id}")
}

/// Key of a deletion plan.
pub fn deletion_plan(id: &Id) -> String {
    format!("{PRUNE}{id}")
}

/// Key of a backup-in-progress record.
pub fn running(id: &Id) -> String {
    format!("{RUNNING}{id}")
}

/// Parses the id at the end of a listed key under `prefix` (any depth).
pub fn id_from_key(key: &str, prefix: &str) -> Option<Id> {
    let rest = key.strip_prefix(prefix)?;
    rest.rsplit('/').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let id = Id::from_bytes([0xab; 32]);
        assert!(pack(&id).starts_with("data/ab/abab"));
        assert_eq!(id_from_key(&pack(&id), DATA), Some(id));
        assert_eq!(id_from_key(&snapshot(&id), SNAPSHOTS), Some(id));
        assert_eq!(id_from_key("snapshots/nothex", SNAPSHOTS), None);
        assert_eq!(id_from_key(&index(&id), SNAPSHOTS), None);
    }
}
