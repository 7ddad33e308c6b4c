//! Snapshots: what was backed up, when, why, and the root of its tree.
//!
//! Stored as JSON inside a sealed `snapshots/<id>` object. Readers ignore
//! fields they do not know, so later versions can add metadata (PostgreSQL
//! LSNs, bucket names) without breaking older readers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::FormatError;
use crate::id::Id;

/// Why a backup was taken (`--kind`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupKind {
    /// Taken by a schedule.
    Scheduled,
    /// Taken before a deployment, migration or bulk change.
    PreDeploy,
    /// Taken by hand.
    #[default]
    Manual,
}

impl BackupKind {
    /// The name used on the command line and in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::Scheduled => "scheduled",
            BackupKind::PreDeploy => "pre-deploy",
            BackupKind::Manual => "manual",
        }
    }
}

/// What kind of source a snapshot holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// Files and directories (`backup files`).
    Files,
    /// A PostgreSQL physical base backup (`backup postgres --pgdata`).
    Postgres,
    /// A PostgreSQL logical backup over SQL (`backup postgres --logical`).
    PostgresLogical,
    /// The objects of an S3-compatible bucket (`backup bucket`).
    Bucket,
    /// A kind this build does not know (written by a newer lifeboat).
    #[serde(other)]
    Unknown,
}

impl SourceKind {
    /// Name for listings.
    pub fn as_str(&self) -> &'static str {
        match self {
            SourceKind::Files => "files",
            SourceKind::Postgres => "postgres",
            SourceKind::PostgresLogical => "postgres-logical",
            SourceKind::Bucket => "bucket",
            SourceKind::Unknown => "unknown",
        }
    }
}

/// Counts and sizes recorded when the snapshot was made.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Entries skipped (sockets, devices, unreadable files).
    pub skipped: u64,
    /// Files found unchanged since the parent snapshot and not read again.
    pub files_unchanged: u64,
    /// Total size of the files.
    pub bytes: u64,
    /// Blobs this backup added to the repository.
    pub new_blobs: u64,
    /// Decoded size of those blobs.
    pub new_bytes: u64,
    /// Bytes this backup added to storage (packs, index, snapshot).
    pub stored_bytes: u64,
    /// Wall time of the backup in milliseconds.
    pub duration_ms: u64,
}

/// One snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the backup started.
    pub time: DateTime<Utc>,
    /// Host that ran it.
    pub host: String,
    /// User that ran it.
    pub user: String,
    /// Kind of source.
    pub source: SourceKind,
    /// The paths or names given on the command line.
    pub paths: Vec<String>,
    /// Why it was taken.
    pub kind: BackupKind,
    /// Free-text reason (`--reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Tags (`--tag`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Root tree blob.
    pub root: Id,
    /// The earlier snapshot whose unchanged files were reused, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Id>,
    /// Counts and sizes.
    #[serde(default)]
    pub summary: Summary,
    /// Program and version that wrote it.
    pub program: String,
    /// What a PostgreSQL base backup recorded (source `postgres`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresBackup>,
    /// What a PostgreSQL logical backup recorded (source `postgres-logical`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logical: Option<LogicalBackup>,
    /// What a bucket backup recorded (source `bucket`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<BucketBackup>,
}

/// What a bucket backup recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BucketBackup {
    /// The endpoint read from (no credentials).
    pub endpoint: String,
    /// Bucket name.
    pub bucket: String,
    /// Key prefix backed up (empty for the whole bucket).
    pub prefix: String,
    /// Objects in the snapshot.
    pub objects: u64,
    /// Objects downloaded (new or changed since the parent snapshot).
    pub objects_read: u64,
    /// Bytes downloaded.
    pub bytes_read: u64,
    /// GET requests sent for object data.
    pub get_requests: u64,
    /// Listing requests sent.
    pub list_requests: u64,
    /// Objects left out, each with its key and why (deleted or changed
    /// while being read).
    pub warnings: Vec<String>,
}

/// One database of the cluster at backup time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseInfo {
    /// Name.
    pub name: String,
    /// Object id.
    pub oid: u32,
    /// `pg_database_size`, bytes.
    pub size_bytes: u64,
    /// Tables with their estimated row counts (`pg_class.reltuples`).
    pub tables: Vec<TableEstimate>,
}

/// A table's estimated size.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TableEstimate {
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
    /// Estimated rows (-1 when never analysed).
    pub rows_estimate: i64,
}

/// A tablespace outside the data directory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TablespaceInfo {
    /// Object id (the name of its link in `pg_tblspc`).
    pub oid: u32,
    /// Name.
    pub name: String,
    /// Location on the source host.
    pub location: String,
}

/// Metadata of a PostgreSQL physical base backup. LSNs are `X/Y` strings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PostgresBackup {
    /// The cluster's system identifier (a u64, as a decimal string).
    pub system_id: String,
    /// `server_version_num`, e.g. 150008.
    pub version_num: u32,
    /// `server_version`, e.g. "15.8 (Debian 15.8-0+deb12u1)".
    pub version: String,
    /// Timeline the backup started on.
    pub timeline: u32,
    /// WAL position where replay must start.
    pub start_lsn: String,
    /// WAL position where the backup becomes consistent.
    pub stop_lsn: String,
    /// When `pg_backup_start` returned.
    pub start_time: Option<DateTime<Utc>>,
    /// When `pg_backup_stop` returned.
    pub stop_time: Option<DateTime<Utc>>,
    /// First WAL segment the backup needs.
    pub start_wal: String,
    /// Last WAL segment the backup needs.
    pub stop_wal: String,
    /// WAL segment size in bytes.
    pub wal_segment_size: u64,
    /// Whether the cluster has data checksums.
    pub data_checksums: bool,
    /// Pages that failed checksum verification while being read.
    pub checksum_failures: u64,
    /// Tablespaces, stored under `tablespaces/<oid>/` in the tree.
    pub tablespaces: Vec<TablespaceInfo>,
    /// Databases with their sizes and table estimates.
    pub databases: Vec<DatabaseInfo>,
}

/// Metadata of a PostgreSQL logical backup: what the restore and later
/// verification need to know without reading the backup's files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogicalBackup {
    /// `server_version_num` of the source, e.g. 150008.
    pub version_num: u32,
    /// `server_version` of the source.
    pub version: String,
    /// `pg_dump --version` of the client that dumped the schema.
    pub pg_dump_version: String,
    /// Whether `roles.sql` holds the cluster's roles.
    pub roles: bool,
    /// What could not be backed up for lack of privileges (e.g. role passwords).
    pub skipped: Vec<String>,
    /// The databases, each in its own consistent snapshot.
    pub databases: Vec<LogicalDatabase>,
}

/// One database of a logical backup.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogicalDatabase {
    /// Name on the source server.
    pub name: String,
    /// `pg_database_size` at backup time, bytes.
    pub size_bytes: u64,
    /// Server encoding.
    pub encoding: String,
    /// Tables with their exact row counts, from the backup's snapshot.
    pub tables: Vec<TableRows>,
    /// Sequences whose values were recorded.
    pub sequences: u64,
    /// Large objects stored.
    pub large_objects: u64,
    /// Bytes of table data (COPY text) stored.
    pub data_bytes: u64,
    /// The database's extensions, by name.
    pub extensions: Vec<String>,
}

/// A table's exact row count at backup time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TableRows {
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
    /// Rows.
    pub rows: u64,
}

/// A pin: a legal hold that keeps a snapshot whatever the retention policy
/// says, until it is removed (`lifeboat unpin`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// The snapshot held.
    pub snapshot: Id,
    /// Why (`--reason`).
    pub reason: String,
    /// When it was pinned.
    pub time: DateTime<Utc>,
    /// Who pinned it (user@host).
    pub by: String,
}

impl Pin {
    /// JSON payload.
    pub fn to_json(&self) -> Result<Vec<u8>, FormatError> {
        crate::error::encode_json("pin", self, false)
    }

    /// Parses a payload.
    pub fn from_json(bytes: &[u8]) -> Result<Self, FormatError> {
        serde_json::from_slice(bytes).map_err(|source| FormatError::Json {
            what: "pin",
            source,
        })
    }
}

impl Snapshot {
    /// JSON payload.
    pub fn to_json(&self) -> Result<Vec<u8>, FormatError> {
        crate::error::encode_json("snapshot", self, true)
    }

    /// Parses a payload.
    pub fn from_json(bytes: &[u8]) -> Result<Self, FormatError> {
        serde_json::from_slice(bytes).map_err(|source| FormatError::Json {
            what: "snapshot",
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_unknown_fields() {
        let s = Snapshot {
            time: Utc::now(),
            host: "h".into(),
            user: "u".into(),
            source: SourceKind::Files,
            paths: vec!["/etc".into()],
            kind: BackupKind::PreDeploy,
            reason: Some("migration 42".into()),
            tags: vec!["t".into()],
            root: Id::from_bytes([1; 32]),
            parent: None,
            postgres: None,
            logical: None,
            bucket: None,
            summary: Summary::default(),
            program: "lifeboat test".into(),
        };
        let json = s.to_json().unwrap_or_default();
        assert!(String::from_utf8_lossy(&json).contains("\"pre-deploy\""));
        assert_eq!(Snapshot::from_json(&json).ok(), Some(s.clone()));
        let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap_or_default();
        v["future_field"] = serde_json::json!({"lsn": "0/1"});
        v["source"] = serde_json::json!("tape-library");
        let newer = serde_json::to_vec(&v).unwrap_or_default();
        let parsed = Snapshot::from_json(&newer).ok();
        assert_eq!(parsed.map(|p| p.source), Some(SourceKind::Unknown));
        assert!(Snapshot::from_json(b"{}").is_err());
    }
}
