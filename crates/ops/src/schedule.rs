//! When jobs run: a 5-field cron expression in a time zone (default UTC),
//! or a fixed interval, plus an optional deterministic jitter.
//!
//! Everything here is a pure function of the schedule and the times given,
//! so the daemon's rules (no doubled catch-up, skipped overlaps) are
//! decided by tested arithmetic, not by timers.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;

use crate::error::{OpsError, Result};

/// When a job fires.
#[derive(Clone, Debug)]
pub enum Timing {
    /// A cron expression read in a time zone.
    Cron {
        /// The parsed expression.
        cron: Box<Cron>,
        /// The expression as written.
        expr: String,
        /// The zone its fields are read in.
        tz: Tz,
    },
    /// Every this long, counted from the Unix epoch (so fire times do not
    /// drift with restarts).
    Every(Duration),
}

/// A job's schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// When it fires.
    pub timing: Timing,
    /// A delay added to every fire time, the same for every fire of one job
    /// (derived from its name), so jobs with the same schedule spread out.
    pub jitter: Duration,
}

impl Schedule {
    /// A cron schedule (`expr` with 5 fields) in time zone `tz` (an IANA
    /// name such as `UTC` or `Europe/Berlin`).
    pub fn cron(expr: &str, tz: &str) -> Result<Self> {
        let fields = expr.split_whitespace().count();
        if fields != 5 {
            return Err(OpsError::Invalid(format!(
                "schedule {expr:?} has {fields} fields; a cron expression has 5: minute hour day-of-month month day-of-week (e.g. \"0 2 * * *\")"
            )));
        }
        let cron = Cron::from_str(expr).map_err(|e| {
            OpsError::Invalid(format!("schedule {expr:?} is not a cron expression: {e}"))
        })?;
        let tz: Tz = tz.parse().map_err(|_| {
            OpsError::Invalid(format!(
                "timezone {tz:?} is not a time zone name (e.g. \"UTC\", \"Europe/Berlin\")"
            ))
        })?;
        Ok(Self {
            timing: Timing::Cron {
                cron: Box::new(cron),
                expr: expr.to_string(),
                tz,
            },
            jitter: Duration::ZERO,
        })
    }

    /// A fixed interval.
    pub fn every(d: Duration) -> Self {
        Self {
            timing: Timing::Every(d.max(Duration::from_secs(1))),
            jitter: Duration::ZERO,
        }
    }

    /// Adds a jitter of up to `max`, fixed for `seed` (the job's name).
    pub fn with_jitter(mut self, max: Duration, seed: &str) -> Self {
        let h = blake3::hash(seed.as_bytes());
        let n = u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap_or([0; 8]));
        self.jitter = Duration::from_secs(n % max.as_secs().max(1));
        self
    }

    /// The first fire time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let base = t - chrono::Duration::from_std(self.jitter).ok()?;
        let fire = match &self.timing {
            Timing::Every(d) => {
                let step = d.as_secs().max(1) as i64;
                let s = base.timestamp().div_euclid(step) * step + step;
                Utc.timestamp_opt(s, 0).single()?
            }
            Timing::Cron { cron, tz, .. } => {
                let local = base.with_timezone(tz).with_nanosecond(0)?;
                cron.find_next_occurrence(&local, false)
                    .ok()?
                    .with_timezone(&Utc)
            }
        };
        Some(fire + chrono::Duration::from_std(self.jitter).ok()?)
    }

    /// The last fire time at or before `t`, if one exists after `since`.
    pub fn last_fire_between(
        &self,
        since: DateTime<Utc>,
        t: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut last = None;
        let mut cursor = since;
        // Bounded: a schedule that fires more than this often in a
        // downtime still yields its latest fire, found by skipping ahead.
        for _ in 0..10_000 {
            match self.next_after(cursor) {
                Some(f) if f <= t => {
                    last = Some(f);
                    cursor = f;
                }
                _ => return last,
            }
        }
        // Very frequent: jump close to `t` and finish from there.
        let near = t - chrono::Duration::days(2);
        let mut cursor = near.max(cursor);
        while let Some(f) = self.next_after(cursor).filter(|f| *f <= t) {
            last = Some(f);
            cursor = f;
        }
        last
    }

    /// The next `n` fire times after `t`.
    pub fn upcoming(&self, t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut cursor = t;
        while out.len() < n {
            match self.next_after(cursor) {
                Some(f) => {
                    out.push(f);
                    cursor = f;
                }
                None => break,
            }
        }
        out
    }

    /// The schedule in words, e.g. `0 2 * * * (UTC): At 02:00` or `every 6h`.
    pub fn describe(&self) -> String {
        let mut s = match &self.timing {
            Timing::Every(d) => format!("every {}", crate::duration::human(*d)),
            Timing::Cron { cron, expr, tz } => {
                let words = cron.describe();
                format!("{expr} ({tz}): {}", words.trim_end_matches('.'))
            }
        };
        if !self.jitter.is_zero() {
            s.push_str(&format!(
                ", {} later (jitter)",
                crate::duration::human(self.jitter)
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn cron_fires_in_its_time_zone_and_intervals_from_the_epoch() {
        let utc = Schedule::cron("0 2 * * *", "UTC").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            utc.next_after(at("2026-11-30T02:00:00Z")),
            Some(at("2026-12-01T02:00:00Z"))
        );
        assert_eq!(
            utc.next_after(at("2026-11-30T01:59:59.5Z")),
            Some(at("2026-11-30T02:00:00Z"))
        );
        // 02:00 in Berlin is 01:00 UTC in winter.
        let berlin = Schedule::cron("0 2 * * *", "Europe/Berlin").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            berlin.next_after(at("2026-11-30T00:00:00Z")),
            Some(at("2026-11-30T01:00:00Z"))
        );
        let six = Schedule::every(Duration::from_secs(6 * 3600));
        assert_eq!(
            six.next_after(at("2026-11-30T07:00:00Z")),
            Some(at("2026-11-30T12:00:00Z"))
        );
        assert_eq!(six.upcoming(at("2026-11-30T07:00:00Z"), 3).len(), 3);
    }

    #[test]
    fn bad_schedules_are_refused_with_the_reason() {
        let e = |expr: &str, tz: &str| {
            Schedule::cron(expr, tz)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(e("61 * * * *", "UTC").contains("not a cron expression"));
        assert!(e("* * * *", "UTC").contains("has 4 fields"));
        assert!(e("0 2 * * *", "Mars/Olympus").contains("not a time zone"));
    }

    #[test]
    fn downtime_yields_only_the_latest_missed_fire() {
        let hourly = Schedule::cron("0 * * * *", "UTC").unwrap_or_else(|e| panic!("{e}"));
        // Down from 03:30 to 09:10: five fires missed, one to catch up.
        assert_eq!(
            hourly.last_fire_between(at("2026-11-30T03:30:00Z"), at("2026-11-30T09:10:00Z")),
            Some(at("2026-11-30T09:00:00Z"))
        );
        assert_eq!(
            hourly.last_fire_between(at("2026-11-30T09:00:00Z"), at("2026-11-30T09:10:00Z")),
            None
        );
        let fast = Schedule::every(Duration::from_secs(1));
        assert_eq!(
            fast.last_fire_between(at("2026-01-01T00:00:00Z"), at("2026-11-30T09:10:00Z")),
            Some(at("2026-11-30T09:10:00Z"))
        );
    }

    #[test]
    fn jitter_is_the_same_for_every_fire_of_a_job() {
        let a = Schedule::every(Duration::from_secs(3600))
            .with_jitter(Duration::from_secs(600), "nightly");
        let b = Schedule::every(Duration::from_secs(3600))
            .with_jitter(Duration::from_secs(600), "nightly");
        assert_eq!(a.jitter, b.jitter);
        assert!(a.jitter < Duration::from_secs(600));
        let f = a.upcoming(at("2026-11-30T00:00:00Z"), 2);
        assert_eq!(f[1] - f[0], chrono::Duration::hours(1));
    }
}
