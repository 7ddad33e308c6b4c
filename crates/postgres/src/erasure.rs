//! Erasure rules applied to a database: erase one data subject now (the
//! ledger entry written before anything is deleted), and replay the whole
//! ledger on a restored database, where only the subjects' keyed hashes
//! are known.
//!
//! A rule names a table and an SQL expression over its columns that gives
//! each row's subject key: a column (`id`, `email`), or a subquery for rows
//! that reach the subject through another table
//! (`(SELECT o.user_id FROM public.orders o WHERE o.id = order_id)`). The
//! rules run in the order written, in one transaction: list tables that
//! reference others before the tables they reference.

use std::collections::HashSet;
use std::future::Future;

use lifeboat_format::erasure::AppliedRule;
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::error::{PgError, Result};
use crate::logical::quote_ident;
use crate::logical::roles::db_reason;

/// One `[[erasure]]` rule of lifeboat.toml.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureRule {
    /// `schema.table` (`public` when no schema is given).
    pub table: String,
    /// SQL expression over the table's columns giving the subject's key.
    pub subject: String,
    /// The database the table is in, for restores of whole clusters
    /// (default: the database being restored, or `postgres` for a cluster).
    #[serde(default)]
    pub database: Option<String>,
}

/// The erasure ledger's subjects and the rules that find them, for a restore.
#[derive(Clone, Debug, Default)]
pub struct ErasureReplay {
    /// The `[[erasure]]` rules.
    pub rules: Vec<ErasureRule>,
    /// Keyed hashes of the subjects whose erasure is in force.
    pub erased: HashSet<String>,
}

impl ErasureReplay {
    /// The rules for database `name` of a logical restore: those naming it
    /// and those naming no database.
    pub fn rules_for(&self, name: &str) -> Vec<ErasureRule> {
        self.rules
            .iter()
            .filter(|r| r.database.as_deref().is_none_or(|d| d == name))
            .cloned()
            .collect()
    }

    /// Re-applies the ledger to database `database` (its rules: those naming
    /// it or no database). A database no rule names holds no subject: it
    /// is left alone. Having no rules at all while subjects are erased is
    /// an error: they could not be found anywhere.
    pub async fn apply_to(
        &self,
        client: &mut Client,
        database: &str,
        hash: impl Fn(&str) -> String,
    ) -> Result<ReplayReport> {
        let rules = self.rules_for(database);
        if rules.is_empty() && !self.rules.is_empty() {
            return Ok(ReplayReport {
                subjects: self.erased.len(),
                ..Default::default()
            });
        }
        replay(client, &rules, &self.erased, hash).await
    }

    /// The databases of a cluster the rules touch, each with its rules
    /// (rules naming no database are `postgres`'s).
    pub fn by_database(&self) -> Vec<(String, Vec<ErasureRule>)> {
        let mut out: Vec<(String, Vec<ErasureRule>)> = Vec::new();
        for r in &self.rules {
            let db = r.database.clone().unwrap_or_else(|| "postgres".into());
            match out.iter_mut().find(|(d, _)| *d == db) {
                Some((_, rules)) => rules.push(r.clone()),
                None => out.push((db, vec![r.clone()])),
            }
        }
        out
    }
}

impl ErasureRule {
    /// The table, quoted for SQL.
    fn table_sql(&self) -> String {
        match self.table.split_once('.') {
            Some((schema, table)) => format!("{}.{}", quote_ident(schema), quote_ident(table)),
            None => format!("public.{}", quote_ident(&self.table)),
        }
    }

    /// The error for a rule the database refuses.
    fn unfit(&self, e: &tokio_postgres::Error) -> PgError {
        PgError::Erasure(format!(
            "erasure rule for {} (subject = {:?}) does not fit the database: {}",
            self.table,
            self.subject,
            db_reason(e)
        ))
    }
}

/// Erases `subject` from the live database, in one transaction: counts
/// what each rule matches, calls `record` with the counts (the ledger
/// entry, written before anything is deleted), then deletes. With
/// `dry_run`, counts only. Returns the counts.
pub async fn erase<F, Fut>(
    client: &mut Client,
    rules: &[ErasureRule],
    subject: &str,
    dry_run: bool,
    record: F,
) -> Result<Vec<AppliedRule>>
where
    F: FnOnce(Vec<AppliedRule>) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    if rules.is_empty() {
        return Err(PgError::Invalid(
            "lifeboat.toml declares no [[erasure]] rules: say, per table, how a data subject is found".into(),
        ));
    }
    let tx = client
        .transaction()
        .await
        .map_err(PgError::sql("starting the erasure"))?;
    let mut applied = Vec::new();
    for r in rules {
        let sql = format!(
            "SELECT count(*) FROM {} WHERE ({})::text = $1",
            r.table_sql(),
            r.subject
        );
        let row = tx
            .query_one(&sql, &[&subject])
            .await
            .map_err(|e| r.unfit(&e))?;
        let n: i64 = row.try_get(0).map_err(|e| r.unfit(&e))?;
        applied.push(AppliedRule {
            table: r.table.clone(),
            subject: r.subject.clone(),
            rows: n.max(0) as u64,
        });
    }
    if dry_run {
        return Ok(applied);
    }
    record(applied.clone()).await?;
    for (r, a) in rules.iter().zip(applied.iter_mut()) {
        let sql = format!(
            "DELETE FROM {} WHERE ({})::text = $1",
            r.table_sql(),
            r.subject
        );
        a.rows = tx
            .execute(&sql, &[&subject])
            .await
            .map_err(|e| r.unfit(&e))?;
    }
    tx.commit()
        .await
        .map_err(PgError::sql("committing the erasure"))?;
    Ok(applied)
}

/// The object keys `query` (a `[[bucket_erasure]]` rule's) gives for
/// `subject` (its `$1`): the first column of each row, as text.
pub async fn object_keys(client: &Client, query: &str, subject: &str) -> Result<Vec<String>> {
    let rows = client.query(query, &[&subject]).await.map_err(|e| {
        PgError::Erasure(format!(
            "bucket erasure query {query:?} does not fit the database: {}",
            db_reason(&e)
        ))
    })?;
    rows.iter()
        .map(|row| {
            row.try_get::<_, String>(0).map_err(|e| {
                PgError::Erasure(format!(
                    "bucket erasure query {query:?}: its first column must be the object key as text: {e}"
                ))
            })
        })
        .collect()
}

/// What replaying the ledger removed from a restored database.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// Erasures in force in the ledger.
    pub subjects: usize,
    /// Subjects found (and removed) in the restored data.
    pub found: usize,
    /// Rows removed, per rule.
    pub tables: Vec<AppliedRule>,
}

/// Re-applies every erasure in force (`erased`: the subjects' keyed hashes;
/// `hash` computes one) to a restored database, in one transaction: each
/// rule's subject keys are read, hashed, and the rows of erased subjects
/// deleted. A rule that does not fit the schema fails the whole replay.
pub async fn replay(
    client: &mut Client,
    rules: &[ErasureRule],
    erased: &HashSet<String>,
    hash: impl Fn(&str) -> String,
) -> Result<ReplayReport> {
    let mut report = ReplayReport {
        subjects: erased.len(),
        ..Default::default()
    };
    if erased.is_empty() {
        return Ok(report);
    }
    if rules.is_empty() {
        return Err(PgError::Erasure(format!(
            "the erasure ledger holds {} erased subject(s) but lifeboat.toml declares no [[erasure]] rules, \
             so they cannot be removed from the restored data",
            erased.len()
        )));
    }
    let tx = client
        .transaction()
        .await
        .map_err(PgError::sql("starting the erasure replay"))?;
    let mut found: HashSet<String> = HashSet::new();
    for r in rules {
        let sql = format!(
            "SELECT DISTINCT ({})::text FROM {} WHERE ({}) IS NOT NULL",
            r.subject,
            r.table_sql(),
            r.subject
        );
        let keys: Vec<String> = tx
            .query(&sql, &[])
            .await
            .map_err(|e| r.unfit(&e))?
            .iter()
            .filter_map(|row| row.try_get::<_, String>(0).ok())
            .collect();
        let mut matched = Vec::new();
        for k in keys {
            let h = hash(&k);
            if erased.contains(&h) {
                found.insert(h);
                matched.push(k);
            }
        }
        let rows = if matched.is_empty() {
            0
        } else {
            let sql = format!(
                "DELETE FROM {} WHERE ({})::text = ANY($1)",
                r.table_sql(),
                r.subject
            );
            tx.execute(&sql, &[&matched])
                .await
                .map_err(|e| r.unfit(&e))?
        };
        report.tables.push(AppliedRule {
            table: r.table.clone(),
            subject: r.subject.clone(),
            rows,
        });
    }
    tx.commit()
        .await
        .map_err(PgError::sql("committing the erasure replay"))?;
    report.found = found.len();
    Ok(report)
}

/// Closes the database `config` points at to new connections (after a
/// failed replay, so erased data is not served). PostgreSQL refuses this
/// from inside the database itself, so it connects to `postgres` (then
/// `template1`) on the same server.
pub async fn close_database(config: &crate::sql::PgConfig) -> Result<()> {
    let name = config.get_dbname().unwrap_or("postgres").to_string();
    let mut last = None;
    for other in ["postgres", "template1"] {
        if other == name {
            continue;
        }
        let mut c = config.clone();
        c.dbname(other);
        let client = match crate::sql::connect(&c).await {
            Ok(client) => client,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let sql = format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false",
            quote_ident(&name)
        );
        return client
            .batch_execute(&sql)
            .await
            .map_err(|e| PgError::Erasure(format!("ALTER DATABASE refused: {}", db_reason(&e))));
    }
    Err(last.unwrap_or_else(|| {
        PgError::Erasure("no other database to connect to on that server".into())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_quoted_with_their_schema() {
        let r = |t: &str| ErasureRule {
            table: t.into(),
            subject: "id".into(),
            database: None,
        };
        assert_eq!(r("auth.users").table_sql(), "\"auth\".\"users\"");
        assert_eq!(r("Orders").table_sql(), "public.\"Orders\"");
        assert_eq!(r("a.b\"c").table_sql(), "\"a\".\"b\"\"c\"");
    }
}
