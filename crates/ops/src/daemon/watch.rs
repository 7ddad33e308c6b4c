//! What the daemon knows and tells: the run history and backups it read at
//! start, the figures it caches for metrics and status (refreshed after
//! each run and every `refresh`), and the alerts they raise.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{Active, Daemon, JobView, SourceView};
use crate::alerts::{self, Notification, rules};
use crate::config::{JobKind, SourceConfig, SourceKind};
use crate::metrics::{ClusterLabels, Metrics};
use crate::runs::Outcome;

impl Daemon {
    /// Reads what the repository says about earlier runs and backups.
    pub(super) async fn load_history(&mut self) {
        match crate::runs::load(&self.repo).await {
            Ok(r) => self.runs = r,
            Err(e) => (self.log)(&format!("warning: the run history could not be read: {e}")),
        }
        self.refresh().await;
    }

    /// When each declared source last backed up successfully.
    pub(super) fn last_success(&self, source: &str) -> Option<DateTime<Utc>> {
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

    pub(super) fn backed_up_sources(&self) -> Vec<&SourceConfig> {
        self.sources
            .iter()
            .filter(|s| {
                self.jobs.iter().any(|j| {
                    j.kind == JobKind::Backup && j.source.as_deref() == Some(s.name.get_ref())
                })
            })
            .collect()
    }

    pub(super) fn update_source_metrics(&self) {
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

    /// Refreshes the figures that need a look at the repository: the
    /// newest backup of each source, the WAL archives, the stored bytes,
    /// the free space.
    pub(super) async fn refresh(&mut self) {
        let none = lifeboat_repo::progress::none();
        // Only snapshots not seen before are read.
        let snapshots = match self
            .repo
            .list_snapshots_cached(&mut self.snapshot_cache, &none)
            .await
        {
            Ok(s) => {
                // Backups made without the daemon count too (tagged with
                // their source).
                self.snapshots_of.clear();
                self.snapshot_times.clear();
                let since = Utc::now() - chrono::Duration::days(30);
                for e in &s {
                    for src in e
                        .snapshot
                        .tags
                        .iter()
                        .filter_map(|t| t.strip_prefix("source:"))
                    {
                        let t = self
                            .snapshots_of
                            .entry(src.to_string())
                            .or_insert(e.snapshot.time);
                        *t = (*t).max(e.snapshot.time);
                        if e.snapshot.time >= since {
                            self.snapshot_times
                                .entry(src.to_string())
                                .or_default()
                                .push(e.snapshot.time);
                        }
                    }
                }
                s
            }
            Err(e) => {
                (self.log)(&format!("warning: the snapshots could not be listed: {e}"));
                Vec::new()
            }
        };
        let m = &self.shared.metrics;
        match lifeboat_postgres::info::info_of(&self.repo, &snapshots).await {
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
                    let window = c
                        .timelines
                        .iter()
                        .find(|t| t.followed_by_latest)
                        .and_then(|t| t.window.as_ref());
                    // The physical sources of this cluster: their real
                    // recoverable window, for the dashboard's timeline.
                    for s in &self.sources {
                        if s.kind == SourceKind::Postgres
                            && let Some(p) = &s.pgdata
                            && lifeboat_postgres::control::system_identifier(p)
                                .is_ok_and(|id| id.to_string() == c.system_id)
                        {
                            match window {
                                Some(w) => self
                                    .windows
                                    .insert(s.name.get_ref().clone(), (w.earliest, w.latest)),
                                None => self.windows.remove(s.name.get_ref()),
                            };
                        }
                    }
                    if let Some(w) = window {
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
    pub(super) async fn evaluate_alerts(&mut self, heartbeat: bool) {
        let now = Utc::now();
        let facts = rules::Facts {
            now,
            started: Some(self.started),
            runs: &self.runs,
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
    pub(super) fn deliver(&self, n: Notification) {
        for route in self.alerts.route.clone() {
            let (n, log) = (n.clone(), self.log.clone());
            tokio::spawn(async move {
                if let Err(e) = alerts::routes::send(&route, &n).await {
                    log(&format!("warning: {e}"));
                }
            });
        }
    }

    pub(super) fn update_view(&self, next: &BTreeMap<usize, DateTime<Utc>>, active: &[Active]) {
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
                progress: active
                    .iter()
                    .find(|a| a.job == i)
                    .and_then(|a| crate::progress_file::JobProgress::read(&a.progress)),
                last: self.runs.iter().rev().find(|r| r.job == j.name).cloned(),
            })
            .collect();
        let sources = self
            .backed_up_sources()
            .iter()
            .map(|s| {
                let name = s.name.get_ref().clone();
                let mut snapshots = self.snapshot_times.get(&name).cloned().unwrap_or_default();
                snapshots.sort();
                SourceView {
                    kind: s.kind.as_str().to_string(),
                    protected: s.protected,
                    rpo_seconds: s
                        .rpo
                        .as_deref()
                        .and_then(|r| crate::duration::parse("rpo", r).ok())
                        .unwrap_or(self.opts.default_rpo)
                        .as_secs() as i64,
                    last_success: self.last_success(&name),
                    snapshots,
                    window: self.windows.get(&name).copied(),
                    restore_command: restore_command(s),
                    name,
                }
            })
            .collect();
        let runs = self.runs[self.runs.len().saturating_sub(500)..].to_vec();
        if let Ok(mut v) = self.shared.view.lock() {
            v.started.get_or_insert_with(Utc::now);
            v.paused = self.state.paused;
            v.jobs = jobs;
            v.sources = sources;
            v.runs = runs;
            v.rto_target_seconds = self.opts.rto.map(|d| d.as_secs_f64());
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
}

/// The command restoring `s` in place from its newest backup, for the
/// dashboard's request form: a logical source of one database, or a bucket.
fn restore_command(s: &SourceConfig) -> Option<Vec<String>> {
    let name = s.name.get_ref().clone();
    let mut command: Vec<String> = match s.kind {
        SourceKind::PostgresLogical => match s.db.values().as_slice() {
            [db] => [
                "restore",
                "postgres",
                "latest",
                "--logical",
                "--db",
                db,
                "--clean",
            ]
            .map(String::from)
            .to_vec(),
            _ => return None,
        },
        SourceKind::Bucket => ["restore", "bucket", "latest", "--in-place"]
            .map(String::from)
            .to_vec(),
        _ => return None,
    };
    command.extend(["--source".to_string(), name]);
    Some(command)
}
