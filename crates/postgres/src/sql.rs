//! Connecting to PostgreSQL over SQL.
//!
//! Connection strings are libpq's (`host=/run/postgresql port=5432 user=…` or
//! `postgresql://…`, with `service=` from a service file and TLS settings as
//! libpq reads them). What they leave out comes from the usual `PG*`
//! variables, then from the data directory's `postmaster.pid` (socket
//! directory and port), so on the database host `--pgdata` alone is enough.
//! Passwords come from the string, `PGPASSWORD`, then the password file
//! (`PGPASSFILE` or `~/.pgpass`); `PGCONNECT_TIMEOUT` and `PGAPPNAME` apply;
//! the application name defaults to `lifeboat`, so a DBA sees the backup in
//! `pg_stat_activity`.

use std::path::Path;
use std::str::FromStr;

use tokio_postgres::{Config, NoTls};

/// A connection to a server, as [`connect`] opens it.
pub use tokio_postgres::Client;

use crate::error::{PgError, Result};
use crate::tls::{SslMode, TlsSettings, split_tls_options};

/// A connection's settings: the driver's, and TLS as libpq means it.
/// Dereferences to the driver's [`Config`].
#[derive(Clone, Debug)]
pub struct PgConfig {
    /// The driver's settings.
    pub config: Config,
    /// TLS settings.
    pub tls: TlsSettings,
    /// Why a connection may fail that the settings alone do not show (a
    /// password file ignored for its permissions); added to connection
    /// errors.
    pub notes: Vec<String>,
}

impl std::ops::Deref for PgConfig {
    type Target = Config;
    fn deref(&self) -> &Config {
        &self.config
    }
}

impl std::ops::DerefMut for PgConfig {
    fn deref_mut(&mut self) -> &mut Config {
        &mut self.config
    }
}

/// Builds a connection config from `conninfo` (if any), the `PG*` variables
/// and the running server of `pgdata` (if any).
pub fn config(conninfo: Option<&str>, pgdata: Option<&Path>) -> Result<PgConfig> {
    let expanded = crate::service::expand(conninfo.unwrap_or(""))?;
    let (rest, tls) = split_tls_options(&expanded)?;
    let mut c = if rest.trim().is_empty() {
        Config::new()
    } else {
        Config::from_str(&rest)
            .map_err(|e| PgError::Invalid(format!("invalid connection string: {e}")))?
    };
    c.ssl_mode(tls.mode.driver());
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if c.get_hosts().is_empty() {
        if let Some(h) = env("PGHOST") {
            c.host(&h);
        } else if let Some((_, socket)) = pgdata.and_then(crate::control::running_server) {
            c.host(if socket.is_empty() {
                "/tmp"
            } else {
                socket.as_str()
            });
        } else {
            c.host("/var/run/postgresql");
        }
    }
    if c.get_ports().is_empty() {
        let port = env("PGPORT")
            .and_then(|p| p.parse().ok())
            .or_else(|| {
                pgdata
                    .and_then(crate::control::running_server)
                    .map(|(p, _)| p)
            })
            .unwrap_or(5432);
        c.port(port);
    }
    if c.get_user().is_none() {
        let user = env("PGUSER")
            .or_else(|| env("USER").filter(|u| u != "root"))
            .unwrap_or_else(|| "postgres".into());
        c.user(&user);
    }
    if c.get_dbname().is_none() {
        c.dbname(env("PGDATABASE").as_deref().unwrap_or("postgres"));
    }
    if c.get_password().is_none()
        && let Some(p) = env("PGPASSWORD")
    {
        c.password(p);
    }
    let mut notes = Vec::new();
    if c.get_password().is_none()
        && let Some(file) = crate::pgpass::location()
    {
        let host = match c.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "localhost".to_string(),
        };
        let port = c.get_ports().first().copied().unwrap_or(5432);
        match crate::pgpass::lookup(
            &file,
            &host,
            port,
            c.get_dbname().unwrap_or_default(),
            c.get_user().unwrap_or_default(),
        ) {
            crate::pgpass::Lookup::Found(p) => {
                c.password(p);
            }
            crate::pgpass::Lookup::TooOpen(f) => notes.push(format!(
                "the password file {} was ignored: group or others can read it (chmod 0600 it)",
                f.display()
            )),
            crate::pgpass::Lookup::None => {}
        }
    }
    if c.get_connect_timeout().is_none()
        && let Some(secs) = env("PGCONNECT_TIMEOUT").and_then(|t| t.trim().parse::<u64>().ok())
        && secs > 0
    {
        // As libpq: values below 2 seconds mean 2.
        c.connect_timeout(std::time::Duration::from_secs(secs.max(2)));
    }
    if c.get_application_name().is_none() {
        c.application_name(env("PGAPPNAME").as_deref().unwrap_or("lifeboat"));
    }
    Ok(PgConfig {
        config: c,
        tls,
        notes,
    })
}

/// True if `conninfo`, as written, carries a password (`password=…` or a
/// URL's `user:password@`). Such a string on a command line is visible to
/// every local user in the process list.
pub fn has_password(conninfo: &str) -> bool {
    split_tls_options(conninfo)
        .ok()
        .and_then(|(rest, _)| Config::from_str(&rest).ok())
        .is_some_and(|c| c.get_password().is_some())
}

/// A command-line argument fit to be logged: unchanged, unless it is (or,
/// as `--flag=VALUE`, holds) a connection string carrying a password.
pub fn loggable_argument(arg: &str) -> String {
    let value = arg.split_once('=').map_or(arg, |(_, v)| v);
    if has_password(arg) || has_password(value) {
        "(a connection string with a password, left out)".to_string()
    } else {
        arg.to_string()
    }
}

/// Connects; the connection is driven by a background task. Unix sockets
/// never use TLS; TCP connections use it as `sslmode` says.
pub async fn connect(config: &PgConfig) -> Result<Client> {
    let mut target = describe(config);
    for note in &config.notes {
        target.push_str(&format!("; {note}"));
    }
    let failed = |source: tokio_postgres::Error| PgError::Connect {
        problem: crate::error::ConnectProblem::of(&source),
        target: target.clone(),
        source,
    };
    let local = config
        .get_hosts()
        .iter()
        .all(|h| matches!(h, tokio_postgres::config::Host::Unix(_)));
    let client = if config.tls.mode == SslMode::Disable || local {
        let (client, connection) = config.config.connect(NoTls).await.map_err(failed)?;
        tokio::spawn(async move {
            // Errors surface on the next query through the client.
            let _ = connection.await;
        });
        client
    } else {
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(config.tls.client_config()?);
        let (client, connection) = config.config.connect(tls).await.map_err(failed)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    };
    Ok(client)
}

/// A short description of where a config points, for messages.
pub fn describe(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_default();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{host}:{port} as {} (database {})",
        config.get_user().unwrap_or("?"),
        config.get_dbname().unwrap_or("?")
    )
}

/// Runs a query expected to return one text value.
pub async fn text(client: &Client, what: &str, sql: &str) -> Result<String> {
    let row = client
        .query_one(sql, &[])
        .await
        .map_err(PgError::sql(what))?;
    row.try_get::<_, String>(0).map_err(PgError::sql(what))
}

/// Runs a query expected to return one bigint.
pub async fn int(client: &Client, what: &str, sql: &str) -> Result<i64> {
    let row = client
        .query_one(sql, &[])
        .await
        .map_err(PgError::sql(what))?;
    row.try_get::<_, i64>(0).map_err(PgError::sql(what))
}

/// The name of the database `client` is connected to.
pub async fn current_database(client: &Client) -> Result<String> {
    text(
        client,
        "finding the database",
        "SELECT current_database()::text",
    )
    .await
}

/// Quotes a value for a PostgreSQL configuration file.
pub fn conf_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_passwords_in_either_form() {
        assert!(has_password("host=db user=app password=secret"));
        assert!(has_password("postgresql://app:secret@db/app"));
        assert!(!has_password("host=db user=app"));
        assert!(!has_password("postgresql://app@db/app?sslmode=require"));
        assert!(!has_password("not a conninfo ==="));
    }

    #[test]
    fn fills_defaults_and_quotes() {
        let c = config(Some("host=/tmp/sock port=6543 user=alice dbname=app"), None)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.get_ports(), &[6543]);
        assert_eq!(c.get_user(), Some("alice"));
        assert!(describe(&c).contains("/tmp/sock:6543"));
        assert!(config(Some("host=x port=notaport"), None).is_err());
        assert_eq!(conf_quote("it's"), "'it''s'");
    }
}
