//! A limit on wrong passwords: after `max` failures within `window` for
//! one user name from one address, further attempts are refused until the
//! oldest failure leaves the window, whether the password is right or not.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins per (user, address).
#[derive(Debug)]
pub struct LoginLimiter {
    max: usize,
    window: Duration,
    failures: Mutex<HashMap<(String, String), Vec<Instant>>>,
}

impl Default for LoginLimiter {
    /// Five failures in five minutes.
    fn default() -> Self {
        LoginLimiter::new(5, Duration::from_secs(300))
    }
}

impl LoginLimiter {
    /// At most `max` failures per `window`.
    pub fn new(max: usize, window: Duration) -> Self {
        LoginLimiter {
            max,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// How long until `user` from `address` may try again; `None` when it may now.
    pub fn blocked_for(&self, user: &str, address: &str, now: Instant) -> Option<Duration> {
        let mut f = self.failures.lock().ok()?;
        let list = f.get_mut(&(user.to_string(), address.to_string()))?;
        list.retain(|t| now.duration_since(*t) < self.window);
        (list.len() >= self.max).then(|| self.window - now.duration_since(list[0]))
    }

    /// Records a failure.
    pub fn failed(&self, user: &str, address: &str, now: Instant) {
        if let Ok(mut f) = self.failures.lock() {
            // Bounded: forget everything when a flood of names fills it.
            if f.len() > 10_000 {
                f.clear();
            }
            f.entry((user.to_string(), address.to_string()))
                .or_default()
                .push(now);
        }
    }

    /// Forgets the failures after a successful login.
    pub fn succeeded(&self, user: &str, address: &str) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(&(user.to_string(), address.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sixth_try_in_the_window_is_refused_and_allowed_after_it() {
        let l = LoginLimiter::new(5, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..5 {
            assert_eq!(l.blocked_for("ann", "10.0.0.1", t0), None, "try {i}");
            l.failed("ann", "10.0.0.1", t0);
        }
        assert!(l.blocked_for("ann", "10.0.0.1", t0).is_some());
        // Others are not affected.
        assert_eq!(l.blocked_for("ann", "10.0.0.2", t0), None);
        assert_eq!(l.blocked_for("bob", "10.0.0.1", t0), None);
        assert_eq!(
            l.blocked_for("ann", "10.0.0.1", t0 + Duration::from_secs(61)),
            None
        );
    }
}
