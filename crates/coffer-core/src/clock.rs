//! Time for the domain: every schedule, recovery window and expiry reads the clock through
//! [`Clock`], so tests move time instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, UTC.
pub type EpochMillis = i64;

/// A source of the current time.
pub trait Clock: Send + Sync {
    fn now_millis(&self) -> EpochMillis;
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> EpochMillis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A clock that starts at the system time and moves only when told to: for tests and for
/// `coffer server --dev --manual-clock`.
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    #[must_use]
    pub fn starting_now() -> Self {
        Self::at(SystemClock.now_millis())
    }

    #[must_use]
    pub fn at(millis: EpochMillis) -> Self {
        Self {
            now: AtomicI64::new(millis),
        }
    }

    /// Moves the clock forward by `millis` (negative moves it back).
    pub fn advance(&self, millis: i64) {
        self.now.fetch_add(millis, Ordering::SeqCst);
    }

    pub fn set(&self, millis: EpochMillis) {
        self.now.store(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> EpochMillis {
        self.now.load(Ordering::SeqCst)
    }
}
