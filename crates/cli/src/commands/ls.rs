//! `lifeboat ls`

use anyhow::Result;
use chrono::DateTime;
use lifeboat_format::tree::NodeKind;
use lifeboat_repo::walk::PathFilter;
use serde_json::json;

use crate::cli::{Global, LsArgs};
use crate::commands::{open_repo, scoped_reference};
use crate::output::{self, Reporter};

fn mode_string(kind: NodeKind, mode: u32) -> String {
    let t = match kind {
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::File => '-',
    };
    let mut s = String::from(t);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// Lists a snapshot's entries.
pub async fn run(g: &Global, args: &LsArgs) -> Result<()> {
    let repo = open_repo(g).await?;
    let reporter = Reporter::new(g);
    let reference = scoped_reference(g, &repo, &args.snapshot, &reporter.sink()).await?;
    let snap = repo.find_snapshot(&reference, &reporter.sink()).await?;
    let index = repo.load_index(&reporter.sink()).await?.index;
    let label = format!("snapshot {}", snap.id.short());
    let mut entries = repo
        .walk_snapshot(
            &index,
            &snap.snapshot.root,
            &PathFilter::new(&args.paths),
            &label,
        )
        .await?;
    reporter.finish();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    if g.json {
        let v: Vec<_> = entries
            .iter()
            .map(|e| {
                json!({
                    "path": format!("/{}", e.path.display()),
                    "type": e.node.kind,
                    "mode": format!("{:o}", e.node.mode),
                    "size": e.node.size,
                    "uid": e.node.uid,
                    "gid": e.node.gid,
                    "mtime": DateTime::from_timestamp_nanos(e.node.mtime_ns),
                    "target": e.node.target.as_ref().map(|t| t.display()),
                })
            })
            .collect();
        return output::json(&v);
    }
    for e in &entries {
        let n = &e.node;
        let link = n
            .target
            .as_ref()
            .map(|t| format!(" -> {}", t.display()))
            .unwrap_or_default();
        outln!(
            "{} {:>5} {:>5} {:>10}  {}  /{}{}",
            mode_string(n.kind, n.mode),
            n.uid,
            n.gid,
            if n.kind == NodeKind::File {
                output::size(n.size)
            } else {
                String::new()
            },
            DateTime::from_timestamp_nanos(n.mtime_ns).format("%Y-%m-%d %H:%M:%S"),
            e.path.display(),
            link
        );
    }
    Ok(())
}
