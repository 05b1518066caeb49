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

/// ISO 8601 UTC with whole seconds (`2026-11-23T20:50:00Z`): IAM's dates and `aws:CurrentTime`.
#[must_use]
pub fn iso8601(ms: EpochMillis) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The inverse of [`iso8601`]: `YYYY-MM-DDTHH:MM:SS`, optionally with a fraction of a second
/// (kept to the millisecond), then `Z` or a `±HH:MM` offset, as in CloudTrail's `eventTime`.
/// `None` for anything else, including a date that does not exist. The calendar arithmetic is
/// the policy engine's ISO 8601 reader (`coffer_policy::parse_iso8601`); this only insists on
/// the full date-time with a zone, where that reader also takes `YYYY-MM` or a zoneless time.
#[must_use]
pub fn parse_iso8601(text: &str) -> Option<EpochMillis> {
    let b = text.as_bytes();
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let full_date_time = at(4, b'-')
        && at(7, b'-')
        && (at(10, b'T') || at(10, b't'))
        && at(13, b':')
        && at(16, b':')
        && b.len() > 19
        && (matches!(b.last(), Some(b'Z' | b'z'))
            || (matches!(b.get(b.len() - 6), Some(b'+' | b'-')) && at(b.len() - 3, b':')));
    full_date_time
        .then(|| coffer_policy::parse_iso8601(text))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_iso8601_reads_what_iso8601_writes() {
        for ms in [
            0,
            1_795_465_338_000,
            951_782_400_000,
            -1000,
            4_102_444_799_000,
        ] {
            assert_eq!(parse_iso8601(&iso8601(ms)), Some(ms), "{ms}");
        }
        assert_eq!(
            parse_iso8601("2026-11-23T20:22:18.443Z"),
            Some(1_795_465_338_443)
        );
        assert_eq!(
            parse_iso8601("2026-11-23T20:22:18.4Z"),
            Some(1_795_465_338_400)
        );
        assert_eq!(
            parse_iso8601("2026-11-23T21:22:18+01:00"),
            Some(1_795_465_338_000)
        );
        assert_eq!(
            parse_iso8601("2026-11-23T19:52:18-00:30"),
            Some(1_795_465_338_000)
        );
        for bad in [
            "",
            "2026-11-23",
            "2026-11-23T20:22:18",
            "2026-11-23 20:22:18Z",
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T20:22:18.Z",
            "2026-11-23T20:22:18Zx",
            "2026-11-23T20:22:18+0100",
            "+026-11-23T20:22:18Z",
        ] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
    }

    #[test]
    fn iso8601_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_795_465_338_443), "2026-11-23T20:22:18Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(-1000), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at(1000);
        assert_eq!(c.now_millis(), 1000);
        c.advance(500);
        assert_eq!(c.now_millis(), 1500);
        c.set(7);
        assert_eq!(c.now_millis(), 7);
    }
}
