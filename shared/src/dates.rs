//! RFC 3339 in (with `Z`, `-08:00` or the common `-0800`), UTC `Z` out.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Parses an RFC 3339 date-time; `-0800`-style offsets are accepted too.
pub fn parse(text: &str) -> Option<OffsetDateTime> {
    if text.len() > 64 || !text.is_ascii() {
        return None;
    }
    let normalised;
    let mut input = text;
    let b = text.as_bytes();
    // `...T12:00:00-0800`: insert the colon RFC 3339 requires.
    if b.len() > 5 {
        let tail = &b[b.len() - 5..];
        if (tail[0] == b'+' || tail[0] == b'-') && tail[1..].iter().all(u8::is_ascii_digit) {
            // ASCII was checked above, so the split is a character boundary.
            if let (Some(head), Some(minutes)) =
                (text.get(..text.len() - 2), text.get(text.len() - 2..))
            {
                normalised = format!("{head}:{minutes}");
                input = &normalised;
            }
        }
    }
    let parsed = OffsetDateTime::parse(input, &Rfc3339).ok()?;
    // Checked: 9999-12-31T23:59:59-0359 is year 10000 in UTC, which `time`
    // cannot represent (found by the `dates` fuzz target).
    let utc = parsed.checked_to_offset(UtcOffset::UTC)?;
    // RFC 3339 has four-digit years only: 0000-01-01T00:00:00+23:59 is year
    // -1 in UTC, which could not be written back (found by a fuzz seed).
    if !(0..=9999).contains(&utc.year()) {
        return None;
    }
    // Stored with millisecond precision; answer what will be stored.
    Some(from_millis(millis(utc)))
}

/// UTC with `Z`, whole seconds unless the value carries sub-seconds.
pub fn format(t: OffsetDateTime) -> String {
    let t = t.checked_to_offset(UtcOffset::UTC).unwrap_or(t);
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Now, to the millisecond (the precision the store keeps).
pub fn now() -> OffsetDateTime {
    from_millis(millis(OffsetDateTime::now_utc()))
}

pub fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_z_and_offsets() {
        let z = parse("2030-01-02T03:04:05Z").unwrap();
        let colon = parse("2030-01-01T19:04:05-08:00").unwrap();
        let compact = parse("2030-01-01T19:04:05-0800").unwrap();
        assert_eq!(z, colon);
        assert_eq!(z, compact);
        assert_eq!(format(colon), "2030-01-02T03:04:05Z");
        assert_eq!(parse("2030-01-02T05:04:05+0200").unwrap(), z);
        assert_eq!(
            format(parse("2030-01-02T03:04:05.250Z").unwrap()),
            "2030-01-02T03:04:05.25Z"
        );
        assert_eq!(
            parse("2030-01-02T03:04:05.123456Z"),
            parse("2030-01-02T03:04:05.123Z")
        );
    }

    #[test]
    fn refuses_non_rfc3339() {
        for bad in [
            "",
            "2030-01-02",
            "2030-13-02T03:04:05Z",
            "tomorrow",
            "2030-01-02T03:04:05",
            "2030-01-02T03:04:05-08",
            "1700000000",
            "2030-01-02T03:04:05-08000",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn out_of_range_in_utc_is_refused_not_a_panic() {
        assert!(parse("9999-12-31T23:59:59-0359").is_none());
        assert!(parse("9999-12-31T23:59:59Z").is_some());
        assert!(parse("0000-01-01T00:00:00+23:59").is_none());
        assert!(parse("0000-01-01T00:00:00-01:00").is_some());
    }

    #[test]
    fn millis_round_trip() {
        let t = parse("2030-01-02T03:04:05.123Z").unwrap();
        assert_eq!(from_millis(millis(t)), t);
    }
}
