//! Starting, stopping and creating PostgreSQL servers with the cluster's own
//! programs (`initdb`, `pg_ctl`), as the data directory's owner when lifeboat
//! runs as root (PostgreSQL refuses to run as root).

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::error::{PgError, Result};

/// Where PostgreSQL's programs are.
#[derive(Clone, Debug, Default)]
pub struct PgBin {
    dir: Option<PathBuf>,
}

impl PgBin {
    /// `$LIFEBOAT_PG_BIN`, else `/usr/lib/postgresql/<major>/bin` when it
    /// exists (Debian's layout, matched to the cluster's version), else `PATH`.
    pub fn find(major: Option<u32>) -> Self {
        if let Some(d) = std::env::var_os("LIFEBOAT_PG_BIN").filter(|d| !d.is_empty()) {
            return Self {
                dir: Some(d.into()),
            };
        }
        if let Some(m) = major {
            let d = PathBuf::from(format!("/usr/lib/postgresql/{m}/bin"));
            if d.join("pg_ctl").exists() {
                return Self { dir: Some(d) };
            }
        }
        Self { dir: None }
    }

    /// A given directory.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
        }
    }

    /// The path of program `name`.
    pub fn program(&self, name: &str) -> PathBuf {
        match &self.dir {
            Some(d) => d.join(name),
            None => PathBuf::from(name),
        }
    }

    /// A command for program `name`.
    pub fn command(&self, name: &str) -> Command {
        Command::new(self.program(name))
    }

    /// The directory of the server's loadable libraries (`bin/../lib` in
    /// Debian's layout), when the programs' directory is known.
    pub fn lib_dir(&self) -> Option<PathBuf> {
        Some(self.dir.as_ref()?.parent()?.join("lib"))
    }
}

/// The user name of `uid` from `/etc/passwd`.
pub fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _ = f.next()?;
        (f.next()?.parse::<u32>().ok()? == uid).then(|| name.to_string())
    })
}

/// The uid and gid of user `name` from `/etc/passwd`.
pub fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name))
            .then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))?
    })
}

/// Makes `cmd` run as the owner of `dir` when this process is root.
pub fn as_owner_of(cmd: &mut Command, dir: &Path) -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    let m = std::fs::metadata(dir).map_err(|e| PgError::io(dir, e))?;
    if m.uid() == 0 {
        return Err(PgError::Setup(format!(
            "{} is owned by root; PostgreSQL will not run as root: chown it to the postgres user",
            dir.display()
        )));
    }
    cmd.uid(m.uid()).gid(m.gid());
    if let Some(name) = user_name(m.uid()) {
        cmd.env("USER", &name).env("LOGNAME", &name);
    }
    Ok(())
}

fn run(mut cmd: Command, what: &str) -> Result<Output> {
    let out = cmd.output().map_err(|e| {
        PgError::Command(format!("{what}: cannot run {:?}: {e}", cmd.get_program()))
    })?;
    if !out.status.success() {
        return Err(PgError::Command(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        )));
    }
    Ok(out)
}

/// A server to start and stop.
#[derive(Clone, Debug)]
pub struct Server {
    /// Data directory.
    pub pgdata: PathBuf,
    /// Port.
    pub port: u16,
    /// Unix socket directory.
    pub socket_dir: PathBuf,
    /// Programs.
    pub bin: PgBin,
    /// The role to connect as, when not the data directory owner's name
    /// (a throwaway cluster's own bootstrap superuser).
    pub superuser: Option<String>,
}

impl Server {
    /// `pg_ctl start` with `-p`, `-k` and extra `-c name=value` settings,
    /// logging to `log`. With `wait`, returns once it accepts connections
    /// (or `timeout` passes).
    pub fn start(
        &self,
        settings: &[(&str, String)],
        log: &Path,
        wait: bool,
        timeout: Duration,
    ) -> Result<()> {
        let mut opts = format!("-p {} -k '{}'", self.port, self.socket_dir.display());
        for (k, v) in settings {
            opts.push_str(&format!(" -c {k}='{}'", v.replace('\'', "'\\''")));
        }
        let mut cmd = self.bin.command("pg_ctl");
        cmd.arg("-D")
            .arg(&self.pgdata)
            .arg("-l")
            .arg(log)
            .arg("-o")
            .arg(opts);
        if wait {
            cmd.arg("-w")
                .arg("-t")
                .arg(timeout.as_secs().max(1).to_string());
        } else {
            cmd.arg("-W");
        }
        cmd.arg("start");
        as_owner_of(&mut cmd, &self.pgdata)?;
        run(
            cmd,
            &format!("starting PostgreSQL on {}", self.pgdata.display()),
        )
        .map(|_| ())
    }

    /// `pg_ctl stop -m <mode>` (`fast` or `immediate`).
    pub fn stop(&self, mode: &str) -> Result<()> {
        let mut cmd = self.bin.command("pg_ctl");
        cmd.arg("-D")
            .arg(&self.pgdata)
            .args(["-m", mode, "-w", "stop"]);
        as_owner_of(&mut cmd, &self.pgdata)?;
        run(
            cmd,
            &format!("stopping PostgreSQL on {}", self.pgdata.display()),
        )
        .map(|_| ())
    }

    /// True while a postmaster runs on the data directory.
    pub fn is_running(&self) -> bool {
        let mut cmd = self.bin.command("pg_ctl");
        cmd.arg("-D").arg(&self.pgdata).arg("status");
        if as_owner_of(&mut cmd, &self.pgdata).is_err() {
            return false;
        }
        cmd.output().is_ok_and(|o| o.status.success())
    }

    /// The role to connect as: the data directory owner's name, as after
    /// `initdb` by that user (else `postgres`).
    pub fn user(&self) -> String {
        if let Some(u) = &self.superuser {
            return u.clone();
        }
        std::fs::metadata(&self.pgdata)
            .ok()
            .and_then(|m| user_name(m.uid()))
            .unwrap_or_else(|| "postgres".into())
    }

    /// A libpq connection string for this server.
    pub fn conninfo(&self, dbname: &str) -> String {
        let user = self.user();
        format!(
            "host={} port={} user={user} dbname={dbname}",
            self.socket_dir.display(),
            self.port
        )
    }
}

/// Creates a new cluster with `initdb` (data checksums on, trust
/// authentication for local connections: for throwaway clusters only),
/// whose bootstrap superuser is `superuser`.
pub fn initdb(bin: &PgBin, pgdata: &Path, owner: Option<&str>, superuser: &str) -> Result<()> {
    std::fs::create_dir_all(pgdata).map_err(|e| PgError::io(pgdata, e))?;
    if rustix::process::geteuid().is_root() {
        let name = owner.unwrap_or("postgres");
        let (uid, gid) = user_ids(name).ok_or_else(|| {
            PgError::Setup(format!(
                "user {name} does not exist; PostgreSQL cannot run as root"
            ))
        })?;
        std::os::unix::fs::chown(pgdata, Some(uid), Some(gid))
            .map_err(|e| PgError::io(pgdata, e))?;
    }
    let mut cmd = bin.command("initdb");
    cmd.arg("-D")
        .arg(pgdata)
        .args([
            "--data-checksums",
            "--auth=trust",
            "-U",
            superuser,
            "--no-instructions",
        ])
        .env("LC_ALL", "C.UTF-8");
    as_owner_of(&mut cmd, pgdata)?;
    run(cmd, "initdb").map(|_| ())
}

/// The last `n` lines of a log file, for error messages.
pub fn log_tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
