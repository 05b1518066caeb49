//! A brute-force oracle for `cron()` windows: walk the clock minute by minute with an
//! independent, naive reading of AWS's cron fields and check that `next_window` opens at
//! exactly the first matching minute, for many expressions (`L`, `W`, `LW`, `#`, `?`, names,
//! ranges, steps) and start times. (AWS requires `*` in the Year field, so no specific years.)

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions: a failure is a panic

mod common;

use coffer_schedule::{RotationRules, Schedule};
use common::{DAY, HOUR, MINUTE, Rng, civil_from_days, days_from_civil, show, t};

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn num(s: &str, names: &[&str], first: u32) -> u32 {
    match names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        Some(i) => first + i as u32,
        None => s.parse().unwrap(),
    }
}

/// Does one comma-separated list (`*`, `a`, `a-b`, `x/s`, `a-b/s`, `/s`) contain `v`?
fn in_list(field: &str, v: u32, min: u32, max: u32, names: &[&str]) -> bool {
    field.split(',').any(|item| {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s.parse::<u32>().unwrap())),
            None => (item, None),
        };
        let (lo, hi) = if range == "*" || range.is_empty() {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (num(a, names, min), num(b, names, min))
        } else {
            let a = num(range, names, min);
            (a, if step.is_some() { max } else { a })
        };
        lo <= v && v <= hi && (v - lo).is_multiple_of(step.unwrap_or(1))
    })
}

fn month_len(y: i64, m: u32) -> u32 {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ][m as usize - 1]
}

/// Quartz weekday (1 = Sunday) of a civil date.
fn weekday(y: i64, m: u32, d: u32) -> u32 {
    ((days_from_civil(y, m, d) + 4).rem_euclid(7) + 1) as u32
}

fn is_workday(w: u32) -> bool {
    (2..=6).contains(&w)
}

struct Reference {
    hours: String,
    dom: String,
    month: String,
    dow: String,
}

impl Reference {
    fn new(expression: &str) -> Reference {
        let inner = &expression["cron(".len()..expression.len() - 1];
        let f: Vec<String> = inner
            .split_whitespace()
            .map(str::to_ascii_uppercase)
            .collect();
        assert_eq!((f[0].parse::<u32>().unwrap(), f[5].as_str()), (0, "*"));
        Reference {
            hours: f[1].clone(),
            dom: f[2].clone(),
            month: f[3].clone(),
            dow: f[4].clone(),
        }
    }

    fn hour(&self, h: u32) -> bool {
        in_list(&self.hours, h, 0, 23, &[])
    }

    fn hours_per_day(&self) -> usize {
        (0..24).filter(|&h| self.hour(h)).count()
    }

    fn day(&self, y: i64, m: u32, d: u32) -> bool {
        if !in_list(&self.month, m, 1, 12, &MONTHS) {
            return false;
        }
        let len = month_len(y, m);
        let w = weekday(y, m, d);
        match (self.dom.as_str(), self.dow.as_str()) {
            ("?", dow) => {
                if dow == "L" {
                    w == 7
                } else if let Some((x, n)) = dow.split_once('#') {
                    w == num(x, &WEEKDAYS, 1) && d.div_ceil(7) == n.parse::<u32>().unwrap()
                } else if let Some(x) = dow.strip_suffix('L') {
                    w == num(x, &WEEKDAYS, 1) && d + 7 > len
                } else {
                    in_list(dow, w, 1, 7, &WEEKDAYS)
                }
            }
            ("L", _) => d == len,
            ("LW", _) => {
                let mut last = len;
                while !is_workday(weekday(y, m, last)) {
                    last -= 1;
                }
                d == last
            }
            (dom, _) if dom.ends_with('W') => {
                let n: u32 = dom[..dom.len() - 1].parse().unwrap();
                if n > len {
                    return false;
                }
                let target = match weekday(y, m, n) {
                    7 if n == 1 => 3,
                    7 => n - 1,
                    1 if n == len => n - 2,
                    1 => n + 1,
                    _ => n,
                };
                d == target
            }
            (dom, _) => in_list(dom, d, 1, 31, &[]),
        }
    }
}

const HORIZON_MINUTES: i64 = 2 * 366 * 24 * 60;

/// The first minute at or after `after` that matches, walking minute by minute for up to
/// about two years; `None` if none does.
fn first_match(r: &Reference, after: i64) -> Option<i64> {
    let mut now = after.div_euclid(MINUTE) * MINUTE;
    if now < after {
        now += MINUTE;
    }
    let mut cached_day = i64::MIN;
    let mut day_ok = false;
    for _ in 0..HORIZON_MINUTES {
        let day = now.div_euclid(DAY);
        if day != cached_day {
            cached_day = day;
            let (y, m, d) = civil_from_days(day);
            day_ok = r.day(y, m, d);
        }
        let minute_of_day = now.rem_euclid(DAY) / MINUTE;
        if day_ok && minute_of_day % 60 == 0 && r.hour((minute_of_day / 60) as u32) {
            return Some(now);
        }
        now += MINUTE;
    }
    None
}

fn check(expression: &str, after: i64) {
    let rules = RotationRules {
        schedule_expression: Some(expression.into()),
        ..RotationRules::default()
    };
    let schedule = Schedule::parse(&rules).unwrap_or_else(|e| panic!("{expression}: {e}"));
    let reference = Reference::new(expression);
    let w = schedule.next_window(None, after);
    match first_match(&reference, after) {
        Some(start) => {
            assert_eq!(
                w.start_ms,
                start,
                "{expression} after {}: got {}, the stepper found {}",
                show(after),
                show(w.start_ms),
                show(start)
            );
            let end = if reference.hours_per_day() > 1 {
                start + HOUR
            } else {
                (start.div_euclid(DAY) + 1) * DAY
            };
            assert_eq!(w.end_ms, end, "{expression} after {}", show(after));
        }
        None => assert!(
            w.start_ms >= after + HORIZON_MINUTES * MINUTE,
            "{expression} after {}: got {}, the stepper found none in two years",
            show(after),
            show(w.start_ms)
        ),
    }
}

const EXPRESSIONS: &[&str] = &[
    "cron(0 10 * * ? *)",
    "cron(0 18 ? * SAT *)",
    "cron(0 8 1 * ? *)",
    "cron(0 1 ? 1/3 SUN#1 *)",
    "cron(0 17 L * ? *)",
    "cron(0 8 ? * MON-FRI *)",
    "cron(0 16 1,15 * ? *)",
    "cron(0 0 ? * SUN#1 *)",
    "cron(0 0 ? 1/11 2#1 *)",
    "cron(0 /8 * * ? *)",
    "cron(0 8/8 * * ? *)",
    "cron(0 2/10 * * ? *)",
    "cron(0 4/12 * * ? *)",
    "cron(0 9 15W * ? *)",
    "cron(0 9 1W * ? *)",
    "cron(0 9 31W * ? *)",
    "cron(0 23 LW * ? *)",
    "cron(0 6 ? * 6L *)",
    "cron(0 6 ? * FRIL *)",
    "cron(0 6 ? * L *)",
    "cron(0 12 29 FEB ? *)",
    "cron(0 0 ? FEB 1#5 *)",
    "cron(0 3 1-7 * ? *)",
    "cron(0 0,6,12,18 ? * 2/2 *)",
    "cron(0 5 ? JAN,APR,JUL,OCT TUE#3 *)",
    "cron(0 20 30 4,6,9,11 ? *)",
    "cron(0 7 ? * 1,7 *)",
    "cron(0 7 10-20/3 * ? *)",
    "cron(0 0 ? * mon-fri *)",
    "cron(0 0 31 * ? *)",
    "cron(0 11 ? jan,dec 5#5 *)",
    "cron(0 4-20/8 */9 * ? *)",
];

#[test]
fn listed_expressions_match_the_stepper() {
    let mut rng = Rng(2026);
    for expression in EXPRESSIONS {
        for _ in 0..6 {
            let after = rng.range(t("1999-01-01T00:00"), t("2060-01-01T00:00"));
            check(expression, after);
        }
        // On the hour, where a window may open exactly at `after`.
        let hour = rng
            .range(t("2000-01-01T00:00"), t("2050-01-01T00:00"))
            .div_euclid(HOUR)
            * HOUR;
        check(expression, hour);
        check(expression, hour + 1);
        // Around the turn of a year, a month's end and a leap day.
        check(expression, t("2027-12-31T23:59:59.999"));
        check(expression, t("2028-02-28T23:00"));
    }
}

#[test]
fn random_expressions_match_the_stepper() {
    let hours = [
        "0/4", "5", "0,12", "3-23/5", "/6", "10", "7/8", "0,4,8", "23", "1-21/10",
    ];
    let doms = [
        "*", "1", "L", "LW", "15W", "1W", "31W", "30W", "1-7", "10-20/3", "*/5", "29", "31",
        "1,15,28", "2/14", "28-31",
    ];
    let months = [
        "*", "JAN", "2", "1/3", "FEB-APR", "6-12/2", "jan,jul", "*/4", "12", "sep-nov",
    ];
    let dows = [
        "*", "MON", "2-6", "1,7", "6L", "L", "FRI#3", "1#5", "MON/2", "SUN-SAT", "sat", "7#4",
        "3#1", "wedL", "4/3",
    ];
    let mut rng = Rng(7);
    let mut checked = 0;
    for _ in 0..250 {
        let (dom, dow) = if rng.next().is_multiple_of(2) {
            (*rng.pick(&doms), "?")
        } else {
            ("?", *rng.pick(&dows))
        };
        let expression = format!(
            "cron(0 {} {dom} {} {dow} *)",
            rng.pick(&hours),
            rng.pick(&months)
        );
        let rules = RotationRules {
            schedule_expression: Some(expression.clone()),
            ..RotationRules::default()
        };
        // Some combinations never match (30W in February); the parser refuses those.
        if Schedule::parse(&rules).is_err() {
            continue;
        }
        checked += 1;
        for _ in 0..2 {
            check(
                &expression,
                rng.range(t("1990-01-01T00:00"), t("2100-01-01T00:00")),
            );
        }
    }
    assert!(checked > 200, "{checked}");
}
