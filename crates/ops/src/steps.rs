//! Timed steps: every drill and recovery is a list of steps, each with its
//! duration and outcome, so a report shows where the time went and what
//! failed.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// One step of a drill or recovery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// What it did ("restore", "pg_amcheck", …).
    pub name: String,
    /// How long it took.
    pub seconds: f64,
    /// Whether it succeeded.
    pub ok: bool,
    /// What it found or why it failed.
    pub detail: String,
}

/// Records steps as they finish.
#[derive(Debug)]
pub struct StepLog {
    /// When the whole run started.
    pub started: Instant,
    /// The steps so far.
    pub steps: Vec<Step>,
    current: Option<(String, Instant)>,
}

impl Default for StepLog {
    fn default() -> Self {
        Self::new()
    }
}

impl StepLog {
    /// Starts the clock.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            steps: Vec::new(),
            current: None,
        }
    }

    /// Begins a step.
    pub fn begin(&mut self, name: &str) {
        self.current = Some((name.to_string(), Instant::now()));
    }

    /// Ends the current step with its outcome; returns `ok`.
    pub fn end(&mut self, ok: bool, detail: impl Into<String>) -> bool {
        let (name, at) = self
            .current
            .take()
            .unwrap_or_else(|| ("step".into(), Instant::now()));
        self.steps.push(Step {
            name,
            seconds: at.elapsed().as_secs_f64(),
            ok,
            detail: detail.into(),
        });
        ok
    }

    /// Seconds since the run started.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// The failed steps' "name: detail" lines.
    pub fn failures(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter(|s| !s.ok)
            .map(|s| format!("{}: {}", s.name, s.detail))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_keep_order_and_outcome() {
        let mut log = StepLog::new();
        log.begin("restore");
        assert!(log.end(true, "42 files"));
        log.begin("checks");
        assert!(!log.end(false, "orders: 0 < 1"));
        assert_eq!(log.steps.len(), 2);
        assert_eq!(log.failures(), vec!["checks: orders: 0 < 1".to_string()]);
        assert!(log.elapsed() >= log.steps[0].seconds);
    }
}
