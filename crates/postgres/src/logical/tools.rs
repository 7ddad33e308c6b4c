//! Finding and running PostgreSQL's client programs (`pg_dump`,
//! `pg_restore`, `pg_dumpall`) in a version that can read the server.
//!
//! `pg_dump` refuses servers newer than itself, so the programs are taken
//! from, in order: `--pg-bin` / `$LIFEBOAT_PG_BIN`; the newest Debian-style
//! `/usr/lib/postgresql/<major>/bin` that is at least the server's major
//! version; `PATH`. Their version is checked before anything is dumped.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;
use tokio_postgres::config::Host;

use crate::error::{PgError, Result};
use crate::sql::PgConfig;

/// The client programs chosen for one server.
#[derive(Clone, Debug)]
pub struct Tools {
    dir: Option<PathBuf>,
    /// `pg_dump --version`, e.g. "pg_dump (PostgreSQL) 15.8".
    pub version: String,
    /// Its major version.
    pub major: u32,
}

/// The major version in a `--version` line ("pg_dump (PostgreSQL) 15.8 (Debian …)").
pub fn major_of(version_line: &str) -> Option<u32> {
    let after = version_line.split(')').nth(1)?.trim();
    after
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|m| m.parse().ok())
}

fn debian_dirs(min_major: u32) -> Vec<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (major >= min_major && bin.join("pg_dump").exists()).then_some((major, bin))
        })
        .collect();
    found.sort();
    found.into_iter().rev().map(|(_, d)| d).collect()
}

impl Tools {
    /// Finds programs that can dump a server of `server_major`.
    /// `dir` overrides the search.
    pub async fn find(dir: Option<&Path>, server_major: u32) -> Result<Self> {
        let dir = dir
            .map(Path::to_path_buf)
            .or_else(|| {
                std::env::var_os("LIFEBOAT_PG_BIN")
                    .filter(|d| !d.is_empty())
                    .map(PathBuf::from)
            })
            .or_else(|| debian_dirs(server_major).into_iter().next());
        let program = dir
            .as_ref()
            .map_or_else(|| PathBuf::from("pg_dump"), |d| d.join("pg_dump"));
        let out = Command::new(&program)
            .arg("--version")
            .output()
            .await
            .map_err(|e| {
                PgError::Setup(format!(
                    "cannot run {}: {e}; install PostgreSQL's client programs (Debian: postgresql-client-{server_major}) or name their directory with --pg-bin",
                    program.display()
                ))
            })?;
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let major = major_of(&version).ok_or_else(|| {
            PgError::Setup(format!(
                "{} --version printed {version:?}, which is not a PostgreSQL version",
                program.display()
            ))
        })?;
        if major < server_major {
            return Err(PgError::Setup(format!(
                "{} is version {major}, older than the server (version {server_major}); pg_dump cannot dump a newer server. Install postgresql-client-{server_major} or newer, or name its directory with --pg-bin",
                program.display()
            )));
        }
        Ok(Self {
            dir,
            version,
            major,
        })
    }

    /// A command for program `name` from the chosen directory.
    pub fn command(&self, name: &str) -> Command {
        let program = self
            .dir
            .as_ref()
            .map_or_else(|| PathBuf::from(name), |d| d.join(name));
        let mut c = Command::new(program);
        c.stdin(Stdio::null()).kill_on_drop(true);
        c
    }
}

/// A libpq connection string for `config`, for the client programs, and the
/// password to hand them through `PGPASSWORD` (never on a command line).
pub fn libpq_conninfo(config: &PgConfig) -> (String, Option<String>) {
    let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
    let mut parts = Vec::new();
    if let Some(h) = config.get_hosts().first() {
        let h = match h {
            Host::Tcp(s) => s.clone(),
            Host::Unix(p) => p.display().to_string(),
        };
        parts.push(format!("host={}", quote(&h)));
    }
    if let Some(p) = config.get_ports().first() {
        parts.push(format!("port={p}"));
    }
    if let Some(u) = config.get_user() {
        parts.push(format!("user={}", quote(u)));
    }
    if let Some(d) = config.get_dbname() {
        parts.push(format!("dbname={}", quote(d)));
    }
    parts.push(format!("sslmode={}", config.tls.mode.as_str()));
    for (key, value) in [
        ("sslrootcert", &config.tls.root_cert),
        ("sslcert", &config.tls.client_cert),
        ("sslkey", &config.tls.client_key),
    ] {
        if let Some(v) = value {
            parts.push(format!("{key}={}", quote(v)));
        }
    }
    if let Some(t) = config.get_connect_timeout() {
        parts.push(format!("connect_timeout={}", t.as_secs().max(2)));
    }
    parts.push(format!(
        "application_name={}",
        quote(config.get_application_name().unwrap_or("lifeboat"))
    ));
    let password = config
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    (parts.join(" "), password)
}

/// Runs a prepared command to completion; returns its standard output, or
/// its standard error in the error.
pub async fn run(mut cmd: Command, what: &str) -> Result<Vec<u8>> {
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .map_err(|e| PgError::Command(format!("{what}: cannot start: {e}")))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(PgError::Command(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            major_of("pg_dump (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(major_of("pg_restore (PostgreSQL) 17beta1"), Some(17));
        assert_eq!(major_of("pg_dump 15.8"), None);
    }

    #[test]
    fn conninfo_quotes_and_hides_password() -> crate::Result<()> {
        let c = crate::sql::config(
            Some(
                "host=/tmp port=5433 user=o'k dbname=app password=secret sslmode=verify-ca sslrootcert=/ca.pem",
            ),
            None,
        )?;
        let (s, pw) = libpq_conninfo(&c);
        assert!(s.contains("host='/tmp'"), "{s}");
        assert!(s.contains("user='o\\'k'"), "{s}");
        assert!(s.contains("dbname='app'"), "{s}");
        assert!(!s.contains("secret"));
        assert!(s.contains("sslmode=verify-ca sslrootcert='/ca.pem'"), "{s}");
        assert_eq!(pw.as_deref(), Some("secret"));
        Ok(())
    }
}
