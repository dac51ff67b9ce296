//! The api function: the same router as `tally serve`, behind API Gateway (HTTP API, payload 2.0).

use std::sync::Arc;

use tally::lake::Storage;
use tally::serve::{router, ApiOptions};
use tally::serve::{QueryOptions, QueryService};
use tally::store::PeriodStore;

/// Answers from the catalog deployed in the bucket (the built-in one until a deploy), each metric
/// from the version the rollup has built.
pub fn app(
    store: Arc<dyn PeriodStore>,
    storage: Storage,
    query: QueryOptions,
    api: ApiOptions,
) -> axum::Router {
    let catalog = tally::rollup::Catalog::builtin();
    let service = QueryService::from_lake(store, storage, catalog, query);
    router(Arc::new(service), api)
}
