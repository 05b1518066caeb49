//! Typed condition values: numbers, dates (ISO 8601 or epoch seconds), IP addresses and CIDR
//! blocks, booleans.
//!
//! This module owns parsing those texts, in the forms the IAM condition operators accept
//! (reference_policies_elements_condition_operators.html). It must never decide what a match
//! means; `condition.rs` does.

use std::net::IpAddr;

/// A number for the `Numeric*` operators ("integer or decimal value").
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    let t = text.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("nan") || t.to_ascii_lowercase().contains("inf") {
        return None;
    }
    t.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A point in time as milliseconds since the Unix epoch, for the `Date*` operators. AWS accepts
/// "one of the W3C implementations of the ISO 8601 date formats" or epoch (UNIX) time
/// (reference_policies_elements_condition_operators.html, "Date condition operators").
pub(crate) fn parse_date(text: &str) -> Option<i64> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<i64>().ok()?.checked_mul(1000);
    }
    parse_iso8601(t)
}

/// The W3C profile of ISO 8601: `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, then optionally
/// `Thh:mm[:ss[.fraction]]` followed by `Z` or `±hh:mm`. A date-time without a zone is read
/// as UTC. Milliseconds since the Unix epoch; `None` for anything else or a date that does
/// not exist. Also what `coffer-core` reads CloudTrail times with.
#[must_use]
pub fn parse_iso8601(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let s = t.get(from..from + len)?;
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let year = num(0, 4)?;
    let mut i = 4;
    let (mut month, mut day) = (1, 1);
    if b.get(i) == Some(&b'-') {
        month = num(i + 1, 2)?;
        i += 3;
        if b.get(i) == Some(&b'-') {
            day = num(i + 1, 2)?;
            i += 3;
        }
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let (mut hour, mut minute, mut second, mut millis) = (0, 0, 0, 0);
    let mut offset_minutes = 0i64;
    if i < b.len() {
        if b[i] != b'T' && b[i] != b't' {
            return None;
        }
        hour = num(i + 1, 2)?;
        if b.get(i + 3) != Some(&b':') {
            return None;
        }
        minute = num(i + 4, 2)?;
        i += 6;
        if b.get(i) == Some(&b':') {
            second = num(i + 1, 2)?;
            i += 3;
            if b.get(i) == Some(&b'.') {
                let start = i + 1;
                let mut end = start;
                while end < b.len() && b[end].is_ascii_digit() {
                    end += 1;
                }
                if end == start {
                    return None;
                }
                let digits = &t[start..end.min(start + 3)];
                let scale = 10i64.pow(3 - digits.len() as u32);
                millis = digits.parse::<i64>().ok()? * scale;
                i = end;
            }
        }
        match b.get(i) {
            None => {}
            Some(b'Z') | Some(b'z') if i + 1 == b.len() => {}
            Some(sign @ (b'+' | b'-')) => {
                let oh = num(i + 1, 2)?;
                if b.get(i + 3) != Some(&b':') || i + 6 != b.len() {
                    return None;
                }
                let om = num(i + 4, 2)?;
                if oh > 23 || om > 59 {
                    return None;
                }
                offset_minutes = (oh * 60 + om) * if *sign == b'+' { 1 } else { -1 };
            }
            _ => return None,
        }
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An IPv4 or IPv6 CIDR block from a policy (`203.0.113.0/24`, `2001:db8::/32`); an address
/// without a prefix length is a single host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    network: u128,
    mask: u128,
    v6: bool,
}

impl Cidr {
    pub(crate) fn parse(text: &str) -> Option<Cidr> {
        let t = text.trim();
        let (addr, prefix) = match t.split_once('/') {
            Some((a, p)) => {
                if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) || p.len() > 3 {
                    return None;
                }
                (a, Some(p.parse::<u32>().ok()?))
            }
            None => (t, None),
        };
        let ip: IpAddr = addr.parse().ok()?;
        let (bits, value, v6) = match ip {
            IpAddr::V4(v4) => (32, u128::from(u32::from(v4)), false),
            IpAddr::V6(v6) => (128, u128::from(v6), true),
        };
        let prefix = prefix.unwrap_or(bits);
        if prefix > bits {
            return None;
        }
        let host_bits = bits - prefix;
        let width_mask: u128 = if bits == 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        let mask = if host_bits == 128 {
            0
        } else {
            (width_mask >> host_bits) << host_bits
        };
        Some(Cidr {
            network: value & mask,
            mask,
            v6,
        })
    }

    /// Whether `ip` is inside the block. An IPv4 address never falls inside an IPv6 block or
    /// the other way round, except that an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is
    /// compared as the IPv4 address it carries.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let (value, v6) = match ip {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), false),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => (u128::from(u32::from(v4)), false),
                None => (u128::from(v6), true),
            },
        };
        v6 == self.v6 && value & self.mask == self.network
    }
}

/// `"true"` / `"false"`, compared case-insensitively as the `Bool` operator does.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let cases: &[(&str, Option<i64>)] = &[
            ("0", Some(0)),
            ("1700000000", Some(1_700_000_000_000)),
            ("1970-01-01T00:00:00Z", Some(0)),
            ("2020-01-01", Some(1_577_836_800_000)),
            ("2020-01-01T00:00:00Z", Some(1_577_836_800_000)),
            ("2020-01-01T01:00:00+01:00", Some(1_577_836_800_000)),
            ("2019-12-31T23:00:00-01:00", Some(1_577_836_800_000)),
            ("2020-01-01T00:00:00.250Z", Some(1_577_836_800_250)),
            ("2020-01-01T00:00Z", Some(1_577_836_800_000)),
            ("2020-02-29", Some(1_582_934_400_000)),
            ("2019-02-29", None),
            ("2020-13-01", None),
            ("2020-01-01T25:00:00Z", None),
            ("2020-01-01X", None),
            ("yesterday", None),
            ("", None),
            ("-5", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_date(text), *expected, "{text}");
        }
    }

    #[test]
    fn cidrs() {
        let cases: &[(&str, &str, bool)] = &[
            ("203.0.113.0/24", "203.0.113.7", true),
            ("203.0.113.0/24", "203.0.114.7", false),
            ("203.0.113.7", "203.0.113.7", true),
            ("203.0.113.7/32", "203.0.113.8", false),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("2001:db8::/32", "2001:db8:1::5", true),
            ("2001:db8::/32", "2001:db9::5", false),
            ("::/0", "2001:db8::1", true),
            ("203.0.113.0/24", "::ffff:203.0.113.9", true),
        ];
        for (cidr, ip, expected) in cases {
            let c = Cidr::parse(cidr);
            assert!(c.is_some(), "{cidr}");
            let ip: IpAddr = ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
            assert_eq!(c.is_some_and(|c| c.contains(ip)), *expected, "{cidr} {ip}");
        }
        for bad in [
            "203.0.113.0/33",
            "2001:db8::/129",
            "1.2.3/8",
            "x",
            "1.2.3.4/",
            "1.2.3.4/-1",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("10"), Some(10.0));
        assert_eq!(parse_number("-1.5"), Some(-1.5));
        assert_eq!(parse_number("NaN"), None);
        assert_eq!(parse_number("inf"), None);
        assert_eq!(parse_number("ten"), None);
    }
}
