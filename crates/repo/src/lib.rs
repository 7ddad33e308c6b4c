//! lifeboat's repository: everything between the sources and the storage.
//!
//! A [`Repository`] is opened (or created) on a [`lifeboat_storage::DynStorage`]
//! with a passphrase. It then backs up files through a parallel pipeline
//! (chunk → hash → dedup → compress → encrypt → pack → upload), restores them
//! through a parallel, pack-ordered engine, and checks everything it holds.
//! Writes follow the format's order: packs, then index files, then the
//! snapshot, so an interruption at any point leaves only unreferenced data.

#![forbid(unsafe_code)]

pub mod audit;
pub mod backup;
mod blobs;
pub mod catalog_check;
mod chains;
pub mod check;
pub mod chunk_reader;
pub mod copy;
pub mod erasures;
pub mod error;
pub mod forget;
pub mod index;
pub mod keys;
pub mod layout;
pub mod object_lock;
pub mod pool;
pub mod progress;
pub mod prune;
pub mod reachable;
pub mod readback;
pub mod repair;
pub mod reports;
pub mod repository;
pub mod restore;
pub mod retention;
pub mod running;
pub mod snapshots;
pub mod uploader;
pub mod walk;

pub use backup::{BackupOptions, BackupResult, TreeBackup};
pub use check::{CheckOptions, CheckReport, Finding, Severity};
pub use error::{RepoError, Result};
pub use lifeboat_storage::ErrorClass;
pub use repository::{InitOptions, Repository};
pub use restore::{RestoreOptions, RestoreSummary};
pub use snapshots::{SnapshotCache, SnapshotEntry};
