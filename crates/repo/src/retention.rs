//! Which snapshots a retention policy keeps: a pure function of the policy,
//! the snapshots of one source and their pins.
//!
//! Calendar rules count UTC periods back from the newest snapshot of the
//! source (not from the clock), so a source whose backups stopped keeps its
//! history instead of ageing out. With `keep-daily 30`, the newest snapshot
//! of each of the 30 UTC days ending on the newest snapshot's day is kept:
//! newest snapshot 2026-11-23 10:00 keeps one per day from 2026-10-25 to
//! 2026-11-23 (days without snapshots count too). Weeks are ISO weeks
//! (Monday to Sunday), months and years calendar ones; `keep-weekly 13` is
//! "weekly for 3 months", `keep-monthly 12` "monthly for a year".
//! `keep-within 30d` keeps everything not older than 30 days before the
//! newest snapshot; `keep-kind pre-deploy=90d` the same, for one kind.
//! Pinned snapshots are always kept, and so is the base backup a PostgreSQL
//! cluster's point-in-time-recovery window starts from. A snapshot kept by several rules lists
//! them all.

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use lifeboat_format::Id;
use lifeboat_format::snapshot::BackupKind;
use serde::Serialize;

/// A calendar unit of the bucket rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// UTC hours.
    Hourly,
    /// UTC days.
    Daily,
    /// ISO weeks.
    Weekly,
    /// Calendar months.
    Monthly,
    /// Calendar years.
    Yearly,
}

impl Unit {
    /// Every unit, shortest first.
    pub const ALL: [Unit; 5] = [
        Unit::Hourly,
        Unit::Daily,
        Unit::Weekly,
        Unit::Monthly,
        Unit::Yearly,
    ];

    /// A number that grows by one from each period to the next.
    pub fn period(self, t: DateTime<Utc>) -> i64 {
        let days = t.date_naive().num_days_from_ce() as i64;
        match self {
            Unit::Hourly => days * 24 + t.hour() as i64,
            Unit::Daily => days,
            // Day 1 of the common era (0001-01-01) was a Monday.
            Unit::Weekly => (days - 1).div_euclid(7),
            Unit::Monthly => t.year() as i64 * 12 + t.month0() as i64,
            Unit::Yearly => t.year() as i64,
        }
    }

    /// When period number `period` (as [`Unit::period`] counts) begins.
    pub fn start(self, period: i64) -> Option<DateTime<Utc>> {
        let day = |days: i64| {
            chrono::NaiveDate::from_num_days_from_ce_opt(i32::try_from(days).ok()?)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        };
        match self {
            Unit::Hourly => {
                Some(day(period.div_euclid(24))? + Duration::hours(period.rem_euclid(24)))
            }
            Unit::Daily => day(period),
            Unit::Weekly => day(period * 7 + 1),
            Unit::Monthly => chrono::NaiveDate::from_ymd_opt(
                i32::try_from(period.div_euclid(12)).ok()?,
                u32::try_from(period.rem_euclid(12)).ok()? + 1,
                1,
            )
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc()),
            Unit::Yearly => chrono::NaiveDate::from_ymd_opt(i32::try_from(period).ok()?, 1, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc()),
        }
    }

    /// How the period of `t` is written in plans.
    pub fn label(self, t: DateTime<Utc>) -> String {
        match self {
            Unit::Hourly => t.format("%Y-%m-%d %H:00").to_string(),
            Unit::Daily => t.format("%Y-%m-%d").to_string(),
            Unit::Weekly => {
                let w = t.iso_week();
                format!("{}-W{:02}", w.year(), w.week())
            }
            Unit::Monthly => t.format("%Y-%m").to_string(),
            Unit::Yearly => t.format("%Y").to_string(),
        }
    }
}

/// A retention policy. In JSON it reads as the flags that give it:
/// `{"keep_daily": 30, "keep_within": "14d", "keep_kind": {"pre-deploy": "90d"}}`
/// (rules that keep nothing are left out).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Keep the newest N snapshots.
    pub keep_last: u32,
    /// Keep the newest snapshot of each of the last N periods, per unit
    /// (indexed like [`Unit::ALL`]).
    pub keep_periods: [u32; 5],
    /// Keep everything this young (relative to the newest snapshot).
    pub keep_within: Option<Duration>,
    /// Keep snapshots of a kind this young.
    pub keep_kind: Vec<(BackupKind, Duration)>,
}

impl Serialize for Policy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let human = |d: &Duration| lifeboat_units::format_duration(d.to_std().unwrap_or_default());
        let mut map = serializer.serialize_map(None)?;
        if self.keep_last > 0 {
            map.serialize_entry("keep_last", &self.keep_last)?;
        }
        for (unit, n) in Unit::ALL.iter().zip(self.keep_periods) {
            if n > 0 {
                let name = serde_json::to_value(unit)
                    .ok()
                    .and_then(|v| v.as_str().map(|u| format!("keep_{u}")))
                    .unwrap_or_default();
                map.serialize_entry(&name, &n)?;
            }
        }
        if let Some(w) = &self.keep_within {
            map.serialize_entry("keep_within", &human(w))?;
        }
        if !self.keep_kind.is_empty() {
            let kinds: std::collections::BTreeMap<&str, String> = self
                .keep_kind
                .iter()
                .map(|(k, d)| (k.as_str(), human(d)))
                .collect();
            map.serialize_entry("keep_kind", &kinds)?;
        }
        map.end()
    }
}

impl Policy {
    /// The old runbook's policy: daily for 30 days, weekly for 3 months,
    /// monthly for a year, yearly for 7 years, pre-deploy backups 90 days.
    pub fn runbook() -> Self {
        Self {
            keep_last: 0,
            keep_periods: [0, 30, 13, 12, 7],
            keep_within: None,
            keep_kind: vec![(BackupKind::PreDeploy, Duration::days(90))],
        }
    }

    /// True when the policy keeps nothing (and would remove everything).
    pub fn is_empty(&self) -> bool {
        self.keep_last == 0
            && self.keep_periods.iter().all(|&n| n == 0)
            && self.keep_within.is_none()
            && self.keep_kind.is_empty()
    }
}

/// A default policy and per-source overrides (from lifeboat.toml).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PolicySet {
    /// For sources no override matches.
    pub default: Policy,
    /// `(pattern, policy)`: the first whose pattern the source description
    /// ("host kind paths") contains applies. In JSON, a list of
    /// `{"match": PATTERN, "policy": {...}}`.
    #[serde(serialize_with = "serialize_overrides")]
    pub sources: Vec<(String, Policy)>,
}

fn serialize_overrides<S: serde::Serializer>(
    overrides: &[(String, Policy)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = serializer.serialize_seq(Some(overrides.len()))?;
    for (pattern, policy) in overrides {
        seq.serialize_element(&serde_json::json!({
            "match": pattern,
            "policy": policy,
        }))?;
    }
    seq.end()
}

impl PolicySet {
    /// One policy for every source.
    pub fn single(policy: Policy) -> Self {
        Self {
            default: policy,
            sources: Vec::new(),
        }
    }

    /// The policy for `source` and the pattern that chose it (None: the default).
    pub fn for_source(&self, source: &str) -> (&Policy, Option<&str>) {
        self.sources
            .iter()
            .find(|(pattern, _)| source.contains(pattern.as_str()))
            .map(|(p, policy)| (policy, Some(p.as_str())))
            .unwrap_or((&self.default, None))
    }

    /// The first policy that keeps nothing, if any (refused: it would remove everything).
    pub fn empty_one(&self) -> Option<&str> {
        if self.default.is_empty() {
            return Some("the default");
        }
        self.sources
            .iter()
            .find(|(_, p)| p.is_empty())
            .map(|(pattern, _)| pattern.as_str())
    }
}

/// One snapshot as the policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Its id.
    pub id: Id,
    /// When it was taken.
    pub time: DateTime<Utc>,
    /// Why it was taken.
    pub kind: BackupKind,
    /// Pinned (legal hold).
    pub pinned: bool,
    /// The base backup the point-in-time-recovery window starts from.
    pub window_base: bool,
}

/// Why a snapshot is kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum Reason {
    /// It is pinned.
    Pinned,
    /// The point-in-time-recovery window starts from it.
    PitrWindow,
    /// One of the newest N.
    Last {
        /// Its rank, 1 = newest.
        rank: u32,
    },
    /// The newest of its period.
    Period {
        /// The unit.
        unit: Unit,
        /// The period, e.g. "2026-W47".
        period: String,
    },
    /// Young enough for keep-within.
    Within,
    /// Young enough for its kind's rule.
    Kind {
        /// The kind.
        kind: String,
    },
}

/// The decision for one snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The snapshot.
    pub id: Id,
    /// When it was taken.
    pub time: DateTime<Utc>,
    /// Kept (reasons non-empty) or removed.
    pub keep: bool,
    /// Every rule that keeps it.
    pub reasons: Vec<Reason>,
}

/// Applies `policy` to the snapshots of one source. Returns one decision per
/// snapshot, newest first.
pub fn apply(policy: &Policy, snapshots: &[Candidate]) -> Vec<Decision> {
    let mut sorted: Vec<&Candidate> = snapshots.iter().collect();
    // Newest first; equal times in a fixed order.
    sorted.sort_by(|a, b| b.time.cmp(&a.time).then(b.id.cmp(&a.id)));
    let Some(newest) = sorted.first().map(|c| c.time) else {
        return Vec::new();
    };
    let mut out: Vec<Decision> = sorted
        .iter()
        .map(|c| Decision {
            id: c.id,
            time: c.time,
            keep: false,
            reasons: Vec::new(),
        })
        .collect();
    for (i, c) in sorted.iter().enumerate() {
        let reasons = &mut out[i].reasons;
        if c.pinned {
            reasons.push(Reason::Pinned);
        }
        if c.window_base {
            reasons.push(Reason::PitrWindow);
        }
        if (i as u64) < u64::from(policy.keep_last) {
            reasons.push(Reason::Last { rank: i as u32 + 1 });
        }
    }
    for (u, unit) in Unit::ALL.iter().enumerate() {
        let n = policy.keep_periods[u];
        if n == 0 {
            continue;
        }
        let top = unit.period(newest);
        let mut last_period = None;
        for (i, c) in sorted.iter().enumerate() {
            let p = unit.period(c.time);
            if p <= top - i64::from(n) {
                break;
            }
            // Sorted newest first: the first one met in a period is its newest.
            if last_period != Some(p) {
                last_period = Some(p);
                out[i].reasons.push(Reason::Period {
                    unit: *unit,
                    period: unit.label(c.time),
                });
            }
        }
    }
    for (i, c) in sorted.iter().enumerate() {
        if let Some(d) = policy.keep_within
            && c.time >= newest - d
        {
            out[i].reasons.push(Reason::Within);
        }
        for (kind, d) in &policy.keep_kind {
            if c.kind == *kind && c.time >= newest - *d {
                out[i].reasons.push(Reason::Kind {
                    kind: kind.as_str().into(),
                });
            }
        }
    }
    for d in &mut out {
        d.keep = !d.reasons.is_empty();
    }
    out
}

/// When a snapshot kept today for `reasons` will no longer be kept, if
/// backups go on as they have (a new one every `cadence`, so the newest
/// snapshot keeps pace with the clock `now`): the latest moment any of its
/// reasons still holds. `None` when it is pinned (kept until unpinned).
/// A calendar rule keeps it while its period is among the last N; one
/// whose period has not ended yet is expected to pass that rule on to a
/// newer snapshot of the same period when the period ends.
pub fn expiry(
    policy: &Policy,
    time: DateTime<Utc>,
    reasons: &[Reason],
    now: DateTime<Utc>,
    cadence: Duration,
    pitr_window: Duration,
) -> Option<DateTime<Utc>> {
    let mut latest = now;
    for reason in reasons {
        let until = match reason {
            Reason::Pinned => return None,
            Reason::PitrWindow => now + cadence + pitr_window,
            Reason::Last { rank } => {
                now + cadence * (policy.keep_last.saturating_sub(*rank) as i32 + 1)
            }
            Reason::Period { unit, .. } => {
                let n = Unit::ALL
                    .iter()
                    .position(|u| u == unit)
                    .map(|i| policy.keep_periods[i])
                    .unwrap_or(0);
                let own = unit.period(time);
                if unit.period(now) > own {
                    unit.start(own + i64::from(n)).unwrap_or(now)
                } else {
                    unit.start(own + 1).unwrap_or(now)
                }
            }
            Reason::Within => time + policy.keep_within.unwrap_or_default(),
            Reason::Kind { kind } => {
                time + policy
                    .keep_kind
                    .iter()
                    .filter(|(k, _)| k.as_str() == kind)
                    .map(|(_, d)| *d)
                    .max()
                    .unwrap_or_default()
            }
        };
        latest = latest.max(until);
    }
    Some(latest)
}

/// Parses a duration in lifeboat's one grammar (`30d`, `12h`, `2w`,
/// `90d12h`, `3mo`, `1y`); the error lists the units.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, lifeboat_units::UnitError> {
    let d = lifeboat_units::parse_duration(s)?;
    Ok(Duration::seconds(
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn cand(n: u8, time: DateTime<Utc>) -> Candidate {
        Candidate {
            id: Id::from_bytes([n; 32]),
            time,
            kind: BackupKind::Scheduled,
            pinned: false,
            window_base: false,
        }
    }

    fn kept(policy: &Policy, c: &[Candidate]) -> Vec<u8> {
        let mut v: Vec<u8> = apply(policy, c)
            .into_iter()
            .filter(|d| d.keep)
            .map(|d| d.id.as_bytes()[0])
            .collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn periods_are_utc_calendar_periods() {
        // 2026-11-23 is a Monday (ISO week 48); 2026-11-22 a Sunday (week 47).
        assert_eq!(Unit::Weekly.label(at(2026, 11, 23, 0)), "2026-W48");
        assert_eq!(Unit::Weekly.label(at(2026, 11, 22, 23)), "2026-W47");
        assert_eq!(
            Unit::Weekly.period(at(2026, 11, 23, 0)),
            Unit::Weekly.period(at(2026, 11, 22, 23)) + 1
        );
        assert_eq!(
            Unit::Weekly.period(at(2026, 11, 29, 23)),
            Unit::Weekly.period(at(2026, 11, 23, 0))
        );
        assert_eq!(
            Unit::Monthly.period(at(2027, 1, 1, 0)),
            Unit::Monthly.period(at(2026, 12, 31, 23)) + 1
        );
        assert_eq!(
            Unit::Daily.period(at(2026, 11, 23, 0)),
            Unit::Daily.period(at(2026, 11, 22, 23)) + 1
        );
        assert_eq!(Unit::Hourly.label(at(2026, 11, 23, 7)), "2026-11-23 07:00");
    }

    #[test]
    fn keep_daily_counts_calendar_days_back_from_the_newest() {
        // Three snapshots on the 23rd, one on the 21st, one on the 19th.
        let c = [
            cand(1, at(2026, 11, 23, 1)),
            cand(2, at(2026, 11, 23, 5)),
            cand(3, at(2026, 11, 23, 9)),
            cand(4, at(2026, 11, 21, 9)),
            cand(5, at(2026, 11, 19, 9)),
        ];
        let p = |n| Policy {
            keep_periods: [0, n, 0, 0, 0],
            ..Policy::default()
        };
        assert_eq!(kept(&p(1), &c), [3]);
        // Three days: the 23rd, 22nd (empty) and 21st.
        assert_eq!(kept(&p(3), &c), [3, 4]);
        assert_eq!(kept(&p(5), &c), [3, 4, 5]);
    }

    #[test]
    fn last_within_kind_and_pins() {
        let mut c = vec![
            cand(1, at(2026, 1, 1, 0)),
            cand(2, at(2026, 6, 1, 0)),
            cand(3, at(2026, 11, 1, 0)),
            cand(4, at(2026, 11, 20, 0)),
        ];
        c[0].pinned = true;
        c[1].kind = BackupKind::PreDeploy;
        let p = Policy {
            keep_last: 1,
            keep_within: Some(Duration::days(30)),
            keep_kind: vec![(BackupKind::PreDeploy, Duration::days(200))],
            ..Policy::default()
        };
        assert_eq!(kept(&p, &c), [1, 2, 3, 4]);
        let d = apply(&p, &c);
        assert_eq!(d[0].reasons, [Reason::Last { rank: 1 }, Reason::Within]);
        assert_eq!(d[3].reasons, [Reason::Pinned]);
        let p = Policy {
            keep_last: 1,
            ..Policy::default()
        };
        assert_eq!(kept(&p, &c), [1, 4]);
        assert!(Policy::default().is_empty());
        assert!(!Policy::runbook().is_empty());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d").ok(), Some(Duration::days(30)));
        assert_eq!(parse_duration("1w2d").ok(), Some(Duration::days(9)));
        assert_eq!(parse_duration("12h").ok(), Some(Duration::hours(12)));
        assert_eq!(parse_duration("1mo").ok(), Some(Duration::days(30)));
        assert!(parse_duration("1m").is_err());
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("3x").is_err());
        assert!(parse_duration("").is_err());
    }

    /// An independent statement of the rules, one snapshot at a time: kept
    /// if pinned, among the newest `keep_last`, the newest of a period no
    /// more than N-1 periods before the newest snapshot's, or young enough.
    fn reference(policy: &Policy, c: &[Candidate]) -> Vec<Id> {
        let Some(newest) = c.iter().map(|x| x.time).max() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for x in c {
            let newer = c.iter().filter(|y| (y.time, y.id) > (x.time, x.id)).count() as u64;
            let mut keep = x.pinned || x.window_base || newer < u64::from(policy.keep_last);
            for (u, unit) in Unit::ALL.iter().enumerate() {
                let n = i64::from(policy.keep_periods[u]);
                let p = unit.period(x.time);
                let newest_in_period = !c
                    .iter()
                    .any(|y| unit.period(y.time) == p && (y.time, y.id) > (x.time, x.id));
                if n > 0 && newest_in_period && unit.period(newest) - p < n {
                    keep = true;
                }
            }
            keep |= policy.keep_within.is_some_and(|d| x.time >= newest - d);
            keep |= policy
                .keep_kind
                .iter()
                .any(|(k, d)| x.kind == *k && x.time >= newest - *d);
            if keep {
                out.push(x.id);
            }
        }
        out.sort();
        out
    }

    /// Random histories over 8 years against the reference, many seeds.
    #[test]
    fn matches_the_reference_on_random_histories() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let start = at(2019, 1, 1, 0);
        for _ in 0..400 {
            let n = 1 + (next() % 200) as usize;
            let span_h = 8 * 365 * 24;
            let mut c: Vec<Candidate> = (0..n)
                .map(|i| {
                    let mut x = cand(
                        (i % 251) as u8,
                        start + Duration::hours((next() % span_h) as i64),
                    );
                    // Distinct ids: the first byte for the test, the rest unique.
                    let mut b = [0u8; 32];
                    b[0] = (i % 251) as u8;
                    b[1..9].copy_from_slice(&(i as u64).to_le_bytes());
                    x.id = Id::from_bytes(b);
                    x.pinned = next() % 50 == 0;
                    x.window_base = next() % 70 == 0;
                    x.kind = match next() % 3 {
                        0 => BackupKind::PreDeploy,
                        1 => BackupKind::Manual,
                        _ => BackupKind::Scheduled,
                    };
                    x
                })
                .collect();
            if n > 3 {
                // Some snapshots share a time exactly.
                let t = c[0].time;
                c[1].time = t;
            }
            let p = Policy {
                keep_last: (next() % 4) as u32,
                keep_periods: [
                    (next() % 30) as u32,
                    (next() % 40) as u32,
                    (next() % 20) as u32,
                    (next() % 15) as u32,
                    (next() % 9) as u32,
                ],
                keep_within: (next() % 2 == 0).then(|| Duration::hours((next() % 2000) as i64)),
                keep_kind: if next() % 2 == 0 {
                    vec![(BackupKind::PreDeploy, Duration::days((next() % 400) as i64))]
                } else {
                    Vec::new()
                },
            };
            let mut got: Vec<Id> = apply(&p, &c)
                .into_iter()
                .filter(|d| d.keep)
                .map(|d| d.id)
                .collect();
            got.sort();
            assert_eq!(got, reference(&p, &c), "policy {p:?}");
        }
    }

    #[test]
    fn a_snapshot_kept_yearly_expires_when_its_year_leaves_the_window() {
        let t = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .map(|d| d.with_timezone(&Utc))
                .unwrap_or_default()
        };
        let policy = Policy::runbook();
        let year = Reason::Period {
            unit: Unit::Yearly,
            period: "2025".into(),
        };
        let day = Reason::Period {
            unit: Unit::Daily,
            period: "2025-12-31".into(),
        };
        let now = t("2026-03-01T00:00:00Z");
        let when = expiry(
            &policy,
            t("2025-12-31T02:00:00Z"),
            &[day, year],
            now,
            Duration::days(1),
            Duration::days(30),
        );
        assert_eq!(when, Some(t("2032-01-01T00:00:00Z")));
        // A daily of a day that has ended goes 30 days after it began.
        let d = Reason::Period {
            unit: Unit::Daily,
            period: "2026-02-20".into(),
        };
        let when = expiry(
            &policy,
            t("2026-02-20T02:00:00Z"),
            &[d],
            now,
            Duration::days(1),
            Duration::days(30),
        );
        assert_eq!(when, Some(t("2026-03-22T00:00:00Z")));
        // This month's monthly passes to a newer snapshot when the month ends.
        let m = Reason::Period {
            unit: Unit::Monthly,
            period: "2026-03".into(),
        };
        let when = expiry(
            &policy,
            t("2026-03-01T00:00:00Z"),
            &[m],
            now,
            Duration::days(1),
            Duration::days(30),
        );
        assert_eq!(when, Some(t("2026-04-01T00:00:00Z")));
        assert_eq!(
            expiry(
                &policy,
                now,
                &[Reason::Pinned],
                now,
                Duration::days(1),
                Duration::days(30)
            ),
            None
        );
        for unit in Unit::ALL {
            let p = unit.period(now);
            assert_eq!(unit.start(p).map(|s| unit.period(s)), Some(p), "{unit:?}");
        }
    }
}
