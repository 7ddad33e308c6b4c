//! Pins (legal holds) and `forget`: applying a retention policy to every
//! source in the repository and removing the snapshots it does not keep.
//!
//! A source is what a snapshot was taken of: the host, the source kind and
//! the paths (a file set, a database, a cluster). Each source is judged on
//! its own by [`crate::retention::apply`]. Forgetting removes snapshot
//! objects only; the data they alone referenced stays until `prune`.

use std::collections::{BTreeMap, HashSet};

use chrono::Utc;
use futures::StreamExt;
use lifeboat_format::Id;
use lifeboat_format::object::ObjectKind;
use lifeboat_format::snapshot::{Pin, Snapshot};
use serde::Serialize;

use crate::error::{RepoError, Result};
use crate::layout;
use crate::progress::{DynProgress, Event};
use crate::repository::{Repository, local_origin};
use crate::retention::{Candidate, Decision, PolicySet, apply};
use crate::snapshots::SnapshotEntry;

/// The source a snapshot belongs to, for grouping.
pub fn source_of(s: &Snapshot) -> String {
    format!("{} {} {}", s.host, s.source.as_str(), s.paths.join(" "))
}

/// One source's decisions.
#[derive(Clone, Debug, Serialize)]
pub struct SourcePlan {
    /// "host kind paths".
    pub source: String,
    /// The lifeboat.toml pattern whose policy applied (none: the default).
    pub matched: Option<String>,
    /// One decision per snapshot, newest first.
    pub snapshots: Vec<Decision>,
}

/// What `forget` decided (and, unless a dry run, did).
#[derive(Clone, Debug, Serialize)]
pub struct ForgetPlan {
    /// The policies applied.
    pub policy: PolicySet,
    /// Per source.
    pub sources: Vec<SourcePlan>,
    /// Snapshots kept.
    pub kept: u64,
    /// Snapshots removed (or that would be, in a dry run).
    pub removed: u64,
    /// Whether nothing was changed.
    pub dry_run: bool,
}

impl ForgetPlan {
    /// The snapshots the plan keeps.
    pub fn kept_ids(&self) -> HashSet<Id> {
        self.sources
            .iter()
            .flat_map(|s| &s.snapshots)
            .filter(|d| d.keep)
            .map(|d| d.id)
            .collect()
    }
}

impl Repository {
    /// Pins snapshot `id` with a reason; returns the pin's id.
    pub async fn pin(&self, id: &Id, reason: &str) -> Result<Id> {
        let o = local_origin(None);
        let pin = Pin {
            snapshot: *id,
            reason: reason.to_string(),
            time: Utc::now(),
            by: format!("{}@{}", o.user, o.host),
        };
        Ok(self.save_object(ObjectKind::Pin, pin.to_json()?).await?.0)
    }

    /// Every pin, with its own id.
    pub async fn pins(&self) -> Result<Vec<(Id, Pin)>> {
        let ids = self.ids_under(layout::PINS).await?;
        let mut loaded = futures::stream::iter(ids)
            .map(|id| async move {
                let payload = self
                    .load_object(ObjectKind::Pin, &layout::pin(&id), &id)
                    .await?;
                let pin = Pin::from_json(&payload)
                    .map_err(|e| RepoError::corrupt(layout::pin(&id), e))?;
                Ok::<_, RepoError>((id, pin))
            })
            .buffer_unordered(16);
        let mut out = Vec::new();
        while let Some(r) = loaded.next().await {
            out.push(r?);
        }
        out.sort_by_key(|(_, p)| p.time);
        Ok(out)
    }

    /// Removes every pin of snapshot `id`; returns how many there were.
    pub async fn unpin(&self, id: &Id) -> Result<usize> {
        let mut n = 0;
        for (pin_id, pin) in self.pins().await? {
            if pin.snapshot == *id {
                self.storage()
                    .delete(&layout::pin(&pin_id), lifeboat_storage::IfMissing::Ignore)
                    .await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Applies `policy` to every source and, unless `dry_run`, removes the
    /// snapshots it does not keep. Snapshots in `window_bases` (where a
    /// point-in-time-recovery window starts) are kept too. Unreadable pins
    /// stop the run: a hold that cannot be read must not be ignored.
    pub async fn forget(
        &self,
        policy: &PolicySet,
        window_bases: &HashSet<Id>,
        dry_run: bool,
        progress: &DynProgress,
    ) -> Result<ForgetPlan> {
        let snapshots = self.list_snapshots(progress).await?;
        let plan = self
            .plan_forget(policy, window_bases, &snapshots, dry_run)
            .await?;
        if !dry_run {
            progress.event(Event::Phase("removing snapshots"));
            progress.event(Event::Total {
                items: plan.removed,
                bytes: 0,
            });
            for d in plan.sources.iter().flat_map(|s| &s.snapshots) {
                if !d.keep {
                    self.storage()
                        .delete(
                            &layout::snapshot(&d.id),
                            lifeboat_storage::IfMissing::Ignore,
                        )
                        .await?;
                    progress.event(Event::Advance { items: 1, bytes: 0 });
                }
            }
        }
        Ok(plan)
    }

    /// What [`Repository::forget`] decides for `snapshots` (already
    /// listed), changing nothing; the pins are read here.
    pub async fn plan_forget(
        &self,
        policy: &PolicySet,
        window_bases: &HashSet<Id>,
        snapshots: &[SnapshotEntry],
        dry_run: bool,
    ) -> Result<ForgetPlan> {
        if let Some(which) = policy.empty_one() {
            return Err(RepoError::Invalid(format!(
                "{which} retention policy keeps nothing; give at least one keep rule"
            )));
        }
        let pinned: HashSet<Id> = self
            .pins()
            .await?
            .into_iter()
            .map(|(_, p)| p.snapshot)
            .collect();
        let mut groups: BTreeMap<String, Vec<Candidate>> = BTreeMap::new();
        for e in snapshots {
            groups
                .entry(source_of(&e.snapshot))
                .or_default()
                .push(Candidate {
                    id: e.id,
                    time: e.snapshot.time,
                    kind: e.snapshot.kind,
                    pinned: pinned.contains(&e.id),
                    window_base: window_bases.contains(&e.id),
                });
        }
        let mut plan = ForgetPlan {
            policy: policy.clone(),
            sources: Vec::new(),
            kept: 0,
            removed: 0,
            dry_run,
        };
        for (source, candidates) in groups {
            let (chosen, matched) = policy.for_source(&source);
            let decisions = apply(chosen, &candidates);
            let matched = matched.map(str::to_string);
            for d in &decisions {
                if d.keep {
                    plan.kept += 1;
                } else {
                    plan.removed += 1;
                }
            }
            plan.sources.push(SourcePlan {
                source,
                matched,
                snapshots: decisions,
            });
        }
        Ok(plan)
    }
}
