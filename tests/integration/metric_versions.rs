//! The data team's deploys, run the same way on one machine (a directory and SQLite) and on AWS
//! (S3 and DynamoDB over moto, through the rollup function's handler): a changed metric is rebuilt
//! beside the old one over several runs while the old numbers keep answering, then switches; a new
//! metric deployed with no code change answers exactly; a removed one answers 404 and its rows go.
//! Every number is checked against the independent oracle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use tally::lake::Storage;
use tally::model::Grain;
use tally::rollup::{Catalog, JobReport, Rollup, RollupReport};
use tally::serve::{QueryError, QueryOptions, QueryParams, QueryService};
use tally::store::PeriodStore;
use tally::tools::demo::{self, DemoSpec};

use crate::moto;
use crate::oracle::Oracle;

fn utc(d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 8, d, h, 0, 0).unwrap()
}

fn received() -> DateTime<Utc> {
    utc(27, 1)
}

/// What the data team deploys: revenue at list price (the quantity dropped), a new metric of units
/// sold, and no more content views.
fn changed_catalog() -> Catalog {
    let builtin = Catalog::builtin();
    let mut files: Vec<(String, String)> = builtin
        .listed()
        .filter(|m| m.name != "content_views")
        .map(|m| (format!("{}.sql", m.name), m.text.clone()))
        .collect();
    let revenue = files.iter_mut().find(|f| f.0 == "revenue.sql").unwrap();
    assert!(revenue.1.contains("SUM(price * COALESCE(quantity, 1))"));
    revenue.1 = revenue
        .1
        .replace("SUM(price * COALESCE(quantity, 1))", "SUM(price)");
    files.push((
        "purchase_units.sql".into(),
        "-- name: purchase_units\n-- title: Units sold\n-- unit: units\n-- dimensions: country\n\
         SELECT country, SUM(COALESCE(quantity, 1)) AS value FROM events \
         WHERE event_type = 'purchase' GROUP BY country\n"
            .into(),
    ));
    Catalog::from_sources(files.iter().map(|(n, t)| (n.clone(), t.as_str()))).unwrap()
}

/// The oracle's name for what each deployed metric computes.
fn oracle_metric(name: &str, switched: bool) -> &str {
    match name {
        "revenue" if switched => "revenue_list_price",
        other => other,
    }
}

struct Lake {
    storage: Storage,
    store: Arc<dyn PeriodStore>,
    /// Through the rollup function's handler (the AWS path) or the CLI's job (one machine).
    aws: bool,
    _dir: Option<tempfile::TempDir>,
}

impl Lake {
    fn rollup(&self) -> Rollup {
        Rollup {
            storage: self.storage.clone(),
            events: None,
            store: self.store.clone(),
            catalog: Catalog::builtin(),
            reporting_tz: Tz::UTC,
            retire_after: Duration::ZERO,
            shards: Default::default(),
        }
    }

    async fn run(&self, deadline: Instant) -> RollupReport {
        let rollup = self.rollup();
        let report = if self.aws {
            tally_rollup_fn::handle_job(&rollup, serde_json::json!({"job": "rollup"}), deadline)
                .await
                .unwrap()
        } else {
            tally::rollup::run_job(
                &rollup,
                &tally::rollup::Job::Rollup { full: false },
                Some(deadline),
            )
            .await
            .unwrap()
        };
        match report {
            JobReport::Rollup(r) => r,
            other => panic!("a rollup reports a rollup: {other:?}"),
        }
    }

    fn service(&self) -> QueryService {
        QueryService::from_lake(
            self.store.clone(),
            self.storage.clone(),
            Catalog::builtin(),
            QueryOptions {
                catalog_ttl: Duration::ZERO,
                ..QueryOptions::default()
            },
        )
    }
}

/// Four days of traffic, delivery by delivery.
fn traffic() -> Vec<Vec<u8>> {
    let spec = DemoSpec {
        events_per_day: 1500,
        users: 300,
        seed: 23,
        duplicate_rate: 0.02,
        late_rate: 0.02,
        malformed_rate: 0.01,
        ..DemoSpec::new(4, utc(27, 0))
    };
    let mut deliveries = Vec::new();
    demo::generate(&spec, |_, b| deliveries.push(b));
    deliveries
}

/// Purchases arriving late into one hour already rolled up, during the rebuild.
fn late_purchases() -> Vec<u8> {
    (0..5)
        .map(|i| {
            format!(
                "{{\"event_id\":\"late-{i}\",\"event_type\":\"purchase\",\"occurred_at\":\"2026-08-25T10:1{i}:00Z\",\"user_id\":\"late\",\"country\":\"KR\",\"price\":\"3.25\",\"quantity\":{}}}\n",
                i + 1
            )
        })
        .collect::<String>()
        .into_bytes()
}

fn query(metric: &str, from: &str, to: &str, filters: &[(&str, &str)]) -> QueryParams {
    QueryParams {
        metric: metric.into(),
        from: Some(from.into()),
        to: Some(to.into()),
        interval: Some("day".into()),
        filters: filters
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

/// A stored metric over the four days of traffic, answered after them.
async fn four_days(
    svc: &QueryService,
    metric: &str,
) -> Result<tally::serve::MetricResponse, QueryError> {
    svc.query(&query(metric, "2026-08-23", "2026-08-27", &[]), utc(31, 0))
        .await
}

/// Every deployed metric that answers, against the oracle: range, series, all time, a filter.
async fn check_answers(lake: &Lake, oracle: &Oracle, switched: &[String], deployed: bool) {
    let svc = lake.service();
    let now = utc(31, 0);
    let everything = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
    for (name, filters) in [
        ("revenue", &[][..]),
        ("revenue", &[("country", "KR")][..]),
        ("purchases", &[][..]),
        ("purchase_units", &[("country", "KR")][..]),
        ("sign_ins", &[][..]),
    ] {
        if name == "purchase_units" && !deployed {
            continue;
        }
        let r = match svc
            .query(&query(name, "2026-08-23", "2026-08-27", filters), now)
            .await
        {
            Ok(r) => r,
            Err(QueryError::Building { .. }) if !switched.iter().any(|s| s == name) => {
                continue;
            }
            Err(e) => panic!("{name}: {e}"),
        };
        let m = oracle_metric(name, switched.iter().any(|s| s == name));
        assert_eq!(
            r.current_total,
            oracle.value(m, (utc(23, 0), utc(27, 0)), filters),
            "{name} {filters:?} (as {m})"
        );
        for (i, p) in r.series.iter().enumerate() {
            let day = utc(23 + i as u32, 0);
            let want = oracle.value(m, (day, day + chrono::Duration::days(1)), filters);
            assert_eq!(p.value, want, "{name} {filters:?} series {}", p.start);
        }
        assert_eq!(
            r.total,
            oracle.value(m, everything, filters),
            "{name} all time"
        );
    }
}

async fn the_rebuild_scenario(lake: Lake) {
    let mut oracle = Oracle::default();
    let mut rejected = 0;
    for events in traffic() {
        let summary = tally::ingest::ingest_ndjson(&lake.storage, &events[..], received())
            .await
            .unwrap();
        rejected += summary.rejected;
        oracle.add_lines(&events, received());
    }
    assert_eq!(
        rejected, oracle.invalid_lines,
        "ingest and the oracle agree on what is malformed"
    );
    let first = lake.run(Instant::now() + Duration::from_secs(600)).await;
    assert!(
        first.building.is_empty(),
        "the seed catalog is built in one run"
    );
    check_answers(&lake, &oracle, &[], false).await;
    let svc = lake.service();
    let old_revenue = four_days(&svc, "revenue").await.unwrap();

    // Preview before deploying: the changed and the new definition over the real lake, answered
    // as the API will, with nothing written there.
    let before_preview = (
        lake.storage.list("_catalog").await.unwrap(),
        lake.storage.list("_state").await.unwrap(),
    );
    let changed = changed_catalog();
    for (name, filters) in [
        ("revenue", &[][..]),
        ("purchase_units", &[("country", "KR")][..]),
    ] {
        let def = changed.get(name).unwrap().as_ref().clone();
        let answer = tally::tools::sql_preview::preview(
            &lake.storage,
            &changed,
            def,
            Tz::UTC,
            &query(name, "2026-08-23", "2026-08-27", filters),
        )
        .await
        .unwrap();
        let tally::serve::Answer::Metric(r) = answer else {
            panic!("{name} is a stored metric");
        };
        let m = oracle_metric(name, true);
        assert_eq!(
            r.current_total,
            oracle.value(m, (utc(23, 0), utc(27, 0)), filters),
            "preview of {name}"
        );
        let everything = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
        assert_eq!(
            r.total,
            oracle.value(m, everything, filters),
            "preview of {name}, all time"
        );
    }
    // A formula's preview builds what it divides from the working copy: the changed revenue.
    let aov = changed.get("average_order_value").unwrap().as_ref().clone();
    let answer = tally::tools::sql_preview::preview(
        &lake.storage,
        &changed,
        aov,
        Tz::UTC,
        &query("average_order_value", "2026-08-23", "2026-08-27", &[]),
    )
    .await
    .unwrap();
    let (list_price, purchases) = (
        oracle.value("revenue_list_price", (utc(23, 0), utc(27, 0)), &[]),
        oracle.value("purchases", (utc(23, 0), utc(27, 0)), &[]),
    );
    assert_eq!(
        answer.current_total(),
        Some((list_price / purchases).round_dp(6).normalize())
    );
    assert_eq!(
        (
            lake.storage.list("_catalog").await.unwrap(),
            lake.storage.list("_state").await.unwrap(),
        ),
        before_preview,
        "a preview stores nothing in the lake"
    );

    // Deploy: a refused catalog first (nothing changes), then the real one.
    let broken = Catalog::from_sources([(
        "bad.sql".to_string(),
        "-- name: bad\nSELECT COUNT(*) AS value FROM read_parquet('/etc')",
    )])
    .unwrap();
    assert!(tally::rollup::deploy(&lake.storage, &broken).await.is_err());
    assert!(four_days(&svc, "content_views").await.is_ok());
    tally::rollup::deploy(&lake.storage, &changed_catalog())
        .await
        .unwrap();
    // A removed metric leaves at once.
    assert!(matches!(
        four_days(&svc, "content_views").await,
        Err(QueryError::UnknownMetric(_))
    ));
    let old_views_key = tally::rollup::version_key(
        "content_views",
        &Catalog::builtin()
            .get("content_views")
            .unwrap()
            .version(Tz::UTC),
    );

    // Rollups whose deadline has passed when they start: each builds one day of one metric.
    let mut switched: Vec<String> = Vec::new();
    let mut runs = 0;
    let mut saw_building = false;
    let mut deleted: Vec<String> = Vec::new();
    loop {
        if runs == 2 {
            // Late events mid-rebuild, all in one hour: the next run rolls them up for both
            // versions.
            let late = late_purchases();
            tally::ingest::ingest_ndjson(&lake.storage, &late[..], received())
                .await
                .unwrap();
            oracle.add_lines(&late, received());
        }
        let report = lake.run(Instant::now()).await;
        runs += 1;
        switched.extend(report.switched.iter().cloned());
        deleted.extend(report.deleted.iter().cloned());
        if !report.building.is_empty() {
            saw_building = true;
            // While revenue builds, it answers from the old definition, exactly as before.
            if !switched.iter().any(|s| s == "revenue") {
                let r = four_days(&svc, "revenue").await.unwrap();
                assert_eq!(r.version, old_revenue.version);
            }
        }
        check_answers(&lake, &oracle, &switched, true).await;
        if report.building.is_empty() && runs > 3 {
            break;
        }
        assert!(runs < 60, "the rebuild ends");
    }
    assert!(
        saw_building && runs > 4,
        "the rebuild took several runs ({runs})"
    );
    switched.sort();
    assert_eq!(switched, ["purchase_units", "revenue"]);
    let r = four_days(&svc, "revenue").await.unwrap();
    assert_ne!(
        r.version, old_revenue.version,
        "answers name the new version"
    );
    assert_ne!(
        r.current_total, old_revenue.current_total,
        "the change is visible (quantities above 1 exist)"
    );

    // The run after a switch deletes the replaced and removed versions' rows (at once here: the
    // grace period is zero).
    let report = lake.run(Instant::now() + Duration::from_secs(600)).await;
    deleted.extend(report.deleted.iter().cloned());
    let old_revenue_key = tally::rollup::version_key("revenue", &old_revenue.version);
    deleted.sort();
    let mut want = vec![old_views_key.clone(), old_revenue_key.clone()];
    want.sort();
    assert_eq!(deleted, want);
    for key in [old_views_key, old_revenue_key] {
        let rows = lake
            .store
            .series(&key, Grain::Day, &Default::default(), utc(1, 0), utc(31, 0))
            .await
            .unwrap();
        assert!(rows.is_empty(), "{key} rows are gone: {}", rows.len());
        assert!(lake
            .storage
            .list(&format!("_state/sums/{key}"))
            .await
            .unwrap()
            .is_empty());
    }
    check_answers(&lake, &oracle, &switched, true).await;
    let units = four_days(&svc, "purchase_units").await.unwrap();
    assert!(units.current_total > Decimal::ZERO);
}

#[tokio::test]
async fn a_changed_metric_rebuilds_beside_the_old_one_on_one_machine() {
    let dir = tempfile::tempdir().unwrap();
    let local = tally::runtime::Local::open(dir.path(), Catalog::builtin(), Tz::UTC).unwrap();
    the_rebuild_scenario(Lake {
        storage: local.storage.clone(),
        store: local.store.clone(),
        aws: false,
        _dir: Some(dir),
    })
    .await;
}

#[tokio::test]
async fn a_changed_metric_rebuilds_beside_the_old_one_on_aws() {
    let bucket = moto::unique("versions");
    let table = moto::unique("versions");
    the_rebuild_scenario(Lake {
        storage: moto::s3_storage(&bucket),
        store: Arc::new(moto::dynamo_store(&table).await),
        aws: true,
        _dir: None,
    })
    .await;
}
