//! Structured logs (`-v`, `--log-level`, `--log-file`): what lifeboat did,
//! step by step, for people debugging a run and for log collectors. Off
//! unless asked for, so ordinary output stays as it is.

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::sync::Mutex;

use anyhow::{Context, Result};
use tracing_subscriber::EnvFilter;

use crate::cli::Global;
use crate::exit::UsageError;

/// The filter the options ask for, if any: `--log-level` wins over `-v`.
fn filter(g: &Global) -> Option<String> {
    if let Some(l) = &g.log_level {
        return Some(l.clone());
    }
    match g.verbose {
        0 if g.log_file.is_some() => Some("info".into()),
        0 => None,
        1 => Some("info".into()),
        2 => Some("debug".into()),
        _ => Some("trace".into()),
    }
}

/// Installs the log subscriber: human-readable lines on stderr, or JSON
/// lines appended to `--log-file`.
pub fn init(g: &Global) -> Result<()> {
    let Some(spec) = filter(g) else {
        return Ok(());
    };
    let filter = EnvFilter::try_new(&spec).map_err(|e| {
        UsageError(format!(
            "--log-level {spec:?}: {e}; use error, warn, info, debug or trace (or a filter such as info,lifeboat_postgres=debug)"
        ))
    })?;
    let installed = match &g.log_file {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the log file {}", path.display()))?;
            tracing_subscriber::fmt()
                .json()
                .with_env_filter(filter)
                .with_writer(Mutex::new(file))
                .try_init()
        }
        None => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot start logging: {e}"))
}
