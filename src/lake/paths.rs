//! Every object name in the lake, as a type with a formatter (`path`) and a parser (`parse`):
//!
//! ```text
//! events/date=2026-08-23/hour=13/part-<hash of events>.parquet       events by UTC hour of occurred_at, as ingest wrote them
//! events/date=2026-08-23/hour=13/part-compacted-<hash>.parquet      an hour's events merged by compaction
//! quarantine/date=2026-08-23/<hash of lines and reasons>.ndjson      rejected input, by day received
//! _state/touched/2026-08-23T13/<batch id>                           hours waiting for the rollup
//! _state/<kind>/<metric>/<grain>/<period start, epoch s>.bin         period states (sums, distinct sets)
//! _state/values/<metric>.json                                       each dimension's values with a group of their own
//! _state/shards/2026-08-23T13/<metrics>/<plan>/plan.json            an hour split into shards: files, shard count, metrics
//! _state/shards/2026-08-23T13/<metrics>/<plan>/sent.json            when the shards' jobs were last sent
//! _state/shards/2026-08-23T13/<metrics>/<plan>/<shard>/<metric>.<kind>  one shard's partial state of one metric
//! _catalog/versions/<hash of the object>.json                       a deployed set of metric SQL files
//! _catalog/current.json                                             which version is deployed
//! _catalog/live.json                                                the versions the rollup has built
//! ```
//! In `_state/`, `<metric>` is a metric version's key (`revenue.v1a2b3c4d5e6f`, see the rollup).
//! Names derive from content, so a retried write overwrites instead of duplicating.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use object_store::path::Path;

use crate::model::Grain;

/// The folder of one UTC hour's event files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct HourPartition {
    pub(crate) hour: DateTime<Utc>,
}

pub(crate) const EVENTS: &str = "events";
pub(crate) const TOUCHED: &str = "_state/touched";

impl HourPartition {
    pub(crate) fn path(&self) -> Path {
        Path::from(format!(
            "{EVENTS}/date={}/hour={}",
            self.hour.format("%Y-%m-%d"),
            self.hour.format("%H")
        ))
    }

    /// The partition a path is in or names (`events/date=…/hour=…[/…]`).
    pub(crate) fn parse(path: &Path) -> Option<HourPartition> {
        let mut parts = path.parts();
        (parts.next()?.as_ref() == EVENTS).then_some(())?;
        let date = parts.next()?;
        let hour = parts.next()?;
        let date = date.as_ref().strip_prefix("date=")?;
        let hour = hour.as_ref().strip_prefix("hour=")?;
        if hour.len() != 2 {
            return None;
        }
        let t =
            NaiveDateTime::parse_from_str(&format!("{date}T{hour}:00"), "%Y-%m-%dT%H:%M").ok()?;
        Some(HourPartition {
            hour: Utc.from_utc_datetime(&t),
        })
    }
}

/// How compaction's files are named apart from ingest's.
const COMPACTED: &str = "compacted-";

/// One Parquet file of events, named by a hash of its events (ingest) or of its event ids
/// (compaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventFile {
    pub(crate) hour: DateTime<Utc>,
    pub(crate) name: String,
}

impl EventFile {
    /// The file compaction writes for an hour, named apart from any file ingest writes.
    pub(crate) fn compacted(hour: DateTime<Utc>, hash: &str) -> EventFile {
        EventFile {
            hour,
            name: format!("{COMPACTED}{hash}"),
        }
    }

    /// Whether compaction wrote this file (ingest names its files by a bare hash).
    pub(crate) fn is_compacted(&self) -> bool {
        self.name.starts_with(COMPACTED)
    }

    pub(crate) fn path(&self) -> Path {
        HourPartition { hour: self.hour }
            .path()
            .join(format!("part-{}.parquet", self.name))
    }

    pub(crate) fn parse(path: &Path) -> Option<EventFile> {
        let hour = HourPartition::parse(path)?.hour;
        let file = path.filename()?;
        let name = file.strip_prefix("part-")?.strip_suffix(".parquet")?;
        (path.parts().count() == 4).then(|| EventFile {
            hour,
            name: name.to_string(),
        })
    }
}

/// Rejected input of one write, under the UTC day it was received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QuarantineFile {
    pub(crate) received: NaiveDate,
    pub(crate) name: String,
}

impl QuarantineFile {
    pub(crate) fn path(&self) -> Path {
        Path::from(format!(
            "quarantine/date={}/{}.ndjson",
            self.received.format("%Y-%m-%d"),
            self.name
        ))
    }

    #[cfg(test)]
    pub(crate) fn parse(path: &Path) -> Option<QuarantineFile> {
        let parts: Vec<_> = path.parts().collect();
        match parts.as_slice() {
            [root, date, file] if root.as_ref() == "quarantine" => Some(QuarantineFile {
                received: NaiveDate::parse_from_str(
                    date.as_ref().strip_prefix("date=")?,
                    "%Y-%m-%d",
                )
                .ok()?,
                name: file.as_ref().strip_suffix(".ndjson")?.to_string(),
            }),
            _ => None,
        }
    }
}

/// A marker that `hour` received data in one ingest batch; written after the data.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TouchedMarkerPath {
    pub(crate) hour: DateTime<Utc>,
    pub(crate) batch: String,
}

impl TouchedMarkerPath {
    pub(crate) fn path(&self) -> Path {
        Path::from(TOUCHED)
            .join(self.hour.format("%Y-%m-%dT%H").to_string())
            .join(self.batch.as_str())
    }

    pub(crate) fn parse(path: &Path) -> Option<TouchedMarkerPath> {
        let parts: Vec<_> = path.parts().collect();
        match parts.as_slice() {
            [a, b, hour, batch] if a.as_ref() == "_state" && b.as_ref() == "touched" => {
                let t = NaiveDateTime::parse_from_str(
                    &format!("{}:00", hour.as_ref()),
                    "%Y-%m-%dT%H:%M",
                )
                .ok()?;
                Some(TouchedMarkerPath {
                    hour: Utc.from_utc_datetime(&t),
                    batch: batch.as_ref().to_string(),
                })
            }
            _ => None,
        }
    }
}

/// The saved state of one metric's period, of one kind (`sums`, `distinct`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StateFile {
    pub(crate) kind: String,
    pub(crate) metric: String,
    pub(crate) grain: Grain,
    pub(crate) start: DateTime<Utc>,
}

impl StateFile {
    /// The folder holding every period of one kind, metric and grain.
    pub(crate) fn folder(kind: &str, metric: &str, grain: Grain) -> Path {
        Path::from(format!("_state/{kind}/{metric}/{grain}"))
    }

    pub(crate) fn path(&self) -> Path {
        StateFile::folder(&self.kind, &self.metric, self.grain)
            .join(format!("{}.bin", self.start.timestamp()))
    }

    pub(crate) fn parse(path: &Path) -> Option<StateFile> {
        let parts: Vec<_> = path.parts().collect();
        match parts.as_slice() {
            [root, kind, metric, grain, file] if root.as_ref() == "_state" => {
                let start: i64 = file.as_ref().strip_suffix(".bin")?.parse().ok()?;
                Some(StateFile {
                    kind: kind.as_ref().to_string(),
                    metric: metric.as_ref().to_string(),
                    grain: grain.as_ref().parse().ok()?,
                    start: DateTime::from_timestamp(start, 0)?,
                })
            }
            _ => None,
        }
    }
}

/// The values of each dimension of one metric version that have a group of their own (the rest
/// are counted in one `(other)` group): grows, never rewritten otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeptValuesFile {
    pub(crate) metric: String,
}

impl KeptValuesFile {
    pub(crate) fn path(&self) -> Path {
        Path::from(format!("_state/values/{}.json", self.metric))
    }
}

/// The objects of one plan splitting an hour into shards (see the rollup's `shards`): the plan
/// itself, when its jobs were sent, and each shard's partial state per metric version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShardPlanFiles {
    pub(crate) hour: DateTime<Utc>,
    /// A hash of the metric versions the plan computes: runs computing other versions of the same
    /// hour (another reporting zone) keep their plans apart.
    pub(crate) metrics: String,
    /// A hash of the plan's content: the files, the shard count and the metric versions.
    pub(crate) plan: String,
}

impl ShardPlanFiles {
    /// Every plan of one hour and set of metric versions.
    pub(crate) fn plans_folder(hour: DateTime<Utc>, metrics: &str) -> Path {
        Path::from(SHARDS)
            .join(hour.format("%Y-%m-%dT%H").to_string())
            .join(metrics)
    }

    pub(crate) fn folder(&self) -> Path {
        ShardPlanFiles::plans_folder(self.hour, &self.metrics).join(self.plan.as_str())
    }

    pub(crate) fn plan(&self) -> Path {
        self.folder().join("plan.json")
    }

    pub(crate) fn sent(&self) -> Path {
        self.folder().join("sent.json")
    }

    pub(crate) fn part(&self, shard: u32, metric: &str, kind: &str) -> Path {
        self.folder()
            .join(shard.to_string())
            .join(format!("{metric}.{kind}"))
    }
}

pub(crate) const SHARDS: &str = "_state/shards";

/// One deployed catalog version: every metric file of one deploy, never rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CatalogVersionFile {
    pub(crate) id: String,
}

/// The pointer to the deployed catalog version; one object, so a reader sees the old or the new.
pub(crate) const CATALOG_CURRENT: &str = "_catalog/current.json";
/// The rollup's record of the metric versions it has built and is building.
pub(crate) const CATALOG_LIVE: &str = "_catalog/live.json";

impl CatalogVersionFile {
    pub(crate) fn path(&self) -> Path {
        Path::from(format!("_catalog/versions/{}.json", self.id))
    }

    pub(crate) fn parse(path: &Path) -> Option<CatalogVersionFile> {
        let parts: Vec<_> = path.parts().collect();
        match parts.as_slice() {
            [a, b, file] if a.as_ref() == "_catalog" && b.as_ref() == "versions" => {
                let id = file.as_ref().strip_suffix(".json")?;
                (!id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()))
                    .then(|| CatalogVersionFile { id: id.to_string() })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn hour(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(h * 3600, 0).unwrap()
    }

    #[test]
    fn the_documented_layout() {
        let t = Utc.with_ymd_and_hms(2026, 8, 23, 13, 0, 0).unwrap();
        let file = EventFile {
            hour: t,
            name: "abc".into(),
        };
        assert_eq!(
            file.path().as_ref(),
            "events/date=2026-08-23/hour=13/part-abc.parquet"
        );
        assert!(!file.is_compacted());
        let merged = EventFile::compacted(t, "abc");
        assert_eq!(
            merged.path().as_ref(),
            "events/date=2026-08-23/hour=13/part-compacted-abc.parquet"
        );
        assert_eq!(EventFile::parse(&merged.path()), Some(merged.clone()));
        assert!(merged.is_compacted());
        let marker = TouchedMarkerPath {
            hour: t,
            batch: "b1".into(),
        };
        assert_eq!(marker.path().as_ref(), "_state/touched/2026-08-23T13/b1");
        let kept = KeptValuesFile {
            metric: "revenue.v1a2b3c4d5e6f".into(),
        };
        assert_eq!(
            kept.path().as_ref(),
            "_state/values/revenue.v1a2b3c4d5e6f.json"
        );
        assert_eq!(StateFile::parse(&kept.path()), None);
        let q = QuarantineFile {
            received: t.date_naive(),
            name: "q".into(),
        };
        assert_eq!(q.path().as_ref(), "quarantine/date=2026-08-23/q.ndjson");
        let state = StateFile {
            kind: "sums".into(),
            metric: "revenue".into(),
            grain: Grain::Day,
            start: t,
        };
        assert_eq!(
            state.path().as_ref(),
            format!("_state/sums/revenue/day/{}.bin", t.timestamp())
        );
    }

    #[test]
    fn others_are_not_taken_for_them() {
        for p in [
            "events/date=2026-08-23/hour=1/part-a.parquet",
            "events/date=2026-13-23/hour=13/part-a.parquet",
            "events/date=2026-08-23/hour=13/a.parquet",
            "events/date=2026-08-23/hour=13/x/part-a.parquet",
            "_state/touched/2026-08-23/b",
            "quarantine/2026-08-23/q.ndjson",
            "_state/sums/revenue/fortnight/0.bin",
            "_catalog/versions/a/b.json",
            "_catalog/versions/.json",
            "_catalog/current.json",
        ] {
            let p = Path::from(p);
            assert!(EventFile::parse(&p).is_none(), "{p}");
            assert!(TouchedMarkerPath::parse(&p).is_none(), "{p}");
            assert!(QuarantineFile::parse(&p).is_none(), "{p}");
            assert!(StateFile::parse(&p).is_none(), "{p}");
            assert!(CatalogVersionFile::parse(&p).is_none(), "{p}");
        }
    }

    proptest! {
        #[test]
        fn every_path_parses_back(h in 0i64..2_000_000, name in "[a-z0-9]{1,40}", grain in 0usize..4) {
            let file = EventFile { hour: hour(h), name: name.clone() };
            prop_assert_eq!(EventFile::parse(&file.path()), Some(file.clone()));
            prop_assert_eq!(HourPartition::parse(&file.path()), Some(HourPartition { hour: hour(h) }));
            let marker = TouchedMarkerPath { hour: hour(h), batch: name.clone() };
            prop_assert_eq!(TouchedMarkerPath::parse(&marker.path()), Some(marker));
            let q = QuarantineFile { received: hour(h).date_naive(), name: name.clone() };
            prop_assert_eq!(QuarantineFile::parse(&q.path()), Some(q));
            let grain = [Grain::Hour, Grain::Day, Grain::Month, Grain::All][grain];
            let catalog = CatalogVersionFile { id: name.clone() };
            prop_assert_eq!(CatalogVersionFile::parse(&catalog.path()), Some(catalog));
            let state = StateFile { kind: "distinct".into(), metric: format!("{name}.v0123456789ab"), grain, start: hour(h) };
            prop_assert_eq!(StateFile::parse(&state.path()), Some(state));
        }
    }
}
