//! The one grammar for durations and sizes that people type into lifeboat,
//! on the command line and in `lifeboat.toml` alike.
//!
//! **Durations** are one or more `NUMBER UNIT` terms, optionally separated
//! by spaces: `90s`, `15min`, `6h`, `1h 30min`, `1.5d`, `2w`, `3mo`, `1y`,
//! `90d12h`. The units are those of `humantime` plus days and weeks, with
//! months spelled `mo`: milliseconds (`ms`), seconds (`s`, `sec`,
//! `second(s)`), minutes (`min`,
//! `minute(s)`), hours (`h`, `hr`, `hour(s)`), days (`d`, `day(s)`), weeks
//! (`w`, `week(s)`), months (`mo`, `month(s)`, 30 days) and years (`y`,
//! `year(s)`, 365 days). A bare `0` is zero. A bare `m` is refused: it is
//! minutes to some tools and months to others, and reading a retention of
//! one month as one minute deletes backups.
//!
//! **Sizes** are a number with an optional unit: `B`, then `K`, `M`, `G`,
//! `T`, `P` in powers of 1024, each also accepted as `KiB` or `KB` (lifeboat
//! never uses powers of 1000): `512`, `64K`, `1.5GiB`, `500 GB`.

#![forbid(unsafe_code)]

use std::time::Duration;

/// Why a duration or size was refused; the message lists the units.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Not a duration in the grammar.
    #[error(
        "{0:?} is not a duration: {1}; write a number and a unit, e.g. 90s, 15min, 6h, 1h 30min, 1.5d, 2w, 3mo, 1y (units: ms, s, min, h, d, w, mo, y)"
    )]
    Duration(String, String),
    /// Not a size in the grammar.
    #[error(
        "{0:?} is not a size: {1}; write a number and an optional unit, e.g. 512, 64K, 1.5GiB, 500G (units: B, K, M, G, T, P: powers of 1024)"
    )]
    Size(String, String),
}

const SECOND: f64 = 1.0;
const MINUTE: f64 = 60.0;
const HOUR: f64 = 3600.0;
const DAY: f64 = 86_400.0;

/// The seconds in one of `unit`, or why the unit is refused.
fn duration_unit(unit: &str) -> Result<f64, String> {
    Ok(match unit {
        "ms" | "msec" | "millisecond" | "milliseconds" => SECOND / 1000.0,
        "s" | "sec" | "secs" | "second" | "seconds" => SECOND,
        "min" | "mins" | "minute" | "minutes" => MINUTE,
        "h" | "hr" | "hrs" | "hour" | "hours" => HOUR,
        "d" | "day" | "days" => DAY,
        "w" | "week" | "weeks" => 7.0 * DAY,
        "mo" | "month" | "months" => 30.0 * DAY,
        "y" | "year" | "years" => 365.0 * DAY,
        "m" | "M" => {
            return Err(
                "\"m\" is ambiguous: write \"min\" for minutes or \"mo\" for months".into(),
            );
        }
        "" => return Err("a number needs a unit".into()),
        other => return Err(format!("unknown unit {other:?}")),
    })
}

/// Splits `s` into `(number, unit)` terms: digits and one dot, then letters.
fn terms(s: &str) -> Result<Vec<(f64, String)>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err("it is empty".into());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_len];
        if number.is_empty() {
            return Err(format!("expected a number at {rest:?}"));
        }
        let value: f64 = number
            .parse()
            .map_err(|_| format!("{number:?} is not a number"))?;
        rest = rest[num_len..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(rest.len());
        out.push((value, rest[..unit_len].to_string()));
        rest = rest[unit_len..].trim_start();
    }
    Ok(out)
}

/// Parses a duration in the grammar (see the crate documentation). Accepts
/// zero; callers that need a minimum check it themselves.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let bad = |why: String| UnitError::Duration(s.to_string(), why);
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    let mut seconds = 0.0f64;
    for (value, unit) in terms(s).map_err(bad)? {
        seconds += value * duration_unit(&unit).map_err(bad)?;
    }
    // About 31,700 years: far beyond anything a schedule or retention means,
    // and far inside what a Duration holds.
    if !seconds.is_finite() || seconds > 1e12 {
        return Err(bad("it is too long".into()));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses a duration of at least one second, naming the setting `what` in
/// the error (`--grace`, `every`, …).
pub fn parse_duration_min_1s(what: &str, s: &str) -> Result<Duration, String> {
    let d = parse_duration(s).map_err(|e| format!("{what}: {e}"))?;
    if d < Duration::from_secs(1) {
        return Err(format!("{what}: {s:?} is shorter than a second"));
    }
    Ok(d)
}

/// Parses a size in bytes in the grammar (see the crate documentation).
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let bad = |why: String| UnitError::Size(s.to_string(), why);
    let t = s.trim();
    let num_len = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = (&t[..num_len], t[num_len..].trim());
    if number.is_empty() {
        return Err(bad("it has no number".into()));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| bad(format!("{number:?} is not a number")))?;
    let power = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 1,
        "M" | "MB" | "MIB" => 2,
        "G" | "GB" | "GIB" => 3,
        "T" | "TB" | "TIB" => 4,
        "P" | "PB" | "PIB" => 5,
        other => return Err(bad(format!("unknown unit {other:?}"))),
    };
    let bytes = value * 1024f64.powi(power);
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad("it is too large".into()));
    }
    if power == 0 && value.fract() != 0.0 {
        return Err(bad("a number of bytes is whole".into()));
    }
    Ok(bytes.round() as u64)
}

/// A duration for people, in the grammar's units: `2d 3h`, `15min`, `42s`.
pub fn format_duration(d: Duration) -> String {
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
    use proptest::prelude::*;

    const H: u64 = 3600;
    const D: u64 = 86_400;

    /// The grammar's table: every accepted form with its value.
    const ACCEPTED: &[(&str, u64)] = &[
        ("0", 0),
        ("90s", 90),
        ("45 sec", 45),
        ("15min", 900),
        ("2 minutes", 120),
        ("6h", 6 * H),
        ("1h 30min", 5400),
        ("1h30min", 5400),
        ("1.5h", 5400),
        ("2d", 2 * D),
        ("1.5d", 36 * H),
        ("1w", 7 * D),
        ("1w2d", 9 * D),
        ("90d12h", 90 * D + 12 * H),
        ("3mo", 90 * D),
        ("1 month", 30 * D),
        ("1y", 365 * D),
        ("7 years", 7 * 365 * D),
    ];

    /// Refused forms and a word the message must contain.
    const REFUSED: &[(&str, &str)] = &[
        ("", "empty"),
        ("30", "needs a unit"),
        ("1m", "ambiguous"),
        ("90M", "ambiguous"),
        ("3x", "unknown unit"),
        ("soon", "expected a number"),
        ("1.2.3h", "not a number"),
        ("10us", "unknown unit"),
        ("-1d", "expected a number"),
        ("99999999999999999999y", "too long"),
    ];

    #[test]
    fn durations_accepted_and_refused() {
        for (text, secs) in ACCEPTED {
            assert_eq!(
                parse_duration(text).map(|d| d.as_secs()),
                Ok(*secs),
                "{text}"
            );
        }
        for (text, word) in REFUSED {
            let e = parse_duration(text)
                .map(|_| ())
                .err()
                .map(|e| e.to_string());
            let e = e.unwrap_or_default();
            assert!(
                e.contains(word) && e.contains("units: ms, s, min, h, d, w, mo, y"),
                "{text}: {e}"
            );
        }
        assert!(parse_duration_min_1s("--grace", "0").is_err());
        assert!(parse_duration_min_1s("jitter", "10ms").is_err());
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(
            parse_duration_min_1s("every", "6h"),
            Ok(Duration::from_secs(6 * H))
        );
    }

    #[test]
    fn sizes_accepted_and_refused() {
        for (text, bytes) in [
            ("512", 512u64),
            ("512B", 512),
            ("64K", 64 << 10),
            ("64KiB", 64 << 10),
            ("1.5GiB", 3 << 29),
            ("500 GB", 500 << 30),
            ("2t", 2 << 40),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
        for text in ["", "G", "1.5", "12X", "1e3K", "99999999P"] {
            assert!(parse_size(text).is_err(), "{text}");
        }
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(format_duration(Duration::from_secs(2 * D + 3 * H)), "2d 3h");
        assert_eq!(format_duration(Duration::from_secs(900)), "15min");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        let round = format_duration(Duration::from_secs(90 * D + 5400 + 7));
        assert_eq!(
            parse_duration(&round).map(|d| d.as_secs()),
            Ok(90 * D + 5407)
        );
    }

    proptest! {
        #[test]
        fn no_input_panics(s in "\\PC*") {
            let _ = parse_duration(&s);
            let _ = parse_size(&s);
        }

        #[test]
        fn no_near_miss_panics(s in "[0-9. a-zA-Z]{0,24}") {
            let _ = parse_duration(&s);
            let _ = parse_size(&s);
        }

        #[test]
        fn formatted_durations_read_back(secs in 0u64..10_000_000_000) {
            let d = Duration::from_secs(secs);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
