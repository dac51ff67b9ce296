//! An independent, deliberately plain recomputation of every shipped metric from raw NDJSON lines.
//! It shares no code with tally's pipeline: it parses with serde_json, keeps valid events in a
//! vector, drops repeated event ids, and filters and counts with iterators.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde_json::Value;

pub type Window = (DateTime<Utc>, DateTime<Utc>);

#[derive(Debug, Clone)]
pub struct Ev {
    pub id: String,
    pub kind: String,
    pub at: DateTime<Utc>,
    pub fields: BTreeMap<String, String>,
    pub price: Option<Decimal>,
    pub quantity: Option<i64>,
}

#[derive(Default)]
pub struct Oracle {
    pub events: Vec<Ev>,
    seen: HashSet<String>,
    pub invalid_lines: usize,
    pub duplicates: usize,
}

const STRING_FIELDS: [&str; 10] = [
    "user_id",
    "session_id",
    "correlation_id",
    "service",
    "country",
    "browser",
    "device",
    "item_id",
    "content_id",
    "currency",
];

fn valid(v: &Value, received: DateTime<Utc>) -> Option<Ev> {
    let o = v.as_object()?;
    let text = |k: &str| {
        o.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
    };
    let id = text("event_id")?;
    let kind = text("event_type")?;
    let at = DateTime::parse_from_rfc3339(&text("occurred_at")?)
        .ok()?
        .with_timezone(&Utc);
    if at > received + Duration::minutes(5) || at < received - Duration::days(3650) {
        return None;
    }
    let mut fields = BTreeMap::new();
    for f in STRING_FIELDS {
        match o.get(f) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.is_empty() => {}
            Some(Value::String(s)) => {
                fields.insert(f.to_string(), s.clone());
            }
            Some(_) => return None,
        }
    }
    let price = match o.get("price") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.to_string().parse::<Decimal>().ok()?),
        Some(Value::String(s)) => Some(s.parse::<Decimal>().ok()?),
        Some(_) => return None,
    };
    if price.is_some_and(|p| p.normalize().scale() > 6) {
        return None;
    }
    let quantity = match o.get("quantity") {
        None | Some(Value::Null) => None,
        Some(q) => Some(q.as_i64()?),
    };
    Some(Ev {
        id,
        kind,
        at,
        fields,
        price,
        quantity,
    })
}

impl Oracle {
    /// Adds NDJSON lines (a line may hold an array of events), keeping the first of each event id.
    pub fn add_lines(&mut self, ndjson: &[u8], received: DateTime<Utc>) {
        for line in String::from_utf8_lossy(ndjson).lines() {
            let line = line.trim().trim_start_matches('\u{feff}');
            if line.is_empty() {
                continue;
            }
            let items = match serde_json::from_str::<Value>(line) {
                Ok(Value::Array(items)) => items,
                Ok(v) => vec![v],
                Err(_) => {
                    self.invalid_lines += 1;
                    continue;
                }
            };
            for item in items {
                match valid(&item, received) {
                    None => self.invalid_lines += 1,
                    Some(ev) if self.seen.contains(&ev.id) => self.duplicates += 1,
                    Some(ev) => {
                        self.seen.insert(ev.id.clone());
                        self.events.push(ev);
                    }
                }
            }
        }
    }

    fn matching<'a>(
        &'a self,
        w: Window,
        filters: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Ev> + 'a {
        self.events
            .iter()
            .filter(move |e| e.at >= w.0 && e.at < w.1)
            .filter(move |e| {
                filters
                    .iter()
                    .all(|(k, v)| e.fields.get(*k).map(String::as_str) == Some(*v))
            })
    }

    /// The metric over events in `w` matching every `dimension = value` filter.
    pub fn value(&self, metric: &str, w: Window, filters: &[(&str, &str)]) -> Decimal {
        let evs = self.matching(w, filters);
        match metric {
            "visitors" => Decimal::from(
                evs.filter_map(|e| e.fields.get("user_id"))
                    .collect::<BTreeSet<_>>()
                    .len(),
            ),
            "sign_ins" => Decimal::from(evs.filter(|e| e.kind == "sign-in").count()),
            "content_views" => Decimal::from(evs.filter(|e| e.kind == "play-content").count()),
            "purchases" => Decimal::from(evs.filter(|e| e.kind == "purchase").count()),
            "revenue" => evs
                .filter(|e| e.kind == "purchase")
                .filter_map(|e| e.price.map(|p| p * Decimal::from(e.quantity.unwrap_or(1))))
                .sum(),
            // Revenue at list price, the quantity left out (a changed definition in the tests).
            "revenue_list_price" => evs
                .filter(|e| e.kind == "purchase")
                .filter_map(|e| e.price)
                .sum(),
            // Units sold: the quantity of each purchase, 1 when absent (a deployed new metric).
            "purchase_units" => evs
                .filter(|e| e.kind == "purchase")
                .map(|e| Decimal::from(e.quantity.unwrap_or(1)))
                .sum(),
            other => panic!("the oracle does not know metric {other}"),
        }
    }

    /// A ratio metric over events in `w`: `None` where its denominator is zero. Rounded to 6
    /// decimal places, as the API documents.
    pub fn ratio(&self, metric: &str, w: Window, filters: &[(&str, &str)]) -> Option<Decimal> {
        let (num, den) = match metric {
            "average_order_value" => (
                self.value("revenue", w, filters),
                self.value("purchases", w, filters),
            ),
            "average_price" => {
                let prices: Vec<Decimal> = self
                    .matching(w, filters)
                    .filter(|e| e.kind == "purchase")
                    .filter_map(|e| e.price)
                    .collect();
                (prices.iter().sum(), Decimal::from(prices.len()))
            }
            other => panic!("the oracle does not know ratio {other}"),
        };
        (!den.is_zero()).then(|| (num / den).round_dp(6).normalize())
    }

    /// A ratio metric per value of dimension `by`, for the groups where it has a value.
    pub fn ratio_groups(
        &self,
        metric: &str,
        by: &str,
        w: Window,
        filters: &[(&str, &str)],
    ) -> BTreeMap<String, Decimal> {
        self.per_value(by, w, filters, |f| self.ratio(metric, w, f))
    }

    /// The metric per value of dimension `by` (events without a value left out).
    pub fn groups(
        &self,
        metric: &str,
        by: &str,
        w: Window,
        filters: &[(&str, &str)],
    ) -> BTreeMap<String, Decimal> {
        self.per_value(by, w, filters, |f| {
            Some(self.value(metric, w, f)).filter(|v| !v.is_zero())
        })
    }

    /// `value` under the filters plus `by = v`, for each value `v` of `by` seen in `w`, where it
    /// gives one.
    fn per_value(
        &self,
        by: &str,
        w: Window,
        filters: &[(&str, &str)],
        value: impl Fn(&[(&str, &str)]) -> Option<Decimal>,
    ) -> BTreeMap<String, Decimal> {
        let keys: BTreeSet<String> = self
            .matching(w, filters)
            .filter_map(|e| e.fields.get(by).cloned())
            .collect();
        keys.into_iter()
            .filter_map(|k| {
                let mut f = filters.to_vec();
                f.push((by, k.as_str()));
                Some((k.clone(), value(&f)?))
            })
            .collect()
    }
}
