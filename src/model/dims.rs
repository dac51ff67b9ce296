//! Dimension values of a stored row: which dimensions it is grouped by (its set) and their values.
//! A row of the empty set holds the metric's overall value.

use std::collections::BTreeMap;

/// Dimension name to value; `None` where events had no value. Ordered, so keys are canonical.
pub type Dims = BTreeMap<String, Option<String>>;

/// Canonical text of the dimension values, unique per group: `{"browser":"Chrome","country":null}`.
pub(crate) fn dims_key(dims: &Dims) -> String {
    serde_json::to_string(dims).expect("string map serialises")
}

pub(crate) fn parse_dims_key(key: &str) -> Result<Dims, serde_json::Error> {
    serde_json::from_str(key)
}

/// Every subset of a metric's dimensions, in a fixed order: the groupings the rollup computes and
/// stores for each period, so that any filter or `group_by` is answered from a stored row.
pub(crate) fn subsets<T>(dimensions: &[T]) -> impl Iterator<Item = Vec<&T>> {
    (0..1u32 << dimensions.len()).map(move |mask| {
        (0..dimensions.len())
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| &dimensions[i])
            .collect()
    })
}

/// Canonical text of the set of dimensions a row is grouped by: sorted names joined by commas.
pub(crate) fn dim_set_key<'a>(names: impl IntoIterator<Item = &'a String>) -> String {
    let mut names: Vec<&str> = names.into_iter().map(String::as_str).collect();
    names.sort_unstable();
    names.join(",")
}
