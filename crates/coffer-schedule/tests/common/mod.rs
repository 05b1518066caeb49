//! Helpers shared by the integration tests: UTC civil time, a small PRNG, rule builders.
#![allow(dead_code)]

use coffer_schedule::RotationRules;

pub const MINUTE: i64 = 60_000;
pub const HOUR: i64 = 3_600_000;
pub const DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month, day)` of a day number.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Epoch milliseconds of `YYYY-MM-DDTHH:MM` or `YYYY-MM-DDTHH:MM:SS.mmm` (UTC).
pub fn t(s: &str) -> i64 {
    let num = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, mo, d, h, mi) = (num(0, 4), num(5, 7), num(8, 10), num(11, 13), num(14, 16));
    let (sec, milli) = if s.len() > 16 {
        (num(17, 19), num(20, 23))
    } else {
        (0, 0)
    };
    days_from_civil(y, mo as u32, d as u32) * DAY + h * HOUR + mi * MINUTE + sec * 1000 + milli
}

/// `YYYY-MM-DDTHH:MM` of epoch milliseconds (for failure messages).
pub fn show(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY));
    let rest = ms.rem_euclid(DAY);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}",
        rest / HOUR,
        rest % HOUR / MINUTE,
        rest % MINUTE / 1000,
        rest % 1000
    )
}

/// SplitMix64: a small deterministic PRNG for property tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo) as u64) as i64
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

pub fn days(n: i64) -> RotationRules {
    RotationRules {
        automatically_after_days: Some(n),
        ..RotationRules::default()
    }
}

pub fn expr(e: &str) -> RotationRules {
    RotationRules {
        schedule_expression: Some(e.into()),
        ..RotationRules::default()
    }
}

pub fn with_duration(mut rules: RotationRules, d: &str) -> RotationRules {
    rules.duration = Some(d.into());
    rules
}
