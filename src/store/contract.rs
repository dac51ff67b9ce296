//! The contract every [`PeriodStore`] adapter passes. Adapters call [`run`] from their own tests.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rust_decimal::Decimal;

use super::{Claim, Lease, PeriodRow, PeriodStore};
use crate::model::dims::Dims;
use crate::model::measure::{hash_value, Measure};
use crate::model::period::{Grain, Period, ALL_TIME_START};

fn t(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 8, day, hour, 0, 0).unwrap()
}

fn dims(pairs: &[(&str, Option<&str>)]) -> Dims {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
        .collect()
}

fn row(metric: &str, grain: Grain, start: DateTime<Utc>, d: &Dims, value: &str) -> PeriodRow {
    PeriodRow {
        metric: metric.into(),
        grain,
        start,
        dims: d.clone(),
        measure: Measure::Additive(value.parse().unwrap()),
    }
}

/// Runs every check against `store`, which must start empty. Panics on the first failure.
pub async fn run(store: &dyn PeriodStore) {
    let all = Dims::new();
    let kr = dims(&[("country", Some("KR"))]);
    let us = dims(&[("country", Some("US"))]);
    let none = dims(&[("country", None)]);
    let kr_chrome = dims(&[("browser", Some("Chrome")), ("country", Some("KR"))]);

    // Empty store answers empty.
    assert!(store
        .series("m", Grain::Hour, &all, t(1, 0), t(30, 0))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.get_meta("nothing").await.unwrap(), None);

    let mut rows = Vec::new();
    for h in 0..24 {
        rows.push(row("m", Grain::Hour, t(23, h), &all, &h.to_string()));
        rows.push(row("m", Grain::Hour, t(23, h), &kr, "1"));
    }
    rows.push(row("m", Grain::Hour, t(23, 5), &us, "2"));
    rows.push(row("m", Grain::Hour, t(23, 5), &none, "3"));
    rows.push(row("m", Grain::Hour, t(23, 5), &kr_chrome, "4"));
    rows.push(row("m", Grain::Day, t(23, 0), &all, "276"));
    rows.push(row("other", Grain::Hour, t(23, 5), &all, "99"));
    rows.push(row(
        "m",
        Grain::Hour,
        t(23, 5),
        &all,
        "12345678901234.567891",
    ));
    store.put(rows).await.unwrap();

    // A series is one group, half-open on its range, ordered by start.
    let got = store
        .series("m", Grain::Hour, &all, t(23, 3), t(23, 7))
        .await
        .unwrap();
    let starts: Vec<_> = got.iter().map(|r| r.start).collect();
    assert_eq!(starts, [t(23, 3), t(23, 4), t(23, 5), t(23, 6)]);
    assert!(got
        .iter()
        .all(|r| r.metric == "m" && r.grain == Grain::Hour && r.dims == all));
    // The later write of the same key replaced the earlier one, exactly.
    assert_eq!(
        got[2].measure,
        Measure::Additive("12345678901234.567891".parse::<Decimal>().unwrap())
    );
    assert_eq!(
        store
            .series("m", Grain::Hour, &kr, t(23, 0), t(24, 0))
            .await
            .unwrap()
            .len(),
        24
    );
    assert_eq!(
        store
            .series("m", Grain::Day, &all, t(1, 0), t(31, 0))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store
        .series("m", Grain::Hour, &all, t(23, 7), t(23, 7))
        .await
        .unwrap()
        .is_empty());

    // Writing the same rows again changes nothing.
    store
        .put(vec![row("m", Grain::Hour, t(23, 6), &all, "6")])
        .await
        .unwrap();
    store
        .put(vec![row("m", Grain::Hour, t(23, 6), &all, "6")])
        .await
        .unwrap();
    assert_eq!(
        store
            .series("m", Grain::Hour, &all, t(23, 0), t(24, 0))
            .await
            .unwrap()
            .len(),
        24
    );

    // Groups of one dimension set, with null values kept apart from absent dimensions.
    let got = store
        .groups("m", Grain::Hour, "country", t(23, 5), t(23, 6))
        .await
        .unwrap();
    assert_eq!(got.len(), 3);
    let groups: BTreeSet<_> = got.iter().map(|r| r.dims.clone()).collect();
    assert_eq!(
        groups,
        BTreeSet::from([kr.clone(), us.clone(), none.clone()])
    );
    let two = store
        .groups("m", Grain::Hour, "browser,country", t(23, 0), t(24, 0))
        .await
        .unwrap();
    assert_eq!(two.len(), 1);
    assert_eq!(two[0].dims, kr_chrome);
    assert_eq!(
        store
            .groups("m", Grain::Hour, "", t(23, 0), t(23, 2))
            .await
            .unwrap()
            .len(),
        2
    );

    // Distinct measures round-trip with their sketch.
    let mut hashes: Vec<u64> = (0..1000).map(|i| hash_value(&format!("u{i}"))).collect();
    hashes.sort_unstable();
    let distinct = Measure::distinct_from_hashes(&hashes);
    store
        .put(vec![PeriodRow {
            metric: "d".into(),
            grain: Grain::Month,
            start: t(1, 0),
            dims: all.clone(),
            measure: distinct.clone(),
        }])
        .await
        .unwrap();
    let got = store
        .series(
            "d",
            Grain::Month,
            &all,
            t(1, 0),
            t(1, 0) + Duration::days(31),
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].measure, distinct);

    // Meta values overwrite.
    store.put_meta("as_of", "a").await.unwrap();
    store.put_meta("as_of", "b").await.unwrap();
    assert_eq!(store.get_meta("as_of").await.unwrap().as_deref(), Some("b"));

    // One answer's reads: exactly the periods asked for, of one group, with the meta values set.
    store
        .put(vec![row("m", Grain::All, ALL_TIME_START, &kr, "24")])
        .await
        .unwrap();
    let p = |grain, start| Period { grain, start };
    let mut asked: Vec<Period> = (0..24).map(|h| p(Grain::Hour, t(23, h))).collect();
    asked.extend([
        p(Grain::Hour, t(22, 5)), // nothing stored there
        p(Grain::Day, t(23, 0)),  // stored for `all`, not for `kr`
        p(Grain::All, ALL_TIME_START),
    ]);
    // Over a hundred keys, repeated ones among them, still read in full.
    asked.extend((0..90).map(|d| p(Grain::Day, t(1, 0) - Duration::days(d))));
    asked.push(p(Grain::Hour, t(23, 7)));
    let got = store
        .fetch("m", &kr, &asked, &["as_of", "nothing"])
        .await
        .unwrap();
    assert_eq!(got.rows.len(), 25, "{:?}", got.rows.keys());
    assert_eq!(
        got.rows[&p(Grain::All, ALL_TIME_START)],
        Measure::Additive(24.into())
    );
    assert_eq!(
        got.rows[&p(Grain::Hour, t(23, 7))],
        Measure::Additive(1.into())
    );
    assert_eq!(got.meta.len(), 1);
    assert_eq!(got.meta["as_of"], "b");
    let got = store
        .fetch("m", &all, &[p(Grain::Day, t(23, 0))], &[])
        .await
        .unwrap();
    assert_eq!(got.rows.len(), 1);
    assert!(got.meta.is_empty());
    assert_eq!(
        store.fetch("m", &all, &[], &[]).await.unwrap(),
        Default::default()
    );

    // Deleting a metric (a retired version) removes its rows of every grain and group, and no
    // other metric's.
    // Every subset of (browser, country), as `dim_set_key` writes them.
    let sets: Vec<String> = ["", "country", "browser", "browser,country"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    store.delete_metric("m", &sets).await.unwrap();
    for (grain, d) in [
        (Grain::Hour, &all),
        (Grain::Hour, &kr),
        (Grain::Hour, &kr_chrome),
        (Grain::Day, &all),
        (Grain::All, &kr),
    ] {
        let left = store
            .series("m", grain, d, ALL_TIME_START, t(30, 0))
            .await
            .unwrap();
        assert!(left.is_empty(), "{grain:?} {d:?}: {left:?}");
    }
    let other = store
        .series("other", Grain::Hour, &all, t(1, 0), t(30, 0))
        .await
        .unwrap();
    assert_eq!(other.len(), 1, "another metric keeps its rows");
    assert_eq!(store.get_meta("as_of").await.unwrap().as_deref(), Some("b"));

    leases(store).await;
}

/// A lease goes to one holder at a time until it expires or is released; no row or meta value is
/// a lease.
async fn leases(store: &dyn PeriodStore) {
    let now = t(23, 12);
    let minutes = |m: i64| now + Duration::minutes(m);
    let claim = |holder: &'static str, at: DateTime<Utc>, until: DateTime<Utc>| async move {
        store.claim_lease("job", holder, at, until).await.unwrap()
    };
    assert_eq!(claim("a", now, minutes(2)).await, Claim::Granted);
    let held_by_a = Claim::HeldBy(Lease {
        holder: "a".into(),
        until: minutes(2),
    });
    assert_eq!(claim("b", minutes(1), minutes(3)).await, held_by_a);
    // Another name is another lease.
    assert_eq!(
        store
            .claim_lease("other-job", "b", now, minutes(2))
            .await
            .unwrap(),
        Claim::Granted
    );
    // The holder renews; the later expiry is what others see.
    assert_eq!(claim("a", minutes(1), minutes(4)).await, Claim::Granted);
    assert_eq!(
        claim("b", minutes(3), minutes(5)).await,
        Claim::HeldBy(Lease {
            holder: "a".into(),
            until: minutes(4),
        })
    );
    // Only the holder releases; a stranger's release leaves the lease as it is.
    store.release_lease("job", "b").await.unwrap();
    assert!(matches!(
        claim("b", minutes(3), minutes(5)).await,
        Claim::HeldBy(_)
    ));
    store.release_lease("job", "a").await.unwrap();
    assert_eq!(claim("b", minutes(3), minutes(5)).await, Claim::Granted);
    // An expired lease (its holder crashed) goes to the next claimant.
    assert_eq!(claim("c", minutes(5), minutes(7)).await, Claim::Granted);
    store.release_lease("job", "c").await.unwrap();
    store.release_lease("job", "c").await.unwrap();
    assert_eq!(store.get_meta("job").await.unwrap(), None);
}
