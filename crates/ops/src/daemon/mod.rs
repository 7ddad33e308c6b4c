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

pub mod plan;
pub mod state;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_repo::Repository;
use serde::Serialize;

use crate::alerts::{self, Alert, Notification, rules};
use crate::config::{AlertsConfig, Job, JobKind, SourceConfig, SourceKind};
use crate::error::Result;
use crate::metrics::{ClusterLabels, Metrics, RunLabels};
use crate::runs::{Outcome, RunRecord};
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
}

/// A request from outside the loop (the HTTP API).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Skip every fire until resumed.
    Pause,
    /// Resume; the next fires run, nothing runs at once.
    Resume,
    /// Run this job now (unless it runs already).
    RunNow(String),
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
    /// Its last run.
    pub last: Option<RunRecord>,
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
}

impl Shared {
    /// Queues a request for the loop.
    pub fn request(&self, r: Request) {
        if let Ok(mut q) = self.requests.lock() {
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
    step: usize,
    child: tokio::process::Child,
    deadline: Option<Instant>,
    /// Set when the daemon stops the run: SIGTERM sent at, and why.
    stopping: Option<(Instant, Outcome)>,
    stdout: PathBuf,
    stderr: PathBuf,
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
    archive_lag: Vec<(String, i64)>,
    stored_bytes: Option<u64>,
    disk_used: Option<f64>,
    started: DateTime<Utc>,
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
            archive_lag: Vec::new(),
            stored_bytes: None,
            disk_used: None,
            started: Utc::now(),
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
            let record = self.record_for(*i, p.scheduled, p.started, false);
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
        self.save_state();
        let mut active: Vec<Active> = Vec::new();
        self.shared.metrics.paused.set(i64::from(self.state.paused));
        let mut last_refresh: Option<Instant> = None;
        self.update_view(&next, &active);
        self.shared.ready.store(true, Ordering::SeqCst);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(self.opts.tick) => {}
            }
            let now = Utc::now();
            self.handle_requests(&mut next, &mut pending, &active, now);
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
                    }),
                    plan::Fire::SkipBusy => {
                        (self.log)(&format!(
                            "{}: skipped, its previous run still runs",
                            self.jobs[i].name
                        ));
                        let r = self.record_for(i, Some(fire), now, false);
                        self.finish_record(
                            r,
                            Outcome::Skipped,
                            None,
                            Some("the previous run still ran".into()),
                        )
                        .await;
                    }
                    plan::Fire::SkipPaused => {
                        let r = self.record_for(i, Some(fire), now, false);
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
                match self.spawn(d.job, 0, d.scheduled, d.catch_up, Utc::now()) {
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
                        let r = self.record_for(d.job, d.scheduled, Utc::now(), d.catch_up);
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
                self.refresh().await;
                self.evaluate_alerts(true).await;
                last_refresh = Some(Instant::now());
            }
            self.update_view(&next, &active);
        }
        self.stop(active).await;
        Ok(())
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
                Request::RunNow(name) => {
                    if let Some(i) = self.jobs.iter().position(|j| j.name == name)
                        && !active.iter().any(|a| a.job == i)
                        && !pending.iter().any(|d| d.job == i)
                    {
                        (self.log)(&format!("{name}: run now, as asked"));
                        pending.push_back(plan::Due {
                            job: i,
                            scheduled: None,
                            catch_up: false,
                        });
                    }
                }
            }
            self.shared.metrics.paused.set(i64::from(self.state.paused));
            self.save_state();
        }
    }

    fn spawn(
        &self,
        job: usize,
        step: usize,
        scheduled: Option<DateTime<Utc>>,
        catch_up: bool,
        started: DateTime<Utc>,
    ) -> std::result::Result<Active, String> {
        let j = &self.jobs[job];
        let logs = self.opts.state_dir.join("logs");
        std::fs::create_dir_all(&logs)
            .map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
        let safe: String = j
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let stdout = logs.join(format!("{safe}.{step}.out"));
        let stderr = logs.join(format!("{safe}.{step}.err"));
        let open = |p: &Path| {
            std::fs::File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()))
        };
        let child = tokio::process::Command::new(&self.opts.program)
            .args(&self.opts.global_args)
            .args(&j.steps[step])
            .env("LIFEBOAT_DIE_WITH_PARENT", std::process::id().to_string())
            .stdin(std::process::Stdio::null())
            .stdout(open(&stdout)?)
            .stderr(open(&stderr)?)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.opts.program.display()))?;
        if step == 0 {
            (self.log)(&format!(
                "{}: started{}",
                j.name,
                if catch_up { " (catching up)" } else { "" }
            ));
        }
        Ok(Active {
            job,
            scheduled,
            catch_up,
            started,
            step,
            child,
            deadline: j.deadline.map(|d| Instant::now() + d),
            stopping: None,
            stdout,
            stderr,
        })
    }

    /// A step ended: the next step, or the run's record.
    async fn step_done(&mut self, a: Active, status: std::process::ExitStatus) -> Option<Active> {
        let job = a.job;
        if let Some((_, why)) = a.stopping {
            let r = self.record_for(job, a.scheduled, a.started, a.catch_up);
            let text = match why {
                Outcome::TimedOut => format!(
                    "stopped after its deadline of {}",
                    self.jobs[job]
                        .deadline
                        .map(crate::duration::human)
                        .unwrap_or_default()
                ),
                _ => "stopped when the daemon stopped".into(),
            };
            self.finish_record(r, why, status.code(), Some(text)).await;
            return None;
        }
        if !status.success() {
            let r = self.record_for(job, a.scheduled, a.started, a.catch_up);
            let error = tail(&a.stderr, 5);
            self.finish_record(r, Outcome::Failure, status.code(), Some(error))
                .await;
            return None;
        }
        if a.step + 1 < self.jobs[job].steps.len() {
            match self.spawn(job, a.step + 1, a.scheduled, a.catch_up, a.started) {
                Ok(mut next) => {
                    next.deadline = a.deadline;
                    return Some(next);
                }
                Err(e) => {
                    let r = self.record_for(job, a.scheduled, a.started, a.catch_up);
                    self.finish_record(r, Outcome::Failure, None, Some(e)).await;
                    return None;
                }
            }
        }
        let mut r = self.record_for(job, a.scheduled, a.started, a.catch_up);
        let output: serde_json::Value = std::fs::read(&a.stdout)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        match self.jobs[job].kind {
            JobKind::Backup => {
                r.snapshot = output["id"].as_str().map(str::to_string);
                r.bytes = output["snapshot"]["summary"]["bytes"].as_u64();
                r.bytes_added = output["snapshot"]["summary"]["stored_bytes"].as_u64();
            }
            JobKind::Drill => {
                r.error = output["failures"]
                    .as_array()
                    .filter(|f| !f.is_empty())
                    .map(|f| {
                        f.iter()
                            .filter_map(|x| x.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    });
                r.rto_seconds = output["rto"]["seconds"].as_f64();
            }
            _ => {}
        }
        self.finish_record(r, Outcome::Success, Some(0), None).await;
        None
    }

    fn record_for(
        &self,
        job: usize,
        scheduled: Option<DateTime<Utc>>,
        started: DateTime<Utc>,
        catch_up: bool,
    ) -> RunRecord {
        let j = &self.jobs[job];
        RunRecord {
            job: j.name.clone(),
            run: j.kind.as_str().into(),
            source: j.source.clone(),
            scheduled,
            started,
            ended: started,
            outcome: Outcome::Success,
            exit_code: None,
            error: None,
            bytes: None,
            bytes_added: None,
            snapshot: None,
            catch_up,
            rto_seconds: None,
        }
    }

    /// Ends a record: stores it, updates metrics and alerts.
    async fn finish_record(
        &mut self,
        mut r: RunRecord,
        outcome: Outcome,
        exit_code: Option<i32>,
        error: Option<String>,
    ) {
        r.ended = Utc::now().max(r.started);
        r.outcome = outcome;
        r.exit_code = exit_code;
        if error.is_some() {
            r.error = error;
        }
        if outcome != Outcome::Skipped {
            (self.log)(&format!(
                "{}: {} after {:.1}s{}",
                r.job,
                outcome.as_str(),
                r.seconds(),
                r.error
                    .as_deref()
                    .map(|e| format!(": {}", e.lines().last().unwrap_or(e)))
                    .unwrap_or_default()
            ));
        }
        if let Err(e) = crate::runs::save(&self.repo, &r).await {
            (self.log)(&format!(
                "warning: the run record of {} could not be stored: {e}",
                r.job
            ));
        }
        self.state.running.remove(&r.job);
        self.save_state();
        let m = &self.shared.metrics;
        m.runs
            .get_or_create(&RunLabels {
                job: r.job.clone(),
                outcome: outcome.as_str().into(),
            })
            .inc();
        if outcome != Outcome::Skipped {
            m.last_duration
                .get_or_create(&Metrics::job(&r.job))
                .set(r.seconds());
        }
        if let Some(b) = r.bytes_added {
            m.last_bytes_added
                .get_or_create(&Metrics::job(&r.job))
                .set(b as i64);
        }
        let refresh_after = outcome == Outcome::Success && r.run != "drill";
        self.runs.push(r);
        self.update_source_metrics();
        if refresh_after {
            self.refresh().await;
        }
        self.evaluate_alerts(false).await;
    }

    /// Reads what the repository says about earlier runs and backups.
    async fn load_history(&mut self) {
        match crate::runs::load(&self.repo).await {
            Ok(r) => self.runs = r,
            Err(e) => (self.log)(&format!("warning: the run history could not be read: {e}")),
        }
        // Backups made without the daemon count too (tagged with their source).
        match self
            .repo
            .list_snapshots(&lifeboat_repo::progress::none())
            .await
        {
            Ok(snaps) => {
                for s in snaps {
                    for t in &s.snapshot.tags {
                        if let Some(src) = t.strip_prefix("source:") {
                            let e = self
                                .snapshots_of
                                .entry(src.to_string())
                                .or_insert(s.snapshot.time);
                            *e = (*e).max(s.snapshot.time);
                        }
                    }
                }
            }
            Err(e) => (self.log)(&format!("warning: the snapshots could not be listed: {e}")),
        }
        self.update_source_metrics();
    }

    /// When each declared source last backed up successfully.
    fn last_success(&self, source: &str) -> Option<DateTime<Utc>> {
        let run = self
            .runs
            .iter()
            .filter(|r| {
                r.run == "backup"
                    && r.source.as_deref() == Some(source)
                    && r.outcome == Outcome::Success
            })
            .map(|r| r.ended)
            .max();
        run.into_iter()
            .chain(self.snapshots_of.get(source).copied())
            .max()
    }

    fn backed_up_sources(&self) -> Vec<&SourceConfig> {
        self.sources
            .iter()
            .filter(|s| {
                self.jobs.iter().any(|j| {
                    j.kind == JobKind::Backup && j.source.as_deref() == Some(s.name.get_ref())
                })
            })
            .collect()
    }

    fn update_source_metrics(&self) {
        let m = &self.shared.metrics;
        let now = Utc::now();
        for s in self.backed_up_sources() {
            let labels = Metrics::source(s.name.get_ref());
            match self.last_success(s.name.get_ref()) {
                Some(t) => {
                    m.last_success
                        .get_or_create(&labels)
                        .set(t.timestamp_millis() as f64 / 1000.0);
                    m.last_success_age
                        .get_or_create(&labels)
                        .set((now - t).num_milliseconds() as f64 / 1000.0);
                    m.never_succeeded.get_or_create(&labels).set(0);
                    if s.kind != SourceKind::Postgres {
                        m.rpo
                            .get_or_create(&labels)
                            .set((now - t).num_milliseconds() as f64 / 1000.0);
                    }
                }
                None => {
                    m.never_succeeded.get_or_create(&labels).set(1);
                }
            }
            if let Some(d) = self.runs.iter().rev().find(|r| {
                r.run == "drill"
                    && r.source.as_deref() == Some(s.name.get_ref())
                    && r.outcome != Outcome::Skipped
            }) {
                m.drill_ok
                    .get_or_create(&labels)
                    .set(i64::from(d.outcome == Outcome::Success));
                if let Some(rto) = d.rto_seconds {
                    m.drill_rto.get_or_create(&labels).set(rto);
                }
            }
        }
    }

    /// Refreshes the figures that need a look at the repository: the WAL
    /// archives, the stored bytes, the free space.
    async fn refresh(&mut self) {
        let m = &self.shared.metrics;
        match lifeboat_postgres::info::info(&self.repo, &lifeboat_repo::progress::none()).await {
            Ok(clusters) => {
                self.archive_lag.clear();
                for c in clusters {
                    let labels = ClusterLabels {
                        system_id: c.system_id.clone(),
                    };
                    if let Some(lag) = c.archive_lag_seconds {
                        m.archive_lag.get_or_create(&labels).set(lag as f64);
                        self.archive_lag.push((c.system_id.clone(), lag));
                    }
                    if let Some(w) = c
                        .timelines
                        .iter()
                        .find(|t| t.followed_by_latest)
                        .and_then(|t| t.window.as_ref())
                    {
                        m.window_start
                            .get_or_create(&labels)
                            .set(w.earliest.timestamp() as f64);
                        if let Some(end) = w.latest {
                            m.window_end
                                .get_or_create(&labels)
                                .set(end.timestamp() as f64);
                        }
                    }
                    // A physical source's RPO: how long ago its WAL last reached the archive.
                    if let Some(lag) = c.archive_lag_seconds {
                        for s in &self.sources {
                            if s.kind == SourceKind::Postgres
                                && let Some(p) = &s.pgdata
                                && lifeboat_postgres::control::system_identifier(p)
                                    .is_ok_and(|id| id.to_string() == c.system_id)
                            {
                                m.rpo
                                    .get_or_create(&Metrics::source(s.name.get_ref()))
                                    .set(lag as f64);
                            }
                        }
                    }
                }
            }
            Err(e) => (self.log)(&format!("warning: the WAL archive could not be read: {e}")),
        }
        match self.repo.storage().list(lifeboat_repo::layout::DATA).await {
            Ok(packs) => {
                let total: u64 = packs.iter().map(|p| p.size).sum();
                self.stored_bytes = Some(total);
                m.stored_bytes.set(total as i64);
            }
            Err(e) => (self.log)(&format!(
                "warning: the repository's packs could not be listed: {e}"
            )),
        }
        if let Some(dir) = &self.opts.local_repository
            && let Ok(st) = rustix::fs::statvfs(dir)
        {
            let free = st.f_bavail.saturating_mul(st.f_frsize);
            let total = st.f_blocks.saturating_mul(st.f_frsize).max(1);
            m.free_bytes.set(free as i64);
            self.disk_used = Some(1.0 - free as f64 / total as f64);
        }
        self.update_source_metrics();
    }

    /// Evaluates the rules and sends what is due; after a refresh with
    /// nothing alerting, calls the heartbeat.
    async fn evaluate_alerts(&mut self, heartbeat: bool) {
        let now = Utc::now();
        let facts = rules::Facts {
            now,
            started: Some(self.started),
            runs: self.runs.clone(),
            sources: self
                .backed_up_sources()
                .iter()
                .map(|s| {
                    let rpo = s
                        .rpo
                        .as_deref()
                        .and_then(|r| crate::duration::parse("rpo", r).ok())
                        .unwrap_or(self.opts.default_rpo);
                    (
                        s.name.get_ref().clone(),
                        rpo,
                        self.last_success(s.name.get_ref()),
                    )
                })
                .collect(),
            drilled: self
                .jobs
                .iter()
                .filter(|j| j.kind == JobKind::Drill)
                .filter_map(|j| j.source.clone())
                .map(|s| (s, self.opts.drill_every))
                .collect(),
            archive_lag: self.archive_lag.clone(),
            disk_used: self.disk_used,
            quota: self.opts.quota.zip(self.stored_bytes).map(|(q, s)| (s, q)),
        };
        let holding = rules::evaluate(&facts, &self.limits);
        let m = &self.shared.metrics;
        m.alert.clear();
        for a in &holding {
            m.alert
                .get_or_create(&crate::metrics::AlertLabels {
                    alert: a.key.clone(),
                })
                .set(1);
        }
        let notes = alerts::decide(
            &holding,
            &mut self.state.alerts,
            now,
            self.repeat,
            &self.opts.host,
        );
        if !notes.is_empty() {
            self.save_state();
        }
        for n in notes {
            (self.log)(&format!("alert: {}", n.text()));
            self.deliver(n);
        }
        if let Ok(mut v) = self.shared.view.lock() {
            v.alerts = holding.clone();
        }
        if heartbeat
            && holding.is_empty()
            && let Some(url) = self.alerts.heartbeat_url.clone()
        {
            let log = self.log.clone();
            tokio::spawn(async move {
                if let Err(e) = alerts::routes::heartbeat(&url).await {
                    log(&format!("warning: {e}"));
                }
            });
        }
    }

    /// Sends a notification through every route, in the background.
    fn deliver(&self, n: Notification) {
        for route in self.alerts.route.clone() {
            let (n, log) = (n.clone(), self.log.clone());
            tokio::spawn(async move {
                if let Err(e) = alerts::routes::send(&route, &n).await {
                    log(&format!("warning: {e}"));
                }
            });
        }
    }

    fn update_view(&self, next: &BTreeMap<usize, DateTime<Utc>>, active: &[Active]) {
        let jobs = self
            .jobs
            .iter()
            .enumerate()
            .map(|(i, j)| JobView {
                name: j.name.clone(),
                run: j.kind,
                source: j.source.clone(),
                schedule: j.schedule.describe(),
                next: next.get(&i).copied(),
                running_since: active.iter().find(|a| a.job == i).map(|a| a.started),
                last: self.runs.iter().rev().find(|r| r.job == j.name).cloned(),
            })
            .collect();
        if let Ok(mut v) = self.shared.view.lock() {
            v.started.get_or_insert_with(Utc::now);
            v.paused = self.state.paused;
            v.jobs = jobs;
        }
        // Ages move with the clock.
        let now = Utc::now();
        for s in self.backed_up_sources() {
            if let Some(t) = self.last_success(s.name.get_ref()) {
                self.shared
                    .metrics
                    .last_success_age
                    .get_or_create(&Metrics::source(s.name.get_ref()))
                    .set((now - t).num_milliseconds() as f64 / 1000.0);
            }
        }
    }

    /// A stop: waits for running jobs up to the limit, then stops them and
    /// records them as interrupted.
    async fn stop(mut self, mut active: Vec<Active>) {
        if !active.is_empty() {
            (self.log)(&format!(
                "stopping: waiting up to {} for {} running job(s)",
                crate::duration::human(self.opts.stop_timeout),
                active.len()
            ));
        }
        let until = Instant::now() + self.opts.stop_timeout;
        while !active.is_empty() {
            let mut still = Vec::new();
            for mut a in active.drain(..) {
                match a.child.try_wait() {
                    Ok(Some(status)) => {
                        // A finished step ends the run here: no new steps start.
                        if a.stopping.is_none()
                            && status.success()
                            && a.step + 1 < self.jobs[a.job].steps.len()
                        {
                            a.stopping = Some((Instant::now(), Outcome::Interrupted));
                        }
                        let _ = self.step_done(a, status).await;
                    }
                    Ok(None) => {
                        if Instant::now() >= until && a.stopping.is_none() {
                            (self.log)(&format!("{}: stopping it", self.jobs[a.job].name));
                            terminate(&a.child);
                            a.stopping = Some((Instant::now(), Outcome::Interrupted));
                        }
                        if let Some((since, _)) = a.stopping
                            && since.elapsed() > Duration::from_secs(30)
                        {
                            let _ = a.child.start_kill();
                        }
                        still.push(a);
                    }
                    Err(_) => still.push(a),
                }
            }
            active = still;
            if !active.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        self.save_state();
        (self.log)("stopped");
    }
}

/// Asks a child to stop (SIGTERM).
fn terminate(child: &tokio::process::Child) {
    if let Some(pid) = child
        .id()
        .and_then(|p| rustix::process::Pid::from_raw(p as i32))
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
}

/// The last `n` non-empty lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
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
