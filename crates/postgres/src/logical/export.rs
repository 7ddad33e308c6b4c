//! `lifeboat export`: writes a logical backup as an ordinary plain SQL dump
//! that `psql` loads without lifeboat, so nobody is locked in.
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
    let dump_file = tempfile::Builder::new()
        .prefix("lifeboat-schema-")
        .suffix(".dump")
        .tempfile()
        .map_err(|e| PgError::io(std::env::temp_dir(), e))?;
    let dump = backup.read_file(repo, &dir.join("schema.dump")).await?;
    tokio::fs::write(dump_file.path(), &dump)
        .await
        .map_err(|e| PgError::io(dump_file.path(), e))?;
    let no_config = tokio_postgres::Config::new();
    let section = |s: &'static str| {
        let (tools, config, path) = (&tools, &no_config, dump_file.path());
        async move {
            run_pg_restore(tools, config, &[s, "--file=-"], path, None, false)
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
        let cols = t
            .columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let header = if cols.is_empty() {
            format!(
                "\n--\n-- Data for {}\n--\n\nCOPY {} FROM stdin;\n",
                t.name.display(),
                t.name.sql()
            )
        } else {
            format!(
                "\n--\n-- Data for {}\n--\n\nCOPY {} ({cols}) FROM stdin;\n",
                t.name.display(),
                t.name.sql()
            )
        };
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
