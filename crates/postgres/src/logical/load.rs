//! `lifeboat restore postgres --logical`: loads a logical backup into a
//! database, whole or in part, with everything that makes it work: roles,
//! owners, privileges, policies, extensions and their configuration rows,
//! and the database's own settings and privileges.
//!
//! Order: every check that can refuse the restore runs first, so a refused
//! restore writes nothing — the connection is not a transaction-mode
//! pooler, the target is empty (or `--clean`), every extension the backup
//! needs can be created there (tried in a transaction that is rolled
//! back), every owner exists or will be created. Then the missing roles
//! are created, the schema's pre-data section (types, tables, functions)
//! restored with `pg_restore`, the table data loaded with parallel
//! `COPY … FROM STDIN` ([`super::loader`], which builds a big table's
//! own indexes as soon as its rows are in), sequence values, large
//! objects, the rest of the post-data section (indexes, constraints,
//! triggers, policies) with `pg_restore --jobs`, the populated
//! materialized views refreshed, and last the database's owner,
//! privileges and settings applied.
//!
//! If a step fails part way, everything the restore made is dropped again
//! ([`super::undo`]). An object that could not be restored (an owner, a
//! grant, a policy, an index…) does not stop the restore: it is reported
//! with the server's reason, by kind, and the restore ends as failed.
//! Every table's row count, and the number of objects of each kind, are
//! compared with those recorded at backup time.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use lifeboat_repo::Repository;
use lifeboat_repo::progress::{DynProgress, Event};
use serde::Serialize;
use tokio_postgres::Client;

use crate::sql::PgConfig;

use super::gate::ConnectGate;
use super::loader;
use super::roles::{self, RolesDump, db_reason};
use super::toc::{self, Selection, TocEntry};
use super::tools::{Tools, libpq_conninfo};
use super::undo::Before;
use super::{
    Manifest, NOT_EXTENSION_MEMBER, OpenedBackup, QualifiedName, TableData, USER_SCHEMAS,
    database_dir, inventory, large_object_path, part_path, qualified_names, quote_ident,
    quote_literal,
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
    /// Do not create the backup's roles where the target lacks them.
    pub no_roles: bool,
    /// Do not restore owners: everything belongs to the restoring user.
    pub no_owner: bool,
    /// Do not restore privileges (GRANT/REVOKE, default privileges, the
    /// database's privileges).
    pub no_privileges: bool,
    /// Erasures to re-apply once the data is loaded, before the restore
    /// reports success (`None`: the ledger is empty, or replay was skipped).
    pub erasure: Option<crate::erasure::ErasureReplay>,
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

/// Something the restore could not bring back, with the server's reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// What kind of object: `owner`, `privileges`, `policy`, `role`,
    /// `extension`, `index`, `constraint`, `trigger`, `large object owner`,
    /// `database setting`, `row counts`, `object counts`…
    pub kind: String,
    /// What failed, and why.
    pub message: String,
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
    /// Indexes and key constraints of big tables built while other tables
    /// still loaded (the rest of post-data runs after every table).
    pub indexes_built_early: u64,
    /// Roles created because the target lacked them.
    pub roles_created: Vec<String>,
    /// Roles of the backup that existed in the target and were left alone.
    pub roles_existing: Vec<String>,
    /// Objects counted by kind in the restored database (whole restores).
    pub objects: BTreeMap<String, u64>,
    /// What could not be restored; a restore with failures exits 1.
    pub failures: Vec<Failure>,
    /// Things worth knowing that are not failures.
    pub warnings: Vec<String>,
    /// What re-applying the erasure ledger removed (`None`: nothing to re-apply).
    pub erased: Option<crate::erasure::ReplayReport>,
    /// Wall time.
    pub duration_ms: u64,
}

impl LogicalRestoreReport {
    /// Failures counted by kind, e.g. "2 owner, 1 policy".
    pub fn failure_summary(&self) -> String {
        let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &self.failures {
            *by_kind.entry(f.kind.as_str()).or_default() += 1;
        }
        by_kind
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
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

/// Refuses a connection through a transaction-mode pooler (PgBouncer's
/// `pool_mode = transaction`, the managed platforms' pooler port): a
/// restore's session settings and statements must stay on one server
/// session. Two client connections never share a server session directly
/// or through a session-mode pooler; through a transaction-mode pooler the
/// second one gets the server session the first just released, and the
/// first a new one while the second holds it.
async fn refuse_transaction_pooler(config: &PgConfig, first: &Client) -> Result<()> {
    async fn pid(c: &Client) -> Result<String> {
        let rows = c
            .simple_query("SELECT pg_backend_pid()")
            .await
            .map_err(PgError::sql("asking for the server process"))?;
        Ok(rows
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .unwrap_or_default())
    }
    let a1 = pid(first).await?;
    let second = sql::connect(config).await?;
    second
        .simple_query("BEGIN")
        .await
        .map_err(PgError::sql("probing the connection"))?;
    let b = pid(&second).await?;
    let a2 = pid(first).await?;
    let _ = second.simple_query("ROLLBACK").await;
    if b == a1 || a2 != a1 {
        return Err(PgError::Setup(format!(
            "{} goes through a transaction-mode connection pooler (server sessions change between \
             transactions: {a1}, then {b} for a second connection and {a2} for the first), and a restore \
             needs one session for its work. Nothing was written. Connect directly to the server, or \
             through a session-mode pooler (on Supabase: the direct connection, or the pooler's port 5432, \
             not 6543)",
            sql::describe(config)
        )));
    }
    Ok(())
}

/// User objects in the target beside those of extensions (relations,
/// routines, types, schemas other than `public`), for the emptiness check.
async fn existing_objects(client: &Client) -> Result<Vec<String>> {
    let rows = client
        .query(
            &format!(
                "SELECT 'relation ' || n.nspname || '.' || c.relname FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {USER_SCHEMAS} AND {NOT_EXTENSION_MEMBER} \
                 UNION ALL SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p \
                 JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {USER_SCHEMAS} \
                   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass \
                                   AND d.objid = p.oid AND d.deptype = 'e') \
                 UNION ALL SELECT 'type ' || t.oid::regtype::text FROM pg_type t \
                 JOIN pg_namespace n ON n.oid = t.typnamespace LEFT JOIN pg_class r ON r.oid = t.typrelid \
                 WHERE {USER_SCHEMAS} AND t.typcategory <> 'A' AND (t.typrelid = 0 OR r.relkind = 'c') \
                   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass \
                                   AND d.objid = t.oid AND d.deptype = 'e') \
                 UNION ALL SELECT 'schema ' || n.nspname FROM pg_namespace n \
                 WHERE {USER_SCHEMAS} AND n.nspname <> 'public' \
                   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass \
                                   AND d.objid = n.oid AND d.deptype = 'e') \
                 ORDER BY 1 LIMIT 20"
            ),
            &[],
        )
        .await
        .map_err(PgError::sql("looking at the target database"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The roles the restore would need that the target lacks and that the
/// backup will not create: each named with what needs it.
fn missing_owners(
    entries: &[&TocEntry],
    have: &BTreeSet<String>,
    created: Option<&RolesDump>,
) -> Vec<String> {
    let will_create: BTreeSet<&str> = created
        .map(|d| d.roles.iter().map(|r| r.name.as_str()).collect())
        .unwrap_or_default();
    let mut missing: BTreeMap<&str, &TocEntry> = BTreeMap::new();
    for e in entries {
        if !e.owner.is_empty()
            && !have.contains(&e.owner)
            && !will_create.contains(e.owner.as_str())
        {
            missing.entry(e.owner.as_str()).or_insert(e);
        }
    }
    missing
        .into_iter()
        .map(|(role, e)| format!("{role} (owner of {} {})", e.kind.to_lowercase(), e.tag))
        .collect()
}

/// Tries to create every extension the selected entries create, in a
/// transaction that is rolled back; returns each one that fails, with the
/// server's reason (not installed on the target server, not allowed for
/// this user, a library that must be preloaded…).
async fn try_extensions(
    client: &Client,
    tools: &Tools,
    dump: &Path,
    entries: &[&TocEntry],
) -> Result<Vec<String>> {
    let wanted: Vec<&TocEntry> = entries
        .iter()
        .filter(|e| e.kind == "EXTENSION" || e.kind == "SCHEMA")
        .copied()
        .collect();
    if !wanted.iter().any(|e| e.kind == "EXTENSION") {
        return Ok(Vec::new());
    }
    let list = write_list(&wanted)?;
    let script = run_pg_restore(tools, None, &["--file=-"], dump, Some(list.path())).await?;
    let script = script.clean("pg_restore --file=- (extensions)")?;
    client
        .batch_execute("BEGIN")
        .await
        .map_err(PgError::sql("trying the extensions"))?;
    let mut failed = Vec::new();
    for statement in roles::statements(&script) {
        let upper = statement.to_ascii_uppercase();
        let creates_extension = upper.starts_with("CREATE EXTENSION");
        if !creates_extension && !upper.starts_with("CREATE SCHEMA") {
            continue;
        }
        let sql = format!("SAVEPOINT lifeboat_try; {statement}; RELEASE SAVEPOINT lifeboat_try");
        if let Err(e) = client.batch_execute(&sql).await {
            let _ = client
                .batch_execute("ROLLBACK TO SAVEPOINT lifeboat_try; RELEASE SAVEPOINT lifeboat_try")
                .await;
            if creates_extension {
                failed.push(format!("{statement}: {}", db_reason(&e)));
            }
        }
    }
    let _ = client.batch_execute("ROLLBACK").await;
    Ok(failed)
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
    refuse_transaction_pooler(&config, &client).await?;
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
    if schema && everything && !opts.clean {
        let objects = existing_objects(&client).await?;
        if !objects.is_empty() {
            return Err(PgError::NotEmpty(format!(
                "the target database {} is not empty (it holds {}{}); restore into a new database, or pass --clean to replace the objects the backup holds",
                config.get_dbname().unwrap_or("?"),
                objects[..objects.len().min(3)].join(", "),
                if objects.len() > 3 { ", …" } else { "" }
            )));
        }
    }
    let mut to_empty = Vec::new();
    if !opts.schema_only {
        for t in &wanted {
            // An extension's table exists when its extension does.
            let exists = existing.contains(&t.name)
                || (!t.extension.is_empty()
                    && sql::int(
                        &client,
                        "looking for the table in the target",
                        &format!(
                            "SELECT (to_regclass({}) IS NOT NULL)::int::bigint",
                            quote_literal(&t.name.sql())
                        ),
                    )
                    .await?
                        == 1);
            if opts.data_only && !exists {
                return Err(PgError::Invalid(format!(
                    "--data-only: table {} does not exist in the target; restore its schema too (leave out --data-only)",
                    t.name.display()
                )));
            }
            if exists && (!everything || opts.data_only) {
                // An extension's configuration table holds the extension's
                // own rows too: only the backup's kind of rows count.
                let rows = sql::int(
                    &client,
                    "checking the target table",
                    &format!(
                        "SELECT count(*) FROM (SELECT 1 FROM ONLY {} {} LIMIT 1) x",
                        t.name.sql(),
                        t.condition
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
                    to_empty.push((*t).clone());
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
        .clean("pg_restore --list")?;
    let entries = toc::parse(&toc_text);
    // A selected table that exists keeps its definition: only its data is loaded.
    let chosen: Vec<&TocEntry> = if everything {
        entries.iter().collect()
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
        chosen
    };
    let list = if everything {
        None
    } else {
        Some(write_list(&chosen)?)
    };

    // The roles, the owners and the extensions the schema needs.
    let roles_dump = if schema && !opts.no_roles && backup.logical.roles {
        let text = backup.read_file(repo, Path::new("roles.sql")).await?;
        Some(roles::parse(&String::from_utf8_lossy(&text)))
    } else {
        None
    };
    let mut warnings = Vec::new();
    if schema {
        let have = roles::existing_roles(&client).await?;
        if !opts.no_owner {
            let missing = missing_owners(&chosen, &have, roles_dump.as_ref());
            if !missing.is_empty() {
                return Err(PgError::Setup(format!(
                    "roles the backup's objects belong to are missing in the target: {}. Nothing was written. {}",
                    missing.join(", "),
                    if opts.no_roles {
                        "Restore without --no-roles to create them, create them first, or pass --no-owner"
                    } else {
                        "The backup holds no roles (its user could not read them): create them first, or pass --no-owner"
                    }
                )));
            }
        }
        if let Some(dump) = &roles_dump {
            let to_create: Vec<&str> = dump
                .roles
                .iter()
                .filter(|r| !have.contains(&r.name))
                .map(|r| r.name.as_str())
                .collect();
            if !to_create.is_empty() {
                let may = sql::int(
                    &client,
                    "checking the right to create roles",
                    "SELECT (rolsuper OR rolcreaterole)::int::bigint FROM pg_roles WHERE rolname = current_user",
                )
                .await?;
                if may == 0 {
                    return Err(PgError::Setup(format!(
                        "the backup's roles {} are missing in the target and {} may not create roles. Nothing was \
                         written. Restore as a role with CREATEROLE, create them first, or pass --no-roles \
                         (with --no-owner if their objects should belong to you)",
                        to_create.join(", "),
                        config.get_user().unwrap_or("this user")
                    )));
                }
            }
        }
        progress.event(Event::Phase(
            "checking that the target can create the extensions",
        ));
        let failed = try_extensions(&client, &tools, dump_file.path(), &chosen).await?;
        if !failed.is_empty() {
            return Err(PgError::Setup(format!(
                "the target cannot create the extension(s) the backup needs, so nothing was written: {}",
                failed.join("; ")
            )));
        }
    }

    // From here on the target changes; a failure undoes it.
    let before = Before::capture(&client).await?;
    // Erased people's rows come back with the data: until the ledger is
    // re-applied, only lifeboat's own role may connect.
    let gate = match &opts.erasure {
        Some(_) => Some(ConnectGate::close(&client).await?),
        None => None,
    };
    let mut report = LogicalRestoreReport {
        snapshot: backup.entry.id.to_hex(),
        database: name.clone(),
        target,
        schema,
        tables: Vec::new(),
        sequences: 0,
        large_objects: 0,
        matviews: 0,
        indexes_built_early: 0,
        roles_created: Vec::new(),
        roles_existing: Vec::new(),
        objects: BTreeMap::new(),
        failures: Vec::new(),
        warnings: Vec::new(),
        erased: None,
        duration_ms: 0,
    };
    let work = Work {
        repo,
        backup,
        manifest: &manifest,
        dir: &dir,
        config: &config,
        client: &client,
        tools: &tools,
        dump: dump_file.path(),
        list: list.as_ref().map(|l| l.path()),
        entries: &chosen,
        opts,
        selection: &selection,
        wanted: &wanted,
        to_empty: &to_empty,
        roles_dump: roles_dump.as_ref(),
        progress: &progress,
    };
    if let Err(e) = work.run(&mut report).await {
        progress.event(Event::Phase("undoing the restore"));
        let loaded: Vec<QualifiedName> = wanted
            .iter()
            .filter(|t| existing.contains(&t.name) && t.extension.is_empty())
            .map(|t| t.name.clone())
            .collect();
        let mut problems = before.undo(&client, &loaded).await;
        if let Some(g) = gate
            && let Err(e) = g.reopen(&client).await
        {
            problems.push(e.to_string());
        }
        return Err(PgError::Command(format!(
            "{}; {}",
            crate::error::describe_chain(&e),
            if problems.is_empty() {
                "everything the restore had written was removed again, the target is as it was"
                    .to_string()
            } else {
                format!(
                    "removing what the restore had written failed in places: {}",
                    problems.join("; ")
                )
            }
        )));
    }
    warnings.append(&mut report.warnings);
    report.warnings = warnings;

    // Verification: rows, then objects by kind.
    for c in report.tables.iter().filter(|c| c.expected != c.restored) {
        report.failures.push(Failure {
            kind: "row counts".into(),
            message: format!(
                "{}: {} rows restored, {} recorded at backup time",
                c.table, c.restored, c.expected
            ),
        });
    }
    if everything && schema && !manifest.objects.is_empty() {
        report.objects = inventory::count(&client).await?;
        let mut skip: Vec<&str> = Vec::new();
        if opts.no_privileges {
            skip.extend(inventory::PRIVILEGE_KINDS);
        }
        if opts.schema_only {
            skip.extend(inventory::DATA_KINDS);
        }
        for d in inventory::differences(&manifest.objects, &report.objects, &skip) {
            report.failures.push(Failure {
                kind: "object counts".into(),
                message: d,
            });
        }
    }
    if let Some(er) = &opts.erasure {
        progress.event(Event::Phase("re-applying erasures"));
        let mut c = sql::connect(&config).await?;
        match er.apply_to(&mut c, &name, |k| repo.subject_hash(k)).await {
            Ok(r) => {
                report.erased = Some(r);
                // Now the backup's privileges (held back until here), or
                // PUBLIC's CONNECT as it was.
                let privileges: Vec<(&str, String)> = if schema && everything {
                    database_statements(&manifest, opts)
                        .into_iter()
                        .filter(|(kind, _)| *kind == PRIVILEGES)
                        .collect()
                } else {
                    Vec::new()
                };
                if privileges.is_empty() {
                    if let Some(g) = gate {
                        g.reopen(&client).await?;
                    }
                } else {
                    let target = config.get_dbname().unwrap_or("postgres");
                    for (kind, sql) in privileges {
                        let sql = sql.replace(DATABASE_MARKER, &quote_ident(target));
                        if let Err(e) = client.batch_execute(&sql).await {
                            report.failures.push(Failure {
                                kind: kind.into(),
                                message: format!("{sql}: {}", db_reason(&e)),
                            });
                        }
                    }
                }
            }
            Err(e) => {
                let db = config.get_dbname().unwrap_or("postgres").to_string();
                let closed = match crate::erasure::close_database(&config).await {
                    Ok(()) => format!(
                        "the restored database {db} was closed to new connections (ALLOW_CONNECTIONS false) \
                         so erased data is not served"
                    ),
                    Err(c) => {
                        format!("closing the restored database {db} failed too ({c}): drop it")
                    }
                };
                return Err(PgError::Erasure(format!("{e}; {closed}")));
            }
        }
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Everything a restore writes, in order; an error here is undone.
struct Work<'a> {
    repo: &'a Repository,
    backup: &'a OpenedBackup,
    manifest: &'a Manifest,
    dir: &'a Path,
    config: &'a PgConfig,
    client: &'a Client,
    tools: &'a Tools,
    dump: &'a Path,
    list: Option<&'a Path>,
    /// The entries of the schema dump this restore runs (all, or those
    /// of the selection).
    entries: &'a [&'a TocEntry],
    opts: &'a LogicalRestoreOptions,
    selection: &'a Selection,
    wanted: &'a [&'a TableData],
    to_empty: &'a [TableData],
    roles_dump: Option<&'a RolesDump>,
    progress: &'a DynProgress,
}

impl Work<'_> {
    async fn run(&self, report: &mut LogicalRestoreReport) -> Result<()> {
        let (opts, client) = (self.opts, self.client);
        let schema = !opts.data_only;
        let everything = self.selection.is_everything();
        if let Some(dump) = self.roles_dump {
            self.progress
                .event(Event::Phase("creating the missing roles"));
            let outcome = roles::create_missing(client, dump).await?;
            for f in outcome.failures {
                report.failures.push(Failure {
                    kind: "role".into(),
                    message: f,
                });
            }
            let without_password: Vec<&str> = dump
                .roles
                .iter()
                .filter(|r| outcome.created.contains(&r.name) && r.can_login())
                .filter(|r| !r.statements.iter().any(|s| s.contains(" PASSWORD ")))
                .map(|r| r.name.as_str())
                .collect();
            if !without_password.is_empty() {
                report.warnings.push(format!(
                    "login role(s) created without a password, which the backup could not read: {}; set them with ALTER ROLE … PASSWORD",
                    without_password.join(", ")
                ));
            }
            report.roles_created = outcome.created;
            report.roles_existing = outcome.existing;
        }
        let mut flags: Vec<&str> = Vec::new();
        if opts.no_owner {
            flags.push("--no-owner");
        }
        if opts.no_privileges {
            flags.push("--no-privileges");
        }
        let clean_flag = opts.clean && schema && everything;
        if clean_flag {
            flags.extend(["--clean", "--if-exists"]);
        }
        if schema {
            self.progress
                .event(Event::Phase("restoring the schema (pre-data)"));
            let mut args = vec!["--section=pre-data"];
            args.extend(&flags);
            let out =
                run_pg_restore(self.tools, Some(self.config), &args, self.dump, self.list).await?;
            // Structure that failed stops the restore (the data would not
            // fit); who owns it or may use it is reported at the end.
            let (objects, structure): (Vec<RestoreError>, Vec<RestoreError>) = out
                .errors
                .into_iter()
                .partition(|e| matches!(e.kind(), "owner" | "privileges" | "policy" | "comment"));
            if !structure.is_empty() {
                return Err(PgError::Command(format!(
                    "pg_restore --section=pre-data failed: {}",
                    structure
                        .iter()
                        .map(RestoreError::describe)
                        .collect::<Vec<_>>()
                        .join("; ")
                )));
            }
            report
                .failures
                .extend(objects.into_iter().map(RestoreError::failure));
        }
        let mut early: Option<loader::EarlyBuilds> = None;
        if !opts.schema_only {
            for t in self.to_empty {
                let sql = if t.extension.is_empty() {
                    format!("TRUNCATE {}", t.name.sql())
                } else {
                    format!("DELETE FROM ONLY {} {}", t.name.sql(), t.condition)
                };
                client
                    .batch_execute(&sql)
                    .await
                    .map_err(PgError::sql(format!("emptying table {}", t.name.display())))?;
            }
            self.progress.event(Event::Phase("loading table data"));
            // Extensions' configuration tables keep their foreign keys:
            // parents first, one at a time; then the rest in parallel.
            let owned: Vec<TableData> = self.wanted.iter().map(|t| (*t).clone()).collect();
            let ordered = super::load_order(&owned);
            let (extension, plain): (Vec<&TableData>, Vec<&TableData>) =
                ordered.into_iter().partition(|t| !t.extension.is_empty());
            // A big table's own indexes are built as soon as its rows are
            // in, while the other tables still load.
            if schema {
                early = Some(self.early_builds(&plain, &flags)?);
            }
            for (tables, jobs, keep_order, builds) in [
                (extension, 1, true, None),
                (plain, opts.jobs, false, early.as_ref()),
            ] {
                let loaded = loader::load_tables(
                    self.repo,
                    self.backup,
                    self.dir,
                    self.config,
                    &tables,
                    jobs,
                    keep_order,
                    builds,
                    self.progress,
                )
                .await?;
                report.tables.extend(loaded.tables);
                report.failures.extend(loaded.failures);
                report.indexes_built_early += loaded.built;
            }
            report.sequences =
                set_sequences(client, self.manifest, self.selection, self.wanted).await?;
            if everything {
                report.large_objects = load_large_objects(
                    self.repo,
                    self.backup,
                    self.dir,
                    client,
                    self.manifest,
                    opts.no_owner,
                    &mut report.failures,
                )
                .await?;
            }
        }
        if schema {
            self.progress.event(Event::Phase(
                "restoring indexes and constraints (post-data)",
            ));
            let jobs = opts.jobs.max(1).to_string();
            let mut args = vec!["--section=post-data", "--jobs", jobs.as_str()];
            args.extend(&flags);
            // Without the entries built while loading.
            let rest = match &early {
                Some(e) if !e.by_table.is_empty() => {
                    let done: Vec<&TocEntry> = e.by_table.values().flatten().collect();
                    let rest: Vec<&TocEntry> = self
                        .entries
                        .iter()
                        .copied()
                        .filter(|c| !done.contains(c))
                        .collect();
                    Some(write_list(&rest)?)
                }
                _ => None,
            };
            let list = rest.as_ref().map(|l| l.path()).or(self.list);
            let out = run_pg_restore(self.tools, Some(self.config), &args, self.dump, list).await?;
            report
                .failures
                .extend(out.errors.into_iter().map(RestoreError::failure));
            if !opts.schema_only {
                for m in self
                    .manifest
                    .matviews
                    .iter()
                    .filter(|m| everything || self.selection.schemas.contains(&m.schema))
                {
                    client
                        .batch_execute(&format!("REFRESH MATERIALIZED VIEW {}", m.sql()))
                        .await
                        .map_err(PgError::sql(format!(
                            "refreshing materialized view {}",
                            m.display()
                        )))?;
                    report.matviews += 1;
                }
            }
        }
        if schema && everything {
            self.progress.event(Event::Phase(
                "applying the database's owner, privileges and settings",
            ));
            let target = self.config.get_dbname().unwrap_or("postgres");
            for (kind, sql) in database_statements(self.manifest, opts) {
                if kind == PRIVILEGES && opts.erasure.is_some() {
                    // Applied once erasures are re-applied (they open the
                    // database to the roles they name).
                    continue;
                }
                let sql = sql.replace(DATABASE_MARKER, &quote_ident(target));
                if let Err(e) = client.batch_execute(&sql).await {
                    report.failures.push(Failure {
                        kind: kind.into(),
                        message: format!("{sql}: {}", db_reason(&e)),
                    });
                }
            }
        }
        Ok(())
    }
}

impl Work<'_> {
    /// The index builds of the big tables among `plain` (see
    /// [`loader::EARLY_BUILD_MIN_BYTES`]), to run as soon as each is loaded.
    fn early_builds(&self, plain: &[&TableData], flags: &[&str]) -> Result<loader::EarlyBuilds> {
        let mut by_table = std::collections::HashMap::new();
        for t in plain {
            if loader::stored_size(self.backup, self.dir, t)? < loader::EARLY_BUILD_MIN_BYTES {
                continue;
            }
            let entries: Vec<TocEntry> =
                toc::index_builds(self.entries, &t.name, &self.manifest.indexes)
                    .into_iter()
                    .cloned()
                    .collect();
            if !entries.is_empty() {
                by_table.insert(t.name.display(), entries);
            }
        }
        Ok(loader::EarlyBuilds {
            tools: self.tools.clone(),
            dump: self.dump.to_path_buf(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
            by_table,
        })
    }
}

/// Stands for the target database's quoted name in
/// [`database_statements`]; replaced before the statements run.
pub(crate) const DATABASE_MARKER: &str = "@@lifeboat_database@@";

/// The failure kind of [`database_statements`]' GRANT and REVOKE statements.
const PRIVILEGES: &str = "database privileges";

/// The statements that give a database the backup's owner, privileges,
/// settings, role settings and comment, each with its failure kind, naming
/// the database as [`DATABASE_MARKER`].
pub(crate) fn database_statements(
    manifest: &Manifest,
    opts: &LogicalRestoreOptions,
) -> Vec<(&'static str, String)> {
    let db = DATABASE_MARKER;
    let mut out = Vec::new();
    let state = manifest.database_state.clone().unwrap_or_default();
    let has_state = manifest.database_state.is_some();
    if has_state && !opts.no_owner && !state.owner.is_empty() {
        out.push((
            "database owner",
            format!("ALTER DATABASE {db} OWNER TO {}", quote_ident(&state.owner)),
        ));
    }
    if has_state
        && !opts.no_privileges
        && let Some(grants) = &state.grants
    {
        out.push((
            PRIVILEGES,
            format!("REVOKE ALL ON DATABASE {db} FROM PUBLIC"),
        ));
        if !opts.no_owner && !state.owner.is_empty() {
            out.push((
                PRIVILEGES,
                format!(
                    "REVOKE ALL ON DATABASE {db} FROM {}",
                    quote_ident(&state.owner)
                ),
            ));
        }
        for g in grants {
            let who = if g.grantee == "PUBLIC" {
                "PUBLIC".to_string()
            } else {
                quote_ident(&g.grantee)
            };
            let plain: Vec<&str> = g
                .privileges
                .iter()
                .filter(|p| !g.grantable.contains(p))
                .map(String::as_str)
                .collect();
            if !plain.is_empty() {
                out.push((
                    PRIVILEGES,
                    format!("GRANT {} ON DATABASE {db} TO {who}", plain.join(", ")),
                ));
            }
            if !g.grantable.is_empty() {
                out.push((
                    PRIVILEGES,
                    format!(
                        "GRANT {} ON DATABASE {db} TO {who} WITH GRANT OPTION",
                        g.grantable.join(", ")
                    ),
                ));
            }
        }
    }
    for s in &manifest.settings {
        if let Some(sql) = setting_sql(db, None, s) {
            out.push(("database setting", sql));
        }
    }
    for r in &state.role_settings {
        for s in &r.settings {
            if let Some(sql) = setting_sql(db, Some(&r.role), s) {
                out.push(("role setting", sql));
            }
        }
    }
    if let Some(c) = &state.comment {
        out.push((
            "comment",
            format!("COMMENT ON DATABASE {db} IS {}", quote_literal(c)),
        ));
    }
    out
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

pub(crate) fn write_list(entries: &[&TocEntry]) -> Result<tempfile::NamedTempFile> {
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

/// An error `pg_restore` printed, with the command that failed.
#[derive(Clone, Debug)]
pub(crate) struct RestoreError {
    /// The error line.
    pub message: String,
    /// The command, as `pg_restore` quoted it (its first line).
    pub command: String,
}

impl RestoreError {
    /// What kind of object the failed command was about.
    pub fn kind(&self) -> &'static str {
        let c = self.command.trim().to_ascii_uppercase();
        if c.contains(" OWNER TO ") {
            "owner"
        } else if c.starts_with("GRANT ")
            || c.starts_with("REVOKE ")
            || c.starts_with("ALTER DEFAULT PRIVILEGES")
        {
            "privileges"
        } else if c.starts_with("CREATE POLICY") || c.contains("ROW LEVEL SECURITY") {
            "policy"
        } else if c.starts_with("COMMENT ON EXTENSION") || c.starts_with("CREATE EXTENSION") {
            "extension"
        } else if c.starts_with("COMMENT ON") || c.starts_with("SECURITY LABEL") {
            "comment"
        } else if c.starts_with("CREATE TRIGGER") || c.starts_with("CREATE CONSTRAINT TRIGGER") {
            "trigger"
        } else if c.starts_with("CREATE INDEX") || c.starts_with("CREATE UNIQUE INDEX") {
            "index"
        } else if c.contains(" ADD CONSTRAINT ") {
            "constraint"
        } else if c.starts_with("CREATE RULE") {
            "rule"
        } else if c.starts_with("CREATE EVENT TRIGGER") {
            "event trigger"
        } else {
            "schema object"
        }
    }

    /// The error and its command, in one line.
    pub fn describe(&self) -> String {
        let message = self
            .message
            .split("ERROR:")
            .nth(1)
            .map(str::trim)
            .unwrap_or(self.message.as_str());
        if self.command.is_empty() {
            message.to_string()
        } else {
            format!("{}: {message}", self.command.trim().trim_end_matches(';'))
        }
    }

    /// The error as a reported failure.
    pub fn failure(self) -> Failure {
        Failure {
            kind: self.kind().into(),
            message: self.describe(),
        }
    }
}

/// What `pg_restore` printed.
pub(crate) struct RestoreOutput {
    pub stdout: String,
    /// Every error, with the command that failed.
    pub errors: Vec<RestoreError>,
    stderr: String,
    success: bool,
}

impl RestoreOutput {
    /// The output, when `pg_restore` ran without any error.
    pub fn clean(self, what: &str) -> Result<String> {
        if self.success && self.errors.is_empty() {
            return Ok(self.stdout);
        }
        Err(PgError::Command(format!(
            "{what} failed: {}",
            if self.errors.is_empty() {
                self.stderr.trim().to_string()
            } else {
                self.errors
                    .iter()
                    .map(RestoreError::describe)
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        )))
    }
}

/// Runs `pg_restore` on `file`, against the target when `connect`; every
/// error it reports is returned with the command that failed (it goes on
/// past errors, as it does by default).
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
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = stderr.lines().collect();
    let mut errors = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !line.contains("error:") {
            continue;
        }
        // The next line usually names the command that failed.
        let command = match lines.get(i + 1) {
            Some(n) if n.starts_with("Command was:") => {
                n.trim_start_matches("Command was:").trim().to_string()
            }
            _ => String::new(),
        };
        errors.push(RestoreError {
            message: line.to_string(),
            command,
        });
    }
    Ok(RestoreOutput {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        errors,
        stderr,
        success: out.status.success(),
    })
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
    no_owner: bool,
    failures: &mut Vec<Failure>,
) -> Result<u64> {
    for lo in &manifest.large_objects {
        let data = backup
            .read_file(repo, &large_object_path(dir, lo.oid))
            .await?;
        client
            .query_one("SELECT lo_from_bytea($1, $2)", &[&lo.oid, &data])
            .await
            .map_err(PgError::sql(format!("creating large object {}", lo.oid)))?;
        if no_owner || lo.owner.is_empty() {
            continue;
        }
        if let Err(e) = client
            .batch_execute(&format!(
                "ALTER LARGE OBJECT {} OWNER TO {}",
                lo.oid,
                quote_ident(&lo.owner)
            ))
            .await
        {
            failures.push(Failure {
                kind: "large object owner".into(),
                message: format!(
                    "large object {} (owner {}): {}",
                    lo.oid,
                    lo.owner,
                    db_reason(&e)
                ),
            });
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

/// `ALTER DATABASE … SET` (or `ALTER ROLE … IN DATABASE … SET` with a
/// role) for one `name=value` setting; `database` is already quoted.
pub(crate) fn setting_sql(database: &str, role: Option<&str>, setting: &str) -> Option<String> {
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
    Some(match role {
        None => format!("ALTER DATABASE {database} SET {name} = {value}"),
        Some(r) => format!(
            "ALTER ROLE {} IN DATABASE {database} SET {name} = {value}",
            quote_ident(r)
        ),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_quote_lists_and_values() {
        assert_eq!(
            setting_sql("\"app\"", None, "search_path=\"$user\", public").as_deref(),
            Some("ALTER DATABASE \"app\" SET search_path = '$user', 'public'")
        );
        assert_eq!(
            setting_sql("\"app\"", Some("anon"), "statement_timeout=3s").as_deref(),
            Some("ALTER ROLE \"anon\" IN DATABASE \"app\" SET statement_timeout = '3s'")
        );
        assert_eq!(setting_sql("\"app\"", None, "garbage"), None);
        assert_eq!(split_list("\"a,\"\"b\", c"), ["a,\"b", "c"]);
        assert_eq!(split_list("\"\""), [""]);
    }

    #[test]
    fn pg_restore_errors_are_classified_by_what_failed() {
        let e = |command: &str| RestoreError {
            message:
                "pg_restore: error: could not execute query: ERROR:  role \"x\" does not exist"
                    .into(),
            command: command.into(),
        };
        assert_eq!(e("ALTER TABLE public.t OWNER TO x;").kind(), "owner");
        assert_eq!(
            e("GRANT SELECT ON TABLE public.t TO x;").kind(),
            "privileges"
        );
        assert_eq!(
            e("CREATE POLICY p ON public.t TO x USING (true);").kind(),
            "policy"
        );
        assert_eq!(
            e("CREATE INDEX i ON public.t USING btree (a);").kind(),
            "index"
        );
        assert_eq!(
            e("ALTER TABLE ONLY public.t ADD CONSTRAINT c CHECK (a > 0);").kind(),
            "constraint"
        );
        assert_eq!(
            e("CREATE EXTENSION IF NOT EXISTS postgis;").kind(),
            "extension"
        );
        assert_eq!(
            e("GRANT SELECT ON TABLE public.t TO x;").describe(),
            "GRANT SELECT ON TABLE public.t TO x: role \"x\" does not exist"
        );
    }

    #[test]
    fn database_state_becomes_statements_that_can_be_opted_out_of() {
        let manifest = Manifest {
            settings: vec!["work_mem=12MB".into()],
            database_state: Some(super::super::DatabaseState {
                owner: "app_owner".into(),
                grants: Some(vec![
                    super::super::DatabaseGrant {
                        grantee: "PUBLIC".into(),
                        privileges: vec!["TEMPORARY".into(), "CONNECT".into()],
                        grantable: vec![],
                    },
                    super::super::DatabaseGrant {
                        grantee: "anon".into(),
                        privileges: vec!["CONNECT".into()],
                        grantable: vec!["CONNECT".into()],
                    },
                ]),
                role_settings: vec![super::super::RoleSetting {
                    role: "anon".into(),
                    settings: vec!["statement_timeout=3s".into()],
                }],
                comment: Some("the app's".into()),
            }),
            ..Manifest::default()
        };
        let all: Vec<String> = database_statements(&manifest, &LogicalRestoreOptions::default())
            .into_iter()
            .map(|(_, s)| s.replace(DATABASE_MARKER, "\"copy\""))
            .collect();
        assert_eq!(
            all,
            [
                "ALTER DATABASE \"copy\" OWNER TO \"app_owner\"",
                "REVOKE ALL ON DATABASE \"copy\" FROM PUBLIC",
                "REVOKE ALL ON DATABASE \"copy\" FROM \"app_owner\"",
                "GRANT TEMPORARY, CONNECT ON DATABASE \"copy\" TO PUBLIC",
                "GRANT CONNECT ON DATABASE \"copy\" TO \"anon\" WITH GRANT OPTION",
                "ALTER DATABASE \"copy\" SET work_mem = '12MB'",
                "ALTER ROLE \"anon\" IN DATABASE \"copy\" SET statement_timeout = '3s'",
                "COMMENT ON DATABASE \"copy\" IS 'the app''s'",
            ]
        );
        let opted_out = database_statements(
            &manifest,
            &LogicalRestoreOptions {
                no_owner: true,
                no_privileges: true,
                ..LogicalRestoreOptions::default()
            },
        );
        assert_eq!(opted_out.len(), 3, "{opted_out:?}");
    }
}
