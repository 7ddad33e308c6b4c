//! `lifeboat serve`: the daemon that runs the schedule.
//!
//! Each run is a child process of the same `lifeboat` binary (a crashing
//! job cannot take the daemon down; a child dies with the daemon), one step
//! after another (`forget` then `prune`). The rules, each tested:
//!
//! - a job never runs twice at once: a fire while it runs is recorded as
//!   skipped, never queued into a pile;
//! - jobs of one group (copy, check and prune share `repository`) wait for
//!   each other;
//! - after downtime each job whose fire was missed runs once, and a run the
//!   daemon died in is recorded as interrupted and runs once again
//!   ([`plan::startup`]);
//! - a run past its deadline is stopped and recorded as timed out;
//! - pausing skips fires; resuming never starts a run at once;
//! - a stop (SIGTERM) waits for running jobs up to a limit, then stops
//!   them and records them as interrupted.
//!
//! Every run is recorded in the repository ([`crate::runs`]). The figures
//! metrics, status and alerts read are cached here and refreshed after each
//! run and every `refresh`, so nothing that reads them lists the repository.

mod approved;
mod children;
pub mod plan;
pub mod settings_change;
pub mod state;
mod watch;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_repo::Repository;
use serde::Serialize;

use crate::alerts::{self, Alert, rules};
use crate::config::{AlertsConfig, Job, JobKind, SourceConfig};
use crate::error::Result;
use crate::metrics::Metrics;
use crate::runs::{Outcome, RunRecord};
use children::terminate;
use state::{DaemonState, InProgress, StateFile};

/// How the daemon runs.
#[derive(Clone, Debug)]
pub struct DaemonOptions {
    /// The `lifeboat` executable the jobs run.
    pub program: PathBuf,
    /// Global options every job gets (the settings file, the repository,
    /// the passphrase source).
    pub global_args: Vec<String>,
    /// Where the state and the jobs' output go.
    pub state_dir: PathBuf,
    /// How long a stop waits for running jobs.
    pub stop_timeout: Duration,
    /// How often cached figures are refreshed and alerts evaluated.
    pub refresh: Duration,
    /// How often the schedule is looked at.
    pub tick: Duration,
    /// This host's name, for alerts.
    pub host: String,
    /// The local repository directory (for its free space), if local.
    pub local_repository: Option<PathBuf>,
    /// The repository's quota in bytes, if one is set.
    pub quota: Option<u64>,
    /// The RPO of sources that do not set their own.
    pub default_rpo: Duration,
    /// How often a drill must pass.
    pub drill_every: Duration,
    /// The recovery time objective drills are held to.
    pub rto: Option<Duration>,
    /// The settings file, whose changes the audit log records.
    pub settings: Option<settings_change::SettingsFile>,
}

/// A request from outside the loop (the HTTP API).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Skip every fire until resumed.
    Pause,
    /// Resume; the next fires run, nothing runs at once.
    Resume,
    /// Run this job now (unless it runs already), for this user.
    RunNow {
        /// The job.
        job: String,
        /// Who asked (a dashboard or API user).
        by: Option<String>,
    },
}

/// A job as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct JobView {
    /// Its name.
    pub name: String,
    /// What it does.
    pub run: JobKind,
    /// The source it concerns.
    pub source: Option<String>,
    /// The schedule in words (with its time zone).
    pub schedule: String,
    /// Its next fire.
    pub next: Option<DateTime<Utc>>,
    /// When its running run started.
    pub running_since: Option<DateTime<Utc>>,
    /// How far the running run has got, as its process last said.
    pub progress: Option<crate::progress_file::JobProgress>,
    /// Its last run.
    pub last: Option<RunRecord>,
}

/// A backed-up source as the dashboard shows it.
#[derive(Clone, Debug, Serialize)]
pub struct SourceView {
    /// Its name.
    pub name: String,
    /// Its kind (`postgres`, `postgres-logical`, `files`, `bucket`).
    pub kind: String,
    /// Whether restores into it need approval.
    pub protected: bool,
    /// How old its newest backup may be, in seconds.
    pub rpo_seconds: i64,
    /// Its newest successful backup.
    pub last_success: Option<DateTime<Utc>>,
    /// When its snapshots of the last 30 days were taken, oldest first.
    pub snapshots: Vec<DateTime<Utc>>,
    /// A physical source's recoverable window, as its archive holds it:
    /// from, and to (`None`: only to the base backup's consistency point).
    pub window: Option<(DateTime<Utc>, Option<DateTime<Utc>>)>,
    /// The command that restores it in place from its newest backup, when
    /// the dashboard can offer it (a logical source of one database, a
    /// bucket). Not serialized: it may hold a connection string.
    #[serde(skip)]
    pub restore_command: Option<Vec<String>>,
}

/// What the daemon shows.
#[derive(Clone, Debug, Default, Serialize)]
pub struct View {
    /// When it started.
    pub started: Option<DateTime<Utc>>,
    /// Whether scheduling is paused.
    pub paused: bool,
    /// Every job.
    pub jobs: Vec<JobView>,
    /// Alerts that hold.
    pub alerts: Vec<Alert>,
    /// Every backed-up source.
    pub sources: Vec<SourceView>,
    /// The newest runs (at most 500), oldest first.
    pub runs: Vec<RunRecord>,
    /// The recovery time objective drills are held to, in seconds.
    pub rto_target_seconds: Option<f64>,
}

/// What the daemon shares with its HTTP side.
#[derive(Debug, Default)]
pub struct Shared {
    /// The metrics.
    pub metrics: Metrics,
    /// The daemon's view, for the API.
    pub view: Mutex<View>,
    /// Requests waiting for the loop.
    pub requests: Mutex<Vec<Request>>,
    /// Set once the loop runs.
    pub ready: AtomicBool,
    /// Audit entries from the HTTP side (logins, API actions) waiting for
    /// the loop to append them to the repository's log.
    pub audit: Mutex<Vec<lifeboat_repo::audit::AuditRecord>>,
}

impl Shared {
    /// Queues a request for the loop.
    pub fn request(&self, r: Request) {
        if let Ok(mut q) = self.requests.lock() {
            q.push(r);
        }
    }

    /// Queues an audit entry for the loop to append.
    pub fn audit(&self, r: lifeboat_repo::audit::AuditRecord) {
        if let Ok(mut q) = self.audit.lock() {
            q.push(r);
        }
    }

    /// A copy of the view.
    pub fn view(&self) -> View {
        self.view.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// Where the daemon's messages go (the caller prints them).
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// A run in progress.
struct Active {
    job: usize,
    scheduled: Option<DateTime<Utc>>,
    catch_up: bool,
    started: DateTime<Utc>,
    /// Who asked for this run (a dashboard or API user), if anyone did.
    by: Option<String>,
    step: usize,
    child: tokio::process::Child,
    deadline: Option<Instant>,
    /// Set when the daemon stops the run: SIGTERM sent at, and why.
    stopping: Option<(Instant, Outcome)>,
    stdout: PathBuf,
    stderr: PathBuf,
    /// Where its process reports how far it has got.
    progress: PathBuf,
}

/// The daemon.
pub struct Daemon {
    repo: Repository,
    jobs: Vec<Job>,
    sources: Vec<SourceConfig>,
    alerts: AlertsConfig,
    limits: rules::Limits,
    repeat: Duration,
    opts: DaemonOptions,
    shared: Arc<Shared>,
    log: Log,
    state_file: StateFile,
    state: DaemonState,
    runs: Vec<RunRecord>,
    snapshots_of: BTreeMap<String, DateTime<Utc>>,
    /// Per source, when its snapshots of the last 30 days were taken.
    snapshot_times: BTreeMap<String, Vec<DateTime<Utc>>>,
    /// The snapshots read so far (each is read once).
    snapshot_cache: lifeboat_repo::SnapshotCache,
    archive_lag: Vec<(String, i64)>,
    stored_bytes: Option<u64>,
    disk_used: Option<f64>,
    started: DateTime<Utc>,
    /// The settings file's digests last recorded while running.
    settings_seen: Option<BTreeMap<String, String>>,
    /// Per physical source, its recoverable window (from, to; `None`: to
    /// the base backup's consistency point only).
    windows: BTreeMap<String, (DateTime<Utc>, Option<DateTime<Utc>>)>,
}

/// A duration setting, or its default.
fn setting(what: &str, v: &Option<String>, default: Duration) -> Result<Duration> {
    match v {
        Some(s) => crate::duration::parse(what, s),
        None => Ok(default),
    }
}

impl Daemon {
    /// A daemon for `jobs` over `repo`; nothing runs until [`Daemon::run`].
    pub fn new(
        repo: Repository,
        jobs: Vec<Job>,
        sources: Vec<SourceConfig>,
        alerts: AlertsConfig,
        opts: DaemonOptions,
        shared: Arc<Shared>,
        log: Log,
    ) -> Result<Self> {
        for r in &alerts.route {
            alerts::routes::validate(r)?;
        }
        let limits = rules::Limits {
            size_factor: alerts.size_factor.unwrap_or(3.0).max(1.01),
            archive_lag: setting(
                "[alerts] archive_lag",
                &alerts.archive_lag,
                Duration::from_secs(900),
            )?,
            disk_full: percent("[alerts] disk_full", alerts.disk_full.as_deref(), 0.9)?,
            ..rules::Limits::default()
        };
        let repeat = setting(
            "[alerts] repeat",
            &alerts.repeat,
            Duration::from_secs(4 * 3600),
        )?;
        let state_file = StateFile::open(&opts.state_dir)?;
        let state = state_file.load()?;
        Ok(Self {
            repo,
            jobs,
            sources,
            alerts,
            limits,
            repeat,
            opts,
            shared,
            log,
            state_file,
            state,
            runs: Vec::new(),
            snapshots_of: BTreeMap::new(),
            snapshot_times: BTreeMap::new(),
            snapshot_cache: Default::default(),
            archive_lag: Vec::new(),
            stored_bytes: None,
            disk_used: None,
            started: Utc::now(),
            settings_seen: None,
            windows: BTreeMap::new(),
        })
    }

    fn save_state(&self) {
        if let Err(e) = self.state_file.save(&self.state) {
            (self.log)(&format!("warning: {e}"));
        }
    }

    /// Runs until `shutdown` completes, then stops gracefully.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        let now = Utc::now();
        self.load_history().await;
        let start = plan::startup(&self.jobs, &self.state, now);
        for (i, p) in &start.interrupted {
            let job = &self.jobs[*i];
            (self.log)(&format!(
                "{}: the daemon stopped while it ran (started {}); recorded as interrupted",
                job.name,
                p.started.format("%Y-%m-%d %H:%M:%S UTC")
            ));
            let record = self.record_for(*i, p.scheduled, p.started, false, None);
            self.finish_record(
                record,
                Outcome::Interrupted,
                None,
                Some("the daemon stopped while it ran".into()),
            )
            .await;
        }
        self.state.running.clear();
        let mut next: BTreeMap<usize, DateTime<Utc>> = start.next;
        let mut pending: VecDeque<plan::Due> = start.due.into();
        for d in &pending {
            (self.log)(&format!(
                "{}: catching up on the run due {}",
                self.jobs[d.job].name,
                d.scheduled
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_default()
            ));
            if let Some(t) = d.scheduled {
                self.state
                    .last_fire
                    .insert(self.jobs[d.job].name.clone(), t);
            }
        }
        for job in &self.jobs {
            self.state.last_fire.entry(job.name.clone()).or_insert(now);
        }
        self.audit_settings_at_start().await;
        self.save_state();
        let mut active: Vec<Active> = Vec::new();
        self.shared.metrics.paused.set(i64::from(self.state.paused));
        // load_history has just refreshed.
        let mut last_refresh = Some(Instant::now());
        self.update_view(&next, &active);
        self.shared.ready.store(true, Ordering::SeqCst);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(self.opts.tick) => {}
            }
            let now = Utc::now();
            self.handle_requests(&mut next, &mut pending, &active, now);
            self.flush_audit().await;
            self.run_approved();
            // Fires.
            for i in 0..self.jobs.len() {
                let Some(fire) = next.get(&i).copied().filter(|f| *f <= now) else {
                    continue;
                };
                if let Some(n) = self.jobs[i].schedule.next_after(now) {
                    next.insert(i, n);
                }
                self.state.last_fire.insert(self.jobs[i].name.clone(), fire);
                let busy = active.iter().any(|a| a.job == i) || pending.iter().any(|d| d.job == i);
                match plan::on_fire(busy, self.state.paused) {
                    plan::Fire::Run => pending.push_back(plan::Due {
                        job: i,
                        scheduled: Some(fire),
                        catch_up: false,
                        by: None,
                    }),
                    plan::Fire::SkipBusy => {
                        (self.log)(&format!(
                            "{}: skipped, its previous run still runs",
                            self.jobs[i].name
                        ));
                        let r = self.record_for(i, Some(fire), now, false, None);
                        self.finish_record(
                            r,
                            Outcome::Skipped,
                            None,
                            Some("the previous run still ran".into()),
                        )
                        .await;
                    }
                    plan::Fire::SkipPaused => {
                        let r = self.record_for(i, Some(fire), now, false, None);
                        self.finish_record(
                            r,
                            Outcome::Skipped,
                            None,
                            Some("scheduling was paused".into()),
                        )
                        .await;
                    }
                }
                self.save_state();
            }
            // Start what may start: one run per job, one per group.
            let mut waiting = VecDeque::new();
            while let Some(d) = pending.pop_front() {
                let group = self.jobs[d.job].group.clone();
                let group_busy = group.as_ref().is_some_and(|g| {
                    active
                        .iter()
                        .any(|a| self.jobs[a.job].group.as_ref() == Some(g))
                });
                if group_busy || active.iter().any(|a| a.job == d.job) {
                    waiting.push_back(d);
                    continue;
                }
                match self.spawn(d.job, 0, d.scheduled, d.catch_up, Utc::now(), d.by.clone()) {
                    Ok(a) => {
                        self.state.running.insert(
                            self.jobs[d.job].name.clone(),
                            InProgress {
                                scheduled: d.scheduled,
                                started: a.started,
                                pid: a.child.id(),
                            },
                        );
                        self.save_state();
                        active.push(a);
                    }
                    Err(e) => {
                        let r = self.record_for(
                            d.job,
                            d.scheduled,
                            Utc::now(),
                            d.catch_up,
                            d.by.clone(),
                        );
                        self.finish_record(r, Outcome::Failure, None, Some(e)).await;
                    }
                }
            }
            pending = waiting;
            // Running jobs: finished steps, deadlines.
            let mut still = Vec::new();
            for mut a in active.drain(..) {
                match a.child.try_wait() {
                    Ok(Some(status)) => {
                        if let Some(next_active) = self.step_done(a, status).await {
                            still.push(next_active);
                        }
                    }
                    Ok(None) => {
                        let now_i = Instant::now();
                        if a.stopping.is_none() && a.deadline.is_some_and(|d| now_i >= d) {
                            (self.log)(&format!(
                                "{}: past its deadline; stopping it",
                                self.jobs[a.job].name
                            ));
                            terminate(&a.child);
                            a.stopping = Some((now_i, Outcome::TimedOut));
                        }
                        if let Some((since, _)) = a.stopping
                            && now_i - since > Duration::from_secs(30)
                        {
                            let _ = a.child.start_kill();
                        }
                        still.push(a);
                    }
                    Err(e) => {
                        (self.log)(&format!("warning: {}: {e}", self.jobs[a.job].name));
                        still.push(a);
                    }
                }
            }
            active = still;
            if last_refresh.is_none_or(|t| t.elapsed() >= self.opts.refresh) {
                self.audit_settings_edit().await;
                self.refresh().await;
                self.evaluate_alerts(true).await;
                last_refresh = Some(Instant::now());
            }
            self.update_view(&next, &active);
        }
        self.flush_audit().await;
        self.stop(active).await;
        Ok(())
    }

    /// Records a settings file that changed since the daemon last ran (the
    /// daemon starts with the new settings).
    async fn audit_settings_at_start(&mut self) {
        let Some(file) = self.opts.settings.clone() else {
            return;
        };
        let before = std::mem::replace(&mut self.state.settings, file.loaded.clone());
        let changed = settings_change::changed_sections(&before, &file.loaded);
        if before.is_empty() || changed.is_empty() {
            return;
        }
        let record = settings_change::change_record(&file.path, &changed, true, &self.opts.host);
        if let Err(e) = self.repo.append_audit(record).await {
            (self.log)(&format!(
                "warning: an audit entry could not be written: {e}"
            ));
        }
    }

    /// Records an edit of the settings file while the daemon runs (once
    /// per version): the daemon goes on with the settings it started with.
    async fn audit_settings_edit(&mut self) {
        let Some(file) = &self.opts.settings else {
            return;
        };
        let Some(now) = file.on_disk() else {
            return;
        };
        let seen = self.settings_seen.as_ref().unwrap_or(&file.loaded);
        let changed = settings_change::changed_sections(seen, &now);
        if changed.is_empty() {
            return;
        }
        (self.log)(&format!(
            "warning: {} changed ({}); the daemon runs with the settings it started with until it is restarted",
            file.path.display(),
            changed.join(", ")
        ));
        let record = settings_change::change_record(&file.path, &changed, false, &self.opts.host);
        if let Err(e) = self.repo.append_audit(record).await {
            (self.log)(&format!(
                "warning: an audit entry could not be written: {e}"
            ));
        }
        self.settings_seen = Some(now);
    }

    /// Appends the HTTP side's audit entries to the repository's log.
    async fn flush_audit(&self) {
        let records: Vec<_> = self
            .shared
            .audit
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default();
        for r in records {
            if let Some(n) = approval_notice(&r, &self.opts.host) {
                self.deliver(n);
            }
            if let Err(e) = self.repo.append_audit(r).await {
                (self.log)(&format!(
                    "warning: an audit entry could not be written: {e}"
                ));
            }
        }
    }

    fn handle_requests(
        &mut self,
        next: &mut BTreeMap<usize, DateTime<Utc>>,
        pending: &mut VecDeque<plan::Due>,
        active: &[Active],
        now: DateTime<Utc>,
    ) {
        let requests: Vec<Request> = self
            .shared
            .requests
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default();
        for r in requests {
            match r {
                Request::Pause => {
                    (self.log)("scheduling paused");
                    self.state.paused = true;
                }
                Request::Resume => {
                    (self.log)("scheduling resumed");
                    self.state.paused = false;
                    // Nothing missed while paused runs now.
                    for (i, job) in self.jobs.iter().enumerate() {
                        if let Some(n) = job.schedule.next_after(now) {
                            next.insert(i, n);
                        }
                        self.state.last_fire.insert(job.name.clone(), now);
                    }
                }
                Request::RunNow { job: name, by } => {
                    if let Some(i) = self.jobs.iter().position(|j| j.name == name)
                        && !active.iter().any(|a| a.job == i)
                        && !pending.iter().any(|d| d.job == i)
                    {
                        (self.log)(&format!("{name}: run now, as asked"));
                        pending.push_back(plan::Due {
                            job: i,
                            scheduled: None,
                            catch_up: false,
                            by,
                        });
                    }
                }
            }
            self.shared.metrics.paused.set(i64::from(self.state.paused));
            self.save_state();
        }
    }
}

/// What the alert routes are told about restore requests: a new request
/// (approvers act on it), a break-glass restore (to be reviewed), and how
/// an approved restore ended (the requester and approvers learn it).
fn approval_notice(
    r: &lifeboat_repo::audit::AuditRecord,
    host: &str,
) -> Option<alerts::Notification> {
    let id = r.details.get("request")?.clone();
    let command = r
        .details
        .get("command")
        .cloned()
        .unwrap_or_else(|| r.args.join(" "));
    let (status, summary, detail) = match (r.action.as_str(), r.outcome.as_str()) {
        ("request", "ok") => (
            alerts::Status::Firing,
            format!("restore request {id} by {} waits for approval", r.actor),
            format!(
                "lifeboat {command}; approve with `lifeboat approve {id} --plan {}` or on the dashboard's approvals page",
                r.details.get("plan").map(String::as_str).unwrap_or("?")
            ),
        ),
        ("break glass", "ok") => (
            alerts::Status::Firing,
            format!(
                "BREAK GLASS: {} restores without approval (request {id})",
                r.actor
            ),
            format!(
                "lifeboat {command}; reason: {}; review it",
                r.details.get("reason").map(String::as_str).unwrap_or("?")
            ),
        ),
        ("run approved request", outcome) => (
            alerts::Status::Resolved,
            format!("approved restore {id} ended: {outcome}"),
            format!(
                "lifeboat {command}{}",
                r.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ),
        ),
        _ => return None,
    };
    Some(alerts::Notification {
        status,
        alert: Alert {
            key: format!("request:{id}"),
            summary,
            detail,
        },
        since: Utc::now(),
        host: host.to_string(),
        repeat: false,
    })
}

/// A percentage setting (`90%`) as a fraction.
fn percent(what: &str, v: Option<&str>, default: f64) -> Result<f64> {
    match v {
        None => Ok(default),
        Some(s) => s
            .trim()
            .trim_end_matches('%')
            .parse::<f64>()
            .ok()
            .filter(|p| *p > 0.0 && *p <= 100.0)
            .map(|p| p / 100.0)
            .ok_or_else(|| {
                crate::error::OpsError::Invalid(format!(
                    "{what} = {s:?}: expected a percentage, e.g. \"90%\""
                ))
            }),
    }
}
