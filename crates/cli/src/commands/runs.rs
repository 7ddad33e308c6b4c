//! `lifeboat runs`, `lifeboat schedule` and `lifeboat alert test`

use anyhow::{Result, bail};
use chrono::Utc;
use lifeboat_ops::alerts::{Alert, Notification, Status};
use lifeboat_ops::runs::RunRecord;
use serde::Serialize;

use crate::cli::{Global, RunsArgs, ScheduleArgs};
use crate::commands::open_repo;
use crate::exit::UsageError;
use crate::output;
use crate::settings::FileSettings;

/// Lists the run history kept in the repository.
pub async fn runs(g: &Global, args: &RunsArgs) -> Result<()> {
    if let Some(s) = &g.source {
        FileSettings::load(g)?.source(s)?;
    }
    let repo = open_repo(g).await?;
    let mut runs: Vec<RunRecord> = lifeboat_ops::runs::load(&repo)
        .await?
        .into_iter()
        .filter(|r| g.source.is_none() || r.source == g.source)
        .collect();
    if let Some(n) = args.last {
        runs.drain(..runs.len().saturating_sub(n));
    }
    if g.json {
        return output::json(&runs);
    }
    if runs.is_empty() {
        outln!(
            "no runs recorded (the daemon, `lifeboat serve`, records its runs in the repository)"
        );
        return Ok(());
    }
    outln!(
        "{:<20} {:<28} {:<12} {:>9}  result",
        "started (UTC)",
        "job",
        "outcome",
        "took"
    );
    for r in &runs {
        let result = match (&r.error, &r.snapshot) {
            (Some(e), _) => e.lines().last().unwrap_or_default().to_string(),
            (None, Some(s)) => format!(
                "snapshot {}{}",
                &s[..8.min(s.len())],
                r.bytes_added
                    .map(|b| format!(", {} added", output::size(b)))
                    .unwrap_or_default()
            ),
            (None, None) => String::new(),
        };
        outln!(
            "{:<20} {:<28} {:<12} {:>9}  {}{}",
            r.started.format("%Y-%m-%d %H:%M:%S"),
            r.job,
            r.outcome.as_str(),
            output::secs((r.seconds() * 1000.0) as u64),
            if r.catch_up { "(catch-up) " } else { "" },
            result
        );
    }
    Ok(())
}

/// One job's schedule, for `--json`.
#[derive(Serialize)]
struct JobSchedule {
    name: String,
    run: lifeboat_ops::config::JobKind,
    source: Option<String>,
    schedule: String,
    deadline: Option<String>,
    group: Option<String>,
    next: Vec<chrono::DateTime<Utc>>,
}

/// Prints every job's schedule and next runs.
pub async fn schedule(g: &Global, args: &ScheduleArgs) -> Result<()> {
    let file = FileSettings::load(g)?;
    let jobs = file.jobs()?;
    let now = Utc::now();
    let out: Vec<JobSchedule> = jobs
        .iter()
        .filter(|j| g.source.is_none() || j.source == g.source)
        .map(|j| JobSchedule {
            name: j.name.clone(),
            run: j.kind,
            source: j.source.clone(),
            schedule: j.schedule.describe(),
            deadline: j.deadline.map(lifeboat_ops::duration::human),
            group: j.group.clone(),
            next: j.schedule.upcoming(now, args.next),
        })
        .collect();
    if g.json {
        return output::json(&out);
    }
    if out.is_empty() {
        outln!(
            "no [[job]]s in {}",
            file.origin
                .as_ref()
                .map(|(p, _)| p.display().to_string())
                .unwrap_or_else(|| "the settings (no settings file was found)".into())
        );
        return Ok(());
    }
    for j in &out {
        outln!("{}  ({})", j.name, j.schedule);
        if let Some(d) = &j.deadline {
            outln!("  deadline {d}");
        }
        if let Some(g) = &j.group {
            outln!("  never at the same time as other jobs of group {g:?}");
        }
        for t in &j.next {
            outln!("  {}", t.format("%Y-%m-%d %H:%M:%S UTC (%a)"));
        }
    }
    Ok(())
}

/// Sends a test alert through every route.
pub async fn alert_test(g: &Global) -> Result<()> {
    let file = FileSettings::load(g)?;
    if file.alerts.route.is_empty() {
        bail!(UsageError(
            "no [[alerts.route]] in the settings file: add a webhook, email or command route"
                .into()
        ));
    }
    let host = gethostname();
    let n = Notification {
        status: Status::Firing,
        alert: Alert {
            key: "test".into(),
            summary: "test alert from `lifeboat alert test`".into(),
            detail: "If you read this, alerts reach you.".into(),
        },
        since: Utc::now(),
        host,
        repeat: false,
    };
    let mut failed = 0;
    for route in &file.alerts.route {
        lifeboat_ops::alerts::routes::validate(route).map_err(|e| UsageError(e.to_string()))?;
        let what = lifeboat_ops::alerts::routes::describe(route);
        match lifeboat_ops::alerts::routes::send(route, &n).await {
            Ok(()) => outln!("sent: {what}"),
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} route(s) failed", file.alerts.route.len());
    }
    Ok(())
}

fn gethostname() -> String {
    lifeboat_repo::repository::local_origin(None).host
}
