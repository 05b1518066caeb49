//! Which RotationRules Secrets Manager accepts, and its exact answers to the others.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions: a failure is a panic

mod common;

use coffer_schedule::{ErrorCode, RotationRules, Schedule};
use common::{days, expr, with_duration};

const IP: ErrorCode = ErrorCode::InvalidParameter;
const VE: ErrorCode = ErrorCode::Validation;

fn rejected(rules: RotationRules, code: ErrorCode, message: &str) {
    match Schedule::parse(&rules) {
        Ok(s) => panic!("{rules:?} accepted as {s:?}; expected {message}"),
        Err(e) => {
            assert_eq!(e.message(), message, "{rules:?}");
            assert_eq!(e.code(), code, "{rules:?}");
            assert_eq!(e.to_string(), message);
        }
    }
}

fn bad_expr(e: &str, reason: &str) {
    rejected(
        expr(e),
        IP,
        &format!("Invalid schedule expression: {e}. {reason}"),
    );
}

const FOUR_HOURS: &str = "You can rotate a secret as often as every four hours.";
const RATE_SYNTAX: &str = "A rate expression has the format rate(Value Unit), where Value is a \
    positive integer and Unit is hour, hours, day, or days.";
const SIX_FIELDS: &str =
    "A cron expression has six fields: cron(Minutes Hours Day-of-month Month Day-of-week Year).";
const DOM_DOW: &str = "You can't specify the Day-of-month and Day-of-week fields in the same \
    cron expression. If you specify a value in one of the fields, you must use a ? in the other.";
const PAST_DAY: &str = "The rotation window must not extend into the next UTC day: the start \
    hour plus the window duration must be less than or equal to 24 hours.";
const OVERLAP: &str = "The rotation window must not extend into the next rotation window: the \
    window duration must be less than or equal to the number of hours between rotations.";

#[test]
fn accepted_rules_and_how_describe_secret_shows_them() {
    // (rules, hourly, AutomaticallyAfterDays shown)
    let cases: Vec<(RotationRules, bool, Option<i64>)> = vec![
        (days(1), false, Some(1)),
        (days(30), false, Some(30)),
        (days(1000), false, Some(1000)),
        (with_duration(days(7), "3h"), false, Some(7)),
        (with_duration(days(7), "24h"), false, Some(7)),
        (with_duration(days(7), "01h"), false, Some(7)),
        (expr("rate(4 hours)"), true, None),
        (expr("rate(23 hours)"), true, None),
        (with_duration(expr("rate(12 hours)"), "12h"), true, None),
        (with_duration(expr("rate(5 hours)"), "4h"), true, None),
        (expr("rate(1 day)"), false, Some(1)),
        (expr("rate(1 days)"), false, Some(1)),
        (expr("rate(10 days)"), false, Some(10)),
        (
            with_duration(expr("rate(999 days)"), "2h"),
            false,
            Some(999),
        ),
        // The user guide's examples.
        (expr("cron(0 /8 * * ? *)"), true, None),
        (expr("cron(0 8/8 * * ? *)"), true, None),
        (expr("cron(0 2/10 * * ? *)"), true, None),
        (expr("cron(0 4/12 * * ? *)"), true, None),
        (expr("cron(0 10 * * ? *)"), false, None),
        (expr("cron(0 18 ? * SAT *)"), false, None),
        (expr("cron(0 8 1 * ? *)"), false, None),
        (expr("cron(0 1 ? 1/3 SUN#1 *)"), false, None),
        (expr("cron(0 17 L * ? *)"), false, None),
        (expr("cron(0 8 ? * MON-FRI *)"), false, None),
        (expr("cron(0 16 1,15 * ? *)"), false, None),
        (expr("cron(0 0 ? * SUN#1 *)"), false, None),
        (expr("cron(0 0 ? 1/11 2#1 *)"), false, None),
        (expr("cron(0 21 L * ? *)"), false, None),
        (expr("cron(0 10 ? FEB,MAY,AUG,NOV TUE#2 *)"), false, None),
        // W, LW, xL, L, names in any case, ranges, steps, leading zeros, extra spaces.
        (expr("cron(0 10 15W * ? *)"), false, None),
        (expr("cron(0 10 LW * ? *)"), false, None),
        (expr("cron(0 10 ? * 6L *)"), false, None),
        (expr("cron(0 10 ? * FRIL *)"), false, None),
        (expr("cron(0 10 ? * L *)"), false, None),
        (expr("cron(0 0 29 FEB ? *)"), false, None),
        (expr("cron(0 0 ? FEB 1#5 *)"), false, None),
        (expr("cron(0 0 ? * mon-fri *)"), false, None),
        (expr("cron(0 0 ? jan-mar,oct * *)"), false, None),
        (expr("cron(00 09 01-07/2 * ? *)"), false, None),
        (expr("cron(0 6 ? * 2/2 *)"), false, None),
        (expr("cron(0 0,4,8,12,16,20 * * ? *)"), true, None),
        (expr("cron(0  12 *  * ?  *)"), false, None),
        (with_duration(expr("cron(0 22 * * ? *)"), "2h"), false, None),
        (with_duration(expr("cron(0 0/8 * * ? *)"), "8h"), true, None),
        (
            with_duration(expr("cron(0 2/10 * * ? *)"), "2h"),
            true,
            None,
        ),
    ];
    for (rules, hourly, shown_days) in cases {
        let schedule = Schedule::parse(&rules).unwrap_or_else(|e| panic!("{rules:?}: {e}"));
        assert_eq!(schedule.is_hourly(), hourly, "{rules:?}");
        let shown = schedule.rules();
        assert_eq!(shown.automatically_after_days, shown_days, "{rules:?}");
        assert_eq!(shown.schedule_expression, rules.schedule_expression);
        assert_eq!(shown.duration, rules.duration);
        // What to store: the rules as given, which parse again to the same schedule.
        assert_eq!(schedule.given_rules(), &rules);
        assert_eq!(Schedule::parse(schedule.given_rules()).unwrap(), schedule);
    }
}

#[test]
fn describe_form_of_a_rate_in_days_is_refused_as_input_like_aws() {
    // DescribeSecret shows AutomaticallyAfterDays next to rate(N days); sending that back is
    // "both" (terraform-provider-aws #33329).
    let shown = Schedule::parse(&expr("rate(10 days)")).unwrap().rules();
    assert_eq!(shown.automatically_after_days, Some(10));
    rejected(
        shown,
        IP,
        "You cannot specify both rotation frequency and schedule expression together.",
    );
}

#[test]
fn error_codes_name_the_aws_exceptions() {
    assert_eq!(IP.aws_code(), "InvalidParameterException");
    assert_eq!(VE.aws_code(), "ValidationException");
}

#[test]
fn model_constraints_are_validation_exceptions() {
    rejected(
        days(0),
        VE,
        "1 validation error detected: Value '0' at 'rotationRules.automaticallyAfterDays' failed \
         to satisfy constraint: Member must have value greater than or equal to 1",
    );
    rejected(
        days(-5),
        VE,
        "1 validation error detected: Value '-5' at 'rotationRules.automaticallyAfterDays' failed \
         to satisfy constraint: Member must have value greater than or equal to 1",
    );
    rejected(
        days(1001),
        VE,
        "1 validation error detected: Value '1001' at 'rotationRules.automaticallyAfterDays' \
         failed to satisfy constraint: Member must have value less than or equal to 1000",
    );
    rejected(
        with_duration(days(7), "100h"),
        VE,
        "1 validation error detected: Value '100h' at 'rotationRules.duration' failed to satisfy \
         constraint: Member must have length less than or equal to 3",
    );
    rejected(
        with_duration(days(7), "3H"),
        VE,
        "1 validation error detected: Value '3H' at 'rotationRules.duration' failed to satisfy \
         constraint: Member must satisfy regular expression pattern: [0-9]+h",
    );
    rejected(
        with_duration(days(7), "3"),
        VE,
        "2 validation errors detected: Value '3' at 'rotationRules.duration' failed to satisfy \
         constraint: Member must have length greater than or equal to 2; Value '3' at \
         'rotationRules.duration' failed to satisfy constraint: Member must satisfy regular \
         expression pattern: [0-9]+h",
    );
    rejected(
        expr(""),
        VE,
        "2 validation errors detected: Value '' at 'rotationRules.scheduleExpression' failed to \
         satisfy constraint: Member must have length greater than or equal to 1; Value '' at \
         'rotationRules.scheduleExpression' failed to satisfy constraint: Member must satisfy \
         regular expression pattern: [0-9A-Za-z\\(\\)#\\?\\*\\-\\/, ]+",
    );
    rejected(
        expr("rate(4 hours);"),
        VE,
        "1 validation error detected: Value 'rate(4 hours);' at 'rotationRules.scheduleExpression' \
         failed to satisfy constraint: Member must satisfy regular expression pattern: \
         [0-9A-Za-z\\(\\)#\\?\\*\\-\\/, ]+",
    );
    let long = format!("rate({} days)", "0".repeat(245) + "1");
    assert_eq!(long.chars().count(), 257);
    rejected(
        expr(&long),
        VE,
        &format!(
            "1 validation error detected: Value '{long}' at 'rotationRules.scheduleExpression' \
             failed to satisfy constraint: Member must have length less than or equal to 256"
        ),
    );
    // Model errors come before the service's rules, all members at once.
    rejected(
        RotationRules {
            automatically_after_days: Some(0),
            duration: Some("x".into()),
            schedule_expression: Some("rate(1 hour)".into()),
        },
        VE,
        "3 validation errors detected: Value '0' at 'rotationRules.automaticallyAfterDays' failed \
         to satisfy constraint: Member must have value greater than or equal to 1; Value 'x' at \
         'rotationRules.duration' failed to satisfy constraint: Member must have length greater \
         than or equal to 2; Value 'x' at 'rotationRules.duration' failed to satisfy constraint: \
         Member must satisfy regular expression pattern: [0-9]+h",
    );
}

#[test]
fn rule_breaches_are_invalid_parameter_exceptions() {
    rejected(
        RotationRules {
            automatically_after_days: Some(30),
            duration: None,
            schedule_expression: Some("rate(10 days)".into()),
        },
        IP,
        "You cannot specify both rotation frequency and schedule expression together.",
    );
    rejected(
        RotationRules::default(),
        IP,
        "You must specify either rotation frequency or schedule expression.",
    );
    rejected(
        RotationRules {
            duration: Some("2h".into()),
            ..RotationRules::default()
        },
        IP,
        "You must specify either rotation frequency or schedule expression.",
    );
}

#[test]
fn rate_expressions_rejected() {
    bad_expr("rate(1 hour)", FOUR_HOURS);
    bad_expr("rate(1 hours)", FOUR_HOURS);
    bad_expr("rate(3 hours)", FOUR_HOURS);
    bad_expr(
        "rate(24 hours)",
        "A rate in hours must be less than 24 hours; use a rate in days.",
    );
    bad_expr(
        "rate(1000 days)",
        "The maximum rotation period is 999 days.",
    );
    bad_expr(
        "rate(99999999999 days)",
        "The maximum rotation period is 999 days.",
    );
    bad_expr("rate(0 days)", RATE_SYNTAX);
    bad_expr("rate(-1 days)", RATE_SYNTAX);
    bad_expr("rate(5 minutes)", RATE_SYNTAX);
    bad_expr("rate(5 Days)", RATE_SYNTAX);
    bad_expr("rate(5)", RATE_SYNTAX);
    bad_expr("rate(days)", RATE_SYNTAX);
    bad_expr("rate(5 days 2)", RATE_SYNTAX);
    bad_expr("rate()", RATE_SYNTAX);
    bad_expr("rate(5 days", "Use a cron() or rate() expression.");
    bad_expr("Rate(5 days)", "Use a cron() or rate() expression.");
    bad_expr("at(2026-01-01)", "Use a cron() or rate() expression.");
    bad_expr("0 10 * * ? *", "Use a cron() or rate() expression.");
}

#[test]
fn cron_expressions_rejected() {
    bad_expr("cron(0 10 * * ?)", SIX_FIELDS);
    bad_expr("cron(0 10 * * ? * *)", SIX_FIELDS);
    bad_expr("cron()", SIX_FIELDS);
    bad_expr(
        "cron(30 10 * * ? *)",
        "The Minutes field must be 0, because rotation windows start on the hour.",
    );
    bad_expr(
        "cron(0/15 10 * * ? *)",
        "The Minutes field must be 0, because rotation windows start on the hour.",
    );
    bad_expr(
        "cron(* 10 * * ? *)",
        "The Minutes field must be 0, because rotation windows start on the hour.",
    );
    let year = "The Year field must be *, because Secrets Manager does not support rotation \
        schedules that are more than a year apart.";
    bad_expr("cron(0 10 * * ? 2027)", year);
    bad_expr("cron(0 10 * * ? 2026-2030)", year);
    bad_expr("cron(0 24 * * ? *)", "The Hours field 24 is not valid.");
    bad_expr("cron(0 ? * * ? *)", "The Hours field ? is not valid.");
    bad_expr("cron(0 1, * * ? *)", "The Hours field 1, is not valid.");
    bad_expr(
        "cron(0 10 32 * ? *)",
        "The Day-of-month field 32 is not valid.",
    );
    bad_expr(
        "cron(0 10 0 * ? *)",
        "The Day-of-month field 0 is not valid.",
    );
    bad_expr(
        "cron(0 10 L-2 * ? *)",
        "The Day-of-month field L-2 is not valid.",
    );
    bad_expr(
        "cron(0 10 1-5W * ? *)",
        "The Day-of-month field 1-5W is not valid.",
    );
    bad_expr(
        "cron(0 10 5-1 * ? *)",
        "The Day-of-month field 5-1 is not valid.",
    );
    bad_expr(
        "cron(0 10 */0 * ? *)",
        "The Day-of-month field */0 is not valid.",
    );
    bad_expr(
        "cron(0 10 L,15 * ? *)",
        "The Day-of-month field L,15 is not valid.",
    );
    bad_expr(
        "cron(0 10 SUNL * ? *)",
        "The Day-of-month field SUNL is not valid.",
    );
    bad_expr("cron(0 10 * 13 ? *)", "The Month field 13 is not valid.");
    bad_expr("cron(0 10 ? MON * *)", "The Month field MON is not valid.");
    bad_expr(
        "cron(0 10 ? * 8 *)",
        "The Day-of-week field 8 is not valid.",
    );
    bad_expr(
        "cron(0 10 ? * 0 *)",
        "The Day-of-week field 0 is not valid.",
    );
    bad_expr(
        "cron(0 10 ? * MON#6 *)",
        "The Day-of-week field MON#6 is not valid.",
    );
    bad_expr(
        "cron(0 10 ? * MON#0 *)",
        "The Day-of-week field MON#0 is not valid.",
    );
    bad_expr(
        "cron(0 10 ? * MON#1,WED#2 *)",
        "The Day-of-week field MON#1,WED#2 is not valid.",
    );
    bad_expr(
        "cron(0 10 ? * 2L,6 *)",
        "The Day-of-week field 2L,6 is not valid.",
    );
    bad_expr(
        "cron(0 10 ? * JAN *)",
        "The Day-of-week field JAN is not valid.",
    );
    bad_expr(
        "cron(0 10 ? * FRI-MON *)",
        "The Day-of-week field FRI-MON is not valid.",
    );
    bad_expr("cron(0 10 * * * *)", DOM_DOW);
    bad_expr("cron(0 10 ? * ? *)", DOM_DOW);
    bad_expr("cron(0 10 1 * MON *)", DOM_DOW);
    // The old user guide example "Every three months on Sunday", which breaks the ? rule.
    bad_expr("cron(0 1 * 1/3 SUN *)", DOM_DOW);
    bad_expr("cron(0 * * * ? *)", FOUR_HOURS);
    bad_expr("cron(0 0,2 * * ? *)", FOUR_HOURS);
    bad_expr("cron(0 0/3 * * ? *)", FOUR_HOURS);
    bad_expr("cron(0 8-10 ? * MON *)", FOUR_HOURS);
    let never = "The expression does not match any date.";
    bad_expr("cron(0 10 30 2 ? *)", never);
    bad_expr("cron(0 10 31 4,6,9,11 ? *)", never);
    bad_expr("cron(0 10 30W FEB ? *)", never);
}

#[test]
fn durations_rejected() {
    let bad = |rules: RotationRules, reason: &str| {
        let d = rules.duration.clone().unwrap_or_default();
        rejected(rules, IP, &format!("Invalid Duration: {d}. {reason}"));
    };
    let short = "The rotation window must be at least one hour.";
    bad(with_duration(days(7), "0h"), short);
    bad(with_duration(days(7), "00h"), short);
    bad(with_duration(expr("rate(6 hours)"), "0h"), short);
    bad(with_duration(days(7), "25h"), PAST_DAY);
    bad(with_duration(days(7), "99h"), PAST_DAY);
    bad(with_duration(expr("rate(3 days)"), "25h"), PAST_DAY);
    bad(with_duration(expr("cron(0 22 * * ? *)"), "3h"), PAST_DAY);
    bad(with_duration(expr("cron(0 10 ? * MON *)"), "15h"), PAST_DAY);
    bad(with_duration(expr("rate(6 hours)"), "7h"), OVERLAP);
    // rate(10 hours): 0:00, 10:00, 20:00; 20 + 5 > 24.
    bad(with_duration(expr("rate(10 hours)"), "5h"), PAST_DAY);
    // 2:00, 12:00, 22:00: a 3-hour window at 22:00 runs into the next day.
    bad(with_duration(expr("cron(0 2/10 * * ? *)"), "3h"), PAST_DAY);
    bad(with_duration(expr("cron(0 0/8 * * ? *)"), "9h"), OVERLAP);
    bad(with_duration(expr("cron(0 1,5,20 * * ? *)"), "5h"), OVERLAP);
}
