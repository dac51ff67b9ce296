//! The catalogue of hostile input: each case, fed to `tally ingest`'s code path on a real lake with
//! a good event after it, has one expected outcome, and the good event always flows. The table in
//! docs/reliability.md lists the same cases by name (checked here).

use chrono::{DateTime, TimeZone, Utc};
use tally::ingest::{self, IngestError};
use tally::lake::Storage;

fn received() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 8, 25, 0, 0, 0).unwrap()
}

fn event(id: &str, extra: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","event_type":"purchase","occurred_at":"2026-08-24T10:00:00Z"{extra}}}"#
    )
}

/// What a case must do.
enum Outcome {
    /// Events accepted and lines quarantined, each quarantined line's reason containing this text.
    Flows {
        accepted: usize,
        rejected: usize,
        reason: &'static str,
    },
    /// The whole input refused with an error containing this text; nothing written.
    Refused(&'static str),
}

use Outcome::{Flows, Refused};

fn cases() -> Vec<(&'static str, Vec<u8>, Outcome)> {
    let good = event("good", "");
    let with_good = |bad: Vec<u8>| {
        let mut input = bad;
        input.push(b'\n');
        input.extend_from_slice(good.as_bytes());
        input
    };
    let deep = |n: usize| with_good(format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes());
    let mut invalid_utf8 = event("bad\u{e9}", "").into_bytes();
    let at = invalid_utf8.iter().position(|b| *b == 0xc3).unwrap();
    invalid_utf8.splice(at..at + 2, [0xe9]);
    vec![
        (
            "nested JSON 100,000 deep",
            deep(100_000),
            Flows {
                accepted: 1,
                rejected: 1,
                reason: "over the limit of 65536 bytes",
            },
        ),
        (
            "nested JSON 30,000 deep, under the size limit",
            deep(30_000),
            Flows {
                accepted: 1,
                rejected: 1,
                reason: "not a JSON object (found an array)",
            },
        ),
        (
            "an event holding an object 10,000 deep",
            with_good(
                event(
                    "deep",
                    &format!(
                        r#","nested":{}1{}"#,
                        r#"{"a":"#.repeat(10_000),
                        "}".repeat(10_000)
                    ),
                )
                .into_bytes(),
            ),
            Flows {
                accepted: 2,
                rejected: 0,
                reason: "",
            },
        ),
        (
            "a 10 MB line",
            with_good(event("big", &format!(r#","blob":"{}""#, "x".repeat(10 << 20))).into_bytes()),
            Flows {
                accepted: 1,
                rejected: 1,
                reason: "over the limit of 65536 bytes",
            },
        ),
        (
            "invalid UTF-8",
            with_good(invalid_utf8),
            Flows {
                accepted: 1,
                rejected: 1,
                reason: "not JSON: invalid unicode",
            },
        ),
        (
            "a UTF-8 byte-order mark",
            with_good(format!("\u{feff}{}", event("bom", "")).into_bytes()),
            Flows {
                accepted: 2,
                rejected: 0,
                reason: "",
            },
        ),
        (
            "CRLF line ends",
            format!("{}\r\n{good}\r\n", event("crlf", "")).into_bytes(),
            Flows {
                accepted: 2,
                rejected: 0,
                reason: "",
            },
        ),
        (
            "a duplicate key",
            with_good(event("dup", r#","price":"1","price":"1000""#).into_bytes()),
            Flows {
                accepted: 1,
                rejected: 1,
                reason: "field `price` is given more than once",
            },
        ),
        (
            "NaN as a price",
            with_good(event("nan", r#","price":NaN"#).into_bytes()),
            Flows {
                accepted: 1,
                rejected: 1,
                reason: "not JSON",
            },
        ),
        (
            "1e999 as a price",
            with_good(event("huge", r#","price":1e999"#).into_bytes()),
            Flows {
                accepted: 1,
                rejected: 1,
                reason: "`price` must be a decimal number",
            },
        ),
        (
            "a negative price (a refund)",
            with_good(event("refund", r#","price":"-12.50""#).into_bytes()),
            Flows {
                accepted: 2,
                rejected: 0,
                reason: "",
            },
        ),
        (
            "the year 0001",
            with_good(
                event("old", "")
                    .replace("2026-08-24", "0001-01-01")
                    .into_bytes(),
            ),
            Flows {
                accepted: 1,
                rejected: 1,
                reason: "more than 3650 days before the event was received",
            },
        ),
        (
            "the year 9999",
            with_good(
                event("future", "")
                    .replace("2026-08-24", "9999-12-31")
                    .into_bytes(),
            ),
            Flows {
                accepted: 1,
                rejected: 1,
                reason: "more than 5 minutes after the event was received",
            },
        ),
        (
            "a leap second",
            with_good(
                event("leap", "")
                    .replace("10:00:00Z", "23:59:60Z")
                    .into_bytes(),
            ),
            Flows {
                accepted: 2,
                rejected: 0,
                reason: "",
            },
        ),
        (
            "an empty file",
            Vec::new(),
            Flows {
                accepted: 0,
                rejected: 0,
                reason: "",
            },
        ),
        (
            "a gzip file passed as NDJSON",
            vec![
                0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, b'\n', 0xff,
            ],
            Refused("gzip-compressed, not NDJSON: decompress it first"),
        ),
        (
            "a zstd file passed as NDJSON",
            vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58, b'\n'],
            Refused("zstd-compressed"),
        ),
    ]
}

#[tokio::test]
async fn every_hostile_input_has_its_expected_outcome_and_the_rest_flows() {
    for (name, input, outcome) in cases() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path()).unwrap();
        let result = ingest::ingest_ndjson(&storage, &input[..], received()).await;
        match (outcome, result) {
            (
                Flows {
                    accepted,
                    rejected,
                    reason,
                },
                Ok(summary),
            ) => {
                assert_eq!(
                    (summary.accepted, summary.rejected),
                    (accepted, rejected),
                    "{name}"
                );
                let mut reasons = Vec::new();
                for path in storage.list("quarantine").await.unwrap() {
                    let bytes = storage.get_bytes(&path).await.unwrap().unwrap();
                    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                        let record: serde_json::Value = serde_json::from_slice(line).unwrap();
                        reasons.push(record["reason"].as_str().unwrap().to_string());
                    }
                }
                assert_eq!(reasons.len(), rejected, "{name}: every reject quarantined");
                for r in &reasons {
                    assert!(r.contains(reason), "{name}: reason {r:?}, want {reason:?}");
                }
                let stored: usize = stored_events(&storage).await;
                assert_eq!(stored, accepted, "{name}: accepted events are in the lake");
            }
            (Refused(want), Err(e @ IngestError::Compressed(_))) => {
                assert!(e.to_string().contains(want), "{name}: {e}");
                assert!(
                    storage.list("").await.unwrap().is_empty(),
                    "{name}: nothing written"
                );
            }
            (_, other) => panic!("{name}: unexpected {other:?}"),
        }
    }
}

async fn stored_events(storage: &Storage) -> usize {
    let mut rows = 0;
    for hour in storage.hours_with_data().await.unwrap() {
        for batch in storage.read_hour(hour).await.unwrap() {
            rows += batch.num_rows();
        }
    }
    rows
}

#[test]
fn the_catalogue_in_the_docs_lists_every_case() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/reliability.md"))
        .unwrap();
    for (name, _, _) in cases() {
        assert!(
            doc.contains(&format!("| {name} |")),
            "docs/reliability.md lacks the case {name:?}"
        );
    }
}
