//! Realistic demo events: a daily rhythm, countries with their own UTC offsets, browsers, items and
//! prices, contents, and the flaws of real traffic (duplicates, late arrivals, malformed lines).
//! Deterministic for a given spec.

use chrono::{DateTime, Duration, Timelike, Utc};
use chrono_tz::Tz;
use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

#[derive(Debug, Clone)]
pub struct DemoSpec {
    pub days: u32,
    pub events_per_day: u32,
    pub users: u32,
    /// Events occur up to this instant (exclusive).
    pub end: DateTime<Utc>,
    pub seed: u64,
    /// Share of events sent twice, of events delivered days late, and of malformed lines.
    pub duplicate_rate: f64,
    pub late_rate: f64,
    pub malformed_rate: f64,
}

impl DemoSpec {
    pub fn new(days: u32, end: DateTime<Utc>) -> DemoSpec {
        DemoSpec {
            days,
            events_per_day: 20_000,
            users: 5_000,
            end,
            seed: 42,
            duplicate_rate: 0.01,
            late_rate: 0.01,
            malformed_rate: 0.002,
        }
    }
}

const COUNTRIES: [(&str, &str, u32); 7] = [
    ("KR", "Asia/Seoul", 30),
    ("US", "America/New_York", 25),
    ("JP", "Asia/Tokyo", 15),
    ("DE", "Europe/Berlin", 10),
    ("GB", "Europe/London", 8),
    ("FR", "Europe/Paris", 7),
    ("BR", "America/Sao_Paulo", 5),
];
const BROWSERS: [(&str, u32); 5] = [
    ("Chrome", 60),
    ("Safari", 20),
    ("Firefox", 10),
    ("Edge", 8),
    ("Samsung Internet", 2),
];
const DEVICES: [&str; 3] = ["desktop", "mobile", "tablet"];
const ITEMS: [(&str, &str); 8] = [
    ("item-basic", "4.99"),
    ("item-plus", "9.99"),
    ("item-pro", "19.99"),
    ("item-team", "49.50"),
    ("item-coins-100", "0.99"),
    ("item-coins-1200", "9.90"),
    ("item-gift", "25.00"),
    ("item-annual", "199.00"),
];
/// Event types and their shares.
const TYPES: [(&str, u32); 5] = [
    ("page-view", 50),
    ("play-content", 25),
    ("sign-in", 15),
    ("purchase", 5),
    ("add-to-cart", 5),
];
const MALFORMED: [&str; 6] = [
    "{not json at all",
    r#"{"event_type":"sign-in","occurred_at":"2026-01-01T00:00:00Z"}"#,
    r#"{"event_id":"bad-price","event_type":"purchase","occurred_at":"2026-01-01T00:00:00Z","price":"abc"}"#,
    r#"{"event_id":"bad-qty","event_type":"purchase","occurred_at":"2026-01-01T00:00:00Z","price":"1.00","quantity":2.5}"#,
    r#"["a", "b"]"#,
    r#"{"event_id":"future","event_type":"sign-in","occurred_at":"2999-01-01T00:00:00Z"}"#,
];

struct User {
    id: String,
    country: usize,
    browser: usize,
    device: usize,
}

/// Relative traffic by local hour of day: quiet at night, peaks in the evening.
fn rhythm(local_hour: u32) -> f64 {
    const W: [f64; 24] = [
        0.5, 0.3, 0.2, 0.15, 0.15, 0.2, 0.4, 0.7, 0.9, 1.0, 1.0, 1.1, 1.2, 1.1, 1.0, 1.0, 1.1, 1.2,
        1.4, 1.6, 1.7, 1.6, 1.2, 0.8,
    ];
    W[local_hour as usize % 24]
}

/// Generates the demo traffic as a sequence of NDJSON deliveries, one per day, in delivery order.
/// Calls `deliver(name, ndjson)` for each.
pub fn generate(spec: &DemoSpec, mut deliver: impl FnMut(&str, Vec<u8>)) {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let country_pick = WeightedIndex::new(COUNTRIES.iter().map(|c| c.2)).expect("weights");
    let browser_pick = WeightedIndex::new(BROWSERS.iter().map(|b| b.1)).expect("weights");
    let type_pick = WeightedIndex::new(TYPES.iter().map(|t| t.1)).expect("weights");
    let zones: Vec<Tz> = COUNTRIES
        .iter()
        .map(|c| c.1.parse().expect("known zone"))
        .collect();
    let users: Vec<User> = (0..spec.users)
        .map(|i| User {
            id: format!("user-{i:06}"),
            country: country_pick.sample(&mut rng),
            browser: browser_pick.sample(&mut rng),
            device: rng.random_range(0..DEVICES.len()),
        })
        .collect();
    let start = crate::model::period::floor_hour(spec.end) - Duration::days(spec.days as i64);
    let mean_rhythm: f64 = (0..24).map(rhythm).sum::<f64>() / 24.0;
    // Late events wait in this queue for the delivery of a later day.
    let mut late: Vec<(u32, Vec<u8>)> = Vec::new();
    let mut seq: u64 = 0;
    for day in 0..spec.days {
        let mut out: Vec<u8> = Vec::new();
        for hour in 0..24 {
            let hour_start = start + Duration::days(day as i64) + Duration::hours(hour);
            if hour_start >= spec.end {
                break;
            }
            let n = (spec.events_per_day as f64 / 24.0 * rhythm((hour_start.hour() + 9) % 24)
                / mean_rhythm
                * rng.random_range(0.9..1.1)) as u32;
            for _ in 0..n {
                let at = hour_start + Duration::milliseconds(rng.random_range(0..3_600_000));
                if at >= spec.end {
                    continue;
                }
                seq += 1;
                let user = &users[rng.random_range(0..users.len())];
                let kind = type_pick.sample(&mut rng);
                let line = event_line(&mut rng, seq, user, at, zones[user.country], kind);
                if rng.random_bool(spec.late_rate) && day + 1 < spec.days {
                    late.push((rng.random_range(day + 1..spec.days), line.clone()));
                } else {
                    out.extend_from_slice(&line);
                }
                if rng.random_bool(spec.duplicate_rate) {
                    // A retry: the same event again, possibly in a later delivery.
                    let when = rng.random_range(day..spec.days);
                    if when == day {
                        out.extend_from_slice(&line)
                    } else {
                        late.push((when, line))
                    }
                }
                if rng.random_bool(spec.malformed_rate) {
                    out.extend_from_slice(
                        MALFORMED[rng.random_range(0..MALFORMED.len())].as_bytes(),
                    );
                    out.push(b'\n');
                }
            }
        }
        late.retain(|(when, line)| {
            if *when == day {
                out.extend_from_slice(line);
                false
            } else {
                true
            }
        });
        let date = (start + Duration::days(day as i64)).format("%Y-%m-%d");
        deliver(&format!("events-{date}.ndjson"), out);
    }
}

fn event_line(
    rng: &mut ChaCha8Rng,
    seq: u64,
    user: &User,
    at: DateTime<Utc>,
    zone: Tz,
    kind: usize,
) -> Vec<u8> {
    let (event_type, _) = TYPES[kind];
    let mut m = Map::new();
    m.insert(
        "event_id".into(),
        json!(format!("evt-{seq:010}-{:08x}", rng.random::<u32>())),
    );
    m.insert("event_type".into(), json!(event_type));
    // Producers report local time with their own offset; tally stores UTC.
    m.insert(
        "occurred_at".into(),
        json!(at
            .with_timezone(&zone)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, false)),
    );
    m.insert("user_id".into(), json!(user.id));
    m.insert(
        "session_id".into(),
        json!(format!("s-{}-{}", user.id, at.timestamp() / 1800)),
    );
    m.insert(
        "service".into(),
        json!(match event_type {
            "purchase" | "add-to-cart" => "shop",
            "play-content" => "content",
            _ => "user",
        }),
    );
    m.insert("country".into(), json!(COUNTRIES[user.country].0));
    m.insert("browser".into(), json!(BROWSERS[user.browser].0));
    m.insert("device".into(), json!(DEVICES[user.device]));
    match event_type {
        "play-content" => {
            let c = (rng.random::<f64>().powi(3) * 50.0) as u32; // a few titles are far more popular
            m.insert("content_id".into(), json!(format!("content-{c:03}")));
            m.insert("position_seconds".into(), json!(rng.random_range(0..3600)));
        }
        "purchase" | "add-to-cart" => {
            let (item, price) = ITEMS[rng.random_range(0..ITEMS.len())];
            m.insert("item_id".into(), json!(item));
            // Some producers send prices as strings, some as numbers.
            let price_value: Value = if rng.random_bool(0.5) {
                json!(price)
            } else {
                serde_json::from_str(price).expect("number")
            };
            m.insert("price".into(), price_value);
            m.insert("currency".into(), json!("USD"));
            if rng.random_bool(0.7) {
                m.insert("quantity".into(), json!(rng.random_range(1..4)));
            }
        }
        _ => {
            m.insert(
                "page".into(),
                json!(["/", "/pricing", "/library", "/account"][rng.random_range(0..4)]),
            );
        }
    }
    let mut line = serde_json::to_vec(&Value::Object(m)).expect("serialises");
    line.push(b'\n');
    line
}
