//! Runs the data team's metric SQL with DataFusion, apart from any transport.
//!
//! A metric query has one shape: `SELECT <dimensions>, <aggregate> FROM events [WHERE ...] GROUP BY
//! <dimensions>`. The engine plans it, checks that the aggregate merges across periods (COUNT, SUM,
//! COUNT(DISTINCT)), then runs it itself for every subset of the dimensions and per hour, so that
//! any filter or `group_by` is answered from a stored row and distinct counts stay exact per period.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, UInt64Type};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::Column;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::{SessionStateBuilder, SessionStateDefaults};
use datafusion::logical_expr::{col, Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::{SQLOptions, SessionContext};
use rust_decimal::Decimal;

use crate::model::dims::{subsets, Dims};
use crate::model::event_table;
use crate::model::measure::hash_value;
use crate::rollup::catalog::MetricDef;

/// Column the engine adds to `events`: the start of the hour each row belongs to, in epoch seconds.
pub(crate) const PERIOD_COLUMN: &str = "__period";

static TABLE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields: Vec<Field> = event_table::schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(PERIOD_COLUMN, DataType::Int64, false));
    Arc::new(Schema::new(fields))
});

/// Schema of the `events` table as the engine registers it (stored columns plus [`PERIOD_COLUMN`]).
pub(crate) fn table_schema() -> SchemaRef {
    TABLE_SCHEMA.clone()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MeasureKind {
    Count,
    Sum,
    DistinctCount,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{source_name}: {message}")]
    Definition {
        source_name: String,
        message: String,
    },
    #[error("query engine: {0}")]
    DataFusion(#[from] DataFusionError),
    #[error("query engine: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("{0}")]
    Value(String),
}

fn definition(def: &MetricDef, message: impl Into<String>) -> EngineError {
    EngineError::Definition {
        source_name: def.source.clone(),
        message: message.into(),
    }
}

/// The computed value of one group in one period.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Computed {
    Additive(Decimal),
    /// Sorted, deduplicated hashes of the distinct values.
    Distinct(Vec<u64>),
}

impl Computed {
    /// Adds `other`, the same group's value over other events: sums add, distinct sets union.
    pub(crate) fn absorb(&mut self, other: Computed) {
        *self = match (
            std::mem::replace(self, Computed::Additive(Decimal::ZERO)),
            other,
        ) {
            (Computed::Additive(a), Computed::Additive(b)) => Computed::Additive(a + b),
            (Computed::Distinct(a), Computed::Distinct(b)) => {
                Computed::Distinct(crate::lake::period_state::merge_sorted(&a, &b))
            }
            _ => unreachable!("one metric computes one kind of value"),
        };
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ComputedRow {
    pub period_start: i64,
    pub dims: Dims,
    pub value: Computed,
}

/// Rows of the same periods and groups over different events (shards of an hour, values folded
/// into one group), merged into one row per period and group.
#[derive(Default)]
pub(crate) struct MergedRows {
    rows: std::collections::BTreeMap<(i64, String), ComputedRow>,
}

impl MergedRows {
    pub(crate) fn add(&mut self, row: ComputedRow) {
        use std::collections::btree_map::Entry;
        match self
            .rows
            .entry((row.period_start, crate::model::dims::dims_key(&row.dims)))
        {
            Entry::Vacant(e) => {
                e.insert(row);
            }
            Entry::Occupied(mut e) => e.get_mut().value.absorb(row.value),
        }
    }

    pub(crate) fn extend(&mut self, rows: impl IntoIterator<Item = ComputedRow>) {
        rows.into_iter().for_each(|r| self.add(r));
    }

    /// The merged rows, by period and group.
    pub(crate) fn into_rows(self) -> Vec<ComputedRow> {
        self.rows.into_values().collect()
    }
}

struct Analysis {
    kind: MeasureKind,
    input: Arc<LogicalPlan>,
    aggregate: Expr,
    /// The declared dimensions as columns of the input, in declaration order.
    dimension_columns: Vec<Column>,
}

/// Plans `def` against the events schema and checks that it can be stored and merged.
pub async fn check(def: &MetricDef) -> Result<MeasureKind, EngineError> {
    let engine = Engine::new(vec![])?;
    Ok(engine.analyze(def).await?.kind)
}

/// A session with every function DataFusion registers by default (all a metric may call) and
/// none of its ways to other data: no file formats, table factories or table functions, which a
/// metric may not use (it reads only `events`). What is never registered is not linked, so the
/// rollup's binary carries no CSV, JSON or Arrow-file reader.
fn session() -> SessionContext {
    let state = SessionStateBuilder::new()
        .with_expr_planners(SessionStateDefaults::default_expr_planners())
        .with_scalar_functions(SessionStateDefaults::default_scalar_functions())
        .with_higher_order_functions(SessionStateDefaults::default_higher_order_functions())
        .with_aggregate_functions(SessionStateDefaults::default_aggregate_functions())
        .with_window_functions(SessionStateDefaults::default_window_functions())
        .build();
    SessionContext::new_with_state(state)
}

/// A DataFusion session over one set of event batches (each carrying [`PERIOD_COLUMN`]).
pub(crate) struct Engine {
    ctx: SessionContext,
}

impl Engine {
    pub(crate) fn new(batches: Vec<RecordBatch>) -> Result<Engine, EngineError> {
        let ctx = session();
        let table = MemTable::try_new(table_schema(), vec![batches])?;
        ctx.register_table("events", Arc::new(table))?;
        Ok(Engine { ctx })
    }

    async fn analyze(&self, def: &MetricDef) -> Result<Analysis, EngineError> {
        // A metric only reads `events`: no DDL, no DML (COPY), no SET, and below no other table
        // (a table function, a file path).
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = self
            .ctx
            .sql_with_options(&def.sql, options)
            .await
            .map_err(|e| definition(def, e.to_string()))?;
        let plan = df.logical_plan().clone();
        let mut other = None;
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                if scan.table_name.table() != "events" || scan.table_name.schema().is_some() {
                    other = Some(scan.table_name.to_string());
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        if let Some(table) = other {
            return Err(definition(
                def,
                format!("a metric may read only the table `events`, not `{table}`"),
            ));
        }
        let aggregate = find_aggregate(def, &plan)?;
        if aggregate
            .input
            .schema()
            .index_of_column_by_name(None, PERIOD_COLUMN)
            .is_none()
        {
            return Err(definition(def, "the query must aggregate directly over `events` (a subquery that drops columns is not supported)"));
        }
        let mut grouped = Vec::new();
        for g in &aggregate.group_expr {
            match g {
                Expr::Column(c) => grouped.push(c.clone()),
                other => {
                    return Err(definition(
                        def,
                        format!("GROUP BY may list only dimension columns, found `{other}`"),
                    ))
                }
            }
        }
        let mut dimension_columns = Vec::new();
        for d in &def.dimensions {
            match grouped.iter().find(|c| &c.name == d) {
                Some(c) => dimension_columns.push(c.clone()),
                None => {
                    return Err(definition(
                        def,
                        format!("declared dimension `{d}` is not in GROUP BY"),
                    ))
                }
            }
        }
        if let Some(extra) = grouped.iter().find(|c| !def.dimensions.contains(&c.name)) {
            return Err(definition(
                def,
                format!(
                    "GROUP BY column `{}` is not a declared dimension",
                    extra.name
                ),
            ));
        }
        let [aggr] = aggregate.aggr_expr.as_slice() else {
            return Err(definition(
                def,
                format!(
                    "expected exactly one aggregate, found {}",
                    aggregate.aggr_expr.len()
                ),
            ));
        };
        let mut aggr = aggr.clone();
        while let Expr::Alias(a) = aggr {
            aggr = *a.expr;
        }
        let Expr::AggregateFunction(f) = &aggr else {
            return Err(definition(
                def,
                format!("`{aggr}` is not an aggregate function"),
            ));
        };
        let name = f.func.name().to_ascii_lowercase();
        let kind = match (name.as_str(), f.params.distinct) {
            ("count", false) => MeasureKind::Count,
            ("count", true) | ("approx_distinct", _) => MeasureKind::DistinctCount,
            ("sum", false) => MeasureKind::Sum,
            ("min" | "max", _) => return Err(definition(def, format!("{} is not supported: only COUNT, SUM and COUNT(DISTINCT) are stored", name.to_uppercase()))),
            _ => return Err(definition(def, format!("aggregate {} cannot merge across periods: use COUNT, SUM or COUNT(DISTINCT) (an average is a SUM metric over a COUNT metric)", name.to_uppercase()))),
        };
        if kind == MeasureKind::DistinctCount && f.params.args.len() != 1 {
            return Err(definition(
                def,
                "COUNT(DISTINCT ...) must take exactly one expression",
            ));
        }
        if kind == MeasureKind::Sum {
            let output = aggregate
                .schema
                .field(aggregate.group_expr.len())
                .data_type();
            if !matches!(
                output,
                DataType::Int64 | DataType::UInt64 | DataType::Decimal128(..)
            ) {
                return Err(definition(
                    def,
                    format!(
                        "SUM must be over integers or decimals to stay exact, it yields {output}"
                    ),
                ));
            }
        }
        Ok(Analysis {
            kind,
            input: aggregate.input.clone(),
            aggregate: aggr,
            dimension_columns,
        })
    }

    /// Computes `def` for every subset of its dimensions, per [`PERIOD_COLUMN`] value.
    pub(crate) async fn compute(&self, def: &MetricDef) -> Result<Vec<ComputedRow>, EngineError> {
        let analysis = self.analyze(def).await?;
        let mut rows = Vec::new();
        for set in subsets(&analysis.dimension_columns) {
            rows.extend(self.compute_set(&analysis, &set).await?);
        }
        Ok(rows)
    }

    async fn compute_set(
        &self,
        a: &Analysis,
        set: &[&Column],
    ) -> Result<Vec<ComputedRow>, EngineError> {
        let mut group: Vec<Expr> = vec![col(PERIOD_COLUMN)];
        group.extend(set.iter().map(|c| Expr::Column((*c).clone())));
        let builder = LogicalPlanBuilder::from(a.input.clone());
        let plan = match a.kind {
            MeasureKind::Count | MeasureKind::Sum => {
                builder.aggregate(group, vec![a.aggregate.clone().alias("__value")])?
            }
            MeasureKind::DistinctCount => {
                let Expr::AggregateFunction(f) = &a.aggregate else {
                    unreachable!("checked in analyze")
                };
                let builder = match &f.params.filter {
                    Some(filter) => builder.filter(filter.as_ref().clone())?,
                    None => builder,
                };
                group.push(f.params.args[0].clone().alias("__v"));
                builder.aggregate(group, Vec::<Expr>::new())?
            }
        }
        .build()?;
        let batches = self.ctx.execute_logical_plan(plan).await?.collect().await?;
        let names: Vec<&str> = set.iter().map(|c| c.name.as_str()).collect();
        match a.kind {
            MeasureKind::DistinctCount => distinct_rows(&batches, &names),
            _ => additive_rows(&batches, &names),
        }
    }
}

fn find_aggregate<'a>(
    def: &MetricDef,
    plan: &'a LogicalPlan,
) -> Result<&'a datafusion::logical_expr::Aggregate, EngineError> {
    match plan {
        LogicalPlan::Aggregate(a) => Ok(a),
        LogicalPlan::Projection(p) => {
            for e in &p.expr {
                let mut inner = e;
                while let Expr::Alias(a) = inner {
                    inner = a.expr.as_ref();
                }
                if !matches!(inner, Expr::Column(_)) {
                    return Err(definition(def, format!("select only the dimensions and one aggregate; `{e}` computes over the aggregate, which cannot be stored")));
                }
            }
            find_aggregate(def, &p.input)
        }
        LogicalPlan::Sort(s) => find_aggregate(def, &s.input),
        LogicalPlan::Filter(_) => Err(definition(def, "HAVING cannot merge across periods; filter in WHERE")),
        LogicalPlan::Limit(_) => Err(definition(def, "LIMIT cannot merge across periods")),
        _ => Err(definition(def, "expected `SELECT <dimensions>, <aggregate> FROM events [WHERE ...] GROUP BY <dimensions>`")),
    }
}

fn string_column(batch: &RecordBatch, i: usize) -> Result<Arc<dyn Array>, EngineError> {
    Ok(cast(batch.column(i), &DataType::Utf8)?)
}

fn dims_of(cols: &[Arc<dyn Array>], names: &[&str], row: usize) -> Dims {
    names
        .iter()
        .zip(cols)
        .map(|(n, c)| {
            let s = c.as_string::<i32>();
            (
                n.to_string(),
                (!s.is_null(row)).then(|| s.value(row).to_string()),
            )
        })
        .collect()
}

fn additive_rows(batches: &[RecordBatch], names: &[&str]) -> Result<Vec<ComputedRow>, EngineError> {
    let mut out = Vec::new();
    for b in batches {
        let period = b.column(0).as_primitive::<Int64Type>();
        let dims: Vec<_> = (1..=names.len())
            .map(|i| string_column(b, i))
            .collect::<Result<_, _>>()?;
        let value = b.column(names.len() + 1);
        for row in 0..b.num_rows() {
            out.push(ComputedRow {
                period_start: period.value(row),
                dims: dims_of(&dims, names, row),
                value: Computed::Additive(decimal_at(value.as_ref(), row)?),
            });
        }
    }
    Ok(out)
}

fn decimal_at(a: &dyn Array, row: usize) -> Result<Decimal, EngineError> {
    if a.is_null(row) {
        return Ok(Decimal::ZERO);
    }
    match a.data_type() {
        DataType::Int64 => Ok(a.as_primitive::<Int64Type>().value(row).into()),
        DataType::UInt64 => Ok(a.as_primitive::<UInt64Type>().value(row).into()),
        DataType::Decimal128(_, scale) => {
            let v = a
                .as_primitive::<arrow::datatypes::Decimal128Type>()
                .value(row);
            Decimal::try_from_i128_with_scale(v, *scale as u32).map_err(|e| {
                EngineError::Value(format!("sum {v}e-{scale} does not fit a decimal: {e}"))
            })
        }
        other => Err(EngineError::Value(format!(
            "unsupported measure type {other}"
        ))),
    }
}

fn distinct_rows(batches: &[RecordBatch], names: &[&str]) -> Result<Vec<ComputedRow>, EngineError> {
    let mut groups: HashMap<(i64, Vec<Option<String>>), Vec<u64>> = HashMap::new();
    for b in batches {
        let period = b.column(0).as_primitive::<Int64Type>();
        let dims: Vec<_> = (1..=names.len())
            .map(|i| string_column(b, i))
            .collect::<Result<_, _>>()?;
        let values = string_column(b, names.len() + 1)?;
        let values = values.as_string::<i32>();
        for row in 0..b.num_rows() {
            let key: Vec<Option<String>> = dims
                .iter()
                .map(|c| {
                    let s = c.as_string::<i32>();
                    (!s.is_null(row)).then(|| s.value(row).to_string())
                })
                .collect();
            let hashes = groups.entry((period.value(row), key)).or_default();
            // COUNT(DISTINCT) ignores nulls; a group whose values are all null still exists, with 0.
            if !values.is_null(row) {
                hashes.push(hash_value(values.value(row)));
            }
        }
    }
    let mut out: Vec<ComputedRow> = groups
        .into_iter()
        .map(|((period_start, key), mut hashes)| {
            hashes.sort_unstable();
            hashes.dedup();
            ComputedRow {
                period_start,
                dims: names.iter().map(|n| n.to_string()).zip(key).collect(),
                value: Computed::Distinct(hashes),
            }
        })
        .collect();
    out.sort_by(|a, b| (a.period_start, &a.dims).cmp(&(b.period_start, &b.dims)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::catalog::Catalog;

    fn def(sql: &str, dims: &str) -> MetricDef {
        MetricDef::parse(
            "sql/test.sql",
            &format!("-- name: t\n-- dimensions: {dims}\n{sql}"),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn shipped_metrics_pass_the_check() {
        let kinds: Vec<_> =
            futures::future::try_join_all(Catalog::builtin().computed().map(|m| check(m)))
                .await
                .unwrap();
        assert_eq!(
            kinds,
            [
                MeasureKind::Count, // average_price__count
                MeasureKind::Sum,   // average_price__sum
                MeasureKind::Count,
                MeasureKind::Count,
                MeasureKind::Sum,
                MeasureKind::Count,
                MeasureKind::DistinctCount
            ]
        );
    }

    #[tokio::test]
    async fn check_rejects_what_cannot_be_stored_and_names_the_file() {
        let cases = [
            (
                "SELECT country, AVG(quantity) AS v FROM events GROUP BY country",
                "country",
                "AVG cannot merge",
            ),
            (
                "SELECT country, COUNT(*) AS v FROM events GROUP BY country",
                "country, nosuch",
                "not in GROUP BY",
            ),
            (
                "SELECT nosuch, COUNT(*) AS v FROM events GROUP BY nosuch",
                "nosuch",
                "nosuch",
            ),
            (
                "SELECT country, COUNT(*) AS v FROM events GROUP BY country HAVING COUNT(*) > 1",
                "country",
                "HAVING",
            ),
            (
                "SELECT country, COUNT(*) * 2 AS v FROM events GROUP BY country",
                "country",
                "computes over the aggregate",
            ),
            (
                "SELECT country, browser, COUNT(*) AS v FROM events GROUP BY country, browser",
                "country",
                "not a declared dimension",
            ),
            (
                "SELECT country, MEDIAN(quantity) AS v FROM events GROUP BY country",
                "country",
                "MEDIAN cannot merge",
            ),
        ];
        for (sql, dims, want) in cases {
            let e = check(&def(sql, dims)).await.expect_err(sql).to_string();
            assert!(e.starts_with("sql/test.sql: "), "{e}");
            assert!(e.contains(want), "{sql}: {e}");
        }
    }

    #[tokio::test]
    async fn a_metric_reads_only_events() {
        let cases = [
            // The session knows no file format, so COPY fails while it is planned.
            (
                "COPY events TO '/tmp/tally-copy.csv'",
                "no registered file format",
            ),
            ("CREATE TABLE x AS SELECT 1 AS value", "not supported"),
            ("DROP TABLE events", "not supported"),
            ("SET datafusion.execution.batch_size = 1", "not supported"),
            ("INSERT INTO events SELECT * FROM events", "not supported"),
            (
                "SELECT COUNT(*) AS value FROM information_schema.tables",
                "not found",
            ),
            ("SELECT COUNT(*) AS value FROM '/etc/passwd'", "not found"),
            ("SELECT COUNT(*) AS value FROM generate_series(1, 3)", ""),
            (
                "SELECT COUNT(*) AS value FROM events e JOIN (SELECT * FROM range(3)) r ON true",
                "",
            ),
        ];
        for (sql, want) in cases {
            let e = check(&def(sql, "")).await.expect_err(sql).to_string();
            assert!(e.starts_with("sql/test.sql: "), "{e}");
            assert!(
                e.contains(want) || e.contains("only the table `events`"),
                "{sql}: {e}"
            );
        }
        assert!(!std::path::Path::new("/tmp/tally-copy.csv").exists());
    }
}
