//! `lifeboat backup files` and `lifeboat backup postgres`

use anyhow::{Result, bail};
use lifeboat_format::compress::Compression;
use lifeboat_format::snapshot::BackupKind;
use lifeboat_postgres::basebackup::{BaseBackupOptions, base_backup};
use lifeboat_repo::backup::Parent;
use lifeboat_repo::{BackupOptions, BackupResult, Repository};

use crate::cli::{BackupCommon, BackupFilesArgs, BackupPostgresArgs, CompressionArg, Global, Kind};
use crate::commands::open_repo;
use crate::exit::UsageError;
use crate::output::{self, Reporter};
use crate::settings::FileSettings;
use lifeboat_ops::config::SourceKind;

/// The snapshot kind chosen on the command line.
pub fn kind(k: Kind) -> BackupKind {
    match k {
        Kind::Scheduled => BackupKind::Scheduled,
        Kind::PreDeploy => BackupKind::PreDeploy,
        Kind::Manual => BackupKind::Manual,
    }
}

/// The compression chosen on the command line.
pub fn compression(c: CompressionArg) -> Compression {
    match c {
        CompressionArg::Off => Compression::Off,
        CompressionArg::Fastest => Compression::Zstd(1),
        CompressionArg::Default => Compression::DEFAULT,
        CompressionArg::Max => Compression::Zstd(15),
    }
}

/// The generic backup options from the command line.
pub fn options(repo: &Repository, c: &BackupCommon) -> BackupOptions {
    BackupOptions {
        kind: kind(c.kind),
        reason: c.reason.clone(),
        tags: c.tags.clone(),
        compression: compression(c.compression),
        threads: c.threads,
        // Pack buffers in memory: one being filled plus those uploading. A
        // local write is quick, so one at a time keeps up.
        uploads: if repo.storage().capabilities().remote {
            4
        } else {
            1
        },
        host: c.host.clone(),
        parent: match (&c.parent, c.force) {
            (_, true) => Parent::Disabled,
            (Some(p), false) => Parent::Snapshot(p.clone()),
            (None, false) => Parent::Auto,
        },
        read_back_percent: c.read_back,
        time: None,
    }
}

pub fn report(g: &Global, result: &BackupResult) -> Result<()> {
    crate::audit::detail("snapshot", result.id.to_hex());
    let s = &result.snapshot.summary;
    if g.json {
        output::json(result)?;
    } else if !g.quiet {
        outln!(
            "snapshot {} saved: {} files ({} unchanged), {} dirs, {} in {}; added {} new data ({} stored)",
            result.id.short(),
            s.files,
            s.files_unchanged,
            s.dirs,
            output::size(s.bytes),
            output::secs(s.duration_ms),
            output::size(s.new_bytes),
            output::size(s.stored_bytes),
        );
        if let Some(pg) = &result.snapshot.postgres {
            outln!(
                "PostgreSQL {} cluster {}: timeline {}, WAL {} to {} ({} .. {})",
                pg.version,
                pg.system_id,
                pg.timeline,
                pg.start_lsn,
                pg.stop_lsn,
                pg.start_wal,
                pg.stop_wal
            );
        }
        if let Some(l) = &result.snapshot.logical {
            for db in &l.databases {
                let rows: u64 = db.tables.iter().map(|t| t.rows).sum();
                outln!(
                    "database {}: {} tables, {} rows, {} sequences, {} large objects, {} of table data",
                    db.name,
                    db.tables.len(),
                    rows,
                    db.sequences,
                    db.large_objects,
                    output::size(db.data_bytes)
                );
            }
            for s in &l.skipped {
                eprintln!("warning: not backed up: {s}");
            }
        }
    }
    if !result.problems.is_empty() {
        bail!(
            "snapshot {} was saved, but {} problem(s) were found in the data read (see the warnings above)",
            result.id.short(),
            result.problems.len()
        );
    }
    if s.skipped > 0 {
        bail!(
            "snapshot {} was saved, but {} entries could not be backed up (see the warnings above)",
            result.id.short(),
            s.skipped
        );
    }
    Ok(())
}

/// Backs up the source declared in the settings file under `--source`,
/// tagging the snapshot `source:NAME`.
pub async fn source(g: &Global, common: &BackupCommon) -> Result<()> {
    let Some(name) = &g.source else {
        bail!(UsageError(
            "what to back up? `lifeboat backup files PATH…`, `lifeboat backup postgres …`, `lifeboat backup bucket s3://…`, or `lifeboat --source NAME backup` for a [[source]] of the settings file".into()
        ));
    };
    named(g, name, common).await
}

/// Backs up every source of the `[[set]]` `name`, one after the other,
/// each snapshot tagged `set:NAME` and the run's `set-run:ID`. A source
/// that fails does not stop the others; the command then fails, naming it.
pub async fn set(g: &Global, name: &str, common: &BackupCommon) -> Result<()> {
    let file = FileSettings::load(g)?;
    let Some(set) = file.set.iter().find(|s| s.name.get_ref() == name) else {
        let known: Vec<&str> = file.set.iter().map(|s| s.name.get_ref().as_str()).collect();
        bail!(UsageError(format!(
            "no [[set]] called {name:?} in the settings file (declared: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    };
    // Checks the whole file, sets included, before anything runs.
    file.jobs()?;
    let run = format!(
        "{}{}",
        crate::commands::bucket::SET_RUN_TAG,
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
    );
    let mut failed = Vec::new();
    for source in &set.sources {
        let mut common = common.clone();
        common.tags.push(format!("set:{name}"));
        common.tags.push(run.clone());
        // With --json, one document for the whole set (below), not one per source.
        let scoped = Global {
            source: Some(source.clone()),
            json: false,
            quiet: g.quiet || g.json,
            ..g.clone()
        };
        if let Err(e) = named(&scoped, source, &common).await {
            eprintln!(
                "error: set {name}: source {source}: {}",
                crate::exit::message(&e)
            );
            failed.push(source.clone());
        }
    }
    if !failed.is_empty() {
        // What was backed up stays; the command fails naming what was not.
        bail!(
            "set {name}: {} of {} sources failed ({}); the others were backed up and carry {run}",
            failed.len(),
            set.sources.len(),
            failed.join(", ")
        );
    }
    if g.json {
        let repo = open_repo(g).await?;
        let linked: Vec<serde_json::Value> = repo
            .list_snapshots(&lifeboat_repo::progress::none())
            .await?
            .into_iter()
            .filter(|e| e.snapshot.tags.contains(&run))
            .map(|e| {
                serde_json::json!({
                    "id": e.id,
                    "source": e.snapshot.source.as_str(),
                    "paths": e.snapshot.paths,
                    "time": e.snapshot.time,
                    "summary": e.snapshot.summary,
                })
            })
            .collect();
        output::json(&serde_json::json!({ "set": name, "run": run, "snapshots": linked }))?;
    } else if !g.quiet {
        outln!(
            "set {name}: {} sources backed up, linked as {run}",
            set.sources.len()
        );
    }
    Ok(())
}

/// Backs up the declared source `name` with its settings.
async fn named(g: &Global, name: &str, common: &BackupCommon) -> Result<()> {
    let file = FileSettings::load(g)?;
    let src = file.source(name)?;
    let mut common = common.clone();
    common.tags.push(crate::commands::source_tag(name));
    let dbs = src.db.values();
    match src.kind {
        SourceKind::Bucket => crate::commands::bucket::backup_source(g, &common).await,
        SourceKind::Files => {
            files(
                g,
                &BackupFilesArgs {
                    paths: src.paths.clone(),
                    exclude: src.exclude.clone(),
                    exclude_file: Vec::new(),
                    time: None,
                    common,
                },
            )
            .await
        }
        SourceKind::Postgres | SourceKind::PostgresLogical => {
            let logical = src.kind == SourceKind::PostgresLogical;
            postgres(
                g,
                &BackupPostgresArgs {
                    pgdata: src.pgdata.clone(),
                    db: dbs,
                    logical,
                    all_databases: src.all_databases,
                    jobs: src.jobs.unwrap_or(2),
                    split_size: lifeboat_postgres::logical::dump::DEFAULT_SPLIT_BYTES,
                    pg_bin: None,
                    archive_timeout: lifeboat_postgres::basebackup::DEFAULT_ARCHIVE_TIMEOUT,
                    common,
                },
            )
            .await
        }
    }
}

/// The --exclude patterns and those of every --exclude-file (one per line;
/// blank lines and `#` comments skipped).
fn exclude_patterns(args: &BackupFilesArgs) -> Result<Vec<String>> {
    let mut patterns = args.exclude.clone();
    for file in &args.exclude_file {
        let text = std::fs::read_to_string(file).map_err(|e| {
            UsageError(format!(
                "--exclude-file {}: {}",
                file.display(),
                crate::exit::os_message(&e)
            ))
        })?;
        patterns.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    Ok(patterns)
}

/// Prints what a backup would read (`--dry-run`).
pub fn print_preview(
    g: &Global,
    kind: &str,
    paths: &[String],
    p: &lifeboat_repo::backup::preview::Preview,
) -> Result<()> {
    if g.json {
        return output::json(&serde_json::json!({
            "dry_run": true,
            "source": kind,
            "paths": paths,
            "would_back_up": p,
        }));
    }
    if g.quiet {
        return Ok(());
    }
    outln!(
        "would back up {}: {} files, {} dirs, {} symlinks, {}",
        paths.join(" "),
        p.files,
        p.dirs,
        p.symlinks,
        output::size(p.bytes)
    );
    if p.excluded > 0 {
        outln!("leaving out {} entries, e.g.:", p.excluded);
        for e in &p.excluded_examples {
            outln!("  {e}");
        }
    }
    outln!("dry run: nothing was written");
    Ok(())
}

/// Backs up files and directories.
pub async fn files(g: &Global, args: &BackupFilesArgs) -> Result<()> {
    let time = args
        .time
        .as_deref()
        .map(crate::commands::restore_postgres::parse_time)
        .transpose()?
        .map(|(t, _)| t);
    let excludes = exclude_patterns(args)?;
    let repo = open_repo(g).await?;
    if args.common.dry_run {
        let source =
            lifeboat_repo::backup::source::TreeSource::files_excluding(&args.paths, &excludes)?;
        let preview = tokio::task::spawn_blocking(move || source.preview()).await??;
        return print_preview(
            g,
            "files",
            &args
                .paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>(),
            &preview,
        );
    }
    let reporter = Reporter::new(g);
    let mut opts = options(&repo, &args.common);
    opts.time = time;
    let result = repo
        .backup_files_excluding(&args.paths, &excludes, &opts, reporter.sink())
        .await;
    reporter.finish();
    report(g, &result?)
}

/// Takes a PostgreSQL base backup.
pub async fn postgres(g: &Global, args: &BackupPostgresArgs) -> Result<()> {
    if args.logical {
        return crate::commands::logical::backup(g, args).await;
    }
    if args.db.len() > 1 {
        bail!(UsageError(
            "a physical backup takes one --db (the cluster's connection); several are for --logical".into()
        ));
    }
    let Some(pgdata) = &args.pgdata else {
        bail!(UsageError(
            "--pgdata is required for a physical backup".into()
        ));
    };
    let repo = open_repo(g).await?;
    if args.common.dry_run {
        let config =
            lifeboat_postgres::sql::config(args.db.first().map(String::as_str), Some(pgdata))?;
        let client = lifeboat_postgres::sql::connect(&config).await?;
        let version = lifeboat_postgres::sql::text(
            &client,
            "server version",
            "SELECT current_setting('server_version')",
        )
        .await?;
        let archive = lifeboat_postgres::sql::text(
            &client,
            "archive settings",
            "SELECT current_setting('archive_mode') || ' / ' || current_setting('archive_command')",
        )
        .await?;
        drop(client);
        let source =
            lifeboat_repo::backup::source::TreeSource::files(std::slice::from_ref(pgdata))?;
        let preview = tokio::task::spawn_blocking(move || source.preview()).await??;
        if !g.json && !g.quiet {
            outln!("PostgreSQL {version}; archive_mode / archive_command: {archive}");
        }
        return print_preview(g, "postgres", &[pgdata.display().to_string()], &preview);
    }
    let reporter = Reporter::new(g);
    let opts = BaseBackupOptions {
        pgdata: pgdata.clone(),
        conninfo: args.db.first().cloned(),
        backup: options(&repo, &args.common),
        archive_timeout: args.archive_timeout,
    };
    let result = base_backup(&repo, &opts, reporter.sink()).await;
    reporter.finish();
    report(g, &result?)
}
