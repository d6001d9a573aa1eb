//! Time for the blocking drivers: a [`Clock`] trait with a real implementation
//! ([`StdClock`]) and a manual one ([`ManualClock`]) whose `sleep` just moves time forward.
//!
//! The driver never calls `Instant::now()` itself, so its timeouts are tested with a manual
//! clock in microseconds, and the simulator can run on virtual time when a test wants
//! outcomes that do not depend on how loaded the machine is.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A monotonic clock the driver polls and sleeps on.
pub trait Clock: Send + Sync {
    /// Time since this clock's epoch.
    fn now(&self) -> Duration;
    /// Block (or, for a manual clock, advance) for `d`.
    fn sleep(&self, d: Duration);
}

/// The real monotonic clock (`std::time::Instant`), epoch at construction.
#[derive(Clone, Copy, Debug)]
pub struct StdClock {
    epoch: Instant,
}

impl StdClock {
    /// A clock whose epoch is now.
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
        }
    }
}

impl Default for StdClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for StdClock {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// A clock that only moves when told to: `sleep` advances it instantly.
///
/// Clones share the same time, so a test (or the simulated world) and the driver see one
/// timeline.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    now: Arc<Mutex<Duration>>,
}

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Move time forward by `d`.
    pub fn advance(&self, d: Duration) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sleep(&self, d: Duration) {
        self.advance(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_slept_and_clones_share_time() {
        let a = ManualClock::new();
        let b = a.clone();
        assert_eq!(a.now(), Duration::ZERO);
        b.sleep(Duration::from_millis(7));
        assert_eq!(a.now(), Duration::from_millis(7));
    }

    #[test]
    fn std_clock_is_monotonic_and_sleeps_at_least_the_requested_time() {
        let c = StdClock::new();
        let t0 = c.now();
        c.sleep(Duration::from_millis(2));
        assert!(c.now() >= t0 + Duration::from_millis(2));
    }
}
