//! What a data directory says about its cluster without a running server.

use std::path::Path;

use crate::error::{PgError, Result};

/// The system identifier from `global/pg_control` (its first 8 bytes, the
/// same in every PostgreSQL version).
pub fn system_identifier(pgdata: &Path) -> Result<u64> {
    let path = pgdata.join("global").join("pg_control");
    let bytes = std::fs::read(&path).map_err(|e| PgError::io(&path, e))?;
    let first: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            PgError::Invalid(format!("{} is too short to be pg_control", path.display()))
        })?;
    Ok(u64::from_le_bytes(first))
}

/// The major version from `PG_VERSION`, e.g. 15.
pub fn major_version(pgdata: &Path) -> Result<u32> {
    let path = pgdata.join("PG_VERSION");
    let text = std::fs::read_to_string(&path).map_err(|e| PgError::io(&path, e))?;
    text.trim()
        .parse()
        .map_err(|_| PgError::Invalid(format!("{} does not hold a version number", path.display())))
}

/// Port and socket directory of the server running on `pgdata`, from
/// `postmaster.pid` (lines 4 and 5).
pub fn running_server(pgdata: &Path) -> Option<(u16, String)> {
    let text = std::fs::read_to_string(pgdata.join("postmaster.pid")).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let port = lines.get(3)?.trim().parse().ok()?;
    let socket = lines
        .get(4)
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    Some((port, socket))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_identifier_version_and_pid_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir(dir.path().join("global")).unwrap_or_else(|e| panic!("{e}"));
        let mut control = 7_296_123_456_789_012_345u64.to_le_bytes().to_vec();
        control.extend_from_slice(&[0; 100]);
        std::fs::write(dir.path().join("global/pg_control"), control)
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("PG_VERSION"), "15\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            dir.path().join("postmaster.pid"),
            "1234\n/data\n1763800000\n5433\n/tmp\n*\n  1 2\nready\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            system_identifier(dir.path()).ok(),
            Some(7_296_123_456_789_012_345)
        );
        assert_eq!(major_version(dir.path()).ok(), Some(15));
        assert_eq!(running_server(dir.path()), Some((5433, "/tmp".to_string())));
        assert!(system_identifier(Path::new("/nonexistent")).is_err());
    }
}
