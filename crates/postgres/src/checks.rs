//! User-defined data checks (`[[check]]` in lifeboat.toml): a query whose
//! first value must equal a string, lie within numeric bounds, or be a time
//! no older than a maximum age. Run against a live database by
//! `verify-data`, and against restored copies by drills.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

/// One check as configured.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// Shown in reports.
    pub name: String,
    /// A query returning one row; its first column is judged.
    pub sql: String,
    /// The database to run it in, where lifeboat picks the connection
    /// (drills and recoveries); default: the backup's main database.
    pub database: Option<String>,
    /// The value, as text, must equal this.
    pub expect: Option<String>,
    /// The value, as a number, must be at least this.
    pub min: Option<f64>,
    /// The value, as a number, must be at most this.
    pub max: Option<f64>,
    /// The value, a timestamp, must be no older than this before the
    /// reference time (e.g. "24h", "90min", "7d").
    pub max_age: Option<String>,
}

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// Its query.
    pub sql: String,
    /// The value found (text form), if the query ran.
    pub value: Option<String>,
    /// Whether it passed.
    pub passed: bool,
    /// Why it failed (or what it required, when it passed).
    pub detail: String,
}

/// Parses `max_age` in lifeboat's one duration grammar (`90min`, `1h`, `2d`).
pub fn parse_age(s: &str) -> Option<Duration> {
    let d = lifeboat_units::parse_duration(s).ok()?;
    Duration::from_std(d).ok()
}

impl CheckSpec {
    /// Why this check is unusable as configured, if it is.
    pub fn problem(&self) -> Option<String> {
        if self.name.trim().is_empty() || self.sql.trim().is_empty() {
            return Some("every [[check]] needs `name` and `sql`".into());
        }
        if self.expect.is_none()
            && self.min.is_none()
            && self.max.is_none()
            && self.max_age.is_none()
        {
            return Some(format!(
                "check {:?} has no condition: give expect, min, max or max_age",
                self.name
            ));
        }
        if let Some(a) = &self.max_age
            && let Err(e) = lifeboat_units::parse_duration(a)
        {
            return Some(format!("check {:?}: max_age: {e}", self.name));
        }
        None
    }

    /// Judges `value` (None: SQL NULL or no row) at `reference`.
    pub fn judge(&self, value: Option<&str>, reference: DateTime<Utc>) -> (bool, String) {
        let mut failures = Vec::new();
        let mut wanted = Vec::new();
        if let Some(e) = &self.expect {
            wanted.push(format!("= {e:?}"));
            if value != Some(e.as_str()) {
                failures.push(format!("expected {e:?}"));
            }
        }
        let number = value.and_then(|v| v.trim().parse::<f64>().ok());
        if let Some(m) = self.min {
            wanted.push(format!(">= {m}"));
            if number.is_none_or(|n| n < m) {
                failures.push(format!("expected at least {m}"));
            }
        }
        if let Some(m) = self.max {
            wanted.push(format!("<= {m}"));
            if number.is_none_or(|n| n > m) {
                failures.push(format!("expected at most {m}"));
            }
        }
        if let Some(age) = self.max_age.as_deref() {
            wanted.push(format!("no older than {age}"));
            let limit = parse_age(age).unwrap_or_else(Duration::zero);
            let time = value.and_then(|v| {
                DateTime::parse_from_rfc3339(v.trim())
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            });
            match time {
                Some(t) if reference - t <= limit => {}
                Some(t) => failures.push(format!(
                    "it is {} old, more than {age} before {}",
                    describe_age(reference - t),
                    reference.format("%Y-%m-%d %H:%M:%S UTC")
                )),
                None => failures.push("expected a timestamp".into()),
            }
        }
        if failures.is_empty() {
            (true, wanted.join(", "))
        } else {
            (false, failures.join("; "))
        }
    }
}

fn describe_age(d: Duration) -> String {
    let s = d.num_seconds();
    if s >= 2 * 86400 {
        format!("{}d", s / 86400)
    } else if s >= 2 * 3600 {
        format!("{}h", s / 3600)
    } else if s >= 120 {
        format!("{}min", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Reads the first column of the first row as text (timestamps as RFC 3339
/// in UTC, so `max_age` can judge them).
async fn first_value(client: &Client, sql: &str) -> Result<Option<String>, String> {
    let wrapped = format!("SELECT v::text, pg_typeof(v)::text FROM ({sql}) AS q(v) LIMIT 1");
    // Timestamps print in ISO form in UTC for parsing.
    client
        .batch_execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO'")
        .await
        .map_err(|e| e.to_string())?;
    let rows = client
        .query(wrapped.as_str(), &[])
        .await
        .map_err(|e| match e.as_db_error() {
            Some(db) => db.message().to_string(),
            None => e.to_string(),
        })?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let value: Option<String> = row.try_get(0).map_err(|e| e.to_string())?;
    let kind: String = row.try_get(1).map_err(|e| e.to_string())?;
    Ok(value.map(|v| {
        if kind.starts_with("timestamp") {
            // "2026-11-23 08:00:00.123+00" → RFC 3339.
            let v = v.replacen(' ', "T", 1);
            if v.ends_with("+00") {
                format!("{v}:00")
            } else if kind == "timestamp without time zone" {
                format!("{v}Z")
            } else {
                v
            }
        } else {
            v
        }
    }))
}

/// Runs every check on `client`, judging ages against `reference`.
pub async fn run(
    client: &Client,
    specs: &[CheckSpec],
    reference: DateTime<Utc>,
) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for spec in specs {
        let (value, passed, detail) = match first_value(client, &spec.sql).await {
            Ok(value) => {
                let (passed, detail) = spec.judge(value.as_deref(), reference);
                (value, passed, detail)
            }
            Err(e) => (None, false, format!("the query failed: {e}")),
        };
        out.push(CheckResult {
            name: spec.name.clone(),
            sql: spec.sql.clone(),
            value,
            passed,
            detail,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn conditions_are_judged() {
        let now = at("2026-11-23T12:00:00Z");
        let count = CheckSpec {
            name: "orders".into(),
            sql: "SELECT count(*) FROM orders".into(),
            min: Some(1.0),
            max: Some(10.0),
            ..CheckSpec::default()
        };
        assert!(count.judge(Some("5"), now).0);
        assert!(!count.judge(Some("0"), now).0);
        assert!(!count.judge(Some("11"), now).0);
        assert!(!count.judge(Some("many"), now).0);
        assert!(!count.judge(None, now).0);
        let fresh = CheckSpec {
            name: "fresh".into(),
            sql: "SELECT max(at) FROM orders".into(),
            max_age: Some("24h".into()),
            ..CheckSpec::default()
        };
        assert!(fresh.judge(Some("2026-11-23T00:00:00+00:00"), now).0);
        let (ok, why) = fresh.judge(Some("2026-11-21T00:00:00+00:00"), now);
        assert!(!ok);
        assert!(why.contains("2d old"), "{why}");
        let exact = CheckSpec {
            name: "version".into(),
            sql: "SELECT 1".into(),
            expect: Some("42".into()),
            ..CheckSpec::default()
        };
        assert!(exact.judge(Some("42"), now).0);
        assert!(!exact.judge(Some("41"), now).0);
        assert!(
            CheckSpec {
                name: "x".into(),
                sql: "SELECT 1".into(),
                ..CheckSpec::default()
            }
            .problem()
            .is_some()
        );
        assert_eq!(parse_age("90min"), Some(Duration::minutes(90)));
        assert_eq!(parse_age("1m"), None);
        assert_eq!(parse_age("1.5d"), Some(Duration::hours(36)));
    }
}
