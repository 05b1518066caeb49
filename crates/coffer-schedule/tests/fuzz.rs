//! Fuzz-ish properties: no input makes the crate panic, and every window it gives is sane.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions: a failure is a panic

mod common;

use coffer_schedule::{ErrorCode, RotationRules, Schedule};
use common::{Rng, t};

const ALPHABET: &[&str] = &[
    "cron(",
    "rate(",
    ")",
    "(",
    " ",
    " ",
    " ",
    "0",
    "1",
    "2",
    "4",
    "7",
    "9",
    "12",
    "23",
    "31",
    "*",
    "?",
    "/",
    "-",
    ",",
    "#",
    "L",
    "W",
    "LW",
    "MON",
    "sun",
    "JAN",
    "dec",
    "hour",
    "hours",
    "day",
    "days",
    "h",
    "é",
    "\u{0}",
    "99999999999999999999",
    "-0",
    "a",
    "Z",
];

const SEEDS: &[&str] = &[
    "cron(0 10 * * ? *)",
    "cron(0 1 ? 1/3 SUN#1 *)",
    "cron(0 17 L * ? *)",
    "cron(0 9 15W * ? *)",
    "cron(0 23 LW * ? *)",
    "cron(0 6 ? * 6L *)",
    "cron(0 0/4 * * ? *)",
    "cron(0 2-22/10 1-5,10 JAN-MAR ? *)",
    "rate(4 hours)",
    "rate(10 days)",
    "rate(1 day)",
];

fn random_string(rng: &mut Rng) -> String {
    let n = rng.range(0, 16);
    (0..n).map(|_| *rng.pick(ALPHABET)).collect()
}

fn mutate(rng: &mut Rng, s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    for _ in 0..rng.range(1, 3) {
        let piece: Vec<char> = rng.pick(ALPHABET).chars().collect();
        let at = rng.range(0, chars.len() as i64 + 1) as usize;
        match rng.next() % 3 {
            0 => {
                chars.splice(at..at, piece);
            }
            1 if at < chars.len() => {
                chars.remove(at);
            }
            _ if at < chars.len() => {
                chars.splice(at..at + 1, piece);
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

fn exercise(rng: &mut Rng, rules: &RotationRules) -> bool {
    match Schedule::parse(rules) {
        Ok(schedule) => {
            let times = [
                i64::MIN,
                i64::MAX,
                0,
                rng.next() as i64,
                rng.range(t("1900-01-01T00:00"), t("2200-01-01T00:00")),
            ];
            for &after in &times {
                let last = match rng.next() % 3 {
                    0 => None,
                    1 => Some(rng.next() as i64),
                    _ => Some(after),
                };
                let w = schedule.next_window(last, after);
                if !w.is_never() {
                    assert!(w.start_ms >= after, "{rules:?} {after} {w:?}");
                    assert!(w.end_ms > w.start_ms, "{rules:?} {w:?}");
                }
                let f = schedule.fire_at(&w, rng.next());
                assert!(w.is_never() || w.contains(f));
            }
            true
        }
        Err(e) => {
            assert!(!e.message().is_empty());
            assert!(matches!(
                e.code(),
                ErrorCode::InvalidParameter | ErrorCode::Validation
            ));
            false
        }
    }
}

#[test]
fn random_strings_never_panic() {
    let mut rng = Rng(1);
    let mut accepted = 0;
    for i in 0..30_000 {
        let seed = *rng.pick(SEEDS);
        let expression = match i % 3 {
            0 => random_string(&mut rng),
            1 => mutate(&mut rng, seed),
            _ => seed.to_string(),
        };
        let duration = match rng.next() % 8 {
            0 => Some(format!("{}h", rng.range(0, 30))),
            1 => Some(random_string(&mut rng)),
            2 => Some("1h".to_string()),
            _ => None,
        };
        let rules = RotationRules {
            automatically_after_days: None,
            duration,
            schedule_expression: Some(expression),
        };
        if exercise(&mut rng, &rules) {
            accepted += 1;
        }
    }
    // A fair share is valid, so windows get exercised too.
    assert!(accepted > 5_000, "{accepted}");
}

#[test]
fn random_rotation_days_never_panic() {
    let mut rng = Rng(2);
    let specials = [i64::MIN, -1, 0, 1, 999, 1000, 1001, i64::MAX];
    for i in 0..5_000 {
        let days = if i < specials.len() {
            specials[i]
        } else {
            rng.range(-5, 1_100)
        };
        let rules = RotationRules {
            automatically_after_days: Some(days),
            duration: (rng.next().is_multiple_of(2)).then(|| format!("{}h", rng.range(0, 40))),
            schedule_expression: (rng.next().is_multiple_of(8)).then(|| "rate(3 days)".to_string()),
        };
        let ok = exercise(&mut rng, &rules);
        assert_eq!(
            ok,
            (1..=1000).contains(&days)
                && rules.schedule_expression.is_none()
                && rules.duration.as_deref().is_none_or(|d| {
                    let h: u32 = d.trim_end_matches('h').parse().unwrap();
                    (1..=24).contains(&h)
                }),
            "{rules:?}"
        );
    }
}
