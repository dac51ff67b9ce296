//! The api function: the same router as `tally serve`, behind API Gateway (HTTP API, payload 2.0).

use std::sync::Arc;

use tally::http::{router, ApiOptions};
use tally::query::{QueryOptions, QueryService};
use tally::store::PeriodStore;

pub fn app(
    store: Arc<dyn PeriodStore>,
    reporting_tz: chrono_tz::Tz,
    options: ApiOptions,
    max_range_days: i64,
) -> axum::Router {
    let query = QueryOptions {
        reporting_tz,
        max_range_days,
        ..QueryOptions::default()
    };
    router(
        Arc::new(QueryService::new(
            store,
            tally::catalog::Catalog::builtin(),
            query,
        )),
        options,
    )
}
