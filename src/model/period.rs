//! Calendar arithmetic: hours in UTC, days and months in a time zone, and how a range of time is
//! composed from stored periods.

use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// The size of a stored period. Hours are UTC hours; days and months follow the reporting time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grain {
    Hour,
    Day,
    Month,
    /// Everything stored: one row per group, starting at [`ALL_TIME_START`], so that the all-time
    /// total is one read.
    All,
}

/// The start of the one [`Grain::All`] period.
pub(crate) const ALL_TIME_START: DateTime<Utc> = DateTime::<Utc>::UNIX_EPOCH;

impl Grain {
    pub fn as_str(self) -> &'static str {
        match self {
            Grain::Hour => "hour",
            Grain::Day => "day",
            Grain::Month => "month",
            Grain::All => "all",
        }
    }
}

impl fmt::Display for Grain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Grain {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "hour" => Ok(Grain::Hour),
            "day" => Ok(Grain::Day),
            "month" => Ok(Grain::Month),
            "all" => Ok(Grain::All),
            _ => Err(format!("unknown grain {s:?}")),
        }
    }
}

/// One stored period: its grain and its start instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Period {
    pub grain: Grain,
    pub start: DateTime<Utc>,
}

/// The start of `t`'s UTC hour: its date with the hour's first time. Ingest floors every event's
/// time; chrono's field-by-field truncation (each field checked) was 2% of it, and a round trip
/// through the timestamp 1.4% (turning a day number back into a date divides).
pub fn floor_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    let t = t.naive_utc();
    NaiveDateTime::new(
        t.date(),
        NaiveTime::from_hms_opt(t.hour(), 0, 0).expect("an hour of a day is a time"),
    )
    .and_utc()
}

pub(crate) fn is_hour_aligned(t: DateTime<Utc>) -> bool {
    floor_hour(t) == t
}

/// The first instant of `date` in `tz`. Where midnight falls in a DST gap, the first instant after it.
/// A time as people type it (the API's `from` and `to`, backfill ranges, `tally generate --end`):
/// a date, or an RFC 3339 time with any offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateOrTime {
    Date(NaiveDate),
    Time(DateTime<Utc>),
}

impl DateOrTime {
    /// The one reading of such text: `2026-08-23` or `2026-08-23T09:00:00+09:00`.
    pub fn parse(text: &str) -> Option<DateOrTime> {
        match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(date) => Some(DateOrTime::Date(date)),
            Err(_) => DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| DateOrTime::Time(t.with_timezone(&Utc))),
        }
    }

    /// In UTC, a date taken as midnight in `tz`.
    pub fn in_zone(self, tz: Tz) -> DateTime<Utc> {
        match self {
            DateOrTime::Date(date) => local_midnight(tz, date),
            DateOrTime::Time(t) => t,
        }
    }
}

pub(crate) fn local_midnight(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let mut local = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    for _ in 0..48 {
        match tz.from_local_datetime(&local) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(a, _) => return a.with_timezone(&Utc),
            LocalResult::None => local += Duration::minutes(30),
        }
    }
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight exists"))
}

pub(crate) fn local_date(tz: Tz, t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&tz).date_naive()
}

pub fn day_start(tz: Tz, t: DateTime<Utc>) -> DateTime<Utc> {
    local_midnight(tz, local_date(tz, t))
}

pub(crate) fn next_day(tz: Tz, day_start: DateTime<Utc>) -> DateTime<Utc> {
    local_midnight(tz, local_date(tz, day_start) + Duration::days(1))
}

pub(crate) fn month_start(tz: Tz, t: DateTime<Utc>) -> DateTime<Utc> {
    let d = local_date(tz, t);
    local_midnight(
        tz,
        NaiveDate::from_ymd_opt(d.year(), d.month(), 1).expect("first of month"),
    )
}

pub(crate) fn next_month(tz: Tz, month_start: DateTime<Utc>) -> DateTime<Utc> {
    let d = local_date(tz, month_start);
    let (y, m) = if d.month() == 12 {
        (d.year() + 1, 1)
    } else {
        (d.year(), d.month() + 1)
    };
    local_midnight(
        tz,
        NaiveDate::from_ymd_opt(y, m, 1).expect("first of month"),
    )
}

/// Monday 00:00 of the ISO week holding `t`, in `tz`.
pub(crate) fn week_start(tz: Tz, t: DateTime<Utc>) -> DateTime<Utc> {
    let d = local_date(tz, t);
    local_midnight(
        tz,
        d - Duration::days(d.weekday().num_days_from_monday() as i64),
    )
}

pub(crate) fn next_week(tz: Tz, week_start: DateTime<Utc>) -> DateTime<Utc> {
    local_midnight(tz, local_date(tz, week_start) + Duration::days(7))
}

/// The start of the `grain` period of `tz` that holds `t`.
pub(crate) fn period_floor(grain: Grain, tz: Tz, t: DateTime<Utc>) -> DateTime<Utc> {
    match grain {
        Grain::Hour => floor_hour(t),
        Grain::Day => day_start(tz, t),
        Grain::Month => month_start(tz, t),
        Grain::All => ALL_TIME_START,
    }
}

pub(crate) fn period_end(grain: Grain, tz: Tz, start: DateTime<Utc>) -> DateTime<Utc> {
    match grain {
        Grain::Hour => start + Duration::hours(1),
        Grain::Day => next_day(tz, start),
        Grain::Month => next_month(tz, start),
        Grain::All => DateTime::<Utc>::MAX_UTC,
    }
}

/// Whether `tz` is a whole number of hours from UTC at instant `t`.
pub(crate) fn whole_hour_offset(tz: Tz, t: DateTime<Utc>) -> bool {
    use chrono::Offset;
    t.with_timezone(&tz).offset().fix().local_minus_utc() % 3600 == 0
}

/// Whether `tz` keeps whole-hour offsets over the years a deployment will see. Days of a reporting
/// zone are composed of UTC hours, which needs this.
pub(crate) fn zone_has_whole_hour_offsets(tz: Tz) -> bool {
    (2000..2100).all(|year| {
        (1..=12).all(|month| {
            let t = Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0).unwrap();
            whole_hour_offset(tz, t)
        })
    })
}

/// Splits the hour-aligned range `[from, to)` into the fewest stored periods: whole months and days
/// of the reporting zone `tz` where they fit, UTC hours elsewhere.
/// For each grain among `periods`, the half-open range `[first start, last start + 1 s)` that
/// holds all their starts: what one range read per grain must cover.
pub(crate) fn spans(
    periods: &[Period],
) -> std::collections::BTreeMap<Grain, (DateTime<Utc>, DateTime<Utc>)> {
    let mut out = std::collections::BTreeMap::new();
    for p in periods {
        let span = out.entry(p.grain).or_insert((p.start, p.start));
        span.0 = span.0.min(p.start);
        span.1 = span.1.max(p.start);
    }
    for span in out.values_mut() {
        span.1 += Duration::seconds(1);
    }
    out
}

pub(crate) fn decompose(from: DateTime<Utc>, to: DateTime<Utc>, tz: Tz) -> Vec<Period> {
    debug_assert!(is_hour_aligned(from) && is_hour_aligned(to));
    let mut out = Vec::new();
    let mut t = from;
    while t < to {
        let period = if month_start(tz, t) == t && next_month(tz, t) <= to {
            Period {
                grain: Grain::Month,
                start: t,
            }
        } else if day_start(tz, t) == t && next_day(tz, t) <= to {
            Period {
                grain: Grain::Day,
                start: t,
            }
        } else {
            Period {
                grain: Grain::Hour,
                start: t,
            }
        };
        t = period_end(period.grain, tz, t);
        out.push(period);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    proptest::proptest! {
        /// The hour's start read off the date and hour is the timestamp rounded down to 3,600
        /// seconds, before the epoch and in a leap second too.
        #[test]
        fn an_hour_starts_at_its_timestamp_rounded_down(
            secs in -62_000_000_000i64..250_000_000_000,
            nanos in 0u32..1_000_000_000,
            leap: bool,
        ) {
            // chrono keeps a leap second as the 59th second with a billion nanoseconds more.
            let (secs, nanos) = if leap {
                (secs - secs.rem_euclid(60) + 59, nanos + 1_000_000_000)
            } else {
                (secs, nanos)
            };
            let t = DateTime::from_timestamp(secs, nanos).unwrap();
            let start = floor_hour(t);
            proptest::prop_assert_eq!(start.timestamp(), secs.div_euclid(3600) * 3600);
            proptest::prop_assert_eq!(start.timestamp_subsec_nanos(), 0);
        }
    }

    #[test]
    fn seoul_days_start_at_15_utc() {
        let tz: Tz = "Asia/Seoul".parse().unwrap();
        assert_eq!(day_start(tz, utc(2026, 8, 23, 16)), utc(2026, 8, 23, 15));
        assert_eq!(day_start(tz, utc(2026, 8, 23, 14)), utc(2026, 8, 22, 15));
        assert_eq!(month_start(tz, utc(2026, 8, 31, 16)), utc(2026, 8, 31, 15));
    }

    #[test]
    fn dst_days_have_23_and_25_hours() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let spring = local_midnight(tz, NaiveDate::from_ymd_opt(2026, 3, 8).unwrap());
        assert_eq!(next_day(tz, spring) - spring, Duration::hours(23));
        let fall = local_midnight(tz, NaiveDate::from_ymd_opt(2026, 11, 1).unwrap());
        assert_eq!(next_day(tz, fall) - fall, Duration::hours(25));
    }

    #[test]
    fn decomposition_covers_the_range_exactly_with_largest_periods() {
        let tz = Tz::UTC;
        let parts = decompose(utc(2026, 7, 30, 22), utc(2026, 9, 2, 3), tz);
        let grains: Vec<_> = parts.iter().map(|p| p.grain).collect();
        assert_eq!(grains.iter().filter(|g| **g == Grain::Month).count(), 1);
        assert_eq!(grains.iter().filter(|g| **g == Grain::Day).count(), 2);
        assert_eq!(grains.iter().filter(|g| **g == Grain::Hour).count(), 2 + 3);
        let mut t = utc(2026, 7, 30, 22);
        for p in &parts {
            assert_eq!(p.start, t);
            t = period_end(p.grain, tz, p.start);
        }
        assert_eq!(t, utc(2026, 9, 2, 3));
    }

    #[test]
    fn zones_with_half_hour_offsets_are_recognised() {
        assert!(zone_has_whole_hour_offsets("Asia/Seoul".parse().unwrap()));
        assert!(zone_has_whole_hour_offsets(
            "Europe/Berlin".parse().unwrap()
        ));
        assert!(!zone_has_whole_hour_offsets(
            "Asia/Kolkata".parse().unwrap()
        ));
    }
}
