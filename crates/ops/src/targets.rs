//! Recovery objectives and the runbook's schedule (`[targets]` in
//! lifeboat.toml): how long a recovery may take (RTO), how much data may be
//! lost (RPO), and how often drills and checks must run.

use chrono::Duration;
use serde::{Deserialize, Serialize};

use crate::error::{OpsError, Result};

/// `[targets]` as written: durations such as `500ms`, `15min`, `1.5h`, `30d`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetsConfig {
    /// Recovery time objective (default 1h).
    pub rto: Option<String>,
    /// Recovery point objective: the newest backup (and the WAL archive)
    /// may be at most this old (default 24h).
    pub rpo: Option<String>,
    /// A drill must have passed within this (default 30d: monthly).
    pub drill_every: Option<String>,
    /// `check` must have passed within this (default 7d: weekly).
    pub check_every: Option<String>,
}

/// The objectives in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Targets {
    /// Recovery time objective.
    pub rto: Duration,
    /// Recovery point objective.
    pub rpo: Duration,
    /// Drill interval.
    pub drill_every: Duration,
    /// Check interval.
    pub check_every: Duration,
}

impl Default for Targets {
    fn default() -> Self {
        Self {
            rto: Duration::hours(1),
            rpo: Duration::hours(24),
            drill_every: Duration::days(30),
            check_every: Duration::days(7),
        }
    }
}

impl Targets {
    /// Reads the configured values over the defaults.
    pub fn from_config(c: &TargetsConfig) -> Result<Self> {
        let d = Self::default();
        let read = |name: &str, v: &Option<String>, default: Duration| match v {
            None => Ok(default),
            Some(s) => {
                parse_target(s).map_err(|e| OpsError::Invalid(format!("[targets] {name}: {e}")))
            }
        };
        Ok(Self {
            rto: read("rto", &c.rto, d.rto)?,
            rpo: read("rpo", &c.rpo, d.rpo)?,
            drill_every: read("drill_every", &c.drill_every, d.drill_every)?,
            check_every: read("check_every", &c.check_every, d.check_every)?,
        })
    }
}

/// Parses an objective in lifeboat's one duration grammar (`90s`,
/// `15min`, `1.5h`, `30d`); it must be longer than zero.
pub fn parse_target(s: &str) -> std::result::Result<Duration, String> {
    let d = lifeboat_units::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err(format!(
            "{s:?} is zero: an objective must be longer than that"
        ));
    }
    Duration::from_std(d).map_err(|_| format!("{s:?} is too long"))
}

/// A measured figure against its objective.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// What was measured, in seconds.
    pub seconds: f64,
    /// The objective, in seconds.
    pub target_seconds: f64,
    /// Whether the measurement is within the objective.
    pub met: bool,
}

impl Measured {
    /// Compares `seconds` with `target`.
    pub fn against(seconds: f64, target: Duration) -> Self {
        let target_seconds = target.num_milliseconds() as f64 / 1000.0;
        Self {
            seconds,
            target_seconds,
            met: seconds <= target_seconds,
        }
    }
}

/// A duration in words for reports: `42.1s`, `12min 5s`, `3h 20min`, `2d 4h`.
pub fn human(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 1.0 {
        return format!("{}ms", (s * 1000.0).round());
    }
    if s < 60.0 {
        return format!("{s:.1}s");
    }
    let s = s.round() as u64;
    match s {
        0..3600 => format!("{}min {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}min", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_runbook_and_config_overrides() {
        let t = Targets::from_config(&TargetsConfig::default()).ok();
        assert_eq!(t, Some(Targets::default()));
        let t = Targets::from_config(&TargetsConfig {
            rto: Some("15min".into()),
            rpo: Some("5min".into()),
            ..TargetsConfig::default()
        });
        let t = t.ok().unwrap_or_default();
        assert_eq!(t.rto, Duration::minutes(15));
        assert_eq!(t.rpo, Duration::minutes(5));
        assert_eq!(t.drill_every, Duration::days(30));
        for bad in ["soon", "0s", "15 parsecs"] {
            let e = Targets::from_config(&TargetsConfig {
                rto: Some(bad.into()),
                ..TargetsConfig::default()
            });
            assert!(e.is_err(), "{bad}");
        }
    }

    #[test]
    fn measurements_compare_and_read_well() {
        assert!(Measured::against(59.0, Duration::minutes(1)).met);
        assert!(!Measured::against(61.0, Duration::minutes(1)).met);
        assert_eq!(human(4.25), "4.2s");
        assert_eq!(human(0.0123), "12ms");
        assert_eq!(parse_target("1.5h").ok(), Some(Duration::minutes(90)));
        assert_eq!(parse_target("1ms").ok(), Some(Duration::milliseconds(1)));
        assert!(parse_target("0").is_err());
        assert_eq!(human(725.0), "12min 5s");
        assert_eq!(human(12_000.0), "3h 20min");
        assert_eq!(human(187_200.0), "2d 4h");
    }
}
