//! `check`: verifies the repository's structure and, with `read_data`, every
//! byte of every pack. Reports every problem it finds (not just the first)
//! and, for each damaged or missing object, the snapshots and files it affects.
//!
//! One function per phase, in this order: the index, the packs' presence
//! (`packs`), their bytes and delta blobs (`packs`, with `read_data`), the
//! archived WAL (`wal`), the snapshots and their directory listings, the
//! findings per damage (`damage`), and the bookkeeping objects
//! (`catalog_check`). Damage found by one phase (a lost pack) is carried
//! to the later ones, which say which files it costs.

mod damage;
mod packs;
mod wal;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use lifeboat_format::Id;
use serde::Serialize;

use crate::error::Result;
use crate::progress::{DynProgress, Event};
use crate::repository::Repository;

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Data is lost or unreadable.
    Error,
    /// Harmless but worth knowing (e.g. leftovers of an interrupted backup).
    Warning,
}

/// Files of one snapshot affected by a problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Affected {
    /// The snapshot.
    pub snapshot: Id,
    /// When it was taken.
    pub time: DateTime<Utc>,
    /// Affected paths inside it.
    pub paths: Vec<String>,
}

/// One problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// The storage object concerned.
    pub object: String,
    /// What is wrong.
    pub message: String,
    /// Snapshots and files that cannot be fully restored because of it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub affected: Vec<Affected>,
}

/// The result of a check.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckReport {
    /// Everything found, errors first.
    pub findings: Vec<Finding>,
    /// Snapshots checked.
    pub snapshots: u64,
    /// Packs in the index.
    pub packs: u64,
    /// Blobs in the index.
    pub blobs: u64,
    /// Bytes of pack data read and verified (with `read_data`).
    pub bytes_read: u64,
    /// Whether every pack was read.
    pub read_data: bool,
    /// Archived PostgreSQL WAL files (verified too with `read_data`).
    pub wal_files: u64,
    /// The percentage of packs read, when not all were.
    pub subset: Option<f64>,
}

impl CheckReport {
    /// Number of errors.
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }

    /// Number of warnings.
    pub fn warnings(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .count()
    }
}

/// What is wrong with a blob, keyed for grouping into findings.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Damage {
    object: String,
    message: String,
}

/// Options for [`Repository::check`].
#[derive(Clone, Copy, Debug, Default)]
pub struct CheckOptions {
    /// Read and verify every pack, not only the structure.
    pub read_data: bool,
    /// With `read_data`: read only this percentage of the packs, chosen at
    /// random each run (so repeated runs cover everything over time).
    pub subset: Option<f64>,
}

/// A check in progress: what it found so far.
struct Checker<'a> {
    repo: &'a Repository,
    progress: &'a DynProgress,
    report: CheckReport,
    findings: Vec<Finding>,
    /// Damaged or lost blobs, and why.
    bad: HashMap<Id, Damage>,
}

impl Checker<'_> {
    /// Records a finding that affects no file in particular.
    fn add(&mut self, severity: Severity, object: String, message: String) {
        self.findings.push(Finding {
            severity,
            object,
            message,
            affected: Vec::new(),
        });
    }
}

impl Repository {
    /// Checks the repository and returns every finding.
    pub async fn check(&self, options: CheckOptions, progress: DynProgress) -> Result<CheckReport> {
        let mut c = Checker {
            repo: self,
            progress: &progress,
            report: CheckReport {
                read_data: options.read_data,
                ..Default::default()
            },
            findings: Vec::new(),
            bad: HashMap::new(),
        };
        progress.event(Event::Phase("loading index"));
        let load = self.load_index(&crate::progress::none()).await?;
        for (key, e) in &load.damaged {
            c.add(
                Severity::Error,
                key.clone(),
                format!("index file is unreadable: {e}; the blobs it lists are treated as missing"),
            );
        }
        let index = Arc::new(load.index);
        c.report.packs = index.packs().len() as u64;
        c.report.blobs = index.blob_count() as u64;

        let by_pack = Arc::new(packs::blobs_by_pack(&index));
        let readable = c.check_pack_presence(&index, &by_pack).await?;
        if options.read_data {
            let deltas = c
                .read_packs(&index, by_pack, readable, options.subset)
                .await?;
            c.decode_deltas(&index, deltas).await?;
        }
        c.check_wal(options.read_data).await?;
        let snapshots = c.load_snapshots().await?;
        let trees = c.load_trees(&index, &snapshots).await?;
        let damage = damage::damage_findings(&snapshots, &trees, &index, &c.bad);
        c.findings.extend(damage);

        progress.event(Event::Phase(
            "checking pins, plans, reports and running records",
        ));
        c.findings.extend(self.check_catalog(Utc::now()).await?);
        let mut findings = c.findings;
        findings.sort_by(|a, b| a.severity.cmp(&b.severity).then(a.object.cmp(&b.object)));
        findings.dedup();
        Ok(CheckReport {
            findings,
            ..c.report
        })
    }
}
