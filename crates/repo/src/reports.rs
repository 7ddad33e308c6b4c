//! The report catalog: drills, checks and recoveries store their reports in
//! the repository (docs/FORMAT.md, "Report"), so what was proven survives
//! the machine that proved it.

use futures::StreamExt;
use lifeboat_format::Id;
use lifeboat_format::object::ObjectKind;
use lifeboat_format::report::CatalogReport;

use crate::layout;
use crate::{RepoError, Repository, Result};

/// Reports read back from the catalog.
#[derive(Clone, Debug, Default)]
pub struct ReportList {
    /// Readable reports with their ids, oldest first.
    pub reports: Vec<(Id, CatalogReport)>,
    /// Keys of reports that could not be read (damaged, or another key).
    pub unreadable: Vec<String>,
}

impl Repository {
    /// Stores a report; returns its id.
    pub async fn save_report(&self, report: &CatalogReport) -> Result<Id> {
        Ok(self
            .save_object(ObjectKind::Report, report.to_json()?)
            .await?
            .0)
    }

    /// Every report of `kind` (all kinds with `None`), oldest first.
    pub async fn reports(&self, kind: Option<&str>) -> Result<ReportList> {
        let ids = self.ids_under(layout::REPORTS).await?;
        let mut loaded = futures::stream::iter(ids)
            .map(|id| async move {
                let key = layout::report(&id);
                let r = match self.load_object(ObjectKind::Report, &key, &id).await {
                    Ok(payload) => {
                        CatalogReport::from_json(&payload).map_err(|e| RepoError::corrupt(&key, e))
                    }
                    Err(e) => Err(e),
                };
                (id, key, r)
            })
            .buffer_unordered(16);
        let mut out = ReportList::default();
        while let Some((id, key, r)) = loaded.next().await {
            match r {
                Ok(r) if kind.is_none_or(|k| k == r.kind) => out.reports.push((id, r)),
                Ok(_) => {}
                Err(RepoError::Storage(e)) if !e.is_not_found() => {
                    return Err(RepoError::Storage(e));
                }
                Err(_) => out.unreadable.push(key),
            }
        }
        out.reports.sort_by_key(|(_, r)| r.time);
        out.unreadable.sort();
        Ok(out)
    }
}
