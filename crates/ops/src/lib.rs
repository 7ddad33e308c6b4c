//! Operations built on the repository and the PostgreSQL support: restore
//! drills that prove a backup restores and measure how long it takes (RTO)
//! and how much would be lost (RPO), the `status` report of the old
//! runbook's checklist, and the corruption-recovery runbook as timed steps.
//!
//! Like every library here it never prints: results are values, progress
//! goes through the injected reporter.

pub mod access;
pub mod alerts;
pub mod config;
pub mod daemon;
pub mod drill;
pub mod duration;
pub mod error;
pub mod hooks;
pub mod markdown;
pub mod metrics;
pub mod progress_file;
pub mod recover;
pub mod runs;
pub mod schedule;
pub mod status;
pub mod steps;
pub mod storage_rows;
pub mod targets;
pub mod verify;

pub use error::{OpsError, Result};
