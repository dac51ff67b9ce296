//! The metric catalog: the data team's SQL files, each a header of `-- key: value` lines and a query.
//!
//! ```sql
//! -- name: sign_ins
//! -- title: Sign-ins
//! -- description: Number of sign-in events.
//! -- unit: events
//! -- dimensions: country, browser
//! SELECT country, browser, COUNT(*) AS value FROM events WHERE event_type = 'sign-in' GROUP BY country, browser
//! ```
//!
//! Reading the catalog needs no query engine (the API loads it); `crate::rollup::engine` plans and checks the queries.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

include!(concat!(env!("OUT_DIR"), "/builtin_sql.rs"));

/// The metrics API's named query parameters (the HTTP layer reads these; every other parameter is
/// a dimension filter), so no dimension may take one of these names, nor `metric`.
pub(crate) const API_PARAMS: [&str; 7] = [
    "from", "to", "tz", "interval", "group_by", "limit", "compare",
];
/// How this code stores a metric's rows and period states; part of every version, so that a
/// release storing them differently rebuilds every metric beside the old rows.
const STORED_FORMAT: &str = "rows+sums+distinct/1";
/// Every subset of the dimensions is stored, so their number is kept small.
pub(crate) const MAX_DIMENSIONS: usize = 4;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetricDef {
    pub name: String,
    pub title: String,
    pub description: String,
    pub unit: String,
    pub dimensions: Vec<String>,
    #[serde(skip)]
    pub sql: String,
    /// Where the definition came from, for messages.
    #[serde(skip)]
    pub source: String,
    /// The whole file as written (header and query): what a deploy publishes.
    #[serde(skip)]
    pub text: String,
}

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
        let mut def = MetricDef {
            name: String::new(),
            title: String::new(),
            description: String::new(),
            unit: String::new(),
            dimensions: Vec::new(),
            sql: String::new(),
            source: source.to_string(),
            text: text.to_string(),
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
        if !valid_identifier(&def.name) {
            return Err(err(
                source,
                format!(
                    "header `name` must be lowercase letters, digits and _ (got {:?})",
                    def.name
                ),
            ));
        }
        if def.title.is_empty() {
            def.title = def.name.clone();
        }
        if def.sql.is_empty() {
            return Err(err(source, "no query after the header"));
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
    /// comments normalised, the dimensions, the zone), not of the title, description or unit.
    pub fn version(&self, reporting_tz: chrono_tz::Tz) -> String {
        let hash = blake3::hash(
            format!(
                "{STORED_FORMAT}\n{}\n{}\n{}",
                normalised_query(&self.sql),
                self.dimensions.join(","),
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

/// All metric definitions, by name.
#[derive(Debug, Clone)]
pub struct Catalog {
    metrics: Vec<Arc<MetricDef>>,
}

impl Catalog {
    pub fn from_sources<'a>(
        files: impl IntoIterator<Item = (String, &'a str)>,
    ) -> Result<Catalog, CatalogError> {
        let mut metrics: Vec<Arc<MetricDef>> = Vec::new();
        for (source, text) in files {
            let def = MetricDef::parse(&source, text)?;
            if let Some(prev) = metrics.iter().find(|m| m.name == def.name) {
                return Err(err(
                    &source,
                    format!("metric `{}` is also defined in {}", def.name, prev.source),
                ));
            }
            metrics.push(Arc::new(def));
        }
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

    pub fn metrics(&self) -> &[Arc<MetricDef>] {
        &self.metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_has_the_shipped_metrics() {
        let c = Catalog::builtin();
        let names: Vec<_> = c.metrics().iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
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
