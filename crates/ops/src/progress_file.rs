//! How far a running job has got: a small JSON file its process rewrites
//! as it works (at most twice a second, and at each new phase) and the
//! daemon reads for the dashboard and the API. The daemon names the file
//! in the job's environment ([`ENV`]).

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The environment variable naming the file a process reports its progress to.
pub const ENV: &str = "LIFEBOAT_PROGRESS_FILE";

/// A running job's progress.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobProgress {
    /// What it is doing ("reading files", "uploading packs", …).
    pub phase: String,
    /// Bytes done in this phase.
    pub done_bytes: u64,
    /// Bytes this phase has in all (0: not known).
    pub total_bytes: u64,
    /// Items (files, objects, packs) done in this phase.
    pub done_items: u64,
    /// Items this phase has in all (0: not known).
    pub total_items: u64,
    /// When the process last wrote it.
    pub updated: DateTime<Utc>,
}

impl JobProgress {
    /// Reads the file at `path` (`None` when it is missing or half-written).
    pub fn read(path: &Path) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// Writes it to `path`, whole or not at all (a temporary file renamed).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, path)
    }

    /// Percent done, when the phase's size is known.
    pub fn percent(&self) -> Option<u64> {
        (self.total_bytes > 0)
            .then(|| (self.done_bytes.min(self.total_bytes) * 100) / self.total_bytes)
            .or_else(|| {
                (self.total_items > 0)
                    .then(|| (self.done_items.min(self.total_items) * 100) / self.total_items)
            })
    }

    /// In words: `reading files: 45% (1.2 GiB of 2.6 GiB)`.
    pub fn describe(&self) -> String {
        let size = |b: u64| humansize::format_size(b, humansize::BINARY);
        match self.percent() {
            Some(p) if self.total_bytes > 0 => format!(
                "{}: {p}% ({} of {})",
                self.phase,
                size(self.done_bytes),
                size(self.total_bytes)
            ),
            Some(p) => format!(
                "{}: {p}% ({} of {})",
                self.phase, self.done_items, self.total_items
            ),
            None => self.phase.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_survives_the_file_and_reads_as_words() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("job.progress.json");
        assert_eq!(JobProgress::read(&path), None);
        let p = JobProgress {
            phase: "reading files".into(),
            done_bytes: 3 << 30,
            total_bytes: 4 << 30,
            ..JobProgress::default()
        };
        p.write(&path).unwrap_or_else(|e| panic!("{e}"));
        let back = JobProgress::read(&path);
        assert_eq!(back.as_ref(), Some(&p));
        assert_eq!(p.describe(), "reading files: 75% (3 GiB of 4 GiB)");
        let items = JobProgress {
            phase: "checking packs".into(),
            done_items: 1,
            total_items: 4,
            ..JobProgress::default()
        };
        assert_eq!(items.describe(), "checking packs: 25% (1 of 4)");
        std::fs::write(&path, b"{\"pha").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(JobProgress::read(&path), None);
    }
}
