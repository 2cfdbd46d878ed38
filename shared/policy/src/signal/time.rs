//! The instants AWS writes in the payloads the evaluator reads, in exactly the spellings AWS uses.
//!
//! Why not chrono's `DateTime<Utc>` deserializer (what `aws_lambda_events` uses)? It parses
//! RFC 3339 *relaxed*: it skips whitespace between the fields, so `2026-11-20T03: 00: 00.490+0000`
//! — a typesetting artefact copied from a documentation page into the Rust runtime's fixtures —
//! is read as a valid instant. A time is what the age guard trusts to drop a stale or replayed
//! delivery; it must be one of the spellings AWS really emits, and nothing looser:
//!
//! - [`TimeDialect::Zoned`], `YYYY-MM-DDTHH:MM:SS[.fraction]` followed by either
//!   - `Z` — the EventBridge envelope's `time` (`2019-10-02T17:04:40Z`, Amazon EventBridge User
//!     Guide, "Amazon EventBridge events": "time ... ISO 8601 format"), the SNS `Timestamp`
//!     (`2015-08-18T18:02:32.111Z`, Amazon SNS Developer Guide, "Amazon SNS message and JSON
//!     formats") and an RDS event's `detail.Date` (`2018-09-27T22:36:43.292Z`, Amazon RDS User
//!     Guide, "Overview of events for Amazon RDS"); or
//!   - a four-digit offset without a colon, `+0000` — CloudWatch's alarm timestamps: the alarm's
//!     Lambda action payload `time` and `state.timestamp` (`2023-08-04T12:36:15.490+0000`, Amazon
//!     CloudWatch User Guide, "Lambda alarm action" payload), the EventBridge alarm detail's
//!     `state.timestamp` ("Alarm events and EventBridge") and the SNS alarm message's
//!     `StateChangeTime` ("Amazon SNS message and JSON formats" / the Lambda runtimes' fixtures).
//! - [`TimeDialect::RdsNotification`], `YYYY-MM-DD HH:MM:SS[.fraction]` with a space and no zone,
//!   in UTC — the `Event Time` of an RDS event notification delivered over SNS
//!   (`2019-01-02 12:45:06.000`, AWS Lambda Developer Guide, "Using AWS Lambda with Amazon RDS").
//!
//! A fraction has 1 to 9 digits. Everything else — whitespace anywhere, `+00:00`, a missing zone
//! where one is due, a zone where none is, a two-digit year, a date that does not exist — is a
//! typed error naming the field.

use chrono::{DateTime, NaiveDate, Utc};

/// Which family of spellings a field may use (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeDialect {
    /// `T` between date and time, then `Z` or `±HHMM`.
    Zoned,
    /// A space between date and time, no zone: UTC (RDS event notifications over SNS).
    RdsNotification,
}

impl TimeDialect {
    pub fn describe(self) -> &'static str {
        match self {
            TimeDialect::Zoned => {
                "an AWS timestamp `YYYY-MM-DDTHH:MM:SS[.fff]Z` or `YYYY-MM-DDTHH:MM:SS[.fff]+0000`"
            }
            TimeDialect::RdsNotification => {
                "an RDS notification time `YYYY-MM-DD HH:MM:SS[.fff]` (UTC, no zone)"
            }
        }
    }
}

/// Parses `s` in `dialect`, or `None` if it is spelled any other way.
pub fn parse_aws_time(s: &str, dialect: TimeDialect) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<u32> {
        let digits = b.get(from..from + len)?;
        digits.iter().all(u8::is_ascii_digit).then(|| {
            digits
                .iter()
                .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
        })
    };
    let sep = match dialect {
        TimeDialect::Zoned => b'T',
        TimeDialect::RdsNotification => b' ',
    };
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != sep
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let mut i = 19;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        let digits = b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = num(start, digits)? * 10u32.pow(9 - digits as u32);
        i = start + digits;
    }
    let rest = &b[i..];
    let offset_secs: i64 = match (dialect, rest) {
        (TimeDialect::RdsNotification, []) => 0,
        (TimeDialect::Zoned, [b'Z']) => 0,
        (TimeDialect::Zoned, [sign @ (b'+' | b'-'), ..]) if rest.len() == 5 => {
            let (hh, mm) = (num(i + 1, 2)?, num(i + 3, 2)?);
            if hh > 23 || mm > 59 {
                return None;
            }
            let secs = i64::from(hh * 3600 + mm * 60);
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    let local = NaiveDate::from_ymd_opt(year as i32, month, day)?
        .and_hms_nano_opt(hour, minute, second, nanos)?;
    Some(local.and_utc() - chrono::Duration::seconds(offset_secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zoned(s: &str) -> Option<String> {
        parse_aws_time(s, TimeDialect::Zoned).map(|t| t.to_rfc3339())
    }

    #[test]
    fn the_spellings_aws_uses_parse_to_the_same_instant() {
        let want = Some("2026-11-20T03:00:00.490+00:00".to_string());
        assert_eq!(zoned("2026-11-20T03:00:00.490Z"), want);
        assert_eq!(zoned("2026-11-20T03:00:00.490+0000"), want);
        assert_eq!(zoned("2026-11-20T05:00:00.490+0200"), want);
        assert_eq!(zoned("2026-11-19T22:00:00.490-0500"), want);
        assert_eq!(
            zoned("2026-11-20T03:00:00Z"),
            Some("2026-11-20T03:00:00+00:00".into())
        );
        assert_eq!(
            parse_aws_time("2026-11-20 03:00:00.490", TimeDialect::RdsNotification)
                .map(|t| t.to_rfc3339()),
            want
        );
        assert_eq!(
            parse_aws_time("2026-11-20 03:00:00", TimeDialect::RdsNotification)
                .map(|t| t.to_rfc3339()),
            Some("2026-11-20T03:00:00+00:00".into())
        );
    }

    #[test]
    fn anything_looser_is_refused() {
        for s in [
            "2026-11-20T03: 00: 00.490+0000",
            " 2026-11-20T03:00:00Z",
            "2026-11-20T03:00:00Z ",
            "2026-11-20T03:00:00+00:00",
            "2026-11-20T03:00:00",
            "2026-11-20 03:00:00Z",
            "2026-11-20t03:00:00z",
            "2026-11-20T03:00:00.Z",
            "2026-11-20T03:00:00.1234567890Z",
            "2026-11-20T03:00Z",
            "26-11-20T03:00:00Z",
            "2026-02-30T03:00:00Z",
            "2026-11-20T24:00:00Z",
            "2026-11-20T03:00:00+2400",
            "2026-11-20T03:00:00+0000Z",
            "+2026-11-20T03:00:00Z",
            "2026-11-20T03:00:00.49０Z",
            "",
        ] {
            assert_eq!(zoned(s), None, "{s:?}");
        }
        for s in [
            "2026-11-20T03:00:00.490",
            "2026-11-20 03:00:00.490Z",
            "2026-11-20 03:00:00.490+0000",
            "2026-11-20  03:00:00",
        ] {
            assert_eq!(
                parse_aws_time(s, TimeDialect::RdsNotification),
                None,
                "{s:?}"
            );
        }
    }
}
