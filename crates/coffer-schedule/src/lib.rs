//! Secrets Manager rotation schedules, as pure functions: the `RotationRules` of
//! `RotateSecret` (`AutomaticallyAfterDays`, `ScheduleExpression` with `rate()` or AWS's
//! six-field `cron()`, `Duration`) parsed and validated with AWS's error codes and messages,
//! and the rotation windows they define.
//!
//! This crate owns what a schedule means: which rules Secrets Manager accepts, when the next
//! rotation window opens and closes, where inside a window a rotation fires, and how
//! `DescribeSecret` shows the rules. It must never do IO, read a clock (every time is an
//! argument, in epoch milliseconds, UTC), hold global state, know a wire format (the caller
//! decodes JSON into [`RotationRules`]) or panic on any input.
//!
//! ```
//! use coffer_schedule::{RotationRules, Schedule};
//!
//! let rules = RotationRules {
//!     schedule_expression: Some("cron(0 16 1,15 * ? *)".into()),
//!     duration: Some("3h".into()),
//!     ..RotationRules::default()
//! };
//! let schedule = Schedule::parse(&rules).unwrap();
//! // 2026-11-23T00:00:00Z
//! let window = schedule.next_window(None, 1_795_392_000_000);
//! assert_eq!(window.start_ms, 1_796_140_800_000); // 2026-12-01T16:00:00Z
//! assert_eq!(window.end_ms, 1_796_151_600_000); // 19:00
//! let fire = schedule.fire_at(&window, 0x5eed);
//! assert!(window.start_ms <= fire && fire < window.end_ms);
//! ```
//!
//! The rules, with their evidence:
//! - `AutomaticallyAfterDays` or `ScheduleExpression`, "but not both" (`RotationRulesType`
//!   in `secretsmanager/2017-10-17/service-2.json`); both is `InvalidParameterException`
//!   "You cannot specify both rotation frequency and schedule expression together." (quoted
//!   from AWS in terraform-provider-aws issues #30540 and #33329).
//! - Model constraints (`ValidationException`, AWS's generic "N validation error(s)
//!   detected" text): `AutomaticallyAfterDays` 1..=1000, `Duration` 2..=3 characters matching
//!   `[0-9]+h`, `ScheduleExpression` 1..=256 characters matching
//!   `[0-9A-Za-z\(\)#\?\*\-\/, ]+`.
//! - `rate(Value Unit)`, "where Value is a positive integer and Unit can be hour, hours, day,
//!   or days"; "You can rotate a secret as often as every four hours. The maximum rotation
//!   period is 999 days." (user guide, "Rotation schedules").
//! - `cron()`: see the `cron` module; Minutes must be `0`, Year must be `*`.
//! - Windows "always start on the hour"; a `rate()` in days starts at midnight. By default a
//!   window "closes after one hour for a rotation schedule in hours, and at the end of the day
//!   for a rotation schedule in days". A `Duration` "must not extend into the next rotation
//!   window or the next UTC day": for a schedule in hours the window is at most the hours
//!   between rotations, for one in days the start hour plus the window is at most 24 hours;
//!   "You can set the rotation window as small as one hour."
//! - `AutomaticallyAfterDays`: "Secrets Manager calculates the next rotation date based on the
//!   previous rotation", and `DescribeSecret` shows it "calculated from the rotation schedule"
//!   also when a `ScheduleExpression` is set (terraform-provider-aws `secret_rotation.go`:
//!   "If ScheduleExpression is set, AutomaticallyAfterDays will be the result of AWS
//!   calculating the number of days between rotations"); a `Duration` is shown only when one
//!   was given, and an `AutomaticallyAfterDays` schedule shows no `ScheduleExpression`
//!   (the provider's acceptance tests against AWS).

#![forbid(unsafe_code)]

mod civil;
mod cron;
mod error;
mod rules;

use civil::{DAY_MS, HOUR_MS};
use cron::CronSpec;

pub use error::{ErrorCode, ScheduleError};
pub use rules::RotationRules;

/// A rotation window: Secrets Manager rotates the secret at some time in
/// `start_ms..end_ms` (epoch milliseconds, UTC; the end is exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// When the window opens (always on the hour).
    pub start_ms: i64,
    /// When the window closes (exclusive).
    pub end_ms: i64,
}

impl Window {
    /// No window: none opens before the end of the range this crate computes (years 1 to
    /// 4999 for `cron()`, the `i64` millisecond range otherwise).
    pub const NEVER: Window = Window {
        start_ms: i64::MAX,
        end_ms: i64::MAX,
    };

    /// Whether this is [`Window::NEVER`].
    pub fn is_never(&self) -> bool {
        *self == Window::NEVER
    }

    /// Whether `ms` lies in the window.
    pub fn contains(&self, ms: i64) -> bool {
        self.start_ms <= ms && ms < self.end_ms
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// `AutomaticallyAfterDays`: N days after the last rotation.
    AfterDays(u32),
    /// `rate(N days)`: as `AutomaticallyAfterDays`, written as an expression.
    RateDays(u32),
    /// `rate(N hours)`, 4 <= N <= 23: windows at 0:00, N:00, 2N:00 … of every UTC day. AWS
    /// says only that the window "starts at midnight"; resetting each day, as an hour
    /// increment in `cron()` does, is this crate's reading.
    RateHours(u32),
    /// `cron(...)`.
    Cron(Box<CronSpec>),
}

/// How long a window stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    Hours(u32),
    EndOfDay,
}

/// Valid rotation rules: a schedule of rotation windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    rules: RotationRules,
    kind: Kind,
    length: Length,
}

/// The earliest instant croner searches from: 0001-01-01T00:00:00Z.
const YEAR_ONE_MS: i128 = -62_135_596_800_000;

fn invalid_expression(expr: &str, reason: &str) -> ScheduleError {
    ScheduleError::invalid_parameter(format!("Invalid schedule expression: {expr}. {reason}"))
}

fn invalid_duration(duration: &str, reason: &str) -> ScheduleError {
    ScheduleError::invalid_parameter(format!("Invalid Duration: {duration}. {reason}"))
}

const WINDOW_TOO_SHORT: &str = "The rotation window must be at least one hour.";
const WINDOW_PAST_DAY: &str = "The rotation window must not extend into the next UTC day: the \
    start hour plus the window duration must be less than or equal to 24 hours.";
const WINDOW_OVERLAP: &str = "The rotation window must not extend into the next rotation \
    window: the window duration must be less than or equal to the number of hours between \
    rotations.";

/// Parses `rate(Value Unit)`.
fn parse_rate(expr: &str, inner: &str) -> Result<Kind, ScheduleError> {
    const SYNTAX: &str = "A rate expression has the format rate(Value Unit), where Value is a \
        positive integer and Unit is hour, hours, day, or days.";
    let mut parts = inner.split_whitespace();
    let (Some(value), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid_expression(expr, SYNTAX));
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid_expression(expr, SYNTAX));
    }
    // Any value past u32 is far past every limit below.
    let value = value.parse::<u32>().unwrap_or(u32::MAX);
    if value == 0 {
        return Err(invalid_expression(expr, SYNTAX));
    }
    // The user guide lists "hour, hours, day, or days" without tying the singular to 1.
    match unit {
        "hour" | "hours" => {
            if value < 4 {
                Err(invalid_expression(
                    expr,
                    "You can rotate a secret as often as every four hours.",
                ))
            } else if value > 23 {
                Err(invalid_expression(
                    expr,
                    "A rate in hours must be less than 24 hours; use a rate in days.",
                ))
            } else {
                Ok(Kind::RateHours(value))
            }
        }
        "day" | "days" => {
            if value > 999 {
                Err(invalid_expression(
                    expr,
                    "The maximum rotation period is 999 days.",
                ))
            } else {
                Ok(Kind::RateDays(value))
            }
        }
        _ => Err(invalid_expression(expr, SYNTAX)),
    }
}

fn parse_expression(expr: &str) -> Result<Kind, ScheduleError> {
    if let Some(inner) = expr.strip_prefix("rate(").and_then(|s| s.strip_suffix(')')) {
        return parse_rate(expr, inner);
    }
    if let Some(inner) = expr.strip_prefix("cron(").and_then(|s| s.strip_suffix(')')) {
        return CronSpec::parse(inner)
            .map(|spec| Kind::Cron(Box::new(spec)))
            .map_err(|problem| invalid_expression(expr, &problem.reason()));
    }
    Err(invalid_expression(
        expr,
        "Use a cron() or rate() expression.",
    ))
}

/// Checks `Duration` against the schedule: at least an hour, within the UTC day the window
/// opens on, and not into the next window of a schedule in hours.
fn check_duration(kind: &Kind, duration: &str) -> Result<u32, ScheduleError> {
    // The model checks passed: `[0-9]+h` of at most 3 characters, so at most 99.
    let hours = duration
        .strip_suffix('h')
        .and_then(|d| d.parse::<u32>().ok())
        .unwrap_or(u32::MAX);
    if hours == 0 {
        return Err(invalid_duration(duration, WINDOW_TOO_SHORT));
    }
    // (latest start hour of a window, fewest hours between windows of one day)
    let (last_start, gap) = match kind {
        Kind::AfterDays(_) | Kind::RateDays(_) => (0, None),
        Kind::RateHours(n) => ((23 / n) * n, Some(*n)),
        Kind::Cron(spec) => (spec.first_last_hour().1, spec.min_gap_hours()),
    };
    if gap.is_some_and(|gap| hours > gap) {
        return Err(invalid_duration(duration, WINDOW_OVERLAP));
    }
    if last_start.saturating_add(hours) > 24 {
        return Err(invalid_duration(duration, WINDOW_PAST_DAY));
    }
    Ok(hours)
}

fn to_ms(v: i128) -> Option<i64> {
    i64::try_from(v).ok()
}

impl Schedule {
    /// Validates rotation rules as `RotateSecret` does: the model constraints first
    /// (`ValidationException`), then Secrets Manager's rules (`InvalidParameterException`).
    pub fn parse(rules: &RotationRules) -> Result<Schedule, ScheduleError> {
        rules::check_model(rules)?;
        let kind = match (&rules.automatically_after_days, &rules.schedule_expression) {
            (Some(_), Some(_)) => {
                return Err(ScheduleError::invalid_parameter(
                    "You cannot specify both rotation frequency and schedule expression together.",
                ));
            }
            (None, None) => {
                return Err(ScheduleError::invalid_parameter(
                    "You must specify either rotation frequency or schedule expression.",
                ));
            }
            // The model check bounds days to 1..=1000.
            (Some(days), None) => Kind::AfterDays(u32::try_from(*days).unwrap_or(1000)),
            (None, Some(expr)) => parse_expression(expr)?,
        };
        let length = match &rules.duration {
            Some(duration) => Length::Hours(check_duration(&kind, duration)?),
            None => match &kind {
                Kind::AfterDays(_) | Kind::RateDays(_) => Length::EndOfDay,
                Kind::RateHours(_) => Length::Hours(1),
                Kind::Cron(spec) if spec.is_hourly() => Length::Hours(1),
                Kind::Cron(_) => Length::EndOfDay,
            },
        };
        Ok(Schedule {
            rules: rules.clone(),
            kind,
            length,
        })
    }

    /// The rules as they were given and accepted: what to store, and to parse again later.
    pub fn given_rules(&self) -> &RotationRules {
        &self.rules
    }

    /// The rules as `DescribeSecret` and `ListSecrets` show them: what was given, verbatim,
    /// plus `AutomaticallyAfterDays` for a `rate()` in days (AWS calculates it from the
    /// schedule). A `Duration` appears only if one was given.
    ///
    /// For a `rate()` in days these rules hold both members, so passing them back to
    /// `RotateSecret` is refused ("You cannot specify both …"), as it is by AWS (the cause of
    /// terraform-provider-aws issue #33329). Store [`Schedule::given_rules`], not these.
    pub fn rules(&self) -> RotationRules {
        let mut rules = self.rules.clone();
        if let Kind::RateDays(days) = self.kind {
            rules.automatically_after_days = Some(i64::from(days));
        }
        rules
    }

    /// Whether rotations come more than once a day (a `rate()` or `cron()` "in hours"),
    /// whose windows close after one hour by default.
    pub fn is_hourly(&self) -> bool {
        match &self.kind {
            Kind::AfterDays(_) | Kind::RateDays(_) => false,
            Kind::RateHours(_) => true,
            Kind::Cron(spec) => spec.is_hourly(),
        }
    }

    /// The first rotation window that starts at or after `after_ms`.
    ///
    /// For `AutomaticallyAfterDays` N and `rate(N days)` the window is the UTC day N days
    /// after the day of `last_rotated_ms` (or of `after_ms` if the secret was never rotated);
    /// if that day opened before `after_ms` (an overdue rotation), the next UTC midnight at or
    /// after `after_ms` opens the window instead. `rate(N hours)` and `cron()` windows are
    /// fixed by the expression and ignore `last_rotated_ms`.
    ///
    /// Returns [`Window::NEVER`] when no window opens within the range this crate computes.
    pub fn next_window(&self, last_rotated_ms: Option<i64>, after_ms: i64) -> Window {
        let after = i128::from(after_ms);
        let start = match &self.kind {
            Kind::AfterDays(days) | Kind::RateDays(days) => {
                let base = i128::from(last_rotated_ms.unwrap_or(after_ms));
                let due = civil::day_of(base) + i128::from(*days);
                due.max(civil::first_day_starting_at_or_after(after)) * DAY_MS
            }
            Kind::RateHours(n) => {
                let day = civil::day_of(after) * DAY_MS;
                let step = i128::from(*n) * HOUR_MS;
                // Starts today at 0, n, 2n … < 24 hours; else tomorrow at midnight.
                let k = (after - day + step - 1).div_euclid(step);
                let candidate = day + k * step;
                if candidate < day + DAY_MS {
                    candidate
                } else {
                    day + DAY_MS
                }
            }
            Kind::Cron(spec) => match next_cron(spec, after) {
                Some(start) => start,
                None => return Window::NEVER,
            },
        };
        let end = match self.length {
            Length::Hours(h) => start + i128::from(h) * HOUR_MS,
            Length::EndOfDay => (civil::day_of(start) + 1) * DAY_MS,
        };
        match (to_ms(start), to_ms(end)) {
            (Some(start_ms), Some(end_ms)) => Window { start_ms, end_ms },
            _ => Window::NEVER,
        }
    }

    /// A deterministic time inside `window` (`start_ms <= t < end_ms`): AWS rotates at a
    /// random time in the window; this spreads rotations the same way but reproducibly,
    /// from a `seed` the caller derives from the secret (its ARN, say). An empty or inverted
    /// window gives its start.
    pub fn fire_at(&self, window: &Window, seed: u64) -> i64 {
        let len = i128::from(window.end_ms) - i128::from(window.start_ms);
        if len <= 0 {
            return window.start_ms;
        }
        // The window's start is mixed in so one secret does not fire at the same offset in
        // every window.
        let r = splitmix64(seed ^ splitmix64(window.start_ms as u64));
        let offset = i128::from(r) % len;
        to_ms(i128::from(window.start_ms) + offset).unwrap_or(window.start_ms)
    }
}

/// The first occurrence of `spec` at or after `after` (ms), via croner (second precision,
/// so `after` is rounded up to a whole second; occurrences are on the hour).
fn next_cron(spec: &CronSpec, after: i128) -> Option<i128> {
    let after = after.max(YEAR_ONE_MS);
    let secs = after.div_euclid(1000) + i128::from(after.rem_euclid(1000) != 0);
    let secs = i64::try_from(secs).ok()?;
    let from = chrono::DateTime::<chrono::Utc>::from_timestamp(secs, 0)?;
    let next = spec.croner.find_next_occurrence(&from, true).ok()?;
    Some(i128::from(next.timestamp_millis()))
}

/// SplitMix64's output function: a well-mixed 64-bit value from any 64-bit input.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
