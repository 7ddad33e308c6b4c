//! Maintenance mode: stop writes to a database for a recovery, and resume
//! them. New sessions start read-only (`default_transaction_read_only` set
//! on the database), and sessions already connected are ended after a
//! grace period so nothing keeps writing. A session can still turn
//! read-only off for itself explicitly; this stops applications, not a
//! determined superuser.

use std::time::Duration;

use serde::Serialize;
use tokio_postgres::Client;

use crate::error::{PgError, Result};
use crate::sql;

/// What `maintenance on|off` did.
#[derive(Clone, Debug, Serialize)]
pub struct MaintenanceReport {
    /// The database.
    pub database: String,
    /// Whether new sessions are now read-only.
    pub read_only: bool,
    /// Sessions ended (on only).
    pub sessions_ended: u64,
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Lets this session write even when the database is in maintenance mode
/// (it started read-only too): a statement of its own, as one query string
/// is one transaction.
async fn writable_session(client: &Client) -> Result<()> {
    client
        .batch_execute("SET default_transaction_read_only = off")
        .await
        .map_err(PgError::sql("leaving read-only mode in this session"))
}

/// Makes new sessions of the connected database read-only, waits `grace`,
/// then ends the other sessions still connected to it.
pub async fn on(client: &Client, grace: Duration) -> Result<MaintenanceReport> {
    let db = sql::current_database(client).await?;
    // Already on (a second run): still works.
    writable_session(client).await?;
    client
        .batch_execute(&format!(
            "ALTER DATABASE {} SET default_transaction_read_only = on",
            quote_ident(&db)
        ))
        .await
        .map_err(PgError::sql(
            "making the database read-only (needs its owner or a superuser)",
        ))?;
    tokio::time::sleep(grace).await;
    let ended = sql::int(
        client,
        "ending the database's other sessions",
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::bigint FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND backend_type = 'client backend'",
    )
    .await?;
    Ok(MaintenanceReport {
        database: db,
        read_only: true,
        sessions_ended: ended.max(0) as u64,
    })
}

/// Lets new sessions of the connected database write again.
pub async fn off(client: &Client) -> Result<MaintenanceReport> {
    let db = sql::current_database(client).await?;
    writable_session(client).await?;
    client
        .batch_execute(&format!(
            "ALTER DATABASE {} RESET default_transaction_read_only",
            quote_ident(&db)
        ))
        .await
        .map_err(PgError::sql(
            "resuming writes (needs the database's owner or a superuser)",
        ))?;
    Ok(MaintenanceReport {
        database: db,
        read_only: false,
        sessions_ended: 0,
    })
}
