//! The bound on groups per dimension: a producer sending many distinct values of one dimension
//! gets at most `max_values` groups of it (the rest in `(other)`), and every number stays exact:
//! each kept value's, the `(other)` group's and every total, checked against a recomputation from
//! the raw lines that decides the kept values its own way (first come, in the order the rollups
//! see the hours), with late events, duplicates and a malformed line.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use tally::ingest;
use tally::rollup::{Catalog, OTHER};
use tally::runtime::Local;
use tally::serve::{QueryOptions, QueryParams};

use super::oracle::{Ev, Oracle};

const MAX_VALUES: usize = 5;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 8, 20, 0, 0, 0).unwrap()
}

fn catalog() -> Catalog {
    let files = [
        (
            "item_revenue.sql",
            format!(
                "-- name: item_revenue\n-- dimensions: item_id, country\n-- max_values: {MAX_VALUES}\n\
                 SELECT item_id, country, SUM(price * COALESCE(quantity, 1)) AS value FROM events \
                 WHERE event_type = 'purchase' GROUP BY item_id, country\n"
            ),
        ),
        (
            "item_buyers.sql",
            format!(
                "-- name: item_buyers\n-- dimensions: item_id, country\n-- max_values: {MAX_VALUES}\n\
                 SELECT item_id, country, COUNT(DISTINCT user_id) AS value FROM events \
                 WHERE event_type = 'purchase' GROUP BY item_id, country\n"
            ),
        ),
    ];
    Catalog::from_sources(files.iter().map(|(n, t)| (n.to_string(), t.as_str()))).unwrap()
}

fn purchase(
    id: String,
    at: DateTime<Utc>,
    item: Option<&str>,
    country: &str,
    user: usize,
) -> String {
    let mut e = serde_json::json!({
        "event_id": id,
        "event_type": "purchase",
        "occurred_at": at.to_rfc3339(),
        "user_id": format!("u{user}"),
        "country": country,
        "price": format!("{}.{:02}", 1 + user % 7, user % 100),
        "quantity": 1 + (user % 3) as i64,
    });
    if let Some(item) = item {
        e["item_id"] = item.into();
    }
    e.to_string()
}

/// Two deliveries: three days of purchases over 40 items (a few each hour, new items arriving all
/// the time), then late events into the first hours with items not seen before, one spelt
/// `(other)`, beside duplicates and a malformed line.
fn deliveries() -> [String; 2] {
    let countries = ["KR", "US", "DE"];
    let mut first = Vec::new();
    for h in 0..72i64 {
        for k in 0..4usize {
            let n = h as usize * 4 + k;
            let item =
                (!n.is_multiple_of(11)).then(|| format!("item-{:02}", (n * 7 + h as usize) % 40));
            let at = start() + Duration::hours(h) + Duration::minutes(k as i64 * 13);
            first.push(purchase(
                format!("p{n}"),
                at,
                item.as_deref(),
                countries[n % 3],
                n % 23,
            ));
        }
    }
    first.push(first[5].clone());
    first.push("{not json".into());
    let mut late = Vec::new();
    for (k, item) in ["item-77", "item-05", OTHER, "item-88", "item-01"]
        .iter()
        .enumerate()
    {
        let at = start() + Duration::minutes(k as i64 * 7);
        late.push(purchase(
            format!("late{k}"),
            at,
            Some(item),
            countries[k % 3],
            30 + k,
        ));
    }
    late.push(first[0].clone());
    [first.join("\n"), late.join("\n")]
}

/// The kept values, decided as the rule says from the raw events: each rollup's hours in time
/// order, each hour's new values in value order, while there is room.
fn kept_values(
    oracle: &Oracle,
    runs: &[BTreeSet<DateTime<Utc>>],
    seen_by: &[usize],
) -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut kept: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    for (run, hours) in runs.iter().enumerate() {
        for hour in hours {
            for dimension in ["item_id", "country"] {
                let values: BTreeSet<&String> = oracle.events[..seen_by[run]]
                    .iter()
                    .filter(|e| e.kind == "purchase" && hour_of(e) == *hour)
                    .filter_map(|e| e.fields.get(dimension))
                    .filter(|v| v.as_str() != OTHER)
                    .collect();
                let set = kept.entry(dimension).or_default();
                for v in values {
                    if set.len() < MAX_VALUES {
                        set.insert(v.clone());
                    }
                }
            }
        }
    }
    kept
}

fn hour_of(e: &Ev) -> DateTime<Utc> {
    Utc.timestamp_opt(e.at.timestamp() - e.at.timestamp().rem_euclid(3600), 0)
        .unwrap()
}

fn label(kept: &BTreeMap<&str, BTreeSet<String>>, dimension: &str, e: &Ev) -> Option<String> {
    let v = e.fields.get(dimension)?;
    Some(if kept[dimension].contains(v) {
        v.clone()
    } else {
        OTHER.to_string()
    })
}

#[tokio::test]
async fn many_values_of_a_dimension_make_at_most_max_values_groups_and_every_number_stays_exact() {
    let dir = tempfile::tempdir().unwrap();
    let local = Local::open(dir.path(), catalog(), Tz::UTC).unwrap();
    let [first, late] = deliveries();
    let received = start() + Duration::days(3);
    let mut oracle = Oracle::default();
    let mut runs = Vec::new();
    let mut seen_by = Vec::new();
    for (i, batch) in [first, late].iter().enumerate() {
        let at = received + Duration::hours(i as i64);
        ingest::ingest_ndjson(&local.storage, batch.as_bytes(), at)
            .await
            .unwrap();
        let before = oracle.events.len();
        oracle.add_lines(batch.as_bytes(), at);
        let touched: BTreeSet<_> = oracle.events[before..].iter().map(hour_of).collect();
        runs.push(touched);
        seen_by.push(oracle.events.len());
        local.rollup().run_touched(None).await.unwrap();
    }
    assert_eq!(oracle.invalid_lines, 1);
    assert_eq!(oracle.duplicates, 2);
    let kept = kept_values(&oracle, &runs, &seen_by);
    assert_eq!(kept["item_id"].len(), MAX_VALUES);
    assert_eq!(kept["country"].len(), 3);
    let items: BTreeSet<_> = oracle
        .events
        .iter()
        .filter_map(|e| e.fields.get("item_id"))
        .collect();
    assert!(
        items.len() > 40,
        "the traffic has many more items than the bound"
    );

    let service = local.query_service(QueryOptions::default());
    let now = received + Duration::days(1);
    let days: Vec<(DateTime<Utc>, DateTime<Utc>)> = (0..3)
        .map(|d| (start() + Duration::days(d), start() + Duration::days(d + 1)))
        .chain([(start(), start() + Duration::days(3))])
        .collect();
    for metric in ["item_revenue", "item_buyers"] {
        for (from, to) in &days {
            for filter in [None, Some(("country", "KR"))] {
                let events: Vec<&Ev> = oracle
                    .events
                    .iter()
                    .filter(|e| e.kind == "purchase" && e.at >= *from && e.at < *to)
                    .filter(|e| {
                        filter.is_none_or(|(d, v)| e.fields.get(d).map(String::as_str) == Some(v))
                    })
                    .collect();
                let value = |events: &[&Ev]| -> Decimal {
                    if metric == "item_revenue" {
                        events
                            .iter()
                            .map(|e| e.price.unwrap() * Decimal::from(e.quantity.unwrap_or(1)))
                            .sum()
                    } else {
                        let users: BTreeSet<_> =
                            events.iter().map(|e| &e.fields["user_id"]).collect();
                        Decimal::from(users.len())
                    }
                };
                let mut want: BTreeMap<Option<String>, Vec<&Ev>> = BTreeMap::new();
                for e in &events {
                    want.entry(label(&kept, "item_id", e)).or_default().push(e);
                }
                let want: BTreeMap<Option<String>, Decimal> =
                    want.into_iter().map(|(k, v)| (k, value(&v))).collect();
                let p = QueryParams {
                    metric: metric.into(),
                    from: Some(from.to_rfc3339()),
                    to: Some(to.to_rfc3339()),
                    group_by: Some("item_id".into()),
                    limit: Some("100".into()),
                    filters: filter
                        .iter()
                        .map(|(d, v)| (d.to_string(), v.to_string()))
                        .collect(),
                    ..Default::default()
                };
                let answer = service.query(&p, now).await.unwrap();
                let what = format!("{metric} {from}..{to} {filter:?}");
                assert_eq!(answer.current_total, value(&events), "{what}: total");
                let got: BTreeMap<Option<String>, Decimal> = answer
                    .groups
                    .unwrap()
                    .into_iter()
                    // A group of the previous range alone is listed with 0.
                    .filter(|g| !g.current_total.is_zero())
                    .map(|g| (g.group, g.current_total))
                    .collect();
                assert_eq!(got, want, "{what}: groups");
                assert!(
                    got.len() <= MAX_VALUES + 2,
                    "{what}: kept values, (other) and none"
                );
                assert!(
                    got.contains_key(&Some(OTHER.to_string())),
                    "{what}: the folded values are there as (other)"
                );
            }
        }
    }
    // The values endpoint lists the same bounded groups.
    let values = service
        .dimension_values(
            &QueryParams {
                metric: "item_revenue".into(),
                from: Some(start().to_rfc3339()),
                to: Some((start() + Duration::days(3)).to_rfc3339()),
                limit: Some("100".into()),
                ..Default::default()
            },
            "item_id",
            now,
        )
        .await
        .unwrap();
    let listed: BTreeSet<Option<String>> = values.values.into_iter().map(|v| v.value).collect();
    let mut expected: BTreeSet<Option<String>> =
        kept["item_id"].iter().cloned().map(Some).collect();
    expected.extend([Some(OTHER.to_string()), None]);
    assert_eq!(listed, expected);
}
