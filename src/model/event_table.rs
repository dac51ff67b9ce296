//! The `events` table: the Arrow schema of stored events, and conversion from [`Event`]s.

use std::sync::{Arc, LazyLock};

use arrow::array::AsArray;
use arrow::array::{
    ArrayRef, Decimal128Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;

use crate::model::event::{Event, PRICE_SCALE, STRING_FIELDS};

pub(crate) const PRICE_PRECISION: u8 = 18;

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

pub(crate) const EVENT_ID: &str = "event_id";
pub(crate) const RECEIVED_AT: &str = "received_at";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        Field::new(EVENT_ID, DataType::Utf8, false),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("occurred_at", utc_micros(), false),
        Field::new(RECEIVED_AT, utc_micros(), false),
    ];
    fields.extend(
        STRING_FIELDS
            .iter()
            .map(|f| Field::new(*f, DataType::Utf8, true)),
    );
    fields.push(Field::new(
        "price",
        DataType::Decimal128(PRICE_PRECISION, PRICE_SCALE as i8),
        true,
    ));
    fields.push(Field::new("quantity", DataType::Int64, true));
    fields.push(Field::new("attributes", DataType::Utf8, true));
    Arc::new(Schema::new(fields))
});

/// Schema of the stored events (the columns the data team's SQL sees as `events`).
pub(crate) fn schema() -> SchemaRef {
    SCHEMA.clone()
}

/// The `event_id` column of a batch of stored events.
pub(crate) fn event_ids(batch: &RecordBatch) -> Result<&arrow::array::StringArray, ArrowError> {
    column(batch, EVENT_ID)?
        .as_string_opt::<i32>()
        .ok_or_else(|| ArrowError::SchemaError(format!("`{EVENT_ID}` is not a string column")))
}

/// The `received_at` column of a batch of stored events.
pub(crate) fn received_at(
    batch: &RecordBatch,
) -> Result<&arrow::array::TimestampMicrosecondArray, ArrowError> {
    column(batch, RECEIVED_AT)?
        .as_primitive_opt()
        .ok_or_else(|| {
            ArrowError::SchemaError(format!("`{RECEIVED_AT}` is not a timestamp column"))
        })
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, ArrowError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| ArrowError::SchemaError(format!("stored events lack `{name}`")))
}

/// Converts events to one record batch in the order given.
pub(crate) fn to_record_batch(events: &[&Event<'_>]) -> RecordBatch {
    let n = events.len();
    // Exact byte sizes first, in one pass over the events (a pass per column cost ten times the
    // cache misses): growing a builder copies everything appended so far.
    let mut sizes = [0usize; 3 + STRING_FIELDS.len()];
    for e in events {
        let [id, kind, attributes, strings @ ..] = &mut sizes;
        *id += e.event_id.len();
        *kind += e.event_type.len();
        *attributes += e
            .attributes
            .as_ref()
            .map_or(0, |a| a.json_parts().iter().map(|p| p.len()).sum());
        for (size, v) in strings.iter_mut().zip(&e.strings) {
            *size += v.as_deref().map_or(0, str::len);
        }
    }
    let [id_bytes, type_bytes, attribute_bytes, string_bytes @ ..] = sizes;
    let mut event_id = StringBuilder::with_capacity(n, id_bytes);
    let mut event_type = StringBuilder::with_capacity(n, type_bytes);
    let mut occurred = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut received = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut strings: Vec<StringBuilder> = string_bytes
        .iter()
        .map(|size| StringBuilder::with_capacity(n, *size))
        .collect();
    let mut price = Decimal128Builder::with_capacity(n)
        .with_precision_and_scale(PRICE_PRECISION, PRICE_SCALE as i8)
        .expect("valid decimal type");
    let mut quantity = Int64Builder::with_capacity(n);
    let mut attributes = StringBuilder::with_capacity(n, attribute_bytes);
    for e in events {
        event_id.append_value(&e.event_id);
        event_type.append_value(&e.event_type);
        occurred.append_value(e.occurred_at.timestamp_micros());
        received.append_value(e.received_at.timestamp_micros());
        for (b, v) in strings.iter_mut().zip(&e.strings) {
            b.append_option(v.as_deref());
        }
        price.append_option(e.price.map(|p| {
            let mut p = p;
            p.rescale(PRICE_SCALE);
            p.mantissa()
        }));
        quantity.append_option(e.quantity);
        match &e.attributes {
            // Written straight into the column, with no String per event.
            Some(a) => {
                use std::fmt::Write as _;
                for part in a.json_parts() {
                    attributes
                        .write_str(part)
                        .expect("a builder takes any text");
                }
                attributes.append_value("");
            }
            None => attributes.append_null(),
        }
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(event_id.finish()),
        Arc::new(event_type.finish()),
        Arc::new(occurred.finish()),
        Arc::new(received.finish()),
    ];
    columns.extend(strings.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    columns.push(Arc::new(price.finish()));
    columns.push(Arc::new(quantity.finish()));
    columns.push(Arc::new(attributes.finish()));
    RecordBatch::try_new(schema(), columns).expect("columns match the events schema")
}
