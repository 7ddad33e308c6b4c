//! `lifeboat export`: writes a logical backup as an ordinary dump that
//! `psql` (plain SQL) or `pg_restore` (custom format) loads without
//! lifeboat, so nobody is locked in.
//!
//! The plain dump is assembled in the order `pg_dump` uses, with what
//! `pg_dumpall --roles-only` and `pg_dump --create` would add around it:
//! the roles (created only where missing), the schema's pre-data section
//! (printed by `pg_restore --file=-`), each table's rows as `COPY … FROM
//! stdin` blocks (extensions' configuration tables included), sequence
//! values, large objects, the post-data section, `REFRESH MATERIALIZED
//! VIEW` for the views that were populated, and the database's owner,
//! privileges and settings, applied to whichever database the script runs
//! in. The custom format is `pg_dump --create -Fc` of the backup rebuilt in
//! a throwaway cluster; the roles go to a script of their own
//! ([`export_roles`]), as with `pg_dumpall --roles-only`.

use std::path::PathBuf;

use lifeboat_repo::Repository;
use lifeboat_repo::progress::{DynProgress, Event};
use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::load::{
    DATABASE_MARKER, LogicalRestoreOptions, database_statements, run_pg_restore, setval_sql,
};
use super::tools::Tools;
use super::{
    OpenedBackup, database_dir, large_object_path, part_path, quote_ident, quote_literal, roles,
};
use crate::error::{PgError, Result};

/// What an export leaves out.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExportOptions {
    /// The roles (plain format).
    pub no_roles: bool,
    /// Owners (`ALTER … OWNER TO`).
    pub no_owner: bool,
    /// Privileges (`GRANT`/`REVOKE`).
    pub no_privileges: bool,
}

/// The backup's roles as a script that creates only those missing.
async fn roles_script(repo: &Repository, backup: &OpenedBackup) -> Result<String> {
    if !backup.logical.roles {
        return Ok("-- The backup holds no roles (its user could not read them).\n\n".to_string());
    }
    let text = backup
        .read_file(repo, std::path::Path::new("roles.sql"))
        .await?;
    Ok(roles::create_missing_script(&roles::parse(
        &String::from_utf8_lossy(&text),
    )))
}

/// Writes the roles of snapshot `reference` as a psql script that creates
/// each role only where it is missing (with its attributes, settings and
/// memberships); it never changes a role that exists.
pub async fn export_roles(
    repo: &Repository,
    reference: &str,
    out: &mut (impl AsyncWrite + Unpin),
    progress: DynProgress,
) -> Result<ExportSummary> {
    progress.event(Event::Phase("reading the backup"));
    let backup = OpenedBackup::open(repo, reference, &progress).await?;
    let script = roles_script(repo, &backup).await?;
    out.write_all(script.as_bytes())
        .await
        .map_err(|e| PgError::io("the export output", e))?;
    out.flush()
        .await
        .map_err(|e| PgError::io("the export output", e))?;
    Ok(ExportSummary {
        snapshot: backup.entry.id.to_hex(),
        database: String::new(),
        tables: 0,
        rows: 0,
        bytes: script.len() as u64,
    })
}

/// What was exported.
#[derive(Clone, Debug, Serialize)]
pub struct ExportSummary {
    /// The snapshot.
    pub snapshot: String,
    /// The database of the backup.
    pub database: String,
    /// Tables written.
    pub tables: u64,
    /// Rows written.
    pub rows: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Writes snapshot `reference` (database `database`, or its only one) as a
/// plain SQL dump to `out`.
pub async fn export_plain(
    repo: &Repository,
    reference: &str,
    database: Option<&str>,
    pg_bin: Option<PathBuf>,
    options: ExportOptions,
    out: &mut (impl AsyncWrite + Unpin),
    progress: DynProgress,
) -> Result<ExportSummary> {
    progress.event(Event::Phase("reading the backup"));
    let backup = OpenedBackup::open(repo, reference, &progress).await?;
    let name = backup.database(database)?;
    let manifest = backup.manifest(repo, &name).await?;
    let dir = database_dir(&name);
    let tools = Tools::find(pg_bin.as_deref(), backup.logical.version_num / 10000).await?;
    let dump_file = backup.schema_file(repo, &name).await?;
    let mut flags: Vec<&'static str> = vec!["--file=-"];
    if options.no_owner {
        flags.push("--no-owner");
    }
    if options.no_privileges {
        flags.push("--no-privileges");
    }
    let section = |s: &'static str| {
        let (tools, path) = (&tools, dump_file.path());
        let mut args = vec![s];
        args.extend(&flags);
        async move {
            run_pg_restore(tools, None, &args, path, None)
                .await?
                .clean(&format!("pg_restore {s}"))
        }
    };
    let mut summary = ExportSummary {
        snapshot: backup.entry.id.to_hex(),
        database: name.clone(),
        tables: 0,
        rows: 0,
        bytes: 0,
    };
    let mut counted = Counting {
        inner: out,
        bytes: 0,
    };
    if !options.no_roles {
        let roles = roles_script(repo, &backup).await?;
        counted.put(roles.as_bytes()).await?;
    }
    let pre = section("--section=pre-data").await?;
    counted.put(pre.as_bytes()).await?;

    progress.event(Event::Phase("writing table data"));
    for t in super::load_order(&manifest.tables) {
        let header = format!(
            "\n--\n-- Data for {}\n--\n\nCOPY {} FROM stdin;\n",
            t.name.display(),
            t.copy_target()
        );
        counted.put(header.as_bytes()).await?;
        for p in &t.parts {
            let path = part_path(&dir, &p.file);
            let node = backup.node(&path)?;
            let label = path.display().to_string();
            for id in &node.content {
                let blob = repo.read_blob(&backup.index, id, &label).await?;
                counted.put(&blob).await?;
            }
        }
        counted.put(b"\\.\n\n").await?;
        summary.tables += 1;
        summary.rows += t.rows;
    }
    let mut tail = String::new();
    for s in &manifest.sequences {
        tail.push_str(&setval_sql(s));
        tail.push('\n');
    }
    counted.put(tail.as_bytes()).await?;
    for lo in &manifest.large_objects {
        let data = backup
            .read_file(repo, &large_object_path(&dir, lo.oid))
            .await?;
        let mut sql = format!("\nSELECT pg_catalog.lo_create('{}');\n", lo.oid);
        if !options.no_owner && !lo.owner.is_empty() {
            sql.push_str(&format!(
                "ALTER LARGE OBJECT {} OWNER TO {};\n",
                lo.oid,
                quote_ident(&lo.owner)
            ));
        }
        for (i, piece) in data.chunks(1 << 20).enumerate() {
            sql.push_str(&format!(
                "SELECT pg_catalog.lo_put('{}', {}, '\\x{}');\n",
                lo.oid,
                i << 20,
                hex::encode(piece)
            ));
        }
        counted.put(sql.as_bytes()).await?;
    }
    let post = section("--section=post-data").await?;
    counted.put(post.as_bytes()).await?;
    let mut refresh = String::new();
    for m in &manifest.matviews {
        refresh.push_str(&format!("REFRESH MATERIALIZED VIEW {};\n", m.sql()));
    }
    counted.put(refresh.as_bytes()).await?;
    // The database's own state, for whichever database the script runs in.
    let restore_opts = LogicalRestoreOptions {
        no_owner: options.no_owner,
        no_privileges: options.no_privileges,
        ..LogicalRestoreOptions::default()
    };
    let mut state = String::from(
        "\n--\n-- The database's owner, privileges and settings (applied to the database this runs in)\n--\n\n",
    );
    for (_, sql) in database_statements(&manifest, &restore_opts) {
        state.push_str(&format!(
            "DO $lifeboat$ BEGIN EXECUTE replace({}, {}, quote_ident(current_database())); END $lifeboat$;\n",
            quote_literal(&sql),
            quote_literal(DATABASE_MARKER)
        ));
    }
    counted.put(state.as_bytes()).await?;
    counted
        .inner
        .flush()
        .await
        .map_err(|e| PgError::io("the export output", e))?;
    summary.bytes = counted.bytes;
    Ok(summary)
}

/// The output, counting what is written to it.
struct Counting<'a, W> {
    inner: &'a mut W,
    bytes: u64,
}

impl<W: AsyncWrite + Unpin> Counting<'_, W> {
    async fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.inner
            .write_all(bytes)
            .await
            .map_err(|e| PgError::io("the export output", e))?;
        self.bytes += bytes.len() as u64;
        Ok(())
    }
}

/// Writes snapshot `reference` as a custom-format dump (`pg_dump -Fc`) to
/// `output` (standard output when `None`), for `pg_restore`.
///
/// The custom format is `pg_dump`'s own, so the backup is rebuilt in a
/// throwaway cluster (`initdb` in a private temporary directory, a Unix
/// socket only, removed afterwards) and dumped from there by the matching
/// `pg_dump`. This needs PostgreSQL's server programs on this machine; the
/// plain format does not.
pub async fn export_custom(
    repo: &Repository,
    reference: &str,
    database: Option<&str>,
    pg_bin: Option<PathBuf>,
    output: Option<&std::path::Path>,
    progress: DynProgress,
) -> Result<ExportSummary> {
    use crate::server::PgBin;

    progress.event(Event::Phase("reading the backup"));
    let backup = OpenedBackup::open(repo, reference, &progress).await?;
    let name = backup.database(database)?;
    let manifest = backup.manifest(repo, &name).await?;
    let major = backup.logical.version_num / 10000;
    let bin = match &pg_bin {
        Some(d) => PgBin::at(d),
        None => PgBin::find(Some(major)),
    };
    if bin.program("initdb").is_absolute() && !bin.program("initdb").exists() {
        return Err(PgError::Setup(format!(
            "--format custom rebuilds the database in a throwaway cluster and needs PostgreSQL's server programs: {} not found (use --format plain, or install postgresql-{major})",
            bin.program("initdb").display()
        )));
    }
    progress.event(Event::Phase("creating a throwaway cluster"));
    let databases: Vec<(String, Vec<String>)> = backup
        .logical
        .databases
        .iter()
        .filter(|d| d.name == name)
        .map(|d| (d.name.clone(), d.extensions.clone()))
        .collect();
    let settings = crate::scratch::settings_for_extensions(&bin, &databases);
    let cluster =
        crate::scratch::ScratchCluster::create_with(bin, "lifeboat-export-", settings).await?;
    let result =
        rebuild_and_dump(repo, &backup, &manifest, &cluster.server, output, &progress).await;
    let _ = cluster.stop().await;
    let (tables, rows) = result?;
    Ok(ExportSummary {
        snapshot: backup.entry.id.to_hex(),
        database: name,
        tables,
        rows,
        bytes: output
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len()),
    })
}

async fn rebuild_and_dump(
    repo: &Repository,
    backup: &OpenedBackup,
    manifest: &super::Manifest,
    server: &crate::server::Server,
    output: Option<&std::path::Path>,
    progress: &DynProgress,
) -> Result<(u64, u64)> {
    // The cluster's own maintenance database, so that any database name of
    // the backup (`postgres` too) can be created afresh.
    let admin = crate::sql::config(Some(&server.conninfo("template1")), None)?;
    let client = crate::sql::connect(&admin).await?;
    client
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {}",
            quote_ident(&manifest.database)
        ))
        .await
        .map_err(crate::error::PgError::sql(
            "making room for the database in the throwaway cluster",
        ))?;
    let encoding = if manifest.encoding.is_empty() {
        "UTF8".to_string()
    } else {
        manifest.encoding.clone()
    };
    let locale = if encoding == "UTF8" {
        ""
    } else {
        " LOCALE 'C'"
    };
    client
        .batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE template0 ENCODING {}{locale}",
            quote_ident(&manifest.database),
            super::quote_literal(&encoding)
        ))
        .await
        .map_err(crate::error::PgError::sql(
            "creating the database in the throwaway cluster",
        ))?;
    let opts = super::load::LogicalRestoreOptions {
        conninfo: Some(server.conninfo(&manifest.database)),
        database: Some(manifest.database.clone()),
        jobs: 2,
        pg_bin: server.bin.program("pg_restore").parent().map(PathBuf::from),
        ..Default::default()
    };
    let report = super::load::restore_opened(
        repo,
        backup,
        &opts,
        progress.clone(),
        std::time::Instant::now(),
    )
    .await?;
    if !report.failures.is_empty() {
        return Err(PgError::Command(format!(
            "the backup could not be rebuilt whole in the throwaway cluster ({}): {}",
            report.failure_summary(),
            report
                .failures
                .iter()
                .map(|f| f.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    progress.event(Event::Phase("writing the custom-format dump"));
    let tools = Tools::find(opts.pg_bin.as_deref(), backup.logical.version_num / 10000).await?;
    let target = crate::sql::config(Some(&server.conninfo(&manifest.database)), None)?;
    let (conninfo, _) = super::tools::libpq_conninfo(&target);
    let mut cmd = tools.command("pg_dump");
    // With --create, pg_restore --create brings back the database's owner,
    // privileges and settings too; without it they are simply skipped.
    cmd.args(["--format=custom", "--create", "--no-password", "--dbname"])
        .arg(conninfo);
    match output {
        Some(p) => {
            cmd.arg("--file").arg(p);
        }
        None => {
            cmd.stdout(std::process::Stdio::inherit());
        }
    }
    let out = cmd
        .stderr(std::process::Stdio::piped())
        .output()
        .await
        .map_err(|e| PgError::Command(format!("cannot run pg_dump: {e}")))?;
    if !out.status.success() {
        return Err(PgError::Command(format!(
            "pg_dump of the rebuilt database failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok((
        report.tables.len() as u64,
        report.tables.iter().map(|t| t.restored).sum(),
    ))
}
