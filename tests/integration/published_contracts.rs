//! The published JSON Schema and OpenAPI document agree with the code.

use serde_json::Value;

fn read(path: &str) -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_string() + path)
        .unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not valid JSON: {e}"))
}

#[test]
fn event_schema_lists_the_contract_fields() {
    let schema = read("schema/event.schema.json");
    assert_eq!(
        schema["required"],
        serde_json::json!(["event_id", "event_type", "occurred_at"])
    );
    let props = schema["properties"].as_object().unwrap();
    let mut want: Vec<&str> = vec!["event_id", "event_type", "occurred_at", "price", "quantity"];
    want.extend(tally::model::STRING_FIELDS);
    want.sort();
    let mut got: Vec<&str> = props.keys().map(String::as_str).collect();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(
        schema["additionalProperties"], true,
        "unknown fields are kept, never refused"
    );
}

#[test]
fn openapi_describes_the_router_routes_and_response_fields() {
    let doc = read("docs/openapi.json");
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(paths, ["/health", "/v1/metrics", "/v1/metrics/{name}"]);
    let required: Vec<&str> = doc["components"]["schemas"]["MetricResponse"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let sample = tally::serve::MetricResponse {
        metric: "m".into(),
        unit: "u".into(),
        tz: "UTC".into(),
        range: tally::serve::TimeRange {
            from: "a".into(),
            to: "b".into(),
        },
        previous_range: tally::serve::TimeRange {
            from: "a".into(),
            to: "b".into(),
        },
        clipped: false,
        total: 1.into(),
        current_total: 1.into(),
        previous_total: 1.into(),
        change_rate: None,
        interval: tally::serve::Interval::Day,
        series: vec![],
        approximate: false,
        as_of: None,
        filters: Default::default(),
        group_by: None,
        groups: None,
    };
    let serialized = serde_json::to_value(&sample).unwrap();
    let mut fields: Vec<&str> = serialized
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort();
    let mut required_sorted = required.clone();
    required_sorted.sort();
    assert_eq!(
        fields, required_sorted,
        "every field the API always sends is documented as required"
    );
}
