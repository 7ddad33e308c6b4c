//! Exact row counts of every user table of a database, for drills to
//! compare with what a backup recorded.

use tokio_postgres::Client;

use crate::error::{PgError, Result};
use crate::logical::{
    EXTENSION_CONFIG, NOT_EXTENSION_MEMBER, QualifiedName, USER_SCHEMAS, quote_ident,
};

/// `schema.table` and its row count, for every ordinary table (partitions
/// counted as themselves, not through their parent) outside the system
/// schemas and extensions, in name order. An extension's configuration
/// table counts the rows its filter selects: the user's rows, as a logical
/// backup records them.
pub async fn exact_row_counts(client: &Client) -> Result<Vec<(String, u64)>> {
    let rows = client
        .query(
            &format!(
                "SELECT n.nspname::text, c.relname::text, coalesce(x.condition, '') \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 LEFT JOIN LATERAL (SELECT e.extcondition[i] AS condition \
                       FROM pg_extension e, generate_subscripts(e.extconfig, 1) i \
                       WHERE e.extconfig[i] = c.oid LIMIT 1) x ON true \
                 WHERE c.relkind = 'r' AND {USER_SCHEMAS} AND ({NOT_EXTENSION_MEMBER} OR {EXTENSION_CONFIG}) \
                 ORDER BY 1, 2"
            ),
            &[],
        )
        .await
        .map_err(PgError::sql("listing tables"))?;
    let tables: Vec<(QualifiedName, String)> = rows
        .iter()
        .map(|r| {
            (
                QualifiedName {
                    schema: r.get(0),
                    name: r.get(1),
                },
                r.get(2),
            )
        })
        .collect();
    let mut out = Vec::with_capacity(tables.len());
    for (t, condition) in tables {
        let sql = format!(
            "SELECT count(*) FROM ONLY {}.{} {condition}",
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
