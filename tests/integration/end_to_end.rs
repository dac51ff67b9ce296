//! End to end on one machine: generated events (duplicates, late arrivals, malformed lines, mixed
//! offsets) are ingested into a real directory, rolled up into a real SQLite store, and every shipped
//! metric is checked against a straightforward recomputation from the raw lines.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, DurationRound, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use tally::ingest;
use tally::rollup::Catalog;
use tally::runtime::Local;
use tally::serve::{Answer, MetricResponse, QueryOptions, QueryParams, QueryService};
use tally::tools::demo::{self, DemoSpec};

use crate::oracle::{Oracle, Window};

pub(crate) fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

/// Data ends here; the generator starts four days earlier.
fn end() -> DateTime<Utc> {
    utc(2026, 8, 27, 6)
}

pub(crate) fn received() -> DateTime<Utc> {
    end() + Duration::minutes(1)
}

pub(crate) fn deliveries() -> Vec<Vec<u8>> {
    deliveries_ending(end(), 7)
}

/// Four days of traffic before `end`, with more duplicates, late and malformed lines than usual.
pub(crate) fn deliveries_ending(end: DateTime<Utc>, seed: u64) -> Vec<Vec<u8>> {
    let spec = DemoSpec {
        events_per_day: 3000,
        users: 500,
        seed,
        duplicate_rate: 0.03,
        late_rate: 0.03,
        malformed_rate: 0.01,
        ..DemoSpec::new(4, end)
    };
    let mut out = Vec::new();
    demo::generate(&spec, |_, bytes| out.push(bytes));
    out
}

struct Setup {
    _dir: tempfile::TempDir,
    local: Local,
    oracle: Oracle,
}

async fn setup(reporting_tz: Tz) -> Setup {
    setup_from(reporting_tz, deliveries()).await
}

async fn setup_from(reporting_tz: Tz, deliveries: Vec<Vec<u8>>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let local = Local::open(dir.path(), Catalog::builtin(), reporting_tz).unwrap();
    let mut oracle = Oracle::default();
    let mut rejected = 0;
    for d in deliveries {
        let summary = ingest::ingest_ndjson(&local.storage, &d[..], received())
            .await
            .unwrap();
        rejected += summary.rejected;
        oracle.add_lines(&d, received());
    }
    assert!(rejected > 0, "the generated traffic has malformed lines");
    assert_eq!(
        rejected, oracle.invalid_lines,
        "ingest and the oracle agree on what is malformed"
    );
    assert!(
        oracle.duplicates > 0,
        "the generated traffic has duplicates"
    );
    let report = local.rollup().run_touched(None).await.unwrap();
    let event_hours: BTreeSet<DateTime<Utc>> = oracle
        .events
        .iter()
        .map(|e| e.at.duration_trunc(Duration::hours(1)).unwrap())
        .collect();
    assert_eq!(
        report.hours_recomputed.len(),
        event_hours.len(),
        "every hour with events is rolled up"
    );
    Setup {
        _dir: dir,
        local,
        oracle,
    }
}

fn service(s: &Setup) -> QueryService {
    s.local.query_service(QueryOptions::default())
}

pub(crate) fn params(
    metric: &str,
    from: &str,
    to: &str,
    tz: Option<&str>,
    interval: Option<&str>,
    filters: &[(&str, &str)],
) -> QueryParams {
    QueryParams {
        metric: metric.into(),
        from: Some(from.into()),
        to: Some(to.into()),
        tz: tz.map(Into::into),
        interval: interval.map(Into::into),
        filters: filters
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

/// Asserts a value from the API against the oracle: exact for counts and sums, and for distinct
/// counts unless they came from merged sketches, then within 2%.
fn assert_value(what: &str, metric: &str, got: Decimal, want: Decimal, approximate_allowed: bool) {
    if metric == "visitors" && approximate_allowed {
        let tolerance = (want * Decimal::new(2, 2)).max(Decimal::ONE);
        assert!(
            (got - want).abs() <= tolerance,
            "{what}: {got} is not within 2% of {want}"
        );
    } else {
        assert_eq!(got, want, "{what}");
    }
}

/// Checks totals, change rate and series of `r` against the oracle for the expected windows.
pub(crate) fn check(
    o: &Oracle,
    r: &MetricResponse,
    current: Window,
    previous: Window,
    buckets: &[DateTime<Utc>],
    filters: &[(&str, &str)],
) {
    let m = r.metric.as_str();
    let tz: Tz = r.tz.parse().unwrap();
    let fmt = |t: DateTime<Utc>| t.with_timezone(&tz).to_rfc3339();
    assert_eq!(
        (r.range.from.clone(), r.range.to.clone()),
        (fmt(current.0), fmt(current.1)),
        "{m} range"
    );
    assert_eq!(
        (r.previous_range.from.clone(), r.previous_range.to.clone()),
        (fmt(previous.0), fmt(previous.1)),
        "{m} previous range"
    );
    let cur = o.value(m, current, filters);
    let prev = o.value(m, previous, filters);
    let all = o.value(m, (utc(2000, 1, 1, 0), utc(2100, 1, 1, 0)), filters);
    assert!(
        !cur.is_zero(),
        "{m}: the oracle sees data in the range, so the check is not vacuous"
    );
    assert_value(
        &format!("{m} current_total"),
        m,
        r.current_total,
        cur,
        r.approximate,
    );
    assert_value(
        &format!("{m} previous_total"),
        m,
        r.previous_total,
        prev,
        r.approximate,
    );
    assert_value(&format!("{m} total"), m, r.total, all, r.approximate);
    let expected_rate = if prev.is_zero() {
        None
    } else {
        Some(
            ((r.current_total - r.previous_total) / r.previous_total * Decimal::ONE_HUNDRED)
                .round_dp(4),
        )
    };
    assert_eq!(
        r.change_rate
            .map(|x| Decimal::try_from(x).unwrap().round_dp(4)),
        expected_rate,
        "{m} change_rate"
    );
    let starts: Vec<String> = r.series.iter().map(|p| p.start.clone()).collect();
    let want_starts: Vec<String> = buckets.iter().map(|t| fmt(*t)).collect();
    assert_eq!(starts, want_starts, "{m} series buckets");
    let mut bounds = buckets.to_vec();
    bounds.push(current.1);
    for (i, p) in r.series.iter().enumerate() {
        let want = o.value(m, (bounds[i], bounds[i + 1]), filters);
        assert_value(
            &format!("{m} series[{i}] {}", p.start),
            m,
            p.value,
            want,
            r.approximate,
        );
    }
}

pub(crate) fn hours(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = vec![];
    let mut t = from;
    while t < to {
        out.push(t);
        t += Duration::hours(1);
    }
    out
}

fn local_days(tz: Tz, from: NaiveDate, to: NaiveDate) -> Vec<DateTime<Utc>> {
    from.iter_days()
        .take_while(|d| *d < to)
        .map(|d| {
            tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap())
                .unwrap()
                .with_timezone(&Utc)
        })
        .collect()
}

fn date(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 8, d).unwrap()
}

pub(crate) const METRICS: [&str; 5] = [
    "visitors",
    "sign_ins",
    "content_views",
    "purchases",
    "revenue",
];

#[tokio::test]
async fn every_metric_matches_the_oracle_in_utc_and_seoul_with_and_without_filters() {
    let s = setup(Tz::UTC).await;
    let svc = service(&s);
    let now = utc(2026, 9, 1, 0);
    let seoul: Tz = "Asia/Seoul".parse().unwrap();

    for m in METRICS {
        // Two whole UTC days; the default interval for two days is hourly.
        let r = svc
            .query(&params(m, "2026-08-25", "2026-08-27", None, None, &[]), now)
            .await
            .unwrap();
        assert!(!r.clipped);
        check(
            &s.oracle,
            &r,
            (utc(2026, 8, 25, 0), utc(2026, 8, 27, 0)),
            (utc(2026, 8, 23, 0), utc(2026, 8, 25, 0)),
            &hours(utc(2026, 8, 25, 0), utc(2026, 8, 27, 0)),
            &[],
        );

        // The same dates in Seoul, daily: days composed of UTC hours.
        let r = svc
            .query(
                &params(
                    m,
                    "2026-08-25",
                    "2026-08-27",
                    Some("Asia/Seoul"),
                    Some("day"),
                    &[],
                ),
                now,
            )
            .await
            .unwrap();
        check(
            &s.oracle,
            &r,
            (utc(2026, 8, 24, 15), utc(2026, 8, 26, 15)),
            (utc(2026, 8, 22, 15), utc(2026, 8, 24, 15)),
            &local_days(seoul, date(25), date(27)),
            &[],
        );

        // An RFC 3339 range with an offset.
        let r = svc
            .query(
                &params(
                    m,
                    "2026-08-25T14:00:00+09:00",
                    "2026-08-26T02:00:00+09:00",
                    None,
                    None,
                    &[],
                ),
                now,
            )
            .await
            .unwrap();
        check(
            &s.oracle,
            &r,
            (utc(2026, 8, 25, 5), utc(2026, 8, 25, 17)),
            (utc(2026, 8, 24, 17), utc(2026, 8, 25, 5)),
            &hours(utc(2026, 8, 25, 5), utc(2026, 8, 25, 17)),
            &[],
        );
    }

    // Filters on each metric's first dimension, in both zones.
    for (m, filter) in [
        ("visitors", ("country", "KR")),
        ("sign_ins", ("browser", "Chrome")),
        ("content_views", ("content_id", "content-000")),
        ("purchases", ("item_id", "item-pro")),
        ("revenue", ("country", "US")),
    ] {
        let r = svc
            .query(
                &params(m, "2026-08-24", "2026-08-27", None, Some("day"), &[filter]),
                now,
            )
            .await
            .unwrap();
        check(
            &s.oracle,
            &r,
            (utc(2026, 8, 24, 0), utc(2026, 8, 27, 0)),
            (utc(2026, 8, 21, 0), utc(2026, 8, 24, 0)),
            &local_days(Tz::UTC, date(24), date(27)),
            &[filter],
        );
        let r = svc
            .query(
                &params(
                    m,
                    "2026-08-25",
                    "2026-08-27",
                    Some("Asia/Seoul"),
                    Some("day"),
                    &[filter],
                ),
                now,
            )
            .await
            .unwrap();
        check(
            &s.oracle,
            &r,
            (utc(2026, 8, 24, 15), utc(2026, 8, 26, 15)),
            (utc(2026, 8, 22, 15), utc(2026, 8, 24, 15)),
            &local_days(seoul, date(25), date(27)),
            &[filter],
        );
    }
    // Two filters at once.
    let two = [("country", "KR"), ("browser", "Chrome")];
    let r = svc
        .query(
            &params(
                "visitors",
                "2026-08-24",
                "2026-08-27",
                None,
                Some("day"),
                &two,
            ),
            now,
        )
        .await
        .unwrap();
    check(
        &s.oracle,
        &r,
        (utc(2026, 8, 24, 0), utc(2026, 8, 27, 0)),
        (utc(2026, 8, 21, 0), utc(2026, 8, 24, 0)),
        &local_days(Tz::UTC, date(24), date(27)),
        &two,
    );
}

#[tokio::test]
async fn a_single_stored_period_is_exact_for_distinct_counts() {
    let s = setup(Tz::UTC).await;
    let svc = service(&s);
    let r = svc
        .query(
            &params("visitors", "2026-08-25", "2026-08-26", None, None, &[]),
            utc(2026, 9, 1, 0),
        )
        .await
        .unwrap();
    // Current and previous are one stored day each, the total one stored month, the series single hours.
    assert!(!r.approximate, "nothing here needs a sketch merge");
    check(
        &s.oracle,
        &r,
        (utc(2026, 8, 25, 0), utc(2026, 8, 26, 0)),
        (utc(2026, 8, 24, 0), utc(2026, 8, 25, 0)),
        &hours(utc(2026, 8, 25, 0), utc(2026, 8, 26, 0)),
        &[],
    );
    // Three days merge three day sketches.
    let r = svc
        .query(
            &params(
                "visitors",
                "2026-08-24",
                "2026-08-27",
                None,
                Some("day"),
                &[],
            ),
            utc(2026, 9, 1, 0),
        )
        .await
        .unwrap();
    assert!(r.approximate);
    check(
        &s.oracle,
        &r,
        (utc(2026, 8, 24, 0), utc(2026, 8, 27, 0)),
        (utc(2026, 8, 21, 0), utc(2026, 8, 24, 0)),
        &local_days(Tz::UTC, date(24), date(27)),
        &[],
    );
}

#[tokio::test]
async fn a_reporting_zone_builds_its_own_days_and_they_are_exact() {
    let seoul: Tz = "Asia/Seoul".parse().unwrap();
    let s = setup(seoul).await;
    let svc = service(&s);
    let r = svc
        .query(
            &params(
                "visitors",
                "2026-08-25",
                "2026-08-26",
                None,
                Some("day"),
                &[],
            ),
            utc(2026, 9, 1, 0),
        )
        .await
        .unwrap();
    assert_eq!(r.tz, "Asia/Seoul");
    check(
        &s.oracle,
        &r,
        (utc(2026, 8, 24, 15), utc(2026, 8, 25, 15)),
        (utc(2026, 8, 23, 15), utc(2026, 8, 24, 15)),
        &local_days(seoul, date(25), date(26)),
        &[],
    );
    assert!(
        !r.approximate,
        "one Seoul day is one stored period when Seoul is the reporting zone"
    );
    for m in METRICS {
        let r = svc
            .query(
                &params(m, "2026-08-24", "2026-08-27", None, Some("day"), &[]),
                utc(2026, 9, 1, 0),
            )
            .await
            .unwrap();
        check(
            &s.oracle,
            &r,
            (utc(2026, 8, 23, 15), utc(2026, 8, 26, 15)),
            (utc(2026, 8, 20, 15), utc(2026, 8, 23, 15)),
            &local_days(seoul, date(24), date(27)),
            &[],
        );
    }
}

#[tokio::test]
async fn a_range_past_now_is_clipped_on_both_sides() {
    let s = setup(Tz::UTC).await;
    let svc = service(&s);
    let now = utc(2026, 8, 27, 3) + Duration::minutes(30);
    for m in METRICS {
        let r = svc
            .query(
                &params(m, "2026-08-26", "2026-08-28", None, Some("day"), &[]),
                now,
            )
            .await
            .unwrap();
        assert!(r.clipped);
        // 27 complete hours have elapsed since from; the previous range gets the same 27 hours.
        check(
            &s.oracle,
            &r,
            (utc(2026, 8, 26, 0), utc(2026, 8, 27, 3)),
            (utc(2026, 8, 24, 0), utc(2026, 8, 25, 3)),
            &[utc(2026, 8, 26, 0), utc(2026, 8, 27, 0)],
            &[],
        );
    }
}

#[tokio::test]
async fn group_by_matches_the_oracle_per_group() {
    let s = setup(Tz::UTC).await;
    let svc = service(&s);
    let now = utc(2026, 9, 1, 0);
    for (m, by, filters) in [
        ("sign_ins", "browser", vec![("country", "KR")]),
        ("revenue", "item_id", vec![]),
        ("visitors", "country", vec![]),
    ] {
        let mut p = params(m, "2026-08-25", "2026-08-27", None, Some("day"), &filters);
        p.group_by = Some(by.into());
        p.limit = Some("3".into());
        let r = svc.query(&p, now).await.unwrap();
        let groups = r.groups.as_ref().unwrap();
        let cur = (utc(2026, 8, 25, 0), utc(2026, 8, 27, 0));
        let prev = (utc(2026, 8, 23, 0), utc(2026, 8, 25, 0));
        let mut want: Vec<(Decimal, String)> = s
            .oracle
            .groups(m, by, cur, &filters)
            .into_iter()
            .map(|(k, v)| (v, k))
            .collect();
        want.sort_by(|a, b| b.cmp(a));
        assert_eq!(groups.len(), 3, "{m} by {by}: limited to 3");
        for (g, (want_value, _)) in groups.iter().zip(&want) {
            let key = g.group.clone().unwrap();
            let mut f = filters.clone();
            f.push((by, key.as_str()));
            assert_value(
                &format!("{m} {key} current"),
                m,
                g.current_total,
                s.oracle.value(m, cur, &f),
                g.approximate,
            );
            assert_value(
                &format!("{m} {key} previous"),
                m,
                g.previous_total,
                s.oracle.value(m, prev, &f),
                g.approximate,
            );
            // Largest first: each group's value is the oracle's value at the same rank.
            assert_value(
                &format!("{m} rank of {key}"),
                m,
                g.current_total,
                *want_value,
                g.approximate,
            );
        }
    }
}

#[tokio::test]
async fn ingesting_the_same_file_twice_changes_no_number() {
    let s = setup(Tz::UTC).await;
    let svc = service(&s);
    let now = utc(2026, 9, 1, 0);
    let mut before = Vec::new();
    for m in METRICS {
        let mut r = svc
            .query(
                &params(m, "2026-08-23", "2026-08-28", None, Some("day"), &[]),
                now,
            )
            .await
            .unwrap();
        r.as_of = None;
        before.push(r);
    }
    let first = deliveries().remove(0);
    let summary = ingest::ingest_ndjson(&s.local.storage, &first[..], received())
        .await
        .unwrap();
    assert!(summary.accepted > 0);
    let report = s.local.rollup().run_touched(None).await.unwrap();
    assert!(
        !report.hours_recomputed.is_empty(),
        "the re-ingest touched hours, which were recomputed"
    );
    for (m, old) in METRICS.iter().zip(before) {
        let mut r = svc
            .query(
                &params(m, "2026-08-23", "2026-08-28", None, Some("day"), &[]),
                now,
            )
            .await
            .unwrap();
        r.as_of = None;
        assert_eq!(r, old, "{m} changed after ingesting a file again");
    }
}

#[tokio::test]
async fn late_events_recompute_only_their_hours() {
    let mut s = setup(Tz::UTC).await;
    let svc = service(&s);
    let now = utc(2026, 9, 1, 0);
    // A second rollup with nothing new touches nothing.
    let idle = s.local.rollup().run_touched(None).await.unwrap();
    assert!(idle.hours_recomputed.is_empty());

    let late = [
        r#"{"event_id":"late-1","event_type":"purchase","occurred_at":"2026-08-24T03:10:00Z","user_id":"late-user-1","country":"KR","item_id":"item-pro","price":"19.99","quantity":3}"#,
        r#"{"event_id":"late-2","event_type":"sign-in","occurred_at":"2026-08-24T12:59:59+09:00","user_id":"late-user-2","country":"KR","browser":"Chrome"}"#,
        r#"{"event_id":"late-3","event_type":"sign-in","occurred_at":"2026-08-24T04:00:00Z","user_id":"late-user-3","country":"JP","browser":"Safari"}"#,
        r#"{"event_id":"late-3","event_type":"sign-in","occurred_at":"2026-08-24T04:00:00Z","user_id":"late-user-3","country":"JP","browser":"Safari"}"#,
        r#"{"event_id":"late-bad","event_type":"purchase","occurred_at":"2026-08-24T04:00:00Z","price":"abc"}"#,
    ]
    .join("\n");
    let before = svc
        .query(
            &params("revenue", "2026-08-24", "2026-08-25", None, None, &[]),
            now,
        )
        .await
        .unwrap();
    let summary = ingest::ingest_ndjson(&s.local.storage, late.as_bytes(), received())
        .await
        .unwrap();
    assert_eq!((summary.accepted, summary.rejected), (4, 1));
    s.oracle.add_lines(late.as_bytes(), received());

    let report = s.local.rollup().run_touched(None).await.unwrap();
    assert_eq!(
        report.hours_recomputed,
        vec![utc(2026, 8, 24, 3), utc(2026, 8, 24, 4)],
        "exactly the late events' hours"
    );
    assert_eq!((report.days_rebuilt, report.months_rebuilt), (1, 1));

    let after = svc
        .query(
            &params("revenue", "2026-08-24", "2026-08-25", None, None, &[]),
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        after.current_total - before.current_total,
        "59.97".parse::<Decimal>().unwrap()
    );
    for m in METRICS {
        let r = svc
            .query(&params(m, "2026-08-24", "2026-08-25", None, None, &[]), now)
            .await
            .unwrap();
        check(
            &s.oracle,
            &r,
            (utc(2026, 8, 24, 0), utc(2026, 8, 25, 0)),
            (utc(2026, 8, 23, 0), utc(2026, 8, 24, 0)),
            &hours(utc(2026, 8, 24, 0), utc(2026, 8, 25, 0)),
            &[],
        );
    }
}

#[tokio::test]
async fn compaction_changes_no_number() {
    let s = setup(Tz::UTC).await;
    let svc = service(&s);
    let now = utc(2026, 9, 1, 0);
    let files_before = s.local.storage.list("events").await.unwrap().len();
    let mut before = BTreeMap::new();
    for m in METRICS {
        let mut r = svc
            .query(
                &params(m, "2026-08-23", "2026-08-28", None, Some("day"), &[]),
                now,
            )
            .await
            .unwrap();
        r.as_of = None;
        before.insert(m, r);
    }
    let report = s
        .local
        .storage
        .compact(end() + Duration::hours(1))
        .await
        .unwrap();
    assert!(
        report.partitions_compacted > 0 && report.duplicates_dropped > 0,
        "{report:?}"
    );
    let files_after = s.local.storage.list("events").await.unwrap().len();
    assert!(files_after < files_before);
    assert_eq!(files_after, 4 * 24, "one file per hour");
    for (file, ids) in event_ids_per_file(&s.local.data_dir) {
        let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{file} holds an event twice");
    }
    s.local.rollup().run_full(None, None, None).await.unwrap();
    for m in METRICS {
        let mut r = svc
            .query(
                &params(m, "2026-08-23", "2026-08-28", None, Some("day"), &[]),
                now,
            )
            .await
            .unwrap();
        r.as_of = None;
        assert_eq!(r, before[m], "{m} changed after compaction");
    }
}

#[tokio::test]
async fn a_rollup_out_of_time_leaves_the_rest_for_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let local = Local::open(dir.path(), Catalog::builtin(), Tz::UTC).unwrap();
    for d in deliveries().iter().take(2) {
        ingest::ingest_ndjson(&local.storage, &d[..], received())
            .await
            .unwrap();
    }
    let pending = local.storage.touched_markers().await.unwrap().len();
    assert!(pending > 0);
    // A deadline already past: one day is done (every run makes progress), the rest stays
    // marked, and as_of is not advanced.
    let report = local
        .rollup()
        .run_touched(Some(std::time::Instant::now()))
        .await
        .unwrap();
    assert_eq!(report.days_rebuilt, 1);
    assert!(!report.hours_recomputed.is_empty());
    assert!(report.hours_remaining > 0);
    assert_eq!(report.as_of, None);
    let left: BTreeSet<DateTime<Utc>> = local
        .storage
        .touched_markers()
        .await
        .unwrap()
        .iter()
        .map(|m| m.hour)
        .collect();
    assert!(!left.is_empty());
    assert!(report.hours_recomputed.iter().all(|h| !left.contains(h)));
    // The next run picks everything up.
    let report = local.rollup().run_touched(None).await.unwrap();
    assert_eq!(report.hours_remaining, 0);
    assert!(report.as_of.is_some());
    assert!(local.storage.touched_markers().await.unwrap().is_empty());
}

/// The `event_id` column of every Parquet file under `<data>/events`, by file.
fn event_ids_per_file(data: &std::path::Path) -> BTreeMap<String, Vec<String>> {
    use arrow::array::AsArray;
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&data.join("events"), &mut files);
    files
        .into_iter()
        .map(|path| {
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                std::fs::File::open(&path).unwrap(),
            )
            .unwrap()
            .build()
            .unwrap();
            let mut ids = Vec::new();
            for batch in reader {
                let batch = batch.unwrap();
                let column = batch.column_by_name("event_id").unwrap().as_string::<i32>();
                ids.extend(column.iter().flatten().map(str::to_string));
            }
            (path.display().to_string(), ids)
        })
        .collect()
}

#[tokio::test]
async fn an_event_sent_twice_in_one_batch_is_stored_once_and_compaction_keeps_it_so() {
    let dir = tempfile::tempdir().unwrap();
    let local = Local::open(dir.path(), Catalog::builtin(), Tz::UTC).unwrap();
    let batch = [
        r#"{"event_id":"twice","event_type":"purchase","occurred_at":"2026-08-20T05:10:00Z","user_id":"u1","price":"5.00"}"#,
        r#"{"event_id":"once","event_type":"sign-in","occurred_at":"2026-08-20T05:20:00Z","user_id":"u2"}"#,
        r#"{"event_id":"twice","event_type":"purchase","occurred_at":"2026-08-20T05:10:00Z","user_id":"u1","price":"7.00"}"#,
    ]
    .join("\n");
    let summary = ingest::ingest_ndjson(&local.storage, batch.as_bytes(), received())
        .await
        .unwrap();
    assert_eq!((summary.accepted, summary.files_written), (3, 1));
    let files = event_ids_per_file(dir.path());
    let ids: Vec<&String> = files.values().flatten().collect();
    assert_eq!(
        ids.len(),
        2,
        "the hour's one file holds each event once: {files:?}"
    );

    local
        .storage
        .compact(end() + Duration::hours(1))
        .await
        .unwrap();
    let files = event_ids_per_file(dir.path());
    let mut ids: Vec<&String> = files.values().flatten().collect();
    ids.sort();
    assert_eq!(ids, ["once", "twice"]);

    // The first copy is the one kept, as the rollup's reading of the lake would keep it.
    local.rollup().run_touched(None).await.unwrap();
    let revenue = service_of(&local)
        .query(
            &params("revenue", "2026-08-20", "2026-08-21", None, None, &[]),
            utc(2026, 9, 1, 0),
        )
        .await
        .unwrap();
    assert_eq!(revenue.current_total, "5.00".parse::<Decimal>().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingesting_chunks_in_parallel_writes_the_files_of_one_at_a_time() {
    let input = deliveries().concat();
    let chunk = 64 * 1024;
    assert!(input.len() > 8 * chunk, "several chunks per worker");
    let mut lakes = Vec::new();
    for parallel in [1, 4] {
        let dir = tempfile::tempdir().unwrap();
        let local = Local::open(dir.path(), Catalog::builtin(), Tz::UTC).unwrap();
        let summary =
            ingest::ingest_ndjson_parallel(&local.storage, &input[..], received(), parallel, chunk)
                .await
                .unwrap();
        let files: BTreeMap<String, Vec<String>> = event_ids_per_file(dir.path())
            .into_iter()
            .map(|(path, ids)| (path.replace(&dir.path().display().to_string(), ""), ids))
            .collect();
        let mut quarantined: Vec<String> = walkdir(&dir.path().join("quarantine"))
            .into_iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        quarantined.sort();
        lakes.push((summary, files, quarantined, dir));
    }
    let (one, many) = (&lakes[0], &lakes[1]);
    assert!(one.0.accepted > 0 && one.0.rejected > 0 && !one.2.is_empty());
    assert_eq!(one.0, many.0, "the same summary, in input order");
    assert_eq!(
        one.1, many.1,
        "the same event files, each with the same events"
    );
    assert_eq!(one.2, many.2, "the same quarantine files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_files_late_events_share_one_file_per_hour_across_its_chunks() {
    // 30 hours in time order, 400 events an hour, and after every 100th a late event from one of
    // five earlier hours: each 32 KiB chunk holds a few late events, and all of them together
    // less than a chunk, so they are written once, at the end.
    let first = end() - Duration::hours(40);
    let line = |id: String, at: DateTime<Utc>| {
        format!(
            r#"{{"event_id":"{id}","event_type":"sign-in","occurred_at":"{}"}}"#,
            at.to_rfc3339()
        )
    };
    let mut input = Vec::new();
    let mut late: BTreeMap<DateTime<Utc>, Vec<String>> = BTreeMap::new();
    let mut all = Vec::new();
    for i in 0..12_000 {
        let id = format!("on-time-{i}");
        input.push(line(
            id.clone(),
            first + Duration::hours(10) + Duration::seconds(9 * i),
        ));
        all.push(id);
        if i % 100 == 0 {
            let id = format!("late-{i}");
            let hour = first + Duration::hours(i / 100 % 5);
            input.push(line(id.clone(), hour + Duration::minutes(i % 60)));
            late.entry(hour).or_default().push(id.clone());
            all.push(id);
        }
    }
    let input = input.join("\n");
    let chunk = 32 * 1024;
    assert!(input.len() > 30 * chunk, "late events in many chunks");

    let dir = tempfile::tempdir().unwrap();
    let local = Local::open(dir.path(), Catalog::builtin(), Tz::UTC).unwrap();
    let summary =
        ingest::ingest_ndjson_parallel(&local.storage, input.as_bytes(), received(), 2, chunk)
            .await
            .unwrap();
    assert_eq!((summary.accepted, summary.rejected), (all.len(), 0));
    let files = event_ids_per_file(dir.path());
    for (hour, ids) in &late {
        let dir = hour.format("date=%Y-%m-%d/hour=%H/").to_string();
        let of_hour: Vec<&Vec<String>> = files
            .iter()
            .filter(|(path, _)| path.contains(&dir))
            .map(|(_, ids)| ids)
            .collect();
        let mut kept: Vec<&String> = of_hour.iter().copied().flatten().collect();
        kept.sort();
        let mut sent: Vec<&String> = ids.iter().collect();
        sent.sort();
        assert_eq!(of_hour.len(), 1, "one file for the late events of {hour}");
        assert_eq!(kept, sent, "every late event of {hour} in it");
    }
    let mut kept: Vec<&String> = files.values().flatten().collect();
    kept.sort();
    all.sort();
    assert_eq!(kept, all.iter().collect::<Vec<_>>(), "every event, once");
}

fn service_of(local: &Local) -> QueryService {
    local.query_service(QueryOptions::default())
}

#[tokio::test]
async fn after_a_change_of_reporting_zone_the_old_days_answer_until_the_new_ones_are_built() {
    let s = setup(Tz::UTC).await;
    let seoul: Tz = "Asia/Seoul".parse().unwrap();
    let local = Local::open(&s.local.data_dir, Catalog::builtin(), seoul).unwrap();
    let svc = local.query_service(QueryOptions {
        catalog_ttl: std::time::Duration::ZERO,
        ..QueryOptions::default()
    });
    let everything = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
    let mut runs = 0;
    loop {
        // A deadline already past: each run builds one day of one metric.
        let report = local
            .rollup()
            .run_touched(Some(std::time::Instant::now()))
            .await
            .unwrap();
        runs += 1;
        for m in METRICS {
            let r = svc
                .query(
                    &params(m, "2026-08-24", "2026-08-26", None, None, &[]),
                    utc(2026, 9, 1, 0),
                )
                .await
                .unwrap();
            // Until a metric's Seoul days are all built, it answers from its UTC days.
            let zone: Tz = r.tz.parse().unwrap();
            let window = (
                zone.with_ymd_and_hms(2026, 8, 24, 0, 0, 0)
                    .unwrap()
                    .to_utc(),
                zone.with_ymd_and_hms(2026, 8, 26, 0, 0, 0)
                    .unwrap()
                    .to_utc(),
            );
            assert_value(
                m,
                m,
                r.current_total,
                s.oracle.value(m, window, &[]),
                r.approximate,
            );
            assert_eq!(
                r.total,
                s.oracle.value(m, everything, &[]),
                "{m}: the all-time total holds each event once, whichever zone answers"
            );
        }
        if report.building.is_empty() {
            break;
        }
        assert!(runs < 100, "the rebuild ends");
    }
    assert!(
        runs > METRICS.len(),
        "the rebuild took several runs ({runs})"
    );
    for m in METRICS {
        let r = svc
            .query(
                &params(m, "2026-08-24", "2026-08-26", None, None, &[]),
                utc(2026, 9, 1, 0),
            )
            .await
            .unwrap();
        assert_eq!(r.tz, "Asia/Seoul", "{m} answers in the new zone once built");
    }
}

/// The series of the comparison range, point by point, against the oracle.
fn check_previous_series(
    o: &Oracle,
    r: &MetricResponse,
    buckets: &[DateTime<Utc>],
    end: DateTime<Utc>,
    filters: &[(&str, &str)],
) {
    let m = r.metric.as_str();
    let tz: Tz = r.tz.parse().unwrap();
    let starts: Vec<String> = r.previous_series.iter().map(|p| p.start.clone()).collect();
    let want: Vec<String> = buckets
        .iter()
        .map(|t| t.with_timezone(&tz).to_rfc3339())
        .collect();
    assert_eq!(starts, want, "{m} previous_series buckets");
    let mut bounds = buckets.to_vec();
    bounds.push(end);
    for (i, p) in r.previous_series.iter().enumerate() {
        assert_value(
            &format!("{m} previous_series[{i}] {}", p.start),
            m,
            p.value,
            o.value(m, (bounds[i], bounds[i + 1]), filters),
            r.approximate,
        );
    }
}

#[tokio::test]
async fn compare_with_the_previous_year_matches_the_oracle_a_year_earlier() {
    let mut traffic = deliveries();
    traffic.extend(deliveries_ending(utc(2025, 8, 27, 6), 8));
    let s = setup_from(Tz::UTC, traffic).await;
    let svc = service(&s);
    let seoul: Tz = "Asia/Seoul".parse().unwrap();
    let year = |d: u32| NaiveDate::from_ymd_opt(2025, 8, d).unwrap();
    for m in METRICS {
        for filters in [vec![], vec![("country", "KR")]] {
            if m == "content_views" && !filters.is_empty() {
                continue; // not split by country
            }
            // Whole days in Seoul: the same local dates a year earlier.
            let mut p = params(
                m,
                "2026-08-24",
                "2026-08-27",
                Some("Asia/Seoul"),
                Some("day"),
                &filters,
            );
            p.compare = Some("previous_year".into());
            let r = svc.query(&p, utc(2026, 9, 1, 0)).await.unwrap();
            assert_eq!(r.compare, tally::serve::Compare::PreviousYear);
            let days = local_days(seoul, date(24), date(27));
            let last_year = local_days(seoul, year(24), year(27));
            let end = local_days(seoul, year(27), year(28))[0];
            check(
                &s.oracle,
                &r,
                (days[0], local_days(seoul, date(27), date(28))[0]),
                (last_year[0], end),
                &days,
                &filters,
            );
            assert!(
                !r.previous_total.is_zero(),
                "{m}: a year earlier has data, so the check is not vacuous"
            );
            check_previous_series(&s.oracle, &r, &last_year, end, &filters);

            // A range still open: both sides cut to the elapsed hours, a year apart.
            let now = utc(2026, 8, 26, 10);
            let mut p = params(
                m,
                "2026-08-26T00:00:00Z",
                "2026-08-27T00:00:00Z",
                None,
                Some("hour"),
                &filters,
            );
            p.compare = Some("previous_year".into());
            let r = svc.query(&p, now).await.unwrap();
            assert!(r.clipped);
            let prev = (utc(2025, 8, 26, 0), utc(2025, 8, 26, 10));
            check(
                &s.oracle,
                &r,
                (utc(2026, 8, 26, 0), now),
                prev,
                &hours(utc(2026, 8, 26, 0), now),
                &filters,
            );
            check_previous_series(&s.oracle, &r, &hours(prev.0, prev.1), prev.1, &filters);
        }
    }
}

#[tokio::test]
async fn the_previous_period_series_matches_the_oracle() {
    let s = setup(Tz::UTC).await;
    let svc = service(&s);
    for m in METRICS {
        let r = svc
            .query(
                &params(
                    m,
                    "2026-08-25T12:00:00Z",
                    "2026-08-26T18:00:00Z",
                    None,
                    Some("hour"),
                    &[],
                ),
                utc(2026, 9, 1, 0),
            )
            .await
            .unwrap();
        let prev = (utc(2026, 8, 24, 6), utc(2026, 8, 25, 12));
        check(
            &s.oracle,
            &r,
            (utc(2026, 8, 25, 12), utc(2026, 8, 26, 18)),
            prev,
            &hours(utc(2026, 8, 25, 12), utc(2026, 8, 26, 18)),
            &[],
        );
        check_previous_series(&s.oracle, &r, &hours(prev.0, prev.1), prev.1, &[]);
    }
}

#[tokio::test]
async fn dimension_values_match_the_oracle_largest_first() {
    let s = setup(Tz::UTC).await;
    let svc = service(&s);
    let now = utc(2026, 9, 1, 0);
    let seoul: Tz = "Asia/Seoul".parse().unwrap();
    for (m, dim, filters, tz, limit) in [
        ("sign_ins", "country", vec![], None, None),
        (
            "sign_ins",
            "browser",
            vec![("country", "KR")],
            Some("Asia/Seoul"),
            None,
        ),
        (
            "revenue",
            "item_id",
            vec![("country", "US")],
            None,
            Some("3"),
        ),
        (
            "content_views",
            "content_id",
            vec![],
            Some("Asia/Seoul"),
            Some("20"),
        ),
        (
            "purchases",
            "country",
            vec![("item_id", "item-pro")],
            None,
            None,
        ),
    ] {
        let mut p = params(m, "2026-08-24", "2026-08-26", tz, None, &filters);
        p.limit = limit.map(Into::into);
        let r = svc.dimension_values(&p, dim, now).await.unwrap();
        let window = match tz {
            None => (utc(2026, 8, 24, 0), utc(2026, 8, 26, 0)),
            Some(_) => {
                let d = local_days(seoul, date(24), date(26));
                (d[0], d[1] + Duration::days(1))
            }
        };
        let mut want: Vec<(Decimal, String)> = s
            .oracle
            .groups(m, dim, window, &filters)
            .into_iter()
            .map(|(k, v)| (v, k))
            .collect();
        // Largest first, ties by value name.
        want.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        want.truncate(limit.map_or(10, |l| l.parse().unwrap()));
        assert!(
            want.len() >= 2,
            "{m} by {dim}: the check sees several values"
        );
        let got: Vec<(Decimal, String)> = r
            .values
            .iter()
            .map(|v| {
                (
                    v.total,
                    v.value
                        .clone()
                        .expect("generated events carry the dimension"),
                )
            })
            .collect();
        assert_eq!(got, want, "{m} values of {dim} with {filters:?}");
        assert!(!r.approximate);
    }
}

#[tokio::test]
async fn a_reject_redelivered_later_is_quarantined_once() {
    let dir = tempfile::tempdir().unwrap();
    let local = Local::open(dir.path(), Catalog::builtin(), Tz::UTC).unwrap();
    let line = br#"{"event_id":"f","event_type":"sign-in","occurred_at":"2999-01-01T00:00:00Z"}
"#;
    let first = ingest::ingest_ndjson(&local.storage, &line[..], utc(2026, 8, 27, 0))
        .await
        .unwrap();
    let again = ingest::ingest_ndjson(&local.storage, &line[..], utc(2026, 8, 27, 3))
        .await
        .unwrap();
    assert_eq!(first.rejected, 1);
    assert_eq!(first.quarantined_to, again.quarantined_to);
    let files: Vec<_> = walkdir(&dir.path().join("quarantine"));
    assert_eq!(
        files.len(),
        1,
        "one quarantine file for one reject: {files:?}"
    );
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn ratio_metrics_match_the_oracle_over_days_zones_filters_and_groups() {
    let s = setup(Tz::UTC).await;
    let svc = service(&s);
    let now = utc(2026, 9, 1, 0);
    let everything = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
    let mut compared = 0;
    for m in ["average_order_value", "average_price"] {
        for tz in [Tz::UTC, "Asia/Seoul".parse().unwrap()] {
            for filters in [&[][..], &[("country", "KR")][..]] {
                let mut p = params(
                    m,
                    "2026-08-24",
                    "2026-08-27",
                    Some(tz.name()),
                    Some("day"),
                    filters,
                );
                p.group_by = filters.is_empty().then(|| "item_id".to_string());
                let Answer::Ratio(r) = svc.answer(&p, now).await.unwrap() else {
                    panic!("{m} answers as a ratio");
                };
                let at = |d: u32| tz.with_ymd_and_hms(2026, 8, d, 0, 0, 0).unwrap().to_utc();
                assert_eq!(
                    r.current_total,
                    s.oracle.ratio(m, (at(24), at(27)), filters),
                    "{m} {tz} {filters:?}"
                );
                assert_eq!(
                    r.previous_total,
                    s.oracle.ratio(m, (at(21), at(24)), filters),
                    "{m} previous"
                );
                assert_eq!(
                    r.total,
                    s.oracle.ratio(m, everything, filters),
                    "{m} all time"
                );
                for (i, point) in r.series.iter().enumerate() {
                    let d = 24 + i as u32;
                    assert_eq!(
                        point.value,
                        s.oracle.ratio(m, (at(d), at(d + 1)), filters),
                        "{m} {}",
                        point.start
                    );
                }
                assert_eq!(r.series.len(), 3);
                if let Some(groups) = &r.groups {
                    let got: BTreeMap<String, Decimal> = groups
                        .iter()
                        .filter_map(|g| Some((g.group.clone()?, g.current_total?)))
                        .collect();
                    assert_eq!(
                        got,
                        s.oracle
                            .ratio_groups(m, "item_id", (at(24), at(27)), filters),
                        "{m} by item"
                    );
                    assert!(got.len() > 1);
                }
                compared += 1;
            }
        }
        // Before the data: no purchases, so no value, not zero.
        let Answer::Ratio(r) = svc
            .answer(
                &params(m, "2026-08-01", "2026-08-03", None, Some("day"), &[]),
                now,
            )
            .await
            .unwrap()
        else {
            panic!("{m} answers as a ratio");
        };
        assert_eq!(r.current_total, None);
        assert_eq!(
            r.series.iter().map(|p| p.value).collect::<Vec<_>>(),
            [None, None]
        );
        assert_eq!(r.change_rate, None);
        assert!(r.total.is_some());
        let json = serde_json::to_value(Answer::Ratio(r)).unwrap();
        assert!(json["current_total"].is_null(), "{json}");
    }
    assert_eq!(compared, 8);
    // A filter on a dimension only one side has is refused, naming the ratio.
    let e = svc
        .answer(
            &params(
                "average_order_value",
                "2026-08-24",
                "2026-08-27",
                None,
                None,
                &[("browser", "Chrome")],
            ),
            now,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("average_order_value"), "{e}");
}
