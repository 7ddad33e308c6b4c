//! The daemon's local state (`<state dir>/daemon.json`): per job, the last
//! fire time it took, and the runs in progress. It is only a cache of the
//! scheduling decisions — the run history itself is in the repository — but
//! it is what makes catch-up exact: after downtime each job whose fire was
//! missed runs once, and a run the daemon was killed in is recorded as
//! interrupted and caught up once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{OpsError, Result};

/// A run that had started when the state was last written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InProgress {
    /// The fire time it ran for.
    pub scheduled: Option<DateTime<Utc>>,
    /// When it started.
    pub started: DateTime<Utc>,
    /// The process running its current step.
    pub pid: Option<u32>,
}

/// What the daemon remembers across restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DaemonState {
    /// Per job: the most recent fire time taken (run, queued or skipped).
    pub last_fire: BTreeMap<String, DateTime<Utc>>,
    /// Per job: the run in progress.
    pub running: BTreeMap<String, InProgress>,
    /// Scheduling is paused.
    pub paused: bool,
    /// Per alert key: when it started to hold and when it was last sent.
    pub alerts: BTreeMap<String, (DateTime<Utc>, DateTime<Utc>)>,
    /// The settings file's section digests when the daemon last started.
    pub settings: BTreeMap<String, String>,
}

/// The state file in a directory.
#[derive(Clone, Debug)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// The state file in `dir` (created if needed, private to its owner).
    pub fn open(dir: &Path) -> Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                OpsError::Invalid(format!(
                    "cannot create the state directory {}: {e}",
                    dir.display()
                ))
            })?;
        Ok(Self {
            path: dir.join("daemon.json"),
        })
    }

    /// Reads the state (empty when there is none yet).
    pub fn load(&self) -> Result<DaemonState> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                OpsError::Invalid(format!(
                    "the daemon's state file {} is damaged ({e}); remove it to start afresh (the run history is in the repository)",
                    self.path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DaemonState::default()),
            Err(e) => Err(OpsError::Invalid(format!(
                "cannot read the daemon's state file {}: {e}",
                self.path.display()
            ))),
        }
    }

    /// Writes the state durably (temporary file, fsync, rename).
    pub fn save(&self, state: &DaemonState) -> Result<()> {
        use std::io::Write;
        let io = |e: std::io::Error| {
            OpsError::Invalid(format!(
                "cannot write the daemon's state file {}: {e}",
                self.path.display()
            ))
        };
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&serde_json::to_vec_pretty(state).map_err(|e| io(std::io::Error::other(e)))?)
            .map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_a_round_trip_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let f = StateFile::open(&dir.path().join("state")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.load().ok(), Some(DaemonState::default()));
        let mut s = DaemonState::default();
        s.last_fire.insert("backup prod".into(), Utc::now());
        s.running.insert(
            "backup prod".into(),
            InProgress {
                scheduled: None,
                started: Utc::now(),
                pid: Some(42),
            },
        );
        f.save(&s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.load().ok(), Some(s));
        std::fs::write(dir.path().join("state/daemon.json"), b"{bad")
            .unwrap_or_else(|e| panic!("{e}"));
        let e = f.load().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("damaged") && e.contains("remove it"), "{e}");
    }
}
