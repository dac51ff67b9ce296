//! The metric catalog: the data team's SQL files, each a header of `-- key: value` lines and a query.
//!
//! ```sql
//! -- name: sign_ins
//! -- title: Sign-ins
//! -- description: Number of sign-in events.
//! -- unit: events
//! -- dimensions: country, browser
//! -- max_values: 500
//! SELECT country, browser, COUNT(*) AS value FROM events WHERE event_type = 'sign-in' GROUP BY country, browser
//! ```
//!
//! Two more kinds of file. A **formula** has a `-- formula: revenue / purchases` header and no
//! query: its numbers divide one metric's by another's, over the dimensions both have. An
//! **average** is a query with `AVG(x)`: the catalog stores it as two hidden metrics, `SUM(x)` and
//! `COUNT(x)` (named `<name>__sum` and `<name>__count`), and answers their ratio, so it merges
//! exactly across hours, days, months and zones.
//!
//! `max_values` bounds the values of each dimension with a group of their own (the rest are
//! counted in one `(other)` group; see `crate::rollup::cardinality`); it is optional.
//!
//! Reading the catalog needs no query engine (the API loads it); `crate::rollup::engine` plans and checks the queries.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::rollup::cardinality::DEFAULT_MAX_VALUES;

include!(concat!(env!("OUT_DIR"), "/builtin_sql.rs"));

/// The metrics API's named query parameters (the HTTP layer reads these; every other parameter is
/// a dimension filter), so no dimension may take one of these names, nor `metric`.
pub(crate) const API_PARAMS: [&str; 7] = [
    "from", "to", "tz", "interval", "group_by", "limit", "compare",
];
/// How this code stores a metric's rows and period states; part of every version, so that a
/// release storing them differently rebuilds every metric beside the old rows.
const STORED_FORMAT: &str = "rows+sums+distinct+bounded/2";
/// Every subset of the dimensions is stored, so their number is kept small.
pub(crate) const MAX_DIMENSIONS: usize = 4;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetricDef {
    pub name: String,
    pub title: String,
    pub description: String,
    pub unit: String,
    pub dimensions: Vec<String>,
    /// Values of each dimension with a group of their own; the rest are counted in `(other)`.
    pub max_values: usize,
    #[serde(skip)]
    pub sql: String,
    /// Where the definition came from, for messages.
    #[serde(skip)]
    pub source: String,
    /// The whole file as written (header and query): what a deploy publishes.
    #[serde(skip)]
    pub text: String,
    /// For a formula (or an average), the two metrics whose ratio it answers.
    #[serde(
        serialize_with = "formula_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub formula: Option<Formula>,
    /// A metric the catalog made from an average's query: built and stored, not listed.
    #[serde(skip)]
    pub hidden: bool,
}

/// `numerator / denominator`, two metrics of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formula {
    pub numerator: String,
    pub denominator: String,
}

fn formula_text_of(f: &Option<Formula>) -> String {
    f.as_ref().map_or(String::new(), |f| {
        format!("{} / {}", f.numerator, f.denominator)
    })
}

fn formula_text<S: serde::Serializer>(f: &Option<Formula>, s: S) -> Result<S::Ok, S::Error> {
    match f {
        Some(f) => s.serialize_str(&format!("{} / {}", f.numerator, f.denominator)),
        None => s.serialize_none(),
    }
}

/// The suffixes of the two hidden metrics an average is stored as.
const AVERAGE_PARTS: [(&str, &str); 2] = [("__sum", "SUM("), ("__count", "COUNT(")];

#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct CatalogError {
    pub source_name: String,
    pub message: String,
}

fn err(source: &str, message: impl Into<String>) -> CatalogError {
    CatalogError {
        source_name: source.to_string(),
        message: message.into(),
    }
}

fn valid_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

impl MetricDef {
    /// Parses one SQL file. `source` names it in errors (`sql/visitors.sql`).
    pub fn parse(source: &str, text: &str) -> Result<MetricDef, CatalogError> {
        MetricDef::parse_with(source, text, false)
    }

    /// Parses a definition the rollup recorded, the hidden parts of averages (`x__sum`) included.
    pub(crate) fn parse_recorded(source: &str, text: &str) -> Result<MetricDef, CatalogError> {
        MetricDef::parse_with(source, text, true)
    }

    fn parse_with(source: &str, text: &str, parts: bool) -> Result<MetricDef, CatalogError> {
        let mut def = MetricDef {
            name: String::new(),
            title: String::new(),
            description: String::new(),
            unit: String::new(),
            dimensions: Vec::new(),
            max_values: DEFAULT_MAX_VALUES,
            sql: String::new(),
            source: source.to_string(),
            text: text.to_string(),
            formula: None,
            hidden: false,
        };
        let mut body = Vec::new();
        let mut in_header = true;
        for (number, line) in text.lines().enumerate() {
            let header = line.trim().strip_prefix("--").map(str::trim);
            match header.and_then(|h| h.split_once(':')) {
                Some((key, value)) if in_header => {
                    let at = format!("{source}:{}", number + 1);
                    let value = value.trim().to_string();
                    match key.trim() {
                        "name" => def.name = value,
                        "title" => def.title = value,
                        "description" => def.description = value,
                        "unit" => def.unit = value,
                        "formula" => def.formula = Some(parse_formula(&at, &value)?),
                        "max_values" => def.max_values = parse_max_values(&at, &value)?,
                        "dimensions" => {
                            def.dimensions = value
                                .split(',')
                                .map(|d| d.trim().to_string())
                                .filter(|d| !d.is_empty())
                                .collect()
                        }
                        other => return Err(err(&at, format!("unknown header key `{other}`"))),
                    }
                }
                _ => {
                    if !line.trim().is_empty() && header.is_none() {
                        in_header = false;
                    }
                    if !in_header {
                        body.push(line);
                    }
                }
            }
        }
        def.sql = body.join("\n").trim().trim_end_matches(';').to_string();
        def.hidden = parts && def.name.contains("__");
        if !valid_identifier(&def.name) || (def.name.contains("__") && !def.hidden) {
            return Err(err(
                source,
                format!(
                    "header `name` must be lowercase letters, digits and single _ (got {:?})",
                    def.name
                ),
            ));
        }
        if def.title.is_empty() {
            def.title = def.name.clone();
        }
        match (&def.formula, def.sql.is_empty()) {
            (None, true) => return Err(err(source, "no query after the header")),
            (Some(_), false) => {
                return Err(err(
                    source,
                    "a formula has no query: its numbers come from the two metrics it names",
                ))
            }
            (Some(_), true) if !def.dimensions.is_empty() => return Err(err(
                source,
                "a formula's dimensions are those both of its metrics have: leave out `dimensions`",
            )),
            (Some(_), true) if def.max_values != DEFAULT_MAX_VALUES => {
                return Err(err(
                    source,
                    "a formula's groups are those of its two metrics: set `max_values` on them",
                ))
            }
            _ => {}
        }
        if def.dimensions.len() > MAX_DIMENSIONS {
            return Err(err(
                source,
                format!("at most {MAX_DIMENSIONS} dimensions are supported"),
            ));
        }
        for d in &def.dimensions {
            if !valid_identifier(d) {
                return Err(err(
                    source,
                    format!("dimension {d:?} must be a lowercase column name"),
                ));
            }
            if d == "metric" || API_PARAMS.contains(&d.as_str()) {
                return Err(err(
                    source,
                    format!("dimension `{d}` clashes with the API parameter of that name"),
                ));
            }
        }
        let mut sorted = def.dimensions.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != def.dimensions.len() {
            return Err(err(source, "a dimension is listed twice"));
        }
        Ok(def)
    }

    /// The version of the numbers this definition makes when days and months are stored in
    /// `reporting_tz`: a hash of everything they depend on (the query with its whitespace and
    /// comments normalised, the dimensions, the bound on their values, the zone), not of the
    /// title, description or unit.
    pub fn version(&self, reporting_tz: chrono_tz::Tz) -> String {
        let hash = blake3::hash(
            format!(
                "{STORED_FORMAT}\n{}\n{}\n{}\n{}\n{}",
                formula_text_of(&self.formula),
                normalised_query(&self.sql),
                self.dimensions.join(","),
                self.max_values,
                reporting_tz.name()
            )
            .as_bytes(),
        );
        hash.to_hex()[..12].to_string()
    }
}

/// The query with comments dropped and each run of whitespace made one space, both outside quoted
/// text only (`'a  b'` and `'a--b'` are values, and a change to them is a change of the metric).
fn normalised_query(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '-' && chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                if !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            None if c.is_whitespace() => {
                if !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            None => out.push(c),
        }
    }
    out.trim().to_string()
}

/// The largest bound a header may set: past it, the bound no longer bounds the cost.
const MAX_VALUES_LIMIT: usize = 1_000_000;

fn parse_max_values(at: &str, value: &str) -> Result<usize, CatalogError> {
    match value.parse::<usize>() {
        Ok(n) if (1..=MAX_VALUES_LIMIT).contains(&n) => Ok(n),
        _ => Err(err(
            at,
            format!(
                "`max_values` must be a whole number from 1 to {MAX_VALUES_LIMIT} (got {value:?})"
            ),
        )),
    }
}

fn parse_formula(at: &str, value: &str) -> Result<Formula, CatalogError> {
    let parts: Vec<&str> = value.split('/').map(str::trim).collect();
    match parts.as_slice() {
        [a, b] if valid_identifier(a) && valid_identifier(b) => Ok(Formula {
            numerator: a.to_string(),
            denominator: b.to_string(),
        }),
        _ => Err(err(
            at,
            format!("formula must be `metric / metric`, got {value:?}"),
        )),
    }
}

/// Where `AVG(` starts in a query, outside quotes and case aside, if it does once; an error if it
/// does more than once.
fn average_at(def: &MetricDef) -> Result<Option<usize>, CatalogError> {
    let lower = def.sql.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut found = Vec::new();
    let mut quote: Option<u8> = None;
    for (i, &c) in bytes.iter().enumerate() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None => {
                let starts_word =
                    i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
                if starts_word && lower[i..].starts_with("avg(") {
                    found.push(i);
                }
            }
        }
    }
    match found.as_slice() {
        [] => Ok(None),
        [i] => Ok(Some(*i)),
        _ => Err(err(&def.source, "at most one AVG(...) per metric")),
    }
}

/// An average's two hidden metrics, its query's `AVG(` made `SUM(` and `COUNT(`; the average
/// itself becomes their formula.
fn split_average(def: &mut MetricDef, at: usize) -> Vec<MetricDef> {
    let mut parts = Vec::new();
    for (suffix, aggregate) in AVERAGE_PARTS {
        let sql = format!("{}{aggregate}{}", &def.sql[..at], &def.sql[at + 4..]);
        let name = format!("{}{suffix}", def.name);
        parts.push(MetricDef {
            // What the rollup records of the version it builds (read back by `parse_recorded`).
            text: format!(
                "-- name: {name}\n-- dimensions: {}\n-- max_values: {}\n{sql}\n",
                def.dimensions.join(", "),
                def.max_values
            ),
            name,
            title: format!("{} ({})", def.title, suffix.trim_start_matches('_')),
            description: String::new(),
            unit: def.unit.clone(),
            dimensions: def.dimensions.clone(),
            max_values: def.max_values,
            sql,
            source: def.source.clone(),
            formula: None,
            hidden: true,
        });
    }
    def.formula = Some(Formula {
        numerator: parts[0].name.clone(),
        denominator: parts[1].name.clone(),
    });
    parts
}

/// Checks every formula's metrics exist and form no cycle, and gives each formula the dimensions
/// both its metrics have.
fn resolve_formulas(metrics: &mut [MetricDef]) -> Result<(), CatalogError> {
    fn dims_of(
        name: &str,
        metrics: &[MetricDef],
        path: &mut Vec<String>,
    ) -> Result<Vec<String>, CatalogError> {
        let def = metrics
            .iter()
            .find(|m| m.name == name)
            .expect("checked by the caller");
        let Some(f) = &def.formula else {
            return Ok(def.dimensions.clone());
        };
        if path.iter().any(|p| p == name) {
            path.push(name.to_string());
            return Err(err(
                &def.source,
                format!(
                    "formulas refer to each other in a cycle: {}",
                    path.join(" -> ")
                ),
            ));
        }
        path.push(name.to_string());
        let mut sides = Vec::new();
        for side in [&f.numerator, &f.denominator] {
            if !metrics.iter().any(|m| &m.name == side) {
                return Err(err(
                    &def.source,
                    format!("formula of `{name}` refers to `{side}`, which is not a metric of the catalog"),
                ));
            }
            sides.push(dims_of(side, metrics, path)?);
        }
        path.pop();
        Ok(sides[0]
            .iter()
            .filter(|d| sides[1].contains(d))
            .cloned()
            .collect())
    }
    for i in 0..metrics.len() {
        if metrics[i].formula.is_some() && !metrics[i].hidden {
            let dims = dims_of(&metrics[i].name.clone(), metrics, &mut Vec::new())?;
            metrics[i].dimensions = dims;
        }
    }
    Ok(())
}

/// All metric definitions, by name.
#[derive(Debug, Clone)]
pub struct Catalog {
    metrics: Vec<Arc<MetricDef>>,
}

impl Catalog {
    pub fn from_sources<'a>(
        files: impl IntoIterator<Item = (String, &'a str)>,
    ) -> Result<Catalog, CatalogError> {
        let mut metrics: Vec<MetricDef> = Vec::new();
        for (source, text) in files {
            let mut def = MetricDef::parse(&source, text)?;
            if let Some(prev) = metrics.iter().find(|m| m.name == def.name) {
                return Err(err(
                    &source,
                    format!("metric `{}` is also defined in {}", def.name, prev.source),
                ));
            }
            let parts = match average_at(&def)? {
                Some(at) if def.formula.is_none() => split_average(&mut def, at),
                _ => Vec::new(),
            };
            metrics.push(def);
            metrics.extend(parts);
        }
        resolve_formulas(&mut metrics)?;
        let mut metrics: Vec<Arc<MetricDef>> = metrics.into_iter().map(Arc::new).collect();
        metrics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Catalog { metrics })
    }

    /// The definitions compiled into this binary from the repository's `sql/`.
    pub fn builtin() -> Catalog {
        Catalog::from_sources(BUILTIN_SQL.iter().map(|(f, t)| (format!("sql/{f}"), *t)))
            .expect("the shipped sql/ files are checked by the test suite")
    }

    /// Reads every `*.sql` file of a directory.
    pub fn from_dir(dir: &Path) -> Result<Catalog, CatalogError> {
        let name = dir.display().to_string();
        let entries = std::fs::read_dir(dir)
            .map_err(|e| err(&name, format!("cannot read directory: {e}")))?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| err(&name, e.to_string()))?.path();
            if path.extension().is_some_and(|x| x == "sql") {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| err(&path.display().to_string(), e.to_string()))?;
                files.push((path.display().to_string(), text));
            }
        }
        files.sort();
        Catalog::from_sources(files.iter().map(|(p, t)| (p.clone(), t.as_str())))
    }

    pub fn get(&self, name: &str) -> Option<&Arc<MetricDef>> {
        self.metrics.iter().find(|m| m.name == name)
    }

    /// Every definition, the hidden parts of averages included.
    pub fn metrics(&self) -> &[Arc<MetricDef>] {
        &self.metrics
    }

    /// The definitions the rollup computes from events: all but formulas and averages.
    pub fn computed(&self) -> impl Iterator<Item = &Arc<MetricDef>> {
        self.metrics.iter().filter(|m| m.formula.is_none())
    }

    /// The definitions a deploy publishes and the API lists: all but the hidden parts of averages.
    pub fn listed(&self) -> impl Iterator<Item = &Arc<MetricDef>> {
        self.metrics.iter().filter(|m| !m.hidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_has_the_shipped_metrics() {
        let c = Catalog::builtin();
        let names: Vec<_> = c.listed().map(|m| m.name.as_str()).collect();
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
            c.get("visitors").unwrap().dimensions,
            ["country", "browser"]
        );
        assert!(c.get("revenue").unwrap().sql.starts_with("SELECT"));
        // A formula has the dimensions both of its metrics have.
        let aov = c.get("average_order_value").unwrap();
        assert_eq!(aov.dimensions, ["item_id", "country"]);
        // An average is stored as the sum and the count of its value, hidden.
        let avg = c.get("average_price").unwrap();
        let f = avg.formula.as_ref().unwrap();
        assert_eq!(
            (f.numerator.as_str(), f.denominator.as_str()),
            ("average_price__sum", "average_price__count")
        );
        let sum = c.get("average_price__sum").unwrap();
        assert!(sum.hidden && sum.sql.contains("SUM(price)"), "{}", sum.sql);
        assert!(c
            .get("average_price__count")
            .unwrap()
            .sql
            .contains("COUNT(price)"));
    }

    #[test]
    fn formulas_over_unknown_metrics_cycles_or_bad_shapes_are_refused_naming_the_file() {
        let base = "-- name: a\nSELECT COUNT(*) AS value FROM events";
        let cases: [(&[(&str, &str)], &str); 6] = [
            (
                &[("f.sql", "-- name: f\n-- formula: a / nosuch")],
                "f.sql: formula of `f` refers to `nosuch`",
            ),
            (
                &[
                    ("f.sql", "-- name: f\n-- formula: g / a"),
                    ("g.sql", "-- name: g\n-- formula: f / a"),
                ],
                "in a cycle",
            ),
            (
                &[("f.sql", "-- name: f\n-- formula: a + a")],
                "f.sql:2: formula must be `metric / metric`",
            ),
            (
                &[("f.sql", "-- name: f\n-- formula: a / a\nSELECT 1")],
                "a formula has no query",
            ),
            (
                &[(
                    "f.sql",
                    "-- name: f\n-- dimensions: country\n-- formula: a / a",
                )],
                "leave out `dimensions`",
            ),
            (
                &[(
                    "f.sql",
                    "-- name: f\nSELECT AVG(price) + AVG(quantity) AS value FROM events",
                )],
                "at most one AVG",
            ),
        ];
        for (files, want) in cases {
            let mut all: Vec<(String, &str)> = vec![("a.sql".to_string(), base)];
            all.extend(files.iter().map(|(n, t)| (n.to_string(), *t)));
            let e = Catalog::from_sources(all).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
        // Removing a metric a formula uses is refused the same way.
        let e = Catalog::from_sources([("f.sql".to_string(), "-- name: f\n-- formula: a / b")])
            .unwrap_err();
        assert!(e.to_string().starts_with("f.sql: "), "{e}");
        // A name with a double underscore is kept for the parts of averages.
        assert!(MetricDef::parse("x.sql", "-- name: a__sum\nSELECT 1").is_err());
    }

    #[test]
    fn a_version_changes_with_the_numbers_only() {
        let v = |text: &str| {
            MetricDef::parse("sql/x.sql", text)
                .unwrap()
                .version(chrono_tz::Tz::UTC)
        };
        let base = v("-- name: x\n-- dimensions: country\nSELECT country, COUNT(*) AS value FROM events WHERE event_type = 'a' GROUP BY country");
        // Layout, comments and the display header do not change the numbers.
        assert_eq!(base, v("-- name: x\n-- title: Shown\n-- dimensions: country\nSELECT country,\n  COUNT(*) AS value -- each event\nFROM events   WHERE event_type = 'a'\nGROUP BY country;"));
        // A value inside quotes, the query, the dimensions and the zone do.
        assert_ne!(base, v("-- name: x\n-- dimensions: country\nSELECT country, COUNT(*) AS value FROM events WHERE event_type = 'a ' GROUP BY country"));
        assert_ne!(base, v("-- name: x\n-- dimensions: country\nSELECT country, COUNT(*) AS value FROM events WHERE event_type = 'b' GROUP BY country"));
        let def = MetricDef::parse("sql/x.sql", "-- name: x\n-- dimensions: country\nSELECT country, COUNT(*) AS value FROM events WHERE event_type = 'a' GROUP BY country").unwrap();
        assert_ne!(base, def.version(chrono_tz::Tz::Asia__Seoul));
        assert_eq!(base.len(), 12);
    }

    #[test]
    fn header_errors_name_the_file() {
        let e =
            MetricDef::parse("sql/x.sql", "-- name: x\n-- dimensions: from\nSELECT 1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "sql/x.sql: dimension `from` clashes with the API parameter of that name"
        );
        let e = MetricDef::parse("sql/y.sql", "-- name: Bad Name\nSELECT 1").unwrap_err();
        let e2 = MetricDef::parse("sql/z.sql", "-- name: z\n-- colour: red\nSELECT 1").unwrap_err();
        assert_eq!(e2.to_string(), "sql/z.sql:2: unknown header key `colour`");
        assert!(e.to_string().starts_with("sql/y.sql: header `name`"));
    }
}
