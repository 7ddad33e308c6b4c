//! Terminal output: progress bars (only on a terminal), warnings, sizes, JSON.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lifeboat_ops::progress_file::{self, JobProgress};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lifeboat_repo::progress::{DynProgress, Event, Progress};
use serde::Serialize;

use crate::cli::Global;

/// The daemon's progress file for a run: where, what it says, and when it
/// was last written.
type ProgressFile = (PathBuf, Mutex<(JobProgress, Option<Instant>)>);

/// Turns library events into a progress bar and warnings on stderr.
pub struct Reporter {
    bar: Option<ProgressBar>,
    quiet: bool,
    /// The daemon's progress file, when the daemon runs this command.
    file: Option<ProgressFile>,
}

impl Reporter {
    /// A reporter for a command run with `g`: a bar only when stderr is a
    /// terminal and neither `--json` nor `--quiet` was given.
    pub fn new(g: &Global) -> Arc<Self> {
        let bar = (std::io::stderr().is_terminal() && !g.json && !g.quiet).then(|| {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        let file = std::env::var_os(progress_file::ENV)
            .filter(|p| !p.is_empty())
            .map(|p| (PathBuf::from(p), Mutex::new((JobProgress::default(), None))));
        Arc::new(Self {
            bar,
            quiet: g.quiet,
            file,
        })
    }

    /// Updates the daemon's progress file (at most twice a second, and at
    /// once on a new phase). Failing to write it is not the job's failure.
    fn report(&self, event: &Event) {
        let Some((path, state)) = &self.file else {
            return;
        };
        let Ok(mut state) = state.lock() else {
            return;
        };
        let (p, written) = &mut *state;
        let now_due = match event {
            Event::Phase(phase) => {
                *p = JobProgress {
                    phase: phase.to_string(),
                    ..JobProgress::default()
                };
                true
            }
            Event::Total { items, bytes } => {
                (p.total_items, p.total_bytes) = (*items, *bytes);
                (p.done_items, p.done_bytes) = (0, 0);
                true
            }
            Event::Advance { items, bytes } => {
                p.done_items += items;
                p.done_bytes += bytes;
                written.is_none_or(|t| t.elapsed() >= Duration::from_millis(500))
            }
            Event::Warning(_) => false,
        };
        if now_due {
            p.updated = chrono::Utc::now();
            let _ = p.write(path);
            *written = Some(Instant::now());
        }
    }

    /// As a library progress sink.
    pub fn sink(self: &Arc<Self>) -> DynProgress {
        self.clone()
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    /// Prints a line to stderr without tearing the bar.
    pub fn note(&self, line: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

impl Progress for Reporter {
    fn event(&self, event: Event) {
        self.report(&event);
        match event {
            Event::Phase(p) => {
                tracing::info!(phase = %p, "step");
                if let Some(b) = &self.bar {
                    b.set_message(p);
                }
            }
            Event::Total { bytes, .. } => {
                if let Some(b) = &self.bar {
                    b.set_length(bytes);
                    b.set_position(0);
                    b.set_style(
                        ProgressStyle::with_template(
                            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                }
            }
            Event::Advance { bytes, .. } => {
                if let Some(b) = &self.bar {
                    b.inc(bytes);
                }
            }
            Event::Warning(w) => {
                tracing::warn!(warning = %w, "warning");
                if !self.quiet {
                    self.note(&format!("warning: {w}"));
                }
            }
        }
    }
}

/// `1.5 GiB`-style sizes.
pub fn size(bytes: u64) -> String {
    humansize::format_size(bytes, humansize::BINARY)
}

/// Prints a value as pretty JSON on stdout.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    line(format_args!("{}", serde_json::to_string_pretty(value)?))
}

/// Stdout was closed by its reader (`lifeboat snapshots | head -1`): the
/// command ends quietly, as Unix tools do, instead of failing.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
pub struct ClosedPipe;

/// Writes one line to stdout (what `outln!` expands to). A closed pipe is
/// [`ClosedPipe`]; other write errors are errors.
pub fn line(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{args}").and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(ClosedPipe.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to standard output")),
    }
}

/// Seconds with one decimal.
pub fn secs(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}
