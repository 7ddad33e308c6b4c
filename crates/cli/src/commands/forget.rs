//! `lifeboat forget`, `lifeboat pin`, `lifeboat unpin`

use anyhow::{Result, bail};
use lifeboat_format::snapshot::BackupKind;
use std::collections::HashSet;

use lifeboat_postgres::expire::{self, WalExpiry, WindowLine};
use lifeboat_repo::retention::{Policy, PolicySet, Reason, Unit, parse_duration};

use crate::cli::{ForgetArgs, Global, PinArgs, UnpinArgs};
use crate::commands::open_repo;
use crate::exit::UsageError;
use crate::output::{self, Reporter};
use crate::settings::{RetentionSettings, Settings};

/// The policy some keep rules describe, or `None` when they have none.
fn rules_policy(r: &RetentionSettings) -> Result<Option<Policy>> {
    let counts = [
        r.keep_hourly,
        r.keep_daily,
        r.keep_weekly,
        r.keep_monthly,
        r.keep_yearly,
    ];
    if r.keep_last.is_none()
        && counts.iter().all(Option::is_none)
        && r.keep_within.is_none()
        && r.keep_kind.is_empty()
    {
        return Ok(None);
    }
    let duration = |s: &str| parse_duration(s).map_err(|e| UsageError(e.to_string()));
    let mut keep_kind = Vec::new();
    for k in &r.keep_kind {
        let Some((kind, d)) = k.split_once('=') else {
            bail!(UsageError(format!(
                "keep-kind {k:?}: expected KIND=DURATION"
            )));
        };
        let kind = match kind {
            "scheduled" => BackupKind::Scheduled,
            "pre-deploy" => BackupKind::PreDeploy,
            "manual" => BackupKind::Manual,
            other => bail!(UsageError(format!(
                "keep-kind: {other:?} is not scheduled, pre-deploy or manual"
            ))),
        };
        keep_kind.push((kind, duration(d)?));
    }
    Ok(Some(Policy {
        keep_last: r.keep_last.unwrap_or(0),
        keep_periods: counts.map(|c| c.unwrap_or(0)),
        keep_within: r.keep_within.as_deref().map(duration).transpose()?,
        keep_kind,
    }))
}

/// The policies to apply: the flags' (for every source) when any keep flag
/// is given; else lifeboat.toml's [retention] with its per-source
/// overrides; else the runbook policy.
fn policies(args: &ForgetArgs, file: Option<&RetentionSettings>) -> Result<PolicySet> {
    let flags = RetentionSettings {
        keep_last: args.keep_last,
        keep_hourly: args.keep_hourly,
        keep_daily: args.keep_daily,
        keep_weekly: args.keep_weekly,
        keep_monthly: args.keep_monthly,
        keep_yearly: args.keep_yearly,
        keep_within: args.keep_within.clone(),
        keep_kind: args.keep_kind.clone(),
        ..RetentionSettings::default()
    };
    if let Some(p) = rules_policy(&flags)? {
        return Ok(PolicySet::single(p));
    }
    file_policies(file)
}

/// The policies lifeboat.toml's [retention] gives (with its per-source
/// overrides), else the runbook policy.
fn file_policies(file: Option<&RetentionSettings>) -> Result<PolicySet> {
    let Some(file) = file else {
        return Ok(PolicySet::single(Policy::runbook()));
    };
    let mut set = PolicySet::single(rules_policy(file)?.unwrap_or_else(Policy::runbook));
    for s in &file.source {
        let Some(pattern) = s.pattern.clone().filter(|p| !p.is_empty()) else {
            bail!(UsageError(
                "lifeboat.toml: every [[retention.source]] needs `match` (text the source \"host kind paths\" contains)".into()
            ));
        };
        if !s.source.is_empty() || s.pitr_window.is_some() {
            bail!(UsageError(format!(
                "lifeboat.toml: [[retention.source]] match = {pattern:?}: `source` and `pitr_window` belong in [retention] itself"
            )));
        }
        let Some(p) = rules_policy(s)? else {
            bail!(UsageError(format!(
                "lifeboat.toml: [[retention.source]] match = {pattern:?} has no keep rule"
            )));
        };
        set.sources.push((pattern, p));
    }
    Ok(set)
}

fn describe(r: &Reason) -> String {
    match r {
        Reason::Pinned => "pinned".into(),
        Reason::PitrWindow => "PITR window starts here".into(),
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

/// Parses the PITR window in the one duration grammar.
fn pitr_window(s: &str) -> Result<chrono::Duration> {
    parse_duration(s).map_err(|e| UsageError(format!("--pitr-window: {e}")).into())
}

/// The retention `forget` applies without flags: the policies and the
/// point-in-time-recovery window of lifeboat.toml (else the runbook's).
pub fn configured_retention(settings: &Settings) -> Result<(PolicySet, chrono::Duration)> {
    let r = settings.retention.as_ref();
    Ok((
        file_policies(r)?,
        pitr_window(r.and_then(|r| r.pitr_window.as_deref()).unwrap_or("30d"))?,
    ))
}

/// What `forget` would keep today of `all` (the repository's snapshots)
/// under `policy` and `window`, and why (a dry run: nothing changes).
pub async fn retention_today(
    repo: &lifeboat_repo::Repository,
    all: &[lifeboat_repo::SnapshotEntry],
    policy: &PolicySet,
    window: chrono::Duration,
) -> Result<lifeboat_repo::forget::ForgetPlan> {
    let bases = expire::window_snapshot_ids(all, chrono::Utc::now() - window);
    Ok(repo.plan_forget(policy, &bases, all, true).await?)
}

/// Says why a snapshot is kept, as `forget` prints it.
pub fn kept_because(r: &Reason) -> String {
    describe(r)
}

/// The restore points of protected sources that `policy` and `window`
/// (the flags') would remove but the configured retention keeps: per
/// protected source, what would go. Empty when nothing promised is lost.
async fn promises_broken(
    g: &Global,
    repo: &lifeboat_repo::Repository,
    policy: &PolicySet,
    window: chrono::Duration,
    settings: &Settings,
    sink: &lifeboat_repo::progress::DynProgress,
) -> Result<Vec<(String, String)>> {
    use lifeboat_ops::access::protect::{Destination, protected_by};
    let file = crate::settings::FileSettings::load(g)?;
    if !file.source.iter().any(|s| s.protected) {
        return Ok(Vec::new());
    }
    let (promised, promised_window) = configured_retention(settings)?;
    let mut broken: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    if *policy != promised {
        let all = repo.list_snapshots(sink).await?;
        let now = retention_today(repo, &all, policy, window).await?;
        let kept_by_promise = retention_today(repo, &all, &promised, promised_window)
            .await?
            .kept_ids();
        let removed: HashSet<_> = now
            .sources
            .iter()
            .flat_map(|s| &s.snapshots)
            .filter(|d| !d.keep && kept_by_promise.contains(&d.id))
            .map(|d| d.id)
            .collect();
        for e in all.iter().filter(|e| removed.contains(&e.id)) {
            let owner = file.source.iter().filter(|s| s.protected).find(|s| {
                e.snapshot
                    .tags
                    .contains(&crate::commands::source_tag(s.name.get_ref()))
            });
            let owner = owner.or_else(|| {
                let dir = std::path::Path::new(e.snapshot.paths.first()?);
                protected_by(&file.source, Destination::Directory(dir))
            });
            if let Some(s) = owner {
                broken
                    .entry(s.name.get_ref().clone())
                    .or_default()
                    .push(format!("snapshot {}", e.id.short()));
            }
        }
    }
    if window < promised_window {
        for s in file
            .source
            .iter()
            .filter(|s| s.protected && s.pgdata.is_some())
        {
            broken
                .entry(s.name.get_ref().clone())
                .or_default()
                .push(format!(
                    "point-in-time recovery over {} instead of {}",
                    lifeboat_units::format_duration(window.to_std().unwrap_or_default()),
                    lifeboat_units::format_duration(promised_window.to_std().unwrap_or_default())
                ));
        }
    }
    Ok(broken
        .into_iter()
        .map(|(source, what)| (source, what.join(", ")))
        .collect())
}

/// Applies the retention policy, then expires WAL outside the PITR window.
pub async fn forget(g: &Global, args: &ForgetArgs) -> Result<()> {
    let settings = Settings::resolve(g)?;
    let policy = policies(args, settings.retention.as_ref())?;
    let window = pitr_window(
        args.pitr_window
            .as_deref()
            .or(settings
                .retention
                .as_ref()
                .and_then(|r| r.pitr_window.as_deref()))
            .unwrap_or("30d"),
    )?;
    let repo = open_repo(g).await?;
    let reporter = Reporter::new(g);
    let sink = reporter.sink();
    if !args.dry_run {
        let breaks = promises_broken(g, &repo, &policy, window, &settings, &sink).await;
        if let Some((source, what)) = breaks?.into_iter().next() {
            reporter.finish();
            crate::commands::protect::guard_deletion(g, &source, &what).await?;
        }
    }
    let done = async {
        let window_start = chrono::Utc::now() - window;
        let all = repo.list_snapshots(&sink).await?;
        let bases = expire::window_snapshot_ids(&all, window_start);
        let plan = repo.forget(&policy, &bases, args.dry_run, &sink).await?;
        let kept_ids = plan.kept_ids();
        let kept: Vec<_> = all
            .iter()
            .filter(|e| kept_ids.contains(&e.id))
            .cloned()
            .collect();
        let wal = expire::expire_wal(&repo, &all, &kept, window_start, args.dry_run, &sink).await?;
        anyhow::Ok((plan, wal))
    }
    .await;
    reporter.finish();
    let (plan, wal) = done?;
    if g.json {
        let mut v = serde_json::to_value(&plan)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("wal".into(), serde_json::to_value(&wal)?);
        }
        return output::json(&v);
    }
    if g.quiet {
        return Ok(());
    }
    for s in &plan.sources {
        match &s.matched {
            Some(m) => outln!("{}  (policy of lifeboat.toml source {m:?})", s.source),
            None => outln!("{}", s.source),
        }
        for d in &s.snapshots {
            let reasons: Vec<String> = d.reasons.iter().map(describe).collect();
            outln!(
                "  {}  {}  {:<6}  {}",
                &d.id.to_hex()[..8],
                d.time.format("%Y-%m-%d %H:%M:%S"),
                if d.keep { "keep" } else { "remove" },
                reasons.join(", ")
            );
        }
    }
    outln!(
        "{} snapshots kept, {} {}",
        plan.kept,
        plan.removed,
        if plan.dry_run {
            "would be removed (dry run: nothing changed)"
        } else {
            "removed (their data stays until `lifeboat prune`)"
        }
    );
    for w in &wal {
        print_wal(w, plan.dry_run)?;
    }
    Ok(())
}

fn print_windows(label: &str, lines: &[WindowLine]) -> Result<()> {
    if lines.is_empty() {
        outln!("  {label}: no recoverable window");
    }
    for l in lines {
        outln!(
            "  {label}: timeline {}: from {} to {}",
            l.timeline,
            l.earliest.format("%Y-%m-%d %H:%M:%S UTC"),
            l.latest
                .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_else(|| "its consistency point".into())
        );
    }
    Ok(())
}

fn print_wal(w: &WalExpiry, dry_run: bool) -> Result<()> {
    outln!(
        "PostgreSQL cluster {}: PITR window from {}{}",
        w.system_id,
        w.window_start.format("%Y-%m-%d %H:%M:%S UTC"),
        w.base
            .map(|b| format!(", starting from base backup {}", b.short()))
            .unwrap_or_default()
    );
    if let Some(n) = &w.note {
        outln!("  {n}");
    }
    outln!(
        "  WAL: {} file(s) ({}) {}, {} kept{}",
        w.removed_files,
        output::size(w.removed_bytes),
        if dry_run {
            "would be removed"
        } else {
            "removed"
        },
        w.kept_files,
        w.keep_from
            .as_ref()
            .map(|s| format!(" (from segment {s})"))
            .unwrap_or_default()
    );
    print_windows("before", &w.before)?;
    print_windows("after ", &w.after)?;
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
        outln!("snapshot {} pinned: {}", entry.id.short(), args.reason);
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
        outln!(
            "snapshot {} unpinned ({n} pin(s) removed)",
            entry.id.short()
        );
    }
    Ok(())
}
