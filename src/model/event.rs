//! The event contract: what producers send, what is accepted, and why anything is rejected.
//!
//! One JSON object per event. `event_id`, `event_type` and `occurred_at` are required; a fixed set of
//! known fields become typed columns; every other field is kept verbatim in `attributes`.
//! The published form of this contract is `schema/event.schema.json`.

use std::borrow::Cow;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{flat_object, rfc3339};

/// Longest accepted event (one NDJSON line or one array element), in bytes.
pub(crate) const MAX_EVENT_BYTES: usize = 64 * 1024;
/// How far `occurred_at` may lie ahead of the time the event was received (clock skew allowance).
pub(crate) const MAX_FUTURE_SKEW: Duration = Duration::minutes(5);
/// How old an event may be when it arrives, unless `TALLY_MAX_EVENT_AGE_DAYS` says otherwise: old
/// enough for any backfill, young enough to refuse a zero or garbage time (0001-01-01, 1970-01-01)
/// that would become the lake's first hour.
pub const DEFAULT_MAX_EVENT_AGE_DAYS: i64 = 3650;
/// Decimal places kept for `price`; the Parquet column is DECIMAL(18, 6).
pub(crate) const PRICE_SCALE: u32 = 6;
/// Largest absolute price that fits DECIMAL(18, 6).
pub(crate) const PRICE_MAX_ABS: i64 = 999_999_999_999;

/// Optional string fields with their own typed column, in column order.
pub const STRING_FIELDS: [&str; 10] = [
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

/// An accepted event, normalised: times in UTC, unknown fields folded into `attributes`.
///
/// Text fields borrow from the input when they hold no JSON escapes: ingest copies each value once,
/// into the Arrow column, instead of through a `String` per field.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    pub event_id: Cow<'a, str>,
    pub event_type: Cow<'a, str>,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// Values of [`STRING_FIELDS`], same order; `None` when absent, null or empty.
    pub strings: [Option<Cow<'a, str>>; 10],
    pub price: Option<Decimal>,
    pub quantity: Option<i64>,
    /// Every field outside the contract.
    pub attributes: Option<Attributes<'a>>,
    /// The event's JSON object as it came: a file's ingest holds some events back and parses
    /// them again beside later ones (see `ingest`).
    pub(crate) text: &'a str,
}

/// The fields of an event outside the contract: the members of a JSON object in key order, values
/// as sent, kept without the object's braces, so that a lone member (the usual case) is its own
/// text in the input and needs no copy until it is written to its column.
#[derive(Debug, Clone, PartialEq)]
pub struct Attributes<'a>(Cow<'a, str>);

impl Attributes<'_> {
    /// The JSON object text the `attributes` column holds, in its three parts: the braces around
    /// the members (`"key":value` separated by commas).
    pub(crate) fn json_parts(&self) -> [&str; 3] {
        ["{", &self.0, "}"]
    }

    /// The JSON object text the `attributes` column holds.
    pub fn to_json(&self) -> String {
        self.json_parts().concat()
    }
}

impl Event<'_> {
    pub fn field(&self, name: &str) -> Option<&str> {
        let i = STRING_FIELDS.iter().position(|f| *f == name)?;
        self.strings[i].as_deref()
    }
}

/// When input arrived, and the oldest `occurred_at` accepted with it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Receipt {
    pub(crate) at: DateTime<Utc>,
    /// Events are accepted up to this many days before `at`.
    pub(crate) max_age_days: i64,
    /// The accepted span of `occurred_at`, worked out once rather than per event (so the fields
    /// it derives from are set only by [`Receipt::new`]).
    oldest: DateTime<Utc>,
    newest: DateTime<Utc>,
}

impl Receipt {
    pub fn new(at: DateTime<Utc>, max_age_days: i64) -> Receipt {
        Receipt {
            at,
            max_age_days,
            oldest: at - Duration::days(max_age_days),
            newest: at + MAX_FUTURE_SKEW,
        }
    }
}

/// Received at this time, with the default horizon for old events.
impl From<DateTime<Utc>> for Receipt {
    fn from(at: DateTime<Utc>) -> Receipt {
        Receipt::new(at, DEFAULT_MAX_EVENT_AGE_DAYS)
    }
}

/// A piece of input that could not become an event, kept byte for byte with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub raw: Vec<u8>,
    pub reason: String,
    pub received_at: DateTime<Utc>,
}

/// The outcome of parsing one input: what flows on and what goes to quarantine.
#[derive(Debug, Default)]
pub(crate) struct Parsed<'a> {
    pub(crate) events: Vec<Event<'a>>,
    pub(crate) rejected: Vec<Rejected>,
}

impl<'a> Parsed<'a> {
    fn reject(&mut self, raw: &[u8], reason: impl Into<String>, received_at: DateTime<Utc>) {
        self.rejected.push(Rejected {
            raw: raw.to_vec(),
            reason: reason.into(),
            received_at,
        });
    }
}

/// [`parse_ndjson_into`] a new vector.
#[cfg(any(test, feature = "testkit"))]
pub(crate) fn parse_ndjson(input: &[u8], receipt: Receipt) -> Parsed<'_> {
    parse_ndjson_into(input, receipt, Vec::new())
}

/// Parses NDJSON: one event per line (a line may also hold a JSON array of events). Blank lines are
/// skipped. The events go into the allocation of `events`, a vector kept from an earlier input
/// (see [`recycle`]).
pub(crate) fn parse_ndjson_into<'a>(
    input: &'a [u8],
    receipt: Receipt,
    events: Vec<Event<'a>>,
) -> Parsed<'a> {
    let mut parsed = Parsed {
        events,
        rejected: Vec::new(),
    };
    parsed.events.clear();
    // One event per line, nearly always: growing the vector would copy every event parsed so far.
    parsed
        .events
        .reserve(memchr::memchr_iter(b'\n', input).count() + 1);
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', input).chain([input.len()]) {
        let line = without_bom(input[start..end].trim_ascii());
        start = end + 1;
        if !line.is_empty() {
            parse_value_bytes(line, receipt, &mut parsed);
        }
    }
    parsed
}

/// The allocation of `events`, emptied, for events borrowing from another input. A chunk's event
/// vector is tens of megabytes: allocated anew for each chunk, the allocator maps fresh pages every
/// time, and the kernel faults and zeroes them all again.
pub(crate) fn recycle<'b>(mut events: Vec<Event<'_>>) -> Vec<Event<'b>> {
    events.clear();
    // An empty vector mapped to a type of the same size and alignment keeps its allocation: the
    // standard library collects in place (which it does not promise; a test checks that it does).
    // No element is ever mapped.
    events.into_iter().map(|_| unreachable!()).collect()
}

/// Parses one message body (an SQS record, say): one event object or a JSON array of events.
pub(crate) fn parse_message(body: &[u8], receipt: Receipt) -> Parsed<'_> {
    let mut parsed = Parsed::default();
    let body = without_bom(body.trim_ascii());
    if body.is_empty() {
        parsed.reject(body, "empty message", receipt.at);
    } else {
        parse_value_bytes(body, receipt, &mut parsed);
    }
    parsed
}

/// Editors on some systems start a UTF-8 file with a byte-order mark; it is not part of the JSON.
/// Stripped at the start of every line, so files joined end to end keep every first event too.
fn without_bom(line: &[u8]) -> &[u8] {
    line.strip_prefix(b"\xEF\xBB\xBF")
        .map_or(line, <[u8]>::trim_ascii_start)
}

fn parse_value_bytes<'a>(raw: &'a [u8], receipt: Receipt, out: &mut Parsed<'a>) {
    if raw.first() == Some(&b'[') {
        match serde_json::from_slice::<Vec<&RawValue>>(raw) {
            Ok(items) => {
                for item in items {
                    validate_one(item.get().as_bytes(), receipt, out);
                }
            }
            Err(e) => out.reject(raw, format!("not JSON: {e}"), receipt.at),
        }
    } else {
        validate_one(raw, receipt, out);
    }
}

fn too_large(len: usize) -> String {
    format!("event is {len} bytes, over the limit of {MAX_EVENT_BYTES} bytes")
}

fn validate_one<'a>(raw: &'a [u8], receipt: Receipt, out: &mut Parsed<'a>) {
    let received_at = receipt.at;
    if raw.len() > MAX_EVENT_BYTES {
        return out.reject(raw, too_large(raw.len()), received_at);
    }
    // UTF-8 is checked once for the whole line (with SIMD: std's check was 2% of ingest), so the
    // parser (reading a `str`) need not check each string again; an invalid line takes the error
    // path below, which names the fault.
    // The fields are read in place and lent to the checks: moved by value, the few hundred bytes
    // of slots were copied several times per event.
    let mut fields = RawObject::new();
    let text = match simdutf8::basic::from_utf8(raw) {
        Ok(text) if fields.read(text) => text,
        _ => {
            let reason = match serde_json::from_slice::<&RawValue>(raw) {
                Ok(value) => format!("not a JSON object (found {})", kind(value.get())),
                Err(e) => format!("not JSON: {e}"),
            };
            return out.reject(raw, reason, received_at);
        }
    };
    if let Err(reason) = event_from_fields(text, &fields, receipt, &mut out.events) {
        out.reject(raw, reason, received_at);
    }
}

/// A JSON object's fields borrowed from the input, each value still its raw JSON text: events are
/// read without building a `serde_json::Value` tree (the ingest hot path). A key given twice is
/// refused (JSON leaves it undefined, and readers disagree on which value wins).
struct RawObject<'a> {
    /// The contract's fields, by [`slot`].
    known: [Option<&'a str>; SLOTS],
    /// Every other field, in input order; inline up to four, so the usual event allocates nothing here.
    others: smallvec::SmallVec<[(Cow<'a, str>, &'a str); 4]>,
    /// The first key of the contract given twice.
    repeated: Option<Cow<'a, str>>,
    /// Read by [`flat_object`], which takes no string with an escape: each quoted value is its own text.
    unescaped: bool,
}

impl<'a> RawObject<'a> {
    fn new() -> Self {
        RawObject {
            known: [None; SLOTS],
            others: smallvec::SmallVec::new(),
            repeated: None,
            unescaped: false,
        }
    }

    /// Reads the object `text` into these empty fields; false when it is not a JSON object. The
    /// common flat shape is read by [`flat_object`] (several times faster); serde_json reads
    /// everything else.
    fn read(&mut self, text: &'a str) -> bool {
        if flat_object::members(text, |k, v| self.add(Cow::Borrowed(k), v)) {
            self.unescaped = true;
            return true;
        }
        match serde_json::from_str::<RawObject>(text) {
            Ok(fields) => {
                *self = fields;
                true
            }
            Err(_) => false,
        }
    }

    fn add(&mut self, key: Cow<'a, str>, value: &'a str) {
        match slot(&key) {
            Some(i) => {
                if self.known[i].replace(value).is_some() && self.repeated.is_none() {
                    self.repeated = Some(key);
                }
            }
            None => self.others.push((key, value)),
        }
    }
}

/// A string borrowed from the input when it has no escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de> Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = RawObject::new();
                while let Some((Text(k), v)) = map.next_entry::<Text<'de>, &'de RawValue>()? {
                    fields.add(k, v.get());
                }
                Ok(fields)
            }
        }
        d.deserialize_map(Fields)
    }
}

/// What a raw JSON value is, for messages.
fn kind(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        Some(b'"') => "a string",
        Some(b'[') => "an array",
        Some(b'{') => "an object",
        _ => "a number",
    }
}

fn is_null(v: Option<&str>) -> bool {
    v.is_none_or(|v| v == "null")
}

/// The value as a string, or why not. `unescaped`: the reader has seen that no string holds an escape.
fn text<'a>(name: &str, raw: &'a str, unescaped: bool) -> Result<Cow<'a, str>, String> {
    // The JSON has been checked already: a quoted value without escapes is its own text.
    if raw.len() >= 2 && raw.starts_with('"') && (unescaped || !raw.contains('\\')) {
        return Ok(Cow::Borrowed(&raw[1..raw.len() - 1]));
    }
    match serde_json::from_str::<Text>(raw) {
        Ok(Text(s)) => Ok(s),
        Err(_) => Err(format!(
            "field `{name}` must be a string, got {}",
            kind(raw)
        )),
    }
}

fn required<'a>(v: Option<&'a str>, name: &str, unescaped: bool) -> Result<Cow<'a, str>, String> {
    let v = v
        .filter(|v| !is_null(Some(v)))
        .ok_or_else(|| format!("missing required field `{name}`"))?;
    let s = text(name, v, unescaped)?;
    // What `trim().is_empty()` says, deciding at the first character (an id's first, as a rule).
    if s.chars().all(char::is_whitespace) {
        return Err(format!("required field `{name}` is empty"));
    }
    Ok(s)
}

fn optional_string<'a>(
    v: Option<&'a str>,
    name: &str,
    unescaped: bool,
) -> Result<Option<Cow<'a, str>>, String> {
    match v {
        v if is_null(v) => Ok(None),
        Some(v) => {
            let s = text(name, v, unescaped)?;
            Ok((!s.is_empty()).then_some(s))
        }
        None => Ok(None),
    }
}

fn number(raw: &str) -> Option<serde_json::Number> {
    serde_json::from_str(raw).ok()
}

/// Prices arrive as JSON numbers or decimal strings. A JSON number is read through its shortest
/// round-trip text, which equals what the producer wrote for up to 15 significant digits;
/// producers needing more send a string.
fn price(v: Option<&str>, unescaped: bool) -> Result<Option<Decimal>, String> {
    let text = match v {
        v if is_null(v) => return Ok(None),
        Some(v) if v.starts_with('"') => text("price", v, unescaped)?.into_owned(),
        Some(v) => match number(v) {
            Some(n) => n.to_string(),
            None => {
                return Err(format!(
                    "field `price` must be a decimal number, got {}",
                    kind(v)
                ))
            }
        },
        None => return Ok(None),
    };
    let parsed = text
        .trim()
        .parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(text.trim()))
        .map_err(|_| format!("field `price` must be a decimal number, got {text:?}"))?;
    let parsed = parsed.normalize();
    if parsed.scale() > PRICE_SCALE {
        return Err(format!(
            "field `price` has more than {PRICE_SCALE} decimal places: {text}"
        ));
    }
    if parsed.abs() > Decimal::from(PRICE_MAX_ABS) {
        return Err(format!("field `price` is out of range: {text}"));
    }
    Ok(Some(parsed))
}

fn quantity(v: Option<&str>) -> Result<Option<i64>, String> {
    match v {
        v if is_null(v) => Ok(None),
        // The JSON is checked already: digits alone that fit read as serde_json reads them (signs
        // stay with serde_json, which reads `-0` as a float).
        Some(v) if v.len() <= 18 && v.bytes().all(|b| b.is_ascii_digit()) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("field `quantity` must be an integer, got {v}")),
        Some(v) => match number(v) {
            Some(n) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| format!("field `quantity` must be an integer, got {n}")),
            None => Err(format!(
                "field `quantity` must be an integer, got {}",
                kind(v)
            )),
        },
        None => Ok(None),
    }
}

/// Slots of the contract's fields: event_id, event_type, occurred_at, the string fields, price,
/// quantity.
const SLOTS: usize = 3 + STRING_FIELDS.len() + 2;

fn slot(name: &str) -> Option<usize> {
    // By length and first byte, then one comparison: a key is compared with one field's name,
    // not with each in turn (this runs for every member of every event).
    let s = |i: usize| 3 + i;
    let (field, slot) = match (name.len(), name.as_bytes().first()) {
        (5, _) => ("price", SLOTS - 2),
        (6, _) => ("device", s(6)),
        (7, Some(b'u')) => ("user_id", s(0)),
        (7, Some(b's')) => ("service", s(3)),
        (7, Some(b'c')) => ("country", s(4)),
        (7, Some(b'b')) => ("browser", s(5)),
        (7, Some(b'i')) => ("item_id", s(7)),
        (8, Some(b'e')) => ("event_id", 0),
        (8, Some(b'q')) => ("quantity", SLOTS - 1),
        (8, Some(b'c')) => ("currency", s(9)),
        (10, Some(b'e')) => ("event_type", 1),
        (10, Some(b's')) => ("session_id", s(1)),
        (10, Some(b'c')) => ("content_id", s(8)),
        (11, _) => ("occurred_at", 2),
        (14, _) => ("correlation_id", s(2)),
        _ => return None,
    };
    same_bytes(name.as_bytes(), field.as_bytes()).then_some(slot)
}

/// Two texts of the same length of 4 to 16 bytes are equal: two overlapping integer comparisons
/// at each end rather than a call to `memcmp`.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    debug_assert!(n == b.len() && (4..=16).contains(&n));
    let word8 = |x: &[u8], at: usize| u64::from_le_bytes(x[at..at + 8].try_into().expect("8"));
    let word4 = |x: &[u8], at: usize| u32::from_le_bytes(x[at..at + 4].try_into().expect("4"));
    if n >= 8 {
        word8(a, 0) == word8(b, 0) && word8(a, n - 8) == word8(b, n - 8)
    } else {
        word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4)
    }
}

/// The only unknown member as it lies in `text`, when it is already compact JSON: `"key":value`
/// with no space around the colon and no escape in the key.
fn lone_member<'a>(
    text: &'a str,
    others: &[(Cow<'a, str>, &'a str)],
    unescaped: bool,
) -> Option<&'a str> {
    let [(Cow::Borrowed(key), value)] = others else {
        return None;
    };
    if !unescaped {
        return None;
    }
    // Both are slices of `text`; the member runs from the quote before the key to the value's end.
    let base = text.as_ptr() as usize;
    let start = (key.as_ptr() as usize).checked_sub(base)?.checked_sub(1)?;
    let end = value.as_ptr() as usize - base + value.len();
    let member = text.get(start..end)?;
    (member.len() == key.len() + 3 + value.len()).then_some(member)
}

fn repeated_key(key: &str) -> String {
    format!("field `{key}` is given more than once")
}

/// Checks the fields read from the object `text` and adds their event to `events`, or says why not.
/// (Pushed here rather than returned: a returned event was copied once more on its way.)
fn event_from_fields<'a>(
    text: &'a str,
    fields: &RawObject<'a>,
    receipt: Receipt,
    events: &mut Vec<Event<'a>>,
) -> Result<(), String> {
    let received_at = receipt.at;
    let RawObject {
        known,
        others,
        repeated,
        unescaped,
    } = fields;
    let unescaped = *unescaped;
    if let Some(key) = repeated {
        return Err(repeated_key(key));
    }
    let event_id = required(known[0], "event_id", unescaped)?;
    let event_type = required(known[1], "event_type", unescaped)?;
    let occurred_text = required(known[2], "occurred_at", unescaped)?;
    let occurred_at = rfc3339::parse(&occurred_text).map_err(|e| {
        format!("field `occurred_at` is not an RFC 3339 time ({e}): {occurred_text:?}")
    })?;
    // Reasons never quote the receipt time: a redelivered reject must read the same, so its
    // quarantine file is overwritten rather than written again.
    if occurred_at > receipt.newest {
        return Err(format!(
            "field `occurred_at` is more than 5 minutes after the event was received: {occurred_text}"
        ));
    }
    if occurred_at < receipt.oldest {
        return Err(format!(
            "field `occurred_at` is more than {} days before the event was received (the horizon, TALLY_MAX_EVENT_AGE_DAYS): {occurred_text}",
            receipt.max_age_days
        ));
    }
    let mut strings: [Option<Cow<str>>; 10] = Default::default();
    for (i, (slot, name)) in strings.iter_mut().zip(STRING_FIELDS).enumerate() {
        *slot = optional_string(known[3 + i], name, unescaped)?;
    }
    let price = price(known[SLOTS - 2], unescaped)?;
    let quantity = quantity(known[SLOTS - 1])?;
    // Unknown fields keep their JSON text as sent, in key order.
    let attributes = if others.is_empty() {
        None
    } else if let Some(member) = lone_member(text, others, unescaped) {
        Some(Attributes(Cow::Borrowed(member)))
    } else {
        // One unknown field (spaced or escaped, so not its own text) needs no sorting, and no
        // vector to sort in.
        let one: [&(Cow<str>, &str); 1];
        let mut many: Vec<&(Cow<str>, &str)>;
        let sorted: &[&(Cow<str>, &str)] = if let [only] = others.as_slice() {
            one = [only];
            &one
        } else {
            many = others.iter().collect();
            many.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            if many.windows(2).any(|w| w[0].0 == w[1].0) {
                // The reason names the first key, in input order, seen a second time.
                let mut seen = std::collections::HashSet::new();
                let key = others
                    .iter()
                    .find(|(k, _)| !seen.insert(k))
                    .expect("a repeat");
                return Err(repeated_key(&key.0));
            }
            &many
        };
        // Compact JSON in key order, values as sent: what serde_json writes for such a map.
        // Built as a `String` from `str` parts: no second UTF-8 check of the result.
        let mut json =
            String::with_capacity(sorted.iter().map(|(k, v)| k.len() + v.len() + 4).sum());
        for (i, (k, v)) in sorted.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            if unescaped {
                // The reader saw no escape and no control character: the key is its own JSON text.
                json.push('"');
                json.push_str(k);
                json.push('"');
            } else {
                json.push_str(&serde_json::to_string(k).expect("a string is JSON"));
            }
            json.push(':');
            json.push_str(v);
        }
        Some(Attributes(Cow::Owned(json)))
    };
    events.push(Event {
        event_id,
        event_type,
        occurred_at,
        received_at,
        strings,
        price,
        quantity,
        attributes,
        text,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::Value;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 8, 23, 12, 0, 0).unwrap()
    }

    fn one(line: &str) -> Result<Event<'_>, String> {
        let mut p = parse_ndjson(line.as_bytes(), now().into());
        match (p.events.pop(), p.rejected.pop()) {
            (Some(e), None) => Ok(e),
            (None, Some(r)) => Err(r.reason),
            other => panic!("expected one outcome, got {other:?}"),
        }
    }

    #[test]
    fn accepts_a_full_event_and_keeps_unknown_fields() {
        let e = one(r#"{"event_id":"e1","event_type":"purchase","occurred_at":"2026-08-23T20:30:00+09:00","user_id":"u1","country":"KR","price":"12.50","quantity":2,"coupon":"SUMMER","nested":{"a":1}}"#).unwrap();
        assert_eq!(
            e.occurred_at,
            Utc.with_ymd_and_hms(2026, 8, 23, 11, 30, 0).unwrap()
        );
        assert_eq!(e.field("user_id"), Some("u1"));
        assert_eq!(e.field("country"), Some("KR"));
        assert_eq!(e.price, Some("12.5".parse().unwrap()));
        assert_eq!(e.quantity, Some(2));
        let attrs: Value = serde_json::from_str(&e.attributes.as_ref().unwrap().to_json()).unwrap();
        assert_eq!(
            attrs,
            serde_json::json!({"coupon":"SUMMER","nested":{"a":1}})
        );
    }

    #[test]
    fn whitespace_and_escapes_read_as_json_says() {
        let e = one(
            r#"{ "event_id" : "e\"1" , "event_type":"a\u00e9", "occurred_at" : "2026-08-23T00:00:00Z", "price" : null , "quantity" : 3 , "user_id" : "u2", "x" : [ 1 , 2 ] }"#,
        )
        .unwrap();
        assert_eq!(e.event_id, "e\"1");
        assert_eq!(e.event_type, "a\u{e9}");
        assert_eq!(e.price, None);
        assert_eq!(e.quantity, Some(3));
        assert_eq!(e.field("user_id"), Some("u2"));
        let attrs: Value = serde_json::from_str(&e.attributes.as_ref().unwrap().to_json()).unwrap();
        assert_eq!(attrs, serde_json::json!({"x": [1, 2]}));
    }

    #[test]
    fn attributes_are_compact_json_in_key_order_whatever_the_spacing() {
        let head = r#""event_id":"e","event_type":"t","occurred_at":"2026-08-23T00:00:00Z""#;
        for (members, json) in [
            // A lone member as sent is its own text in the line; the rest are built.
            (r#","page":"/x""#, r#"{"page":"/x"}"#),
            (r#","page" : "/x" "#, r#"{"page":"/x"}"#),
            (r#","n":1.50"#, r#"{"n":1.50}"#),
            (r#","b":true,"a":null"#, r#"{"a":null,"b":true}"#),
            (r#","p\u0061ge":"/x""#, r#"{"page":"/x"}"#),
            (r#","nested":{"a" : 1}"#, r#"{"nested":{"a" : 1}}"#),
        ] {
            for line in [
                format!("{{{head}{members}}}"),
                format!("{{{},{head}}}", &members[1..]),
            ] {
                let e = one(&line).unwrap();
                assert_eq!(
                    e.attributes.map(|a| a.to_json()).as_deref(),
                    Some(json),
                    "{line}"
                );
            }
        }
        assert_eq!(one(&format!("{{{head}}}")).unwrap().attributes, None);
    }

    #[test]
    fn a_recycled_event_vector_keeps_its_allocation_and_no_event() {
        let line = br#"{"event_id":"e","event_type":"t","occurred_at":"2026-08-23T00:00:00Z"}"#;
        let first = parse_ndjson_into(line, now().into(), Vec::with_capacity(1000));
        assert_eq!(first.events.len(), 1);
        let kept = recycle(first.events);
        assert!(kept.is_empty() && kept.capacity() >= 1000);
        let again = parse_ndjson_into(line, now().into(), kept);
        assert_eq!(again.events.len(), 1);
        assert!(again.events.capacity() >= 1000);
    }

    #[test]
    fn an_escape_in_an_otherwise_flat_line_is_decoded() {
        // No nesting, but escapes: the fast reader declines the line, and every string (the price's
        // too) reads as its decoded text, not as the raw JSON between the quotes.
        let e = one(
            r#"{"event_id":"e\"2","event_type":"sign-in","occurred_at":"2026-08-23T00:00:00Z","user_id":"a\\b","country":"\u004BR","price":"1\u002E50"}"#,
        )
        .unwrap();
        assert_eq!(e.event_id, "e\"2");
        assert_eq!(e.field("user_id"), Some("a\\b"));
        assert_eq!(e.field("country"), Some("KR"));
        assert_eq!(e.price, Some(Decimal::new(15, 1)));
    }

    #[test]
    fn a_byte_order_mark_starts_no_event_off() {
        let line = r#"{"event_id":"e1","event_type":"x","occurred_at":"2026-08-23T00:00:00Z"}"#;
        let input = format!("\u{feff}{line}\n\u{feff}{}\n", line.replace("e1", "e2"));
        let p = parse_ndjson(input.as_bytes(), now().into());
        assert_eq!(p.rejected, vec![]);
        assert_eq!(p.events.len(), 2);
        let body = format!("\u{feff}{line}");
        assert_eq!(parse_message(body.as_bytes(), now().into()).events.len(), 1);
    }

    #[test]
    fn the_horizon_for_old_events_is_configurable() {
        let line = r#"{"event_id":"e","event_type":"x","occurred_at":"2026-07-01T00:00:00Z"}"#;
        let p = parse_ndjson(line.as_bytes(), Receipt::new(now(), 30));
        assert!(p.rejected[0].reason.contains("more than 30 days before"));
        let p = parse_ndjson(line.as_bytes(), Receipt::new(now(), 60));
        assert_eq!(p.events.len(), 1);
    }

    #[test]
    fn a_reject_reads_the_same_whenever_it_is_received() {
        let line = r#"{"event_id":"e","event_type":"x","occurred_at":"2999-01-01T00:00:00Z"}"#;
        let first = parse_ndjson(line.as_bytes(), now().into());
        let later = parse_ndjson(line.as_bytes(), (now() + Duration::hours(5)).into());
        assert_eq!(first.rejected[0].reason, later.rejected[0].reason);
    }

    #[test]
    fn json_number_price_is_exact() {
        let e = one(r#"{"event_id":"e","event_type":"purchase","occurred_at":"2026-08-23T00:00:00Z","price":0.1}"#).unwrap();
        assert_eq!(e.price, Some("0.1".parse().unwrap()));
        let e = one(r#"{"event_id":"e","event_type":"purchase","occurred_at":"2026-08-23T00:00:00Z","price":19.99}"#).unwrap();
        assert_eq!(e.price, Some("19.99".parse().unwrap()));
    }

    #[test]
    fn rejects_each_contract_violation_with_a_reason() {
        let cases = [
            ("not json", "not JSON"),
            ("[1]", "not a JSON object (found a number)"),
            (
                r#"{"event_type":"x","occurred_at":"2026-08-23T00:00:00Z"}"#,
                "missing required field `event_id`",
            ),
            (
                r#"{"event_id":"","event_type":"x","occurred_at":"2026-08-23T00:00:00Z"}"#,
                "required field `event_id` is empty",
            ),
            (
                r#"{"event_id":"e","event_type":"x","occurred_at":"yesterday"}"#,
                "not an RFC 3339 time",
            ),
            (
                r#"{"event_id":"e","event_type":"x","occurred_at":"2026-08-23T12:06:00Z"}"#,
                "more than 5 minutes after the event was received: 2026-08-23T12:06:00Z",
            ),
            (
                r#"{"event_id":"e","event_type":"x","occurred_at":"0001-01-01T00:00:00Z"}"#,
                "more than 3650 days before the event was received",
            ),
            (
                r#"{"event_id":"e","event_type":"x","occurred_at":"2026-08-23T00:00:00Z","user_id":"a","user_id":"b"}"#,
                "field `user_id` is given more than once",
            ),
            (
                r#"{"event_id":"e","event_type":"x","occurred_at":"2026-08-23T00:00:00Z","coupon":1,"coupon":2}"#,
                "field `coupon` is given more than once",
            ),
            (
                r#"{"event_id":"e","event_type":"x","occurred_at":"2026-08-23T00:00:00Z","price":"abc"}"#,
                "`price` must be a decimal number",
            ),
            (
                r#"{"event_id":"e","event_type":"x","occurred_at":"2026-08-23T00:00:00Z","quantity":2.5}"#,
                "`quantity` must be an integer, got 2.5",
            ),
            (
                r#"{"event_id":"e","event_type":"x","occurred_at":"2026-08-23T00:00:00Z","user_id":7}"#,
                "`user_id` must be a string, got a number",
            ),
            (
                r#"{"event_id":"e","event_type":"x","occurred_at":"2026-08-23T00:00:00Z","price":"1.0000001"}"#,
                "more than 6 decimal places",
            ),
            (
                r#"{"event_id":5,"event_type":"x","occurred_at":"2026-08-23T00:00:00Z"}"#,
                "`event_id` must be a string",
            ),
        ];
        for (line, want) in cases {
            let reason = one(line).expect_err(line);
            assert!(
                reason.contains(want),
                "{line}: got {reason:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn each_field_name_has_its_slot_and_no_other_name_has_one() {
        let names = ["event_id", "event_type", "occurred_at"]
            .into_iter()
            .chain(STRING_FIELDS)
            .chain(["price", "quantity"]);
        for (i, name) in names.enumerate() {
            assert_eq!(slot(name), Some(i), "{name}");
            // Same length and first byte, the last byte off: not a field.
            let mut near = name.to_string().into_bytes();
            *near.last_mut().unwrap() ^= 1;
            assert_eq!(slot(std::str::from_utf8(&near).unwrap()), None, "{name}");
        }
        let near = [
            "",
            "e",
            "event_ix",
            "Event_id",
            "event_ids",
            "user_ix",
            "price ",
            "pricE",
        ];
        for name in near
            .into_iter()
            .chain(["coupon", "device_id", "quantity1", "service2"])
        {
            assert_eq!(slot(name), None, "{name:?}");
        }
    }

    #[test]
    fn a_quantity_reads_as_serde_json_reads_it() {
        let reference = |v: &str| {
            let n: serde_json::Number = serde_json::from_str(v).unwrap();
            n.as_i64().ok_or(())
        };
        for v in [
            "0",
            "1",
            "3",
            "10",
            "999999999999999999",
            "9223372036854775807",
            "-0",
            "-5",
            "12e0",
            "2.0",
        ] {
            assert_eq!(
                quantity(Some(v)).map_err(|_| ()),
                reference(v).map(Some),
                "{v}"
            );
        }
    }

    #[test]
    fn within_skew_is_accepted() {
        assert!(
            one(r#"{"event_id":"e","event_type":"x","occurred_at":"2026-08-23T12:04:59Z"}"#)
                .is_ok()
        );
    }

    #[test]
    fn oversized_line_is_rejected_and_the_rest_flows() {
        let big = format!(
            r#"{{"event_id":"big","event_type":"x","occurred_at":"2026-08-23T00:00:00Z","blob":"{}"}}"#,
            "a".repeat(MAX_EVENT_BYTES)
        );
        let input = format!(
            "{big}\n{}\n",
            r#"{"event_id":"ok","event_type":"x","occurred_at":"2026-08-23T00:00:00Z"}"#
        );
        let p = parse_ndjson(input.as_bytes(), now().into());
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.rejected.len(), 1);
        assert!(p.rejected[0].reason.contains("over the limit"));
        assert_eq!(p.rejected[0].raw, big.as_bytes());
    }

    #[test]
    fn lines_split_on_newlines_only_and_invalid_utf8_is_quarantined_as_sent() {
        let ok = |id: &str| {
            format!(
                r#"{{"event_id":"{id}","event_type":"x","occurred_at":"2026-08-23T00:00:00Z"}}"#
            )
        };
        let mut input = Vec::new();
        input.extend_from_slice(format!("{}\r\n\n  \n", ok("a")).as_bytes());
        // A Latin-1 "é" inside a string: not UTF-8, so not JSON.
        let bad = b"{\"event_id\":\"caf\xe9\",\"event_type\":\"x\",\"occurred_at\":\"2026-08-23T00:00:00Z\"}";
        input.extend_from_slice(bad);
        input.extend_from_slice(format!("\n{}", ok("b")).as_bytes()); // no final newline
        let p = parse_ndjson(&input, now().into());
        let ids: Vec<_> = p.events.iter().map(|e| e.event_id.as_ref()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(p.rejected.len(), 1);
        assert_eq!(p.rejected[0].raw, bad);
        assert!(
            p.rejected[0]
                .reason
                .starts_with("not JSON: invalid unicode"),
            "{}",
            p.rejected[0].reason
        );
    }

    #[test]
    fn a_message_may_hold_an_array_with_bad_elements() {
        let body = br#"[{"event_id":"a","event_type":"x","occurred_at":"2026-08-23T00:00:00Z"}, 3, {"event_id":"b"}]"#;
        let p = parse_message(body, now().into());
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.rejected.len(), 2);
        assert_eq!(p.rejected[0].raw, b"3");
    }
}
