//! Sources that are neither PostgreSQL nor local files: S3-compatible
//! buckets (`backup bucket`, `restore bucket`).

pub mod bucket;
