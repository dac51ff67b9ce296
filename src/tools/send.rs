//! Producer side: sends NDJSON events to SQS, several events per message.
//!
//! A message body is a JSON array of events (the ingest function also takes a single object, or an
//! SNS notification wrapping either). Messages are packed up to [`MAX_MESSAGE_BYTES`] and sent ten
//! at a time with `SendMessageBatch`; entries that fail are retried with backoff, here only.

use std::time::Duration;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use serde::Serialize;

/// SQS allows 256 KiB per message and per batch; keep a margin for the array brackets and commas.
pub const MAX_MESSAGE_BYTES: usize = 250 * 1024;
const MAX_BATCH_ENTRIES: usize = 10;
const MAX_ATTEMPTS: u32 = 6;

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct SendSummary {
    pub events: usize,
    pub messages: usize,
    pub requests: usize,
    pub retried_entries: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("sqs: {0}")]
    Sqs(String),
    #[error("{0}")]
    TooLarge(String),
}

/// Packs NDJSON lines into message bodies. Lines that are not JSON travel alone, so that the ingest
/// function quarantines them with their reason instead of losing the whole message.
pub fn pack(ndjson: &[u8]) -> Result<(Vec<String>, usize), SendError> {
    let mut bodies = Vec::new();
    let mut current = String::from("[");
    let mut events = 0;
    for line in ndjson.split(|b| *b == b'\n') {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        events += 1;
        let text = String::from_utf8_lossy(line);
        if text.len() + 2 > MAX_MESSAGE_BYTES {
            return Err(SendError::TooLarge(format!(
                "event {events} is {} bytes, over the message limit",
                text.len()
            )));
        }
        if serde_json::from_str::<serde::de::IgnoredAny>(&text).is_err() {
            bodies.push(text.into_owned());
            continue;
        }
        if current.len() + text.len() + 2 > MAX_MESSAGE_BYTES {
            current.push(']');
            bodies.push(std::mem::replace(&mut current, String::from("[")));
        }
        if current.len() > 1 {
            current.push(',');
        }
        current.push_str(&text);
    }
    if current.len() > 1 {
        current.push(']');
        bodies.push(current);
    }
    Ok((bodies, events))
}

/// Sends NDJSON events to `queue_url`.
pub async fn send_ndjson(
    client: &Client,
    queue_url: &str,
    ndjson: &[u8],
) -> Result<SendSummary, SendError> {
    let (bodies, events) = pack(ndjson)?;
    let mut summary = SendSummary {
        events,
        messages: bodies.len(),
        ..Default::default()
    };
    // Group into batches within both the entry count and the total size limit.
    let mut batches: Vec<Vec<(String, String)>> = Vec::new();
    let mut size = 0;
    for (i, body) in bodies.into_iter().enumerate() {
        let fits = batches.last().is_some_and(|b| {
            b.len() < MAX_BATCH_ENTRIES && size + body.len() <= MAX_MESSAGE_BYTES + 6 * 1024
        });
        if !fits {
            batches.push(Vec::new());
            size = 0;
        }
        size += body.len();
        batches
            .last_mut()
            .expect("pushed")
            .push((format!("m{i}"), body));
    }
    for batch in batches {
        let mut pending = batch;
        let mut attempt = 0;
        while !pending.is_empty() {
            if attempt > 0 {
                if attempt >= MAX_ATTEMPTS {
                    return Err(SendError::Sqs(format!(
                        "{} messages still failing after {MAX_ATTEMPTS} attempts",
                        pending.len()
                    )));
                }
                summary.retried_entries += pending.len();
                tokio::time::sleep(Duration::from_millis(50u64 << attempt)).await;
            }
            attempt += 1;
            let entries: Vec<SendMessageBatchRequestEntry> = pending
                .iter()
                .map(|(id, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(id)
                        .message_body(body)
                        .build()
                        .map_err(|e| SendError::Sqs(e.to_string()))
                })
                .collect::<Result<_, _>>()?;
            summary.requests += 1;
            let out = match client
                .send_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) if attempt < MAX_ATTEMPTS => {
                    tracing::warn!(error = %crate::sdk_error::error_chain(&e), "SendMessageBatch failed; retrying");
                    continue;
                }
                Err(e) => return Err(SendError::Sqs(crate::sdk_error::error_chain(&e))),
            };
            let failed: std::collections::HashSet<&str> =
                out.failed().iter().map(|f| f.id()).collect();
            pending.retain(|(id, _)| failed.contains(id.as_str()));
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_many_events_per_message_and_keeps_bad_lines_alone() {
        let mut input = String::new();
        for i in 0..3000 {
            input.push_str(&format!("{{\"event_id\":\"e{i}\",\"event_type\":\"x\",\"occurred_at\":\"2026-08-23T00:00:00Z\",\"pad\":\"{}\"}}\n", "p".repeat(100)));
        }
        input.push_str("not json\n");
        let (bodies, events) = pack(input.as_bytes()).unwrap();
        assert_eq!(events, 3001);
        assert!(
            bodies.len() >= 2 && bodies.len() < 10,
            "{} messages",
            bodies.len()
        );
        assert!(bodies.iter().all(|b| b.len() <= MAX_MESSAGE_BYTES));
        assert_eq!(bodies.iter().filter(|b| *b == "not json").count(), 1);
        let total: usize = bodies
            .iter()
            .filter(|b| b.starts_with('['))
            .map(|b| {
                serde_json::from_str::<Vec<serde_json::Value>>(b)
                    .unwrap()
                    .len()
            })
            .sum();
        assert_eq!(total, 3000);
    }
}
