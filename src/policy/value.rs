//! Typed values that condition operators compare: exact decimals, instants
//! (every ISO 8601 form IAM accepts, and epoch seconds), IP networks and
//! booleans. Parsing never panics; an unparsable value is `None` and
//! simply matches nothing.

use std::cmp::Ordering;
use std::net::IpAddr;

use ipnet::IpNet;
use jiff::civil::Date;
use jiff::tz::Offset;

/// An exact decimal number, normalised so that comparisons need no floats:
/// `1.50`, `+1.5` and `01.5` are equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal {
    negative: bool,
    int: String,
    frac: String,
}

impl Decimal {
    /// Parses `[+-]digits[.digits]` (also `.5` and `5.`).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (negative, body) = match s.as_bytes().first() {
            Some(b'-') => (true, s.get(1..)?),
            Some(b'+') => (false, s.get(1..)?),
            _ => (false, s),
        };
        let (int, frac) = match body.split_once('.') {
            Some((i, f)) => (i, f),
            None => (body, ""),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let int = int.trim_start_matches('0').to_owned();
        let frac = frac.trim_end_matches('0').to_owned();
        let negative = negative && !(int.is_empty() && frac.is_empty());
        Some(Self {
            negative,
            int,
            frac,
        })
    }

    /// One text per number: equal numbers (`1.50`, `+01.5`) have equal
    /// texts, and different numbers different ones.
    pub fn canonical(&self) -> String {
        let sign = if self.negative { "-" } else { "" };
        format!("{sign}{}.{}", self.int, self.frac)
    }

    fn cmp_magnitude(&self, other: &Self) -> Ordering {
        self.int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(&other.int))
            .then_with(|| self.frac.cmp(&other.frac))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Parses a date as IAM's `Date*` operators do, to milliseconds since the
/// Unix epoch (UTC).
///
/// Accepted: epoch seconds (`1700000000`), `YYYY-MM-DD`,
/// `YYYY-MM-DDThh:mm`, `YYYY-MM-DDThh:mm:ss`, with optional fractional
/// seconds, and an optional `Z` or `±hh:mm` / `±hhmm` / `±hh` offset; the
/// basic forms `YYYYMMDD` and `YYYYMMDDThhmmss[Z]` likewise.
pub fn parse_date(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let digits_only = s
        .strip_prefix('-')
        .unwrap_or(s)
        .bytes()
        .all(|b| b.is_ascii_digit());
    // Eight digits are a basic-format date; other all-digit strings are
    // epoch seconds.
    let basic_date = s.len() == 8 && !s.starts_with('-');
    if digits_only && !basic_date {
        let secs: i64 = s.parse().ok()?;
        return secs.checked_mul(1000);
    }
    let (date, time) = match s.find(['T', 't']) {
        Some(i) => (s.get(..i)?, Some(s.get(i + 1..)?)),
        None => (s, None),
    };
    let date = parse_ymd(date)?;
    let mut millis = Offset::UTC.to_timestamp(date.into()).ok()?.as_millisecond();
    if let Some(time) = time {
        let (clock, offset_minutes) = split_offset(time)?;
        millis = millis.checked_add(parse_clock(clock)?)?;
        millis = millis.checked_sub(offset_minutes.checked_mul(60_000)?)?;
    }
    Some(millis)
}

fn parse_num(s: &str, len: usize) -> Option<i64> {
    if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// IAM's date forms (`YYYY-MM-DD`, `YYYYMMDD`, `YYYY-MM`) as a calendar
/// date; jiff checks that the day exists (no `2023-02-29`).
fn parse_ymd(s: &str) -> Option<Date> {
    let (y, m, d) = if s.len() == 10 {
        let mut parts = s.split('-');
        let y = parts.next()?;
        let m = parts.next()?;
        let d = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        (y, m, d)
    } else if s.len() == 8 {
        (s.get(0..4)?, s.get(4..6)?, s.get(6..8)?)
    } else if s.len() == 7 && s.get(4..5)? == "-" {
        // Reduced precision `YYYY-MM`: the first of the month.
        (s.get(0..4)?, s.get(5..7)?, "01")
    } else {
        return None;
    };
    let (y, m, d) = (parse_num(y, 4)?, parse_num(m, 2)?, parse_num(d, 2)?);
    Date::new(
        i16::try_from(y).ok()?,
        i8::try_from(m).ok()?,
        i8::try_from(d).ok()?,
    )
    .ok()
}

/// Splits `hh:mm:ss.fff+01:00` into the clock part and the offset in minutes.
fn split_offset(time: &str) -> Option<(&str, i64)> {
    if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        return Some((clock, 0));
    }
    match time.rfind(['+', '-']) {
        Some(i) => {
            let clock = time.get(..i)?;
            let sign = if time.get(i..i + 1)? == "-" { -1 } else { 1 };
            let off = time.get(i + 1..)?;
            let (h, m) = match off.len() {
                2 => (parse_num(off, 2)?, 0),
                4 => (parse_num(off.get(0..2)?, 2)?, parse_num(off.get(2..4)?, 2)?),
                5 if off.get(2..3)? == ":" => {
                    (parse_num(off.get(0..2)?, 2)?, parse_num(off.get(3..5)?, 2)?)
                }
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            Some((clock, sign * (h * 60 + m)))
        }
        None => Some((time, 0)),
    }
}

/// Parses `hh:mm[:ss[.fff]]` or `hhmm[ss[.fff]]` to milliseconds.
fn parse_clock(clock: &str) -> Option<i64> {
    let (main, frac) = match clock.split_once(['.', ',']) {
        Some((m, f)) => (m, Some(f)),
        None => (clock, None),
    };
    let (h, m, s) = if main.contains(':') {
        let mut parts = main.split(':');
        let h = parse_num(parts.next()?, 2)?;
        let m = parse_num(parts.next()?, 2)?;
        let s = match parts.next() {
            Some(s) => parse_num(s, 2)?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        (h, m, s)
    } else {
        match main.len() {
            4 => (
                parse_num(main.get(0..2)?, 2)?,
                parse_num(main.get(2..4)?, 2)?,
                0,
            ),
            6 => (
                parse_num(main.get(0..2)?, 2)?,
                parse_num(main.get(2..4)?, 2)?,
                parse_num(main.get(4..6)?, 2)?,
            ),
            _ => return None,
        }
    };
    // 24:00:00 is not accepted; leap seconds are folded into the next second.
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    let mut millis = ((h * 60 + m) * 60 + s) * 1000;
    if let Some(frac) = frac {
        if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let ms: String = frac.chars().chain("000".chars()).take(3).collect();
        millis += ms.parse::<i64>().ok()?;
    }
    Some(millis)
}

/// Parses an `IpAddress` operand: a CIDR block or a single address.
pub fn parse_ip_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Some(net);
    }
    s.parse::<IpAddr>().ok().map(IpNet::from)
}

/// Parses a request's IP address (`aws:SourceIp`).
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim().parse().ok()
}

/// Parses `true` / `false` case-insensitively.
pub fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a decimal the test expects to be valid: a parse failure fails
    /// the test instead of comparing a stand-in value (issue 12).
    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap_or_else(|| panic!("`{s}` does not parse as a decimal"))
    }

    #[test]
    fn decimals_compare_exactly() {
        assert_eq!(d("1.50"), d("+01.5"));
        assert_ne!(d("1.50"), d("1.51"));
        assert!(d("-2") < d("-1.5"));
        assert!(d("10") > d("9.999"));
        assert!(d("0.1") < d("0.10000001"));
        assert_eq!(d("-0"), d("0.0"));
        assert!(Decimal::parse("1e3").is_none());
        assert!(Decimal::parse("").is_none());
        assert!(Decimal::parse("abc").is_none());
        assert!(d("123456789012345678901234567890") > d("123456789012345678901234567889.99"));
    }

    #[test]
    fn dates_in_every_form() {
        let base = parse_date("2020-01-01T00:00:00Z");
        assert_eq!(base, Some(1_577_836_800_000));
        assert_eq!(parse_date("2020-01-01"), base);
        assert_eq!(parse_date("2020-01-01T00:00Z"), base);
        assert_eq!(parse_date("2020-01-01T00:00:00.000Z"), base);
        assert_eq!(parse_date("2020-01-01T01:00:00+01:00"), base);
        assert_eq!(parse_date("2019-12-31T19:00:00-0500"), base);
        assert_eq!(parse_date("20200101T000000Z"), base);
        assert_eq!(parse_date("20200101"), base);
        assert_eq!(parse_date("2020-01"), base);
        assert_eq!(parse_date("1577836800"), base);
        assert_eq!(
            parse_date("2020-01-01T00:00:00.5Z"),
            Some(1_577_836_800_500)
        );
        assert_eq!(parse_date("2020-02-30"), None);
        assert_eq!(parse_date("not a date"), None);
        assert_eq!(parse_date("1969-12-31T23:59:59Z"), Some(-1000));
    }

    #[test]
    fn ip_forms() {
        let net = parse_ip_net("2001:db8::/32");
        assert!(net.is_some_and(|n| parse_ip("2001:db8::1").is_some_and(|a| n.contains(&a))));
        assert!(parse_ip_net("203.0.113.7").is_some_and(|n| n.prefix_len() == 32));
        assert!(parse_ip_net("::1").is_some_and(|n| n.prefix_len() == 128));
        assert!(parse_ip_net("300.0.0.1/8").is_none());
    }
}
