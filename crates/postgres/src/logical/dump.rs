//! `lifeboat backup postgres --logical`: a consistent logical backup of one
//! or more databases over SQL only.
//!
//! Per database, a coordinator connection opens a repeatable-read
//! transaction and exports its snapshot. `pg_dump --schema-only` and the
//! data workers (`--jobs` connections) all read in that snapshot, so the
//! backup is consistent even while the application writes. Each table's
//! rows go out through `COPY … TO STDOUT` (text format) as their own
//! stream; tables larger than the split size are cut into parts by page
//! ranges (PostgreSQL 14 and later scan TID ranges directly), so one huge
//! table does not serialise the backup and its parts line up from day to
//! day. Rows are counted exactly as they stream past.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use lifeboat_format::Id;
use lifeboat_format::row_chunker::{RowChunks, RowCutter};
use lifeboat_format::snapshot::{LogicalBackup, LogicalDatabase, SourceKind, TableRows};
use lifeboat_repo::backup::{Parent, StoredStream, StreamStore, TreeSource};
use lifeboat_repo::progress::{DynProgress, Event};
use lifeboat_repo::{BackupOptions, BackupResult, Repository, TreeBackup};
use tokio_postgres::Client;

use crate::sql::PgConfig;

use super::tools::{Tools, libpq_conninfo, run};
use super::{
    DataPart, DatabaseGrant, DatabaseState, EXTENSION_CONFIG, IndexOf, LargeObject, Manifest,
    NOT_EXTENSION_MEMBER, QualifiedName, RoleSetting, SequenceValue, TableData, USER_SCHEMAS,
    database_dir, large_object_path, part_path, qualified_names, quote_literal,
};
use crate::error::{PgError, Result};
use crate::sql;

/// Which server and databases a logical backup reads.
#[derive(Clone, Debug, Default)]
pub struct LogicalSourceOptions {
    /// Connection strings, one per database (none: the `PG*` variables).
    pub conninfos: Vec<String>,
    /// Back up every database of the server the first connection reaches.
    pub all_databases: bool,
    /// Directory of `pg_dump` and friends (default: searched).
    pub pg_bin: Option<PathBuf>,
}

/// How to take a logical backup.
#[derive(Clone, Debug)]
pub struct LogicalBackupOptions {
    /// Parallel connections per database.
    pub jobs: usize,
    /// Tables larger than this (bytes on disk) are read in parts of this size.
    pub split_bytes: u64,
    /// The generic backup options.
    pub backup: BackupOptions,
}

/// Default part size for large tables: small enough that `--jobs`
/// connections share a database of a few large tables evenly (a 640 MiB
/// table read whole kept one connection busy alone for the last third of a
/// benchmark backup), large enough that a part's `COPY` start-up is noise.
/// A part's page-range scan costs the server more per row than a plain
/// `COPY` of the whole table, which is why parts are not smaller still.
pub const DEFAULT_SPLIT_BYTES: u64 = 256 << 20;

/// Session settings every reading connection uses: exact floats, ISO dates,
/// UTC, no timeouts, and row security off (a table whose rows a policy would
/// hide fails the backup instead of being dumped incompletely).
const SESSION: &str = "SET extra_float_digits = 3; SET DateStyle = ISO; \
    SET IntervalStyle = postgres; SET TimeZone = 'UTC'; SET statement_timeout = 0; \
    SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0; \
    SET row_security = off";

/// What a logical backup learns from the server before it needs the
/// repository: the databases, the server's version, the matching client
/// programs and the roles. Reaching the server takes a moment (connections,
/// `pg_dumpall`), so callers can do it while the repository is unlocked.
pub struct LogicalSource {
    configs: Vec<PgConfig>,
    version_num: u32,
    version: String,
    tools: Tools,
    /// The roles' SQL and what it leaves out, or why there is none.
    roles: std::result::Result<(Vec<u8>, Vec<String>), String>,
}

impl LogicalSource {
    /// The databases this source backs up, and the server's version.
    pub fn describe(&self) -> (Vec<String>, &str) {
        let names = self
            .configs
            .iter()
            .map(|c| c.get_dbname().unwrap_or("?").to_string())
            .collect();
        (names, &self.version)
    }

    /// Connects, reads the server's version, finds a `pg_dump` at least as
    /// new and dumps the roles (when the user may read them).
    pub async fn connect(opts: &LogicalSourceOptions) -> Result<Self> {
        let configs = database_configs(opts).await?;
        let first = sql::connect(&configs[0]).await?;
        let version_num = sql::int(
            &first,
            "reading the server version",
            "SELECT current_setting('server_version_num')::bigint",
        )
        .await? as u32;
        let version = sql::text(
            &first,
            "reading the server version",
            "SELECT current_setting('server_version')",
        )
        .await?;
        drop(first);
        let tools = Tools::find(opts.pg_bin.as_deref(), version_num / 10000).await?;
        let roles = dump_roles(&tools, &configs[0]).await;
        Ok(Self {
            configs,
            version_num,
            version,
            tools,
            roles,
        })
    }
}

/// Takes the backup and writes one snapshot holding every database.
pub async fn logical_backup(
    repo: &Repository,
    source: LogicalSource,
    opts: &LogicalBackupOptions,
    progress: DynProgress,
) -> Result<BackupResult> {
    let LogicalSource {
        configs,
        version_num,
        version,
        tools,
        roles,
    } = source;
    let paths = configs.iter().map(source_name).collect();
    let tree = TreeSource::virtual_tree(SourceKind::PostgresLogical, paths);
    let mut backup_opts = opts.backup.clone();
    backup_opts.parent = Parent::Disabled;
    let mut backup = repo
        .start_backup(tree, &backup_opts, progress.clone())
        .await?;

    let mut meta = LogicalBackup {
        version_num,
        version,
        pg_dump_version: tools.version.clone(),
        ..LogicalBackup::default()
    };
    match roles {
        Ok((sql, skipped)) => {
            backup.add_file(Path::new("roles.sql"), sql, 0o600).await?;
            meta.roles = true;
            meta.skipped.extend(skipped);
        }
        Err(why) => meta.skipped.push(why),
    }
    for why in &meta.skipped {
        progress.event(Event::Warning(format!("not backed up: {why}")));
    }
    let earlier = repo.list_snapshots(&progress).await?;
    for config in &configs {
        // The newest earlier logical backup of the same database: table
        // parts that changed a little are stored as deltas against it.
        let name = source_name(config);
        let previous = match earlier.iter().rev().find(|e| {
            e.snapshot.source == SourceKind::PostgresLogical && e.snapshot.paths.contains(&name)
        }) {
            Some(e) => backup.earlier_files(&e.snapshot.root).await,
            None => HashMap::new(),
        };
        let db = dump_database(&mut backup, &tools, config, opts, &previous, &progress).await?;
        meta.databases.push(db);
    }
    let result = backup
        .finish(|s| {
            s.logical = Some(meta);
        })
        .await?;
    Ok(result)
}

/// "host:port/dbname", how a database is named in the snapshot.
fn source_name(c: &PgConfig) -> String {
    let described = sql::describe(c);
    let host_port = described.split(' ').next().unwrap_or_default();
    format!("{host_port}/{}", c.get_dbname().unwrap_or_default())
}

/// One config per database to back up.
async fn database_configs(opts: &LogicalSourceOptions) -> Result<Vec<PgConfig>> {
    let mut configs = if opts.conninfos.is_empty() {
        vec![sql::config(None, None)?]
    } else {
        opts.conninfos
            .iter()
            .map(|c| sql::config(Some(c), None))
            .collect::<Result<Vec<_>>>()?
    };
    if opts.all_databases {
        let base = configs[0].clone();
        let client = sql::connect(&base).await?;
        let rows = client
            .query(
                "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname",
                &[],
            )
            .await
            .map_err(PgError::sql("listing the databases"))?;
        configs = rows
            .iter()
            .map(|r| {
                let mut c = base.clone();
                c.dbname(r.get::<_, &str>(0));
                c
            })
            .collect();
    }
    Ok(configs)
}

/// `pg_dumpall --roles-only`; without role passwords when `pg_authid` is not
/// readable (managed services). Returns the SQL and what was left out, or
/// why roles could not be dumped at all.
async fn dump_roles(
    tools: &Tools,
    config: &PgConfig,
) -> std::result::Result<(Vec<u8>, Vec<String>), String> {
    let (conninfo, password) = libpq_conninfo(config);
    let attempt = |no_passwords: bool| {
        let mut cmd = tools.command("pg_dumpall");
        cmd.args(["--roles-only", "--no-password", "--dbname"])
            .arg(&conninfo);
        if no_passwords {
            cmd.arg("--no-role-passwords");
        }
        if let Some(p) = &password {
            cmd.env("PGPASSWORD", p);
        }
        run(cmd, "pg_dumpall --roles-only")
    };
    match attempt(false).await {
        Ok(sql) => Ok((sql, Vec::new())),
        Err(first) => match attempt(true).await {
            Ok(sql) => Ok((
                sql,
                vec![format!(
                    "role passwords (user {} may not read pg_authid; roles are kept without passwords)",
                    config.get_user().unwrap_or("?")
                )],
            )),
            Err(_) => Err(format!("roles and their grants ({first})")),
        },
    }
}

/// A table to copy, as found in the snapshot.
struct FoundTable {
    data: TableData,
    pages: u64,
}

/// One `COPY` to run.
struct PartJob {
    table: usize,
    part: usize,
    sql: String,
    file: String,
    /// The part's chunks in the previous backup (empty if none).
    previous: Vec<Id>,
}

/// What a worker did with one part.
struct PartDone {
    table: usize,
    part: usize,
    file: String,
    rows: u64,
    stored: StoredStream,
}

async fn dump_database(
    backup: &mut TreeBackup,
    tools: &Tools,
    config: &PgConfig,
    opts: &LogicalBackupOptions,
    previous: &HashMap<PathBuf, Vec<Id>>,
    progress: &DynProgress,
) -> Result<LogicalDatabase> {
    let name = config.get_dbname().unwrap_or_default().to_string();
    let dir = database_dir(&name);
    let coordinator = sql::connect(config).await?;
    coordinator
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; {SESSION}"
        ))
        .await
        .map_err(PgError::sql(format!(
            "starting the backup of database {name}"
        )))?;
    let snapshot = sql::text(
        &coordinator,
        "exporting the snapshot",
        "SELECT pg_export_snapshot()",
    )
    .await?;
    let version_num = sql::int(
        &coordinator,
        "reading the server version",
        "SELECT current_setting('server_version_num')::bigint",
    )
    .await?;
    let block_size = sql::int(
        &coordinator,
        "reading the block size",
        "SELECT current_setting('block_size')::bigint",
    )
    .await?
    .max(1) as u64;

    progress.event(Event::Phase("reading the catalog"));
    let mut tables = list_tables(&coordinator).await?;
    refuse_hidden_rows(&coordinator, &name).await?;
    lock_tables(&coordinator, &tables).await?;
    let mut manifest = Manifest {
        database: name.clone(),
        snapshot: snapshot.clone(),
        ..Manifest::default()
    };
    let (encoding, size_bytes) = database_facts(&coordinator).await?;
    let extensions: Vec<String> = coordinator
        .query("SELECT extname::text FROM pg_extension ORDER BY 1", &[])
        .await
        .map_err(PgError::sql("listing the extensions"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    manifest.encoding = encoding.clone();
    manifest.settings = database_settings(&coordinator).await?;
    manifest.database_state = Some(database_state(&coordinator).await?);
    manifest.objects = super::inventory::count(&coordinator).await?;
    manifest.sequences = sequences(&coordinator).await?;
    manifest.indexes = indexes(&coordinator).await?;
    manifest.matviews = populated_matviews(&coordinator).await?;

    // The schema, in the same snapshot, while the data is copied.
    let schema_dump = {
        let (conninfo, password) = libpq_conninfo(config);
        let mut cmd = tools.command("pg_dump");
        cmd.args(["--schema-only", "--format=custom", "--no-password"])
            .arg(format!("--snapshot={snapshot}"))
            .arg("--dbname")
            .arg(conninfo);
        if let Some(p) = password {
            cmd.env("PGPASSWORD", p);
        }
        tokio::spawn(run(cmd, "pg_dump --schema-only"))
    };

    // Split the large tables; biggest work first.
    let split_pages = (opts.split_bytes / block_size).max(1);
    let mut jobs = Vec::new();
    for (ti, t) in tables.iter_mut().enumerate() {
        // An extension's configuration table: only the user's rows (its
        // condition), read whole.
        let parts = if version_num >= 140000 && t.pages > split_pages && t.data.extension.is_empty()
        {
            t.pages.div_ceil(split_pages)
        } else {
            1
        };
        let cols = t.data.column_list();
        for p in 0..parts {
            let sql = if !t.data.extension.is_empty() {
                format!(
                    "COPY (SELECT {} FROM ONLY {} {}) TO STDOUT",
                    if cols.is_empty() {
                        "*".to_string()
                    } else {
                        cols.clone()
                    },
                    t.data.name.sql(),
                    t.data.condition
                )
            } else if parts == 1 {
                format!("COPY {} TO STDOUT", t.data.copy_target())
            } else {
                let lo = format!("ctid >= '({},0)'::tid", p * split_pages);
                let range = if p + 1 == parts {
                    lo
                } else {
                    format!("{lo} AND ctid < '({},0)'::tid", (p + 1) * split_pages)
                };
                format!(
                    "COPY (SELECT {cols} FROM ONLY {} WHERE {range}) TO STDOUT",
                    t.data.name.sql()
                )
            };
            let file = format!("{}.{p}", t.data.oid);
            jobs.push((
                t.pages / parts,
                PartJob {
                    table: ti,
                    part: p as usize,
                    sql,
                    previous: previous
                        .get(&part_path(&dir, &file))
                        .cloned()
                        .unwrap_or_default(),
                    file,
                },
            ));
        }
        t.data.parts = vec![DataPart::default(); parts as usize];
    }
    jobs.sort_by_key(|j| std::cmp::Reverse(j.0));
    progress.event(Event::Phase("copying tables"));
    progress.event(Event::Total {
        items: jobs.len() as u64,
        bytes: jobs.iter().map(|(pages, _)| pages * block_size).sum(),
    });
    let queue = Arc::new(Mutex::new(
        jobs.into_iter().map(|(_, j)| j).collect::<VecDeque<_>>(),
    ));
    let store = backup.stream_store();
    let mut workers = Vec::new();
    for _ in 0..opts.jobs.max(1) {
        let (config, snapshot, queue, store) = (
            config.clone(),
            snapshot.clone(),
            queue.clone(),
            store.clone(),
        );
        // Each worker on its own thread with its own single-threaded
        // runtime: its connection's socket reads and its row handling stay
        // on one core instead of waking another thread for every read of
        // the process-wide runtime (a tenth less client CPU in the
        // benchmark, a third of the context switches). The storing thread
        // each part gets still runs beside it.
        workers.push(tokio::task::spawn_blocking(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| PgError::Command(format!("cannot start a copy worker: {e}")))?
                .block_on(copy_worker(config, snapshot, queue, store))
        }));
    }
    let mut done = Vec::new();
    let mut failure = None;
    for w in workers {
        match w.await {
            Ok(Ok(parts)) => done.extend(parts),
            Ok(Err(e)) => {
                failure.get_or_insert(e);
            }
            Err(e) => {
                failure.get_or_insert(PgError::Command(format!("a copy worker failed: {e}")));
            }
        }
        // One failed worker stops the others from taking new work.
        if failure.is_some()
            && let Ok(mut q) = queue.lock()
        {
            q.clear();
        }
    }
    let schema = schema_dump
        .await
        .map_err(|e| PgError::Command(format!("pg_dump did not finish: {e}")));
    if let Some(e) = failure {
        return Err(e);
    }
    let schema = schema??;

    progress.event(Event::Phase("copying large objects"));
    manifest.large_objects = dump_large_objects(&coordinator, backup, &dir).await?;
    coordinator
        .batch_execute("COMMIT")
        .await
        .map_err(PgError::sql("ending the backup transaction"))?;

    let mut data_bytes = 0;
    for d in done {
        let t = &mut tables[d.table];
        t.data.rows += d.rows;
        t.data.parts[d.part] = DataPart {
            file: d.file.clone(),
            rows: d.rows,
            bytes: d.stored.size,
        };
        data_bytes += d.stored.size;
        backup.add_stored_file(&part_path(&dir, &d.file), d.stored, 0o600)?;
    }
    manifest.tables = tables.into_iter().map(|t| t.data).collect();
    manifest.tables.sort_by(|a, b| a.name.cmp(&b.name));
    backup
        .add_file(&dir.join("schema.dump"), schema, 0o600)
        .await?;
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| PgError::Invalid(format!("cannot encode the manifest: {e}")))?;
    backup
        .add_file(&dir.join("manifest.json"), json, 0o600)
        .await?;
    Ok(LogicalDatabase {
        name,
        size_bytes,
        encoding,
        tables: manifest
            .tables
            .iter()
            .map(|t| TableRows {
                schema: t.name.schema.clone(),
                name: t.name.name.clone(),
                rows: t.rows,
            })
            .collect(),
        sequences: manifest.sequences.len() as u64,
        large_objects: manifest.large_objects.len() as u64,
        data_bytes,
        extensions,
    })
}

/// Reads parts off the queue until it is empty, each with `COPY … TO
/// STDOUT` in the exported snapshot, streaming into the repository.
async fn copy_worker(
    config: PgConfig,
    snapshot: String,
    queue: Arc<Mutex<VecDeque<PartJob>>>,
    store: StreamStore,
) -> Result<Vec<PartDone>> {
    let client = sql::connect(&config).await?;
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT {}; {SESSION}",
            quote_literal(&snapshot)
        ))
        .await
        .map_err(PgError::sql("joining the backup's snapshot"))?;
    let mut out = Vec::new();
    loop {
        let job = match queue.lock() {
            Ok(mut q) => q.pop_front(),
            Err(_) => None,
        };
        let Some(job) = job else { break };
        let (rows, stored) = copy_part(&client, &job.sql, &store, job.previous).await?;
        out.push(PartDone {
            table: job.table,
            part: job.part,
            file: job.file,
            rows,
            stored,
        });
    }
    client
        .batch_execute("COMMIT")
        .await
        .map_err(PgError::sql("ending a copy transaction"))?;
    Ok(out)
}

/// Runs one `COPY … TO STDOUT`, storing its output (with deltas against
/// `previous`, the chunks of its last backup); returns the rows seen.
pub(crate) async fn copy_part(
    client: &Client,
    sql: &str,
    store: &StreamStore,
    previous: Vec<Id>,
) -> Result<(u64, StoredStream)> {
    let stream = client
        .copy_out(sql)
        .await
        .map_err(PgError::sql(format!("starting {sql}")))?;
    futures::pin_mut!(stream);
    // Chunks end at row boundaries, decided here as the rows arrive; the
    // storing thread hashes, compresses and packs them. One chunk waits
    // while the next fills: a deeper queue only held more memory (each
    // chunk about 1 MiB, per job), never more speed.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
    // Stored chunks' buffers come back to be filled again.
    let (back_tx, back_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let writer = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            store.store_chunks_after_blocking(
                std::iter::from_fn(|| rx.blocking_recv()),
                previous,
                |buffer| {
                    let _ = back_tx.send(buffer);
                },
            )
        })
    };
    let mut chunks = RowChunks::new(RowCutter::new(&store.chunker_params()));
    let mut failed = None;
    let mut stopped = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(b) => {
                let mut ready = Vec::new();
                let _ = chunks.push(&b, &mut |c| {
                    ready.push(c);
                    Ok::<_, ()>(())
                });
                for c in ready {
                    if tx.send(c).await.is_err() {
                        stopped = true;
                    }
                    // For the chunk after next (one is being filled now).
                    while let Ok(buffer) = back_rx.try_recv() {
                        chunks.recycle(buffer);
                    }
                }
                if stopped {
                    break;
                }
            }
            Err(e) => {
                failed = Some(PgError::Sql {
                    what: sql.to_string(),
                    source: e,
                });
                break;
            }
        }
    }
    let rows = chunks.rows();
    if failed.is_none()
        && !stopped
        && let Some(last) = chunks.finish()
    {
        let _ = tx.send(last).await;
    }
    drop(tx);
    let stored = writer
        .await
        .map_err(|e| PgError::Command(format!("storing the output of {sql}: {e}")))?;
    if let Some(e) = failed {
        return Err(e);
    }
    Ok((rows, stored?))
}

async fn list_tables(client: &Client) -> Result<Vec<FoundTable>> {
    let rows = client
        .query(
            &format!(
                "SELECT c.oid, n.nspname, c.relname, \
                   (pg_relation_size(c.oid) / current_setting('block_size')::bigint)::bigint, \
                   ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid \
                         AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' \
                         ORDER BY a.attnum), \
                   ARRAY(SELECT sn.nspname::text FROM pg_depend d \
                         JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' \
                         JOIN pg_namespace sn ON sn.oid = s.relnamespace \
                         WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
                           AND d.refobjid = c.oid AND d.deptype IN ('a', 'i') ORDER BY sn.nspname || '.' || s.relname), \
                   ARRAY(SELECT s.relname::text FROM pg_depend d \
                         JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' \
                         JOIN pg_namespace sn ON sn.oid = s.relnamespace \
                         WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
                           AND d.refobjid = c.oid AND d.deptype IN ('a', 'i') ORDER BY sn.nspname || '.' || s.relname), \
                   coalesce(x.extname::text, ''), coalesce(x.condition, ''), \
                   ARRAY(SELECT rn.nspname::text FROM pg_constraint k JOIN pg_class r ON r.oid = k.confrelid \
                         JOIN pg_namespace rn ON rn.oid = r.relnamespace \
                         WHERE k.conrelid = c.oid AND k.contype = 'f' ORDER BY k.conname), \
                   ARRAY(SELECT r.relname::text FROM pg_constraint k JOIN pg_class r ON r.oid = k.confrelid \
                         WHERE k.conrelid = c.oid AND k.contype = 'f' ORDER BY k.conname) \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 LEFT JOIN LATERAL (SELECT e.extname, e.extcondition[i] AS condition \
                       FROM pg_extension e, generate_subscripts(e.extconfig, 1) i \
                       WHERE e.extconfig[i] = c.oid LIMIT 1) x ON true \
                 WHERE c.relkind = 'r' AND c.relpersistence <> 't' AND {USER_SCHEMAS} \
                   AND ({NOT_EXTENSION_MEMBER} OR {EXTENSION_CONFIG}) \
                 ORDER BY n.nspname, c.relname"
            ),
            &[],
        )
        .await
        .map_err(PgError::sql("listing the tables"))?;
    rows.iter()
        .map(|r| {
            let oid: u32 = r
                .try_get(0)
                .map_err(PgError::sql("reading the table list"))?;
            let schemas: Vec<String> = r
                .try_get(5)
                .map_err(PgError::sql("reading the table list"))?;
            let names: Vec<String> = r
                .try_get(6)
                .map_err(PgError::sql("reading the table list"))?;
            Ok(FoundTable {
                pages: r
                    .try_get::<_, i64>(3)
                    .map_err(PgError::sql("reading the table list"))? as u64,
                data: TableData {
                    oid,
                    name: QualifiedName {
                        schema: r
                            .try_get(1)
                            .map_err(PgError::sql("reading the table list"))?,
                        name: r
                            .try_get(2)
                            .map_err(PgError::sql("reading the table list"))?,
                    },
                    columns: r
                        .try_get(4)
                        .map_err(PgError::sql("reading the table list"))?,
                    owned_sequences: schemas
                        .into_iter()
                        .zip(names)
                        .map(|(schema, name)| QualifiedName { schema, name })
                        .collect(),
                    extension: r
                        .try_get(7)
                        .map_err(PgError::sql("reading the table list"))?,
                    condition: r
                        .try_get(8)
                        .map_err(PgError::sql("reading the table list"))?,
                    references: {
                        let schemas: Vec<String> = r
                            .try_get(9)
                            .map_err(PgError::sql("reading the table list"))?;
                        let names: Vec<String> = r
                            .try_get(10)
                            .map_err(PgError::sql("reading the table list"))?;
                        schemas
                            .into_iter()
                            .zip(names)
                            .map(|(schema, name)| QualifiedName { schema, name })
                            .collect()
                    },
                    ..TableData::default()
                },
            })
        })
        .collect()
}

/// Fails, naming every table, when row-level security would hide rows from
/// this user: such a backup would be silently incomplete.
async fn refuse_hidden_rows(client: &Client, database: &str) -> Result<()> {
    let rows = client
        .query(
            &format!(
                "SELECT n.nspname || '.' || c.relname FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND c.relrowsecurity AND {USER_SCHEMAS} \
                   AND NOT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user) \
                   AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE')) \
                 ORDER BY 1"
            ),
            &[],
        )
        .await
        .map_err(PgError::sql("checking row-level security"))?;
    if rows.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    Err(PgError::Setup(format!(
        "row-level security would hide rows of {} in database {database} from this user, so the backup would be incomplete; back up as a role with BYPASSRLS (ALTER ROLE … BYPASSRLS) or as the tables' owner",
        names.join(", ")
    )))
}

/// Holds ACCESS SHARE locks on every table until the backup ends, so no
/// table is dropped or rewritten between the snapshot and its copy.
async fn lock_tables(client: &Client, tables: &[FoundTable]) -> Result<()> {
    for batch in tables.chunks(500) {
        let names: Vec<String> = batch.iter().map(|t| t.data.name.sql()).collect();
        client
            .batch_execute(&format!(
                "LOCK TABLE {} IN ACCESS SHARE MODE",
                names.join(", ")
            ))
            .await
            .map_err(PgError::sql("locking the tables to back up"))?;
    }
    Ok(())
}

async fn database_facts(client: &Client) -> Result<(String, u64)> {
    let row = client
        .query_one(
            "SELECT pg_encoding_to_char(encoding)::text, pg_database_size(oid) \
             FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .await
        .map_err(PgError::sql("reading the database's encoding and size"))?;
    Ok((
        row.try_get(0)
            .map_err(PgError::sql("reading the encoding"))?,
        row.try_get::<_, i64>(1)
            .map_err(PgError::sql("reading the size"))? as u64,
    ))
}

async fn database_settings(client: &Client) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT unnest(setconfig) FROM pg_db_role_setting WHERE setrole = 0 \
             AND setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .map_err(PgError::sql("reading the database's settings"))?;
    rows.iter()
        .map(|r| {
            r.try_get(0)
                .map_err(PgError::sql("reading the database's settings"))
        })
        .collect()
}

/// The database's owner, privileges, settings of roles in it and comment.
async fn database_state(client: &Client) -> Result<DatabaseState> {
    let what = "reading the database's owner and privileges";
    let row = client
        .query_one(
            "SELECT pg_get_userbyid(d.datdba)::text, d.datacl IS NULL, \
                    shobj_description(d.oid, 'pg_database') \
             FROM pg_database d WHERE d.datname = current_database()",
            &[],
        )
        .await
        .map_err(PgError::sql(what))?;
    let default_acl: bool = row.try_get(1).map_err(PgError::sql(what))?;
    let grants = if default_acl {
        None
    } else {
        let rows = client
            .query(
                "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END, \
                        a.privilege_type, a.is_grantable \
                 FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = current_database()",
                &[],
            )
            .await
            .map_err(PgError::sql(what))?;
        let mut grants: Vec<DatabaseGrant> = Vec::new();
        for r in rows {
            let (grantee, privilege, grantable): (String, String, bool) =
                (r.get(0), r.get(1), r.get(2));
            let i = match grants.iter().position(|g| g.grantee == grantee) {
                Some(i) => i,
                None => {
                    grants.push(DatabaseGrant {
                        grantee,
                        ..DatabaseGrant::default()
                    });
                    grants.len() - 1
                }
            };
            if grantable {
                grants[i].grantable.push(privilege.clone());
            }
            grants[i].privileges.push(privilege);
        }
        Some(grants)
    };
    let rows = client
        .query(
            "SELECT pg_get_userbyid(s.setrole)::text, s.setconfig FROM pg_db_role_setting s \
             JOIN pg_database d ON d.oid = s.setdatabase \
             WHERE d.datname = current_database() AND s.setrole <> 0 ORDER BY 1",
            &[],
        )
        .await
        .map_err(PgError::sql(
            "reading the settings of roles in the database",
        ))?;
    Ok(DatabaseState {
        owner: row.try_get(0).map_err(PgError::sql(what))?,
        grants,
        role_settings: rows
            .iter()
            .map(|r| RoleSetting {
                role: r.get(0),
                settings: r.get(1),
            })
            .collect(),
        comment: row.try_get(2).map_err(PgError::sql(what))?,
    })
}

async fn sequences(client: &Client) -> Result<Vec<SequenceValue>> {
    let rows = client
        .query(
            &format!(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind = 'S' AND {USER_SCHEMAS} AND ({NOT_EXTENSION_MEMBER} OR {EXTENSION_CONFIG}) \
                 ORDER BY 1, 2"
            ),
            &[],
        )
        .await
        .map_err(PgError::sql("listing the sequences"))?;
    let mut out = Vec::new();
    for r in rows {
        let name = QualifiedName {
            schema: r.get(0),
            name: r.get(1),
        };
        let v = client
            .query_one(
                &format!("SELECT last_value, is_called FROM {}", name.sql()),
                &[],
            )
            .await
            .map_err(PgError::sql(format!("reading sequence {}", name.display())))?;
        out.push(SequenceValue {
            last_value: v.get(0),
            is_called: v.get(1),
            name,
        });
    }
    Ok(out)
}

async fn indexes(client: &Client) -> Result<Vec<IndexOf>> {
    let rows = client
        .query(
            &format!(
                "SELECT n.nspname, c.relname, tn.nspname, t.relname FROM pg_index i \
                 JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace \
                 WHERE {USER_SCHEMAS} ORDER BY 1, 2"
            ),
            &[],
        )
        .await
        .map_err(PgError::sql("listing the indexes"))?;
    Ok(rows
        .iter()
        .map(|r| IndexOf {
            index: QualifiedName {
                schema: r.get(0),
                name: r.get(1),
            },
            table: QualifiedName {
                schema: r.get(2),
                name: r.get(3),
            },
        })
        .collect())
}

async fn populated_matviews(client: &Client) -> Result<Vec<QualifiedName>> {
    qualified_names(
        client,
        &format!(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'm' AND c.relispopulated AND {USER_SCHEMAS} AND {NOT_EXTENSION_MEMBER} \
             ORDER BY 1, 2"
        ),
        "listing the materialized views",
    )
    .await
}

/// Stores every large object (in the snapshot) as a file of its own.
async fn dump_large_objects(
    client: &Client,
    backup: &mut TreeBackup,
    dir: &Path,
) -> Result<Vec<LargeObject>> {
    let rows = client
        .query(
            "SELECT oid, pg_get_userbyid(lomowner)::text FROM pg_largeobject_metadata ORDER BY oid",
            &[],
        )
        .await
        .map_err(PgError::sql("listing the large objects"))?;
    let mut out = Vec::new();
    let owners: HashMap<u32, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut oids: Vec<u32> = owners.keys().copied().collect();
    oids.sort_unstable();
    for oid in oids {
        let data: Vec<u8> = client
            .query_one("SELECT lo_get($1)", &[&oid])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(PgError::sql(format!(
                "reading large object {oid} (owned by {}; the backup role needs SELECT on every large object: GRANT SELECT ON LARGE OBJECT {oid} TO …)",
                owners.get(&oid).map(String::as_str).unwrap_or("?")
            )))?;
        let bytes = data.len() as u64;
        backup
            .add_file(&large_object_path(dir, oid), data, 0o600)
            .await?;
        out.push(LargeObject {
            oid,
            owner: owners.get(&oid).cloned().unwrap_or_default(),
            bytes,
        });
    }
    Ok(out)
}
