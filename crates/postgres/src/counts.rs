//! Exact row counts of every user table of a database, for drills to
//! compare with what a backup recorded.

use tokio_postgres::Client;

use crate::error::{PgError, Result};
use crate::logical::{NOT_EXTENSION_MEMBER, USER_SCHEMAS, qualified_names, quote_ident};

/// `schema.table` and its row count, for every ordinary table (partitions
/// counted as themselves, not through their parent) outside the system
/// schemas and extensions, in name order.
pub async fn exact_row_counts(client: &Client) -> Result<Vec<(String, u64)>> {
    let tables = qualified_names(
        client,
        &format!(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND {USER_SCHEMAS} AND {NOT_EXTENSION_MEMBER} ORDER BY 1, 2"
        ),
        "listing tables",
    )
    .await?;
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        let sql = format!(
            "SELECT count(*) FROM ONLY {}.{}",
            quote_ident(&t.schema),
            quote_ident(&t.name)
        );
        let what = format!("counting rows of {}.{}", t.schema, t.name);
        let row = client
            .query_one(&sql, &[])
            .await
            .map_err(PgError::sql(what.clone()))?;
        let n: i64 = row.try_get(0).map_err(PgError::sql(what))?;
        out.push((format!("{}.{}", t.schema, t.name), n.max(0) as u64));
    }
    Ok(out)
}
