//! Logical backups over a plain SQL connection (managed PostgreSQL).
//!
//! A logical backup of a database is, inside the snapshot tree:
//!
//! ```text
//! databases/<name>/schema.dump        pg_dump --schema-only, custom format
//! databases/<name>/manifest.json      what the restore needs (see [`Manifest`])
//! databases/<name>/tables/<oid>.<n>   each table's rows as COPY text, in parts
//! databases/<name>/large-objects/<oid>
//! roles.sql                           pg_dumpall --roles-only, when readable
//! ```
//!
//! Every database is read in one exported snapshot shared by parallel
//! workers; every table is its own stream, so unchanged tables (and
//! unchanged regions of changed ones) deduplicate across days and a single
//! table can be restored alone.
//!
//! - [`dump`]: the backup;
//! - [`load`]: the restore into a database, whole or selective;
//! - [`export`]: an ordinary plain SQL dump that `psql` loads without lifeboat;
//! - [`inventory`]: counting objects by kind, to compare after a restore;
//! - [`roles`]: the roles of `roles.sql`, created where missing;
//! - [`undo`]: putting a target back as it was when a restore fails;
//! - [`toc`]: reading `pg_restore --list` to select schema entries;
//! - [`tools`]: finding a version-matched `pg_dump` / `pg_restore`.

pub mod dump;
pub mod export;
mod gate;
pub mod inventory;
pub mod load;
mod loader;
pub mod roles;
pub mod toc;
pub mod tools;
pub mod undo;

use std::path::{Path, PathBuf};

use futures::StreamExt;
use lifeboat_format::snapshot::{LogicalBackup, Snapshot, SourceKind};
use lifeboat_repo::index::MasterIndex;
use lifeboat_repo::walk::PathFilter;
use lifeboat_repo::{Repository, SnapshotEntry};
use serde::{Deserialize, Serialize};

use crate::error::{PgError, Result};

/// Everything a restore needs to know about one database of a logical
/// backup, besides its schema dump and its data files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Manifest {
    /// Database name on the source server.
    pub database: String,
    /// Server encoding of the source database.
    pub encoding: String,
    /// The exported snapshot every worker read in.
    pub snapshot: String,
    /// Per-database settings (`ALTER DATABASE … SET`), as `name=value`.
    pub settings: Vec<String>,
    /// Tables with data.
    pub tables: Vec<TableData>,
    /// Sequence values at backup time.
    pub sequences: Vec<SequenceValue>,
    /// Indexes, with the table each belongs to (to select a table's indexes).
    pub indexes: Vec<IndexOf>,
    /// Materialized views that were populated (refreshed after a restore).
    pub matviews: Vec<QualifiedName>,
    /// Large objects.
    pub large_objects: Vec<LargeObject>,
    /// The database's own state beside its schema (owner, privileges,
    /// settings of roles in it, comment). `None` in backups made before it
    /// was recorded.
    pub database_state: Option<DatabaseState>,
    /// How many objects of each kind the database held (see
    /// [`inventory`]), compared after a restore. Empty in older backups.
    pub objects: std::collections::BTreeMap<String, u64>,
}

/// What `ALTER DATABASE`, `GRANT … ON DATABASE`, `ALTER ROLE … IN DATABASE`
/// and `COMMENT ON DATABASE` set: the parts of a database `pg_dump` leaves
/// out unless it creates the database.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseState {
    /// Owning role.
    pub owner: String,
    /// Privileges on the database, in order; `None`: the defaults.
    pub grants: Option<Vec<DatabaseGrant>>,
    /// `ALTER ROLE … IN DATABASE … SET`, per role, as `name=value`.
    pub role_settings: Vec<RoleSetting>,
    /// `COMMENT ON DATABASE`.
    pub comment: Option<String>,
}

/// Privileges one grantee holds on the database.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseGrant {
    /// The role, or `PUBLIC`.
    pub grantee: String,
    /// `CREATE`, `CONNECT`, `TEMPORARY`.
    pub privileges: Vec<String>,
    /// Privileges held with the grant option (a subset).
    pub grantable: Vec<String>,
}

/// A role's settings inside the database.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoleSetting {
    /// The role.
    pub role: String,
    /// `name=value` settings.
    pub settings: Vec<String>,
}

/// A schema-qualified name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default)]
pub struct QualifiedName {
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
}

impl QualifiedName {
    /// `"schema"."name"`, quoted for SQL.
    pub fn sql(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// `schema.name`, for people.
    pub fn display(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// One table's data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TableData {
    /// Object id on the source.
    pub oid: u32,
    /// Its name.
    #[serde(flatten)]
    pub name: QualifiedName,
    /// Columns in the COPY data, in order (generated columns are left out).
    pub columns: Vec<String>,
    /// Rows, exact, in the backup's snapshot.
    pub rows: u64,
    /// Sequences owned by the table's columns (serial and identity columns).
    pub owned_sequences: Vec<QualifiedName>,
    /// The parts of its data, in order.
    pub parts: Vec<DataPart>,
    /// For an extension's configuration table (`pg_extension_config_dump`):
    /// the extension. Only the rows it did not create itself are backed up.
    pub extension: String,
    /// For an extension's configuration table: the condition selecting the
    /// user's rows (`WHERE …`, as the extension declared it; empty: all).
    pub condition: String,
    /// For an extension's configuration table: the tables its foreign keys
    /// point to. The extension creates those keys itself, so its tables'
    /// rows are loaded parents first.
    pub references: Vec<QualifiedName>,
}

/// The tables in the order their rows can be loaded: extensions'
/// configuration tables first, each after the tables its foreign keys
/// point to, then every other table (whose keys come after the data).
pub fn load_order(tables: &[TableData]) -> Vec<&TableData> {
    let mut out: Vec<&TableData> = Vec::new();
    let mut pending: Vec<&TableData> = tables.iter().filter(|t| !t.extension.is_empty()).collect();
    while !pending.is_empty() {
        let ready = pending.iter().position(|t| {
            t.references
                .iter()
                .all(|r| r == &t.name || !pending.iter().any(|p| &p.name == r))
        });
        // A cycle cannot be ordered: the rest in their own order.
        let i = ready.unwrap_or(0);
        out.push(pending.remove(i));
    }
    out.extend(tables.iter().filter(|t| t.extension.is_empty()));
    out
}

impl TableData {
    /// The columns, quoted and comma-separated (empty for no columns).
    pub fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// What `COPY` reads or writes: the table with its column list (a table
    /// without columns has none).
    pub fn copy_target(&self) -> String {
        let cols = self.column_list();
        if cols.is_empty() {
            self.name.sql()
        } else {
            format!("{} ({cols})", self.name.sql())
        }
    }
}

/// One part of a table's data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DataPart {
    /// File name below `tables/`.
    pub file: String,
    /// Rows in it.
    pub rows: u64,
    /// Bytes of COPY text.
    pub bytes: u64,
}

/// A sequence's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SequenceValue {
    /// Its name.
    #[serde(flatten)]
    pub name: QualifiedName,
    /// `last_value`.
    pub last_value: i64,
    /// `is_called`.
    pub is_called: bool,
}

/// An index and its table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IndexOf {
    /// The index.
    pub index: QualifiedName,
    /// The table (or materialized view) it indexes.
    pub table: QualifiedName,
}

/// A large object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LargeObject {
    /// Its oid (kept on restore).
    pub oid: u32,
    /// Owning role.
    pub owner: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// SQL condition: schema `n` holds user data (not a system schema).
pub(crate) const USER_SCHEMAS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'";

/// SQL condition: relation `c` does not belong to an extension (CREATE
/// EXTENSION makes those; they are not dumped).
pub(crate) const NOT_EXTENSION_MEMBER: &str = "NOT EXISTS (SELECT 1 FROM pg_depend d \
    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')";

/// SQL condition: relation `c` is an extension's configuration table or
/// sequence (`pg_extension_config_dump`), whose user rows are data.
pub(crate) const EXTENSION_CONFIG: &str =
    "c.oid IN (SELECT unnest(extconfig) FROM pg_extension WHERE extconfig IS NOT NULL)";

/// Runs a query returning (schema, name) rows.
pub(crate) async fn qualified_names(
    client: &tokio_postgres::Client,
    sql: &str,
    what: &str,
) -> Result<Vec<QualifiedName>> {
    let rows = client.query(sql, &[]).await.map_err(PgError::sql(what))?;
    rows.iter()
        .map(|r| {
            Ok(QualifiedName {
                schema: r.try_get(0).map_err(PgError::sql(what))?,
                name: r.try_get(1).map_err(PgError::sql(what))?,
            })
        })
        .collect()
}

/// Quotes an identifier for SQL, always.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Quotes a string literal for SQL (standard_conforming_strings on).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The directory of database `name` in the snapshot tree. Names may hold any
/// character but `/`, which (with `%`) is percent-encoded.
pub fn database_dir(name: &str) -> PathBuf {
    let safe = name.replace('%', "%25").replace('/', "%2F");
    let safe = match safe.strip_prefix('.') {
        Some(rest) => format!("%2E{rest}"),
        None => safe,
    };
    Path::new("databases").join(safe)
}

/// Where a table part's data is stored, below the database directory.
pub fn part_path(db_dir: &Path, file: &str) -> PathBuf {
    db_dir.join("tables").join(file)
}

/// Where a large object is stored, below the database directory.
pub fn large_object_path(db_dir: &Path, oid: u32) -> PathBuf {
    db_dir.join("large-objects").join(oid.to_string())
}

/// A logical backup opened for reading: its snapshot, the index and the
/// file nodes of its tree.
pub struct OpenedBackup {
    /// The snapshot.
    pub entry: SnapshotEntry,
    /// Its metadata.
    pub logical: LogicalBackup,
    /// The repository index.
    pub index: std::sync::Arc<MasterIndex>,
    files: std::collections::HashMap<PathBuf, lifeboat_format::tree::Node>,
}

impl OpenedBackup {
    /// Finds the snapshot (`latest` = the newest logical backup) and reads
    /// its tree.
    pub async fn open(
        repo: &Repository,
        reference: &str,
        progress: &lifeboat_repo::progress::DynProgress,
    ) -> Result<Self> {
        let entry = if reference.trim() == "latest" {
            repo.list_snapshots(progress)
                .await?
                .into_iter()
                .rev()
                .find(|e| e.snapshot.source == SourceKind::PostgresLogical)
                .ok_or_else(|| {
                    PgError::Invalid(
                        "the repository holds no logical PostgreSQL backup (take one with `lifeboat backup postgres --logical`)".into(),
                    )
                })?
        } else {
            repo.find_snapshot(reference, progress).await?
        };
        let logical = logical_of(&entry.snapshot).ok_or_else(|| {
            PgError::Invalid(format!(
                "snapshot {} is a {} backup, not a logical PostgreSQL backup",
                entry.id.short(),
                entry.snapshot.source.as_str()
            ))
        })?;
        let index = repo.load_index(progress).await?.index;
        let label = format!("snapshot {}", entry.id.short());
        let files = repo
            .walk_snapshot(&index, &entry.snapshot.root, &PathFilter::default(), &label)
            .await?
            .into_iter()
            .filter(|e| e.node.kind == lifeboat_format::tree::NodeKind::File)
            .map(|e| (e.path, e.node))
            .collect();
        Ok(Self {
            entry,
            logical,
            index: std::sync::Arc::new(index),
            files,
        })
    }

    /// The database to restore: `name`, or the only one in the backup.
    pub fn database(&self, name: Option<&str>) -> Result<String> {
        let names: Vec<&str> = self
            .logical
            .databases
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        match (name, names.as_slice()) {
            (Some(n), _) if names.contains(&n) => Ok(n.to_string()),
            (Some(n), _) => Err(PgError::Invalid(format!(
                "snapshot {} holds no database {n:?}; it holds: {}",
                self.entry.id.short(),
                names.join(", ")
            ))),
            (None, [one]) => Ok(one.to_string()),
            (None, _) => Err(PgError::Invalid(format!(
                "snapshot {} holds several databases ({}); choose one with --database",
                self.entry.id.short(),
                names.join(", ")
            ))),
        }
    }

    /// The file node at `path`.
    pub fn node(&self, path: &Path) -> Result<&lifeboat_format::tree::Node> {
        self.files.get(path).ok_or_else(|| {
            PgError::Repo(lifeboat_repo::RepoError::Invalid(format!(
                "snapshot {} is incomplete: {} is missing from its tree",
                self.entry.id.short(),
                path.display()
            )))
        })
    }

    /// Reads a whole (small) file of the backup into memory.
    pub async fn read_file(&self, repo: &Repository, path: &Path) -> Result<Vec<u8>> {
        let node = self.node(path)?;
        let mut out = Vec::with_capacity(node.size as usize);
        let label = path.display().to_string();
        for id in &node.content {
            out.extend_from_slice(&repo.read_blob(&self.index, id, &label).await?);
        }
        Ok(out)
    }

    /// Database `name`'s schema dump, written to a private temporary file
    /// for `pg_restore` (removed when dropped).
    pub async fn schema_file(
        &self,
        repo: &Repository,
        name: &str,
    ) -> Result<tempfile::NamedTempFile> {
        let file = tempfile::Builder::new()
            .prefix("lifeboat-schema-")
            .suffix(".dump")
            .tempfile()
            .map_err(|e| PgError::io(std::env::temp_dir(), e))?;
        let dump = self
            .read_file(repo, &database_dir(name).join("schema.dump"))
            .await?;
        tokio::fs::write(file.path(), &dump)
            .await
            .map_err(|e| PgError::io(file.path(), e))?;
        Ok(file)
    }

    /// Checks, before anything is written anywhere, that every blob of the
    /// files at `paths` is in the index and that its pack is on storage.
    pub async fn check_present(&self, repo: &Repository, paths: &[PathBuf]) -> Result<()> {
        let mut packs = std::collections::BTreeMap::new();
        for path in paths {
            for id in &self.node(path)?.content {
                let loc = self.index.get(id).ok_or_else(|| {
                    PgError::Repo(lifeboat_repo::RepoError::MissingBlob {
                        id: *id,
                        needed_by: path.display().to_string(),
                    })
                })?;
                packs
                    .entry(self.index.pack(loc.pack).id)
                    .or_insert((*id, path.clone()));
            }
        }
        let checks = futures::stream::iter(packs)
            .map(|(pack, (blob, path))| async move {
                match repo
                    .storage()
                    .head(&lifeboat_repo::layout::pack(&pack))
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) if e.is_not_found() => {
                        Err(PgError::Repo(lifeboat_repo::RepoError::MissingBlob {
                            id: blob,
                            needed_by: format!(
                                "{} (its pack {} is missing from storage)",
                                path.display(),
                                pack.short()
                            ),
                        }))
                    }
                    Err(e) => Err(e.into()),
                }
            })
            .buffer_unordered(16);
        futures::pin_mut!(checks);
        while let Some(r) = checks.next().await {
            r?;
        }
        Ok(())
    }

    /// The manifest of database `name`.
    pub async fn manifest(&self, repo: &Repository, name: &str) -> Result<Manifest> {
        let path = database_dir(name).join("manifest.json");
        let bytes = self.read_file(repo, &path).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            PgError::Invalid(format!(
                "the manifest of database {name} in snapshot {} cannot be read: {e}",
                self.entry.id.short()
            ))
        })
    }
}

/// The logical-backup metadata of a snapshot, if it is one.
pub fn logical_of(s: &Snapshot) -> Option<LogicalBackup> {
    (s.source == SourceKind::PostgresLogical)
        .then(|| s.logical.clone())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_tables_load_parents_first_then_the_rest() {
        let t = |s: &str, n: &str, ext: &str, refs: &[(&str, &str)]| TableData {
            name: QualifiedName {
                schema: s.into(),
                name: n.into(),
            },
            extension: ext.into(),
            references: refs
                .iter()
                .map(|(s, n)| QualifiedName {
                    schema: s.to_string(),
                    name: n.to_string(),
                })
                .collect(),
            ..TableData::default()
        };
        let tables = [
            t("public", "a", "", &[]),
            t(
                "topology",
                "layer",
                "postgis_topology",
                &[("topology", "topology")],
            ),
            t("topology", "topology", "postgis_topology", &[]),
            t("cron", "job", "pg_cron", &[]),
        ];
        let order: Vec<String> = load_order(&tables)
            .iter()
            .map(|t| t.name.display())
            .collect();
        assert_eq!(
            order,
            [
                "topology.topology",
                "topology.layer",
                "cron.job",
                "public.a"
            ]
        );
    }

    #[test]
    fn quoting_and_dirs() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(database_dir("a/b%c"), Path::new("databases/a%2Fb%25c"));
        assert_eq!(database_dir(".."), Path::new("databases/%2E."));
        let q = QualifiedName {
            schema: "public".into(),
            name: "Order".into(),
        };
        assert_eq!(q.sql(), "\"public\".\"Order\"");
    }
}
