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

/// The status the API's router gives `method path` (no data: only whether a route answers).
async fn status_of(method: &str, path: &str) -> axum::http::StatusCode {
    use tower::ServiceExt;
    let dir = tempfile::tempdir().unwrap();
    let local = tally::runtime::Local::open(
        dir.path(),
        tally::rollup::Catalog::builtin(),
        chrono_tz::UTC,
    )
    .unwrap();
    let service = std::sync::Arc::new(local.query_service(Default::default()));
    let router = tally::serve::router(service, Default::default());
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .body(axum::body::Body::empty())
        .unwrap();
    router.oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn openapi_describes_the_router_routes_and_response_fields() {
    use axum::http::StatusCode;
    let doc = read("docs/openapi.json");
    let paths = doc["paths"].as_object().unwrap();
    assert!(!paths.is_empty());
    for (path, operations) in paths {
        let concrete = path
            .replace("{name}", "visitors")
            .replace("{dimension}", "country");
        for method in operations.as_object().unwrap().keys() {
            let status = status_of(&method.to_uppercase(), &concrete).await;
            assert!(
                status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
                "the router does not serve the documented {method} {path}: {status}"
            );
        }
    }
    // The check can fail: a path the router does not have is a 404.
    assert_eq!(status_of("GET", "/v1/metric").await, StatusCode::NOT_FOUND);
    // Every route the router has is documented: the HTTP API's routes as the infra check reads
    // them from the router's source.
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/serve/http.rs")).unwrap();
    for route in source.split(".route(").skip(1) {
        let route = route.trim_start().trim_start_matches('"');
        let route = &route[..route.find('"').unwrap()];
        let full = if route == "/health" {
            route.to_string()
        } else {
            format!("/v1{route}")
        };
        assert!(
            paths.contains_key(&full),
            "{full} is served but not documented"
        );
    }
    let required: Vec<&str> = doc["components"]["schemas"]["MetricResponse"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let sample = tally::serve::MetricResponse {
        metric: "m".into(),
        version: "v".into(),
        unit: "u".into(),
        tz: "UTC".into(),
        range: tally::serve::TimeRange {
            from: "a".into(),
            to: "b".into(),
        },
        compare: tally::serve::Compare::PreviousPeriod,
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
        previous_series: vec![],
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
