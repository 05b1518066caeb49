//! AWS's six-field `cron(Minutes Hours Day-of-month Month Day-of-week Year)` as Secrets
//! Manager accepts it, parsed by hand into [`CronSpec`] (so the AWS rules and messages are
//! ours), then handed to `croner` as a plain numeric pattern to find occurrences.
//!
//! What Secrets Manager documents ("Rotation schedules", "Cron expression requirements in
//! Secrets Manager", awsdocs/aws-secrets-manager-docs `rotate-secrets_schedule.md`):
//! - Minutes must be `0` ("because Secrets Manager rotation windows start on the hour");
//! - Year must be `*` ("because Secrets Manager does not support rotation schedules that are
//!   more than a year apart");
//! - Hours `0–23` with `/` increments ("`2/10` means every 10 hours beginning at 2:00 AM"; the
//!   example `cron(0 /8 * * ? *)` has an empty start, "every eight hours starting at
//!   midnight"); increments reset each day: `cron(0 4/12 * * ? *)` is 4:00 and 16:00 daily;
//! - Day-of-month `1–31` with `, - * ? / L` (and `W`, `LW` as in EventBridge/Quartz);
//! - Month `1–12` or `JAN–DEC` with `, - * /`;
//! - Day-of-week `1–7` or `SUN–SAT` (Quartz: 1 = Sunday) with `# , - * ? / L`; `L` alone is
//!   the last day of the week (Saturday), `xL` the last such weekday of the month, `x#n` the
//!   n-th such weekday;
//! - "You can't specify the Day-of-month and Day-of-week fields in the same cron expression.
//!   If you specify a value in one of the fields, you must use a ? in the other."
//! - "You can rotate a secret as often as every four hours."
//!
//! Where AWS documents nothing, this parser chooses (and says so here):
//! - `W` and `LW` in Day-of-month are accepted (EventBridge and Quartz have them; the Secrets
//!   Manager table does not list them);
//! - Hours take lists and ranges as well as increments (`0,12`, `8-20/4`);
//! - the four-hour minimum is checked between the windows of one day; the gap across midnight
//!   (`cron(0 1,22 * * ? *)`: 22:00 then 1:00) is not, as an hour increment "resets each day"
//!   (`rate(7 hours)` ends a day at 21:00 and starts the next at 0:00 too);
//! - ranges must run upwards (`FRI-MON` is refused); `DAYL` (`SUNL`) is accepted in
//!   Day-of-week only, where Quartz has it (the user guide lists it under Day-of-month);
//! - an expression no date can ever match (`30 FEB`, `31 4,6,9,11`, `30W FEB`) is refused.
//!
//! croner is configured for this dialect: a seconds field (always `0`), a year field (always
//! `*`), Quartz weekday numbers (1 = Sunday), and the day fields ORed as in Vixie cron (moot,
//! as one of them is always `?`). The pattern given to it is plain numbers, `?`, `L`, `LW`,
//! `nW`, `xL` and `x#n`, never names or ranges, so croner's own dialect choices do not leak in.

use crate::civil;

/// Which field of the expression, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Hours,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Hours => "Hours",
            Field::DayOfMonth => "Day-of-month",
            Field::Month => "Month",
            Field::DayOfWeek => "Day-of-week",
        }
    }
}

/// Why a `cron()` expression is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CronProblem {
    FieldCount,
    Minutes,
    Year,
    Field(Field, String),
    DayOfMonthAndWeek,
    TooFrequent,
    Never,
}

impl CronProblem {
    pub(crate) fn reason(&self) -> String {
        match self {
            CronProblem::FieldCount => "A cron expression has six fields: cron(Minutes Hours \
                Day-of-month Month Day-of-week Year)."
                .into(),
            CronProblem::Minutes => {
                "The Minutes field must be 0, because rotation windows start on the hour.".into()
            }
            CronProblem::Year => "The Year field must be *, because Secrets Manager does not \
                support rotation schedules that are more than a year apart."
                .into(),
            CronProblem::Field(field, value) => {
                format!("The {} field {value} is not valid.", field.name())
            }
            CronProblem::DayOfMonthAndWeek => "You can't specify the Day-of-month and \
                Day-of-week fields in the same cron expression. If you specify a value in one \
                of the fields, you must use a ? in the other."
                .into(),
            CronProblem::TooFrequent => {
                "You can rotate a secret as often as every four hours.".into()
            }
            CronProblem::Never => "The expression does not match any date.".into(),
        }
    }
}

/// The Day-of-month field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DayOfMonth {
    /// `?`: the Day-of-week field decides.
    Any,
    /// Bit `d` set for day `d` (1..=31).
    Days(u32),
    /// `L`: the last day of the month.
    Last,
    /// `LW`: the last weekday (Monday–Friday) of the month.
    LastWeekday,
    /// `nW`: the weekday nearest day `n`, never leaving the month.
    NearestWeekday(u32),
}

/// The Day-of-week field, Quartz numbering (1 = Sunday … 7 = Saturday).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DayOfWeek {
    /// `?`: the Day-of-month field decides.
    Any,
    /// Bit `w` set for weekday `w` (1..=7). `L` alone is Saturday.
    Days(u32),
    /// `xL`: the last weekday `x` of the month.
    Last(u32),
    /// `x#n`: the n-th (1..=5) weekday `x` of the month.
    Nth(u32, u32),
}

/// A valid AWS `cron()` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CronSpec {
    /// Bit `h` set for hour `h` (0..=23); never empty.
    pub(crate) hours: u32,
    pub(crate) day_of_month: DayOfMonth,
    /// Bit `m` set for month `m` (1..=12); never empty.
    pub(crate) months: u32,
    pub(crate) day_of_week: DayOfWeek,
    /// The same schedule for croner: seconds, minutes, hours, day-of-month, month,
    /// day-of-week (Quartz numbers), year.
    pub(crate) croner: croner::Cron,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// One number of a field: digits, or a three-letter name (case-insensitive) where the field
/// has names. Returns `None` when out of `min..=max`.
fn value(text: &str, min: u32, max: u32, names: &[&str]) -> Option<u32> {
    let n = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // At most a handful of digits are meaningful; longer is out of range anyway.
        if text.len() > 4 {
            return None;
        }
        text.parse::<u32>().ok()?
    } else {
        let index = names
            .iter()
            .position(|name| name.eq_ignore_ascii_case(text))?;
        // names[0] is `min`: JAN = 1, SUN = 1.
        min + u32::try_from(index).ok()?
    };
    (min..=max).contains(&n).then_some(n)
}

/// A list of `*`, `n`, `a-b`, with an optional `/step` (`*/s`, `a/s`, `a-b/s`, `/s`), as a
/// bit set over `min..=max`. Returns `None` for anything else.
fn list(field: &str, min: u32, max: u32, names: &[&str]) -> Option<u32> {
    let mut bits = 0u32;
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                if step.is_empty() || step.len() > 4 || !step.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let step = step.parse::<u32>().ok()?;
                if step == 0 {
                    return None;
                }
                (range, Some(step))
            }
            None => (item, None),
        };
        let (start, end) = if range == "*" || (range.is_empty() && step.is_some()) {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a, min, max, names)?, value(b, min, max, names)?);
            if a > b {
                return None;
            }
            (a, b)
        } else {
            let a = value(range, min, max, names)?;
            (a, if step.is_some() { max } else { a })
        };
        let step = step.unwrap_or(1);
        let mut v = start;
        while v <= end {
            bits |= 1 << v;
            v = v.saturating_add(step);
        }
    }
    (bits != 0).then_some(bits)
}

fn parse_day_of_month(field: &str) -> Option<DayOfMonth> {
    let upper = field.to_ascii_uppercase();
    match upper.as_str() {
        "?" => Some(DayOfMonth::Any),
        "L" => Some(DayOfMonth::Last),
        "LW" => Some(DayOfMonth::LastWeekday),
        _ => {
            if let Some(day) = upper.strip_suffix('W') {
                return value(day, 1, 31, &[]).map(DayOfMonth::NearestWeekday);
            }
            list(&upper, 1, 31, &[]).map(DayOfMonth::Days)
        }
    }
}

fn parse_day_of_week(field: &str) -> Option<DayOfWeek> {
    let upper = field.to_ascii_uppercase();
    match upper.as_str() {
        "?" => Some(DayOfWeek::Any),
        // Quartz: "L" alone in the day-of-week field is 7, Saturday.
        "L" => Some(DayOfWeek::Days(1 << 7)),
        _ => {
            if let Some((day, nth)) = upper.split_once('#') {
                let day = value(day, 1, 7, &WEEKDAYS)?;
                let nth = value(nth, 1, 5, &[])?;
                return Some(DayOfWeek::Nth(day, nth));
            }
            if let Some(day) = upper.strip_suffix('L') {
                return value(day, 1, 7, &WEEKDAYS).map(DayOfWeek::Last);
            }
            list(&upper, 1, 7, &WEEKDAYS).map(DayOfWeek::Days)
        }
    }
}

fn bits_csv(bits: u32, min: u32, max: u32) -> String {
    (min..=max)
        .filter(|v| bits & (1 << v) != 0)
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

impl CronSpec {
    /// Parses the inside of `cron(...)`.
    pub(crate) fn parse(inner: &str) -> Result<CronSpec, CronProblem> {
        let fields: Vec<&str> = inner.split_whitespace().collect();
        let [minutes, hours, dom, month, dow, year] = fields.as_slice() else {
            return Err(CronProblem::FieldCount);
        };
        if !(!minutes.is_empty()
            && minutes.len() <= 4
            && minutes.bytes().all(|b| b.is_ascii_digit())
            && minutes.parse::<u32>() == Ok(0))
        {
            return Err(CronProblem::Minutes);
        }
        let hour_bits = list(hours, 0, 23, &[])
            .ok_or_else(|| CronProblem::Field(Field::Hours, (*hours).into()))?;
        let day_of_month = parse_day_of_month(dom)
            .ok_or_else(|| CronProblem::Field(Field::DayOfMonth, (*dom).into()))?;
        let months = list(month, 1, 12, &MONTHS)
            .ok_or_else(|| CronProblem::Field(Field::Month, (*month).into()))?;
        let day_of_week = parse_day_of_week(dow)
            .ok_or_else(|| CronProblem::Field(Field::DayOfWeek, (*dow).into()))?;
        if *year != "*" {
            return Err(CronProblem::Year);
        }
        if matches!(day_of_month, DayOfMonth::Any) == matches!(day_of_week, DayOfWeek::Any) {
            return Err(CronProblem::DayOfMonthAndWeek);
        }
        if min_gap_hours(hour_bits).is_some_and(|gap| gap < 4) {
            return Err(CronProblem::TooFrequent);
        }
        if !ever_matches(&day_of_month, months) {
            return Err(CronProblem::Never);
        }

        let dom_text = match &day_of_month {
            DayOfMonth::Any => "?".to_string(),
            DayOfMonth::Days(bits) => bits_csv(*bits, 1, 31),
            DayOfMonth::Last => "L".to_string(),
            DayOfMonth::LastWeekday => "LW".to_string(),
            DayOfMonth::NearestWeekday(day) => format!("{day}W"),
        };
        let dow_text = match &day_of_week {
            DayOfWeek::Any => "?".to_string(),
            DayOfWeek::Days(bits) => bits_csv(*bits, 1, 7),
            DayOfWeek::Last(day) => format!("{day}L"),
            DayOfWeek::Nth(day, nth) => format!("{day}#{nth}"),
        };
        let pattern = format!(
            "0 0 {} {dom_text} {} {dow_text} *",
            bits_csv(hour_bits, 0, 23),
            bits_csv(months, 1, 12)
        );
        let croner = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Required)
            .year(croner::parser::Year::Required)
            // Quartz numbering, 1 = Sunday, as AWS uses.
            .alternative_weekdays(true)
            // AWS allows only one of the two day fields, so OR-vs-AND never arises; `?` is
            // croner's "not restricted".
            .dom_and_dow(false)
            .build()
            .parse(&pattern)
            // Our pattern is numeric and in range; a refusal would be a bug, reported as an
            // invalid field rather than a panic.
            .map_err(|_| CronProblem::Field(Field::DayOfWeek, (*dow).into()))?;
        Ok(CronSpec {
            hours: hour_bits,
            day_of_month,
            months,
            day_of_week,
            croner,
        })
    }

    /// Whether the schedule fires more than once a day ("a schedule in hours").
    pub(crate) fn is_hourly(&self) -> bool {
        self.hours.count_ones() > 1
    }

    /// The first and last hour of the day the schedule fires at.
    pub(crate) fn first_last_hour(&self) -> (u32, u32) {
        (self.hours.trailing_zeros(), 31 - self.hours.leading_zeros())
    }

    /// The fewest hours between two windows on the same day (`None` for one a day).
    pub(crate) fn min_gap_hours(&self) -> Option<u32> {
        min_gap_hours(self.hours)
    }
}

/// The fewest hours between consecutive set hours of one day, `None` with one hour set.
fn min_gap_hours(hours: u32) -> Option<u32> {
    let set: Vec<u32> = (0..24).filter(|h| hours & (1 << h) != 0).collect();
    set.windows(2).map(|w| w[1] - w[0]).min()
}

/// Whether a Day-of-month rule can ever meet one of `months` (bits 1..=12). Day-of-week
/// rules always can: every month has every weekday, its last one and its first four, and a
/// fifth where the month is long enough, which (Feb 29 included) happens in some year.
fn ever_matches(day_of_month: &DayOfMonth, months: u32) -> bool {
    let longest = (1..=12)
        .filter(|m| months & (1 << m) != 0)
        .map(civil::max_days_in_month)
        .max()
        .unwrap_or(0);
    match day_of_month {
        DayOfMonth::Days(bits) => (1..=longest).any(|d| bits & (1 << d) != 0),
        DayOfMonth::NearestWeekday(n) => *n <= longest,
        DayOfMonth::Any | DayOfMonth::Last | DayOfMonth::LastWeekday => longest > 0,
    }
}
