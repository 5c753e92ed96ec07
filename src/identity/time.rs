//! The `YYYYMMDD'T'HHMMSS'Z'` timestamps of SigV4 (`X-Amz-Date`).
//! Calendar arithmetic is jiff's; the grammar is SigV4's.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::Offset;

/// Seconds since the epoch of an `X-Amz-Date` value, `None` unless it is
/// exactly `YYYYMMDDTHHMMSSZ` with a valid date and time.
pub fn parse_amz_date(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 16 || b.get(8) != Some(&b'T') || b.get(15) != Some(&b'Z') {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let digits = s.get(from..to)?;
        if !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    let (y, m, d) = (num(0, 4)?, num(4, 6)?, num(6, 8)?);
    let (hh, mm, ss) = (num(9, 11)?, num(11, 13)?, num(13, 15)?);
    let date = Date::new(
        i16::try_from(y).ok()?,
        i8::try_from(m).ok()?,
        i8::try_from(d).ok()?,
    )
    .ok()?;
    // The clock is added by hand: `ss` may be a leap second (60).
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let midnight = Offset::UTC.to_timestamp(date.into()).ok()?.as_second();
    u64::try_from(midnight + hh * 3600 + mm * 60 + ss).ok()
}

/// `SystemTime` of `secs` seconds since the epoch.
pub fn system_time(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Seconds since the epoch of `t` (0 before the epoch).
pub fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `YYYY-MM-DDTHH:MM:SSZ` of `secs` seconds since the epoch (STS's
/// `Expiration`). Past jiff's range (the year 9999) the latest instant it
/// holds is shown.
pub fn iso8601(secs: u64) -> String {
    let ts = i64::try_from(secs)
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
        .unwrap_or(Timestamp::MAX);
    format!("{ts:.0}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(iso8601(1_440_938_160), "2015-08-30T12:36:00Z");
        assert_eq!(iso8601(1_709_164_800), "2024-02-29T00:00:00Z");
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(parse_amz_date("20240229T000000Z"), Some(1_709_164_800));
        assert_eq!(parse_amz_date("20161231T235960Z"), Some(1_483_228_800));
        assert!(iso8601(u64::MAX).starts_with("9999-12-"));
        for bad in [
            "20230229T000000Z",
            "20150830T123600",
            "2015-08-30T12:36:00Z",
            "20151330T123600Z",
            "20150830T243600Z",
            "2015083OT123600Z",
            "+0150830T123600Z",
            "",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }
}
