//! The erasure reports: for one data subject, which retained backups still
//! hold its data and when the last of them expires; for the repository, the
//! compliance report (where it and its replicas live, their encryption,
//! retention and Object Lock, and each erasure with the restores that
//! re-applied it).

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;
use chrono::{DateTime, Duration, Utc};
use lifeboat_format::audit::AuditEntry;
use lifeboat_format::erasure::ErasureEntry;
use lifeboat_repo::Repository;
use lifeboat_repo::retention::expiry;
use serde::Serialize;

use crate::cli::Global;
use crate::commands::forget::{configured_retention, kept_because, retention_today};
use crate::output::{self, Reporter};
use crate::settings::{FileSettings, Settings};

/// The audit detail a restore records: the ledger entries it re-applied
/// (the highest number), or why it did not.
pub const LEDGER_DETAIL: &str = "erasure_ledger";

/// A retained backup that may still hold a subject's data.
#[derive(Debug, Serialize)]
struct Holding {
    snapshot: String,
    time: DateTime<Utc>,
    source: String,
    kept_for: Vec<String>,
    /// `None`: pinned, kept until unpinned.
    expires: Option<DateTime<Utc>>,
}

/// `erasures --subject KEY`.
#[derive(Debug, Serialize)]
struct SubjectReport {
    subject: String,
    entries: Vec<u64>,
    erased_at: Option<DateTime<Utc>>,
    held: bool,
    backups: Vec<Holding>,
    last_expiry: Option<DateTime<Utc>>,
    pinned: usize,
    assumption: &'static str,
}

const ASSUMPTION: &str = "backups go on at their usual pace and `forget` applies the current retention policy; \
     archived WAL from before the erasure goes with the base backups it serves";

/// The usual time between a source's snapshots: the median gap (a day
/// when there are too few to tell).
fn cadence(times: &mut [DateTime<Utc>]) -> Duration {
    times.sort();
    let mut gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    gaps.get(gaps.len() / 2)
        .copied()
        .filter(|g| *g > Duration::zero())
        .unwrap_or_else(|| Duration::days(1))
}

/// Reports on one subject.
pub async fn subject(g: &Global, repo: &Repository, key: &str) -> Result<()> {
    let hash = repo.subject_hash(key);
    let ledger = repo.erasure_ledger().await?;
    let mine: Vec<&ErasureEntry> = ledger
        .entries
        .iter()
        .filter(|e| e.subject == hash)
        .collect();
    let newest = mine.last();
    let held = newest.is_some_and(|e| e.hold.is_some());
    // In force since the first entry without a hold after the last hold.
    let erased_at = match newest {
        Some(e) if e.hold.is_none() => mine
            .iter()
            .rev()
            .take_while(|e| e.hold.is_none())
            .last()
            .map(|e| e.time),
        _ => None,
    };
    let settings = Settings::resolve(g)?;
    let (policy, window) = configured_retention(&settings)?;
    let reporter = Reporter::new(g);
    let sink = reporter.sink();
    let plan = match repo.list_snapshots(&sink).await {
        Ok(all) => retention_today(repo, &all, &policy, window).await,
        Err(e) => Err(e.into()),
    };
    reporter.finish();
    let plan = plan?;
    let now = Utc::now();
    let mut backups = Vec::new();
    for source in &plan.sources {
        let (chosen, _) = policy.for_source(&source.source);
        let mut times: Vec<DateTime<Utc>> = source.snapshots.iter().map(|d| d.time).collect();
        let pace = cadence(&mut times);
        for d in source.snapshots.iter().filter(|d| d.keep) {
            if erased_at.is_some_and(|t| d.time >= t) {
                continue;
            }
            backups.push(Holding {
                snapshot: d.id.to_hex(),
                time: d.time,
                source: source.source.clone(),
                kept_for: d.reasons.iter().map(kept_because).collect(),
                expires: expiry(chosen, d.time, &d.reasons, now, pace, window),
            });
        }
    }
    backups.sort_by_key(|b| b.time);
    let pinned = backups.iter().filter(|b| b.expires.is_none()).count();
    let report = SubjectReport {
        subject: hash,
        entries: mine.iter().map(|e| e.seq).collect(),
        erased_at,
        held,
        last_expiry: backups.iter().filter_map(|b| b.expires).max(),
        pinned,
        backups,
        assumption: ASSUMPTION,
    };
    if g.json {
        return output::json(&report);
    }
    if g.quiet {
        return Ok(());
    }
    let short = &report.subject[..12];
    match (report.erased_at, report.held, report.entries.is_empty()) {
        (_, _, true) => {
            outln!("subject {short}…: no erasure recorded; every retained backup may hold its data")
        }
        (_, true, _) => outln!(
            "subject {short}…: under a legal hold (ledger entries {:?}); its data is kept and restores keep it",
            report.entries
        ),
        (Some(t), _, _) => outln!(
            "subject {short}…: erased {} (ledger entries {:?}); restores leave its data out",
            t.format("%Y-%m-%d %H:%M:%S UTC"),
            report.entries
        ),
        (None, _, _) => {}
    }
    outln!(
        "{} retained backup(s) {} still hold its data:",
        report.backups.len(),
        if report.erased_at.is_some() {
            "taken before the erasure"
        } else {
            "that"
        }
    );
    for b in &report.backups {
        outln!(
            "  {}  {}  {:<40}  until {}  ({})",
            &b.snapshot[..8],
            b.time.format("%Y-%m-%d %H:%M"),
            b.source,
            b.expires
                .map(|t| format!("~{}", t.format("%Y-%m-%d")))
                .unwrap_or_else(|| "unpinned".into()),
            b.kept_for.join(", ")
        );
    }
    match (report.pinned, report.last_expiry) {
        (0, Some(t)) => outln!(
            "the last of them expires about {} under the current retention policy",
            t.format("%Y-%m-%d")
        ),
        (0, None) => outln!("no retained backup holds it"),
        (n, _) => outln!(
            "{n} of them pinned (legal hold): kept until unpinned; the others expire by about {}",
            report
                .last_expiry
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_else(|| "-".into())
        ),
    }
    outln!("(assuming {})", report.assumption);
    Ok(())
}

/// A restore that re-applied the ledger (or skipped it).
#[derive(Debug, Serialize)]
struct Replay {
    time: DateTime<Utc>,
    action: String,
    actor: String,
    outcome: String,
    /// The highest ledger entry it re-applied; `None` when it did not.
    through: Option<u64>,
    /// Why it did not (`skipped`, or not applied).
    #[serde(skip_serializing_if = "Option::is_none")]
    not_applied: Option<String>,
}

#[derive(Debug, Serialize)]
struct ErasureLine {
    seq: u64,
    time: DateTime<Utc>,
    by: String,
    reason: String,
    held: bool,
    rows: u64,
    objects: u64,
    /// Restores since, that re-applied it.
    replays: Vec<Replay>,
}

#[derive(Debug, Serialize)]
struct Replica {
    location: String,
    last_copy: Option<DateTime<Utc>>,
    outcome: Option<String>,
    declared: bool,
}

/// `erasures --compliance`.
#[derive(Debug, Serialize)]
struct Compliance {
    generated: DateTime<Utc>,
    repository: serde_json::Value,
    retention: serde_json::Value,
    replicas: Vec<Replica>,
    erasures: Vec<ErasureLine>,
    skipped: Vec<Replay>,
    problems: Vec<String>,
}

/// The replays the audit log records: every entry carrying the ledger detail.
fn replays(entries: &[&AuditEntry]) -> Vec<Replay> {
    entries
        .iter()
        .filter_map(|e| {
            let detail = e.details.get(LEDGER_DETAIL)?;
            Some(Replay {
                time: e.time,
                action: e.action.clone(),
                actor: e.actor.clone(),
                outcome: e.outcome.clone(),
                through: detail.parse().ok(),
                not_applied: detail.parse::<u64>().is_err().then(|| detail.clone()),
            })
        })
        .collect()
}

/// The destination of a `copy` command line.
fn copy_destination(args: &[String]) -> Option<String> {
    let at = args.iter().position(|a| a == "--to")?;
    args.get(at + 1).cloned()
}

/// Prints the compliance report.
pub async fn compliance(g: &Global, repo: &Repository) -> Result<()> {
    let settings = Settings::resolve(g)?;
    let file = FileSettings::load(g)?;
    let (policy, window) = configured_retention(&settings)?;
    let ledger = repo.erasure_ledger().await?;
    let logs = repo.audit_logs().await?;
    let mut problems: Vec<String> = ledger
        .problems
        .iter()
        .map(|(o, w)| format!("erasure ledger: {o}: {w}"))
        .collect();
    for log in &logs {
        for p in &log.problems {
            problems.push(format!("audit log {}: {}", log.log, p.problem));
        }
    }
    let mut all: Vec<&AuditEntry> = logs.iter().flat_map(|l| l.entries.iter()).collect();
    all.sort_by_key(|e| e.time);
    let restores = replays(&all);
    let erasures = ledger
        .entries
        .iter()
        .map(|e| ErasureLine {
            seq: e.seq,
            time: e.time,
            by: e.by.clone(),
            reason: e.reason.clone(),
            held: e.hold.is_some(),
            rows: e.rules.iter().map(|r| r.rows).sum(),
            objects: e.buckets.iter().map(|b| b.objects).sum(),
            replays: restores
                .iter()
                .filter(|r| r.time > e.time && r.through.is_some_and(|t| t >= e.seq))
                .map(|r| Replay {
                    time: r.time,
                    action: r.action.clone(),
                    actor: r.actor.clone(),
                    outcome: r.outcome.clone(),
                    through: r.through,
                    not_applied: None,
                })
                .collect(),
        })
        .collect();
    let skipped = restores
        .into_iter()
        .filter(|r| r.through.is_none())
        .collect();
    // Replicas: those the settings copy to, and those the audit log saw.
    let mut replicas: BTreeMap<String, Replica> = BTreeMap::new();
    for job in &file.job {
        if let Some(to) = &job.to {
            replicas.entry(to.clone()).or_insert(Replica {
                location: to.clone(),
                last_copy: None,
                outcome: None,
                declared: true,
            });
        }
    }
    let mut last: HashMap<String, &AuditEntry> = HashMap::new();
    for e in all.iter().filter(|e| e.action == "copy") {
        if let Some(to) = copy_destination(&e.args) {
            last.insert(to, e);
        }
    }
    for (to, e) in last {
        let r = replicas.entry(to.clone()).or_insert(Replica {
            location: to,
            last_copy: None,
            outcome: None,
            declared: false,
        });
        r.last_copy = Some(e.time);
        r.outcome = Some(e.outcome.clone());
    }
    let config = repo.config();
    let report = Compliance {
        generated: Utc::now(),
        repository: serde_json::json!({
            "location": repo.location(),
            "id": config.id.to_hex(),
            "created": config.created,
            "encryption": "AES-256-GCM under a random master key; keys wrapped with Argon2id from a passphrase; subjects kept as keyed BLAKE3 hashes",
            "object_lock_days": config.object_lock_days,
        }),
        retention: serde_json::json!({ "policy": policy, "pitr_window": lifeboat_units::format_duration(window.to_std().unwrap_or_default()) }),
        replicas: replicas.into_values().collect(),
        erasures,
        skipped,
        problems,
    };
    if g.json {
        return output::json(&report);
    }
    if g.quiet {
        return Ok(());
    }
    print_compliance(&report)
}

/// A policy set's JSON (`{"default": {"keep_daily": 30, …}, "sources": […]}`)
/// as a line: `daily 30, weekly 13, …`.
fn policy_text(policy: &serde_json::Value) -> String {
    let one = |p: &serde_json::Value| {
        p.as_object()
            .map(|rules| {
                rules
                    .iter()
                    .map(|(k, v)| {
                        let v = match v {
                            serde_json::Value::Object(kinds) => kinds
                                .iter()
                                .map(|(kind, d)| {
                                    format!("{kind} {}", d.as_str().unwrap_or_default())
                                })
                                .collect::<Vec<_>>()
                                .join(", "),
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        format!("{} {v}", k.trim_start_matches("keep_").replace('_', "-"))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let mut text = one(&policy["default"]);
    for o in policy["sources"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "; for sources matching {}: {}",
            o["match"],
            one(&o["policy"])
        ));
    }
    text
}

fn print_compliance(r: &Compliance) -> Result<()> {
    let day = |t: &DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    outln!("Compliance report, {}", day(&r.generated));
    outln!();
    outln!(
        "Repository  {}",
        r.repository["location"].as_str().unwrap_or_default()
    );
    outln!(
        "  encryption   {}",
        r.repository["encryption"].as_str().unwrap_or_default()
    );
    outln!(
        "  object lock  {}",
        match r.repository["object_lock_days"].as_u64() {
            Some(d) => format!("every object locked for {d} days after it is written"),
            None => "none (objects can be deleted by whoever holds the storage credentials)".into(),
        }
    );
    outln!("  retention    {}", policy_text(&r.retention["policy"]));
    outln!(
        "  PITR window  {}",
        r.retention["pitr_window"].as_str().unwrap_or_default()
    );
    outln!();
    if r.replicas.is_empty() {
        outln!("Replicas  none declared or copied to");
    } else {
        outln!(
            "Replicas (each encrypted under its own key; run this report there for its lock and retention)"
        );
    }
    for c in &r.replicas {
        outln!(
            "  {:<50} {}{}",
            c.location,
            match (&c.last_copy, &c.outcome) {
                (Some(t), Some(o)) => format!("last copy {} ({o})", day(t)),
                _ => "never copied yet".into(),
            },
            if c.declared {
                ""
            } else {
                "  (not in lifeboat.toml)"
            }
        );
    }
    outln!();
    outln!("Erasures ({})", r.erasures.len());
    for e in &r.erasures {
        outln!(
            "  #{:<4} {}  by {}  {:?}{}  {} row(s), {} object(s)",
            e.seq,
            day(&e.time),
            e.by,
            e.reason,
            if e.held { "  HELD" } else { "" },
            e.rows,
            e.objects
        );
        if e.replays.is_empty() {
            outln!("        no restore since");
        }
        for p in &e.replays {
            outln!(
                "        re-applied by {} {} ({}, {})",
                p.action,
                day(&p.time),
                p.actor,
                p.outcome
            );
        }
    }
    for s in &r.skipped {
        match s.not_applied.as_deref() {
            Some("skipped") => outln!(
                "warning: {} {} by {} skipped the erasure ledger (--skip-erasures): erased subjects came back there",
                s.action,
                day(&s.time),
                s.actor
            ),
            other => outln!(
                "warning: {} {} by {}: ledger {} (apply it with `lifeboat erasures --replay`)",
                s.action,
                day(&s.time),
                s.actor,
                other.unwrap_or("not applied")
            ),
        }
    }
    for p in &r.problems {
        outln!("problem: {p}");
    }
    Ok(())
}
