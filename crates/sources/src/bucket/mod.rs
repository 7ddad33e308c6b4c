//! Buckets as a backup source: S3-compatible object storage (AWS S3,
//! Supabase Storage, R2, MinIO) backed up incrementally and restored as of
//! any snapshot, into another bucket or prefix, a local directory, or in
//! place.

mod backup;
mod client;
pub mod erasure;
mod error;
pub mod keys;
mod listing;
mod restore;
mod verify;

pub use backup::{DEFAULT_PARALLEL, DRILL_PREFIX, RANGE_BYTES, ReadOptions, backup_bucket};
pub use client::{BucketClient, BucketSpec, ListPage, Listed};
pub use error::{BucketError, Result};
pub use listing::list_all;
pub use restore::{
    BucketTarget, PART_BYTES, PlannedWrite, RestorePlan, RestoreReport, SnapshotObject,
    WriteReason, apply_restore, plan_restore, snapshot_objects,
};
pub use verify::{Comparison, compare, remove_prefix};
