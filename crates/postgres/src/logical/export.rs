//! `lifeboat export`: writes a logical backup as an ordinary dump that
//! `psql` (plain SQL) or `pg_restore` (custom format) loads without
//! lifeboat, so nobody is locked in.
//!
//! The dump is assembled in the order `pg_dump` uses: the schema's
//! pre-data section (printed by `pg_restore --file=-`), each table's rows
//! as `COPY … FROM stdin` blocks, sequence values, large objects, the
//! post-data section, and `REFRESH MATERIALIZED VIEW` for the views that
//! were populated.

use std::path::PathBuf;

use lifeboat_repo::Repository;
use lifeboat_repo::progress::{DynProgress, Event};
use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::load::{run_pg_restore, setval_sql};
use super::tools::Tools;
use super::{OpenedBackup, database_dir, large_object_path, part_path, quote_ident};
use crate::error::{PgError, Result};

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
    let section = |s: &'static str| {
        let (tools, path) = (&tools, dump_file.path());
        async move {
            run_pg_restore(tools, None, &[s, "--file=-"], path, None)
                .await
                .map(|o| o.stdout)
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
    let pre = section("--section=pre-data").await?;
    counted.put(pre.as_bytes()).await?;

    progress.event(Event::Phase("writing table data"));
    for t in &manifest.tables {
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
        let mut sql = format!(
            "\nSELECT pg_catalog.lo_create('{oid}');\nALTER LARGE OBJECT {oid} OWNER TO {};\n",
            quote_ident(&lo.owner),
            oid = lo.oid
        );
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
    let cluster = crate::scratch::ScratchCluster::create(bin, "lifeboat-export-").await?;
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
    let admin = crate::sql::config(Some(&server.conninfo("postgres")), None)?;
    let client = crate::sql::connect(&admin).await?;
    // Roles first, so owners and grants come back as they were.
    if backup.logical.roles {
        let roles = backup
            .read_file(repo, std::path::Path::new("roles.sql"))
            .await?;
        for statement in String::from_utf8_lossy(&roles).split(";\n") {
            // Leave out comments and psql meta-commands (`\restrict`).
            let sql: Vec<&str> = statement
                .lines()
                .filter(|l| !l.starts_with("--") && !l.starts_with('\\'))
                .collect();
            let sql = sql.join("\n");
            if !sql.trim().is_empty() {
                // The cluster's own superuser exists already: its CREATE fails.
                let _ = client.batch_execute(&sql).await;
            }
        }
    }
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
    progress.event(Event::Phase("writing the custom-format dump"));
    let tools = Tools::find(opts.pg_bin.as_deref(), backup.logical.version_num / 10000).await?;
    let target = crate::sql::config(Some(&server.conninfo(&manifest.database)), None)?;
    let (conninfo, _) = super::tools::libpq_conninfo(&target);
    let mut cmd = tools.command("pg_dump");
    cmd.args(["--format=custom", "--no-password", "--dbname"])
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
