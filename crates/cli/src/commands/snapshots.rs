//! `lifeboat snapshots`

use anyhow::Result;
use serde_json::json;

use crate::cli::Global;
use crate::commands::{in_scope, open_repo};
use crate::output::{self, Reporter};

/// Lists snapshots, oldest first.
pub async fn run(g: &Global) -> Result<()> {
    let repo = open_repo(g).await?;
    let reporter = Reporter::new(g);
    let list: Vec<_> = repo
        .list_snapshots(&reporter.sink())
        .await?
        .into_iter()
        .filter(|e| in_scope(g, e))
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
        println!("no snapshots");
        return Ok(());
    }
    println!(
        "{:<8}  {:<20}  {:<12}  {:<10}  {:>10}  {:<24}  REASON / TAGS",
        "ID", "TIME (UTC)", "HOST", "KIND", "SIZE", "PATHS"
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
        println!(
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
    println!("{} snapshot(s)", list.len());
    Ok(())
}
