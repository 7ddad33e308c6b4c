//! Alerts: built-in rules over what the daemon knows, sent through the
//! configured routes once when they start to hold, again every `repeat`
//! while they hold, and once more as resolved.
//!
//! - [`rules`]: what holds now (a pure function of the facts);
//! - [`routes`]: webhooks (plain JSON or Slack-compatible), e-mail over
//!   SMTP, commands, and the heartbeat.

pub mod routes;
pub mod rules;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Something that holds and someone should know.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// Stable identity, e.g. `job-failed:backup prod`.
    pub key: String,
    /// One line.
    pub summary: String,
    /// What is known, and what to do.
    pub detail: String,
}

/// Whether an alert starts (or still) holds, or has ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It holds.
    Firing,
    /// It held and no longer does.
    Resolved,
}

/// One message to send.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// Firing or resolved.
    pub status: Status,
    /// The alert.
    #[serde(flatten)]
    pub alert: Alert,
    /// When it started to hold.
    pub since: DateTime<Utc>,
    /// Where it comes from.
    pub host: String,
    /// A repeat of an alert already sent.
    pub repeat: bool,
}

impl Notification {
    /// The message as one line of text, for chat and subjects.
    pub fn text(&self) -> String {
        match self.status {
            Status::Firing => format!(
                "[lifeboat{}] {}{}",
                if self.host.is_empty() {
                    String::new()
                } else {
                    format!(" {}", self.host)
                },
                self.alert.summary,
                if self.repeat { " (still)" } else { "" }
            ),
            Status::Resolved => format!(
                "[lifeboat{}] resolved: {}",
                if self.host.is_empty() {
                    String::new()
                } else {
                    format!(" {}", self.host)
                },
                self.alert.summary
            ),
        }
    }
}

/// Which alerts hold and when each was last sent: `key → (since, last sent)`.
pub type Sent = BTreeMap<String, (DateTime<Utc>, DateTime<Utc>)>;

/// Decides what to send, given what holds now and what was sent before:
/// new alerts fire, alerts that still hold fire again once `repeat` has
/// passed since they were last sent, alerts that no longer hold resolve.
/// `sent` is updated.
pub fn decide(
    holding: &[Alert],
    sent: &mut Sent,
    now: DateTime<Utc>,
    repeat: Duration,
    host: &str,
) -> Vec<Notification> {
    let mut out = Vec::new();
    let repeat = chrono::Duration::from_std(repeat).unwrap_or(chrono::Duration::hours(4));
    for a in holding {
        let (since, again) = match sent.get(&a.key) {
            None => (now, false),
            Some((since, last)) if now - *last >= repeat => (*since, true),
            Some(_) => continue,
        };
        sent.insert(a.key.clone(), (since, now));
        out.push(Notification {
            status: Status::Firing,
            alert: a.clone(),
            since,
            host: host.to_string(),
            repeat: again,
        });
    }
    let gone: Vec<String> = sent
        .keys()
        .filter(|k| !holding.iter().any(|a| &a.key == *k))
        .cloned()
        .collect();
    for key in gone {
        if let Some((since, _)) = sent.remove(&key) {
            out.push(Notification {
                status: Status::Resolved,
                alert: Alert {
                    summary: format!("{key} no longer holds"),
                    detail: String::new(),
                    key,
                },
                since,
                host: host.to_string(),
                repeat: false,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(key: &str) -> Alert {
        Alert {
            key: key.into(),
            summary: format!("{key} holds"),
            detail: String::new(),
        }
    }

    #[test]
    fn an_alert_is_sent_once_repeated_at_its_interval_and_resolved() {
        let mut sent = Sent::new();
        let t0 = Utc::now();
        let hour = Duration::from_secs(3600);
        let n = decide(&[alert("a")], &mut sent, t0, hour, "db1");
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].status, Status::Firing);
        assert!(!n[0].repeat);
        // Still holding a minute later: nothing.
        assert!(
            decide(
                &[alert("a")],
                &mut sent,
                t0 + chrono::Duration::minutes(1),
                hour,
                "db1"
            )
            .is_empty()
        );
        // An hour later: repeated, with its start.
        let n = decide(
            &[alert("a")],
            &mut sent,
            t0 + chrono::Duration::minutes(61),
            hour,
            "db1",
        );
        assert_eq!(n.len(), 1);
        assert!(n[0].repeat);
        assert_eq!(n[0].since, t0);
        // Gone: resolved once.
        let n = decide(
            &[],
            &mut sent,
            t0 + chrono::Duration::minutes(62),
            hour,
            "db1",
        );
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].status, Status::Resolved);
        assert!(n[0].text().contains("resolved"));
        assert!(
            decide(
                &[],
                &mut sent,
                t0 + chrono::Duration::minutes(63),
                hour,
                "db1"
            )
            .is_empty()
        );
    }
}
