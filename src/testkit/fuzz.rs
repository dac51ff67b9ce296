//! The fuzz targets' bodies (`fuzz/`, cargo-fuzz), here so that `make test` replays their corpus
//! on stable Rust through the same code (`tests/integration/fuzz_corpus.rs`). Each takes arbitrary
//! bytes and panics only when a promise breaks: a parser that panics, input that vanishes without
//! a reason, an answer that is a server error or not JSON.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::de::IgnoredAny;
use tower::ServiceExt;

use crate::model::event::{parse_message, parse_ndjson, Parsed, Receipt, MAX_EVENT_BYTES};
use crate::rollup::{Catalog, MetricDef};
use crate::runtime::Local;
use crate::serve::{router_with_clock, ApiOptions, QueryOptions};

/// The receipt time every target parses with: fixed, so a finding replays the same way.
fn receipt() -> Receipt {
    Receipt::from(Utc.with_ymd_and_hms(2026, 8, 27, 12, 0, 0).unwrap())
}

/// NDJSON as a file or `tally ingest` brings it: every non-blank line becomes events or quarantined
/// pieces with a reason (an empty array alone holds nothing), the whole parses as its lines do one
/// by one, and every accepted event keeps the contract.
pub fn event_lines(data: &[u8]) {
    let receipt = receipt();
    let whole = parse_ndjson(data, receipt);
    check_parsed(data, &whole, receipt);
    let (mut events, mut rejected) = (0, 0);
    for line in data.split(|b| *b == b'\n') {
        let one = parse_ndjson(line, receipt);
        if !holds_nothing(line) {
            assert!(
                !one.events.is_empty() || !one.rejected.is_empty(),
                "a line vanished: {:?}",
                String::from_utf8_lossy(line)
            );
        }
        events += one.events.len();
        rejected += one.rejected.len();
    }
    assert_eq!(
        (whole.events.len(), whole.rejected.len()),
        (events, rejected)
    );
}

/// One SQS message body, an SNS notification or not: a non-empty body becomes events or a
/// quarantined piece with a reason; an empty one is quarantined as empty.
pub fn queue_message(data: &[u8]) {
    let receipt = receipt();
    let payload = crate::ingest::message_payload(data);
    let parsed = parse_message(&payload, receipt);
    check_parsed(&payload, &parsed, receipt);
    if !holds_nothing(&payload) {
        assert!(
            !parsed.events.is_empty() || !parsed.rejected.is_empty(),
            "a message vanished: {:?}",
            String::from_utf8_lossy(data)
        );
    }
}

/// Blank, or an empty array, once ASCII whitespace and a byte-order mark are set aside.
fn holds_nothing(input: &[u8]) -> bool {
    let input = input.trim_ascii();
    let input = input
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(input)
        .trim_ascii();
    input.is_empty() || serde_json::from_slice::<Vec<IgnoredAny>>(input).is_ok_and(|v| v.is_empty())
}

fn check_parsed(input: &[u8], parsed: &Parsed<'_>, receipt: Receipt) {
    for r in &parsed.rejected {
        assert!(!r.reason.is_empty(), "a rejection without a reason");
        assert!(
            r.raw.len() <= input.len(),
            "a rejection holds more than the input"
        );
        assert_eq!(r.received_at, receipt.at);
    }
    let oldest = receipt.at - chrono::Duration::days(receipt.max_age_days);
    let newest = receipt.at + crate::model::event::MAX_FUTURE_SKEW;
    for e in &parsed.events {
        assert!(!e.event_id.is_empty() && !e.event_type.is_empty());
        assert!(e.event_id.len() <= MAX_EVENT_BYTES);
        assert!(
            (oldest..=newest).contains(&e.occurred_at),
            "accepted outside the horizon: {}",
            e.occurred_at
        );
        assert_eq!(e.received_at, receipt.at);
        if let Some(p) = e.price {
            assert!(p.scale() <= crate::model::event::PRICE_SCALE);
            assert!(p.abs() <= crate::model::event::PRICE_MAX_ABS.into());
        }
        if let Some(a) = &e.attributes {
            // Valid JSON by the grammar; a number's range is the reader's (`1e999` is JSON).
            let a = a.to_json();
            let raw = serde_json::from_str::<&serde_json::value::RawValue>(&a);
            assert!(
                raw.is_ok_and(|r| r.get().starts_with('{')),
                "attributes are not a JSON object: {a}"
            );
        }
    }
}

/// A metric's SQL file with its header: parsed or refused with a message naming the file; never a
/// panic.
pub fn metric_sql(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match MetricDef::parse("sql/fuzzed.sql", text) {
        Ok(def) => {
            assert!(!def.name.is_empty());
            assert!(!def.sql.trim().is_empty() || def.formula.is_some());
        }
        Err(e) => assert!(
            e.to_string().contains("sql/fuzzed.sql"),
            "an error that does not name its file: {e}"
        ),
    }
}

struct ApiFixture {
    _dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
}

fn api_fixture() -> &'static ApiFixture {
    static FIXTURE: OnceLock<ApiFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let now: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 8, 27, 0, 0, 0).unwrap();
        let dir = tempfile::tempdir().expect("temporary lake");
        let app = runtime.block_on(async {
            let local = Local::open(dir.path(), Catalog::builtin(), Tz::UTC).expect("lake");
            let spec = crate::tools::demo::DemoSpec {
                events_per_day: 300,
                users: 50,
                ..crate::tools::demo::DemoSpec::new(2, now)
            };
            let mut deliveries = Vec::new();
            crate::tools::demo::generate(&spec, |_, b| deliveries.push(b));
            for d in deliveries {
                crate::ingest::ingest_ndjson(&local.storage, &d[..], now)
                    .await
                    .expect("ingest");
            }
            local.rollup().run_touched(None).await.expect("rollup");
            let service = Arc::new(local.query_service(QueryOptions::default()));
            router_with_clock(service, ApiOptions::default(), Arc::new(move || now))
        });
        ApiFixture {
            _dir: dir,
            runtime,
            app,
        }
    })
}

/// A query string (after the first byte, which picks the endpoint) to a lake with two days of
/// events: the answer is a 200, 400, 404 or 414 with a JSON body, never a server error.
pub fn api_query(data: &[u8]) {
    let Some((&pick, query)) = data.split_first() else {
        return;
    };
    let path = match pick % 4 {
        0 => "/v1/metrics/sign_ins",
        1 => "/v1/metrics/revenue",
        2 => "/v1/metrics/average_order_value",
        _ => "/v1/metrics/visitors/dimensions/country",
    };
    // Bytes a client cannot put in a request line are refused by the HTTP layer before tally sees
    // them; keep what a URI can carry.
    let query: String = String::from_utf8_lossy(query)
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .collect();
    let Ok(request) = Request::get(format!("{path}?{query}")).body(Body::empty()) else {
        return;
    };
    let fixture = api_fixture();
    let (status, body) = fixture.runtime.block_on(async {
        let response = fixture
            .app
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, body)
    });
    assert!(
        [
            StatusCode::OK,
            StatusCode::BAD_REQUEST,
            StatusCode::NOT_FOUND,
            StatusCode::URI_TOO_LONG
        ]
        .contains(&status),
        "{path}?{query} answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    assert!(
        serde_json::from_slice::<serde_json::Value>(&body).is_ok(),
        "{path}?{query}: the body is not JSON"
    );
}
