//! The metrics HTTP API (axum): the same router serves `tally serve` and the API Lambda.
//!
//! `GET /health`, `GET /v1/metrics`,
//! `GET /v1/metrics/{name}?from=&to=&tz=&interval=&group_by=&limit=&compare=&<dimension>=<value>`,
//! `GET /v1/metrics/{name}/dimensions/{dimension}?from=&to=&tz=&limit=&<dimension>=<value>`, and the
//! admin console at `/` (its assets under `/console/`, public: the data behind it needs the token).
//! Errors are JSON `{"error": {"code", "message"}}`; input never yields a 500. Every response
//! carries security headers, and oversized query strings are refused before parsing.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

use crate::rollup::ServedMetric;
use crate::serve::console::{self, SignIn};
use crate::serve::query::{QueryError, QueryParams, QueryService};
use crate::store::StoreError;

/// Clock used for clipping, injectable for tests.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

#[derive(Clone, Default)]
pub struct ApiOptions {
    /// When set, `/v1` requires `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Origin allowed by CORS; none sends no CORS headers.
    pub cors_origin: Option<CorsOrigin>,
    /// The console's sign-in with an OpenID Connect provider; none asks for a token instead.
    pub sign_in: Option<SignIn>,
}

/// The one origin CORS allows, checked when the setting is read: an origin that is not a valid
/// header value is refused at start instead of silently allowing nothing.
#[derive(Clone, Debug, PartialEq)]
pub enum CorsOrigin {
    /// `*`: any origin.
    Any,
    Exact(HeaderValue),
}

impl std::str::FromStr for CorsOrigin {
    type Err = String;

    fn from_str(s: &str) -> Result<CorsOrigin, String> {
        let s = s.trim();
        if s == "*" {
            return Ok(CorsOrigin::Any);
        }
        // An origin is scheme and authority only: no path, not even a trailing slash.
        let authority = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"));
        let valid = authority
            .is_some_and(|a| !a.is_empty() && !a.contains('/') && !a.contains(char::is_whitespace));
        match HeaderValue::from_str(s) {
            Ok(v) if valid => Ok(CorsOrigin::Exact(v)),
            _ => Err(format!(
                "{s:?} is not an origin: give scheme and host (and port), as https://admin.example.com, or * for any"
            )),
        }
    }
}

#[derive(Clone)]
struct AppState {
    service: Arc<QueryService>,
    token: Option<Arc<str>>,
    clock: Clock,
}

pub(super) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds a client should wait before asking again (a 503).
    retry_after: Option<u32>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn unavailable(code: &'static str, message: impl Into<String>, retry_after: u32) -> ApiError {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        r
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> ApiError {
        match e {
            QueryError::UnknownMetric(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_metric", e.to_string())
            }
            QueryError::UnknownDimension { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_dimension", e.to_string())
            }
            QueryError::BadParameter { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_parameter", e.to_string())
            }
            QueryError::Building { .. } => ApiError::unavailable("building", e.to_string(), 300),
            QueryError::CatalogUnavailable(_) => {
                tracing::error!(error = %e, "catalog unavailable");
                ApiError::unavailable("unavailable", e.to_string(), 30)
            }
            // The store did not answer (throttled, timed out, down): a client may ask again soon,
            // and no number is made up meanwhile.
            QueryError::Store(StoreError::Backend(_)) => {
                tracing::error!(error = %e, "period store unavailable");
                ApiError::unavailable(
                    "unavailable",
                    "the period store did not answer; try again shortly",
                    5,
                )
            }
            QueryError::Store(StoreError::Corrupt(_)) | QueryError::Internal(_) => {
                tracing::error!(error = %e, "query failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the server log",
                )
            }
        }
    }
}

pub fn router(service: Arc<QueryService>, options: ApiOptions) -> Router {
    router_with_clock(service, options, Arc::new(Utc::now))
}

pub fn router_with_clock(service: Arc<QueryService>, options: ApiOptions, clock: Clock) -> Router {
    let state = AppState {
        service,
        token: options.token.filter(|t| !t.is_empty()).map(Arc::from),
        clock,
    };
    let v1 = Router::new()
        .route("/metrics", get(list_metrics))
        .route("/metrics/{name}", get(get_metric))
        .route(
            "/metrics/{name}/dimensions/{dimension}",
            get(get_dimension_values),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let mut app = Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .nest("/v1", v1)
        .merge(console::routes(options.sign_in))
        .fallback(|method: Method, uri: axum::http::Uri| async move {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no route for {method} {}", uri.path()),
            )
        })
        .method_not_allowed_fallback(|method: Method| async move {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not allowed here; use GET"),
            )
        })
        .with_state(state)
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; see the server log",
            )
            .into_response()
        }))
        .layer(TraceLayer::new_for_http());
    if let Some(origin) = options.cors_origin {
        let allow = match origin {
            CorsOrigin::Any => AllowOrigin::any(),
            CorsOrigin::Exact(v) => AllowOrigin::exact(v),
        };
        app = app.layer(
            CorsLayer::new()
                .allow_origin(allow)
                .allow_methods([Method::GET, Method::OPTIONS])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
        );
    }
    // Outermost: the limits hold before any routing, and every response (a preflight, a 404, a
    // caught panic) carries the security headers.
    app.layer(middleware::from_fn(harden))
}

/// Longest query string accepted, in bytes: many times any dashboard request.
pub const MAX_QUERY_BYTES: usize = 4096;
/// Most query parameters accepted (the named ones and every dimension filter).
pub const MAX_QUERY_PARAMS: usize = 32;

/// Refuses oversized query strings before they are parsed, and sets the security headers a
/// response has not set itself.
async fn harden(request: Request, next: Next) -> Response {
    let query = request.uri().query().unwrap_or("");
    let params = query.split('&').filter(|p| !p.is_empty()).count();
    let mut response = if query.len() > MAX_QUERY_BYTES {
        ApiError::new(
            StatusCode::URI_TOO_LONG,
            "too_long",
            format!(
                "the query string is {} bytes; at most {MAX_QUERY_BYTES} are accepted",
                query.len()
            ),
        )
        .into_response()
    } else if params > MAX_QUERY_PARAMS {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_parameter",
            format!("{params} query parameters; at most {MAX_QUERY_PARAMS} are accepted"),
        )
        .into_response()
    } else {
        next.run(request).await
    };
    let h = response.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        // JSON needs no sources; the console's pages set their own policy.
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
        // Answers are per token and change with every rollup: no shared cache keeps them.
        (header::CACHE_CONTROL, "no-store"),
        (
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ),
    ] {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    }
    response
}

/// Compares without an early exit, so response time does not reveal how much of a token matched.
fn same_token(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| same_token(g.trim().as_bytes(), token.as_bytes())) {
            let mut r = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid bearer token is required",
            )
            .into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    next.run(request).await
}

async fn list_metrics(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let served = state.service.served().await?;
    let metrics: Vec<_> = served
        .metrics
        .iter()
        .filter(|m| !m.deployed.hidden)
        .map(metric_entry)
        .collect();
    Ok(Json(
        json!({"reporting_tz": state.service.reporting_tz().name(), "metrics": metrics}),
    ))
}

/// One metric of the catalog listing: its definition (the one answers come from while a newer
/// version builds), its version and state, and the deployed SQL.
fn metric_entry(m: &ServedMetric) -> serde_json::Value {
    let def = m.ready.as_ref().map_or(&m.deployed, |v| &v.def);
    let mut entry = serde_json::to_value(def.as_ref()).expect("a definition serialises");
    let building = m.building.as_ref().map(|(version, done, total)| {
        json!({"version": version, "hours_done": done, "hours_total": total})
    });
    entry["version"] = json!(m.ready.as_ref().map(|v| &v.version));
    entry["state"] = json!(if m.ready.is_some() {
        "ready"
    } else {
        "building"
    });
    entry["building"] = json!(building);
    entry["sql"] = json!(m.deployed.sql);
    entry
}

async fn get_metric(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = params_from_query(name, query)?;
    let answer = state.service.answer(&params, (state.clock)()).await?;
    Ok(Json(answer).into_response())
}

async fn get_dimension_values(
    State(state): State<AppState>,
    Path((name, dimension)): Path<(String, String)>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = params_from_query(name, query)?;
    let answer = state
        .service
        .dimension_values(&params, &dimension, (state.clock)())
        .await?;
    Ok(Json(answer).into_response())
}

fn params_from_query(
    metric: String,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<QueryParams, ApiError> {
    let Query(pairs) = query.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_parameter",
            format!("malformed query string: {e}"),
        )
    })?;
    params_from_pairs(metric, pairs)
}

/// Splits query-string pairs into the named parameters and dimension filters.
pub(super) fn params_from_pairs(
    metric: String,
    pairs: Vec<(String, String)>,
) -> Result<QueryParams, ApiError> {
    let mut p = QueryParams {
        metric,
        ..Default::default()
    };
    for (k, v) in pairs {
        let Some(slot) = p.named_mut(&k) else {
            p.filters.push((k, v));
            continue;
        };
        if slot.is_some() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_parameter",
                format!("parameter `{k}` is given more than once"),
            ));
        }
        *slot = Some(v);
    }
    Ok(p)
}
