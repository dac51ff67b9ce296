//! The api function: the same router as `tally serve`, behind API Gateway (HTTP API, payload 2.0).

use std::sync::Arc;

use tally::serve::{router, ApiOptions};
use tally::serve::{QueryOptions, QueryService};
use tally::store::PeriodStore;

pub fn app(store: Arc<dyn PeriodStore>, query: QueryOptions, api: ApiOptions) -> axum::Router {
    let catalog = tally::rollup::Catalog::builtin();
    router(Arc::new(QueryService::new(store, catalog, query)), api)
}
