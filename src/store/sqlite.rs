//! Embedded period store on SQLite: one file beside the Parquet data, for one machine.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{Claim, Lease, PeriodRow, PeriodStore, StoreError};
use crate::model::dims::{dim_set_key, dims_key, parse_dims_key, Dims};
use crate::model::measure::Measure;
use crate::model::period::Grain;

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS period_rows (
    metric  TEXT    NOT NULL,
    grain   TEXT    NOT NULL,
    dims    TEXT    NOT NULL,
    dim_set TEXT    NOT NULL,
    start   INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    value   TEXT    NOT NULL,
    sketch  BLOB,
    PRIMARY KEY (metric, grain, dims, start)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS period_rows_by_set ON period_rows (metric, grain, dim_set, start);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, until_ms INTEGER NOT NULL);
";

#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| backend(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)
            .map_err(|e| backend(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(backend)?;
        conn.execute_batch(SCHEMA).map_err(backend)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| backend("connection lock poisoned"))?;
            f(&mut guard)
        })
        .await
        .map_err(backend)?
    }
}

fn encode(m: &Measure) -> (&'static str, String, Option<&[u8]>) {
    match m {
        Measure::Additive(v) => ("sum", v.to_string(), None),
        Measure::Distinct { exact, sketch } => {
            ("distinct", exact.to_string(), Some(sketch.as_slice()))
        }
    }
}

type RawRow = (String, String, String, i64, String, String, Option<Vec<u8>>);

fn decode(raw: RawRow) -> Result<PeriodRow, StoreError> {
    let (metric, grain, dims, start, kind, value, sketch) = raw;
    let corrupt =
        |what: String| StoreError::Corrupt(format!("{metric}/{grain}/{dims}/{start}: {what}"));
    let measure = match kind.as_str() {
        "sum" => Measure::Additive(
            value
                .parse()
                .map_err(|e| corrupt(format!("value {value:?}: {e}")))?,
        ),
        "distinct" => Measure::Distinct {
            exact: value
                .parse()
                .map_err(|e| corrupt(format!("value {value:?}: {e}")))?,
            sketch: sketch.unwrap_or_default(),
        },
        other => return Err(corrupt(format!("unknown kind {other:?}"))),
    };
    Ok(PeriodRow {
        grain: grain.parse().map_err(corrupt)?,
        start: Utc
            .timestamp_opt(start, 0)
            .single()
            .ok_or_else(|| corrupt("bad start".into()))?,
        dims: parse_dims_key(&dims).map_err(|e| corrupt(e.to_string()))?,
        metric,
        measure,
    })
}

fn collect(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<PeriodRow>, StoreError> {
    let rows = stmt
        .query_map(params, |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .map_err(backend)?;
    rows.map(|r| decode(r.map_err(backend)?)).collect()
}

const COLUMNS: &str = "metric, grain, dims, start, kind, value, sketch";

#[async_trait]
impl PeriodStore for SqliteStore {
    async fn put(&self, rows: Vec<PeriodRow>) -> Result<(), StoreError> {
        self.with(move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            {
                let mut stmt = tx
                    .prepare_cached("INSERT OR REPLACE INTO period_rows (metric, grain, dims, dim_set, start, kind, value, sketch) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
                    .map_err(backend)?;
                for row in &rows {
                    let (kind, value, sketch) = encode(&row.measure);
                    stmt.execute(params![row.metric, row.grain.as_str(), dims_key(&row.dims), dim_set_key(row.dims.keys()), row.start.timestamp(), kind, value, sketch])
                        .map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn series(
        &self,
        metric: &str,
        grain: Grain,
        dims: &Dims,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<PeriodRow>, StoreError> {
        let (metric, key) = (metric.to_string(), dims_key(dims));
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {COLUMNS} FROM period_rows WHERE metric = ?1 AND grain = ?2 AND dims = ?3 AND start >= ?4 AND start < ?5 ORDER BY start"))
                .map_err(backend)?;
            collect(&mut stmt, params![metric, grain.as_str(), key, from.timestamp(), to.timestamp()])
        })
        .await
    }

    async fn groups(
        &self,
        metric: &str,
        grain: Grain,
        dim_set: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<PeriodRow>, StoreError> {
        let (metric, dim_set) = (metric.to_string(), dim_set.to_string());
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {COLUMNS} FROM period_rows WHERE metric = ?1 AND grain = ?2 AND dim_set = ?3 AND start >= ?4 AND start < ?5 ORDER BY start, dims"))
                .map_err(backend)?;
            collect(&mut stmt, params![metric, grain.as_str(), dim_set, from.timestamp(), to.timestamp()])
        })
        .await
    }

    async fn delete_metric(&self, metric: &str, _dim_sets: &[String]) -> Result<(), StoreError> {
        let metric = metric.to_string();
        self.with(move |conn| {
            conn.execute("DELETE FROM period_rows WHERE metric = ?1", params![metric])
                .map(|_| ())
                .map_err(backend)
        })
        .await
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_string();
        self.with(move |conn| {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn put_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let (key, value) = (key.to_string(), value.to_string());
        self.with(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![key, value],
            )
            .map(|_| ())
            .map_err(backend)
        })
        .await
    }

    async fn claim_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.with(move |conn| {
            // IMMEDIATE takes the database's write lock before the read: two processes cannot
            // both see the lease free.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let current: Option<(String, i64)> = tx
                .query_row(
                    "SELECT holder, until_ms FROM leases WHERE name = ?1",
                    params![name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(backend)?;
            if let Some((other, until_ms)) = current {
                let until = Utc
                    .timestamp_millis_opt(until_ms)
                    .single()
                    .ok_or_else(|| StoreError::Corrupt(format!("lease until {until_ms}")))?;
                let lease = Lease {
                    holder: other,
                    until,
                };
                if lease.blocks(&holder, now) {
                    return Ok(Claim::HeldBy(lease));
                }
            }
            tx.execute(
                "INSERT OR REPLACE INTO leases (name, holder, until_ms) VALUES (?1, ?2, ?3)",
                params![name, holder, until.timestamp_millis()],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(Claim::Granted)
        })
        .await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.with(move |conn| {
            conn.execute(
                "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
                params![name, holder],
            )
            .map(|_| ())
            .map_err(backend)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn passes_the_contract_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::SqliteStore::open(&dir.path().join("periods.sqlite")).unwrap();
        super::super::contract::run(&store).await;
    }

    #[tokio::test]
    async fn rows_survive_reopening() {
        use super::super::PeriodStore;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("periods.sqlite");
        super::SqliteStore::open(&path)
            .unwrap()
            .put_meta("k", "v")
            .await
            .unwrap();
        let again = super::SqliteStore::open(&path).unwrap();
        assert_eq!(again.get_meta("k").await.unwrap().as_deref(), Some("v"));
    }
}
