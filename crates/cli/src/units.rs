//! Command-line values in lifeboat's one grammar for durations and sizes
//! (`lifeboat_units`), as clap value parsers: a refused value is bad usage
//! (exit 2) with a message that lists the units.

use std::time::Duration;

/// A duration flag: `0`, `90s`, `30min`, `1h 30min`, `2d`, `1w`, `3mo`.
pub fn duration(s: &str) -> Result<Duration, String> {
    lifeboat_units::parse_duration(s).map_err(|e| e.to_string())
}

/// A size flag: `512`, `64K`, `256M`, `1.5GiB` (powers of 1024).
pub fn size(s: &str) -> Result<u64, String> {
    lifeboat_units::parse_size(s).map_err(|e| e.to_string())
}

/// A size flag of at least one MiB (parts of tables, parts of uploads).
pub fn size_mib_at_least(s: &str) -> Result<u64, String> {
    let bytes = size(s)?;
    if bytes < 1 << 20 {
        return Err(format!(
            "{s:?} is smaller than 1 MiB; sizes without a unit are bytes, so write e.g. 256M"
        ));
    }
    Ok(bytes)
}

/// A `std` duration as chrono's, saturating.
pub fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
