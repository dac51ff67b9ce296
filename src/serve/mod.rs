//! Answers for the admin dashboard: query semantics over stored period rows ([`QueryService`]) and
//! the HTTP API that serves them ([`router`]) with the admin console, the same for `tally serve` and
//! the api function.

mod console;
mod http;
pub(crate) mod query;
mod ratio;

pub use console::SignIn;
pub use http::{
    router, router_with_clock, ApiOptions, Clock, CorsOrigin, MAX_QUERY_BYTES, MAX_QUERY_PARAMS,
};
pub use query::{
    Compare, DimensionValue, DimensionValues, Group, Interval, MetricResponse, Point, QueryError,
    QueryOptions, QueryParams, QueryService, TimeRange, DEFAULT_CATALOG_TTL,
    DEFAULT_MAX_RANGE_DAYS,
};
pub use ratio::{Answer, RatioGroup, RatioPoint, RatioResponse};
