//! UTC day arithmetic on epoch milliseconds, in `i128` so no `i64` input can overflow.

pub(crate) const HOUR_MS: i128 = 3_600_000;
pub(crate) const DAY_MS: i128 = 86_400_000;

/// The UTC day (days since 1970-01-01) that contains `ms`.
pub(crate) fn day_of(ms: i128) -> i128 {
    ms.div_euclid(DAY_MS)
}

/// The first UTC day that starts at or after `ms`.
pub(crate) fn first_day_starting_at_or_after(ms: i128) -> i128 {
    let day = day_of(ms);
    if day * DAY_MS == ms { day } else { day + 1 }
}

/// The most days `month` (1..=12) ever has (February: 29); 0 out of range.
pub(crate) fn max_days_in_month(month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 => 29,
        _ => 0,
    }
}
