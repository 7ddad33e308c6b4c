//! Keeps a database being restored closed to ordinary roles until the
//! erasure ledger has been re-applied, so no one reads an erased person's
//! rows in the meantime.
//!
//! `CONNECT` is revoked from `PUBLIC` for the restore's duration: lifeboat
//! itself (the database's owner or a superuser, who keep their access)
//! loads and replays; an application role that connects through `PUBLIC`'s
//! default grant is turned away. Afterwards the backup's own privileges are
//! applied, or, when it carries none, `PUBLIC` gets `CONNECT` back if it
//! had it before.

use tokio_postgres::Client;

use super::quote_ident;
use crate::error::{PgError, Result};
use crate::sql;

/// A database closed to `PUBLIC` until [`ConnectGate::reopen`].
pub(crate) struct ConnectGate {
    database: String,
    public_could_connect: bool,
}

impl ConnectGate {
    /// Revokes `CONNECT` on the database `client` is connected to from
    /// `PUBLIC`, remembering whether it had it.
    pub(crate) async fn close(client: &Client) -> Result<Self> {
        let database = sql::current_database(client).await?;
        let public_could_connect = sql::int(
            client,
            "reading who may connect to the target database",
            "SELECT has_database_privilege('public', current_database(), 'CONNECT')::int::bigint",
        )
        .await?
            == 1;
        client
            .batch_execute(&format!(
                "REVOKE CONNECT ON DATABASE {} FROM PUBLIC",
                quote_ident(&database)
            ))
            .await
            .map_err(PgError::sql(
                "closing the target database to other roles until erasures are re-applied",
            ))?;
        Ok(Self {
            database,
            public_could_connect,
        })
    }

    /// Gives `PUBLIC` its `CONNECT` back if it had it.
    pub(crate) async fn reopen(self, client: &Client) -> Result<()> {
        if !self.public_could_connect {
            return Ok(());
        }
        client
            .batch_execute(&format!(
                "GRANT CONNECT ON DATABASE {} TO PUBLIC",
                quote_ident(&self.database)
            ))
            .await
            .map_err(PgError::sql("opening the restored database again"))
    }
}
