//! `lifeboat snapshots`

use anyhow::Result;
use chrono::{DateTime, Utc};
use lifeboat_repo::SnapshotEntry;
use serde_json::json;

use crate::cli::{Global, SnapshotsArgs};
use crate::commands::{in_scope, open_repo};
use crate::exit::UsageError;
use crate::output::{self, Reporter};

/// The filters of `snapshots`, parsed.
struct Filter<'a> {
    args: &'a SnapshotsArgs,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

/// A point in time: a timestamp, or an age (`7d`) counted back from now.
fn point(flag: &str, s: &str) -> Result<DateTime<Utc>> {
    if let Ok(age) = lifeboat_units::parse_duration(s) {
        return Ok(Utc::now() - crate::units::to_chrono(age));
    }
    crate::commands::restore_postgres::parse_time(s)
        .map(|(t, _)| t)
        .map_err(|_| {
            UsageError(format!(
                "{flag} {s:?} is neither a timestamp (\"2026-11-01 03:00:00Z\") nor an age (7d, 12h, 90min)"
            ))
            .into()
        })
}

impl<'a> Filter<'a> {
    fn new(args: &'a SnapshotsArgs) -> Result<Self> {
        const KINDS: [&str; 7] = [
            "files",
            "postgres",
            "postgres-logical",
            "bucket",
            "scheduled",
            "pre-deploy",
            "manual",
        ];
        if let Some(k) = &args.kind
            && !KINDS.contains(&k.as_str())
        {
            return Err(
                UsageError(format!("--kind {k:?} is not one of {}", KINDS.join(", "))).into(),
            );
        }
        Ok(Self {
            args,
            since: args
                .since
                .as_deref()
                .map(|s| point("--since", s))
                .transpose()?,
            until: args
                .until
                .as_deref()
                .map(|s| point("--until", s))
                .transpose()?,
        })
    }

    fn keeps(&self, e: &SnapshotEntry) -> bool {
        let s = &e.snapshot;
        let a = self.args;
        a.kind
            .as_deref()
            .is_none_or(|k| s.source.as_str() == k || s.kind.as_str() == k)
            && a.host.as_deref().is_none_or(|h| s.host == h)
            && self.since.is_none_or(|t| s.time >= t)
            && self.until.is_none_or(|t| s.time < t)
            && a.tag.iter().all(|t| s.tags.contains(t))
    }
}

/// Lists snapshots, oldest first.
pub async fn run(g: &Global, args: &SnapshotsArgs) -> Result<()> {
    let filter = Filter::new(args)?;
    let repo = open_repo(g).await?;
    let reporter = Reporter::new(g);
    let list: Vec<_> = repo
        .list_snapshots(&reporter.sink())
        .await?
        .into_iter()
        .filter(|e| in_scope(g, e) && filter.keeps(e))
        .collect();
    reporter.finish();
    if g.json {
        let v: Vec<_> = list
            .iter()
            .map(|e| {
                let mut v = serde_json::to_value(&e.snapshot).unwrap_or_default();
                v["id"] = json!(e.id);
                v
            })
            .collect();
        return output::json(&v);
    }
    if list.is_empty() {
        outln!("no snapshots");
        return Ok(());
    }
    outln!(
        "{:<8}  {:<20}  {:<12}  {:<10}  {:>10}  {:<24}  REASON / TAGS",
        "ID",
        "TIME (UTC)",
        "HOST",
        "KIND",
        "SIZE",
        "PATHS"
    );
    for e in &list {
        let s = &e.snapshot;
        let mut extra = s.reason.clone().unwrap_or_default();
        if !s.tags.is_empty() {
            if !extra.is_empty() {
                extra.push(' ');
            }
            extra.push_str(&format!("[{}]", s.tags.join(", ")));
        }
        outln!(
            "{:<8}  {:<20}  {:<12}  {:<10}  {:>10}  {:<24}  {}",
            e.id.short(),
            s.time.format("%Y-%m-%d %H:%M:%S"),
            s.host,
            s.kind.as_str(),
            output::size(s.summary.bytes),
            s.paths.join(" "),
            extra
        );
    }
    outln!("{} snapshot(s)", list.len());
    Ok(())
}
