//! The daemon's children: starting a job's steps as processes of the same
//! binary, collecting how they ended, recording the run, and stopping them
//! on a deadline or when the daemon stops.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::{Active, Daemon};
use crate::config::JobKind;
use crate::metrics::{Metrics, RunLabels};
use crate::runs::{Outcome, RunRecord};

impl Daemon {
    pub(super) fn spawn(
        &self,
        job: usize,
        step: usize,
        scheduled: Option<DateTime<Utc>>,
        catch_up: bool,
        started: DateTime<Utc>,
        by: Option<String>,
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
        let progress = logs.join(format!("{safe}.progress.json"));
        let _ = std::fs::remove_file(&progress);
        let stderr = logs.join(format!("{safe}.{step}.err"));
        let open = |p: &Path| {
            std::fs::File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()))
        };
        let mut command = tokio::process::Command::new(&self.opts.program);
        if let Some(who) = &by {
            // Snapshots and audit entries name who asked for this run.
            command.env("LIFEBOAT_ON_BEHALF_OF", who);
        }
        let child = command
            .args(&self.opts.global_args)
            .args(&j.steps[step])
            .env("LIFEBOAT_DIE_WITH_PARENT", std::process::id().to_string())
            .env(crate::progress_file::ENV, &progress)
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
            by,
            step,
            child,
            deadline: j.deadline.map(|d| Instant::now() + d),
            stopping: None,
            stdout,
            stderr,
            progress,
        })
    }

    /// A step ended: the next step, or the run's record.
    pub(super) async fn step_done(
        &mut self,
        a: Active,
        status: std::process::ExitStatus,
    ) -> Option<Active> {
        let job = a.job;
        if let Some((_, why)) = a.stopping {
            let r = self.record_for(job, a.scheduled, a.started, a.catch_up, a.by.clone());
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
            let r = self.record_for(job, a.scheduled, a.started, a.catch_up, a.by.clone());
            let error = tail(&a.stderr, 5);
            self.finish_record(r, Outcome::Failure, status.code(), Some(error))
                .await;
            return None;
        }
        if a.step + 1 < self.jobs[job].steps.len() {
            match self.spawn(
                job,
                a.step + 1,
                a.scheduled,
                a.catch_up,
                a.started,
                a.by.clone(),
            ) {
                Ok(mut next) => {
                    next.deadline = a.deadline;
                    return Some(next);
                }
                Err(e) => {
                    let r = self.record_for(job, a.scheduled, a.started, a.catch_up, a.by.clone());
                    self.finish_record(r, Outcome::Failure, None, Some(e)).await;
                    return None;
                }
            }
        }
        let mut r = self.record_for(job, a.scheduled, a.started, a.catch_up, a.by.clone());
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

    pub(super) fn record_for(
        &self,
        job: usize,
        scheduled: Option<DateTime<Utc>>,
        started: DateTime<Utc>,
        catch_up: bool,
        by: Option<String>,
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
            started_by: by,
        }
    }

    /// Ends a record: stores it, updates metrics and alerts.
    pub(super) async fn finish_record(
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

    /// A stop: waits for running jobs up to the limit, then stops them and
    /// records them as interrupted.
    pub(super) async fn stop(mut self, mut active: Vec<Active>) {
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
pub(super) fn terminate(child: &tokio::process::Child) {
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
