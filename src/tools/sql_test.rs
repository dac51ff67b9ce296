//! `tally sql test`: the data team's tests beside their SQL, `sql/tests/*.toml`: events in,
//! expected numbers out, run through the real pipeline (ingest, rollup, query) on a temporary lake,
//! like dbt's unit tests. The format is in `docs/metrics.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::Utc;
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::ingest;
use crate::rollup::Catalog;
use crate::runtime::config::parse_reporting_tz;
use crate::runtime::Local;
use crate::serve::{Answer, QueryOptions, QueryParams};

/// One test file: a metric, its input, and what it must answer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    metric: String,
    #[serde(default)]
    description: String,
    /// The zone the rollup stores days and months in; UTC when absent.
    reporting_tz: Option<String>,
    /// Events, one table each (`{ event_id = "a", event_type = "purchase", ... }`).
    #[serde(default)]
    events: Vec<toml::Table>,
    /// Raw NDJSON lines, for input that is not a well-formed event (it must be quarantined).
    #[serde(default)]
    lines: Vec<String>,
    #[serde(default)]
    expect: Vec<Expectation>,
}

/// One query and the numbers it must give; each number given is checked, the others are not.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectation {
    from: String,
    to: String,
    tz: Option<String>,
    interval: Option<String>,
    compare: Option<String>,
    #[serde(default)]
    filters: BTreeMap<String, String>,
    group_by: Option<String>,
    /// The range's total.
    value: Option<Number>,
    /// The comparison range's total.
    previous: Option<Number>,
    /// The all-time total.
    total: Option<Number>,
    /// The value of each interval of the range, in order.
    series: Option<Vec<Number>>,
    /// With `group_by`: the range's value per group (every group with a value, no other).
    groups: Option<BTreeMap<String, Number>>,
}

/// An expected number: a string (exact, the way to write money) or a TOML integer or float; or
/// `"none"` where a ratio has no value (its denominator is zero).
#[derive(Debug, Clone, Copy)]
struct Number(Option<Decimal>);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Number, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Text(String),
            Int(i64),
            Float(f64),
        }
        let text = match Given::deserialize(d)? {
            Given::Text(s) => s,
            Given::Int(i) => i.to_string(),
            Given::Float(f) => f.to_string(),
        };
        if text.trim() == "none" {
            return Ok(Number(None));
        }
        text.trim().parse().map(|d| Number(Some(d))).map_err(|_| {
            serde::de::Error::custom(format!("{text:?} is not a decimal number, nor \"none\""))
        })
    }
}

/// What a run found: files and checks run, and the failures (already printed).
#[derive(Debug, Default, PartialEq)]
pub struct SqlTestReport {
    pub files: usize,
    pub checks: usize,
    pub failures: usize,
}

/// Runs every `*.toml` test in `dir` against `catalog`, printing a line per expectation and, for
/// each failure, a table of what was expected and what came out.
pub async fn run(catalog: &Catalog, dir: &Path, out: &mut String) -> SqlTestReport {
    let mut report = SqlTestReport::default();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(e) => {
            let _ = writeln!(
                out,
                "FAIL  {}: cannot read the test directory: {e}",
                dir.display()
            );
            report.failures += 1;
            return report;
        }
    };
    files.sort();
    for path in files {
        report.files += 1;
        if let Err(message) = run_file(catalog, &path, out, &mut report).await {
            let _ = writeln!(out, "FAIL  {}: {message}", path.display());
            report.failures += 1;
        }
    }
    let _ = writeln!(
        out,
        "\n{} test files, {} checks, {} failed",
        report.files, report.checks, report.failures
    );
    report
}

async fn run_file(
    catalog: &Catalog,
    path: &Path,
    out: &mut String,
    report: &mut SqlTestReport,
) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let test: TestFile = toml::from_str(&text).map_err(|e| format!("not a test file: {e}"))?;
    if catalog.get(&test.metric).is_none() {
        return Err(format!("no metric `{}` in the catalog", test.metric));
    }
    if test.expect.is_empty() {
        return Err("no [[expect]]: a test must check something".into());
    }
    let reporting_tz: Tz = match &test.reporting_tz {
        None => Tz::UTC,
        Some(name) => parse_reporting_tz("reporting_tz", name).map_err(|e| e.to_string())?,
    };
    let mut ndjson = String::new();
    for event in &test.events {
        ndjson.push_str(&serde_json::to_string(&json_of_table(event)).expect("JSON"));
        ndjson.push('\n');
    }
    for line in &test.lines {
        ndjson.push_str(line);
        ndjson.push('\n');
    }
    let lake = tempfile::tempdir().map_err(|e| format!("cannot make a temporary lake: {e}"))?;
    let local =
        Local::open(lake.path(), catalog.clone(), reporting_tz).map_err(|e| e.to_string())?;
    let now = Utc::now();
    ingest::ingest_ndjson(&local.storage, ndjson.as_bytes(), now)
        .await
        .map_err(|e| format!("ingest failed: {e}"))?;
    local
        .rollup()
        .run_touched(None)
        .await
        .map_err(|e| format!("rollup failed: {e}"))?;
    let service = local.query_service(QueryOptions::default());
    let title = if test.description.is_empty() {
        test.metric.clone()
    } else {
        format!("{}: {}", test.metric, test.description)
    };
    let _ = writeln!(out, "{}  {title}", path.display());
    for (i, e) in test.expect.iter().enumerate() {
        let params = QueryParams {
            metric: test.metric.clone(),
            from: Some(e.from.clone()),
            to: Some(e.to.clone()),
            tz: e.tz.clone(),
            interval: e.interval.clone(),
            group_by: e.group_by.clone(),
            limit: e.group_by.as_ref().map(|_| "1000".to_string()),
            compare: e.compare.clone(),
            filters: e.filters.clone().into_iter().collect(),
        };
        let what = describe(e);
        let answer = match service.answer(&params, now).await {
            Ok(a) => a,
            Err(err) => {
                report.failures += 1;
                let _ = writeln!(
                    out,
                    "  FAIL  #{}: {what}: the query was refused: {err}",
                    i + 1
                );
                continue;
            }
        };
        let rows = compare(e, &answer);
        report.checks += rows.len();
        if rows.iter().all(|r| r.2) {
            let _ = writeln!(out, "  ok    #{}: {what} ({} checks)", i + 1, rows.len());
        } else {
            report.failures += 1;
            let _ = writeln!(out, "  FAIL  #{}: {what}", i + 1);
            let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(4);
            let _ = writeln!(
                out,
                "        {:width$}  {:>14}  {:>14}",
                "what", "expected", "got"
            );
            for (name, (want, got), ok) in rows {
                let mark = if ok { "" } else { "  <- differs" };
                let _ = writeln!(out, "        {name:width$}  {want:>14}  {got:>14}{mark}");
            }
        }
    }
    Ok(())
}

fn describe(e: &Expectation) -> String {
    let mut s = format!("{} .. {}", e.from, e.to);
    for (k, v) in [
        ("tz", &e.tz),
        ("interval", &e.interval),
        ("compare", &e.compare),
    ] {
        if let Some(v) = v {
            let _ = write!(s, " {k}={v}");
        }
    }
    for (k, v) in &e.filters {
        let _ = write!(s, " {k}={v}");
    }
    if let Some(g) = &e.group_by {
        let _ = write!(s, " by {g}");
    }
    s
}

/// `(what, (expected, got), equal)` for every number the expectation gives.
fn compare(e: &Expectation, a: &Answer) -> Vec<(String, (String, String), bool)> {
    let mut rows = Vec::new();
    // `None`: no such number (a series point or a group missing); `Some(None)`: a ratio without
    // a value.
    let mut check = |name: String, want: Option<Option<Decimal>>, got: Option<Option<Decimal>>| {
        let show = |v: Option<Option<Decimal>>| match v {
            None => "(missing)".to_string(),
            Some(None) => "none".to_string(),
            Some(Some(d)) => d.normalize().to_string(),
        };
        rows.push((name, (show(want), show(got)), want == got));
    };
    if let Some(v) = e.value {
        check("value".into(), Some(v.0), Some(a.current_total()));
    }
    if let Some(v) = e.previous {
        check("previous".into(), Some(v.0), Some(a.previous_total()));
    }
    if let Some(v) = e.total {
        check("total (all time)".into(), Some(v.0), Some(a.total()));
    }
    if let Some(series) = &e.series {
        let got = a.series();
        for i in 0..series.len().max(got.len()) {
            let name = match got.get(i) {
                Some((start, _)) => format!("series {start}"),
                None => format!("series [{i}]"),
            };
            check(name, series.get(i).map(|n| n.0), got.get(i).map(|p| p.1));
        }
    }
    if let Some(groups) = &e.groups {
        let got: BTreeMap<String, Option<Decimal>> = a
            .groups()
            .into_iter()
            .flatten()
            .filter(|(_, v)| v.is_some_and(|v| !v.is_zero()))
            .map(|(g, v)| (g.unwrap_or_else(|| "(none)".into()), v))
            .collect();
        let names: std::collections::BTreeSet<&String> = groups.keys().chain(got.keys()).collect();
        for name in names {
            check(
                format!("group {name}"),
                groups.get(name).map(|n| n.0),
                got.get(name).copied(),
            );
        }
    }
    rows
}

/// A TOML table as the JSON object a producer would send (TOML times become RFC 3339 text).
fn json_of_table(table: &toml::Table) -> serde_json::Value {
    serde_json::Value::Object(table.iter().map(|(k, v)| (k.clone(), json_of(v))).collect())
}

fn json_of(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => s.clone().into(),
        toml::Value::Integer(i) => (*i).into(),
        toml::Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into)
        }
        toml::Value::Boolean(b) => (*b).into(),
        toml::Value::Datetime(d) => d.to_string().into(),
        toml::Value::Array(items) => items.iter().map(json_of).collect(),
        toml::Value::Table(t) => json_of_table(t),
    }
}
