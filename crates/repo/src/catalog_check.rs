//! `check` of the repository's bookkeeping objects: pins, deletion plans,
//! reports and backup-in-progress records. None holds file data, but each
//! can stop something from working: an unreadable pin stops `forget` (a
//! hold is never ignored), an unreadable deletion plan stops every `prune`,
//! an unreadable report loses what a drill proved, and a record left by an
//! interrupted backup makes `prune` wait (until the record goes stale). A
//! damaged erasure ledger means restores cannot re-apply every erasure.

use chrono::{DateTime, Utc};
use futures::StreamExt;
use lifeboat_format::maintenance::DeletionPlan;
use lifeboat_format::object::ObjectKind;
use lifeboat_format::report::CatalogReport;

use crate::check::{Finding, Severity};
use crate::error::{RepoError, Result};
use crate::layout;
use crate::repository::Repository;
use crate::running::is_live;

fn finding(severity: Severity, object: String, message: String) -> Finding {
    Finding {
        severity,
        object,
        message,
        affected: Vec::new(),
    }
}

impl Repository {
    /// Reads every content-addressed object under `prefix` and returns the
    /// keys of those that cannot be read or parsed, with the reason.
    async fn unreadable_objects(
        &self,
        prefix: &str,
        kind: ObjectKind,
        parse: fn(&[u8]) -> std::result::Result<(), String>,
    ) -> Result<Vec<(String, String)>> {
        let ids = self.ids_under(prefix).await?;
        let mut loaded = futures::stream::iter(ids)
            .map(|id| async move {
                let key = format!("{prefix}{id}");
                let r = match self.load_object(kind, &key, &id).await {
                    Ok(payload) => parse(&payload),
                    Err(e) if e.is_access_problem() => return Err(e),
                    // Removed while we listed (a finished prune, an unpin).
                    Err(RepoError::Storage(s)) if s.is_not_found() => Ok(()),
                    Err(e) => Err(e.to_string()),
                };
                Ok((key, r))
            })
            .buffer_unordered(16);
        let mut out = Vec::new();
        while let Some(r) = loaded.next().await {
            if let (key, Err(why)) = r? {
                out.push((key, why));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Checks pins, deletion plans, reports and backup-in-progress records;
    /// returns a finding for each that is damaged or left over.
    pub async fn check_catalog(&self, now: DateTime<Utc>) -> Result<Vec<Finding>> {
        let mut out = Vec::new();
        // The erasure ledger: a gap or a broken link means an erasure could
        // be lost from every later restore.
        for (key, why) in self.erasure_ledger().await?.problems {
            out.push(finding(
                Severity::Error,
                key,
                format!("{why}; restores cannot be trusted to re-apply every erasure"),
            ));
        }
        // The audit logs: `audit verify` says the same, entry by entry.
        match self.audit_logs().await {
            Ok(logs) => {
                for p in logs.into_iter().flat_map(|l| l.problems) {
                    out.push(finding(
                        Severity::Error,
                        p.key,
                        format!("audit log {}: {}", p.log, p.problem),
                    ));
                }
            }
            Err(e @ (RepoError::Corrupt { .. } | RepoError::Damaged(_))) => out.push(finding(
                Severity::Error,
                layout::AUDIT.to_string(),
                format!("the audit log cannot be read: {e}"),
            )),
            Err(e) => return Err(e),
        }
        let pin = |b: &[u8]| {
            lifeboat_format::snapshot::Pin::from_json(b)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        for (key, why) in self
            .unreadable_objects(layout::PINS, ObjectKind::Pin, pin)
            .await?
        {
            out.push(finding(
                Severity::Error,
                key,
                format!(
                    "pin (legal hold) is unreadable: {why}; `forget` refuses to run while a hold cannot be read"
                ),
            ));
        }
        let plan = |b: &[u8]| {
            DeletionPlan::from_json(b)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        for (key, why) in self
            .unreadable_objects(layout::PRUNE, ObjectKind::DeletionPlan, plan)
            .await?
        {
            out.push(finding(
                Severity::Error,
                key,
                format!(
                    "deletion plan is unreadable: {why}; every `prune` stops on it. `lifeboat repair plans` \
                     removes it (the packs it marked are kept, and a later prune marks them again)"
                ),
            ));
        }
        let report = |b: &[u8]| {
            CatalogReport::from_json(b)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        for (key, why) in self
            .unreadable_objects(layout::REPORTS, ObjectKind::Report, report)
            .await?
        {
            out.push(finding(
                Severity::Error,
                key,
                format!("report is unreadable: {why}; what that drill, check or restore recorded is lost"),
            ));
        }
        for entry in self.running_backups().await? {
            match entry.record {
                Err(e) => out.push(finding(
                    Severity::Warning,
                    entry.key,
                    format!(
                        "backup-in-progress record is unreadable ({e}); prune postpones deletions while it \
                         exists. `lifeboat repair plans` removes it"
                    ),
                )),
                Ok(r) if !is_live(&r) => out.push(finding(
                    Severity::Warning,
                    entry.key,
                    format!(
                        "left by an interrupted {} (process {} on {}, last seen {}, {} min ago); prune removes it \
                         once it is older than its grace period",
                        r.what,
                        r.pid,
                        r.host,
                        r.refreshed.format("%Y-%m-%d %H:%M:%S UTC"),
                        (now - r.refreshed).num_minutes()
                    ),
                )),
                Ok(_) => {}
            }
        }
        Ok(out)
    }
}
