//! Where the repository is and how to unlock it: flags, then environment
//! variables, then `lifeboat.toml`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use lifeboat_storage::retry::RetryPolicy;
use lifeboat_storage::{Location, OpenOptions};
use serde::Deserialize;

use crate::cli::Global;
use crate::exit::UsageError;

/// The `[storage]` table of lifeboat.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageSettings {
    /// Storage operations in flight.
    concurrency: Option<usize>,
    /// Retries of transient failures.
    retries: Option<u32>,
}

/// The `[retention]` table of lifeboat.toml, and each `[[retention.source]]`
/// in it (which must have `match` and may not nest further).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// For a `[[retention.source]]`: text the source ("host kind paths") contains.
    #[serde(rename = "match")]
    pub pattern: Option<String>,
    /// Keep the newest N.
    pub keep_last: Option<u32>,
    /// Keep the newest of each of the last N hours.
    pub keep_hourly: Option<u32>,
    /// … days.
    pub keep_daily: Option<u32>,
    /// … ISO weeks.
    pub keep_weekly: Option<u32>,
    /// … months.
    pub keep_monthly: Option<u32>,
    /// … years.
    pub keep_yearly: Option<u32>,
    /// Keep everything this young.
    pub keep_within: Option<String>,
    /// `KIND=DURATION` rules.
    #[serde(default)]
    pub keep_kind: Vec<String>,
    /// The PostgreSQL point-in-time-recovery window (top level only).
    pub pitr_window: Option<String>,
    /// Per-source overrides (top level only).
    #[serde(default)]
    pub source: Vec<RetentionSettings>,
}

/// The `[maintenance]` table of lifeboat.toml: commands for the
/// application side of `maintenance on|off`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceSettings {
    /// Run (with `sh -c`) before writes are stopped, e.g. to show a maintenance page.
    pub on_command: Option<String>,
    /// Run after writes are allowed again.
    pub off_command: Option<String>,
}

/// The `[recover]` table of lifeboat.toml.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverSettings {
    /// Run (with `sh -c`) to switch the application over to the recovered
    /// server; it sees LIFEBOAT_RECOVERED_PGDATA, _HOST, _PORT and _CONNINFO.
    pub switch_command: Option<String>,
}

/// lifeboat.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    repository: Option<String>,
    password_file: Option<PathBuf>,
    password_command: Option<String>,
    #[serde(default)]
    storage: StorageSettings,
    retention: Option<RetentionSettings>,
    /// Data checks for `verify-data` (and drills).
    #[serde(default)]
    pub check: Vec<lifeboat_postgres::checks::CheckSpec>,
    /// Hooks for `maintenance on|off`.
    #[serde(default)]
    pub maintenance: MaintenanceSettings,
    /// RTO, RPO and the drill and check schedule.
    #[serde(default)]
    pub targets: lifeboat_ops::targets::TargetsConfig,
    /// The switch-over hook of `recover`.
    #[serde(default)]
    pub recover: RecoverSettings,
    /// Declared sources (`--source NAME`).
    #[serde(default)]
    pub source: Vec<lifeboat_ops::config::SourceConfig>,
    /// Sources backed up together (`backup --set NAME`).
    #[serde(default)]
    pub set: Vec<lifeboat_ops::config::SetConfig>,
    /// Scheduled jobs (`lifeboat serve`).
    #[serde(default)]
    pub job: Vec<lifeboat_ops::config::JobConfig>,
    /// The daemon.
    #[serde(default)]
    pub serve: lifeboat_ops::config::ServeConfig,
    /// Alert rules and routes.
    #[serde(default)]
    pub alerts: lifeboat_ops::config::AlertsConfig,
    /// Approval of restores into protected sources.
    #[serde(default)]
    pub approvals: lifeboat_ops::config::ApprovalsConfig,
    /// How data subjects are found, for `erase` and the erasure replay of restores.
    #[serde(default)]
    pub erasure: Vec<lifeboat_postgres::erasure::ErasureRule>,
    /// How a data subject's objects are found in buckets.
    #[serde(default)]
    pub bucket_erasure: Vec<lifeboat_sources::bucket::erasure::BucketErasureRule>,
    /// Where the file was read from, and its text (for messages naming lines).
    #[serde(skip)]
    pub origin: Option<(PathBuf, String)>,
}

/// The settings file to read: --config or LIFEBOAT_CONFIG, else
/// `/etc/lifeboat/lifeboat.toml`, else `$XDG_CONFIG_HOME/lifeboat/lifeboat.toml`
/// (`~/.config/…`), when they exist.
pub fn config_path(g: &Global) -> Option<PathBuf> {
    if let Some(p) = &g.config {
        return Some(p.clone());
    }
    let system = PathBuf::from("/etc/lifeboat/lifeboat.toml");
    if system.exists() {
        return Some(system);
    }
    let user = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?
        .join("lifeboat/lifeboat.toml");
    user.exists().then_some(user)
}

impl FileSettings {
    /// The settings file (see [`config_path`]), or defaults.
    pub fn load(g: &Global) -> Result<Self> {
        match config_path(g) {
            Some(p) => read_file_settings(&p),
            None => Ok(Self::default()),
        }
    }

    /// The declared source `name`.
    pub fn source(&self, name: &str) -> Result<&lifeboat_ops::config::SourceConfig> {
        self.source
            .iter()
            .find(|s| s.name.get_ref() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self
                    .source
                    .iter()
                    .map(|s| s.name.get_ref().as_str())
                    .collect();
                UsageError(format!(
                    "--source {name:?}: no [[source]] of that name in {} (declared: {})",
                    self.origin
                        .as_ref()
                        .map(|(p, _)| p.display().to_string())
                        .unwrap_or_else(|| "the settings (no settings file was found)".into()),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ))
                .into()
            })
    }

    /// The `[[job]]`s, checked against the sources; mistakes name the line.
    pub fn jobs(&self) -> Result<Vec<lifeboat_ops::config::Job>> {
        let (file, text) = self
            .origin
            .as_ref()
            .map(|(p, t)| (p.display().to_string(), t.as_str()))
            .unwrap_or_else(|| ("the settings".into(), ""));
        lifeboat_ops::config::jobs(&file, text, &self.source, &self.set, &self.job)
            .map_err(|e| UsageError(e.to_string()).into())
    }
}

/// How to obtain the passphrase.
#[derive(Debug, Clone)]
pub enum PasswordSource {
    /// Read the first line of a file.
    File(PathBuf),
    /// Run a shell command.
    Command(String),
    /// The value of LIFEBOAT_PASSWORD.
    Env(String),
    /// Ask on the terminal.
    Prompt,
}

/// Everything needed to reach and unlock the repository.
#[derive(Debug)]
pub struct Settings {
    /// Parsed location.
    pub location: Location,
    /// Location as given, for messages.
    pub location_text: String,
    /// Passphrase source.
    pub password: PasswordSource,
    /// Storage wrapper options.
    pub storage: OpenOptions,
    /// Retention rules from lifeboat.toml.
    pub retention: Option<RetentionSettings>,
}

fn read_file_settings(path: &Path) -> Result<FileSettings> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        UsageError(format!(
            "cannot read settings file {}: {}",
            path.display(),
            crate::exit::os_message(&e)
        ))
    })?;
    let mut settings: FileSettings = toml::from_str(&text).map_err(|e| {
        UsageError(format!(
            "settings file {} is invalid: {}",
            path.display(),
            e.to_string().trim_end()
        ))
    })?;
    settings.origin = Some((path.to_path_buf(), text));
    Ok(settings)
}

/// Where a replica is and how to unlock it (`copy --to`).
#[derive(Debug)]
pub struct Target {
    /// Parsed location.
    pub location: Location,
    /// Location as given, for messages.
    pub location_text: String,
    /// Passphrase source.
    pub password: PasswordSource,
}

impl Target {
    /// Resolves the replica's location and passphrase source: the flags,
    /// then LIFEBOAT_TO_PASSWORD, then a prompt.
    pub fn resolve(to: &str, file: Option<&Path>, command: Option<&str>) -> Result<Self> {
        let location =
            Location::parse(to).map_err(|e| UsageError(format!("invalid --to location: {e}")))?;
        let password = if let Some(f) = file {
            PasswordSource::File(f.to_path_buf())
        } else if let Some(c) = command {
            PasswordSource::Command(c.to_string())
        } else if let Ok(p) = std::env::var("LIFEBOAT_TO_PASSWORD") {
            PasswordSource::Env(p)
        } else {
            PasswordSource::Prompt
        };
        Ok(Self {
            location,
            location_text: to.to_string(),
            password,
        })
    }
}

impl Settings {
    /// Resolves the settings for a command.
    pub fn resolve(g: &Global) -> Result<Self> {
        let file = FileSettings::load(g)?;
        let location_text = g.repo.clone().or(file.repository).ok_or_else(|| {
            UsageError("no repository given: set LIFEBOAT_REPOSITORY, pass --repo, or set `repository` in lifeboat.toml".into())
        })?;
        let location = Location::parse(&location_text)
            .map_err(|e| UsageError(format!("invalid repository location: {e}")))?;
        let password = if let Some(f) = &g.password_file {
            PasswordSource::File(f.clone())
        } else if let Some(c) = &g.password_command {
            PasswordSource::Command(c.clone())
        } else if let Ok(p) = std::env::var("LIFEBOAT_PASSWORD") {
            PasswordSource::Env(p)
        } else if let Some(f) = file.password_file {
            PasswordSource::File(f)
        } else if let Some(c) = file.password_command {
            PasswordSource::Command(c)
        } else {
            PasswordSource::Prompt
        };
        let mut storage = OpenOptions::default();
        if let Some(c) = file.storage.concurrency {
            storage.max_concurrency = c.max(1);
        }
        if let Some(r) = file.storage.retries {
            storage.retry = RetryPolicy {
                max_retries: r,
                ..RetryPolicy::default()
            };
        }
        Ok(Self {
            location,
            location_text,
            password,
            storage,
            retention: file.retention,
        })
    }
}
