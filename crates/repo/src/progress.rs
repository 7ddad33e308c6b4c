//! Progress and findings as an event stream.
//!
//! Libraries never print: long operations report through a [`Progress`]
//! implementation injected by the caller. The command line turns events into
//! progress bars and warnings; the daemon will turn them into metrics.

use std::sync::Arc;

/// One thing that happened during a long operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A new phase started (for a spinner or log line).
    Phase(&'static str),
    /// The amount of work in the current phase is now known.
    Total {
        /// Items (files, packs, snapshots).
        items: u64,
        /// Bytes.
        bytes: u64,
    },
    /// Work finished since the last event.
    Advance {
        /// Items completed.
        items: u64,
        /// Bytes completed.
        bytes: u64,
    },
    /// Something was skipped or looks wrong but the operation continues.
    Warning(String),
}

/// Receives [`Event`]s. Must be cheap: it is called from hot loops.
pub trait Progress: Send + Sync {
    /// Handles one event.
    fn event(&self, event: Event);
}

/// Ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _event: Event) {}
}

/// A shared progress sink.
pub type DynProgress = Arc<dyn Progress>;

/// A sink that ignores everything, shared.
pub fn none() -> DynProgress {
    Arc::new(NoProgress)
}

/// Collects events, for tests.
#[derive(Debug, Default)]
pub struct Recorder {
    events: std::sync::Mutex<Vec<Event>>,
}

impl Recorder {
    /// All events so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// The warnings so far.
    pub fn warnings(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Warning(w) => Some(w),
                _ => None,
            })
            .collect()
    }
}

impl Progress for Recorder {
    fn event(&self, event: Event) {
        if let Ok(mut e) = self.events.lock() {
            e.push(event);
        }
    }
}
