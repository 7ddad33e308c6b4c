//! Where a repository lives: a local path or `s3://bucket/prefix`.

use std::fmt;
use std::path::PathBuf;

use crate::error::StorageError;

/// A parsed repository location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A directory on a local (or mounted) file system.
    Local(PathBuf),
    /// A bucket and key prefix on an S3-compatible store.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix inside the bucket, without leading or trailing `/`.
        prefix: String,
    },
}

impl Location {
    /// Parses `s3://bucket[/prefix]` or a local path (optionally `file://`).
    pub fn parse(s: &str) -> Result<Self, StorageError> {
        let invalid = |detail: &str| StorageError::Invalid {
            key: s.into(),
            detail: detail.into(),
        };
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.len() < 3
                || !bucket
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            {
                return Err(invalid(
                    "the bucket name must be 3 or more characters of a-z, 0-9, '-' and '.'",
                ));
            }
            let prefix = prefix.trim_matches('/').to_string();
            if !prefix.is_empty() {
                crate::keys::validate(&prefix)
                    .map_err(|_| invalid("the key prefix has unusual characters"))?;
            }
            return Ok(Location::S3 {
                bucket: bucket.into(),
                prefix,
            });
        }
        if s.contains("://") && !s.starts_with("file://") {
            return Err(invalid(
                "unsupported scheme; use a local path or s3://bucket/prefix",
            ));
        }
        let path = s.strip_prefix("file://").unwrap_or(s);
        if path.is_empty() {
            return Err(invalid("empty repository path"));
        }
        Ok(Location::Local(PathBuf::from(path)))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        assert_eq!(
            Location::parse("s3://my-bucket/backups/prod/").ok(),
            Some(Location::S3 {
                bucket: "my-bucket".into(),
                prefix: "backups/prod".into()
            })
        );
        assert_eq!(
            Location::parse("s3://bkt").ok(),
            Some(Location::S3 {
                bucket: "bkt".into(),
                prefix: String::new()
            })
        );
        assert_eq!(
            Location::parse("/var/backups/lb").ok(),
            Some(Location::Local("/var/backups/lb".into()))
        );
        assert!(Location::parse("s3://ab").is_err());
        assert!(Location::parse("s3://Bad_Bucket/x").is_err());
        assert!(Location::parse("gs://x/y").is_err());
        assert!(Location::parse("").is_err());
        assert_eq!(
            Location::parse("s3://bkt/a/b").map(|l| l.to_string()).ok(),
            Some("s3://bkt/a/b".to_string())
        );
    }
}
