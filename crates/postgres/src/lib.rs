//! lifeboat's PostgreSQL support.
//!
//! - [`archive`]: `wal push` / `wal fetch`, with the archive contract of
//!   docs/FORMAT.md section 9, a spool to work ahead, and checks that every
//!   segment belongs to the cluster and sits where its name says;
//! - [`basebackup`]: physical base backups through `pg_backup_start` /
//!   `pg_backup_stop` and parallel file reads with page checksum verification;
//! - [`catalog`]: what the archive holds: timelines, recoverable windows,
//!   gaps, and the plan for a point-in-time recovery;
//! - [`pitr`]: restores a base backup, writes the recovery settings and,
//!   optionally, starts the server and waits until it reaches the target;
//! - [`logical`]: logical backups over SQL only, restores of whole
//!   databases or single tables, and exports as ordinary dumps;
//! - [`server`]: starting and stopping servers (also throwaway clusters for
//!   tests and demos).

#![forbid(unsafe_code)]

pub mod archive;
pub mod basebackup;
pub mod catalog;
pub mod checks;
pub mod checksum;
pub mod continuity;
pub mod control;
pub mod counts;
pub mod erasure;
pub mod error;
pub mod expire;
pub mod history;
pub mod info;
pub mod logical;
pub mod lsn;
pub mod maintenance;
pub mod pgpass;
pub mod pitr;
pub mod policy;
pub mod restores;
pub mod scratch;
pub mod segment;
pub mod server;
pub mod service;
pub mod spool;
pub mod sql;
pub mod tls;
pub mod walname;
pub mod walstore;

pub use error::{ConnectProblem, PgError, Result};
pub use lsn::Lsn;
