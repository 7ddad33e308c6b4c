//! `lifeboat backup postgres --logical` and `lifeboat restore postgres --logical`

use anyhow::Result;
use lifeboat_postgres::logical::dump::{
    LogicalBackupOptions, LogicalSource, LogicalSourceOptions, logical_backup,
};
use lifeboat_postgres::logical::load::{LogicalRestoreOptions, logical_restore};

use crate::cli::{BackupPostgresArgs, Global, RestorePostgresArgs};
use crate::commands::backup::{options, report};
use crate::commands::{open_repo, scoped_reference};
use crate::output::{self, Reporter};

/// Takes a logical backup of one or more databases.
pub async fn backup(g: &Global, args: &BackupPostgresArgs) -> Result<()> {
    let source_opts = LogicalSourceOptions {
        conninfos: args.db.clone(),
        all_databases: args.all_databases,
        pg_bin: args.pg_bin.clone(),
    };
    // Unlocking the repository (Argon2, a fraction of a second on purpose)
    // and reaching the server (connections, pg_dumpall) overlap; whichever
    // fails first is reported, and nothing is written before both succeed.
    let (repo, source) = tokio::try_join!(open_repo(g), async {
        Ok(LogicalSource::connect(&source_opts).await?)
    })?;
    if args.common.dry_run {
        let (databases, version) = source.describe();
        if g.json {
            return output::json(&serde_json::json!({
                "dry_run": true,
                "source": "postgres-logical",
                "server_version": version,
                "databases": databases,
                "jobs": args.jobs.max(1),
            }));
        }
        if !g.quiet {
            outln!(
                "would back up {} database(s) of PostgreSQL {version} over SQL with {} connection(s) each: {}",
                databases.len(),
                args.jobs.max(1),
                databases.join(", ")
            );
            outln!("dry run: nothing was written");
        }
        return Ok(());
    }
    let reporter = Reporter::new(g);
    let opts = LogicalBackupOptions {
        jobs: args.jobs.max(1),
        split_bytes: args.split_size,
        backup: options(&repo, &args.common),
    };
    let result = logical_backup(&repo, source, &opts, reporter.sink()).await;
    reporter.finish();
    report(g, &result?)
}

/// Restores a logical backup into a database.
pub async fn restore(g: &Global, args: &RestorePostgresArgs) -> Result<()> {
    let repo = open_repo(g).await?;
    let reporter = Reporter::new(g);
    let opts = LogicalRestoreOptions {
        conninfo: args.db.clone(),
        database: args.database.clone(),
        tables: args.table.clone(),
        schemas: args.schema.clone(),
        schema_only: args.schema_only,
        data_only: args.data_only,
        clean: args.clean,
        jobs: args.jobs.max(1),
        pg_bin: args.pg_bin.clone(),
        no_roles: args.no_roles,
        no_owner: args.no_owner,
        no_privileges: args.no_privileges,
        erasure: crate::commands::erase::replay_for_restore(g, &repo, args.skip_erasures).await?,
    };
    let reference = scoped_reference(g, &repo, &args.snapshot, &reporter.sink()).await?;
    let result = logical_restore(&repo, &reference, &opts, reporter.sink()).await;
    reporter.finish();
    let report = result?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    for f in &report.failures {
        eprintln!("error: not restored ({}): {}", f.kind, f.message);
    }
    let outcome = || -> Result<()> {
        if report.failures.is_empty() {
            return Ok(());
        }
        anyhow::bail!(
            "the restore is incomplete: {} could not be restored ({}); the rest of the database was \
             restored. Fix the cause and restore again with --clean, or opt out of a class with \
             --no-roles, --no-owner or --no-privileges",
            report.failures.len(),
            report.failure_summary()
        )
    };
    crate::audit::detail("snapshot", report.snapshot.clone());
    crate::audit::detail("into", report.target.clone());
    if g.json {
        output::json(&report)?;
        return outcome();
    }
    if g.quiet {
        return outcome();
    }
    let rows: u64 = report.tables.iter().map(|t| t.restored).sum();
    outln!(
        "restored database {} of snapshot {} into {} in {}",
        report.database,
        &report.snapshot[..8.min(report.snapshot.len())],
        report.target,
        output::secs(report.duration_ms)
    );
    outln!(
        "{}{} tables ({} rows), {} sequences, {} large objects, {} materialized views refreshed",
        if report.schema { "schema, " } else { "" },
        report.tables.len(),
        rows,
        report.sequences,
        report.large_objects,
        report.matviews
    );
    if report.indexes_built_early > 0 {
        outln!(
            "{} index(es) of the biggest tables built while other tables loaded",
            report.indexes_built_early
        );
    }
    if let Some(e) = &report.erased {
        let rows: u64 = e.tables.iter().map(|t| t.rows).sum();
        outln!(
            "erasure ledger: {} erased subject(s); {} found in this backup and removed again ({} row(s){})",
            e.subjects,
            e.found,
            rows,
            e.tables
                .iter()
                .filter(|t| t.rows > 0)
                .map(|t| format!(", {} {}", t.table, t.rows))
                .collect::<String>()
        );
    }
    if !report.roles_created.is_empty() || !report.roles_existing.is_empty() {
        outln!(
            "roles: {} created ({}), {} existed and were left as they are",
            report.roles_created.len(),
            report.roles_created.join(", "),
            report.roles_existing.len()
        );
    }
    if !report.tables.is_empty() {
        outln!(
            "{:<40} {:>14} {:>14}",
            "table",
            "rows restored",
            "at backup"
        );
        for t in &report.tables {
            outln!("{:<40} {:>14} {:>14}", t.table, t.restored, t.expected);
        }
    }
    if report.failures.iter().all(|f| f.kind != "row counts") && !report.tables.is_empty() {
        outln!("row counts match the backup");
    }
    if !report.objects.is_empty() && report.failures.iter().all(|f| f.kind != "object counts") {
        outln!(
            "objects match the backup: {}",
            report
                .objects
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    outcome()
}
