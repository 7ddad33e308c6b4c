//! `audit`: lists the audit logs kept in the repository, and `audit verify`
//! checks them (exit 1 naming the first entry that was tampered with).

use anyhow::Result;
use lifeboat_repo::RepoError;
use lifeboat_repo::audit::AuditLog;

use crate::cli::{AuditArgs, AuditCommand, Global};
use crate::commands::open_repo;
use crate::output;

/// `lifeboat audit [--last N]` and `lifeboat audit verify`.
pub async fn audit(g: &Global, args: &AuditArgs) -> Result<()> {
    let repo = open_repo(g).await?;
    let logs = repo.audit_logs().await?;
    match args.command {
        Some(AuditCommand::Verify) => verify(g, &logs),
        None => list(g, logs, args.last),
    }
}

fn list(g: &Global, mut logs: Vec<AuditLog>, last: Option<usize>) -> Result<()> {
    if let Some(n) = last {
        for l in &mut logs {
            l.entries.drain(..l.entries.len().saturating_sub(n));
        }
    }
    if g.json {
        output::json(&logs)?;
    } else if !g.quiet {
        if logs.iter().all(|l| l.entries.is_empty()) {
            outln!("the audit log is empty (backups, restores and other changes add entries)");
        }
        for l in &logs {
            if !l.own {
                outln!("log {} (copied from another repository):", l.log);
            }
            for e in &l.entries {
                let mut what = e.action.clone();
                if let Some(s) = e.details.get("snapshot") {
                    what.push_str(&format!(" (snapshot {})", &s[..8.min(s.len())]));
                }
                let outcome = match (&e.error, e.outcome.as_str()) {
                    (Some(err), o) => format!("{o} (exit {}): {}", e.exit, first_line(err)),
                    (None, "ok") => "ok".to_string(),
                    (None, o) => format!("{o} (exit {})", e.exit),
                };
                outln!(
                    "{:>5}  {}  {:<20}  {:<36}  {}",
                    e.seq,
                    e.time.format("%Y-%m-%d %H:%M:%S UTC"),
                    e.actor,
                    what,
                    outcome
                );
            }
        }
    }
    report_damage(&logs)
}

fn verify(g: &Global, logs: &[AuditLog]) -> Result<()> {
    if g.json {
        output::json(&serde_json::json!({
            "ok": logs.iter().all(|l| l.problems.is_empty()),
            "logs": logs.iter().map(|l| serde_json::json!({
                "log": l.log,
                "own": l.own,
                "entries": l.entries.len(),
                "checkpoints": l.checkpoints,
                "head": l.head,
                "problems": l.problems,
            })).collect::<Vec<_>>(),
        }))?;
    } else if !g.quiet {
        if logs.is_empty() {
            outln!("no audit log yet: nothing to verify");
        }
        for l in logs {
            let whose = if l.own {
                "this repository's log"
            } else {
                "copied log"
            };
            let verdict = if l.problems.is_empty() {
                "intact"
            } else {
                "DAMAGED"
            };
            outln!(
                "{whose} {}: {} entries, {} checkpoint(s), {verdict}",
                l.log,
                l.entries.len(),
                l.checkpoints
            );
            if let Some(h) = &l.head {
                outln!(
                    "  head: entry {} at {}, hash {}, signature {}",
                    h.seq,
                    h.time.format("%Y-%m-%d %H:%M:%S UTC"),
                    &h.hash[..16.min(h.hash.len())],
                    &h.signature[..16.min(h.signature.len())]
                );
            }
        }
    }
    report_damage(logs)
}

/// Fails (exit 1) naming the first bad entry of the first damaged log, after
/// printing every problem on stderr.
fn report_damage(logs: &[AuditLog]) -> Result<()> {
    let problems: Vec<_> = logs.iter().flat_map(|l| &l.problems).collect();
    let Some(first) = problems.first() else {
        return Ok(());
    };
    for p in &problems {
        eprintln!("error: audit log {}: {} ({})", p.log, p.problem, p.key);
    }
    Err(RepoError::Damaged(format!(
        "the audit log was tampered with: entry {} of log {}: {} ({} problem(s) in all)",
        first.seq,
        first.log,
        first.problem,
        problems.len()
    ))
    .into())
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}
