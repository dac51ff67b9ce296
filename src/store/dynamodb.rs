//! DynamoDB period store.
//!
//! Table layout (one table, on-demand):
//!
//! | attribute | type | holds |
//! | --- | --- | --- |
//! | `pk` (partition key) | S | `{metric}#{grain}#{dims}`: one series, e.g. `visitors#day#{"country":"KR"}` |
//! | `sk` (sort key) | N | period start, epoch seconds |
//! | `set_pk` (GSI `by_set` partition key) | S | `{metric}#{grain}#{dim_set}`: every group of one dimension set |
//! | `dims`, `kind`, `value` | S | the dimension values, `sum` or `distinct`, the exact value as decimal text |
//! | `sketch` | B | HLL sketch of a distinct count (at most ~8 KiB: far under the 400 KB item limit) |
//!
//! A series is one strongly consistent `Query` on `pk` with `sk BETWEEN`; `group_by` is one `Query`
//! on the `by_set` index (eventually consistent, as every index read is: used only to answer, never
//! to derive a stored row).
//! An answer's exact periods (and its meta values) are BatchGetItem requests of up to 100 keys, sent
//! at once. Meta values live under `pk = meta#{key}`, `sk = 0`; a lease under `pk = lease#{name}`,
//! `sk = 0`, with `holder` and `until_ms`, claimed by one conditional `PutItem`. Writes are `BatchWriteItem` puts
//! (idempotent overwrites); unprocessed items and keys are retried here, with backoff, and nowhere
//! else.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, PutRequest, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

use super::{Claim, Fetched, Lease, PeriodRow, PeriodStore, StoreError};
use crate::model::dims::{dim_set_key, dims_key, parse_dims_key, Dims};
use crate::model::measure::Measure;
use crate::model::period::{Grain, Period};

pub(super) const SET_INDEX: &str = "by_set";
/// BatchWriteItem takes at most 25 requests.
const BATCH: usize = 25;
/// BatchGetItem takes at most 100 keys.
const GET_BATCH: usize = 100;
/// Attempts at writing unprocessed items before giving up with an error.
const MAX_ATTEMPTS: u32 = 8;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn sdk(e: impl std::error::Error) -> StoreError {
    StoreError::Backend(format!("dynamodb: {}", crate::sdk_error::error_chain(&e)))
}

fn series_pk(metric: &str, grain: Grain, dims: &Dims) -> String {
    format!("{metric}#{grain}#{}", dims_key(dims))
}

fn set_pk(metric: &str, grain: Grain, dim_set: &str) -> String {
    format!("{metric}#{grain}#{dim_set}")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn item_of(row: &PeriodRow) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        (
            "pk".to_string(),
            s(series_pk(&row.metric, row.grain, &row.dims)),
        ),
        ("sk".to_string(), n(row.start.timestamp())),
        (
            "set_pk".to_string(),
            s(set_pk(
                &row.metric,
                row.grain,
                &dim_set_key(row.dims.keys()),
            )),
        ),
        ("metric".to_string(), s(&row.metric)),
        ("grain".to_string(), s(row.grain.as_str())),
        ("dims".to_string(), s(dims_key(&row.dims))),
    ]);
    match &row.measure {
        Measure::Additive(v) => {
            item.insert("kind".into(), s("sum"));
            item.insert("value".into(), s(v.to_string()));
        }
        Measure::Distinct { exact, sketch } => {
            item.insert("kind".into(), s("distinct"));
            item.insert("value".into(), s(exact.to_string()));
            item.insert(
                "sketch".into(),
                AttributeValue::B(Blob::new(sketch.clone())),
            );
        }
    }
    item
}

fn row_of(item: &HashMap<String, AttributeValue>) -> Result<PeriodRow, StoreError> {
    let text = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .ok_or_else(|| StoreError::Corrupt(format!("item lacks `{k}`: {item:?}")))
    };
    let start: i64 = item
        .get("sk")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("item lacks a numeric `sk`: {item:?}")))?;
    let value = text("value")?;
    let corrupt =
        |e: String| StoreError::Corrupt(format!("{}: {e}", text("pk").unwrap_or_default()));
    let measure = match text("kind")?.as_str() {
        "sum" => Measure::Additive(
            value
                .parse()
                .map_err(|e| corrupt(format!("value {value:?}: {e}")))?,
        ),
        "distinct" => Measure::Distinct {
            exact: value
                .parse()
                .map_err(|e| corrupt(format!("value {value:?}: {e}")))?,
            sketch: item
                .get("sketch")
                .and_then(|v| v.as_b().ok())
                .map(|b| b.as_ref().to_vec())
                .unwrap_or_default(),
        },
        other => return Err(corrupt(format!("unknown kind {other:?}"))),
    };
    Ok(PeriodRow {
        metric: text("metric")?,
        grain: text("grain")?.parse().map_err(corrupt)?,
        start: DateTime::from_timestamp(start, 0).ok_or_else(|| corrupt("bad start".into()))?,
        dims: parse_dims_key(&text("dims")?).map_err(|e| corrupt(e.to_string()))?,
        measure,
    })
}

/// Sends `requests` in batches of 25 through `send`, which returns the unprocessed requests of a
/// batch, and retries those with exponential backoff.
pub(super) async fn write_all<F, Fut>(
    requests: Vec<WriteRequest>,
    mut send: F,
) -> Result<(), StoreError>
where
    F: FnMut(Vec<WriteRequest>) -> Fut,
    Fut: Future<Output = Result<Vec<WriteRequest>, StoreError>>,
{
    for chunk in requests.chunks(BATCH) {
        until_processed(chunk.to_vec(), |batch| {
            let sent = send(batch);
            async move { Ok((sent.await?, Vec::<()>::new())) }
        })
        .await?;
    }
    Ok(())
}

/// Sends `pending` through `send`, which returns what the request left unprocessed and what it
/// produced, and resends the unprocessed part with exponential backoff. The one place this store
/// retries (the SDK's own retries cover throttled and failed requests as a whole).
async fn until_processed<T, R, F, Fut>(
    mut pending: Vec<T>,
    mut send: F,
) -> Result<Vec<R>, StoreError>
where
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Vec<R>), StoreError>>,
{
    let mut out = Vec::new();
    let mut attempt = 0;
    while !pending.is_empty() {
        if attempt > 0 {
            if attempt >= MAX_ATTEMPTS {
                return Err(StoreError::Backend(format!(
                    "dynamodb: {} keys or items still unprocessed after {MAX_ATTEMPTS} attempts",
                    pending.len()
                )));
            }
            let wait = Duration::from_millis(25u64 << attempt.min(6));
            tracing::warn!(
                unprocessed = pending.len(),
                attempt,
                ?wait,
                "retrying unprocessed DynamoDB keys or items"
            );
            tokio::time::sleep(wait).await;
        }
        let (rest, produced) = send(pending).await?;
        out.extend(produced);
        pending = rest;
        attempt += 1;
    }
    Ok(out)
}

type Item = HashMap<String, AttributeValue>;

fn meta_pk(key: &str) -> String {
    format!("meta#{key}")
}

fn lease_pk(name: &str) -> String {
    format!("lease#{name}")
}

/// A conditional write refused because its condition was false (a lease someone else holds).
fn is_condition_failure<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoStore {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    /// Creates the table with its index (tests; Terraform creates it on AWS).
    #[cfg(any(test, feature = "testkit"))]
    pub async fn create_table(&self) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
            Projection, ProjectionType, ScalarAttributeType,
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(backend)
        };
        let attr = |name: &str, t: ScalarAttributeType| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(t)
                .build()
                .map_err(backend)
        };
        let index = GlobalSecondaryIndex::builder()
            .index_name(SET_INDEX)
            .key_schema(key("set_pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(backend)?;
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .attribute_definitions(attr("pk", ScalarAttributeType::S)?)
            .attribute_definitions(attr("sk", ScalarAttributeType::N)?)
            .attribute_definitions(attr("set_pk", ScalarAttributeType::S)?)
            .global_secondary_indexes(index)
            .send()
            .await
            .map_err(sdk)?;
        Ok(())
    }

    /// Reads up to 100 keys with BatchGetItem, retrying unprocessed keys.
    async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        until_processed(keys, |keys| async move {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(backend)?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(sdk)?;
            let items = out
                .responses()
                .and_then(|r| r.get(&self.table))
                .cloned()
                .unwrap_or_default();
            let unprocessed = out
                .unprocessed_keys()
                .and_then(|u| u.get(&self.table))
                .map(|k| k.keys().to_vec())
                .unwrap_or_default();
            Ok((unprocessed, items))
        })
        .await
    }

    /// BatchWriteItem requests of up to 25 puts or deletes, unprocessed ones retried.
    async fn write(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        write_all(requests, |batch| async move {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, batch)
                .send()
                .await
                .map_err(sdk)?;
            Ok(out
                .unprocessed_items()
                .and_then(|m| m.get(&self.table))
                .cloned()
                .unwrap_or_default())
        })
        .await
    }

    async fn query(
        &self,
        index: Option<&str>,
        key_attr: &str,
        key: String,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<PeriodRow>, StoreError> {
        if from >= to {
            return Ok(vec![]);
        }
        let mut rows = Vec::new();
        let mut start_key = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_string))
                // A base-table read sees every completed write only when it asks to; an index read
                // cannot ask, and nothing stored is derived from one (docs/consistency.md).
                .set_consistent_read(index.is_none().then_some(true))
                .key_condition_expression("#k = :k AND sk BETWEEN :a AND :b")
                .expression_attribute_names("#k", key_attr)
                .expression_attribute_values(":k", s(key.clone()))
                .expression_attribute_values(":a", n(from.timestamp()))
                .expression_attribute_values(":b", n(to.timestamp() - 1))
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(sdk)?;
            for item in out.items() {
                rows.push(row_of(item)?);
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start_key = Some(k.clone()),
                _ => break,
            }
        }
        Ok(rows)
    }
}

#[async_trait]
impl PeriodStore for DynamoStore {
    async fn put(&self, rows: Vec<PeriodRow>) -> Result<(), StoreError> {
        // The same key twice in one BatchWriteItem is an error; the last write of a key wins, as in put order.
        let mut latest: HashMap<(String, i64), &PeriodRow> = HashMap::new();
        for r in &rows {
            latest.insert(
                (series_pk(&r.metric, r.grain, &r.dims), r.start.timestamp()),
                r,
            );
        }
        let requests: Vec<WriteRequest> = latest
            .values()
            .map(|r| {
                let put = PutRequest::builder()
                    .set_item(Some(item_of(r)))
                    .build()
                    .map_err(backend)?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<_, StoreError>>()?;
        self.write(requests).await
    }

    async fn series(
        &self,
        metric: &str,
        grain: Grain,
        dims: &Dims,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<PeriodRow>, StoreError> {
        self.query(None, "pk", series_pk(metric, grain, dims), from, to)
            .await
    }

    async fn groups(
        &self,
        metric: &str,
        grain: Grain,
        dim_set: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<PeriodRow>, StoreError> {
        self.query(
            Some(SET_INDEX),
            "set_pk",
            set_pk(metric, grain, dim_set),
            from,
            to,
        )
        .await
    }

    /// Every key in one wave: BatchGetItem requests of up to 100 keys, sent concurrently.
    async fn fetch(
        &self,
        metric: &str,
        dims: &Dims,
        periods: &[Period],
        meta: &[&str],
    ) -> Result<Fetched, StoreError> {
        let key = |pk: String, sk: i64| Item::from([("pk".into(), s(pk)), ("sk".into(), n(sk))]);
        let mut keys: Vec<Item> = periods
            .iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|p| key(series_pk(metric, p.grain, dims), p.start.timestamp()))
            .collect();
        keys.extend(
            meta.iter()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .map(|m| key(meta_pk(m), 0)),
        );
        let batches = futures::future::try_join_all(
            keys.chunks(GET_BATCH)
                .map(|chunk| self.batch_get(chunk.to_vec())),
        )
        .await?;
        let mut fetched = Fetched::default();
        for item in batches.into_iter().flatten() {
            let pk = item.get("pk").and_then(|v| v.as_s().ok());
            match pk.and_then(|pk| pk.strip_prefix("meta#")) {
                Some(name) => {
                    if let Some(v) = item.get("value").and_then(|v| v.as_s().ok()) {
                        fetched.meta.insert(name.to_string(), v.clone());
                    }
                }
                None => {
                    let r = row_of(&item)?;
                    let period = Period {
                        grain: r.grain,
                        start: r.start,
                    };
                    fetched.rows.insert(period, r.measure);
                }
            }
        }
        Ok(fetched)
    }

    /// Finds the rows through the dimension-set index (one Query per grain and set), then deletes
    /// them in batches. The index may lag a write by a moment; a retired version has had none
    /// since it was retired, well before its rows are deleted.
    async fn delete_metric(&self, metric: &str, dim_sets: &[String]) -> Result<(), StoreError> {
        let mut keys: Vec<(String, i64)> = Vec::new();
        for grain in [Grain::Hour, Grain::Day, Grain::Month, Grain::All] {
            for set in dim_sets {
                let rows = self
                    .query(
                        Some(SET_INDEX),
                        "set_pk",
                        set_pk(metric, grain, set),
                        DateTime::<Utc>::MIN_UTC,
                        DateTime::<Utc>::MAX_UTC,
                    )
                    .await?;
                keys.extend(
                    rows.iter()
                        .map(|r| (series_pk(&r.metric, r.grain, &r.dims), r.start.timestamp())),
                );
            }
        }
        keys.sort();
        keys.dedup();
        let requests: Vec<WriteRequest> = keys
            .into_iter()
            .map(|(pk, sk)| {
                let delete = DeleteRequest::builder()
                    .key("pk", s(pk))
                    .key("sk", n(sk))
                    .build()
                    .map_err(backend)?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<_, StoreError>>()?;
        self.write(requests).await
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(meta_pk(key)))
            .key("sk", n(0))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk)?;
        Ok(out
            .item()
            .and_then(|i| i.get("value"))
            .and_then(|v| v.as_s().ok())
            .cloned())
    }

    async fn put_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(meta_pk(key)))
            .item("sk", n(0))
            .item("value", s(value))
            .send()
            .await
            .map_err(sdk)?;
        Ok(())
    }

    async fn claim_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        // A lease released between the refused put and the read is free again: claim once more.
        for _ in 0..3 {
            let claimed = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(lease_pk(name)))
                .item("sk", n(0))
                .item("holder", s(holder))
                .item("until_ms", n(until.timestamp_millis()))
                .condition_expression("attribute_not_exists(pk) OR #u <= :now OR #h = :me")
                .expression_attribute_names("#u", "until_ms")
                .expression_attribute_names("#h", "holder")
                .expression_attribute_values(":now", n(now.timestamp_millis()))
                .expression_attribute_values(":me", s(holder))
                .send()
                .await;
            match claimed {
                Ok(_) => return Ok(Claim::Granted),
                Err(e) if is_condition_failure(&e) => {}
                Err(e) => return Err(sdk(e)),
            }
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .key("pk", s(lease_pk(name)))
                .key("sk", n(0))
                .consistent_read(true)
                .send()
                .await
                .map_err(sdk)?;
            let Some(item) = out.item() else { continue };
            let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok().or(v.as_n().ok()));
            let until = text("until_ms")
                .and_then(|v| v.parse::<i64>().ok())
                .and_then(DateTime::from_timestamp_millis);
            let (Some(holder), Some(until)) = (text("holder"), until) else {
                return Err(StoreError::Corrupt(format!("lease {name}: {item:?}")));
            };
            return Ok(Claim::HeldBy(Lease {
                holder: holder.clone(),
                until,
            }));
        }
        Err(StoreError::Backend(format!(
            "lease {name}: claimed and released by others three times over; try again"
        )))
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let released = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(lease_pk(name)))
            .key("sk", n(0))
            .condition_expression("#h = :me")
            .expression_attribute_names("#h", "holder")
            .expression_attribute_values(":me", s(holder))
            .send()
            .await;
        match released {
            Err(e) if !is_condition_failure(&e) => Err(sdk(e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn request(i: usize) -> WriteRequest {
        let put = PutRequest::builder()
            .item("pk", s(format!("k{i}")))
            .item("sk", n(0))
            .build()
            .unwrap();
        WriteRequest::builder().put_request(put).build()
    }

    #[tokio::test]
    async fn unprocessed_items_are_retried_until_written() {
        let calls = AtomicUsize::new(0);
        let written = std::sync::Mutex::new(Vec::new());
        let requests: Vec<_> = (0..60).map(request).collect();
        write_all(requests, |batch| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let written = &written;
            async move {
                assert!(batch.len() <= BATCH);
                // Every other call leaves half its items unprocessed.
                let keep = if n.is_multiple_of(2) {
                    batch.len().div_ceil(2)
                } else {
                    batch.len()
                };
                let (done, rest) = batch.split_at(keep);
                written.lock().unwrap().extend(done.iter().cloned());
                Ok(rest.to_vec())
            }
        })
        .await
        .unwrap();
        let mut keys: Vec<String> = written
            .lock()
            .unwrap()
            .iter()
            .map(|w| {
                w.put_request().unwrap().item()["pk"]
                    .as_s()
                    .unwrap()
                    .clone()
            })
            .collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 60, "every item written once in the end");
        assert!(calls.load(Ordering::SeqCst) > 3, "there were retries");
    }

    #[tokio::test]
    async fn gives_up_with_an_error_when_items_never_go_through() {
        let err = write_all(vec![request(1)], |batch| async move { Ok(batch) })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("still unprocessed"));
    }
}
