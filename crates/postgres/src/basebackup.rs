//! `backup postgres --pgdata`: a physical base backup over SQL plus direct
//! file reads, taken while the server runs.
//!
//! 1. `pg_backup_start` (non-exclusive, fast checkpoint) on a connection held
//!    open for the whole backup: if lifeboat dies, PostgreSQL ends backup
//!    mode itself when the session ends.
//! 2. The data directory and every tablespace are read in parallel; relation
//!    files in page-aligned blocks with page checksums verified; unchanged
//!    files since the parent backup are not read again.
//! 3. `pg_backup_stop`; its `backup_label` and `tablespace_map` join the
//!    snapshot. Then lifeboat waits until every WAL segment the backup needs
//!    (start to stop) is in *this* repository, saying what it waits for and
//!    what `pg_stat_archiver` reports, and gives up after a limit: a base
//!    backup whose WAL never arrives cannot be restored, so it is not recorded.
//! 4. The snapshot records LSNs, times, timeline, system identifier,
//!    version, database sizes and table row estimates.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use lifeboat_format::snapshot::{
    DatabaseInfo, PostgresBackup, SourceKind, TableEstimate, TablespaceInfo,
};
use lifeboat_repo::backup::{SourceRoot, TreeSource};
use lifeboat_repo::progress::{DynProgress, Event};
use lifeboat_repo::{BackupOptions, BackupResult, Repository};
use tokio_postgres::Client;

use crate::error::{PgError, Result};
use crate::lsn::Lsn;
use crate::policy::PgPolicy;
use crate::sql;
use crate::walname::WalFile;

/// How to take a base backup.
#[derive(Clone, Debug, Default)]
pub struct BaseBackupOptions {
    /// The data directory (on this host).
    pub pgdata: PathBuf,
    /// Connection string; defaults come from `PG*` variables and the running server.
    pub conninfo: Option<String>,
    /// The generic backup options (kind, reason, tags…).
    pub backup: BackupOptions,
    /// How long to wait for the backup's WAL to be archived.
    pub archive_timeout: std::time::Duration,
}

/// The default of [`BaseBackupOptions::archive_timeout`].
pub const DEFAULT_ARCHIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// What `pg_stat_archiver` says, in words.
async fn archiver_status(client: &Client) -> String {
    let row = client
        .query_one(
            "SELECT coalesce(last_archived_wal, ''), coalesce(to_char(last_archived_time AT TIME ZONE 'UTC', \
             'YYYY-MM-DD HH24:MI:SS UTC'), ''), failed_count, coalesce(last_failed_wal, ''), \
             coalesce(to_char(last_failed_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS UTC'), '') \
             FROM pg_stat_archiver",
            &[],
        )
        .await;
    let Ok(row) = row else {
        return "pg_stat_archiver could not be read".into();
    };
    let text = |i: usize| row.try_get::<_, String>(i).unwrap_or_default();
    let failed: i64 = row.try_get(2).unwrap_or(0);
    let mut s = if text(0).is_empty() {
        "pg_stat_archiver: nothing archived since the statistics were reset".to_string()
    } else {
        format!("pg_stat_archiver: last archived {} at {}", text(0), text(1))
    };
    if failed > 0 {
        s.push_str(&format!(
            "; {failed} failed attempt(s), the last for {} at {} (see the server log for archive_command's error)",
            text(3),
            text(4)
        ));
    }
    s
}

/// Waits until every WAL file in `needed` is archived in the repository.
async fn wait_for_wal(
    repo: &Repository,
    client: &Client,
    sysid: u64,
    needed: &[String],
    timeout: std::time::Duration,
    progress: &DynProgress,
) -> Result<()> {
    let started = std::time::Instant::now();
    let mut next_word = std::time::Duration::from_secs(10);
    loop {
        let archived: std::collections::HashSet<String> =
            crate::walstore::list(repo.storage(), sysid)
                .await?
                .into_iter()
                .map(|e| e.name)
                .collect();
        let missing: Vec<&String> = needed.iter().filter(|n| !archived.contains(*n)).collect();
        let Some(first) = missing.first() else {
            return Ok(());
        };
        let waited = started.elapsed();
        if waited >= timeout {
            return Err(PgError::Setup(format!(
                "WAL segment {first} (needed to restore this backup; {} of {} still missing) did not reach the \
                 repository within {}s; {}. Check archive_command (it must run `lifeboat wal push %p` into this \
                 repository). The backup was not recorded; raise --archive-timeout if archiving is only slow",
                missing.len(),
                needed.len(),
                timeout.as_secs(),
                archiver_status(client).await
            )));
        }
        if waited >= next_word {
            progress.event(Event::Warning(format!(
                "still waiting after {}s for WAL segment {first} to be archived ({}); giving up after {}s",
                waited.as_secs(),
                archiver_status(client).await,
                timeout.as_secs()
            )));
            next_word += std::time::Duration::from_secs(30);
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// What the server told us before the files were read.
struct ServerInfo {
    version_num: u32,
    version: String,
    sysid: u64,
    seg_size: u64,
    checksums: bool,
    tablespaces: Vec<TablespaceInfo>,
}

async fn server_info(client: &Client, pgdata: &Path) -> Result<ServerInfo> {
    let version_num: u32 = sql::text(
        client,
        "reading the server version",
        "SHOW server_version_num",
    )
    .await?
    .parse()
    .map_err(|_| PgError::Setup("the server reported an unreadable version".into()))?;
    if version_num < 130000 {
        return Err(PgError::Setup(format!(
            "PostgreSQL {} is not supported; lifeboat needs 13 or later",
            version_num / 10000
        )));
    }
    let version = sql::text(client, "reading the server version", "SHOW server_version").await?;
    let data_dir = sql::text(client, "reading data_directory", "SHOW data_directory").await?;
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    if canon(Path::new(&data_dir)) != canon(pgdata) {
        return Err(PgError::Setup(format!(
            "the server reached by the connection serves {data_dir}, not {}; check --db and --pgdata",
            pgdata.display()
        )));
    }
    let wal_level = sql::text(client, "reading wal_level", "SHOW wal_level").await?;
    if wal_level == "minimal" {
        return Err(PgError::Setup(
            "wal_level is minimal: set wal_level = replica (the default) to take physical backups"
                .into(),
        ));
    }
    let archive_mode = sql::text(client, "reading archive_mode", "SHOW archive_mode").await?;
    if archive_mode == "off" {
        return Err(PgError::Setup(
            "archive_mode is off: set archive_mode = on and archive_command = 'lifeboat wal push %p' \
             (a base backup is only restorable with the WAL written during it)"
                .into(),
        ));
    }
    let sysid = sql::int(
        client,
        "reading the system identifier",
        "SELECT system_identifier FROM pg_control_system()",
    )
    .await? as u64;
    let seg_size = sql::int(
        client,
        "reading wal_segment_size",
        "SELECT pg_size_bytes(current_setting('wal_segment_size'))",
    )
    .await? as u64;
    let checksums =
        sql::text(client, "reading data_checksums", "SHOW data_checksums").await? == "on";
    let rows = client
        .query(
            "SELECT oid::bigint, spcname::text, pg_tablespace_location(oid) FROM pg_tablespace \
             WHERE pg_tablespace_location(oid) <> '' ORDER BY oid",
            &[],
        )
        .await
        .map_err(PgError::sql("listing tablespaces"))?;
    let mut tablespaces = Vec::new();
    for r in rows {
        tablespaces.push(TablespaceInfo {
            oid: r
                .try_get::<_, i64>(0)
                .map_err(PgError::sql("listing tablespaces"))? as u32,
            name: r.try_get(1).map_err(PgError::sql("listing tablespaces"))?,
            location: r.try_get(2).map_err(PgError::sql("listing tablespaces"))?,
        });
    }
    Ok(ServerInfo {
        version_num,
        version,
        sysid,
        seg_size,
        checksums,
        tablespaces,
    })
}

async fn databases(config: &sql::PgConfig, client: &Client) -> Result<Vec<DatabaseInfo>> {
    let rows = client
        .query(
            "SELECT oid::bigint, datname::text, pg_database_size(oid) FROM pg_database \
             WHERE datallowconn AND NOT datistemplate ORDER BY datname",
            &[],
        )
        .await
        .map_err(PgError::sql("listing databases"))?;
    let mut out = Vec::new();
    for r in rows {
        let name: String = r.try_get(1).map_err(PgError::sql("listing databases"))?;
        let mut db = DatabaseInfo {
            oid: r
                .try_get::<_, i64>(0)
                .map_err(PgError::sql("listing databases"))? as u32,
            size_bytes: r
                .try_get::<_, i64>(2)
                .map_err(PgError::sql("listing databases"))?
                .max(0) as u64,
            name: name.clone(),
            tables: Vec::new(),
        };
        let mut c = config.clone();
        c.dbname(&name);
        // Estimates are best effort: a database we may not enter is still backed up.
        if let Ok(dbc) = sql::connect(&c).await
            && let Ok(rows) = dbc
                .query(
                    "SELECT n.nspname::text, c.relname::text, c.reltuples::bigint FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                     AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2",
                    &[],
                )
                .await
        {
            for t in rows {
                db.tables.push(TableEstimate {
                    schema: t.try_get(0).unwrap_or_default(),
                    name: t.try_get(1).unwrap_or_default(),
                    rows_estimate: t.try_get(2).unwrap_or(-1),
                });
            }
        }
        out.push(db);
    }
    Ok(out)
}

/// Refuses, naming the role to use, when the connected role may not run
/// `pg_backup_start` (on platforms whose bootstrap superuser is not
/// `postgres`, `postgres` is an ordinary role).
async fn may_take_base_backups(client: &Client) -> Result<()> {
    let version_num = sql::int(
        client,
        "reading the server version",
        "SELECT current_setting('server_version_num')::bigint",
    )
    .await?;
    let function = if version_num >= 150000 {
        "pg_backup_start(text, boolean)"
    } else {
        "pg_start_backup(text, boolean, boolean)"
    };
    let row = client
        .query_one(
            &format!(
                "SELECT current_user::text, has_function_privilege('{function}', 'EXECUTE') \
                   AND pg_has_role('pg_read_all_settings', 'USAGE'), \
                 (SELECT rolname::text FROM pg_roles WHERE oid = 10)"
            ),
            &[],
        )
        .await
        .map_err(PgError::sql("checking the right to take base backups"))?;
    let (user, allowed, superuser): (String, bool, String) = (row.get(0), row.get(1), row.get(2));
    if allowed {
        return Ok(());
    }
    let name = function.split('(').next().unwrap_or(function);
    Err(PgError::Setup(format!(
        "role {user} may not take base backups ({name} needs EXECUTE, and reading the data directory's \
         settings pg_read_all_settings): connect as the cluster's superuser {superuser} (--db 'user={superuser}', \
         or PGUSER={superuser}), or grant it: GRANT EXECUTE ON FUNCTION {function}, {} TO {user}; \
         GRANT pg_read_all_settings TO {user}",
        if version_num >= 150000 {
            "pg_backup_stop(boolean)"
        } else {
            "pg_stop_backup(boolean, boolean)"
        }
    )))
}

/// The `START WAL LOCATION` file of a backup label.
fn label_field<'a>(label: &'a str, field: &str) -> Option<&'a str> {
    label
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(str::trim)
}

/// Takes a base backup of the running cluster at `options.pgdata`.
pub async fn base_backup(
    repo: &Repository,
    options: &BaseBackupOptions,
    progress: DynProgress,
) -> Result<BackupResult> {
    let pgdata =
        std::fs::canonicalize(&options.pgdata).map_err(|e| PgError::io(&options.pgdata, e))?;
    let config = sql::config(options.conninfo.as_deref(), Some(&pgdata))?;
    progress.event(Event::Phase("connecting"));
    let client = sql::connect(&config).await?;
    may_take_base_backups(&client).await?;
    let info = server_info(&client, &pgdata).await?;

    let label = format!("lifeboat {}", Utc::now().format("%Y-%m-%d %H:%M:%S UTC"));
    progress.event(Event::Phase("starting backup (checkpoint)"));
    let start_sql = if info.version_num >= 150000 {
        "SELECT pg_backup_start($1, true)::text"
    } else {
        "SELECT pg_start_backup($1, true, false)::text"
    };
    let start_lsn: Lsn = client
        .query_one(start_sql, &[&label])
        .await
        .map_err(PgError::sql("pg_backup_start"))?
        .try_get::<_, String>(0)
        .map_err(PgError::sql("pg_backup_start"))?
        .parse()
        .map_err(|e| PgError::Setup(format!("pg_backup_start returned {e}")))?;
    let start_time = Utc::now();

    let mut roots = vec![("pgdata".to_string(), pgdata.clone())];
    for t in &info.tablespaces {
        roots.push((format!("tablespaces/{}", t.oid), PathBuf::from(&t.location)));
    }
    let policy = PgPolicy::new(&roots, info.checksums, start_lsn);
    let mut paths = vec![pgdata.display().to_string()];
    paths.extend(info.tablespaces.iter().map(|t| t.location.clone()));
    let source = TreeSource {
        kind: SourceKind::Postgres,
        paths,
        roots: roots
            .iter()
            .map(|(at, path)| SourceRoot {
                at: PathBuf::from(at),
                path: path.clone(),
                real_ancestors: false,
            })
            .collect(),
        policy: Arc::new(policy),
    };
    let mut backup = repo
        .start_backup(source, &options.backup, progress.clone())
        .await?;
    backup.store_files().await?;

    progress.event(Event::Phase("stopping backup"));
    let stop_sql = if info.version_num >= 150000 {
        "SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(false)"
    } else {
        "SELECT lsn::text, labelfile, spcmapfile FROM pg_stop_backup(false, false)"
    };
    let row = client
        .query_one(stop_sql, &[])
        .await
        .map_err(PgError::sql("pg_backup_stop"))?;
    let stop_lsn: Lsn = row
        .try_get::<_, String>(0)
        .map_err(PgError::sql("pg_backup_stop"))?
        .parse()
        .map_err(|e| PgError::Setup(format!("pg_backup_stop returned {e}")))?;
    let labelfile: String = row.try_get(1).map_err(PgError::sql("pg_backup_stop"))?;
    let spcmap: Option<String> = row.try_get(2).map_err(PgError::sql("pg_backup_stop"))?;
    let stop_time = Utc::now();

    backup
        .add_file(
            Path::new("pgdata/backup_label"),
            labelfile.clone().into_bytes(),
            0o600,
        )
        .await?;
    if let Some(map) = spcmap.filter(|m| !m.is_empty()) {
        backup
            .add_file(Path::new("pgdata/tablespace_map"), map.into_bytes(), 0o600)
            .await?;
    }
    let timeline: u32 = label_field(&labelfile, "START TIMELINE:")
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    let start_wal = label_field(&labelfile, "START WAL LOCATION:")
        .and_then(|l| l.split("(file ").nth(1))
        .map(|f| f.trim_end_matches(')').to_string())
        .unwrap_or_default();
    let stop_segno = stop_lsn.0.saturating_sub(1) / info.seg_size.max(1);
    let stop_wal = WalFile::Segment {
        tli: timeline,
        segno: stop_segno,
    }
    .name(info.seg_size);
    let start_segno = start_lsn.segment(info.seg_size);
    let needed: Vec<String> = (start_segno..=stop_segno.max(start_segno))
        .map(|segno| {
            WalFile::Segment {
                tli: timeline,
                segno,
            }
            .name(info.seg_size)
        })
        .collect();
    progress.event(Event::Phase("waiting for the backup's WAL to be archived"));
    wait_for_wal(
        repo,
        &client,
        info.sysid,
        &needed,
        options.archive_timeout,
        &progress,
    )
    .await?;
    progress.event(Event::Phase("recording database sizes"));
    let databases = databases(&config, &client).await.unwrap_or_default();
    let checksum_failures = backup.problems().len() as u64;
    let meta = PostgresBackup {
        system_id: info.sysid.to_string(),
        version_num: info.version_num,
        version: info.version,
        timeline,
        start_lsn: start_lsn.to_string(),
        stop_lsn: stop_lsn.to_string(),
        start_time: Some(start_time),
        stop_time: Some(stop_time),
        start_wal,
        stop_wal,
        wal_segment_size: info.seg_size,
        data_checksums: info.checksums,
        checksum_failures,
        tablespaces: info.tablespaces,
        databases,
    };
    Ok(backup.finish(move |s| s.postgres = Some(meta)).await?)
}
