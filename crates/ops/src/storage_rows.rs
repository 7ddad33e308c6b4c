//! Pairing a bucket with the database rows that name its objects, as
//! Supabase's `storage.objects` does (`bucket_id`, `name`): after a bucket
//! or database restore, rows whose object is missing and objects no row
//! names are what an application would trip over.

use std::collections::BTreeSet;

use lifeboat_postgres::{PgError, sql};
use serde::Serialize;

use crate::error::Result;

/// The table and columns that name a bucket's objects.
#[derive(Clone, Debug)]
pub struct ObjectsTable {
    /// `schema.table` (default `storage.objects`).
    pub table: String,
    /// The bucket's id as the rows carry it.
    pub bucket_id: String,
}

/// What pairing found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Pairing {
    /// The table read.
    pub table: String,
    /// The bucket id matched.
    pub bucket_id: String,
    /// Rows of that bucket.
    pub rows: u64,
    /// Objects compared.
    pub objects: u64,
    /// Names in rows with no object (sorted).
    pub rows_without_objects: Vec<String>,
    /// Objects no row names (sorted).
    pub objects_without_rows: Vec<String>,
}

impl Pairing {
    /// True when every row has its object and every object its row.
    pub fn is_clean(&self) -> bool {
        self.rows_without_objects.is_empty() && self.objects_without_rows.is_empty()
    }
}

/// Reads the names of `table`'s rows for the bucket through `conninfo`
/// and compares them with `keys`.
pub async fn pair<'a>(
    conninfo: &str,
    table: &ObjectsTable,
    keys: impl Iterator<Item = &'a str>,
) -> Result<Pairing> {
    let config = sql::config(Some(conninfo), None)?;
    let client = sql::connect(&config).await?;
    let (schema, name) = table
        .table
        .split_once('.')
        .unwrap_or(("storage", table.table.as_str()));
    let query = format!(
        "SELECT name FROM {}.{} WHERE bucket_id = $1 AND name IS NOT NULL",
        lifeboat_postgres::logical::quote_ident(schema),
        lifeboat_postgres::logical::quote_ident(name)
    );
    let what = format!("reading {} for bucket {:?}", table.table, table.bucket_id);
    let rows = client
        .query(&query, &[&table.bucket_id])
        .await
        .map_err(PgError::sql(what))?;
    let names: BTreeSet<String> = rows.iter().filter_map(|r| r.try_get(0).ok()).collect();
    let objects: BTreeSet<&str> = keys.collect();
    Ok(Pairing {
        table: table.table.clone(),
        bucket_id: table.bucket_id.clone(),
        rows: names.len() as u64,
        objects: objects.len() as u64,
        rows_without_objects: names
            .iter()
            .filter(|n| !objects.contains(n.as_str()))
            .cloned()
            .collect(),
        objects_without_rows: objects
            .iter()
            .filter(|k| !names.contains(**k))
            .map(|k| k.to_string())
            .collect(),
    })
}
