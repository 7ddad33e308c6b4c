//! Verifying a restored database: `pg_amcheck`, exact row counts compared
//! with those a backup recorded, and the user's checks. Shared by drills and
//! recoveries.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lifeboat_postgres::checks::{self, CheckResult, CheckSpec};
use lifeboat_postgres::counts::exact_row_counts;
use lifeboat_postgres::server::{PgBin, Server};
use lifeboat_postgres::sql;
use serde::{Deserialize, Serialize};

/// Where the restored data can be reached.
#[derive(Clone, Debug)]
pub enum Restored {
    /// A server lifeboat started: every database on it can be reached.
    Server(Server),
    /// One database given by a connection string (a staging server).
    Database(String),
}

impl Restored {
    /// A connection string for database `name` (a staging connection
    /// string is used as given).
    pub fn conninfo(&self, name: &str) -> String {
        match self {
            Restored::Server(s) => s.conninfo(name),
            Restored::Database(c) => c.clone(),
        }
    }
}

/// One table's rows after the restore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCount {
    /// Database.
    pub database: String,
    /// `schema.table`.
    pub table: String,
    /// Rows recorded at backup time, when the backup recorded them.
    pub expected: Option<u64>,
    /// Rows found.
    pub found: u64,
}

impl TableCount {
    /// False when the backup recorded a different count.
    pub fn matches(&self) -> bool {
        self.expected.is_none_or(|e| e == self.found)
    }
}

/// Counts the rows of every table of `databases`, next to what was
/// recorded (`expected`: database → table → rows).
pub async fn count_tables(
    restored: &Restored,
    databases: &[String],
    expected: &BTreeMap<String, BTreeMap<String, u64>>,
) -> Result<Vec<TableCount>, String> {
    let mut out = Vec::new();
    for db in databases {
        let client = connect(&restored.conninfo(db)).await?;
        let counts = exact_row_counts(&client)
            .await
            .map_err(|e| format!("database {db}: {e}"))?;
        let recorded = expected.get(db);
        for (table, found) in counts {
            out.push(TableCount {
                database: db.clone(),
                expected: recorded.and_then(|r| r.get(&table).copied()),
                table,
                found,
            });
        }
        // A recorded table that is missing altogether is a failure too.
        if let Some(r) = recorded {
            for (table, rows) in r {
                if !out.iter().any(|t| t.database == *db && t.table == *table) {
                    out.push(TableCount {
                        database: db.clone(),
                        table: table.clone(),
                        expected: Some(*rows),
                        found: 0,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Runs `pg_amcheck` (heap and B-tree checks, installing the amcheck
/// extension where missing) over every database of a server or the one
/// staging database. Returns whether it was clean and what it said.
pub async fn amcheck(bin: &PgBin, restored: &Restored) -> (bool, String) {
    let mut cmd = bin.command("pg_amcheck");
    cmd.args(["--install-missing", "--heapallindexed"]);
    match restored {
        Restored::Server(s) => {
            cmd.arg("--all")
                .arg("-h")
                .arg(&s.socket_dir)
                .arg("-p")
                .arg(s.port.to_string())
                .arg("-U")
                .arg(s.user());
        }
        Restored::Database(c) => {
            cmd.arg(c);
        }
    }
    let out = tokio::task::spawn_blocking(move || cmd.output()).await;
    match out {
        Ok(Ok(o)) if o.status.success() => (true, "no corruption found".into()),
        Ok(Ok(o)) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            let lines: Vec<&str> = text.lines().take(8).collect();
            (
                false,
                format!("pg_amcheck ({}): {}", o.status, lines.join(" | ")),
            )
        }
        Ok(Err(e)) => (false, format!("cannot run pg_amcheck: {e}")),
        Err(e) => (false, format!("pg_amcheck did not finish: {e}")),
    }
}

/// Runs the user's checks, each in its `database` (else `default_db`),
/// judging ages against `reference`.
pub async fn run_checks(
    restored: &Restored,
    specs: &[CheckSpec],
    default_db: &str,
    reference: DateTime<Utc>,
) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for spec in specs {
        let db = spec.database.as_deref().unwrap_or(default_db);
        match connect(&restored.conninfo(db)).await {
            Ok(client) => {
                out.extend(checks::run(&client, std::slice::from_ref(spec), reference).await)
            }
            Err(e) => out.push(CheckResult {
                name: spec.name.clone(),
                sql: spec.sql.clone(),
                value: None,
                passed: false,
                detail: e,
            }),
        }
    }
    out
}

async fn connect(conninfo: &str) -> Result<tokio_postgres::Client, String> {
    let config = sql::config(Some(conninfo), None).map_err(|e| e.to_string())?;
    sql::connect(&config).await.map_err(|e| e.to_string())
}

/// "12 tables, 3,456 rows" or the mismatches.
pub fn describe_counts(tables: &[TableCount]) -> (bool, String) {
    let bad: Vec<String> = tables
        .iter()
        .filter(|t| !t.matches())
        .map(|t| {
            format!(
                "{} (database {}) has {} rows, the backup recorded {}",
                t.table,
                t.database,
                t.found,
                t.expected.unwrap_or_default()
            )
        })
        .collect();
    if bad.is_empty() {
        let rows: u64 = tables.iter().map(|t| t.found).sum();
        let compared = tables.iter().filter(|t| t.expected.is_some()).count();
        let how = if compared == 0 {
            "counted on the restored copy".to_string()
        } else {
            format!("{compared} compared with the counts recorded at backup time, all equal")
        };
        (true, format!("{} tables, {rows} rows; {how}", tables.len()))
    } else {
        (false, bad.join("; "))
    }
}
