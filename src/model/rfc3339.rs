//! RFC 3339 times in the shape producers send: `2026-09-27T09:32:03.671+09:00`, `...Z`.
//!
//! The common shape (upper-case `T`, a fraction of up to nine digits or none, `Z` or `±HH:MM`) is
//! read by hand, several times faster than chrono's general parser; anything else goes to chrono,
//! which also names the fault. The fast path changes how fast a time is read, never what it reads as.

use chrono::{DateTime, NaiveDate, ParseError, Utc};

/// The UTC instant of an RFC 3339 time.
pub(super) fn parse(text: &str) -> Result<DateTime<Utc>, ParseError> {
    match common_shape(text.as_bytes()) {
        Some(t) => Ok(t),
        None => DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)),
    }
}

fn common_shape(b: &[u8]) -> Option<DateTime<Utc>> {
    // `YYYY-MM-DDTHH:MM:SS`, then the fraction, then the offset.
    if b.len() < 20 || [b[4], b[7], b[10], b[13], b[16]] != *b"--T::" {
        return None;
    }
    let (year, month, day) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    // A leap second (:60) and any field out of range are chrono's to read (and name).
    let (hour, minute, second) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0;
    if b[i] == b'.' {
        let count = b[i + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
        if !(1..=9).contains(&count) {
            return None;
        }
        nanos = digits(&b[i + 1..i + 1 + count])? * 10u32.pow(9 - count as u32);
        i += 1 + count;
    }
    let offset_seconds = match &b[i..] {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (digits(&b[i + 1..i + 3])?, digits(&b[i + 4..i + 6])?);
            if h > 23 || m > 59 {
                return None;
            }
            let s = i64::from(h * 3600 + m * 60);
            if *sign == b'-' {
                -s
            } else {
                s
            }
        }
        _ => return None,
    };
    if offset_seconds == 0 {
        // Already UTC (`Z`, the shape most producers send): the fields are the time, and chrono's
        // date from them is a table lookup, where a date from a timestamp divides.
        let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
        return Some(
            date.and_hms_nano_opt(hour, minute, second, nanos)?
                .and_utc(),
        );
    }
    // With an offset: plain arithmetic on the civil date, then one conversion from the timestamp
    // (shifting chrono's calendar types by the offset cost ten times as much, once per event).
    let local = days_from_civil(i64::from(year), month, day) * 86_400
        + i64::from(hour * 3600 + minute * 60 + second);
    DateTime::from_timestamp(local - offset_seconds, nanos)
}

/// The number the ASCII digits `d` spell, or None at any other byte.
#[inline(always)] // Seven calls per event: a call costs as much as reading two digits.
fn digits(d: &[u8]) -> Option<u32> {
    d.iter().try_fold(0u32, |n, d| {
        d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`: years counted from March, in 400-year eras).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * i64::from((month + 9) % 12) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn agrees(text: &str) {
        let want = DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc));
        assert_eq!(parse(text), want, "{text:?}");
        if let Some(fast) = common_shape(text.as_bytes()) {
            assert_eq!(Ok(fast), want, "fast path on {text:?}");
        }
    }

    #[test]
    fn reads_the_common_shapes_as_chrono_does() {
        for text in [
            "2026-09-27T09:32:03.671+09:00",
            "2026-09-27T02:49:59.783-02:30",
            "2026-09-27T00:00:00Z",
            "2026-09-27T00:00:00.123456789Z",
            "2024-02-29T23:59:59.5+00:00",
            "2026-01-01T00:00:00-23:59",
        ] {
            assert!(common_shape(text.as_bytes()).is_some(), "{text}");
            agrees(text);
        }
        // Shapes the fast path leaves to chrono, right or wrong.
        for text in [
            "2026-09-27t00:00:00Z",
            "2026-09-27 00:00:00Z",
            "2026-09-27T00:00:00z",
            "2026-09-27T23:59:60Z",
            "2026-09-27T00:00:00.1234567891Z",
            "2026-09-27T00:00:00.Z",
            "2026-02-30T00:00:00Z",
            "2026-09-27T24:00:00Z",
            "2026-09-27T00:00:00+24:00",
            "2026-09-27T00:00:00+0900",
            "2026-09-27T00:00:00",
            "2026-09-27",
            "+2026-09-27T00:00:00Z",
            "",
        ] {
            assert!(common_shape(text.as_bytes()).is_none(), "{text}");
            agrees(text);
        }
    }

    proptest! {
        /// Times near the common shape, each character possibly wrong: always chrono's reading.
        #[test]
        fn agrees_with_chrono(
            text in r"[0-9]{4}-[01][0-9]-[0-3][0-9][Tt ][0-2][0-9]:[0-6][0-9]:[0-6][0-9](\.[0-9]{0,11})?(Z|z|[+-][0-2][0-9]:?[0-6][0-9])?",
            cut in 0usize..40,
        ) {
            agrees(&text);
            // And the same text cut short, or with one byte changed.
            agrees(&text[..cut.min(text.len())]);
            let mut bytes = text.clone().into_bytes();
            if let Some(b) = bytes.get_mut(cut) {
                *b = b"0:-T.Z+x"[cut % 8];
            }
            agrees(&String::from_utf8(bytes).expect("ASCII"));
        }

        /// Every valid time of the common shape takes the fast path, and reads as chrono reads it.
        #[test]
        fn takes_the_fast_path_for_every_common_time(
            text in r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])",
        ) {
            agrees(&text);
            let chrono_reads = DateTime::parse_from_rfc3339(&text).is_ok();
            prop_assert_eq!(common_shape(text.as_bytes()).is_some(), chrono_reads, "{}", text);
        }
    }
}
