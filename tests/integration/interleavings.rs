//! Ingest racing compaction and rollups. For random batches of events (duplicate ids within and
//! across batches, events for hours already rolled up and compacted, a batch delivered twice) and
//! random schedules in which ingests run at the same time as each other, a compaction and a rollup
//! (the rollup jobs themselves take turns through their lease), a last rollup must leave every
//! hour's numbers and the day's totals equal to the oracle's over all the events. One machine: real
//! files and SQLite.

use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use tally::ingest;
use tally::rollup::{run_job, Job, JobReport};
use tally::runtime::Local;
use tally::serve::{QueryOptions, QueryParams};

use crate::crash_points::catalog;
use crate::oracle::Oracle;

fn hour(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 8, 23, h, 0, 0).unwrap()
}

/// The receipt clock: each ingest, as it starts, is received a second after the one before, as
/// ingest stamps the time it runs. The oracle replays the batches in that order.
struct Clock(std::sync::Mutex<Vec<(DateTime<Utc>, usize)>>);

impl Clock {
    fn receive(&self, batch: usize) -> DateTime<Utc> {
        let mut log = self.0.lock().unwrap();
        let at = Utc.with_ymd_and_hms(2026, 8, 25, 0, 0, 0).unwrap()
            + Duration::seconds(log.len() as i64);
        log.push((at, batch));
        at
    }
}

/// One event line from (id, purchase?, user, price in cents). A retry is the same event, so an
/// id's time is its own (an id counts once per event hour, docs/events.md); the other fields of
/// its copies may differ, and the first received counts.
fn line((id, purchase, user, cents): (u8, bool, u8, u32)) -> String {
    let (h, minute) = (u32::from(id) % 6, u32::from(id) * 7 % 60);
    let at = (hour(h) + Duration::minutes(minute.into())).to_rfc3339();
    if purchase {
        format!(
            r#"{{"event_id":"e{id}","event_type":"purchase","occurred_at":"{at}","user_id":"u{user}","country":"KR","item_id":"i","price":"{}.{:02}"}}"#,
            cents / 100,
            cents % 100
        )
    } else {
        format!(
            r#"{{"event_id":"e{id}","event_type":"sign-in","occurred_at":"{at}","user_id":"u{user}","country":"US"}}"#
        )
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Ingest(usize),
    Compact,
    Rollup,
}

fn batches() -> impl Strategy<Value = Vec<Vec<String>>> {
    let event = (0u8..24, any::<bool>(), 0u8..6, 0u32..5000).prop_map(line);
    prop::collection::vec(prop::collection::vec(event, 1..8), 2..5)
}

/// Every batch once (one of them twice, as a redelivery), with compactions and rollups among
/// them, in waves of one to three operations that run at the same time.
fn schedule(batches: usize) -> impl Strategy<Value = Vec<Vec<Op>>> {
    let ops = (
        Just((0..batches).map(Op::Ingest).collect::<Vec<_>>()),
        0..batches,
        1usize..3,
        1usize..3,
    )
        .prop_map(|(mut ops, again, compactions, rollups)| {
            ops.push(Op::Ingest(again));
            ops.extend(std::iter::repeat_n(Op::Compact, compactions));
            ops.extend(std::iter::repeat_n(Op::Rollup, rollups));
            ops
        })
        .prop_shuffle();
    (ops, prop::collection::vec(1usize..4, 12)).prop_map(|(ops, sizes)| {
        let mut waves = Vec::new();
        let mut rest = &ops[..];
        for size in sizes.into_iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (wave, tail) = rest.split_at(size.min(rest.len()));
            waves.push(wave.to_vec());
            rest = tail;
        }
        waves
    })
}

async fn run(batches: Vec<Vec<String>>, waves: Vec<Vec<Op>>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let local = Local::open(dir.path(), catalog(), Tz::UTC).unwrap();
    let inputs: Vec<String> = batches.iter().map(|b| b.join("\n")).collect();
    let clock = Clock(Default::default());
    for wave in &waves {
        // Two deliveries of one batch at the same moment stamp two receipt times, and either
        // write may land first: which copy of a conflicting duplicate counts is then open. SQS
        // redelivers after a visibility timeout, so here a batch's second delivery waits for the
        // first.
        let (first, again): (Vec<_>, Vec<_>) = wave.iter().enumerate().partition(|(i, op)| {
            !matches!(op, Op::Ingest(b) if wave[..*i].iter().any(|o| matches!(o, Op::Ingest(c) if c == b)))
        });
        for part in [first, again] {
            let ops = part.iter().map(|&(_, &op)| {
                let (local, inputs, clock) = (&local, &inputs, &clock);
                async move {
                    match op {
                        Op::Ingest(b) => {
                            let at = clock.receive(b);
                            ingest::ingest_ndjson(&local.storage, inputs[b].as_bytes(), at)
                                .await
                                .map(drop)
                                .map_err(|e| e.to_string())
                        }
                        Op::Compact => {
                            run_job(&local.rollup(), &Job::Compact { grace_hours: 2 }, None)
                                .await
                                .map(drop)
                                .map_err(|e| e.to_string())
                        }
                        Op::Rollup => run_job(&local.rollup(), &Job::Rollup { full: false }, None)
                            .await
                            .map(drop)
                            .map_err(|e| e.to_string()),
                    }
                }
            });
            for outcome in futures::future::join_all(ops).await {
                prop_assert!(outcome.is_ok(), "{:?}: {:?}", wave, outcome);
            }
        }
    }
    let last = run_job(&local.rollup(), &Job::Rollup { full: false }, None).await;
    prop_assert!(matches!(last, Ok(JobReport::Rollup(_))), "{:?}", last);

    let mut oracle = Oracle::default();
    for (at, b) in clock.0.lock().unwrap().iter() {
        oracle.add_lines(inputs[*b].as_bytes(), *at);
    }
    let service = local.query_service(QueryOptions::default());
    for metric in ["revenue", "visitors"] {
        let params = QueryParams {
            metric: metric.into(),
            from: Some("2026-08-23".into()),
            to: Some("2026-08-24".into()),
            interval: Some("hour".into()),
            ..Default::default()
        };
        let now = Utc.with_ymd_and_hms(2026, 8, 26, 0, 0, 0).unwrap();
        let answer = service.query(&params, now).await.unwrap();
        let day = (hour(0), hour(0) + Duration::days(1));
        prop_assert_eq!(
            answer.current_total,
            oracle.value(metric, day, &[]),
            "{} day",
            metric
        );
        prop_assert_eq!(answer.series.len(), 24);
        for point in &answer.series {
            let h = DateTime::parse_from_rfc3339(&point.start)
                .unwrap()
                .with_timezone(&Utc);
            let want = oracle.value(metric, (h, h + Duration::hours(1)), &[]);
            prop_assert_eq!(point.value, want, "{} at {}", metric, h);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    #[test]
    fn ingest_during_compaction_and_rollups_loses_and_doubles_nothing(
        (batches, waves) in batches().prop_flat_map(|b| { let n = b.len(); (Just(b), schedule(n)) })
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run(batches, waves))?;
    }
}
