//! Durations in the configuration file (`every`, `deadline`, `jitter`,
//! alert intervals): humantime's forms (`90s`, `15min`, `6h`, `1h 30m`,
//! `2d`, `1w`), whole seconds at least.

use std::time::Duration;

use crate::error::{OpsError, Result};

/// Parses a duration of at least one second; `what` names the setting in
/// the error.
pub fn parse(what: &str, s: &str) -> Result<Duration> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| {
        OpsError::Invalid(format!(
            "{what} = {s:?} is not a duration ({e}); use e.g. \"90s\", \"15min\", \"6h\", \"1h 30m\", \"2d\", \"1w\""
        ))
    })?;
    if d < Duration::from_secs(1) {
        return Err(OpsError::Invalid(format!(
            "{what} = {s:?} is shorter than a second"
        )));
    }
    Ok(d)
}

/// A duration for people: `2d 3h`, `15min`, `42s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86400, s % 86400 / 3600, s % 3600 / 60, s % 60);
    let parts: Vec<String> = [(days, "d"), (hours, "h"), (mins, "min"), (secs, "s")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, u)| format!("{n}{u}"))
        .collect();
    if parts.is_empty() {
        "0s".into()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_usual_forms_and_says_what_is_wrong() {
        assert_eq!(
            parse("every", "6h").ok(),
            Some(Duration::from_secs(6 * 3600))
        );
        assert_eq!(
            parse("every", "1h 30m").ok(),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(
            parse("every", "2d").ok(),
            Some(Duration::from_secs(2 * 86400))
        );
        assert_eq!(
            parse("every", "1w").ok(),
            Some(Duration::from_secs(7 * 86400))
        );
        assert_eq!(parse("every", "2s").ok(), Some(Duration::from_secs(2)));
        let e = parse("deadline", "soon")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("deadline = \"soon\"") && e.contains("15min"),
            "{e}"
        );
        assert!(parse("jitter", "10ms").is_err());
        assert_eq!(human(Duration::from_secs(2 * 86400 + 3 * 3600)), "2d 3h");
        assert_eq!(human(Duration::from_secs(900)), "15min");
    }
}
