//! The HTTP API: every error case, the token, CORS, and that the JSON over HTTP is the library's
//! answer to the byte. Requests go through the real axum router; one test uses a real socket.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::Value;
use tally::ingest;
use tally::rollup::Catalog;
use tally::runtime::Local;
use tally::serve::{router_with_clock, ApiOptions};
use tally::serve::{QueryOptions, QueryParams};
use tally::tools::demo::{self, DemoSpec};
use tower::ServiceExt;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 8, 27, 0, 0, 0).unwrap()
}

struct Api {
    _dir: tempfile::TempDir,
    local: Local,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let local = Local::open(dir.path(), Catalog::builtin(), Tz::UTC).unwrap();
    let spec = DemoSpec {
        events_per_day: 800,
        users: 200,
        ..DemoSpec::new(2, now())
    };
    let mut deliveries = Vec::new();
    demo::generate(&spec, |_, b| deliveries.push(b));
    for d in deliveries {
        ingest::ingest_ndjson(&local.storage, &d[..], now())
            .await
            .unwrap();
    }
    local.rollup().run_touched(None).await.unwrap();
    Api { _dir: dir, local }
}

impl Api {
    fn router(&self, options: ApiOptions) -> Router {
        let service = Arc::new(self.local.query_service(QueryOptions {
            max_range_days: 400,
            ..QueryOptions::default()
        }));
        router_with_clock(service, options, Arc::new(now))
    }
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

async fn get(app: &Router, uri: &str) -> (StatusCode, Value) {
    let (status, _, body) = send(app, Request::get(uri).body(Body::empty()).unwrap()).await;
    (
        status,
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{uri}: body is not JSON ({e}): {body}")),
    )
}

#[tokio::test]
async fn health_catalog_and_a_metric() {
    let a = api().await;
    let app = a.router(ApiOptions::default());
    assert_eq!(
        get(&app, "/health").await,
        (StatusCode::OK, serde_json::json!({"status": "ok"}))
    );
    let (status, catalog) = get(&app, "/v1/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = catalog["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    // The hidden parts of an average (`average_price__sum`, `__count`) are not listed.
    assert_eq!(
        names,
        [
            "average_order_value",
            "average_price",
            "content_views",
            "purchases",
            "revenue",
            "sign_ins",
            "visitors"
        ]
    );
    assert_eq!(
        catalog["metrics"][6]["dimensions"],
        serde_json::json!(["country", "browser"])
    );
    assert_eq!(catalog["metrics"][6]["state"], "ready");
    assert_eq!(catalog["metrics"][6]["version"].as_str().unwrap().len(), 12);
    assert!(catalog["metrics"][6]["sql"]
        .as_str()
        .unwrap()
        .contains("COUNT(DISTINCT user_id)"));
    // A formula: the dimensions both sides have.
    assert_eq!(catalog["metrics"][0]["formula"], "revenue / purchases");
    assert_eq!(
        catalog["metrics"][0]["dimensions"],
        serde_json::json!(["item_id", "country"])
    );

    let (status, body) = get(
        &app,
        "/v1/metrics/sign_ins?from=2026-08-26&to=2026-08-27&country=KR",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for field in [
        "metric",
        "range",
        "previous_range",
        "total",
        "current_total",
        "previous_total",
        "change_rate",
        "interval",
        "series",
        "approximate",
        "as_of",
    ] {
        assert!(body.get(field).is_some(), "response lacks {field}: {body}");
    }
    assert_eq!(
        body["range"],
        serde_json::json!({"from": "2026-08-26T00:00:00+00:00", "to": "2026-08-27T00:00:00+00:00"})
    );
    assert_eq!(
        body["previous_range"],
        serde_json::json!({"from": "2026-08-25T00:00:00+00:00", "to": "2026-08-26T00:00:00+00:00"})
    );
    assert_eq!(body["series"].as_array().unwrap().len(), 24);
    assert!(body["current_total"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn http_carries_the_library_answer_exactly() {
    let a = api().await;
    let app = a.router(ApiOptions::default());
    let uri = "/v1/metrics/revenue?from=2026-08-25&to=2026-08-27&tz=Asia/Seoul&interval=day&group_by=item_id&limit=5";
    let (status, _, body) = send(&app, Request::get(uri).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let params = QueryParams {
        metric: "revenue".into(),
        from: Some("2026-08-25".into()),
        to: Some("2026-08-27".into()),
        tz: Some("Asia/Seoul".into()),
        interval: Some("day".into()),
        group_by: Some("item_id".into()),
        limit: Some("5".into()),
        compare: None,
        filters: vec![],
    };
    let direct = a
        .local
        .query_service(QueryOptions::default())
        .query(&params, now())
        .await
        .unwrap();
    assert_eq!(body, serde_json::to_string(&direct).unwrap());
    assert!(direct.groups.as_ref().unwrap().len() == 5);
    // Money survives as exact decimal text.
    assert!(body.contains(&format!(
        "\"current_total\":{}",
        direct.current_total.normalize()
    )));
}

#[tokio::test]
async fn every_bad_parameter_is_a_400_with_a_message() {
    let a = api().await;
    let app = a.router(ApiOptions::default());
    let cases = [
        (
            "/v1/metrics/sign_ins?from=2026-08-27&to=2026-08-26",
            "before",
        ),
        (
            "/v1/metrics/sign_ins?from=2026-08-26&to=2026-08-26",
            "before",
        ),
        (
            "/v1/metrics/sign_ins?from=2024-01-01&to=2026-08-26",
            "at most 400 days",
        ),
        (
            "/v1/metrics/sign_ins?from=2026-08-25&to=2026-08-26&planet=mars",
            "unknown parameter or dimension `planet`",
        ),
        (
            "/v1/metrics/sign_ins?from=2026-08-25&to=2026-08-26&content_id=c",
            "unknown parameter or dimension `content_id`",
        ),
        (
            "/v1/metrics/sign_ins?from=2026-08-25&to=2026-08-26&tz=Mars/Olympus",
            "IANA time zone",
        ),
        (
            "/v1/metrics/sign_ins?from=2026-08-25&to=2026-08-26&tz=Asia/Kolkata",
            "whole number of hours",
        ),
        (
            "/v1/metrics/sign_ins?from=2026-13-45&to=2026-08-26",
            "from must be a date",
        ),
        (
            "/v1/metrics/sign_ins?from=yesterday&to=2026-08-26",
            "from must be a date",
        ),
        ("/v1/metrics/sign_ins?to=2026-08-26", "from is required"),
        ("/v1/metrics/sign_ins?from=2026-08-25", "to is required"),
        (
            "/v1/metrics/sign_ins?from=2026-08-25T10:30:00Z&to=2026-08-26",
            "whole hour",
        ),
        (
            "/v1/metrics/sign_ins?from=2026-08-25&to=2026-08-26&interval=fortnight",
            "interval must be",
        ),
        (
            "/v1/metrics/sign_ins?from=2025-08-25&to=2026-08-26&interval=hour",
            "more than 2000 points",
        ),
        (
            "/v1/metrics/sign_ins?from=2026-08-25&to=2026-08-26&group_by=item_id",
            "group_by `item_id` is not a dimension",
        ),
        (
            "/v1/metrics/sign_ins?from=2026-08-25&to=2026-08-26&group_by=country&limit=0",
            "limit must be",
        ),
        (
            "/v1/metrics/sign_ins?from=2026-08-25&to=2026-08-26&limit=ten",
            "limit must be",
        ),
        (
            "/v1/metrics/sign_ins?from=2026-08-25&from=2026-08-24&to=2026-08-26",
            "more than once",
        ),
        (
            "/v1/metrics/sign_ins?from=2026-08-25&to=2026-08-26&country=KR&country=US",
            "more than once",
        ),
        (
            "/v1/metrics/sign_ins?from=2026-08-25&to=2026-08-26&compare=last_decade",
            "compare must be previous_period or previous_year",
        ),
        (
            "/v1/metrics/sign_ins/dimensions/country?from=2026-08-25&to=2026-08-26&group_by=browser",
            "group_by is not a parameter",
        ),
        (
            "/v1/metrics/sign_ins/dimensions/country?from=2026-08-25&to=2026-08-26&compare=previous_year",
            "compare is not a parameter",
        ),
        (
            "/v1/metrics/sign_ins/dimensions/country?to=2026-08-26",
            "from is required",
        ),
        (
            "/v1/metrics/sign_ins/dimensions/country?from=2026-08-25&to=2026-08-26&limit=5000",
            "limit must be",
        ),
    ];
    for (uri, want) in cases {
        let (status, body) = get(&app, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["error"]["code"], "bad_parameter", "{uri}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(want),
            "{uri}: message {message:?} lacks {want:?}"
        );
    }
}

#[tokio::test]
async fn unknown_metric_route_and_method() {
    let a = api().await;
    let app = a.router(ApiOptions::default());
    let (status, body) = get(&app, "/v1/metrics/nosuch?from=2026-08-25&to=2026-08-26").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_metric"))
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nosuch"));
    let (status, body) = get(
        &app,
        "/v1/metrics/sign_ins/dimensions/item_id?from=2026-08-25&to=2026-08-26",
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_dimension"))
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("dimensions: country, browser"));
    let (status, body) = get(
        &app,
        "/v1/metrics/nosuch/dimensions/country?from=2026-08-25&to=2026-08-26",
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_metric"))
    );
    let (status, body) = get(&app, "/v2/elsewhere").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, _, body) = send(
        &app,
        Request::post("/v1/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body.contains("method_not_allowed"));
}

#[tokio::test]
async fn every_response_has_security_headers_and_limits_hold_before_parsing() {
    let a = api().await;
    let app = a.router(ApiOptions {
        token: Some("s3cret".into()),
        cors_origin: Some("https://admin.example.com".parse().unwrap()),
        ..ApiOptions::default()
    });
    let preflight = Request::options("/v1/metrics")
        .header("origin", "https://admin.example.com")
        .header("access-control-request-method", "GET")
        .body(Body::empty())
        .unwrap();
    let requests = [
        Request::get("/health").body(Body::empty()).unwrap(),
        Request::get("/v1/metrics").body(Body::empty()).unwrap(),
        Request::get("/v1/metrics/revenue?from=2026-08-25&to=2026-08-27")
            .header("authorization", "Bearer s3cret")
            .body(Body::empty())
            .unwrap(),
        Request::get("/nowhere").body(Body::empty()).unwrap(),
        Request::get("/").body(Body::empty()).unwrap(),
        preflight,
    ];
    for req in requests {
        let uri = req.uri().clone();
        let (status, h, _) = send(&app, req).await;
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{uri}");
        for (name, want) in [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
        ] {
            assert_eq!(
                h.get(name).and_then(|v| v.to_str().ok()),
                Some(want),
                "{uri} {status}: {name}"
            );
        }
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{uri}: {csp}");
        assert!(h.contains_key("strict-transport-security"), "{uri}");
        if uri.path().starts_with("/v1") {
            assert_eq!(h["cache-control"], "no-store", "{uri}");
        }
    }

    let auth = |uri: &str| {
        Request::get(uri)
            .header("authorization", "Bearer s3cret")
            .body(Body::empty())
            .unwrap()
    };
    let long = format!(
        "/v1/metrics/revenue?from=2026-08-25&to=2026-08-27&country={}",
        "K".repeat(tally::serve::MAX_QUERY_BYTES)
    );
    let (status, _, body) = send(&app, auth(&long)).await;
    assert_eq!(status, StatusCode::URI_TOO_LONG);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "too_long");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 4096"));

    let filters: String = (0..tally::serve::MAX_QUERY_PARAMS)
        .map(|i| format!("&country=C{i}"))
        .collect();
    let many = format!("/v1/metrics/revenue?from=2026-08-25{filters}");
    let (status, _, body) = send(&app, auth(&many)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("at most 32 are accepted"), "{body}");
    // At the limit, the request passes on to parsing (where repeated filters get their own answer).
    let at_limit = format!(
        "/v1/metrics/revenue?from=2026-08-25{}",
        &filters[..filters.rfind('&').unwrap()]
    );
    let (status, _, body) = send(&app, auth(&at_limit)).await;
    assert!(!body.contains("are accepted"), "{status} {body}");
}

#[tokio::test]
async fn the_token_guards_v1_only() {
    let a = api().await;
    let app = a.router(ApiOptions {
        token: Some("s3cret".into()),
        ..ApiOptions::default()
    });
    let uri = "/v1/metrics/visitors?from=2026-08-25&to=2026-08-26";
    let (status, headers, body) = send(&app, Request::get(uri).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert!(body.contains("\"code\":\"unauthorized\""));
    let (status, _, _) = send(
        &app,
        Request::get(uri)
            .header("authorization", "Bearer wrong")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = send(
        &app,
        Request::get("/v1/metrics")
            .header("authorization", "s3cret")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the Bearer scheme is required"
    );
    let (status, _, _) = send(
        &app,
        Request::get(uri)
            .header("authorization", "Bearer s3cret")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        get(&app, "/health").await.0,
        StatusCode::OK,
        "health needs no token"
    );
    let (status, _, _) = send(
        &app,
        Request::get("/v1/metrics/sign_ins/dimensions/country?from=2026-08-25&to=2026-08-26")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "dimension values need the token"
    );
    let (status, _, page) = send(&app, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "the console page needs no token");
    assert!(page.contains("API token"), "the page can ask for the token");
}

#[tokio::test]
async fn the_console_is_served_from_the_binary() {
    let a = api().await;
    let app = a.router(ApiOptions::default());
    for (uri, content_type, needle) in [
        ("/", "text/html; charset=utf-8", "<title>tally"),
        (
            "/console/app.js",
            "text/javascript; charset=utf-8",
            "/v1/metrics",
        ),
        ("/console/app.css", "text/css; charset=utf-8", ".cards"),
        (
            "/console/uPlot.min.js",
            "text/javascript; charset=utf-8",
            "uPlot",
        ),
        (
            "/console/uPlot.min.css",
            "text/css; charset=utf-8",
            ".uplot",
        ),
    ] {
        let (status, headers, body) =
            send(&app, Request::get(uri).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert_eq!(headers["content-type"], content_type, "{uri}");
        assert!(body.contains(needle), "{uri} lacks {needle:?}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'"), "{uri}: {csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{uri}");
    }
    // The page loads nothing from elsewhere: every script and style it names is served here.
    let (_, _, page) = send(&app, Request::get("/").body(Body::empty()).unwrap()).await;
    for attr in ["src=\"", "href=\""] {
        for link in page.split(attr).skip(1).map(|s| &s[..s.find('"').unwrap()]) {
            if link.starts_with('#') {
                continue;
            }
            assert!(link.starts_with('/'), "{link} is not on this origin");
            let (status, _, _) = send(&app, Request::get(link).body(Body::empty()).unwrap()).await;
            assert_eq!(status, StatusCode::OK, "{link}");
        }
    }
    let (status, headers, body) = send(
        &app,
        Request::get("/console/config.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        body, r#"{"sign_in":null}"#,
        "no sign-in configured: the console asks for a token"
    );

    // With sign-in, the page learns the provider's endpoints and may call its token endpoint.
    let app = a.router(ApiOptions {
        sign_in: tally::serve::SignIn::from_settings(
            Some("https://auth.example.com/oauth2/authorize".into()),
            Some("https://auth.example.com/oauth2/token".into()),
            Some("console-client".into()),
            None,
            ["authorize", "token", "client"],
        )
        .unwrap(),
        ..ApiOptions::default()
    });
    let (_, headers, body) = send(
        &app,
        Request::get("/console/config.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let config: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(config["sign_in"]["client_id"], "console-client");
    assert_eq!(config["sign_in"]["scope"], "openid");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("connect-src 'self' https://auth.example.com;"),
        "{csp}"
    );

    let (status, _, body) = send(
        &app,
        Request::get("/console/secrets.txt")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("no such console file"));
}

/// Log output kept in memory.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_at_info_hold_no_token_and_no_event_body() {
    // Everything at info and above: the default level.
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // This thread's events: the test's runtime runs every task here.
    let guard = tracing::subscriber::set_default(subscriber);
    let a = api().await;
    // An ingest that fails to write must not log the events it held either.
    let bad = tempfile::tempdir().unwrap();
    std::fs::write(
        bad.path().join("events"),
        "a file where the events directory goes",
    )
    .unwrap();
    let storage = tally::lake::Storage::local(bad.path()).unwrap();
    let line = br#"{"event_id":"secret-event","event_type":"purchase","occurred_at":"2026-08-26T10:00:00Z","user_id":"secret-user"}"#;
    let failed = ingest::ingest_ndjson(&storage, &line[..], now()).await;
    assert!(failed.is_err(), "the events cannot be written");
    let app = a.router(ApiOptions {
        token: Some("s3cret-token-value".into()),
        ..ApiOptions::default()
    });
    for token in ["s3cret-token-value", "wrong-guess-123"] {
        for uri in [
            "/v1/metrics/revenue?from=2026-08-25&to=2026-08-27",
            "/v1/metrics/revenue?from=bad",
        ] {
            let req = Request::get(uri)
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            send(&app, req).await;
        }
    }
    drop(guard);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("writing events failed"),
        "the capture works, and the failed write is logged: {text}"
    );
    for secret in [
        "s3cret-token-value",
        "wrong-guess-123",
        "secret-event",
        "secret-user",
        "occurred_at",
        "\"event_id\"",
    ] {
        assert!(!text.contains(secret), "{secret} in the log:\n{text}");
    }
}

#[tokio::test]
async fn cors_allows_the_configured_origin() {
    let a = api().await;
    let app = a.router(ApiOptions {
        token: Some("t".into()),
        cors_origin: Some("https://admin.example.com".parse().unwrap()),
        ..ApiOptions::default()
    });
    let preflight = Request::options("/v1/metrics")
        .header("origin", "https://admin.example.com")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send(&app, preflight).await;
    assert!(status.is_success(), "{status}");
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://admin.example.com"
    );
    let (_, headers, _) = send(
        &app,
        Request::get("/health")
            .header("origin", "https://evil.example.com")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    // Another origin is never echoed back, so its browser refuses the response.
    assert!(headers
        .get("access-control-allow-origin")
        .is_none_or(|v| v == "https://admin.example.com"));
}

#[tokio::test]
async fn serves_over_a_real_socket() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = api().await;
    let app = a.router(ApiOptions::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /v1/metrics/visitors?from=2026-08-25&to=2026-08-27&interval=day HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    server.abort();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains("content-type: application/json"));
    let body: Value = serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["series"].as_array().unwrap().len(), 2);
}

fn arbitrary_query() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("2026-08-25".to_string()),
        Just("2026-08-25T03:00:00+09:00".to_string()),
        Just("9999-99-99".to_string()),
        Just("".to_string()),
        "[ -~]{0,12}",
    ];
    let key = prop_oneof![
        Just("from"),
        Just("to"),
        Just("tz"),
        Just("interval"),
        Just("group_by"),
        Just("limit"),
        Just("country"),
        Just("browser"),
        Just("x"),
    ];
    proptest::collection::vec((key, value), 0..6).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.bytes().map(|b| format!("%{b:02X}")).collect::<String>()
                )
            })
            .collect::<Vec<_>>()
            .join("&")
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// Whatever the parameters, the answer is a 200, 400 or 404 with a JSON body; never a 500.
    #[test]
    fn no_input_yields_a_server_error(query in arbitrary_query(), metric in prop_oneof![Just("visitors"), Just("revenue"), Just("nope")]) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            static API: tokio::sync::OnceCell<Api> = tokio::sync::OnceCell::const_new();
            let a = API.get_or_init(api).await;
            let app = a.router(ApiOptions::default());
            let uri = format!("/v1/metrics/{metric}?{query}");
            let (status, _, body) = send(&app, Request::get(&uri).body(Body::empty()).unwrap()).await;
            prop_assert!([StatusCode::OK, StatusCode::BAD_REQUEST, StatusCode::NOT_FOUND].contains(&status), "{} gave {}: {}", uri, status, body);
            prop_assert!(serde_json::from_str::<Value>(&body).is_ok());
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn a_range_past_the_clock_is_clipped() {
    let a = api().await;
    let app = a.router(ApiOptions::default());
    // The router's clock reads 2026-08-27T00:00Z: of 2026-08-26..28 only the first day has elapsed.
    let (status, body) = get(&app, "/v1/metrics/sign_ins?from=2026-08-26&to=2026-08-28").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["clipped"], true);
    assert_eq!(body["range"]["to"], "2026-08-27T00:00:00+00:00");
    assert_eq!(
        body["previous_range"],
        serde_json::json!({"from": "2026-08-24T00:00:00+00:00", "to": "2026-08-25T00:00:00+00:00"})
    );
}

#[test]
fn a_cors_origin_that_is_not_an_origin_is_refused_when_read() {
    use tally::serve::CorsOrigin;
    assert_eq!("*".parse::<CorsOrigin>(), Ok(CorsOrigin::Any));
    assert!(matches!(
        "https://admin.example.com:8443".parse::<CorsOrigin>(),
        Ok(CorsOrigin::Exact(_))
    ));
    for bad in [
        "admin.example.com",
        "https://admin.example.com/",
        "https://admin example.com",
        "https://admin.example.com/dashboard",
        "https://",
        "",
    ] {
        let err = bad.parse::<CorsOrigin>().unwrap_err();
        assert!(err.contains("is not an origin"), "{bad:?}: {err}");
    }
}
