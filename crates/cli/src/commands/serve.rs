//! `lifeboat serve`: the daemon and its HTTP side.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use lifeboat_ops::daemon::{Daemon, DaemonOptions, Log, Shared};
use lifeboat_storage::Location;

use crate::cli::{Global, ServeArgs};
use crate::commands::open_repo;
use crate::exit::UsageError;
use crate::settings::{FileSettings, Settings, config_path};

/// The daemon's state directory: `--state-dir`, else `[serve] state_dir`,
/// else the default.
pub fn state_dir(given: Option<&PathBuf>, file: &FileSettings) -> PathBuf {
    given
        .cloned()
        .or_else(|| file.serve.state_dir.clone())
        .unwrap_or_else(default_state_dir)
}

/// Where the daemon keeps its state when not told.
fn default_state_dir() -> PathBuf {
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/lifeboat");
    }
    std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("lifeboat")
}

fn duration(what: &str, v: &Option<String>, default: Duration) -> Result<Duration> {
    match v {
        Some(s) => {
            Ok(lifeboat_ops::duration::parse(what, s).map_err(|e| UsageError(e.to_string()))?)
        }
        None => Ok(default),
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn serve(g: &Global, args: &ServeArgs) -> Result<()> {
    let file = FileSettings::load(g)?;
    let Some((path, _)) = &file.origin else {
        bail!(UsageError(
            "`lifeboat serve` runs the [[job]]s of a settings file, and none was found: pass --config FILE, set \
             LIFEBOAT_CONFIG, or write /etc/lifeboat/lifeboat.toml (an example with the runbook's schedule: dist/lifeboat.example.toml in lifeboat's sources)"
                .into()
        ));
    };
    let jobs = file.jobs()?;
    if jobs.is_empty() {
        bail!(UsageError(format!(
            "{} has no [[job]]s to run",
            path.display()
        )));
    }
    for r in &file.alerts.route {
        lifeboat_ops::alerts::routes::validate(r)
            .map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
    }
    let targets = lifeboat_ops::targets::Targets::from_config(&file.targets)
        .map_err(|e| UsageError(e.to_string()))?;
    let quota = match &file.alerts.quota {
        Some(q) => Some(
            lifeboat_units::parse_size(q)
                .map_err(|e| UsageError(format!("[alerts] quota: {e}")))?,
        ),
        None => None,
    };
    let stop_timeout = duration(
        "[serve] stop_timeout",
        &file.serve.stop_timeout,
        Duration::from_secs(300),
    )?;
    let refresh = duration(
        "[serve] refresh",
        &file.serve.refresh,
        Duration::from_secs(60),
    )?;
    let approvals_expire = duration(
        "[approvals] expire",
        &file.approvals.expire,
        Duration::from_secs(24 * 3600),
    )?;
    let listen = args
        .listen
        .clone()
        .or_else(|| file.serve.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:9187".into());
    let state_dir = state_dir(args.state_dir.as_ref(), &file);
    let users = lifeboat_ops::access::UserStore::new(&state_dir);
    let loopback = listen
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback());
    if !loopback && !users.has_users()? {
        bail!(UsageError(format!(
            "the API would listen on {listen} with no user to ask for: anyone who reaches it could start and pause jobs. \
             Add one first (`lifeboat user add NAME --role admin`), or listen on 127.0.0.1"
        )));
    }
    let settings = Settings::resolve(g)?;
    let repo = open_repo(g).await?;
    let listener = lifeboat_server::bind(&listen).await?;

    // The jobs run this binary with the same settings file and repository.
    let mut global_args: Vec<String> = crate::commands::wal::global_args(g)
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if g.config.is_none()
        && let Some(p) = config_path(g)
    {
        global_args.extend(["--config".into(), p.display().to_string()]);
    }
    let log: Log = Arc::new(|line: &str| {
        eprintln!("{} {line}", Utc::now().format("%Y-%m-%d %H:%M:%S"));
    });
    let shared = Arc::new(Shared::default());
    let opts = DaemonOptions {
        program: std::env::current_exe().context("cannot find the lifeboat executable")?,
        global_args,
        state_dir: state_dir.clone(),
        stop_timeout,
        refresh,
        tick: Duration::from_millis(250),
        host: lifeboat_repo::repository::local_origin(None).host,
        local_repository: match &settings.location {
            Location::Local(p) => Some(p.clone()),
            _ => None,
        },
        quota,
        default_rpo: targets.rpo.to_std().unwrap_or(Duration::from_secs(86400)),
        drill_every: targets
            .drill_every
            .to_std()
            .unwrap_or(Duration::from_secs(30 * 86400)),
        rto: targets.rto.to_std().ok(),
        settings: file.origin.as_ref().map(|(path, text)| {
            lifeboat_ops::daemon::settings_change::SettingsFile::new(path.clone(), text)
        }),
    };
    let audit_repo = repo.clone();
    let daemon = Daemon::new(
        repo,
        jobs,
        file.source.clone(),
        file.alerts.clone(),
        opts,
        shared.clone(),
        log.clone(),
    )
    .map_err(|e| UsageError(e.to_string()))?;
    log(&format!(
        "serving {} job(s) from {}; metrics on http://{listen}/metrics; state in {}",
        file.job.len(),
        path.display(),
        state_dir.display()
    ));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    {
        let log = log.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => log("SIGTERM: stopping"),
                _ = int.recv() => log("SIGINT: stopping"),
            }
            let _ = stop_tx.send(true);
        });
    }
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let state = lifeboat_server::AppState {
        shared,
        access: Arc::new(lifeboat_server::Access {
            users: Some(users),
            limiter: Default::default(),
            requests: Some(lifeboat_ops::access::requests::RequestStore::new(
                &state_dir,
            )),
            approvals_required: file.approvals.required.unwrap_or(1).max(1),
            approvals_expire: chrono::Duration::from_std(approvals_expire)
                .unwrap_or(chrono::Duration::hours(24)),
            sessions: Default::default(),
        }),
        repo: Some(audit_repo),
    };
    let server = tokio::spawn(lifeboat_server::serve(
        listener,
        state,
        stopped(stop_rx.clone()),
    ));
    daemon.run(stopped(stop_rx)).await?;
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    Ok(())
}
