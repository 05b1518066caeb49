//! The two timestamp formats SigV4 meets: ISO 8601 basic (`20150830T123600Z`, the `X-Amz-Date`
//! header and query parameter) and RFC 1123 (`Sun, 30 Aug 2015 12:36:00 GMT`, the HTTP `Date`
//! header that AWS accepts when `X-Amz-Date` is absent). Plain arithmetic on Unix seconds: no
//! clock is read here, the caller passes "now" in.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are in range by construction (1..=31, 1..=12).
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

fn unix_seconds(
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
) -> Option<i64> {
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second))
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u32, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

/// Parses `YYYYMMDDTHHMMSSZ`; `None` for anything else, including impossible dates.
#[must_use]
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b.get(8) != Some(&b'T') || b.get(15) != Some(&b'Z') {
        return None;
    }
    let field = |from: usize, to: usize| b.get(from..to).and_then(digits);
    unix_seconds(
        i64::from(field(0, 4)?),
        field(4, 6)?,
        field(6, 8)?,
        field(9, 11)?,
        field(11, 13)?,
        field(13, 15)?,
    )
}

/// Formats Unix seconds as `YYYYMMDDTHHMMSSZ`; `None` outside the years 0000–9999.
#[must_use]
pub fn format_amz_date(unix_secs: i64) -> Option<String> {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    Some(format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    ))
}

/// For messages: the ISO form when representable, the raw number otherwise.
pub(crate) fn display_amz_date(unix_secs: i64) -> String {
    format_amz_date(unix_secs).unwrap_or_else(|| unix_secs.to_string())
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Parses an RFC 1123 HTTP date, `Sun, 30 Aug 2015 12:36:00 GMT` (the weekday is optional and not
/// cross-checked, as RFC 9110 §5.6.7 lets recipients ignore it).
#[must_use]
pub fn parse_http_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let rest = match s.split_once(", ") {
        Some((_weekday, rest)) => rest,
        None => s,
    };
    let mut parts = rest.split(' ');
    let day = digits(parts.next()?.as_bytes())?;
    let month_name = parts.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)?;
    let year = digits(parts.next()?.as_bytes())?;
    let time = parts.next()?;
    if parts.next()? != "GMT" || parts.next().is_some() {
        return None;
    }
    let mut hms = time.split(':');
    let hour = digits(hms.next()?.as_bytes())?;
    let minute = digits(hms.next()?.as_bytes())?;
    let second = digits(hms.next()?.as_bytes())?;
    if hms.next().is_some() || time.len() != 8 {
        return None;
    }
    let month = u32::try_from(month).ok()? + 1;
    unix_seconds(i64::from(year), month, day, hour, minute, second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_date_round_trips() {
        // 2015-08-30T12:36:00Z, the date of AWS's documented examples.
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(
            format_amz_date(1_440_938_160).as_deref(),
            Some("20150830T123600Z")
        );
        assert_eq!(format_amz_date(0).as_deref(), Some("19700101T000000Z"));
        assert_eq!(
            parse_amz_date("20000229T235959Z")
                .and_then(format_amz_date)
                .as_deref(),
            Some("20000229T235959Z")
        );
        for secs in [-86_400_i64, 951_782_400, 4_102_444_800, 253_402_300_799] {
            let text = format_amz_date(secs).unwrap_or_default();
            assert_eq!(parse_amz_date(&text), Some(secs), "{text}");
        }
        assert_eq!(format_amz_date(253_402_300_800), None);
        assert_eq!(format_amz_date(i64::MAX), None);
        assert_eq!(format_amz_date(i64::MIN), None);
    }

    #[test]
    fn amz_date_rejects_near_misses() {
        for bad in [
            "",
            "20150830T123600",
            "20150830t123600Z",
            "2015-08-30T12:36:00Z",
            "20150230T123600Z",
            "20190229T000000Z",
            "20151330T123600Z",
            "20150830T243600Z",
            "20150830T126000Z",
            "2015083OT123600Z",
            "+0150830T123600Z",
            "２０15083T123600Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 30 Aug 2015 12:36:00 GMT"),
            Some(1_440_938_160)
        );
        assert_eq!(
            parse_http_date("30 Aug 2015 12:36:00 GMT"),
            Some(1_440_938_160)
        );
        for bad in [
            "Sun, 30 Aug 2015 12:36:00 UTC",
            "Sun, 30 Agu 2015 12:36:00 GMT",
            "Sun, 30 Aug 2015 12:36 GMT",
            "",
            "Sun, ",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }
}
