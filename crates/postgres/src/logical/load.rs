//! `lifeboat restore postgres --logical`: loads a logical backup into a
//! database, whole or in part.
//!
//! Order: every check that can refuse the restore runs first, so a refused
//! restore writes nothing. Then the schema's pre-data section (types,
//! tables, functions) from `pg_restore`, the table data with parallel
//! `COPY … FROM STDIN`, sequence values, large objects and database
//! settings, then the post-data section (indexes, constraints, triggers,
//! policies) with `pg_restore --jobs`, and finally the populated
//! materialized views are refreshed. Every table's loaded row count is
//! compared with the count recorded at backup time.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use lifeboat_repo::Repository;
use lifeboat_repo::progress::{DynProgress, Event};
use serde::Serialize;
use tokio_postgres::Client;

use crate::sql::PgConfig;

use super::toc::{self, Selection, TocEntry};
use super::tools::{Tools, libpq_conninfo};
use super::{
    Manifest, NOT_EXTENSION_MEMBER, OpenedBackup, QualifiedName, TableData, USER_SCHEMAS,
    database_dir, large_object_path, part_path, qualified_names, quote_ident, quote_literal,
};
use crate::error::{PgError, Result};
use crate::sql;

/// How to restore.
#[derive(Clone, Debug, Default)]
pub struct LogicalRestoreOptions {
    /// Target database connection string (default: the `PG*` variables).
    pub conninfo: Option<String>,
    /// Which database of the backup (needed when it holds several).
    pub database: Option<String>,
    /// Only these tables (`schema.table`, or `table` when unique).
    pub tables: Vec<String>,
    /// Only these schemas.
    pub schemas: Vec<String>,
    /// Only the schema, no data.
    pub schema_only: bool,
    /// Only the data, into tables that exist.
    pub data_only: bool,
    /// Restore over existing objects: drop what the backup recreates, or
    /// empty the tables whose data it loads.
    pub clean: bool,
    /// Parallel connections.
    pub jobs: usize,
    /// Directory of `pg_restore` (default: searched).
    pub pg_bin: Option<PathBuf>,
}

/// A table's restored rows against those recorded at backup time.
#[derive(Clone, Debug, Serialize)]
pub struct TableCheck {
    /// `schema.table`.
    pub table: String,
    /// Rows recorded at backup time.
    pub expected: u64,
    /// Rows the server reported loaded.
    pub restored: u64,
}

/// What a logical restore did.
#[derive(Clone, Debug, Serialize)]
pub struct LogicalRestoreReport {
    /// The snapshot restored.
    pub snapshot: String,
    /// The database of the backup.
    pub database: String,
    /// Where it went.
    pub target: String,
    /// Whether the schema was restored.
    pub schema: bool,
    /// Tables whose data was loaded.
    pub tables: Vec<TableCheck>,
    /// Sequences set.
    pub sequences: u64,
    /// Large objects created.
    pub large_objects: u64,
    /// Materialized views refreshed.
    pub matviews: u64,
    /// Problems that did not stop the restore (owners, grants, settings).
    pub warnings: Vec<String>,
    /// Wall time.
    pub duration_ms: u64,
}

/// Restores snapshot `reference` as `opts` says.
pub async fn logical_restore(
    repo: &Repository,
    reference: &str,
    opts: &LogicalRestoreOptions,
    progress: DynProgress,
) -> Result<LogicalRestoreReport> {
    let started = Instant::now();
    if opts.schema_only && opts.data_only {
        return Err(PgError::Invalid(
            "--schema-only and --data-only exclude each other".into(),
        ));
    }
    progress.event(Event::Phase("reading the backup"));
    let backup = OpenedBackup::open(repo, reference, &progress).await?;
    restore_opened(repo, &backup, opts, progress, started).await
}

/// Restores a backup already opened (see [`logical_restore`]).
pub async fn restore_opened(
    repo: &Repository,
    backup: &OpenedBackup,
    opts: &LogicalRestoreOptions,
    progress: DynProgress,
    started: Instant,
) -> Result<LogicalRestoreReport> {
    let name = backup.database(opts.database.as_deref())?;
    let manifest = backup.manifest(repo, &name).await?;
    let dir = database_dir(&name);
    let selection = resolve_selection(&manifest, opts)?;

    let config = sql::config(opts.conninfo.as_deref(), None)?;
    let target = sql::describe(&config);
    let client = sql::connect(&config).await?;
    let version_num = sql::int(
        &client,
        "reading the server version",
        "SELECT current_setting('server_version_num')::bigint",
    )
    .await? as u32;

    // Which tables get data, and which of them exist already.
    let wanted: Vec<&TableData> = manifest
        .tables
        .iter()
        .filter(|t| selection.wants_table(&t.name))
        .collect();
    let existing = existing_tables(&client).await?;
    let schema = !opts.data_only;
    let everything = selection.is_everything();
    // Refuse before writing anything.
    if schema && everything && !existing.is_empty() && !opts.clean {
        return Err(PgError::NotEmpty(format!(
            "the target database {} is not empty (it has {} relations, e.g. {}); restore into a new database, or pass --clean to replace the objects the backup holds",
            config.get_dbname().unwrap_or("?"),
            existing.len(),
            existing[0].display()
        )));
    }
    let mut to_truncate = Vec::new();
    if !opts.schema_only {
        for t in &wanted {
            let exists = existing.contains(&t.name);
            if opts.data_only && !exists {
                return Err(PgError::Invalid(format!(
                    "--data-only: table {} does not exist in the target; restore its schema too (leave out --data-only)",
                    t.name.display()
                )));
            }
            if exists && (!everything || opts.data_only) {
                let rows = sql::int(
                    &client,
                    "checking the target table",
                    &format!(
                        "SELECT count(*) FROM (SELECT 1 FROM {} LIMIT 1) x",
                        t.name.sql()
                    ),
                )
                .await?;
                if rows > 0 && !opts.clean {
                    return Err(PgError::NotEmpty(format!(
                        "table {} already holds rows in the target; pass --clean to empty it first, or restore into another database",
                        t.name.display()
                    )));
                }
                if rows > 0 {
                    to_truncate.push(t.name.clone());
                }
            }
        }
    }
    let tools = Tools::find(opts.pg_bin.as_deref(), version_num / 10000).await?;

    // A missing pack is found now, not half way through loading.
    let mut needed = Vec::new();
    if !opts.schema_only {
        for t in &wanted {
            needed.extend(t.parts.iter().map(|p| part_path(&dir, &p.file)));
        }
        if everything {
            needed.extend(
                manifest
                    .large_objects
                    .iter()
                    .map(|lo| large_object_path(&dir, lo.oid)),
            );
        }
    }
    backup.check_present(repo, &needed).await?;
    let dump_file = backup.schema_file(repo, &name).await?;
    let toc_text = run_pg_restore(&tools, None, &["--list"], dump_file.path(), None)
        .await?
        .stdout;
    let entries = toc::parse(&toc_text);
    // A selected table that exists keeps its definition: only its data is loaded.
    let list = if everything {
        None
    } else {
        let ddl_selection = Selection {
            tables: selection
                .tables
                .iter()
                .filter(|t| !existing.contains(t))
                .cloned()
                .collect(),
            schemas: selection.schemas.clone(),
        };
        let owned: Vec<QualifiedName> = wanted
            .iter()
            .filter(|t| ddl_selection.tables.contains(&t.name))
            .flat_map(|t| t.owned_sequences.iter().cloned())
            .collect();
        let mut chosen = toc::select(&entries, &ddl_selection, &manifest.indexes, &owned);
        // A table whose schema the target lacks gets the schema too.
        let schemas = existing_schemas(&client).await?;
        let missing: Vec<&str> = ddl_selection
            .tables
            .iter()
            .map(|t| t.schema.as_str())
            .filter(|s| !schemas.iter().any(|e| e == s))
            .collect();
        for e in &entries {
            if e.kind == "SCHEMA" && missing.contains(&e.tag.as_str()) && !chosen.contains(&e) {
                chosen.insert(0, e);
            }
        }
        Some(write_list(&chosen)?)
    };

    let mut warnings = Vec::new();
    let clean_flag = opts.clean && schema && everything;
    let list_path = list.as_ref().map(|l| l.path());
    if schema {
        progress.event(Event::Phase("restoring the schema (pre-data)"));
        let mut args = vec!["--section=pre-data"];
        if clean_flag {
            args.extend(["--clean", "--if-exists"]);
        }
        let out = run_pg_restore(&tools, Some(&config), &args, dump_file.path(), list_path);
        warnings.extend(out.await?.tolerated);
    }

    let mut checks = Vec::new();
    let mut sequences = 0;
    let mut large_objects = 0;
    if !opts.schema_only {
        for t in &to_truncate {
            client
                .batch_execute(&format!("TRUNCATE {}", t.sql()))
                .await
                .map_err(PgError::sql(format!("emptying table {}", t.display())))?;
        }
        progress.event(Event::Phase("loading table data"));
        checks = load_tables(repo, backup, &dir, &config, &wanted, opts.jobs, &progress).await?;
        sequences = set_sequences(&client, &manifest, &selection, &wanted).await?;
        if everything {
            large_objects =
                load_large_objects(repo, backup, &dir, &client, &manifest, &mut warnings).await?;
        }
    }
    if schema && everything {
        apply_settings(&client, &config, &manifest, &mut warnings).await;
    }
    let mut matviews = 0;
    if schema {
        progress.event(Event::Phase(
            "restoring indexes and constraints (post-data)",
        ));
        let jobs = opts.jobs.max(1).to_string();
        let mut args = vec!["--section=post-data", "--jobs", jobs.as_str()];
        if clean_flag {
            args.extend(["--clean", "--if-exists"]);
        }
        let out = run_pg_restore(&tools, Some(&config), &args, dump_file.path(), list_path);
        warnings.extend(out.await?.tolerated);
        if !opts.schema_only {
            for m in manifest
                .matviews
                .iter()
                .filter(|m| everything || selection.schemas.contains(&m.schema))
            {
                client
                    .batch_execute(&format!("REFRESH MATERIALIZED VIEW {}", m.sql()))
                    .await
                    .map_err(PgError::sql(format!(
                        "refreshing materialized view {}",
                        m.display()
                    )))?;
                matviews += 1;
            }
        }
    }
    let report = LogicalRestoreReport {
        snapshot: backup.entry.id.to_hex(),
        database: name,
        target,
        schema,
        tables: checks,
        sequences,
        large_objects,
        matviews,
        warnings,
        duration_ms: started.elapsed().as_millis() as u64,
    };
    let wrong: Vec<String> = report
        .tables
        .iter()
        .filter(|c| c.expected != c.restored)
        .map(|c| {
            format!(
                "{}: {} rows restored, {} recorded",
                c.table, c.restored, c.expected
            )
        })
        .collect();
    if !wrong.is_empty() {
        return Err(PgError::Command(format!(
            "restored row counts differ from the backup's: {}",
            wrong.join("; ")
        )));
    }
    Ok(report)
}

/// Turns `--table` / `--schema` into names the backup holds.
fn resolve_selection(manifest: &Manifest, opts: &LogicalRestoreOptions) -> Result<Selection> {
    let mut tables = Vec::new();
    for spec in &opts.tables {
        let found: Vec<&QualifiedName> = match spec.split_once('.') {
            Some((s, n)) => manifest
                .tables
                .iter()
                .map(|t| &t.name)
                .filter(|q| q.schema == s && q.name == n)
                .collect(),
            None => manifest
                .tables
                .iter()
                .map(|t| &t.name)
                .filter(|q| q.name == *spec)
                .collect(),
        };
        match found.as_slice() {
            [one] => tables.push((*one).clone()),
            [] => {
                return Err(PgError::Invalid(format!(
                    "the backup of database {} holds no table {spec:?} (name it as schema.table)",
                    manifest.database
                )));
            }
            many => {
                return Err(PgError::Invalid(format!(
                    "table name {spec:?} is ambiguous in the backup: {}; name it as schema.table",
                    many.iter()
                        .map(|q| q.display())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    }
    for s in &opts.schemas {
        if !manifest.tables.iter().any(|t| &t.name.schema == s)
            && !manifest.sequences.iter().any(|q| &q.name.schema == s)
        {
            return Err(PgError::Invalid(format!(
                "the backup of database {} holds no tables in schema {s:?}",
                manifest.database
            )));
        }
    }
    Ok(Selection {
        tables,
        schemas: opts.schemas.clone(),
    })
}

/// Relations in user schemas of the target (those an extension made aside).
async fn existing_tables(client: &Client) -> Result<Vec<QualifiedName>> {
    qualified_names(
        client,
        &format!(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') \
               AND {USER_SCHEMAS} AND {NOT_EXTENSION_MEMBER} ORDER BY 1, 2"
        ),
        "looking at the target database",
    )
    .await
}

/// Schemas of the target database.
async fn existing_schemas(client: &Client) -> Result<Vec<String>> {
    let rows = client
        .query("SELECT nspname::text FROM pg_namespace", &[])
        .await
        .map_err(PgError::sql("looking at the target's schemas"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

fn write_list(entries: &[&TocEntry]) -> Result<tempfile::NamedTempFile> {
    use std::io::Write;
    let mut f = tempfile::Builder::new()
        .prefix("lifeboat-list-")
        .tempfile()
        .map_err(|e| PgError::io(std::env::temp_dir(), e))?;
    for e in entries {
        writeln!(f, "{}", e.line).map_err(|err| PgError::io(f.path(), err))?;
    }
    f.flush().map_err(|err| PgError::io(f.path(), err))?;
    Ok(f)
}

/// What `pg_restore` printed.
pub(crate) struct RestoreOutput {
    pub stdout: String,
    /// Errors about owners and privileges the restoring user lacks.
    pub tolerated: Vec<String>,
}

/// True for errors a restore by a less privileged user is expected to hit:
/// objects owned by roles it cannot become, grants to missing roles.
fn tolerated(message: &str) -> bool {
    (message.contains("role \"") && message.contains("does not exist"))
        || message.contains("must be owner of")
        || message.contains("must be member of role")
        || message.contains("permission denied to")
        || message.contains("must be able to SET ROLE")
}

/// Runs `pg_restore` on `file`, against the target when `connect`.
/// Owner and privilege errors become warnings; any other error fails.
pub(crate) async fn run_pg_restore(
    tools: &Tools,
    target: Option<&PgConfig>,
    args: &[&str],
    file: &Path,
    list: Option<&Path>,
) -> Result<RestoreOutput> {
    let mut cmd = tools.command("pg_restore");
    cmd.args(args).arg("--no-password");
    if let Some(l) = list {
        cmd.arg("--use-list").arg(l);
    }
    if let Some(config) = target {
        let (conninfo, password) = libpq_conninfo(config);
        cmd.arg("--dbname").arg(conninfo);
        if let Some(p) = password {
            cmd.env("PGPASSWORD", p);
        }
    }
    cmd.arg(file);
    let out = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .await
        .map_err(|e| PgError::Command(format!("cannot run pg_restore: {e}")))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut tolerated_errors = Vec::new();
    let mut fatal = Vec::new();
    let lines: Vec<&str> = stderr.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if !line.contains("error:") {
            continue;
        }
        // The next line usually names the command that failed.
        let detail = match lines.get(i + 1) {
            Some(n) if n.starts_with("Command was:") => format!("{line} ({})", n.trim()),
            _ => line.to_string(),
        };
        if tolerated(line) {
            tolerated_errors.push(detail);
        } else {
            fatal.push(detail);
        }
    }
    if !fatal.is_empty() || (!out.status.success() && tolerated_errors.is_empty()) {
        return Err(PgError::Command(format!(
            "pg_restore {} failed: {}",
            args.join(" "),
            if fatal.is_empty() {
                stderr.trim().to_string()
            } else {
                fatal.join("; ")
            }
        )));
    }
    Ok(RestoreOutput {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        tolerated: tolerated_errors,
    })
}

/// One table to load: its parts in order, through one connection, so the
/// rows land in the order they were read (and dump identically).
struct LoadJob {
    table: String,
    sql: String,
    parts: Vec<(Vec<lifeboat_format::Id>, String)>,
}

/// Session settings for loading (mirrors the backup's).
const LOAD_SESSION: &str = "SET DateStyle = ISO; SET IntervalStyle = postgres; \
    SET TimeZone = 'UTC'; SET statement_timeout = 0; SET lock_timeout = 0; \
    SET row_security = off; SET synchronous_commit = off";

async fn load_tables(
    repo: &Repository,
    backup: &OpenedBackup,
    dir: &Path,
    config: &PgConfig,
    tables: &[&TableData],
    jobs: usize,
    progress: &DynProgress,
) -> Result<Vec<TableCheck>> {
    let mut queue = Vec::new();
    for t in tables {
        let sql = format!("COPY {} FROM STDIN", t.copy_target());
        let mut size = 0;
        let mut parts = Vec::new();
        for p in &t.parts {
            let path = part_path(dir, &p.file);
            let node = backup.node(&path)?;
            size += node.size;
            parts.push((node.content.clone(), path.display().to_string()));
        }
        queue.push((
            size,
            LoadJob {
                table: t.name.display(),
                sql,
                parts,
            },
        ));
    }
    queue.sort_by_key(|j| std::cmp::Reverse(j.0));
    progress.event(Event::Total {
        items: queue.len() as u64,
        bytes: queue.iter().map(|(s, _)| s).sum(),
    });
    let queue = Arc::new(Mutex::new(
        queue.into_iter().map(|(_, j)| j).collect::<VecDeque<_>>(),
    ));
    let index = backup.index.clone();
    let mut workers = Vec::new();
    for _ in 0..jobs.max(1) {
        let (repo, config, queue, index, progress) = (
            repo.clone(),
            config.clone(),
            queue.clone(),
            index.clone(),
            progress.clone(),
        );
        workers.push(tokio::spawn(async move {
            let client = sql::connect(&config).await?;
            client
                .batch_execute(LOAD_SESSION)
                .await
                .map_err(PgError::sql("preparing a loading session"))?;
            let mut loaded = Vec::new();
            loop {
                let job = match queue.lock() {
                    Ok(mut q) => q.pop_front(),
                    Err(_) => None,
                };
                let Some(job) = job else { break };
                let rows = load_part(&repo, &index, &client, &job, &progress).await;
                match rows {
                    Ok(rows) => loaded.push((job.table, rows)),
                    Err(e) => {
                        if let Ok(mut q) = queue.lock() {
                            q.clear();
                        }
                        return Err(e);
                    }
                }
            }
            Ok::<_, PgError>(loaded)
        }));
    }
    let mut rows_by_table = std::collections::HashMap::<String, u64>::new();
    let mut failure = None;
    for w in workers {
        match w.await {
            Ok(Ok(loaded)) => {
                for (t, n) in loaded {
                    *rows_by_table.entry(t).or_default() += n;
                }
            }
            Ok(Err(e)) => {
                failure.get_or_insert(e);
            }
            Err(e) => {
                failure.get_or_insert(PgError::Command(format!("a loading worker failed: {e}")));
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(tables
        .iter()
        .map(|t| {
            let table = t.name.display();
            TableCheck {
                restored: rows_by_table.get(&table).copied().unwrap_or(0),
                expected: t.rows,
                table,
            }
        })
        .collect())
}

/// Streams one stored part into `COPY … FROM STDIN`; returns rows loaded.
async fn load_part(
    repo: &Repository,
    index: &Arc<lifeboat_repo::index::MasterIndex>,
    client: &Client,
    job: &LoadJob,
    progress: &DynProgress,
) -> Result<u64> {
    let sink = client
        .copy_in::<_, Bytes>(job.sql.as_str())
        .await
        .map_err(PgError::sql(format!("starting {}", job.sql)))?;
    futures::pin_mut!(sink);
    let ids = job
        .parts
        .iter()
        .flat_map(|(ids, label)| ids.iter().map(move |id| (*id, label.clone())))
        .collect::<Vec<_>>();
    let mut blobs = futures::stream::iter(ids)
        .map(|(id, label)| {
            let (repo, index) = (repo.clone(), index.clone());
            async move { repo.read_blob(&index, &id, &label).await }
        })
        .buffered(4);
    while let Some(blob) = blobs.next().await {
        let blob = blob?;
        let n = blob.len() as u64;
        sink.send(Bytes::from(blob))
            .await
            .map_err(PgError::sql(format!("loading {}", job.table)))?;
        progress.event(Event::Advance { items: 0, bytes: n });
    }
    let rows = sink
        .finish()
        .await
        .map_err(PgError::sql(format!("loading {}", job.table)))?;
    progress.event(Event::Advance { items: 1, bytes: 0 });
    Ok(rows)
}

/// The `setval` call that restores a sequence.
pub(crate) fn setval_sql(s: &super::SequenceValue) -> String {
    format!(
        "SELECT pg_catalog.setval({}, {}, {});",
        quote_literal(&s.name.sql()),
        s.last_value,
        s.is_called
    )
}

async fn set_sequences(
    client: &Client,
    manifest: &Manifest,
    selection: &Selection,
    tables: &[&TableData],
) -> Result<u64> {
    let mut n = 0;
    for s in &manifest.sequences {
        let wanted = selection.is_everything()
            || selection.schemas.contains(&s.name.schema)
            || tables.iter().any(|t| t.owned_sequences.contains(&s.name));
        if !wanted {
            continue;
        }
        client
            .batch_execute(&setval_sql(s))
            .await
            .map_err(PgError::sql(format!(
                "setting sequence {}",
                s.name.display()
            )))?;
        n += 1;
    }
    Ok(n)
}

async fn load_large_objects(
    repo: &Repository,
    backup: &OpenedBackup,
    dir: &Path,
    client: &Client,
    manifest: &Manifest,
    warnings: &mut Vec<String>,
) -> Result<u64> {
    for lo in &manifest.large_objects {
        let data = backup
            .read_file(repo, &large_object_path(dir, lo.oid))
            .await?;
        client
            .query_one("SELECT lo_from_bytea($1, $2)", &[&lo.oid, &data])
            .await
            .map_err(PgError::sql(format!("creating large object {}", lo.oid)))?;
        if let Err(e) = client
            .batch_execute(&format!(
                "ALTER LARGE OBJECT {} OWNER TO {}",
                lo.oid,
                quote_ident(&lo.owner)
            ))
            .await
        {
            warnings.push(format!(
                "large object {} keeps the restoring user as owner ({e})",
                lo.oid
            ));
        }
    }
    Ok(manifest.large_objects.len() as u64)
}

/// Settings whose values are lists of names, each quoted on its own.
const LIST_SETTINGS: &[&str] = &[
    "search_path",
    "temp_tablespaces",
    "session_preload_libraries",
    "local_preload_libraries",
];

/// `ALTER DATABASE … SET` for one `name=value` setting.
pub(crate) fn setting_sql(database: &str, setting: &str) -> Option<String> {
    let (name, value) = setting.split_once('=')?;
    let value = if LIST_SETTINGS.contains(&name.to_ascii_lowercase().as_str()) {
        split_list(value)
            .iter()
            .map(|v| quote_literal(v))
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        quote_literal(value)
    };
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
    let name = if plain {
        name.to_string()
    } else {
        quote_ident(name)
    };
    Some(format!(
        "ALTER DATABASE {} SET {name} = {value}",
        quote_ident(database)
    ))
}

/// Splits a stored list value (`"$user", public`) into its elements.
fn split_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    // Whether the current element had quotes (so "" is an empty element).
    let mut had_quotes = false;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => {
                quoted = !quoted;
                had_quotes = true;
            }
            ',' if !quoted => {
                out.push(std::mem::take(&mut cur).trim().to_string());
                had_quotes = false;
            }
            c => cur.push(c),
        }
    }
    let last = cur.trim().to_string();
    if !last.is_empty() || !out.is_empty() || had_quotes {
        out.push(last);
    }
    out
}

async fn apply_settings(
    client: &Client,
    config: &PgConfig,
    manifest: &Manifest,
    warnings: &mut Vec<String>,
) {
    let target = config.get_dbname().unwrap_or("postgres");
    for s in &manifest.settings {
        let Some(sql) = setting_sql(target, s) else {
            continue;
        };
        if let Err(e) = client.batch_execute(&sql).await {
            warnings.push(format!("database setting {s} not applied: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_quote_lists_and_values() {
        assert_eq!(
            setting_sql("app", "search_path=\"$user\", public").as_deref(),
            Some("ALTER DATABASE \"app\" SET search_path = '$user', 'public'")
        );
        assert_eq!(
            setting_sql("app", "work_mem=64MB").as_deref(),
            Some("ALTER DATABASE \"app\" SET work_mem = '64MB'")
        );
        assert_eq!(setting_sql("app", "garbage"), None);
        assert_eq!(split_list("\"a,\"\"b\", c"), ["a,\"b", "c"]);
        assert_eq!(split_list("\"\""), [""]);
    }

    #[test]
    fn tolerates_only_privilege_errors() {
        assert!(tolerated(
            "pg_restore: error: could not execute query: ERROR:  role \"alice\" does not exist"
        ));
        assert!(tolerated("ERROR:  must be owner of table t"));
        assert!(!tolerated("ERROR:  syntax error at or near \"x\""));
    }
}
