//! `lifeboat forget`, `lifeboat pin`, `lifeboat unpin`

use anyhow::{Result, bail};
use lifeboat_format::snapshot::BackupKind;
use lifeboat_repo::retention::{Policy, Reason, Unit, parse_duration};

use crate::cli::{ForgetArgs, Global, PinArgs, UnpinArgs};
use crate::commands::open_repo;
use crate::exit::UsageError;
use crate::output::{self, Reporter};

/// The policy the flags describe, or the runbook policy without any.
fn policy(args: &ForgetArgs) -> Result<Policy> {
    let counts = [
        args.keep_hourly,
        args.keep_daily,
        args.keep_weekly,
        args.keep_monthly,
        args.keep_yearly,
    ];
    if args.keep_last.is_none()
        && counts.iter().all(Option::is_none)
        && args.keep_within.is_none()
        && args.keep_kind.is_empty()
    {
        return Ok(Policy::runbook());
    }
    let duration = |s: &str| {
        parse_duration(s).ok_or_else(|| {
            UsageError(format!(
                "{s:?} is not a duration; use e.g. 30d, 12h, 2w, 1y"
            ))
        })
    };
    let mut keep_kind = Vec::new();
    for k in &args.keep_kind {
        let Some((kind, d)) = k.split_once('=') else {
            bail!(UsageError(format!(
                "--keep-kind {k:?}: expected KIND=DURATION"
            )));
        };
        let kind = match kind {
            "scheduled" => BackupKind::Scheduled,
            "pre-deploy" => BackupKind::PreDeploy,
            "manual" => BackupKind::Manual,
            other => bail!(UsageError(format!(
                "--keep-kind: {other:?} is not scheduled, pre-deploy or manual"
            ))),
        };
        keep_kind.push((kind, duration(d)?));
    }
    Ok(Policy {
        keep_last: args.keep_last.unwrap_or(0),
        keep_periods: counts.map(|c| c.unwrap_or(0)),
        keep_within: args.keep_within.as_deref().map(duration).transpose()?,
        keep_kind,
    })
}

fn describe(r: &Reason) -> String {
    match r {
        Reason::Pinned => "pinned".into(),
        Reason::Last { rank } => format!("last {rank}"),
        Reason::Period { unit, period } => {
            let u = match unit {
                Unit::Hourly => "hourly",
                Unit::Daily => "daily",
                Unit::Weekly => "weekly",
                Unit::Monthly => "monthly",
                Unit::Yearly => "yearly",
            };
            format!("{u} {period}")
        }
        Reason::Within => "within".into(),
        Reason::Kind { kind } => format!("kind {kind}"),
    }
}

/// Applies the retention policy.
pub async fn forget(g: &Global, args: &ForgetArgs) -> Result<()> {
    let policy = policy(args)?;
    let repo = open_repo(g).await?;
    let reporter = Reporter::new(g);
    let plan = repo.forget(&policy, args.dry_run, &reporter.sink()).await;
    reporter.finish();
    let plan = plan?;
    if g.json {
        return output::json(&plan);
    }
    if g.quiet {
        return Ok(());
    }
    for s in &plan.sources {
        println!("{}", s.source);
        for d in &s.snapshots {
            let reasons: Vec<String> = d.reasons.iter().map(describe).collect();
            println!(
                "  {}  {}  {:<6}  {}",
                &d.id.to_hex()[..8],
                d.time.format("%Y-%m-%d %H:%M:%S"),
                if d.keep { "keep" } else { "remove" },
                reasons.join(", ")
            );
        }
    }
    println!(
        "{} snapshots kept, {} {}",
        plan.kept,
        plan.removed,
        if plan.dry_run {
            "would be removed (dry run: nothing changed)"
        } else {
            "removed (their data stays until `lifeboat prune`)"
        }
    );
    Ok(())
}

/// Pins a snapshot.
pub async fn pin(g: &Global, args: &PinArgs) -> Result<()> {
    let repo = open_repo(g).await?;
    let reporter = Reporter::new(g);
    let entry = repo.find_snapshot(&args.snapshot, &reporter.sink()).await?;
    let pin = repo.pin(&entry.id, &args.reason).await?;
    reporter.finish();
    if g.json {
        return output::json(&serde_json::json!({"snapshot": entry.id, "pin": pin}));
    }
    if !g.quiet {
        println!("snapshot {} pinned: {}", entry.id.short(), args.reason);
    }
    Ok(())
}

/// Removes a snapshot's pins.
pub async fn unpin(g: &Global, args: &UnpinArgs) -> Result<()> {
    let repo = open_repo(g).await?;
    let reporter = Reporter::new(g);
    let entry = repo.find_snapshot(&args.snapshot, &reporter.sink()).await?;
    let n = repo.unpin(&entry.id).await?;
    reporter.finish();
    if n == 0 {
        bail!(UsageError(format!(
            "snapshot {} is not pinned",
            entry.id.short()
        )));
    }
    if !g.quiet {
        println!(
            "snapshot {} unpinned ({n} pin(s) removed)",
            entry.id.short()
        );
    }
    Ok(())
}
