//! Next rotation windows, fire times inside them, and the edges of the time range.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions: a failure is a panic

mod common;

use coffer_schedule::{RotationRules, Schedule, Window};
use common::{DAY, HOUR, Rng, days, expr, show, t, with_duration};

fn schedule(rules: RotationRules) -> Schedule {
    Schedule::parse(&rules).unwrap_or_else(|e| panic!("{rules:?}: {e}"))
}

#[test]
fn next_window_table() {
    // (rules, last rotated, after, window start, window end)
    let cases: Vec<(RotationRules, Option<&str>, &str, &str, &str)> = vec![
        // AutomaticallyAfterDays: the whole UTC day N days after the last rotation's day.
        (
            days(30),
            Some("2026-01-10T15:00"),
            "2026-01-10T15:00",
            "2026-02-09T00:00",
            "2026-02-10T00:00",
        ),
        (
            days(30),
            None,
            "2026-01-10T15:00",
            "2026-02-09T00:00",
            "2026-02-10T00:00",
        ),
        (
            days(1),
            Some("2026-03-01T23:59:59.999"),
            "2026-03-02T00:00",
            "2026-03-02T00:00",
            "2026-03-03T00:00",
        ),
        (
            with_duration(days(1), "3h"),
            Some("2026-03-01T23:59:59.999"),
            "2026-03-01T23:59:59.999",
            "2026-03-02T00:00",
            "2026-03-02T03:00",
        ),
        (
            days(1000),
            Some("2026-01-01T00:00"),
            "2026-01-01T00:00",
            "2028-09-27T00:00",
            "2028-09-28T00:00",
        ),
        // Overdue: the next midnight at or after `after` opens the window.
        (
            days(7),
            Some("2026-01-01T10:00"),
            "2026-03-05T12:00",
            "2026-03-06T00:00",
            "2026-03-07T00:00",
        ),
        (
            days(7),
            Some("2026-01-01T10:00"),
            "2026-03-05T00:00",
            "2026-03-05T00:00",
            "2026-03-06T00:00",
        ),
        // A leap day.
        (
            days(1),
            Some("2028-02-28T08:00"),
            "2028-02-28T08:00",
            "2028-02-29T00:00",
            "2028-03-01T00:00",
        ),
        // rate(N days) is AutomaticallyAfterDays written as an expression.
        (
            expr("rate(10 days)"),
            Some("2026-12-25T18:30"),
            "2026-12-26T00:00",
            "2027-01-04T00:00",
            "2027-01-05T00:00",
        ),
        (
            with_duration(expr("rate(1 day)"), "2h"),
            None,
            "2026-12-31T23:00",
            "2027-01-01T00:00",
            "2027-01-01T02:00",
        ),
        // rate(N hours): 0:00, N:00, 2N:00 … each UTC day; one hour by default.
        (
            expr("rate(6 hours)"),
            None,
            "2026-05-05T06:00",
            "2026-05-05T06:00",
            "2026-05-05T07:00",
        ),
        (
            expr("rate(6 hours)"),
            Some("2026-05-05T05:00"),
            "2026-05-05T06:00:00.001",
            "2026-05-05T12:00",
            "2026-05-05T13:00",
        ),
        (
            expr("rate(10 hours)"),
            None,
            "2026-05-05T20:30",
            "2026-05-06T00:00",
            "2026-05-06T01:00",
        ),
        (
            with_duration(expr("rate(10 hours)"), "4h"),
            None,
            "2026-05-05T10:00",
            "2026-05-05T10:00",
            "2026-05-05T14:00",
        ),
        (
            expr("rate(23 hours)"),
            None,
            "2026-05-05T00:00:00.001",
            "2026-05-05T23:00",
            "2026-05-06T00:00",
        ),
        // cron(): a schedule in days closes at the end of the UTC day, in hours after one hour.
        (
            expr("cron(0 10 * * ? *)"),
            None,
            "2026-05-05T10:00",
            "2026-05-05T10:00",
            "2026-05-06T00:00",
        ),
        (
            expr("cron(0 10 * * ? *)"),
            Some("2026-05-05T10:10"),
            "2026-05-05T10:00:00.001",
            "2026-05-06T10:00",
            "2026-05-07T00:00",
        ),
        (
            with_duration(expr("cron(0 10 * * ? *)"), "3h"),
            None,
            "2026-05-05T09:59",
            "2026-05-05T10:00",
            "2026-05-05T13:00",
        ),
        (
            expr("cron(0 4/12 * * ? *)"),
            None,
            "2026-05-05T05:00",
            "2026-05-05T16:00",
            "2026-05-05T17:00",
        ),
        (
            expr("cron(0 /8 * * ? *)"),
            None,
            "2026-05-05T16:30",
            "2026-05-06T00:00",
            "2026-05-06T01:00",
        ),
        (
            expr("cron(0 2/10 * * ? *)"),
            None,
            "2026-05-05T12:30",
            "2026-05-05T22:00",
            "2026-05-05T23:00",
        ),
        (
            expr("cron(0 17 L * ? *)"),
            None,
            "2026-02-01T00:00",
            "2026-02-28T17:00",
            "2026-03-01T00:00",
        ),
        (
            expr("cron(0 17 L * ? *)"),
            None,
            "2028-02-01T00:00",
            "2028-02-29T17:00",
            "2028-03-01T00:00",
        ),
        (
            expr("cron(0 0 ? * SUN#1 *)"),
            None,
            "2026-05-05T00:00",
            "2026-06-07T00:00",
            "2026-06-08T00:00",
        ),
        (
            expr("cron(0 1 ? 1/3 SUN#1 *)"),
            None,
            "2026-05-05T00:00",
            "2026-07-05T01:00",
            "2026-07-06T00:00",
        ),
        (
            expr("cron(0 16 1,15 * ? *)"),
            None,
            "2026-11-23T00:00",
            "2026-12-01T16:00",
            "2026-12-02T00:00",
        ),
        (
            expr("cron(0 8 ? * MON-FRI *)"),
            None,
            "2026-05-08T08:00:01.000",
            "2026-05-11T08:00",
            "2026-05-12T00:00",
        ),
        (
            expr("cron(0 18 ? * SAT *)"),
            None,
            "2026-05-05T00:00",
            "2026-05-09T18:00",
            "2026-05-10T00:00",
        ),
        // 1st of August 2026 is a Saturday: 1W is Monday the 3rd.
        (
            expr("cron(0 9 1W * ? *)"),
            None,
            "2026-07-02T00:00",
            "2026-08-03T09:00",
            "2026-08-04T00:00",
        ),
        // 31 May 2026 is a Sunday: 31W is Friday the 29th.
        (
            expr("cron(0 9 31W * ? *)"),
            None,
            "2026-05-01T00:00",
            "2026-05-29T09:00",
            "2026-05-30T00:00",
        ),
        // 31 January 2026 is a Saturday: LW is Friday the 30th.
        (
            expr("cron(0 23 LW * ? *)"),
            None,
            "2026-01-01T00:00",
            "2026-01-30T23:00",
            "2026-01-31T00:00",
        ),
        (
            expr("cron(0 6 ? * 6L *)"),
            None,
            "2026-01-01T00:00",
            "2026-01-30T06:00",
            "2026-01-31T00:00",
        ),
        (
            expr("cron(0 6 ? * L *)"),
            None,
            "2026-01-01T00:00",
            "2026-01-03T06:00",
            "2026-01-04T00:00",
        ),
        (
            expr("cron(0 0 29 FEB ? *)"),
            None,
            "2026-03-01T00:00",
            "2028-02-29T00:00",
            "2028-03-01T00:00",
        ),
        // The fifth Sunday of February: a leap year whose February starts on a Sunday.
        (
            expr("cron(0 0 ? FEB 1#5 *)"),
            None,
            "2026-01-01T00:00",
            "2032-02-29T00:00",
            "2032-03-01T00:00",
        ),
    ];
    for (rules, last, after, start, end) in cases {
        let s = schedule(rules.clone());
        let w = s.next_window(last.map(t), t(after));
        assert_eq!(
            w,
            Window {
                start_ms: t(start),
                end_ms: t(end)
            },
            "{rules:?} last {last:?} after {after}: got {}..{}",
            show(w.start_ms),
            show(w.end_ms)
        );
    }
}

#[test]
fn window_edges_never_panic() {
    let schedules = [
        schedule(days(1000)),
        schedule(with_duration(days(1), "24h")),
        schedule(expr("rate(999 days)")),
        schedule(expr("rate(4 hours)")),
        schedule(expr("cron(0 0/4 * * ? *)")),
        schedule(expr("cron(0 12 L * ? *)")),
    ];
    let edges = [
        i64::MIN,
        i64::MIN + 1,
        -62_135_596_800_001,
        -1,
        0,
        1,
        i64::MAX - 1,
        i64::MAX,
    ];
    for s in &schedules {
        for &after in &edges {
            for last in [None, Some(i64::MIN), Some(i64::MAX), Some(after)] {
                let w = s.next_window(last, after);
                if !w.is_never() {
                    assert!(
                        w.start_ms >= after && w.end_ms > w.start_ms,
                        "{s:?} {after} {w:?}"
                    );
                }
                let f = s.fire_at(&w, 7);
                assert!(w.is_never() || w.contains(f));
            }
        }
    }
    // Past the end of i64 milliseconds, or of croner's years, there is no window.
    assert!(schedule(days(1)).next_window(None, i64::MAX).is_never());
    assert!(
        schedule(expr("rate(4 hours)"))
            .next_window(None, i64::MAX)
            .is_never()
    );
    assert!(
        schedule(expr("cron(0 12 * * ? *)"))
            .next_window(None, t("5001-01-01T00:00"))
            .is_never()
    );
    // Before year 1 a cron() schedule searches from year 1.
    let w = schedule(expr("cron(0 12 * * ? *)")).next_window(None, i64::MIN);
    assert_eq!(show(w.start_ms), "0001-01-01T12:00:00.000");
}

#[test]
fn windows_follow_one_another() {
    // Asking again from a window's start gives it back; from just after, the next one.
    let mut rng = Rng(42);
    let rules = [
        expr("rate(4 hours)"),
        with_duration(expr("rate(7 hours)"), "3h"),
        expr("cron(0 2/10 * * ? *)"),
        expr("cron(0 10 ? * MON-FRI *)"),
        expr("cron(0 17 L * ? *)"),
        with_duration(expr("cron(0 5 15W * ? *)"), "19h"),
    ];
    for r in rules {
        let s = schedule(r);
        let mut after = rng.range(t("2000-01-01T00:00"), t("2040-01-01T00:00"));
        for _ in 0..50 {
            let w = s.next_window(None, after);
            assert!(w.start_ms >= after);
            assert_eq!(w.start_ms % HOUR, 0, "windows start on the hour");
            assert_eq!(s.next_window(None, w.start_ms), w);
            let next = s.next_window(None, w.start_ms + 1);
            assert!(next.start_ms >= w.end_ms, "{w:?} overlaps {next:?}");
            assert!(w.end_ms - w.start_ms <= DAY);
            assert_eq!(
                w.start_ms.div_euclid(DAY),
                (w.end_ms - 1).div_euclid(DAY),
                "one UTC day"
            );
            after = next.start_ms;
        }
    }
}

#[test]
fn fire_at_is_inside_the_window_deterministic_and_spread() {
    let s = schedule(expr("cron(0 10 * * ? *)"));
    let w = s.next_window(None, t("2026-05-05T00:00"));
    assert_eq!(
        (w.start_ms, w.end_ms),
        (t("2026-05-05T10:00"), t("2026-05-06T00:00"))
    );
    let mut rng = Rng(7);
    let mut buckets = [0u32; 14];
    for _ in 0..14_000 {
        let seed = rng.next();
        let f = s.fire_at(&w, seed);
        assert!(w.contains(f));
        assert_eq!(f, s.fire_at(&w, seed), "same seed, same time");
        buckets[((f - w.start_ms) / HOUR) as usize] += 1;
    }
    // 14 one-hour buckets of ~1000 each.
    assert!(
        buckets.iter().all(|&b| (800..1200).contains(&b)),
        "{buckets:?}"
    );
    // One secret does not fire at the same offset in every window.
    let next = s.next_window(None, w.end_ms);
    assert_ne!(
        s.fire_at(&w, 99) - w.start_ms,
        s.fire_at(&next, 99) - next.start_ms
    );
    // Empty and inverted windows give their start.
    let empty = Window {
        start_ms: 5,
        end_ms: 5,
    };
    assert_eq!(s.fire_at(&empty, 1), 5);
    assert_eq!(
        s.fire_at(
            &Window {
                start_ms: 9,
                end_ms: 3
            },
            1
        ),
        9
    );
    assert_eq!(s.fire_at(&Window::NEVER, 1), i64::MAX);
    let wide = Window {
        start_ms: i64::MIN,
        end_ms: i64::MAX,
    };
    assert!(wide.contains(s.fire_at(&wide, 3)));
}
