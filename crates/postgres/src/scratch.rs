//! Throwaway PostgreSQL clusters: a private temporary directory (owned by
//! the `postgres` user when lifeboat runs as root), a free port, a socket
//! in the directory and no TCP listener. Used by `export --format custom`
//! and by restore drills; everything goes when the value is dropped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use crate::error::{PgError, Result};
use crate::server::{PgBin, Server, initdb, user_ids};

/// A temporary directory PostgreSQL may use (data directory, socket, log).
pub fn scratch_dir(prefix: &str) -> Result<TempDir> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| PgError::io(std::env::temp_dir(), e))?;
    if rustix::process::geteuid().is_root() {
        // PostgreSQL runs as postgres: it must reach its data and socket.
        let (uid, gid) = user_ids("postgres").ok_or_else(|| {
            PgError::Setup("user postgres does not exist; PostgreSQL cannot run as root".into())
        })?;
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
            .map_err(|e| PgError::io(dir.path(), e))?;
    }
    Ok(dir)
}

/// A free TCP port on the loopback interface (PostgreSQL names its socket
/// after the port, so each scratch server gets its own).
pub fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| PgError::io("127.0.0.1", e))
}

/// Extensions that can only be created when the server preloaded their
/// library (`shared_preload_libraries`), with the library's name.
const PRELOADED: &[(&str, &str)] = &[
    ("pg_cron", "pg_cron"),
    ("timescaledb", "timescaledb"),
    ("citus", "citus"),
    ("pg_stat_statements", "pg_stat_statements"),
    ("pgaudit", "pgaudit"),
];

/// The settings a throwaway cluster needs to rebuild `databases` (name and
/// extensions): the preloaded libraries their extensions need, where this
/// machine has them, and pg_cron's one database.
pub fn settings_for_extensions(
    bin: &PgBin,
    databases: &[(String, Vec<String>)],
) -> Vec<(&'static str, String)> {
    let available = |lib: &str| {
        bin.lib_dir()
            .is_none_or(|d| d.join(format!("{lib}.so")).exists())
    };
    let mut libs: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for (db, extensions) in databases {
        for e in extensions {
            let Some((_, lib)) = PRELOADED.iter().find(|(ext, _)| ext == e) else {
                continue;
            };
            if !libs.contains(lib) && available(lib) {
                libs.push(lib);
            }
            if *e == "pg_cron" && !out.iter().any(|(k, _)| *k == "cron.database_name") {
                out.push(("cron.database_name", db.clone()));
            }
        }
    }
    if !libs.is_empty() {
        out.push(("shared_preload_libraries", libs.join(",")));
    }
    out
}

/// A running throwaway cluster. Stop it with [`ScratchCluster::stop`];
/// dropping it without stopping stops it too (immediately).
#[derive(Debug)]
pub struct ScratchCluster {
    /// The server.
    pub server: Server,
    /// Its log file.
    pub log: PathBuf,
    dir: Option<TempDir>,
}

impl ScratchCluster {
    /// Creates (`initdb`) and starts a new cluster with `bin`'s programs.
    /// Durability is off: it only lives as long as the work it is for. Its
    /// bootstrap superuser has a random name of its own (`lifeboat_…`), so
    /// no role a backup restores into it (a `postgres` that is no superuser,
    /// as on managed platforms) can take its rights away.
    pub async fn create(bin: PgBin, prefix: &str) -> Result<Self> {
        Self::create_with(bin, prefix, Vec::new()).await
    }

    /// Like [`ScratchCluster::create`], with extra server settings (see
    /// [`settings_for_extensions`]).
    pub async fn create_with(
        bin: PgBin,
        prefix: &str,
        settings: Vec<(&'static str, String)>,
    ) -> Result<Self> {
        let dir = scratch_dir(prefix)?;
        let pgdata = dir.path().join("data");
        let superuser = format!(
            "lifeboat_{}",
            hex::encode(
                lifeboat_format::crypto::random_bytes::<6>()
                    .map_err(lifeboat_repo::RepoError::from)?
            )
        );
        {
            let (bin, pgdata, su) = (bin.clone(), pgdata.clone(), superuser.clone());
            tokio::task::spawn_blocking(move || initdb(&bin, &pgdata, None, &su))
                .await
                .map_err(|e| PgError::Command(format!("initdb did not finish: {e}")))??;
        }
        let server = Server {
            pgdata,
            port: free_port()?,
            socket_dir: dir.path().to_path_buf(),
            bin,
            superuser: Some(superuser),
        };
        let log = dir.path().join("server.log");
        let cluster = Self {
            server,
            log,
            dir: Some(dir),
        };
        {
            let (server, log) = (cluster.server.clone(), cluster.log.clone());
            let mut all = vec![
                ("listen_addresses", String::new()),
                ("fsync", "off".into()),
                ("max_wal_size", "4GB".into()),
            ];
            all.extend(settings);
            tokio::task::spawn_blocking(move || {
                server.start(&all, &log, true, Duration::from_secs(60))
            })
            .await
            .map_err(|e| PgError::Command(format!("starting the throwaway cluster: {e}")))??;
        }
        Ok(cluster)
    }

    /// The directory holding the data directory, socket and log.
    pub fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or_else(|| self.server.socket_dir.as_path(), |d| d.path())
    }

    /// Stops the server and removes everything.
    pub async fn stop(mut self) -> Result<()> {
        let server = self.server.clone();
        let stopped = tokio::task::spawn_blocking(move || server.stop("immediate"))
            .await
            .map_err(|e| PgError::Command(format!("stopping the throwaway cluster: {e}")))?;
        if let Some(d) = self.dir.take() {
            let path = d.path().to_path_buf();
            d.close().map_err(|e| PgError::io(path, e))?;
        }
        stopped
    }
}

impl Drop for ScratchCluster {
    fn drop(&mut self) {
        if self.dir.is_some() && self.server.is_running() {
            let _ = self.server.stop("immediate");
        }
    }
}
