//! The scheduling decisions, as pure functions of the jobs, the remembered
//! state and the time: what runs at startup (one catch-up per job whose fire
//! was missed, one per run the daemon was killed in), and what a fire does
//! while the job still runs (it is skipped, never queued into a pile).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::state::{DaemonState, InProgress};
use crate::config::Job;

/// A run to start now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// The job's index.
    pub job: usize,
    /// The fire time it runs for.
    pub scheduled: Option<DateTime<Utc>>,
    /// It makes up for a fire missed while the daemon was down.
    pub catch_up: bool,
    /// Who asked for it (a dashboard or API user); `None` for the schedule.
    pub by: Option<String>,
}

/// What the daemon does when it starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Startup {
    /// The next fire of each job (by index).
    pub next: BTreeMap<usize, DateTime<Utc>>,
    /// Runs to start at once.
    pub due: Vec<Due>,
    /// Runs the previous daemon was killed in, to record as interrupted.
    pub interrupted: Vec<(usize, InProgress)>,
}

/// Decides the startup: each job whose last taken fire is followed by a
/// missed one runs once (for the latest missed fire), and each run in
/// progress when the previous daemon died is interrupted and runs once
/// again. A job never seen before waits for its next fire.
pub fn startup(jobs: &[Job], state: &DaemonState, now: DateTime<Utc>) -> Startup {
    let mut out = Startup::default();
    for (i, job) in jobs.iter().enumerate() {
        if let Some(p) = state.running.get(&job.name) {
            out.interrupted.push((i, p.clone()));
        }
        let missed = state
            .last_fire
            .get(&job.name)
            .and_then(|lf| job.schedule.last_fire_between(*lf, now));
        let interrupted = out.interrupted.iter().find(|(j, _)| *j == i);
        if !state.paused {
            if let Some(m) = missed {
                out.due.push(Due {
                    job: i,
                    scheduled: Some(m),
                    catch_up: true,
                    by: None,
                });
            } else if let Some((_, p)) = interrupted {
                out.due.push(Due {
                    job: i,
                    scheduled: p.scheduled,
                    catch_up: true,
                    by: None,
                });
            }
        }
        if let Some(n) = job.schedule.next_after(now) {
            out.next.insert(i, n);
        }
    }
    out
}

/// What a fire of a job turns into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fire {
    /// Start (or queue, if its group is busy) a run.
    Run,
    /// Record a skipped run: the job's previous run still runs.
    SkipBusy,
    /// Record a skipped run: scheduling is paused.
    SkipPaused,
}

/// Decides a fire: never two runs of one job at once, nothing while paused.
pub fn on_fire(busy: bool, paused: bool) -> Fire {
    if paused {
        Fire::SkipPaused
    } else if busy {
        Fire::SkipBusy
    } else {
        Fire::Run
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Schedule;

    fn job(name: &str, expr: &str) -> Job {
        Job {
            name: name.into(),
            kind: crate::config::JobKind::Check,
            source: None,
            schedule: Schedule::cron(expr, "UTC").unwrap_or_else(|e| panic!("{e}")),
            deadline: None,
            group: None,
            steps: vec![],
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    #[test]
    fn downtime_catches_up_once_and_new_jobs_wait() {
        let jobs = [
            job("hourly", "0 * * * *"),
            job("nightly", "0 2 * * *"),
            job("new", "0 * * * *"),
        ];
        let mut state = DaemonState::default();
        state
            .last_fire
            .insert("hourly".into(), at("2026-11-30T03:00:00Z"));
        state
            .last_fire
            .insert("nightly".into(), at("2026-11-30T02:00:00Z"));
        let s = startup(&jobs, &state, at("2026-11-30T09:10:00Z"));
        // hourly missed 04:00…09:00: one run, for 09:00; nightly missed
        // nothing; the new job waits.
        assert_eq!(
            s.due,
            vec![Due {
                job: 0,
                scheduled: Some(at("2026-11-30T09:00:00Z")),
                catch_up: true,
                by: None
            }]
        );
        assert_eq!(s.next.get(&0), Some(&at("2026-11-30T10:00:00Z")));
        assert_eq!(s.next.get(&2), Some(&at("2026-11-30T10:00:00Z")));
    }

    #[test]
    fn a_run_the_daemon_died_in_is_interrupted_and_runs_once_again() {
        let jobs = [job("nightly", "0 2 * * *")];
        let mut state = DaemonState::default();
        state
            .last_fire
            .insert("nightly".into(), at("2026-11-30T02:00:00Z"));
        let p = InProgress {
            scheduled: Some(at("2026-11-30T02:00:00Z")),
            started: at("2026-11-30T02:00:01Z"),
            pid: Some(7),
        };
        state.running.insert("nightly".into(), p.clone());
        let s = startup(&jobs, &state, at("2026-11-30T02:05:00Z"));
        assert_eq!(s.interrupted, vec![(0, p)]);
        assert_eq!(s.due.len(), 1, "exactly one catch-up");
        assert!(s.due[0].catch_up);
        // Paused: nothing starts, the interruption is still recorded.
        state.paused = true;
        let s = startup(&jobs, &state, at("2026-11-30T02:05:00Z"));
        assert!(s.due.is_empty());
        assert_eq!(s.interrupted.len(), 1);
    }

    #[test]
    fn fires_of_a_busy_or_paused_job_are_skipped() {
        assert_eq!(on_fire(false, false), Fire::Run);
        assert_eq!(on_fire(true, false), Fire::SkipBusy);
        assert_eq!(on_fire(false, true), Fire::SkipPaused);
    }
}
