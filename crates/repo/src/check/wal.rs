//! `check`'s WAL phase: counts the archived WAL objects and, with
//! `--read-data`, opens each one (its seal proves it is the segment that
//! was archived). Continuity (no segment missing) is checked with the
//! catalog, where the timelines are known.

use futures::StreamExt;
use lifeboat_format::object::{ObjectKind, open_object};

use super::{Checker, Severity};
use crate::error::{RepoError, Result};
use crate::layout;
use crate::progress::Event;
use crate::repository::cpu;

impl Checker<'_> {
    /// Lists the archived WAL and, if `read_data`, verifies every object.
    pub(super) async fn check_wal(&mut self, read_data: bool) -> Result<()> {
        self.progress.event(Event::Phase("checking archived WAL"));
        let repo = self.repo;
        let wal = repo.storage().list(layout::WAL).await?;
        self.report.wal_files = wal.len() as u64;
        if !read_data {
            return Ok(());
        }
        let mut reads = futures::stream::iter(wal)
            .map(|m| async move {
                let r = match repo.storage().get(&m.key, None).await {
                    Ok(bytes) => {
                        let (mk, key) = (repo.key().clone(), m.key.clone());
                        cpu(move || {
                            open_object(&mk, ObjectKind::Wal, key.as_bytes(), &bytes)
                                .map(|_| ())
                                .map_err(|e| e.to_string())
                        })
                        .await?
                    }
                    Err(e) if e.is_access_problem() || e.is_transient() => return Err(e.into()),
                    Err(e) => Err(e.to_string()),
                };
                Ok::<_, RepoError>((m.key, m.size, r))
            })
            .buffer_unordered(4);
        while let Some(r) = reads.next().await {
            let (key, size, r) = r?;
            self.report.bytes_read += size;
            if let Err(why) = r {
                self.add(
                    Severity::Error,
                    key,
                    format!("WAL file is damaged: {why}; point-in-time recovery cannot pass it"),
                );
            }
        }
        Ok(())
    }
}
