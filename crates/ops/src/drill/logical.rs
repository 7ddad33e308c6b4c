//! Logical drills: a scratch cluster (or an empty staging database), each
//! database of the backup created and restored, row counts compared with
//! those recorded at backup time.

use std::collections::BTreeMap;
use std::time::Instant;

use lifeboat_postgres::logical::OpenedBackup;
use lifeboat_postgres::logical::load::{LogicalRestoreOptions, restore_opened};
use lifeboat_postgres::logical::{quote_ident, quote_literal};
use lifeboat_postgres::scratch::ScratchCluster;
use lifeboat_postgres::server::{PgBin, Server};
use lifeboat_postgres::sql;
use lifeboat_repo::progress::{DynProgress, Event};
use lifeboat_repo::{Repository, SnapshotEntry};

use super::{DrillOptions, DrillReport, newest_of_source_before, rpo_of, verify_all};
use crate::error::Result;
use crate::steps::StepLog;
use crate::verify::Restored;

pub(super) async fn drill(
    repo: &Repository,
    opts: &DrillOptions,
    entry: &SnapshotEntry,
    report: &mut DrillReport,
    log: &mut StepLog,
    progress: &DynProgress,
) -> Result<()> {
    let meta = entry.snapshot.logical.clone().unwrap_or_default();
    let databases: Vec<String> = meta.databases.iter().map(|d| d.name.clone()).collect();
    report.recoverable_to =
        newest_of_source_before(repo, entry, report.target_time, progress).await;
    report.rpo = rpo_of(report.target_time, report.recoverable_to, &opts.targets);
    let bin = match &opts.pg_bin {
        Some(d) => PgBin::at(d),
        None => PgBin::find(Some(meta.version_num / 10000)),
    };

    log.begin("restore");
    progress.event(Event::Phase("starting a scratch cluster"));
    let (restored, cluster) = match &opts.staging {
        Some(c) => {
            if databases.len() > 1 {
                log.end(
                    false,
                    format!(
                        "the backup holds {} databases and --db names one; drill into a scratch cluster instead",
                        databases.len()
                    ),
                );
                return Ok(());
            }
            let cfg = sql::config(Some(c), None)?;
            report.restored_into = format!("staging database {}", sql::describe(&cfg));
            (Restored::Database(c.clone()), None)
        }
        None => match ScratchCluster::create_with(
            bin.clone(),
            "lifeboat-drill-",
            lifeboat_postgres::scratch::settings_for_extensions(
                &bin,
                &meta
                    .databases
                    .iter()
                    .map(|d| (d.name.clone(), d.extensions.clone()))
                    .collect::<Vec<_>>(),
            ),
        )
        .await
        {
            Ok(cl) => {
                report.scratch_dir = Some(cl.path().to_path_buf());
                report.restored_into = format!(
                    "scratch cluster {} (port {}, removed afterwards)",
                    cl.server.pgdata.display(),
                    cl.server.port
                );
                (Restored::Server(cl.server.clone()), Some(cl))
            }
            Err(e) => {
                log.end(false, format!("cannot start a scratch cluster: {e}"));
                return Ok(());
            }
        },
    };
    // The backup's tree and the index are read once for all its databases.
    let opened = match OpenedBackup::open(repo, &entry.id.to_hex(), progress).await {
        Ok(b) => Some(b),
        Err(e) => {
            log.end(false, e.to_string());
            None
        }
    };
    let mut restored_ok = opened.is_some();
    let mut loaded = (0usize, 0u64, 0usize);
    // What the erasure ledger's replay removed: subjects in force, found,
    // and rows per (database, table), which the row counts then expect.
    let mut erased = (0usize, 0usize);
    let mut removed: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (db, info) in databases.iter().zip(&meta.databases) {
        let Some(backup) = opened.as_ref() else { break };
        if let Restored::Server(s) = &restored
            && let Err(e) = create_database(s, db, &info.encoding).await
        {
            log.end(false, format!("creating database {db}: {e}"));
            restored_ok = false;
            break;
        }
        progress.event(Event::Phase("restoring"));
        let r = restore_opened(
            repo,
            backup,
            &LogicalRestoreOptions {
                conninfo: Some(restored.conninfo(db)),
                database: Some(db.clone()),
                jobs: opts.jobs.max(1),
                pg_bin: opts.pg_bin.clone(),
                erasure: opts.erasure.clone(),
                ..LogicalRestoreOptions::default()
            },
            progress.clone(),
            Instant::now(),
        )
        .await;
        match r {
            Ok(r) if !r.failures.is_empty() => {
                log.end(
                    false,
                    format!(
                        "database {db}: the restore is incomplete ({}): {}",
                        r.failure_summary(),
                        r.failures
                            .iter()
                            .map(|f| f.message.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                );
                restored_ok = false;
                break;
            }
            Ok(r) => {
                if let Some(e) = &r.erased {
                    erased.0 = e.subjects;
                    erased.1 += e.found;
                    for t in &e.tables {
                        let table = match t.table.contains('.') {
                            true => t.table.clone(),
                            false => format!("public.{}", t.table),
                        };
                        *removed.entry((db.clone(), table)).or_default() += t.rows;
                    }
                }
                loaded.0 += r.tables.len();
                loaded.1 += r.tables.iter().map(|t| t.restored).sum::<u64>();
                loaded.2 += r.warnings.len();
            }
            Err(e) => {
                log.end(false, format!("database {db}: {e}"));
                restored_ok = false;
                break;
            }
        }
    }
    if restored_ok {
        log.end(
            true,
            format!(
                "{} database(s), {} tables, {} rows loaded{}{}",
                databases.len(),
                loaded.0,
                loaded.1,
                if loaded.2 > 0 {
                    format!(", {} warning(s)", loaded.2)
                } else {
                    String::new()
                },
                if erased.0 > 0 {
                    format!(
                        "; erasure ledger re-applied: {} of {} erased subject(s) found, {} row(s) removed",
                        erased.1,
                        erased.0,
                        removed.values().sum::<u64>()
                    )
                } else {
                    String::new()
                }
            ),
        );
        let expected: BTreeMap<String, BTreeMap<String, u64>> = meta
            .databases
            .iter()
            .map(|d| {
                (
                    d.name.clone(),
                    d.tables
                        .iter()
                        .map(|t| {
                            let table = format!("{}.{}", t.schema, t.name);
                            let gone = removed
                                .get(&(d.name.clone(), table.clone()))
                                .copied()
                                .unwrap_or(0);
                            (table, t.rows.saturating_sub(gone))
                        })
                        .collect(),
                )
            })
            .collect();
        let main = databases
            .first()
            .cloned()
            .unwrap_or_else(|| "postgres".into());
        verify_all(
            opts,
            &bin,
            &restored,
            &databases,
            &expected,
            &main,
            entry.snapshot.time,
            report,
            log,
            progress,
        )
        .await;
    }
    if let Some(cl) = cluster {
        log.begin("clean up");
        match cl.stop().await {
            Ok(()) => log.end(true, "scratch cluster stopped and removed"),
            Err(e) => log.end(false, format!("removing the scratch cluster: {e}")),
        };
    }
    Ok(())
}

async fn create_database(
    s: &Server,
    name: &str,
    encoding: &str,
) -> std::result::Result<(), String> {
    let cfg = sql::config(Some(&s.conninfo("postgres")), None).map_err(|e| e.to_string())?;
    let client = sql::connect(&cfg).await.map_err(|e| e.to_string())?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .map_err(|e| e.to_string())?
        .is_some();
    if exists {
        return Ok(());
    }
    let enc = if encoding.is_empty() {
        "UTF8"
    } else {
        encoding
    };
    client
        .batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE 'C' LC_CTYPE 'C'",
            quote_ident(name),
            quote_literal(enc)
        ))
        .await
        .map_err(|e| e.to_string())
}
