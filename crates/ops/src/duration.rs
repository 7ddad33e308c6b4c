//! Durations in the configuration file (`every`, `deadline`, `jitter`,
//! alert intervals, RPO/RTO targets), in lifeboat's one duration grammar
//! (`lifeboat_units`), whole seconds at least.

use std::time::Duration;

use crate::error::{OpsError, Result};

/// Parses a duration of at least one second; `what` names the setting in
/// the error.
pub fn parse(what: &str, s: &str) -> Result<Duration> {
    lifeboat_units::parse_duration_min_1s(what, s).map_err(OpsError::Invalid)
}

/// A duration for people: `2d 3h`, `15min`, `42s`.
pub fn human(d: Duration) -> String {
    lifeboat_units::format_duration(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_the_one_grammar_and_names_the_setting() {
        assert_eq!(
            parse("every", "6h").ok(),
            Some(Duration::from_secs(6 * 3600))
        );
        assert_eq!(
            parse("every", "1w").ok(),
            Some(Duration::from_secs(7 * 86400))
        );
        let e = parse("deadline", "soon")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("deadline") && e.contains("\"soon\"") && e.contains("15min"),
            "{e}"
        );
        assert!(parse("jitter", "10ms").is_err());
        assert!(parse("every", "30m").is_err());
        assert_eq!(human(Duration::from_secs(2 * 86400 + 3 * 3600)), "2d 3h");
    }
}
